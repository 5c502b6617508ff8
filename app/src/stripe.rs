//! The Stripe calls the marketplace makes, through async-stripe. One place
//! owns every request shape, so the same code runs against the real API (a
//! real key, the default base URL) and against a Stripe-compatible test
//! server (`STRIPE_API_BASE`).
//!
//! Only parameters the real API documents are sent, and responses are
//! parsed by async-stripe's strict types: a response missing a field the
//! real API always returns is an error here, not a default.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use stripe::{Client, ClientBuilder, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::subscription::{
    CancelSubscription, CreateSubscription, CreateSubscriptionItems,
    CreateSubscriptionPaymentBehavior, UpdateSubscription,
};
use stripe_core::charge::RetrieveCharge;
use stripe_core::customer::{CreateCustomer, RetrieveCustomer, RetrieveCustomerReturned};
use stripe_core::payment_intent::{
    ConfirmPaymentIntent, ConfirmPaymentIntentOffSession, CreatePaymentIntent,
    RetrievePaymentIntent,
};
use stripe_core::setup_intent::CreateSetupIntent;
use stripe_core::SetupIntentStatus;
use stripe_payment::payment_method::{DetachPaymentMethod, RetrievePaymentMethod};
use stripe_product::price::{
    CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval, ListPrice,
};
use stripe_product::product::{CreateProduct, RetrieveProduct};
use stripe_types::Currency;

/// The id of the one Stripe Product every recurring top-up's Price belongs
/// to (Stripe lets a product be created with an id of one's choosing).
pub const RECURRING_TOP_UP_PRODUCT: &str = "marketplace_recurring_top_up";

/// The `lookup_key` of the monthly Price of `usd_cents`: one Price per
/// distinct amount, found by this key before one is created.
pub fn monthly_price_lookup_key(usd_cents: u64) -> String {
    format!("marketplace_monthly_top_up_usd_{usd_cents}")
}

/// Where Stripe is and how to authenticate.
#[derive(Debug, Clone)]
pub struct StripeSettings {
    /// The secret API key (`sk_…`); `Debug` prints it redacted.
    pub secret_key: SecretString,
    /// The API's base URL; `None` is the real Stripe API.
    pub api_base: Option<String>,
}

/// Why a Stripe call failed.
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    /// Stripe refused the request (a card error, a bad parameter).
    #[error("Stripe refused: {code}: {message}")]
    Refused {
        /// Stripe's error code (`card_declined`), or its type.
        code: String,
        /// Stripe's message.
        message: String,
        /// The HTTP status.
        status: u16,
    },
    /// Stripe could not be reached, or answered something unreadable.
    #[error("Stripe unavailable: {0}")]
    Unavailable(String),
}

impl From<StripeError> for PaymentsError {
    fn from(e: StripeError) -> Self {
        match e {
            StripeError::Stripe(err, status) => PaymentsError::Refused {
                code: err
                    .code
                    .as_ref()
                    .map(|c| c.as_str().to_string())
                    .or_else(|| err.decline_code.clone())
                    .unwrap_or_else(|| err.type_.as_str().to_string()),
                message: err.message.clone().unwrap_or_default(),
                status,
            },
            other => PaymentsError::Unavailable(other.to_string()),
        }
    }
}

/// A payment intent as the marketplace needs it.
#[derive(Debug, Clone)]
pub struct Intent {
    /// Stripe's id (`pi_…`).
    pub id: String,
    /// For Stripe Elements, to confirm in the browser.
    pub client_secret: Option<String>,
    /// Stripe's status, as Stripe spells it.
    pub status: String,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<(String, String)>,
}

/// A saved card.
#[derive(Debug, Clone)]
pub struct Card {
    /// Stripe's id (`pm_…`).
    pub id: String,
    /// Brand (`visa`).
    pub brand: String,
    /// Last four digits.
    pub last4: String,
    /// Expiry month.
    pub exp_month: u32,
    /// Expiry year.
    pub exp_year: u32,
    /// The customer it is attached to, if any.
    pub customer: Option<String>,
}

/// A subscription as the marketplace needs it.
#[derive(Debug, Clone)]
pub struct SubscriptionInfo {
    /// Stripe's id (`sub_…`).
    pub id: String,
    /// Stripe's status, as Stripe spells it (`active`, `incomplete`, `canceled`, ...).
    pub status: String,
    /// Whether it ends with its current period.
    pub cancel_at_period_end: bool,
    /// When its current period ends (unix seconds): the next renewal.
    pub current_period_end: Option<i64>,
    /// When it ended (unix seconds), once it has.
    pub ended_at: Option<i64>,
}

