//! The limiter: GCRA buckets in PostgreSQL (`rate_limit_buckets`), shared
//! by every replica, and local leases in front of them.
//!
//! A replica that needs a token for a key takes a *lease* of `n` tokens
//! from the key's shared bucket in one statement, and spends them locally
//! for at most `lease_ttl`; unspent ones are dropped. `n` adapts per key:
//! it starts at 1, doubles (up to `lease_max`) each time a lease is spent
//! before it expires and halves when one expires unspent, so a key that
//! sends a request now and then costs one round trip per request and wastes
//! nothing, while a busy key costs about one round trip per `lease_ttl`.
//! A refusal is remembered locally until the bucket has a token again
//! (exact: no replica can get one sooner), so a flood of refused requests
//! does not reach the database either.
//!
//! Every token is taken from the shared bucket before it is spent and is
//! spent within `lease_ttl` of being taken, so across all replicas a key
//! gets at most `burst + rate × (w + lease_ttl)` requests in any window of
//! length `w`: a bucket of one replica alone would give that minus
//! `rate × lease_ttl`. Leases can make the limit stricter, never looser:
//! tokens one replica holds unspent are not available to another until
//! they expire.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::{BudgetKind, Counters, RateLimitConfig};

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    /// Let it through.
    pub allowed: bool,
    /// The budget's burst.
    pub limit: u32,
    /// Tokens left (this replica's view: its lease plus what the shared
    /// bucket had when it was last asked).
    pub remaining: u32,
    /// When refused: how long until a token is available.
    pub retry_after: Duration,
    /// When allowed: how long until the bucket is full again.
    pub reset: Duration,
}

#[derive(Debug)]
struct Entry {
    /// Tokens leased and not spent.
    tokens: u32,
    /// When they stop being valid.
    lease_until: Instant,
    /// The size of the next lease.
    next_lease: u32,
    /// Refused until then.
    denied_until: Option<Instant>,
    /// What the shared bucket had left after the last lease.
    bucket_left: u32,
    /// When the shared bucket is full again (as of the last lease).
    full_at: Instant,
}

/// Past this many keys in memory, expired entries are dropped.
const LOCAL_KEYS_MAX: usize = 50_000;
/// How often a replica deletes refilled buckets, in microseconds.
const SWEEP_EVERY_US: i64 = 60_000_000;

/// The rate limiter of one API replica.
pub struct Limiter {
    config: RateLimitConfig,
    pool: PgPool,
    local: Mutex<HashMap<(BudgetKind, String), Entry>>,
    counters: Arc<Counters>,
    last_sweep_us: AtomicI64,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What one lease statement answered.
struct Granted {
    granted: i32,
    tat_us: i64,
    now_us: i64,
}

/// Takes up to `$3` tokens from the bucket of (`$1`, `$2`), whose tokens
/// come every `$4` µs up to a burst of `$5`, on the database's clock.
const LEASE: &str = "
INSERT INTO rate_limit_buckets AS b (budget, key, tat_us, updated_us, granted)
SELECT $1, $2, c.now_us + least($3, $5) * $4, c.now_us, least($3, $5)::int
  FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us) c
ON CONFLICT (budget, key) DO UPDATE SET
    granted = least($3, greatest(0, (EXCLUDED.updated_us + $5 * $4 - greatest(b.tat_us, EXCLUDED.updated_us)) / $4))::int,
    tat_us = greatest(b.tat_us, EXCLUDED.updated_us)
             + $4 * least($3, greatest(0, (EXCLUDED.updated_us + $5 * $4 - greatest(b.tat_us, EXCLUDED.updated_us)) / $4)),
    updated_us = EXCLUDED.updated_us
RETURNING granted, tat_us, updated_us";

