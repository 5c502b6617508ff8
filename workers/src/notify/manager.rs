//! The notification process manager's intake: domain events, in commit
//! order and checkpointed (it runs as a tailing projection under the name
//! the notifications view had, so its checkpoint and every id already in
//! the feed carry over), become notifications and their outbox rows.
//!
//! A notification's id is its cause: `<aggregate type>:<id>:<sequence>` of
//! the event, with `:<owner>` added where one event tells several users
//! (a node's maintenance), and `maintenance_soon:<window>:<owner>` for the
//! timer. It is inserted once (`ON CONFLICT DO NOTHING`); only an insert
//! writes outbox rows, so a redelivered event sends nothing again.

use chrono::{DateTime, Duration, Utc};
use marketplace_domain::deployment::{DeletionCause, DeploymentEvent};
use marketplace_domain::node::NodeEvent;
use marketplace_domain::provider::ProviderRequestEvent;
use marketplace_domain::wallet::{TopUpOrigin, WalletEvent};
use marketplace_projections::{ApplyError, Projection, StoredEvent};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

/// The channel the outbox's workers are woken on.
pub const OUTBOX_CHANNEL: &str = "notification_outbox";

/// The manager's checkpoint name: the one the notifications view had.
pub const NAME: &str = "notifications";

/// How long before a maintenance window its reminder goes out.
pub fn maintenance_lead() -> Duration {
    Duration::hours(24)
}

/// The notification process manager's intake.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotificationManager;

/// A notification about to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Its id: the cause.
    pub id: String,
    /// Whom it is for.
    pub owner: String,
    /// What it is about.
    pub kind: &'static str,
    /// The deployment it is about, if any.
    pub deployment_id: Option<Uuid>,
    /// The details.
    pub payload: Value,
    /// When it happened.
    pub at: DateTime<Utc>,
}

#[async_trait::async_trait]
impl Projection for NotificationManager {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[
            "deployment",
            "wallet",
            "node",
            "provider_request",
            "alliance",
        ]
    }

    async fn apply(&self, conn: &mut PgConnection, stored: &StoredEvent) -> Result<(), ApplyError> {
        for draft in drafts(conn, stored).await? {
            record(conn, &draft).await?;
        }
        Ok(())
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "notifications",
            "notification_owners",
            "notification_subjects",
            "notification_timers",
            "notification_outbox",
        ]
    }
}

fn cause(stored: &StoredEvent) -> String {
    format!(
        "{}:{}:{}",
        stored.aggregate_type, stored.aggregate_id, stored.sequence
    )
}

fn draft(
    stored: &StoredEvent,
    owner: String,
    kind: &'static str,
    deployment_id: Option<Uuid>,
    payload: Value,
    at: DateTime<Utc>,
) -> Draft {
    Draft {
        id: cause(stored),
        owner,
        kind,
        deployment_id,
        payload,
        at,
    }
}

/// The notifications `stored` causes, after the bookkeeping it asks for
/// (whose deployment, request or top-up is whose; which node a deployment
/// is on; maintenance timers).
async fn drafts(conn: &mut PgConnection, stored: &StoredEvent) -> Result<Vec<Draft>, ApplyError> {
    match stored.aggregate_type.as_str() {
        "wallet" => wallet(conn, stored).await,
        "deployment" => deployment(conn, stored).await,
        "node" => node(conn, stored).await,
        "provider_request" => provider_request(conn, stored).await,
        "alliance" => alliance(stored),
        _ => Ok(vec![]),
    }
}

async fn wallet(conn: &mut PgConnection, stored: &StoredEvent) -> Result<Vec<Draft>, ApplyError> {
    let owner = stored.aggregate_id.clone();
    Ok(match marketplace_projections::wallets::upcast(stored)? {
        WalletEvent::RunwayAlertRaised {
            threshold_hours,
            runway_hours,
            at,
        } => vec![draft(
            stored,
            owner,
            "balance_low",
            None,
            json!({ "threshold_hours": threshold_hours, "runway_hours": runway_hours }),
            at,
        )],
        WalletEvent::TopUpCreated {
            top_up_id,
            origin: TopUpOrigin::Auto,
            ..
        } => {
            remember(conn, &format!("auto_top_up:{top_up_id}"), &owner).await?;
            vec![]
        }
        WalletEvent::TopUpFailed {
            top_up_id,
            code,
            message,
            at,
            ..
        } => {
            if recall(conn, &format!("auto_top_up:{top_up_id}"))
                .await?
                .is_none()
            {
                return Ok(vec![]);
            }
            vec![draft(
                stored,
                owner,
                "auto_top_up_failed",
                None,
                json!({ "top_up_id": top_up_id, "code": code, "message": message }),
                at,
            )]
        }
        WalletEvent::SubscriptionPaymentFailed {
            subscription_id,
            invoice_id,
            attempt,
            code,
            message,
            next_attempt_at,
            at,
        } => vec![draft(
            stored,
            owner,
            "subscription_payment_failed",
            None,
            json!({
                "subscription_id": subscription_id, "invoice_id": invoice_id,
                "attempt": attempt, "code": code, "message": message,
                "next_attempt_at": next_attempt_at,
            }),
            at,
        )],
        _ => vec![],
    })
}