fn subscription(sub: stripe_shared::Subscription) -> SubscriptionInfo {
    SubscriptionInfo {
        id: sub.id.as_str().to_string(),
        status: sub.status.as_str().to_string(),
        cancel_at_period_end: sub.cancel_at_period_end,
        // The period is the item's (API versions from 2025-03-31); the
        // marketplace's subscriptions have one item.
        current_period_end: sub.items.data.iter().map(|i| i.current_period_end).max(),
        ended_at: sub.ended_at,
    }
}

/// A Stripe client for the marketplace's calls.
#[derive(Clone)]
pub struct Payments {
    client: Client,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Payments")
    }
}

fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn idempotent(key: &str) -> Result<RequestStrategy, PaymentsError> {
    stripe::IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| PaymentsError::Unavailable(format!("bad idempotency key: {e}")))
}

fn intent(pi: stripe_shared::PaymentIntent) -> Intent {
    Intent {
        id: pi.id.as_str().to_string(),
        client_secret: pi.client_secret,
        status: pi.status.as_str().to_string(),
        last_error: pi.last_payment_error.map(|e| {
            (
                e.code
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_else(|| "payment_failed".to_string()),
                e.message.unwrap_or_default(),
            )
        }),
    }
}

fn card(pm: stripe_shared::PaymentMethod) -> Option<Card> {
    let c = pm.card?;
    Some(Card {
        id: pm.id.as_str().to_string(),
        brand: c.brand,
        last4: c.last4,
        exp_month: u32::try_from(c.exp_month).unwrap_or(0),
        exp_year: u32::try_from(c.exp_year).unwrap_or(0),
        customer: pm.customer.map(|c| c.id().as_str().to_string()),
    })
}

/// Card payments as the marketplace uses them: the port the wallet
/// endpoints and the payment workers call. [`Payments`] fills it with
/// Stripe's API (or a Stripe-compatible test server at `STRIPE_API_BASE`).
#[async_trait::async_trait]
pub trait PaymentGateway: Send + Sync + std::fmt::Debug + 'static {
    /// Creates the Stripe customer of a wallet. The idempotency key is the
    /// wallet's, so two racing first uses create one customer.
    async fn create_customer(&self, wallet_id: &str) -> Result<String, PaymentsError>;

    /// Starts saving a card for off-session use; the browser confirms it.
    async fn create_setup_intent(
        &self,
        customer: &str,
        wallet_id: &str,
    ) -> Result<(String, Option<String>), PaymentsError>;

    /// A top-up's payment intent, confirmed later in the browser. The
    /// wallet and top-up ids go in its metadata; the top-up id is also the
    /// idempotency key, so a retried request creates one intent.
    async fn create_top_up_intent(
        &self,
        customer: &str,
        usd_cents: u64,
        wallet_id: &str,
        top_up_id: &str,
    ) -> Result<Intent, PaymentsError>;

    /// An automatic top-up's payment intent on a saved card, not yet confirmed.
    async fn create_auto_top_up_intent(
        &self,
        customer: &str,
        payment_method: &str,
        usd_cents: u64,
        wallet_id: &str,
        top_up_id: &str,
    ) -> Result<Intent, PaymentsError>;

    /// Confirms an intent off-session (the user is not there to authenticate).
    async fn confirm_off_session(&self, intent_id: &str) -> Result<Intent, PaymentsError>;

    /// A charge's receipt URL.
    async fn receipt_url(&self, charge_id: &str) -> Result<Option<String>, PaymentsError>;

    /// A payment intent's metadata: a top-up's carries its wallet and
    /// top-up ids, so it tells whether a charge is the marketplace's.
    async fn payment_intent_metadata(
        &self,
        intent_id: &str,
    ) -> Result<HashMap<String, String>, PaymentsError>;

    /// A customer's metadata: a wallet's customer carries its wallet id,
    /// so it tells whose a card saved without our metadata is. Empty for a
    /// deleted customer.
    async fn customer_metadata(
        &self,
        customer_id: &str,
    ) -> Result<HashMap<String, String>, PaymentsError>;

    /// A card by id.
    async fn card(&self, payment_method: &str) -> Result<Option<Card>, PaymentsError>;

    /// Detaches a card from its customer.
    async fn detach(&self, payment_method: &str) -> Result<(), PaymentsError>;

    /// The monthly recurring Price of `usd_cents` (USD), on the recurring
    /// top-up Product: found by its lookup key, created (with the Product,
    /// on first need) only when there is none, so none is duplicated.
    async fn monthly_price(&self, usd_cents: u64) -> Result<String, PaymentsError>;

    /// Subscribes a wallet's customer to a monthly Price, charged to a saved
    /// card off-session. The first invoice is paid now or the call fails
    /// (Stripe's `card_declined`, say) and no subscription is left behind.
    /// `key` is the idempotency key, so a retried request subscribes once.
    async fn create_subscription(
        &self,
        customer: &str,
        payment_method: &str,
        price: &str,
        wallet_id: &str,
        key: &str,
    ) -> Result<SubscriptionInfo, PaymentsError>;

    /// Ends a subscription when its current period ends.
    async fn cancel_subscription_at_period_end(
        &self,
        subscription_id: &str,
    ) -> Result<SubscriptionInfo, PaymentsError>;

    /// Ends a subscription now.
    async fn cancel_subscription_now(
        &self,
        subscription_id: &str,
    ) -> Result<SubscriptionInfo, PaymentsError>;
}

