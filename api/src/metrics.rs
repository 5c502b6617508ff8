//! Prometheus metrics: this replica's HTTP requests and rate limiting
//! ([`crate::http_metrics`], [`crate::rate_limit`]), and how far each projection lags behind the store, how
//! long since it last committed, its unresolved dead letters, keyed
//! commands left pending, the Stripe inbox's backlog and set-aside
//! events, and the process managers' intakes and job queues. Computed from the database on each scrape, so any API replica
//! reports the same figures.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::AppState;

/// Who may read `/metrics`, and where.
#[derive(Debug, Clone)]
pub struct MetricsAccess {
    /// Served on the API's own address too (`dev`; `serve` without
    /// `METRICS_ADDR`). Off: only the metrics listener answers it.
    pub on_main_listener: bool,
    /// When set, a scrape must send `Authorization: Bearer <token>`.
    pub token: Option<SecretString>,
}

impl MetricsAccess {
    /// Open to anyone on the API's address (dev mode, tests).
    pub fn open() -> Self {
        Self {
            on_main_listener: true,
            token: None,
        }
    }
}

/// Marks requests that came through the metrics listener
/// ([`crate::metrics_app`]).
#[derive(Debug, Clone, Copy)]
pub struct MetricsListener;

/// 404 where `/metrics` is not served, 401 without the right token.
fn check_access(
    access: &MetricsAccess,
    listener: Option<MetricsListener>,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if listener.is_none() && !access.on_main_listener {
        return Err(ApiError::NotFound);
    }
    let Some(token) = &access.token else {
        return Ok(());
    };
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .unwrap_or_default();
    // Digests compared, so the comparison's time says nothing of the token.
    if Sha256::digest(sent.trim().as_bytes()) == Sha256::digest(token.expose_secret().as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "metrics token missing or wrong".into(),
        ))
    }
}

/// Everything that tails the store with a checkpoint: the registry's
/// projections and the process managers' intakes.
fn tailed() -> Vec<&'static str> {
    let mut names = marketplace_projections::names();
    names.extend(["notifications", "provisioning-intake", "treasury-intake"]);
    names
}