async fn deployment(
    conn: &mut PgConnection,
    stored: &StoredEvent,
) -> Result<Vec<Draft>, ApplyError> {
    let deployment = Uuid::parse_str(&stored.aggregate_id)
        .map_err(|e| ApplyError::Poison(format!("aggregate id is not a uuid: {e}")))?;
    let event = marketplace_projections::deployments::upcast(stored)?;
    let (kind, payload, at) = match &event {
        DeploymentEvent::DeploymentRequested { owner, .. } => {
            sqlx::query(
                "INSERT INTO notification_owners (deployment_id, owner) VALUES ($1, $2)
                 ON CONFLICT (deployment_id) DO NOTHING",
            )
            .bind(deployment)
            .bind(owner)
            .execute(&mut *conn)
            .await?;
            return Ok(vec![]);
        }
        DeploymentEvent::NodeAssigned { node, .. } => {
            sqlx::query("UPDATE notification_owners SET node_id = $2 WHERE deployment_id = $1")
                .bind(deployment)
                .bind(i64::from(node.node_id))
                .execute(&mut *conn)
                .await?;
            return Ok(vec![]);
        }
        DeploymentEvent::GracePeriodStarted { at, contract_id } => (
            "grace_period_started",
            json!({
                "contract_id": contract_id,
                "deletion_at": *at + marketplace_projections::notifications::grace_period(),
            }),
            *at,
        ),
        DeploymentEvent::GracePeriodEnded { at, contract_id } => (
            "grace_period_ended",
            json!({ "contract_id": contract_id }),
            *at,
        ),
        DeploymentEvent::DeploymentRunning { at, .. } => ("deployment_running", json!({}), *at),
        DeploymentEvent::DeploymentFailed { at, reason, .. } => {
            ("deployment_failed", json!({ "reason": reason }), *at)
        }
        DeploymentEvent::DeploymentDeleted { cause, at } => {
            // Gone from its node: no more maintenance notices for it.
            sqlx::query("UPDATE notification_owners SET node_id = NULL WHERE deployment_id = $1")
                .bind(deployment)
                .execute(&mut *conn)
                .await?;
            if *cause != DeletionCause::OutOfFunds {
                return Ok(vec![]);
            }
            ("deleted_out_of_funds", json!({}), *at)
        }
        _ => return Ok(vec![]),
    };
    let owner: Option<String> =
        sqlx::query_scalar("SELECT owner FROM notification_owners WHERE deployment_id = $1")
            .bind(deployment)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(owner) = owner else {
        return Err(ApplyError::Poison(format!(
            "{} for deployment {deployment}, which was never requested",
            stored.event_type
        )));
    };
    Ok(vec![draft(
        stored,
        owner,
        kind,
        Some(deployment),
        payload,
        at,
    )])
}

/// Owners of a live deployment on `node_id`, with one of their deployments
/// there.
async fn users_on(
    conn: &mut PgConnection,
    node_id: i64,
) -> Result<Vec<(String, Vec<Uuid>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT owner, array_agg(deployment_id ORDER BY deployment_id) FROM notification_owners
          WHERE node_id = $1 GROUP BY owner ORDER BY owner",
    )
    .bind(node_id)
    .fetch_all(&mut *conn)
    .await
}