/// A shared handle on the payment port.
pub type Gateway = Arc<dyn PaymentGateway>;

impl Payments {
    /// A client for these settings.
    pub fn new(settings: &StripeSettings) -> Result<Self, PaymentsError> {
        let mut builder = ClientBuilder::new(settings.secret_key.expose_secret())
            .timeout(Duration::from_secs(20))
            .app_info("tfgrid-marketplace", None, None);
        if let Some(base) = &settings.api_base {
            builder = builder.url(base.trim_end_matches('/').to_string());
        }
        let client = builder
            .build()
            .map_err(|e| PaymentsError::Unavailable(format!("STRIPE_API_BASE: {e}")))?;
        Ok(Self { client })
    }
}

#[async_trait::async_trait]
impl PaymentGateway for Payments {
    async fn create_customer(&self, wallet_id: &str) -> Result<String, PaymentsError> {
        let customer = CreateCustomer::new()
            .metadata(metadata(&[("wallet_id", wallet_id)]))
            .description(format!("marketplace wallet {wallet_id}"))
            .customize()
            .request_strategy(idempotent(&format!("customer-{wallet_id}"))?)
            .send(&self.client)
            .await?;
        Ok(customer.id.as_str().to_string())
    }

    async fn create_setup_intent(
        &self,
        customer: &str,
        wallet_id: &str,
    ) -> Result<(String, Option<String>), PaymentsError> {
        let si = CreateSetupIntent::new()
            .customer(customer.to_string())
            .usage(stripe_core::setup_intent::CreateSetupIntentUsage::OffSession)
            .metadata(metadata(&[("wallet_id", wallet_id)]))
            .send(&self.client)
            .await?;
        if matches!(si.status, SetupIntentStatus::Canceled) {
            return Err(PaymentsError::Unavailable(
                "new setup intent is canceled".into(),
            ));
        }
        Ok((si.id.as_str().to_string(), si.client_secret))
    }

    async fn create_top_up_intent(
        &self,
        customer: &str,
        usd_cents: u64,
        wallet_id: &str,
        top_up_id: &str,
    ) -> Result<Intent, PaymentsError> {
        let pi = CreatePaymentIntent::new(cents(usd_cents)?, Currency::USD)
            .customer(customer.to_string())
            .metadata(metadata(&[
                ("wallet_id", wallet_id),
                ("top_up_id", top_up_id),
                ("origin", "manual"),
            ]))
            .customize()
            .request_strategy(idempotent(&format!("top-up-{top_up_id}"))?)
            .send(&self.client)
            .await?;
        Ok(intent(pi))
    }

    async fn create_auto_top_up_intent(
        &self,
        customer: &str,
        payment_method: &str,
        usd_cents: u64,
        wallet_id: &str,
        top_up_id: &str,
    ) -> Result<Intent, PaymentsError> {
        let pi = CreatePaymentIntent::new(cents(usd_cents)?, Currency::USD)
            .customer(customer.to_string())
            .payment_method(payment_method.to_string())
            .metadata(metadata(&[
                ("wallet_id", wallet_id),
                ("top_up_id", top_up_id),
                ("origin", "auto"),
            ]))
            .customize()
            .request_strategy(idempotent(&format!("top-up-{top_up_id}"))?)
            .send(&self.client)
            .await?;
        Ok(intent(pi))
    }

    async fn confirm_off_session(&self, intent_id: &str) -> Result<Intent, PaymentsError> {
        let pi = ConfirmPaymentIntent::new(intent_id.to_string())
            .off_session(ConfirmPaymentIntentOffSession::Bool(true))
            .customize()
            .request_strategy(idempotent(&format!("confirm-{intent_id}"))?)
            .send(&self.client)
            .await?;
        Ok(intent(pi))
    }

    async fn receipt_url(&self, charge_id: &str) -> Result<Option<String>, PaymentsError> {
        let charge = RetrieveCharge::new(charge_id.to_string())
            .send(&self.client)
            .await?;
        Ok(charge.receipt_url)
    }

    async fn payment_intent_metadata(
        &self,
        intent_id: &str,
    ) -> Result<HashMap<String, String>, PaymentsError> {
        let pi = RetrievePaymentIntent::new(intent_id.to_string())
            .send(&self.client)
            .await?;
        Ok(pi.metadata)
    }