/// Metrics in the Prometheus text format.
#[utoipa::path(
    get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 401, description = "`METRICS_TOKEN` is set and the request does not carry it as a bearer token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Served on `METRICS_ADDR` only, not on the API's address", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    listener: Option<Extension<MetricsListener>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_access(
        &state.settings.metrics,
        listener.map(|Extension(l)| l),
        &headers,
    )?;
    let lag: Vec<(String, i64, f64)> = sqlx::query_as(
        "SELECT p.name,
                (SELECT count(*) FROM events e
                  WHERE (e.txid, e.position) > (coalesce(c.last_txid, 0), coalesce(c.last_position, 0))),
                coalesce(extract(epoch FROM now() - c.updated_at)::float8, -1)
           FROM unnest($1::text[]) AS p(name)
           LEFT JOIN projection_checkpoints c ON c.projection = p.name
          ORDER BY p.name",
    )
    .bind(tailed())
    .fetch_all(&state.pool)
    .await?;
    let dead: Vec<(String, i64)> = sqlx::query_as(
        "SELECT projection, count(*) FROM projection_dead_letters WHERE resolved_at IS NULL GROUP BY projection ORDER BY 1",
    )
    .fetch_all(&state.pool)
    .await?;
    let (position, pending): (Option<i64>, i64) = sqlx::query_as(
        "SELECT (SELECT max(position) FROM events),
                (SELECT count(*) FROM idempotency_keys WHERE state = 'pending')",
    )
    .fetch_one(&state.pool)
    .await?;

    // The Kafka path, when it runs: the relay's backlog, and each consumer
    // group's lag per partition: the partition's end (as the relay last had
    // it acknowledged, or as a worker last saw it) minus the group's offset.
    let relays: Vec<(String, i64, f64, i64)> = sqlx::query_as(
        "SELECT r.relay,
                (SELECT count(*) FROM events e WHERE (e.txid, e.position) > (r.last_txid, r.last_position)),
                extract(epoch FROM now() - r.updated_at)::float8,
                r.published
           FROM relay_checkpoints r ORDER BY r.relay",
    )
    .fetch_all(&state.pool)
    .await?;
    let consumer_lag: Vec<(String, String, i32, i64)> = sqlx::query_as(
        "SELECT o.consumer_group, o.topic, o.partition,
                greatest(coalesce(h.next_offset, 0), o.high_watermark) - o.next_offset
           FROM kafka_offsets o
           LEFT JOIN kafka_partition_heads h USING (topic, partition)
          ORDER BY 1, 2, 3",
    )
    .fetch_all(&state.pool)
    .await?;

    // The process managers' job queues: due now, waiting, failing, and the
    // age of the oldest due job (how far behind the executors are).
    let jobs: Vec<(String, i64, i64, i64, f64)> = sqlx::query_as(
        "SELECT q, count(*) FILTER (WHERE due_at <= now()), count(*) FILTER (WHERE due_at > now()),
                count(*) FILTER (WHERE failures > 0),
                coalesce(extract(epoch FROM now() - min(due_at) FILTER (WHERE due_at <= now()))::float8, 0)
           FROM (SELECT 'provisioning' AS q, due_at, failures FROM provisioning_jobs
                 UNION ALL SELECT 'chain_transfers', due_at, failures FROM chain_transfer_jobs) j
          GROUP BY q ORDER BY q",
    )
    .fetch_all(&state.pool)
    .await?;

    // The notification outbox, per channel: queued (pending, never tried),
    // retrying (pending after a failure), sent, failed, and the age of the
    // oldest due row (how far behind delivery is).
    let outbox: Vec<(String, i64, i64, i64, i64, f64)> = sqlx::query_as(
        "SELECT c,
                count(*) FILTER (WHERE status = 'pending' AND attempts = 0),
                count(*) FILTER (WHERE status = 'pending' AND attempts > 0),
                count(*) FILTER (WHERE status = 'sent'),
                count(*) FILTER (WHERE status = 'failed'),
                coalesce(extract(epoch FROM now() - min(due_at)
                    FILTER (WHERE status = 'pending' AND due_at <= now()))::float8, 0)
           FROM (SELECT CASE WHEN channel = 'email' THEN 'email' ELSE 'webhook' END AS c,
                        status, attempts, due_at FROM notification_outbox) o
          GROUP BY c ORDER BY c",
    )
    .fetch_all(&state.pool)
    .await?;

    let mut out = String::new();
    state.http_metrics.render(&mut out);
    state.limiter.counters().render(&mut out);
    let _ = writeln!(out, "# HELP marketplace_notifications_outbox Notification deliveries by channel and state (queued: never tried; retrying: failed, tried again later; sent; failed: retries ran out).");
    let _ = writeln!(out, "# TYPE marketplace_notifications_outbox gauge");
    let _ = writeln!(out, "# HELP marketplace_notifications_oldest_pending_seconds How long the oldest due delivery has waited.");
    let _ = writeln!(
        out,
        "# TYPE marketplace_notifications_oldest_pending_seconds gauge"
    );
    for channel in ["email", "webhook"] {
        let (queued, retrying, sent, failed, oldest) = outbox
            .iter()
            .find(|o| o.0 == channel)
            .map_or((0, 0, 0, 0, 0.0), |o| (o.1, o.2, o.3, o.4, o.5));
        for (state, n) in [
            ("queued", queued),
            ("retrying", retrying),
            ("sent", sent),
            ("failed", failed),
        ] {
            let _ = writeln!(
                out,
                "marketplace_notifications_outbox{{channel=\"{channel}\",state=\"{state}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "marketplace_notifications_oldest_pending_seconds{{channel=\"{channel}\"}} {oldest:.3}"
        );
    }
    let _ = writeln!(out, "# HELP marketplace_jobs Process managers' jobs by queue and state (due: waiting for an executor; waiting: until a later time; failing: retried after errors).");
    let _ = writeln!(out, "# TYPE marketplace_jobs gauge");
    let _ = writeln!(out, "# HELP marketplace_jobs_oldest_due_seconds How long the oldest due job has waited for an executor.");
    let _ = writeln!(out, "# TYPE marketplace_jobs_oldest_due_seconds gauge");
    for queue in ["chain_transfers", "provisioning"] {
        let (due, waiting, failing, oldest) = jobs
            .iter()
            .find(|j| j.0 == queue)
            .map_or((0, 0, 0, 0.0), |j| (j.1, j.2, j.3, j.4));
        let _ = writeln!(
            out,
            "marketplace_jobs{{queue=\"{queue}\",state=\"due\"}} {due}"
        );
        let _ = writeln!(
            out,
            "marketplace_jobs{{queue=\"{queue}\",state=\"waiting\"}} {waiting}"
        );
        let _ = writeln!(
            out,
            "marketplace_jobs{{queue=\"{queue}\",state=\"failing\"}} {failing}"
        );
        let _ = writeln!(
            out,
            "marketplace_jobs_oldest_due_seconds{{queue=\"{queue}\"}} {oldest:.3}"
        );
    }
    let _ = writeln!(out, "# HELP marketplace_projection_lag_events Committed events a projection has not applied yet.");
    let _ = writeln!(out, "# TYPE marketplace_projection_lag_events gauge");
    for (name, events, _) in &lag {
        let _ = writeln!(
            out,
            "marketplace_projection_lag_events{{projection=\"{name}\"}} {events}"
        );
    }
    let _ = writeln!(out, "# HELP marketplace_projection_checkpoint_age_seconds Seconds since the projection last committed (-1: never).");
    let _ = writeln!(
        out,
        "# TYPE marketplace_projection_checkpoint_age_seconds gauge"
    );
    for (name, _, age) in &lag {
        let _ = writeln!(
            out,
            "marketplace_projection_checkpoint_age_seconds{{projection=\"{name}\"}} {age:.3}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP marketplace_projection_dead_letters Unresolved dead letters."
    );
    let _ = writeln!(out, "# TYPE marketplace_projection_dead_letters gauge");
    for name in tailed() {
        let n = dead.iter().find(|(p, _)| p == name).map_or(0, |(_, n)| *n);
        let _ = writeln!(
            out,
            "marketplace_projection_dead_letters{{projection=\"{name}\"}} {n}"
        );
    }
    let follower: Option<(i64, Option<i64>, f64, Option<i32>)> = sqlx::query_as(
        "SELECT block_number, head_block,
                EXTRACT(EPOCH FROM now() - updated_at)::float8, mismatched_wallets
           FROM chain_cursors WHERE name = 'chain-follower'",
    )
    .fetch_optional(&state.pool)
    .await?;
    if let Some((cursor, head, age, mismatched)) = follower {
        let _ = writeln!(out, "# HELP marketplace_chain_cursor_block The last chain block the chain follower applied.");
        let _ = writeln!(out, "# TYPE marketplace_chain_cursor_block gauge");
        let _ = writeln!(out, "marketplace_chain_cursor_block {cursor}");
        let _ = writeln!(out, "# HELP marketplace_chain_lag_blocks Blocks between the chain's best block (at the follower's last look) and its cursor.");
        let _ = writeln!(out, "# TYPE marketplace_chain_lag_blocks gauge");
        let _ = writeln!(
            out,
            "marketplace_chain_lag_blocks {}",
            head.map_or(0, |h| (h - cursor).max(0))
        );
        let _ = writeln!(out, "# HELP marketplace_chain_cursor_age_seconds Time since the chain follower's cursor last moved.");
        let _ = writeln!(out, "# TYPE marketplace_chain_cursor_age_seconds gauge");
        let _ = writeln!(out, "marketplace_chain_cursor_age_seconds {age:.3}");
        let _ = writeln!(out, "# HELP marketplace_chain_ledger_mismatches Custodial wallets whose ledger disagreed with their chain account at the last reconciliation.");
        let _ = writeln!(out, "# TYPE marketplace_chain_ledger_mismatches gauge");
        let _ = writeln!(
            out,
            "marketplace_chain_ledger_mismatches {}",
            mismatched.unwrap_or(0)
        );
    }
    let _ = writeln!(
        out,
        "# HELP marketplace_event_store_position Highest position written to the event store."
    );
    let _ = writeln!(out, "# TYPE marketplace_event_store_position gauge");
    let _ = writeln!(
        out,
        "marketplace_event_store_position {}",
        position.unwrap_or(0)
    );
    // This process's group commits: their count against the appends they
    // carried is the batch size.
    {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = &marketplace_app::bus::group::STATS;
        let counters = [
            (
                "group_commit_batches_total",
                "Transactions this process's command bus committed.",
                stats.batches.load(Relaxed),
            ),
            (
                "group_commit_appends_total",
                "Commands whose events those transactions committed.",
                stats.appends.load(Relaxed),
            ),
            (
                "group_commit_lost_total",
                "Commands refused inside a batch (a sequence or an Idempotency-Key taken).",
                stats.lost.load(Relaxed),
            ),
            (
                "group_commit_failed_total",
                "Group-commit transactions that failed.",
                stats.failed.load(Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP marketplace_{name} {help}");
            let _ = writeln!(out, "# TYPE marketplace_{name} counter");
            let _ = writeln!(out, "marketplace_{name} {value}");
        }
    }
    // Tamper evidence: the latest verification's finding and age, and how
    // far the global checkpoints trail the store.
    let (verified, checkpoint): (Option<(i64, bool, f64, f64)>, Option<(i64, f64)>) = (
        sqlx::query_as(
            "SELECT checked, broken IS NOT NULL, seconds, extract(epoch FROM now() - at)::float8
               FROM audit_verifications ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&state.pool)
        .await?,
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM events e WHERE (e.txid, e.position) > (c.last_txid, c.last_position)),
                    extract(epoch FROM now() - c.recorded_at)::float8
               FROM audit_checkpoints c ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&state.pool)
        .await?,
    );
    if let Some((checked, broken, seconds, age)) = verified {
        let gauges = [
            (
                "audit_verify_broken",
                "1 when the latest verification found the event store's history broken.",
                f64::from(u8::from(broken)),
            ),
            (
                "audit_verify_checked_events",
                "Events the latest verification checked.",
                checked as f64,
            ),
            (
                "audit_verify_duration_seconds",
                "How long the latest verification took.",
                seconds,
            ),
            (
                "audit_verify_age_seconds",
                "Seconds since the latest verification.",
                age,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP marketplace_{name} {help}");
            let _ = writeln!(out, "# TYPE marketplace_{name} gauge");
            let _ = writeln!(out, "marketplace_{name} {value}");
        }
    }
    if let Some((behind, age)) = checkpoint {
        let _ = writeln!(out, "# HELP marketplace_audit_checkpoint_lag_events Events committed since the latest audit checkpoint.");
        let _ = writeln!(out, "# TYPE marketplace_audit_checkpoint_lag_events gauge");
        let _ = writeln!(out, "marketplace_audit_checkpoint_lag_events {behind}");
        let _ = writeln!(out, "# HELP marketplace_audit_checkpoint_age_seconds Seconds since the latest audit checkpoint.");
        let _ = writeln!(out, "# TYPE marketplace_audit_checkpoint_age_seconds gauge");
        let _ = writeln!(out, "marketplace_audit_checkpoint_age_seconds {age}");
    }
    let _ = writeln!(
        out,
        "# HELP marketplace_idempotency_pending Keyed commands claimed but not answered yet."
    );
    let _ = writeln!(out, "# TYPE marketplace_idempotency_pending gauge");
    let _ = writeln!(out, "marketplace_idempotency_pending {pending}");
    if !relays.is_empty() {
        let _ = writeln!(out, "# HELP marketplace_relay_backlog_events Committed events the relay has not published yet.");
        let _ = writeln!(out, "# TYPE marketplace_relay_backlog_events gauge");
        for (relay, backlog, _, _) in &relays {
            let _ = writeln!(
                out,
                "marketplace_relay_backlog_events{{relay=\"{relay}\"}} {backlog}"
            );
        }
        let _ = writeln!(out, "# HELP marketplace_relay_checkpoint_age_seconds Seconds since the relay last moved its checkpoint.");
        let _ = writeln!(out, "# TYPE marketplace_relay_checkpoint_age_seconds gauge");
        for (relay, _, age, _) in &relays {
            let _ = writeln!(
                out,
                "marketplace_relay_checkpoint_age_seconds{{relay=\"{relay}\"}} {age:.3}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP marketplace_relay_published_total Events the relay published and checkpointed."
        );
        let _ = writeln!(out, "# TYPE marketplace_relay_published_total counter");
        for (relay, _, _, published) in &relays {
            let _ = writeln!(
                out,
                "marketplace_relay_published_total{{relay=\"{relay}\"}} {published}"
            );
        }
    }
    if !consumer_lag.is_empty() {
        let _ = writeln!(out, "# HELP marketplace_kafka_consumer_lag_messages Messages in a partition its projection's consumer group has not applied yet.");
        let _ = writeln!(out, "# TYPE marketplace_kafka_consumer_lag_messages gauge");
        for (group, topic, partition, lag) in &consumer_lag {
            let _ = writeln!(
                out,
                "marketplace_kafka_consumer_lag_messages{{group=\"{group}\",topic=\"{topic}\",partition=\"{partition}\"}} {lag}"
            );
        }
    }
    let (inbox_pending, inbox_set_aside): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE processed_at IS NULL),
                count(*) FILTER (WHERE processed_at IS NOT NULL AND last_error IS NOT NULL)
           FROM stripe_inbox",
    )
    .fetch_one(&state.pool)
    .await?;
    let _ = writeln!(
        out,
        "# HELP marketplace_stripe_inbox_pending Stripe events received and not applied yet."
    );
    let _ = writeln!(out, "# TYPE marketplace_stripe_inbox_pending gauge");
    let _ = writeln!(out, "marketplace_stripe_inbox_pending {inbox_pending}");
    let _ = writeln!(
        out,
        "# HELP marketplace_stripe_inbox_set_aside Stripe events the worker could not apply (last_error kept)."
    );
    let _ = writeln!(out, "# TYPE marketplace_stripe_inbox_set_aside gauge");
    let _ = writeln!(out, "marketplace_stripe_inbox_set_aside {inbox_set_aside}");
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