async fn node(conn: &mut PgConnection, stored: &StoredEvent) -> Result<Vec<Draft>, ApplyError> {
    let node_id: i64 = stored
        .aggregate_id
        .parse()
        .map_err(|_| ApplyError::Poison(format!("{:?} is not a node id", stored.aggregate_id)))?;
    let (window_id, start, end, reason, at) = match marketplace_projections::nodes::upcast(stored)?
    {
        NodeEvent::MaintenanceScheduled { window, at, .. } => {
            (window.id, window.start, window.end, Some(window.reason), at)
        }
        NodeEvent::MaintenanceRescheduled {
            window_id,
            start,
            end,
            at,
            ..
        } => (window_id, start, end, None, at),
        NodeEvent::MaintenanceCancelled { window_id, .. } => {
            sqlx::query(
                "DELETE FROM notification_timers WHERE window_id = $1 AND fired_at IS NULL",
            )
            .bind(window_id)
            .execute(&mut *conn)
            .await?;
            return Ok(vec![]);
        }
        _ => return Ok(vec![]),
    };
    // A move keeps the reason the window was announced with.
    let reason = match reason {
        Some(r) => r,
        None => sqlx::query_scalar::<_, String>(
            "SELECT reason FROM notification_timers WHERE window_id = $1 LIMIT 1",
        )
        .bind(window_id)
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or_default(),
    };
    let mut out = Vec::new();
    for (owner, deployments) in users_on(conn, node_id).await? {
        let payload = json!({
            "node_id": node_id,
            "window_id": window_id,
            "start": start,
            "end": end,
            "reason": reason,
            "deployment_ids": deployments,
            "rescheduled": stored.event_type == "MaintenanceRescheduled",
        });
        // The reminder: once per window and user; a move before it fires
        // moves it.
        sqlx::query(
            "INSERT INTO notification_timers
                (id, owner, node_id, window_id, starts_at, ends_at, reason, due_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET starts_at = EXCLUDED.starts_at,
                ends_at = EXCLUDED.ends_at, due_at = EXCLUDED.due_at
              WHERE notification_timers.fired_at IS NULL",
        )
        .bind(format!("maintenance_soon:{window_id}:{owner}"))
        .bind(&owner)
        .bind(node_id)
        .bind(window_id)
        .bind(start)
        .bind(end)
        .bind(&reason)
        .bind(start - maintenance_lead())
        .execute(&mut *conn)
        .await?;
        out.push(Draft {
            id: format!("{}:{owner}", cause(stored)),
            owner,
            kind: "maintenance_announced",
            deployment_id: deployments.first().copied(),
            payload,
            at,
        });
    }
    Ok(out)
}

async fn provider_request(
    conn: &mut PgConnection,
    stored: &StoredEvent,
) -> Result<Vec<Draft>, ApplyError> {
    let key = format!("provider_request:{}", stored.aggregate_id);
    let (answer, payload, at) = match marketplace_projections::providers::upcast(stored)? {
        ProviderRequestEvent::ProviderRequestSubmitted { provider, .. } => {
            remember(conn, &key, &provider).await?;
            return Ok(vec![]);
        }
        ProviderRequestEvent::ProviderRequestApproved { note, at, .. } => {
            ("approved", json!({ "note": note }), at)
        }
        ProviderRequestEvent::ProviderRequestRejected { reason, at, .. } => {
            ("rejected", json!({ "reason": reason }), at)
        }
        ProviderRequestEvent::InformationRequested { question, at, .. } => {
            ("information_requested", json!({ "question": question }), at)
        }
        _ => return Ok(vec![]),
    };
    let Some(owner) = recall(conn, &key).await? else {
        return Err(ApplyError::Poison(format!(
            "{} for farm {}, whose request was never submitted",
            stored.event_type, stored.aggregate_id
        )));
    };
    let mut payload = payload;
    payload["answer"] = json!(answer);
    payload["farm_id"] = json!(stored.aggregate_id);
    Ok(vec![draft(
        stored,
        owner,
        "provider_request_answered",
        None,
        payload,
        at,
    )])
}

fn alliance(stored: &StoredEvent) -> Result<Vec<Draft>, ApplyError> {
    if stored.event_type != "PayoutSent" {
        return Ok(vec![]);
    }
    let event: marketplace_domain::alliance::AllianceEvent =
        marketplace_projections::decode_event(stored, marketplace_domain::alliance::EVENT_VERSION)?;
    let marketplace_domain::alliance::AllianceEvent::PayoutSent {
        period,
        member,
        amount,
        transfer,
        at,
        ..
    } = event
    else {
        return Ok(vec![]);
    };
    Ok(vec![draft(
        stored,
        member,
        "alliance_settlement_paid",
        None,
        json!({
            "alliance_id": stored.aggregate_id,
            "period": period,
            "amount_tft_units": amount.to_string(),
            "transfer": transfer,
        }),
        at,
    )])
}

async fn remember(conn: &mut PgConnection, key: &str, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notification_subjects (subject_key, owner) VALUES ($1, $2)
         ON CONFLICT (subject_key) DO UPDATE SET owner = EXCLUDED.owner",
    )
    .bind(key)
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn recall(conn: &mut PgConnection, key: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT owner FROM notification_subjects WHERE subject_key = $1")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
}

/// Records `draft` once: the feed's row (kept out of the feed when the
/// user turned the feed off for its kind) and, only when it is new, one
/// outbox row per other channel the user's preferences leave on: email
/// when the user has an address, a webhook per live endpoint. Wakes the
/// delivery workers at commit. Answers whether it was new.
pub async fn record(conn: &mut PgConnection, draft: &Draft) -> Result<bool, sqlx::Error> {
    // A user with no row yet has every channel on, and no address.
    let (feed, email, webhook, address): (bool, bool, bool, Option<String>) = sqlx::query_as(
        "SELECT coalesce((p->$2->>'feed')::bool, true),
                coalesce((p->$2->>'email')::bool, true),
                coalesce((p->$2->>'webhook')::bool, true),
                address
           FROM (SELECT coalesce(max(notification_prefs::text)::jsonb, '{}') AS p,
                        max(CASE WHEN contact_email_verified AND contact_email IS NOT NULL
                                 THEN contact_email ELSE email END) AS address
                   FROM users WHERE user_id = $1) u",
    )
    .bind(&draft.owner)
    .bind(draft.kind)
    .fetch_one(&mut *conn)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO notifications (id, owner, kind, deployment_id, payload, at, in_feed)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&draft.id)
    .bind(&draft.owner)
    .bind(draft.kind)
    .bind(draft.deployment_id)
    .bind(&draft.payload)
    .bind(draft.at)
    .bind(feed)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        return Ok(false);
    }
    let mut channels: Vec<String> = Vec::new();
    if email && address.is_some() {
        channels.push("email".into());
    }
    if webhook {
        let endpoints: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM webhook_endpoints WHERE owner = $1 AND deleted_at IS NULL ORDER BY id",
        )
        .bind(&draft.owner)
        .fetch_all(&mut *conn)
        .await?;
        channels.extend(endpoints.into_iter().map(|e| format!("webhook:{e}")));
    }
    if !channels.is_empty() {
        sqlx::query(
            "INSERT INTO notification_outbox (notification_id, channel, owner)
             SELECT $1, c, $2 FROM UNNEST($3::text[]) AS c
             ON CONFLICT DO NOTHING",
        )
        .bind(&draft.id)
        .bind(&draft.owner)
        .bind(&channels)
        .execute(&mut *conn)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(OUTBOX_CHANNEL)
            .execute(&mut *conn)
            .await?;
    }
    Ok(true)
}

