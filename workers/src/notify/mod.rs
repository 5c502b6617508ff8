//! Notifications delivered: the notification process manager and its
//! delivery workers.
//!
//! - [`manager::NotificationManager`] (the intake, tailing the store in
//!   commit order from its checkpoint) turns domain events into
//!   notifications, once per cause, with the user's preferences applied,
//!   and writes one outbox row per channel in the same transaction;
//!   [`manager::fire_timers`] turns due maintenance reminders into theirs.
//! - The delivery workers drain the outbox ([`outbox`]), each channel on
//!   its own rows: webhooks ([`webhook`]) and email. A failing channel
//!   holds up no other.
//!
//! docs/notifications.md says what is guaranteed across a crash.

pub mod manager;
pub mod outbox;
pub mod render;
pub mod webhook;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use marketplace_projections::tail::{self, TailOptions};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};
use uuid::Uuid;

pub use manager::{NotificationManager, OUTBOX_CHANNEL};
pub use marketplace_app::mail::Mailer;
pub use outbox::RetryPolicy;

use crate::runtime::{self, Round, Schedule};

/// A notification as the delivery workers read it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Notification {
    /// Its id: the cause; the webhook's event id and the email's Message-ID.
    pub id: String,
    /// Whom it is for.
    pub owner: String,
    /// What it is about.
    pub kind: String,
    /// The deployment it is about.
    pub deployment_id: Option<Uuid>,
    /// The details.
    pub payload: serde_json::Value,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The user's time zone (UTC without a profile).
    pub time_zone: String,
}

async fn load(pool: &PgPool, id: &str) -> Result<Option<Notification>, sqlx::Error> {
    sqlx::query_as(
        "SELECT n.id, n.owner, n.kind, n.deployment_id, n.payload, n.at,
                coalesce(u.time_zone, 'UTC') AS time_zone
           FROM notifications n LEFT JOIN users u ON u.user_id = n.owner
          WHERE n.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// How the delivery workers run.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Who holds the leases: unique per process.
    pub holder: String,
    /// Rows leased (and sent concurrently) per round.
    pub batch: i64,
    /// How long a lease lasts: a worker that died mid-send is taken over
    /// after it.
    pub lease: Duration,
    /// How often to look when nothing notifies.
    pub poll: Duration,
    /// Retries of failed deliveries.
    pub retry: RetryPolicy,
    /// A webhook request's timeout.
    pub webhook_timeout: Duration,
    /// How often due maintenance reminders are looked for.
    pub timers_every: Duration,
    /// Fault point for tests: when set, the worker stops after its first
    /// send without recording it, as if killed there.
    pub die_after_send: Option<Arc<AtomicBool>>,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            holder: format!("notify-{}-{}", std::process::id(), Uuid::new_v4()),
            batch: 32,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            webhook_timeout: Duration::from_secs(10),
            timers_every: Duration::from_secs(30),
            die_after_send: None,
        }
    }
}

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The fault point fired.
    #[error("stopped after a send, before recording it (fault point)")]
    Died,
}

fn died(options: &DeliveryOptions) -> bool {
    options
        .die_after_send
        .as_ref()
        .is_some_and(|f| f.load(Ordering::SeqCst))
}

/// One round of webhook deliveries.
pub async fn webhook_round(
    pool: &PgPool,
    sender: &webhook::WebhookSender,
    options: &DeliveryOptions,
) -> Result<Round, DeliveryError> {
    let rows = outbox::lease(
        pool,
        "webhook:%",
        &options.holder,
        options.batch,
        options.lease,
    )
    .await?;
    let full = rows.len() as i64 == options.batch;
    let sends = rows.into_iter().map(|row| {
        let span = tracing::info_span!("webhook_delivery", notification = %row.notification_id, channel = %row.channel, attempt = row.attempts);
        async move { deliver_webhook(pool, sender, options, row).await }.instrument(span)
    });
    for result in futures::future::join_all(sends).await {
        result?;
    }
    Ok(if full { Round::More } else { Round::Idle })
}