    async fn customer_metadata(
        &self,
        customer_id: &str,
    ) -> Result<HashMap<String, String>, PaymentsError> {
        let customer = RetrieveCustomer::new(customer_id.to_string())
            .send(&self.client)
            .await?;
        Ok(match customer {
            RetrieveCustomerReturned::Customer(c) => c.metadata.unwrap_or_default(),
            RetrieveCustomerReturned::DeletedCustomer(_) => HashMap::new(),
        })
    }

    async fn card(&self, payment_method: &str) -> Result<Option<Card>, PaymentsError> {
        let pm = RetrievePaymentMethod::new(payment_method.to_string())
            .send(&self.client)
            .await?;
        Ok(card(pm))
    }

    async fn detach(&self, payment_method: &str) -> Result<(), PaymentsError> {
        DetachPaymentMethod::new(payment_method.to_string())
            .send(&self.client)
            .await?;
        Ok(())
    }

    async fn monthly_price(&self, usd_cents: u64) -> Result<String, PaymentsError> {
        let lookup_key = monthly_price_lookup_key(usd_cents);
        let found = ListPrice::new()
            .lookup_keys(vec![lookup_key.clone()])
            .active(true)
            .limit(1)
            .send(&self.client)
            .await?;
        if let Some(price) = found.data.into_iter().next() {
            return Ok(price.id.as_str().to_string());
        }
        self.recurring_top_up_product().await?;
        let price = CreatePrice::new(Currency::USD)
            .unit_amount(cents(usd_cents)?)
            .recurring(CreatePriceRecurring::new(
                CreatePriceRecurringInterval::Month,
            ))
            .product(RECURRING_TOP_UP_PRODUCT.to_string())
            .lookup_key(lookup_key.clone())
            .nickname(format!(
                "${}.{:02} a month",
                usd_cents / 100,
                usd_cents % 100
            ))
            .customize()
            .request_strategy(idempotent(&format!("price-{lookup_key}"))?)
            .send(&self.client)
            .await?;
        Ok(price.id.as_str().to_string())
    }

    async fn create_subscription(
        &self,
        customer: &str,
        payment_method: &str,
        price: &str,
        wallet_id: &str,
        key: &str,
    ) -> Result<SubscriptionInfo, PaymentsError> {
        let mut item = CreateSubscriptionItems::new();
        item.price = Some(price.to_string());
        let sub = CreateSubscription::new()
            .customer(customer.to_string())
            .items(vec![item])
            .default_payment_method(payment_method.to_string())
            .off_session(true)
            .payment_behavior(CreateSubscriptionPaymentBehavior::ErrorIfIncomplete)
            .metadata(metadata(&[
                ("wallet_id", wallet_id),
                ("origin", "subscription"),
            ]))
            .customize()
            .request_strategy(idempotent(&format!("subscription-{key}"))?)
            .send(&self.client)
            .await?;
        Ok(subscription(sub))
    }

    async fn cancel_subscription_at_period_end(
        &self,
        subscription_id: &str,
    ) -> Result<SubscriptionInfo, PaymentsError> {
        let sub = UpdateSubscription::new(subscription_id.to_string())
            .cancel_at_period_end(true)
            .customize()
            .request_strategy(idempotent(&format!(
                "cancel-at-period-end-{subscription_id}"
            ))?)
            .send(&self.client)
            .await?;
        Ok(subscription(sub))
    }

    async fn cancel_subscription_now(
        &self,
        subscription_id: &str,
    ) -> Result<SubscriptionInfo, PaymentsError> {
        let sub = CancelSubscription::new(subscription_id.to_string())
            .send(&self.client)
            .await?;
        Ok(subscription(sub))
    }
}

impl Payments {
    /// The recurring top-up Product, created on first need under its fixed
    /// id; a concurrent creator that lost the race finds it already there.
    async fn recurring_top_up_product(&self) -> Result<(), PaymentsError> {
        match RetrieveProduct::new(RECURRING_TOP_UP_PRODUCT)
            .send(&self.client)
            .await
            .map_err(PaymentsError::from)
        {
            Ok(_) => return Ok(()),
            Err(PaymentsError::Refused { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
        let created = CreateProduct::new("Recurring TFT top-up")
            .id(RECURRING_TOP_UP_PRODUCT.to_string())
            .description("TFT credited to a marketplace wallet every month")
            .customize()
            .request_strategy(idempotent(&format!("product-{RECURRING_TOP_UP_PRODUCT}"))?)
            .send(&self.client)
            .await;
        match created.map_err(PaymentsError::from) {
            Ok(_) => Ok(()),
            Err(PaymentsError::Refused { code, .. }) if code == "resource_already_exists" => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn cents(usd_cents: u64) -> Result<i64, PaymentsError> {
    i64::try_from(usd_cents).map_err(|_| PaymentsError::Unavailable("amount out of range".into()))
}
