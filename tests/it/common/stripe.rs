//! Stripe for tests: localstripe (PyPI) on 127.0.0.1, installed on first
//! use into a venv under `$HOME/.cache/marketplace-localstripe` when it is
//! not on PATH, one server per test app (killed when the app drops), and a
//! small test-side wrapper in front of it that brings localstripe to the
//! real API's documented shape:
//!
//! - responses get the fields the real API always returns and localstripe
//!   omits (a PaymentIntent's `amount_capturable`, `amount_received`,
//!   `confirmation_method`, `payment_method_types`, `latest_charge` as an
//!   id; a Charge's `amount_captured`, `billing_details`, `disputed`,
//!   `receipt_url`; an event's `pending_webhooks`, `api_version`, `request`);
//! - `Idempotency-Key` is honoured (localstripe ignores it);
//! - `off_session` on a confirm is accepted (localstripe refuses the parameter);
//! - the events localstripe never sends are sent when their cause happens
//!   through the wrapper (`setup_intent.succeeded` on a confirmed setup
//!   intent, which is also attached to its customer as Stripe does;
//!   `charge.refunded` on a refund; `payment_method.detached` on a detach),
//!   and `charge.dispute.created` on demand (localstripe has no disputes);
//! - every webhook is re-signed with the test endpoint secret and delivered
//!   to the app, or held for a test to deliver in its own order;
//! - reading a charge can be made to fail (503, as an outage would answer),
//!   for tests of what waits on a receipt;
//! - subscriptions on today's API: localstripe knows Plans, not Prices, so
//!   the wrapper keeps the Prices itself (each backed by a localstripe Plan
//!   of the same id, found by `lookup_keys` as the real API finds them),
//!   passes `items[][price]` on as the plan, and charges a subscription's
//!   `default_payment_method` by making it the customer's invoice default
//!   (localstripe charges only that); subscription objects get what the
//!   real API always returns (`automatic_tax`, `billing_mode`,
//!   `invoice_settings`, each item's `price` and current period, ...), and
//!   products theirs (`images`, `marketing_features`, `updated`);
//! - `invoice.paid` is sent beside localstripe's `invoice.payment_succeeded`
//!   (the real API sends both), `customer.subscription.updated` when a
//!   subscription is updated through the wrapper, and for an invoice whose
//!   charge was declined `invoice.payment_failed` and the subscription
//!   `past_due` (localstripe sends none of these);
//! - a subscription whose first invoice is declined under
//!   `payment_behavior=error_if_incomplete` is refused with the card error
//!   (402), as Stripe refuses it (localstripe leaves it `incomplete`);
//! - localstripe never renews a subscription: [`LocalStripe::renew`] makes
//!   and pays the next period's invoice as Stripe's billing cycle would, on
//!   the subscription's card or, for a declined renewal, another.
//!
//! The marketplace's own parsing stays strict: it sees what the real API sends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

#[path = "stripe_browser.rs"]
mod browser;

/// The localstripe release the tests are pinned to.
pub const LOCALSTRIPE_VERSION: &str = "1.15.10";
/// Any key works with localstripe; this one looks like a test key.
pub const SECRET_KEY: &str = "sk_test_marketplace";

/// The `localstripe` executable: on PATH, or installed into the cache venv.
pub fn localstripe_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(path) = std::env::var("LOCALSTRIPE_BIN") {
            return PathBuf::from(path);
        }
        let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
        let venv = PathBuf::from(home).join(".cache/marketplace-localstripe");
        let bin = venv.join("bin/localstripe");
        if bin.exists() {
            return bin;
        }
        if let Ok(out) = std::process::Command::new("sh")
            .args(["-c", "command -v localstripe"])
            .output()
        {
            let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !found.is_empty() {
                return PathBuf::from(found);
            }
        }
        // Install once; a lock directory keeps concurrent test binaries from
        // installing over each other.
        let lock = venv.with_extension("lock");
        let _ = std::fs::create_dir_all(venv.parent().expect("cache dir"));
        let started = Instant::now();
        while std::fs::create_dir(&lock).is_err() {
            if bin.exists() {
                return bin;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "waited 10 minutes for another localstripe install ({})",
                lock.display()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        let install = format!(
            "python3 -m venv '{v}' && '{v}/bin/pip' install --quiet 'localstripe=={LOCALSTRIPE_VERSION}'",
            v = venv.display()
        );
        let status = std::process::Command::new("sh").args(["-c", &install]).status();
        let _ = std::fs::remove_dir(&lock);
        assert!(
            status.is_ok_and(|s| s.success()) && bin.exists(),
            "could not install localstripe {LOCALSTRIPE_VERSION} into {} (needs python3 with venv and PyPI)",
            venv.display()
        );
        bin
    })
    .clone()
}