async fn deliver_webhook(
    pool: &PgPool,
    sender: &webhook::WebhookSender,
    options: &DeliveryOptions,
    row: outbox::Leased,
) -> Result<(), DeliveryError> {
    let endpoint_id = row
        .channel
        .strip_prefix("webhook:")
        .and_then(|e| Uuid::parse_str(e).ok());
    let endpoint: Option<(String, String)> =
        match endpoint_id {
            Some(id) => sqlx::query_as(
                "SELECT url, secret FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?,
            None => None,
        };
    let notification = load(pool, &row.notification_id).await?;
    let (Some(endpoint_id), Some((url, secret)), Some(n)) = (endpoint_id, endpoint, notification)
    else {
        outbox::settle(
            pool,
            &row,
            &options.holder,
            &outbox::Outcome::Dropped("the endpoint was deleted".into()),
            &options.retry,
        )
        .await?;
        return Ok(());
    };
    let started = std::time::Instant::now();
    let answer = sender.send(&url, &secret, &n).await;
    if died(options) {
        return Err(DeliveryError::Died);
    }
    sqlx::query(
        "INSERT INTO webhook_attempts (notification_id, endpoint_id, attempt, at, status_code, error, duration_ms)
         VALUES ($1, $2, $3, now(), $4, $5, $6)",
    )
    .bind(&row.notification_id)
    .bind(endpoint_id)
    .bind(row.attempts)
    .bind(answer.status.map(i32::from))
    .bind(&answer.error)
    .bind(started.elapsed().as_millis().min(i32::MAX as u128) as i32)
    .execute(pool)
    .await?;
    let outcome = match answer.error {
        None => outbox::Outcome::Sent,
        Some(e) => outbox::Outcome::Failed(e),
    };
    let status = outbox::settle(pool, &row, &options.holder, &outcome, &options.retry).await?;
    match status {
        "sent" => info!("webhook delivered"),
        "failed" => warn!("webhook delivery failed for good"),
        _ => info!(error = ?outcome, "webhook delivery failed; retrying later"),
    }
    Ok(())
}

/// The `Message-ID` an email of notification `id` carries, on every
/// attempt: the id with what a Message-ID may not hold replaced.
pub fn message_id(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    format!("notification.{safe}")
}

/// One round of email deliveries.
pub async fn email_round(
    pool: &PgPool,
    mailer: &dyn Mailer,
    options: &DeliveryOptions,
) -> Result<Round, DeliveryError> {
    let rows = outbox::lease(pool, "email", &options.holder, options.batch, options.lease).await?;
    let full = rows.len() as i64 == options.batch;
    let sends = rows.into_iter().map(|row| {
        let span = tracing::info_span!("email_delivery", notification = %row.notification_id, attempt = row.attempts);
        async move { deliver_email(pool, mailer, options, row).await }.instrument(span)
    });
    for result in futures::future::join_all(sends).await {
        result?;
    }
    Ok(if full { Round::More } else { Round::Idle })
}

async fn deliver_email(
    pool: &PgPool,
    mailer: &dyn Mailer,
    options: &DeliveryOptions,
    row: outbox::Leased,
) -> Result<(), DeliveryError> {
    let address: Option<String> = sqlx::query_scalar(
        "SELECT CASE WHEN contact_email_verified AND contact_email IS NOT NULL
                     THEN contact_email ELSE email END
           FROM users u JOIN notifications n ON n.owner = u.user_id WHERE n.id = $1",
    )
    .bind(&row.notification_id)
    .fetch_optional(pool)
    .await?
    .flatten();
    let notification = load(pool, &row.notification_id).await?;
    let (Some(to), Some(n)) = (address, notification) else {
        outbox::settle(
            pool,
            &row,
            &options.holder,
            &outbox::Outcome::Dropped("the user has no email address".into()),
            &options.retry,
        )
        .await?;
        return Ok(());
    };
    let deployment = n.deployment_id.map(|d| d.to_string());
    let words = render::render(
        &n.kind,
        deployment.as_deref(),
        &n.payload,
        n.at,
        render::zone(&n.time_zone),
    );
    let mail = marketplace_app::mail::Mail {
        to,
        subject: words.subject,
        text: words.text,
        html: Some(words.html),
        message_id: message_id(&n.id),
    };
    let result = mailer.send(&mail).await;
    if died(options) {
        return Err(DeliveryError::Died);
    }
    let outcome = match result {
        Ok(()) => outbox::Outcome::Sent,
        Err(e) if e.is_transient() => outbox::Outcome::Failed(e.to_string()),
        Err(e) => outbox::Outcome::Dropped(e.to_string()),
    };
    let status = outbox::settle(pool, &row, &options.holder, &outcome, &options.retry).await?;
    match status {
        "sent" => info!("email sent"),
        "failed" => warn!(error = ?outcome, "email delivery failed for good"),
        _ => info!(error = ?outcome, "email not sent; retrying later"),
    }
    Ok(())
}

/// Runs the manager's intake, its timers, the webhook delivery worker and,
/// with a mailer, the email worker, until cancelled.
pub fn spawn(
    pool: PgPool,
    options: DeliveryOptions,
    mailer: Option<Arc<dyn Mailer>>,
    cancel: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let intake = tokio::spawn(tail::run(
        pool.clone(),
        NotificationManager,
        TailOptions::default(),
        cancel.clone(),
    ));
    let timers = {
        let (pool, cancel, every) = (pool.clone(), cancel.clone(), options.timers_every);
        tokio::spawn(async move {
            let schedule = Schedule::every("notification-timers", every);
            runtime::run(&pool.clone(), schedule, cancel, || {
                let pool = pool.clone();
                async move {
                    let fired = manager::fire_timers(&pool, 100).await?;
                    Ok::<_, sqlx::Error>(if fired == 100 {
                        Round::More
                    } else {
                        Round::Idle
                    })
                }
            })
            .await;
        })
    };
    let mut tasks = vec![intake, timers];
    match mailer {
        Some(mailer) => tasks.push(spawn_email(
            pool.clone(),
            mailer,
            options.clone(),
            cancel.clone(),
        )),
        None => warn!("no mailer (SMTP_URL unset): notifications are not emailed"),
    }
    match webhook::WebhookSender::new(options.webhook_timeout) {
        Ok(sender) => tasks.push(spawn_webhooks(pool, sender, options, cancel)),
        Err(e) => warn!(error = %e, "cannot build the webhook client; webhooks are not delivered"),
    }
    tasks
}

fn spawn_email(
    pool: PgPool,
    mailer: Arc<dyn Mailer>,
    options: DeliveryOptions,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let schedule = Schedule::on_notify("email-delivery", OUTBOX_CHANNEL, options.poll)
            .backing_off_to(Duration::from_secs(30));
        let cancel = cancel.child_token();
        let stop = cancel.clone();
        runtime::run(&pool.clone(), schedule, cancel, || {
            let (pool, mailer, options, stop) =
                (pool.clone(), mailer.clone(), options.clone(), stop.clone());
            async move {
                match email_round(&pool, &*mailer, &options).await {
                    Err(DeliveryError::Died) => {
                        stop.cancel();
                        Ok(Round::Idle)
                    }
                    other => other,
                }
            }
        })
        .await;
    })
}

fn spawn_webhooks(
    pool: PgPool,
    sender: webhook::WebhookSender,
    options: DeliveryOptions,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let schedule = Schedule::on_notify("webhook-delivery", OUTBOX_CHANNEL, options.poll)
            .backing_off_to(Duration::from_secs(30));
        // The fault point stops this worker alone.
        let cancel = cancel.child_token();
        let stop = cancel.clone();
        runtime::run(&pool.clone(), schedule, cancel, || {
            let (pool, sender, options, stop) =
                (pool.clone(), sender.clone(), options.clone(), stop.clone());
            async move {
                match webhook_round(&pool, &sender, &options).await {
                    Err(DeliveryError::Died) => {
                        stop.cancel();
                        Ok(Round::Idle)
                    }
                    other => other,
                }
            }
        })
        .await;
    })
}