impl Limiter {
    /// A limiter on `pool`'s `rate_limit_buckets`.
    pub fn new(pool: PgPool, config: RateLimitConfig) -> Self {
        Self {
            config,
            pool,
            local: Mutex::new(HashMap::new()),
            counters: Arc::new(Counters::default()),
            last_sweep_us: AtomicI64::new(0),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Its counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Spends one token of `key`'s `kind` budget, or says when to retry.
    pub async fn check(&self, kind: BudgetKind, key: &str) -> Decision {
        let decision = self.decide(kind, key).await;
        self.counters.count(kind, decision.allowed);
        decision
    }

    async fn decide(&self, kind: BudgetKind, key: &str) -> Decision {
        let budget = self.config.budget(kind);
        let now = Instant::now();
        let next_lease = {
            let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
            match local.get_mut(&(kind, key.to_string())) {
                Some(e) => {
                    if let Some(until) = e.denied_until.filter(|u| *u > now) {
                        return Decision {
                            allowed: false,
                            limit: budget.burst,
                            remaining: 0,
                            retry_after: until - now,
                            reset: until - now,
                        };
                    }
                    if e.tokens > 0 && e.lease_until > now {
                        e.tokens -= 1;
                        return Decision {
                            allowed: true,
                            limit: budget.burst,
                            remaining: e.tokens + e.bucket_left,
                            retry_after: Duration::ZERO,
                            reset: e.full_at.saturating_duration_since(now),
                        };
                    }
                    // Spent before it expired: lease more next time;
                    // expired unspent: lease less.
                    if e.tokens == 0 && e.lease_until > now {
                        (e.next_lease * 2).min(self.config.lease_max.max(1))
                    } else {
                        (e.next_lease / 2).max(1)
                    }
                }
                None => 1,
            }
        };
        let want = next_lease.min(budget.burst.max(1));
        self.counters.leases[kind.index()].fetch_add(1, Ordering::Relaxed);
        let answer = sqlx::query_as::<_, (i32, i64, i64)>(LEASE)
            .bind(kind.name())
            .bind(key)
            .bind(i64::from(want))
            .bind(budget.interval_us())
            .bind(i64::from(budget.burst.max(1)))
            .fetch_one(&self.pool)
            .await
            .map(|(granted, tat_us, now_us)| Granted {
                granted,
                tat_us,
                now_us,
            });
        let g = match answer {
            Ok(g) => g,
            Err(e) => {
                // Failing open: a database that cannot count requests
                // cannot serve them either, and says so itself.
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, budget = kind.name(), "rate limit lease failed; request let through");
                return Decision {
                    allowed: true,
                    limit: budget.burst,
                    remaining: 0,
                    retry_after: Duration::ZERO,
                    reset: Duration::ZERO,
                };
            }
        };
        self.maybe_sweep(g.now_us);
        let interval = budget.interval_us();
        let burst = i64::from(budget.burst.max(1));
        let ahead = (g.tat_us - g.now_us).max(0);
        let bucket_left =
            ((g.now_us + burst * interval - g.tat_us) / interval).clamp(0, burst) as u32;
        let full_at = now + Duration::from_micros(ahead as u64);
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if local.len() >= LOCAL_KEYS_MAX {
            local.retain(|_, e| e.lease_until > now || e.denied_until.is_some_and(|u| u > now));
        }
        let entry = local.entry((kind, key.to_string())).or_insert(Entry {
            tokens: 0,
            lease_until: now,
            next_lease,
            denied_until: None,
            bucket_left,
            full_at,
        });
        entry.next_lease = next_lease;
        entry.bucket_left = bucket_left;
        entry.full_at = full_at;
        if g.granted <= 0 {
            // A token comes when the bucket is one interval short of a
            // whole burst ahead of now.
            let wait_us = (g.tat_us - g.now_us - (burst - 1) * interval).max(1);
            let retry_after = Duration::from_micros(wait_us as u64);
            entry.denied_until = Some(now + retry_after);
            return Decision {
                allowed: false,
                limit: budget.burst,
                remaining: 0,
                retry_after,
                reset: retry_after,
            };
        }
        entry.denied_until = None;
        let granted = g.granted as u32;
        // Another request of this replica may have leased meanwhile: keep
        // both leases' tokens, valid until the earlier expiry.
        let lease_until = now + self.config.lease_ttl;
        if entry.tokens > 0 && entry.lease_until > now {
            entry.tokens += granted - 1;
            entry.lease_until = entry.lease_until.min(lease_until);
        } else {
            entry.tokens = granted - 1;
            entry.lease_until = lease_until;
        }
        Decision {
            allowed: true,
            limit: budget.burst,
            remaining: entry.tokens + bucket_left,
            retry_after: Duration::ZERO,
            reset: full_at.saturating_duration_since(now),
        }
    }

    /// Once a minute per replica, deletes the buckets that have refilled
    /// (no row means a full bucket), off the request's path.
    fn maybe_sweep(&self, now_us: i64) {
        let last = self.last_sweep_us.load(Ordering::Relaxed);
        if now_us - last < SWEEP_EVERY_US
            || self
                .last_sweep_us
                .compare_exchange(last, now_us, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let swept = sqlx::query(
                "DELETE FROM rate_limit_buckets
                  WHERE tat_us < (extract(epoch FROM clock_timestamp()) * 1000000)::bigint",
            )
            .execute(&pool)
            .await;
            match swept {
                Ok(done) => tracing::debug!(
                    buckets = done.rows_affected(),
                    "refilled rate limit buckets deleted"
                ),
                Err(e) => tracing::warn!(error = %e, "rate limit sweep failed"),
            }
        });
    }
}