type Hmac256 = Hmac<Sha256>;

/// Signs a payload as Stripe does: `t=<unix>,v1=<hex HMAC-SHA256("{t}.{body}")>`.
pub fn sign(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac256::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Default)]
struct Shared {
    /// Answers by Idempotency-Key.
    idempotent: HashMap<String, (u16, Bytes)>,
    /// Events held instead of delivered.
    held: Vec<Value>,
    hold: bool,
    /// Every event delivered or held, by id.
    events: Vec<Value>,
    /// Answer `GET /v1/charges/{id}` with a 503.
    fail_charge_reads: bool,
    /// The Prices the wrapper keeps (localstripe has Plans only), oldest first.
    prices: Vec<Value>,
    /// Each subscription's `default_payment_method`, by subscription.
    subscription_cards: HashMap<String, String>,
}

struct Inner {
    upstream: String,
    webhook_url: String,
    webhook_secret: String,
    http: reqwest::Client,
    shared: Mutex<Shared>,
}

/// A localstripe server with its wrapper, for one test app.
pub struct LocalStripe {
    /// The wrapper's base URL: what `STRIPE_API_BASE` points at.
    pub base: String,
    inner: Arc<Inner>,
    _child: Child,
    cancel: CancellationToken,
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl LocalStripe {
    /// Starts localstripe and the wrapper; webhooks go to `webhook_url`
    /// signed with `webhook_secret`.
    pub async fn start(webhook_url: String, webhook_secret: &str) -> LocalStripe {
        let bin = localstripe_bin();
        let port = free_port().await;
        let mut command = Command::new(&bin);
        command
            .args(["--port", &port.to_string(), "--from-scratch"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // Also killed if this process dies without dropping it (a killed
        // test binary): the kernel signals it when its parent thread exits.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().expect("start localstripe");
        let upstream = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let up = http
                .get(format!("{upstream}/v1/customers"))
                .basic_auth(SECRET_KEY, Some(""))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "localstripe did not start on {upstream}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let inner = Arc::new(Inner {
            upstream: upstream.clone(),
            webhook_url,
            webhook_secret: webhook_secret.to_string(),
            http: http.clone(),
            shared: Mutex::new(Shared::default()),
        });
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind wrapper");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let cancel = CancellationToken::new();
        let app = Router::new()
            .route("/_hook", post(hook))
            .fallback(any(forward))
            .with_state(inner.clone());
        let served = cancel.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(served.cancelled_owned())
                .await;
        });
        // localstripe sends its own webhooks to the wrapper, which completes
        // and re-signs them.
        let r = http
            .post(format!("{upstream}/_config/webhooks/marketplace"))
            .basic_auth(SECRET_KEY, Some(""))
            .form(&[
                ("url", format!("{base}/_hook")),
                ("secret", "whsec_localstripe".into()),
            ])
            .send()
            .await
            .expect("configure localstripe webhooks");
        assert!(
            r.status().is_success(),
            "localstripe webhook config refused"
        );
        LocalStripe {
            base,
            inner,
            _child: child,
            cancel,
        }
    }

    /// Holds webhooks instead of delivering them (to deliver them in another order).
    pub fn hold(&self, hold: bool) {
        self.inner.shared.lock().expect("lock").hold = hold;
    }

    /// Makes `GET /v1/charges/{id}` answer 503 (Stripe unreachable for
    /// receipts) until called again with `false`.
    pub fn fail_charge_reads(&self, fail: bool) {
        self.inner.shared.lock().expect("lock").fail_charge_reads = fail;
    }

    /// The held events, taken.
    pub fn take_held(&self) -> Vec<Value> {
        std::mem::take(&mut self.inner.shared.lock().expect("lock").held)
    }

    /// Waits until `n` held events of `kind` are there (webhooks are async).
    pub async fn wait_held(&self, kind: &str, n: usize) {
        let started = Instant::now();
        loop {
            let count = self
                .inner
                .shared
                .lock()
                .expect("lock")
                .held
                .iter()
                .filter(|e| e["type"] == kind)
                .count();
            if count >= n {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no {kind} event after 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every event seen so far (delivered or held), oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.inner.shared.lock().expect("lock").events.clone()
    }

    /// Signs `event` now and posts it to the app's webhook endpoint.
    pub async fn deliver(&self, event: &Value) -> reqwest::Response {
        deliver(&self.inner, event).await
    }

    /// A form POST through the wrapper, as a browser's Stripe.js (or the
    /// dashboard) would make it; the JSON answer.
    pub async fn call(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Value {
        let r = self
            .inner
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(SECRET_KEY, Some(""))
            .form(form)
            .send()
            .await
            .expect("stripe call");
        r.json().await.expect("stripe json")
    }

    /// A card payment method for a test card number.
    pub async fn card(&self, number: &str) -> String {
        let pm = self
            .call(
                Method::POST,
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", number),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2030"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        pm["id"].as_str().expect("pm id").to_string()
    }

    /// What Stripe.js does when the user pays a payment intent with a card.
    pub async fn pay(&self, payment_intent: &str, card_number: &str) -> Value {
        let pm = self.card(card_number).await;
        self.call(
            Method::POST,
            &format!("/v1/payment_intents/{payment_intent}"),
            &[("payment_method", &pm)],
        )
        .await;
        self.call(
            Method::POST,
            &format!("/v1/payment_intents/{payment_intent}/confirm"),
            &[],
        )
        .await
    }

    /// What Stripe.js does when the user saves a card on a setup intent.
    pub async fn save_card(&self, setup_intent: &str, card_number: &str) -> String {
        let pm = self.card(card_number).await;
        let mut si = self
            .call(
                Method::POST,
                &format!("/v1/setup_intents/{setup_intent}/confirm"),
                &[("payment_method", &pm)],
            )
            .await;
        if si["status"] == "requires_action" {
            // The cardholder passes 3-D Secure in the browser. localstripe
            // cannot authenticate setup intents: do what Stripe does once
            // they have (attach the card, report the setup intent succeeded).
            si["status"] = json!("succeeded");
            si["next_action"] = Value::Null;
            setup_succeeded(&self.inner, &si).await;
        }
        assert_eq!(si["status"], "succeeded", "setup intent: {si}");
        pm
    }

    /// The next period of a subscription, as Stripe's billing cycle runs it:
    /// an invoice for the subscription's items is made and charged to the
    /// subscription's card, or to a card of `card_number` attached for this
    /// renewal (say a card that declines, 4000000000000341). The invoice as
    /// localstripe answers it (`open`, with its failed charge, when the
    /// charge was declined; `invoice.payment_failed` is sent then).
    pub async fn renew(&self, subscription_id: &str, card_number: Option<&str>) -> Value {
        let sub = self
            .call(
                Method::GET,
                &format!("/v1/subscriptions/{subscription_id}"),
                &[],
            )
            .await;
        let customer = sub["customer"]
            .as_str()
            .expect("subscription's customer")
            .to_string();
        let card = match card_number {
            Some(number) => {
                let pm = self.card(number).await;
                self.call(
                    Method::POST,
                    &format!("/v1/payment_methods/{pm}/attach"),
                    &[("customer", &customer)],
                )
                .await;
                Some(pm)
            }
            None => self
                .inner
                .shared
                .lock()
                .expect("lock")
                .subscription_cards
                .get(subscription_id)
                .cloned(),
        };
        if let Some(pm) = card {
            set_invoice_card(&self.inner, &customer, &pm).await;
        }
        let invoice = self
            .call(
                Method::POST,
                "/v1/invoices",
                &[("customer", &customer), ("subscription", subscription_id)],
            )
            .await;
        let id = invoice["id"].as_str().expect("renewal invoice").to_string();
        self.call(Method::POST, &format!("/v1/invoices/{id}/pay"), &[])
            .await
    }

    /// A cardholder disputes `amount` cents of a charge: the event Stripe
    /// sends (localstripe has no disputes), built from the real charge.
    pub async fn dispute(&self, charge_id: &str, amount: u64) -> Value {
        let charge = self
            .call(Method::GET, &format!("/v1/charges/{charge_id}"), &[])
            .await;
        let now = chrono::Utc::now().timestamp();
        let dispute = json!({
            "id": format!("dp_{}", uuid::Uuid::new_v4().simple()),
            "object": "dispute",
            "amount": amount,
            "balance_transactions": [],
            "charge": charge_id,
            "created": now,
            "currency": charge["currency"],
            "evidence": {},
            "evidence_details": { "due_by": now + 7 * 86_400, "has_evidence": false, "past_due": false, "submission_count": 0 },
            "is_charge_refundable": false,
            "livemode": false,
            "metadata": {},
            "payment_intent": charge["payment_intent"],
            "reason": "fraudulent",
            "status": "needs_response"
        });
        let event = event("charge.dispute.created", dispute);
        emit(&self.inner, event.clone()).await;
        event
    }
}

fn event(kind: &str, object: Value) -> Value {
    json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "api_version": "2024-06-20",
        "created": chrono::Utc::now().timestamp(),
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind
    })
}

async fn deliver(inner: &Inner, event: &Value) -> reqwest::Response {
    let body = event.to_string();
    let t = chrono::Utc::now().timestamp();
    inner
        .http
        .post(&inner.webhook_url)
        .header("stripe-signature", sign(&inner.webhook_secret, t, &body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("deliver webhook")
}

/// Records an event and delivers it, or holds it.
async fn emit(inner: &Inner, event: Value) {
    let hold = {
        let mut shared = inner.shared.lock().expect("lock");
        shared.events.push(event.clone());
        if shared.hold {
            shared.held.push(event.clone());
        }
        shared.hold
    };
    if !hold {
        let r = deliver(inner, &event).await;
        assert!(r.status().is_success(), "webhook refused: {}", r.status());
    }
}

/// localstripe's own webhooks: completed to the real shape and re-signed.
async fn hook(State(inner): State<Arc<Inner>>, body: Bytes) -> StatusCode {
    let Ok(mut event) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    fill(&mut event);
    if let Some(obj) = event.get_mut("data").and_then(|d| d.get_mut("object")) {
        fill(obj);
    }
    // Stripe sends `invoice.paid` beside `invoice.payment_succeeded`.
    let paid = (event["type"] == "invoice.payment_succeeded")
        .then(|| self::event("invoice.paid", event["data"]["object"].clone()));
    let inner2 = inner.clone();
    tokio::spawn(async move {
        emit(&inner2, event).await;
        if let Some(paid) = paid {
            emit(&inner2, paid).await;
        }
    });
    StatusCode::OK
}

/// Fills the fields the real API always returns, by object type, recursively.
fn fill(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(fill),
        Value::Object(map) => {
            for v in map.values_mut() {
                fill(v);
            }
            let kind = map
                .get("object")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let set = |map: &mut serde_json::Map<String, Value>, k: &str, v: Value| {
                map.entry(k.to_string()).or_insert(v);
            };
            match kind.as_str() {
                "event" => {
                    set(map, "api_version", json!("2024-06-20"));
                    set(map, "pending_webhooks", json!(1));
                    set(
                        map,
                        "request",
                        json!({ "id": null, "idempotency_key": null }),
                    );
                    set(map, "livemode", json!(false));
                }
                "payment_intent" => {
                    let amount = map.get("amount").cloned().unwrap_or(json!(0));
                    let status = map
                        .get("status")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    set(
                        map,
                        "amount_capturable",
                        if status == "requires_capture" {
                            amount.clone()
                        } else {
                            json!(0)
                        },
                    );
                    set(
                        map,
                        "amount_received",
                        if status == "succeeded" {
                            amount
                        } else {
                            json!(0)
                        },
                    );
                    set(map, "confirmation_method", json!("automatic"));
                    set(map, "payment_method_types", json!(["card"]));
                    // The real API sends the latest charge's id unless expanded.
                    if let Some(id) = map.get("latest_charge").and_then(|c| c.get("id")).cloned() {
                        map.insert("latest_charge".into(), id);
                    }
                    map.remove("charges");
                }
                "charge" => {
                    let captured = map
                        .get("captured")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let amount = map.get("amount").cloned().unwrap_or(json!(0));
                    let id = map
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    set(
                        map,
                        "amount_captured",
                        if captured { amount } else { json!(0) },
                    );
                    set(
                        map,
                        "billing_details",
                        json!({ "address": null, "email": null, "name": null, "phone": null }),
                    );
                    set(map, "disputed", json!(false));
                    set(
                        map,
                        "receipt_url",
                        json!(format!("https://localstripe.invalid/receipts/{id}")),
                    );
                    map.remove("refunds");
                }
                "payment_method" => {
                    set(
                        map,
                        "billing_details",
                        json!({ "address": null, "email": null, "name": null, "phone": null }),
                    );
                }
                "product" => {
                    let created = map.get("created").cloned().unwrap_or(json!(0));
                    set(map, "images", json!([]));
                    set(map, "marketing_features", json!([]));
                    set(map, "updated", created);
                }
                "subscription_item" => {
                    set(map, "discounts", json!([]));
                    if let Some(plan) = map.get("plan").cloned() {
                        set(map, "price", price_of_plan(&plan, Value::Null));
                    }
                }
                "subscription" => {
                    let id = map.get("id").cloned().unwrap_or(Value::Null);
                    let start = map.get("start_date").cloned().unwrap_or(json!(0));
                    let period_start = map
                        .get("current_period_start")
                        .cloned()
                        .unwrap_or(start.clone());
                    let period_end = map
                        .get("current_period_end")
                        .cloned()
                        .unwrap_or(Value::Null);
                    let currency = map
                        .get("plan")
                        .and_then(|p| p.get("currency"))
                        .cloned()
                        .unwrap_or(json!("usd"));
                    set(
                        map,
                        "automatic_tax",
                        json!({ "enabled": false, "disabled_reason": null, "liability": null }),
                    );
                    if map.get("billing_cycle_anchor").is_none_or(Value::is_null) {
                        map.insert("billing_cycle_anchor".into(), start);
                    }
                    set(
                        map,
                        "billing_mode",
                        json!({ "type": "classic", "flexible": null, "updated_at": null }),
                    );
                    set(map, "billing_schedules", json!([]));
                    set(map, "collection_method", json!("charge_automatically"));
                    set(map, "currency", currency);
                    set(map, "discounts", json!([]));
                    set(
                        map,
                        "invoice_settings",
                        json!({ "account_tax_ids": null, "issuer": { "type": "self" } }),
                    );
                    // The period is each item's on today's API.
                    if let Some(items) = map
                        .get_mut("items")
                        .and_then(|i| i.get_mut("data"))
                        .and_then(Value::as_array_mut)
                    {
                        for item in items.iter_mut().filter_map(Value::as_object_mut) {
                            item.entry("current_period_start")
                                .or_insert(period_start.clone());
                            item.entry("current_period_end")
                                .or_insert(period_end.clone());
                            item.entry("subscription").or_insert(id.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

fn form_value(body: &[u8], key: &str) -> Option<String> {
    url_decode_pairs(body)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn url_decode_pairs(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode_pairs(pairs: &[(String, String)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Forwards an API call to localstripe and completes its answer.
async fn forward(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let method = request.method().clone();
    let path_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let path = request.uri().path().to_string();
    let headers: HeaderMap = request.headers().clone();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    if let Some(answer) = browser::intercept(&inner, &method, &path, &headers, &body).await {
        return answer;
    }
    if method == Method::GET
        && path.starts_with("/v1/charges/")
        && inner.shared.lock().expect("lock").fail_charge_reads
    {
        let error = json!({ "error": {
            "type": "api_error", "message": "The service is temporarily unavailable (test outage)."
        } });
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "application/json")],
            error.to_string(),
        )
            .into_response();
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("{method} {path}\n{k}"));
    if let Some(key) = &key {
        if let Some((status, body)) = inner
            .shared
            .lock()
            .expect("lock")
            .idempotent
            .get(key)
            .cloned()
        {
            return (
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                [("content-type", "application/json")],
                body,
            )
                .into_response();
        }
    }
    if let Some((status, value)) = prices(&inner, &method, &path, &path_query, &body).await {
        let out = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        if let Some(key) = key {
            inner
                .shared
                .lock()
                .expect("lock")
                .idempotent
                .insert(key, (status, out.clone()));
        }
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            [("content-type", "application/json")],
            out,
        )
            .into_response();
    }
    let mut body = body.to_vec();
    let mut subscription_card = None;
    let mut error_if_incomplete = false;
    if method == Method::POST && path == "/v1/subscriptions" {
        // localstripe takes plans, not prices (a Price here is a Plan of
        // the same id), and charges the customer's invoice default only.
        let mut pairs = Vec::new();
        let mut customer = None;
        for (k, v) in url_decode_pairs(&body) {
            match k.as_str() {
                "default_payment_method" => subscription_card = Some(v),
                "off_session" => {}
                "payment_behavior" => {
                    error_if_incomplete = v == "error_if_incomplete";
                    pairs.push((k, v));
                }
                "customer" => {
                    customer = Some(v.clone());
                    pairs.push((k, v));
                }
                _ if k.starts_with("items[") && k.ends_with("[price]") => {
                    pairs.push((k.replace("[price]", "[plan]"), v));
                }
                _ => pairs.push((k, v)),
            }
        }
        if let (Some(customer), Some(pm)) = (&customer, &subscription_card) {
            set_invoice_card(&inner, customer, pm).await;
        }
        body = encode_pairs(&pairs).into_bytes();
    }
    let confirm_pi = method == Method::POST
        && path.starts_with("/v1/payment_intents/")
        && path.ends_with("/confirm");
    if confirm_pi {
        // localstripe refuses `off_session`; the real API takes it.
        let pairs: Vec<_> = url_decode_pairs(&body)
            .into_iter()
            .filter(|(k, _)| k != "off_session")
            .collect();
        body = encode_pairs(&pairs).into_bytes();
    }
    let mut upstream = inner
        .http
        .request(method.clone(), format!("{}{path_query}", inner.upstream))
        .body(body.clone());
    for name in ["authorization", "content-type"] {
        if let Some(v) = headers.get(name) {
            upstream = upstream.header(name, v);
        }
    }
    let answer = match upstream.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut status = answer.status().as_u16();
    let bytes = answer.bytes().await.unwrap_or_default();
    let mut value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if error_if_incomplete && status < 300 && value["status"] == "incomplete" {
        // Stripe refuses a subscription whose first invoice cannot be paid
        // under `error_if_incomplete` (localstripe leaves it incomplete).
        let invoice = upstream_get(
            &inner,
            &format!(
                "/v1/invoices/{}",
                value["latest_invoice"].as_str().unwrap_or_default()
            ),
        )
        .await;
        let charge = &invoice["charge"];
        status = 402;
        value = json!({ "error": {
            "type": "card_error",
            "code": charge["failure_code"].as_str().unwrap_or("card_declined"),
            "message": charge["failure_message"].as_str().unwrap_or("Your card was declined."),
            "charge": charge["id"]
        } });
    }
    if status < 300 {
        fill(&mut value);
        if let (Some(pm), Some(sub)) = (subscription_card, value["id"].as_str()) {
            inner
                .shared
                .lock()
                .expect("lock")
                .subscription_cards
                .insert(sub.to_string(), pm);
        }
        after(&inner, &method, &path, &body, &value).await;
    }
    let out = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
    if let Some(key) = key {
        inner
            .shared
            .lock()
            .expect("lock")
            .idempotent
            .insert(key, (status, out.clone()));
    }
    let answer = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        [("content-type", "application/json")],
        out,
    )
        .into_response();
    browser::allow_origin(&headers, answer)
}

/// A setup intent succeeded: Stripe attaches the card to the setup
/// intent's customer and sends `setup_intent.succeeded`.
async fn setup_succeeded(inner: &Arc<Inner>, si: &Value) {
    if let (Some(pm), Some(cus)) = (si["payment_method"].as_str(), si["customer"].as_str()) {
        let _ = inner
            .http
            .post(format!("{}/v1/payment_methods/{pm}/attach", inner.upstream))
            .basic_auth(SECRET_KEY, Some(""))
            .form(&[("customer", cus)])
            .send()
            .await;
    }
    let inner = inner.clone();
    let event = event("setup_intent.succeeded", si.clone());
    tokio::spawn(async move { emit(&inner, event).await });
}

/// The events the real API sends for what just happened, where localstripe sends none.
async fn after(inner: &Arc<Inner>, method: &Method, path: &str, body: &[u8], answer: &Value) {
    if *method != Method::POST {
        return;
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["v1", "setup_intents", _, "confirm"] if answer["status"] == "succeeded" => {
            // Stripe attaches the saved card to the setup intent's customer.
            if let (Some(pm), Some(cus)) = (
                answer["payment_method"].as_str(),
                answer["customer"].as_str(),
            ) {
                let _ = inner
                    .http
                    .post(format!("{}/v1/payment_methods/{pm}/attach", inner.upstream))
                    .basic_auth(SECRET_KEY, Some(""))
                    .form(&[("customer", cus)])
                    .send()
                    .await;
            }
            let inner = inner.clone();
            let event = event("setup_intent.succeeded", answer.clone());
            tokio::spawn(async move { emit(&inner, event).await });
        }
        ["v1", "refunds"] => {
            let charge = form_value(body, "charge")
                .or_else(|| answer["charge"].as_str().map(str::to_string));
            if let Some(charge) = charge {
                let mut c: Value = match inner
                    .http
                    .get(format!("{}/v1/charges/{charge}", inner.upstream))
                    .basic_auth(SECRET_KEY, Some(""))
                    .send()
                    .await
                {
                    Ok(r) => r.json().await.unwrap_or(Value::Null),
                    Err(_) => return,
                };
                fill(&mut c);
                let inner = inner.clone();
                let event = event("charge.refunded", c);
                tokio::spawn(async move { emit(&inner, event).await });
            }
        }
        ["v1", "invoices", _, "pay"]
            if answer["status"] == "open" && answer["charge"]["status"] == "failed" =>
        {
            // localstripe reports a renewal's declined charge only in its
            // answer: Stripe sends `invoice.payment_failed` and marks the
            // subscription past due.
            let inner = inner.clone();
            let failed = event("invoice.payment_failed", answer.clone());
            let sub = answer["subscription"].as_str().map(str::to_string);
            tokio::spawn(async move {
                emit(&inner, failed).await;
                if let Some(sub) = sub {
                    let mut s = upstream_get(&inner, &format!("/v1/subscriptions/{sub}")).await;
                    fill(&mut s);
                    s["status"] = json!("past_due");
                    emit(&inner, event("customer.subscription.updated", s)).await;
                }
            });
        }
        ["v1", "subscriptions", _] => {
            // localstripe updates a subscription without telling.
            let inner = inner.clone();
            let event = event("customer.subscription.updated", answer.clone());
            tokio::spawn(async move { emit(&inner, event).await });
        }
        ["v1", "payment_methods", _, "detach"] => {
            let inner = inner.clone();
            let event = event("payment_method.detached", answer.clone());
            tokio::spawn(async move { emit(&inner, event).await });
        }
        _ => {}
    }
}

/// Makes `pm` the card localstripe charges the customer's invoices to.
async fn set_invoice_card(inner: &Inner, customer: &str, pm: &str) {
    let r = inner
        .http
        .post(format!("{}/v1/customers/{customer}", inner.upstream))
        .basic_auth(SECRET_KEY, Some(""))
        .form(&[("invoice_settings[default_payment_method]", pm)])
        .send()
        .await
        .expect("set the customer's invoice card");
    assert!(
        r.status().is_success(),
        "localstripe refused the invoice card"
    );
}

/// A Price as the real API returns it, for a localstripe Plan of its id.
fn price_of_plan(plan: &Value, lookup_key: Value) -> Value {
    json!({
        "id": plan["id"],
        "object": "price",
        "active": plan.get("active").cloned().unwrap_or(json!(true)),
        "billing_scheme": "per_unit",
        "created": plan["created"],
        "currency": plan["currency"],
        "custom_unit_amount": null,
        "livemode": false,
        "lookup_key": lookup_key,
        "metadata": {},
        "nickname": plan.get("nickname").cloned().unwrap_or(Value::Null),
        "product": plan["product"],
        "recurring": {
            "interval": plan["interval"],
            "interval_count": plan.get("interval_count").cloned().unwrap_or(json!(1)),
            "meter": null,
            "trial_period_days": null,
            "usage_type": "licensed"
        },
        "tax_behavior": "unspecified",
        "tiers_mode": null,
        "transform_quantity": null,
        "type": "recurring",
        "unit_amount": plan["amount"]
    })
}

fn stripe_error(status: u16, code: &str, message: &str) -> (u16, Value) {
    (
        status,
        json!({ "error": { "type": "invalid_request_error", "code": code, "message": message } }),
    )
}

/// The Prices API, which localstripe lacks: `POST /v1/prices` makes a Plan
/// of the new Price's id; `GET /v1/prices` (by `lookup_keys`, `active`) and
/// `GET /v1/prices/{id}` answer from the Prices kept. `None` for any other call.
async fn prices(
    inner: &Inner,
    method: &Method,
    path: &str,
    path_query: &str,
    body: &[u8],
) -> Option<(u16, Value)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.clone(), parts.as_slice()) {
        (Method::GET, ["v1", "prices"]) => {
            let query = path_query.split_once('?').map_or("", |(_, q)| q);
            let pairs = url_decode_pairs(query.as_bytes());
            let keys: Vec<&str> = pairs
                .iter()
                .filter(|(k, _)| k.starts_with("lookup_keys"))
                .map(|(_, v)| v.as_str())
                .collect();
            let active = pairs
                .iter()
                .find(|(k, _)| k == "active")
                .map(|(_, v)| v == "true");
            let shared = inner.shared.lock().expect("lock");
            let data: Vec<Value> = shared
                .prices
                .iter()
                .rev()
                .filter(|p| {
                    keys.is_empty() || p["lookup_key"].as_str().is_some_and(|k| keys.contains(&k))
                })
                .filter(|p| active.is_none_or(|a| p["active"] == a))
                .cloned()
                .collect();
            Some((
                200,
                json!({ "object": "list", "data": data, "has_more": false, "url": "/v1/prices" }),
            ))
        }
        (Method::GET, ["v1", "prices", id]) => {
            let shared = inner.shared.lock().expect("lock");
            Some(match shared.prices.iter().find(|p| p["id"] == *id) {
                Some(p) => (200, p.clone()),
                None => stripe_error(404, "resource_missing", &format!("No such price: '{id}'")),
            })
        }
        (Method::POST, ["v1", "prices"]) => {
            let form: HashMap<String, String> = url_decode_pairs(body).into_iter().collect();
            let lookup_key = form.get("lookup_key").cloned();
            if let Some(key) = &lookup_key {
                let taken = inner
                    .shared
                    .lock()
                    .expect("lock")
                    .prices
                    .iter()
                    .any(|p| p["lookup_key"] == key.as_str());
                if taken {
                    return Some(stripe_error(
                        400,
                        "lookup_key_exists",
                        &format!("A price with lookup key {key} already exists."),
                    ));
                }
            }
            let id = format!("price_{}", uuid::Uuid::new_v4().simple());
            let mut plan = vec![
                ("id".to_string(), id.clone()),
                (
                    "amount".to_string(),
                    form.get("unit_amount").cloned().unwrap_or_default(),
                ),
                (
                    "currency".to_string(),
                    form.get("currency").cloned().unwrap_or_default(),
                ),
                (
                    "interval".to_string(),
                    form.get("recurring[interval]").cloned().unwrap_or_default(),
                ),
                (
                    "product".to_string(),
                    form.get("product").cloned().unwrap_or_default(),
                ),
            ];
            if let Some(nickname) = form.get("nickname") {
                plan.push(("nickname".to_string(), nickname.clone()));
            }
            let r = inner
                .http
                .post(format!("{}/v1/plans", inner.upstream))
                .basic_auth(SECRET_KEY, Some(""))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode_pairs(&plan))
                .send()
                .await
                .ok()?;
            let status = r.status().as_u16();
            let answer: Value = r.json().await.unwrap_or(Value::Null);
            if status >= 300 {
                return Some((status, answer));
            }
            let price = price_of_plan(&answer, lookup_key.map_or(Value::Null, Value::from));
            inner
                .shared
                .lock()
                .expect("lock")
                .prices
                .push(price.clone());
            Some((200, price))
        }
        _ => None,
    }
}

/// A GET on localstripe itself, its JSON answer (null when unreadable).
async fn upstream_get(inner: &Inner, path: &str) -> Value {
    match inner
        .http
        .get(format!("{}{path}", inner.upstream))
        .basic_auth(SECRET_KEY, Some(""))
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}