/// Fires due maintenance reminders: each timer becomes a
/// `maintenance_soon` notification once, in the transaction that marks it
/// fired. Answers how many fired.
pub async fn fire_timers(pool: &sqlx::PgPool, limit: i64) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let due: Vec<(
        String,
        String,
        i64,
        Uuid,
        DateTime<Utc>,
        DateTime<Utc>,
        String,
    )> = sqlx::query_as(
        "SELECT id, owner, node_id, window_id, starts_at, ends_at, reason
               FROM notification_timers
              WHERE fired_at IS NULL AND due_at <= now()
              ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    for (id, owner, node_id, window_id, start, end, reason) in &due {
        let deployments: Vec<Uuid> = sqlx::query_scalar(
            "SELECT deployment_id FROM notification_owners WHERE owner = $1 AND node_id = $2
              ORDER BY deployment_id",
        )
        .bind(owner)
        .bind(node_id)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("UPDATE notification_timers SET fired_at = now() WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Nothing of the user's runs there any more: nothing to say.
        if deployments.is_empty() {
            continue;
        }
        let draft = Draft {
            id: id.clone(),
            owner: owner.clone(),
            kind: "maintenance_soon",
            deployment_id: deployments.first().copied(),
            payload: json!({
                "node_id": node_id,
                "window_id": window_id,
                "start": start,
                "end": end,
                "reason": reason,
                "deployment_ids": deployments,
            }),
            at: Utc::now(),
        };
        record(&mut tx, &draft).await?;
    }
    tx.commit().await?;
    Ok(due.len())
}
