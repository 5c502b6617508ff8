//! The one loop every periodic worker runs: do a round of work, then wait
//! for the next interval, a PostgreSQL notification, or shutdown. A round
//! that reports more work runs again at once; a failing round is retried
//! after a wait that doubles with each failure in a row, up to a cap.

use std::future::Future;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What a round found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// There may be more to do right now: run again without waiting.
    More,
    /// Caught up: wait for the next interval or notification.
    Idle,
}

/// When a worker runs.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The worker's name, for logs.
    pub name: &'static str,
    /// From the start of one idle round to the start of the next.
    pub every: Duration,
    /// The longest wait after failures in a row.
    pub max_backoff: Duration,
    /// A channel whose notifications wake the worker early.
    pub listen: Option<&'static str>,
}

impl Schedule {
    /// Every `every`, the first round at once; failures back off up to a
    /// minute (or the interval, if longer).
    pub fn every(name: &'static str, every: Duration) -> Self {
        Self {
            name,
            every,
            max_backoff: Duration::from_secs(60).max(every),
            listen: None,
        }
    }

    /// Woken by NOTIFYs on `channel`, polling every `every` when none come.
    pub fn on_notify(name: &'static str, channel: &'static str, every: Duration) -> Self {
        Self {
            listen: Some(channel),
            ..Self::every(name, every)
        }
    }

    /// Backs off up to `cap` after failures.
    pub fn backing_off_to(mut self, cap: Duration) -> Self {
        self.max_backoff = cap;
        self
    }
}

/// The wait after `failures` failed rounds in a row: the interval, doubled
/// for each failure after the first, at most the cap (never less than the
/// interval).
pub fn backoff(every: Duration, max_backoff: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    every
        .saturating_mul(1 << doublings)
        .min(max_backoff.max(every))
}

/// Runs `round` on `schedule` until `cancel`. A round in progress when
/// `cancel` fires is dropped: rounds must be safe to abandon (each of their
/// commands commits atomically, or is retried next time).
pub async fn run<F, Fut, E>(
    pool: &PgPool,
    schedule: Schedule,
    cancel: CancellationToken,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Round, E>>,
    E: std::fmt::Display,
{
    let name = schedule.name;
    let mut listener = match schedule.listen {
        Some(channel) => listen(pool, channel, name).await,
        None => None,
    };
    info!(
        worker = name,
        every_secs = schedule.every.as_secs_f64(),
        "worker started"
    );
    let mut failures: u32 = 0;
    let mut wait = Duration::ZERO;
    loop {
        if !wait.is_zero() {
            let woken = async {
                match listener.as_mut() {
                    Some(l) => {
                        if let Ok(Err(e)) = tokio::time::timeout(wait, l.recv()).await {
                            warn!(worker = name, error = %e, "notifications lost; polling meanwhile");
                            tokio::time::sleep(wait).await;
                        }
                    }
                    None => tokio::time::sleep(wait).await,
                }
            };
            tokio::select! {
                _ = woken => {}
                _ = cancel.cancelled() => break,
            }
        }
        let started = tokio::time::Instant::now();
        let outcome = tokio::select! {
            outcome = round() => outcome,
            _ = cancel.cancelled() => break,
        };
        wait = match outcome {
            Ok(Round::More) => {
                failures = 0;
                Duration::ZERO
            }
            Ok(Round::Idle) => {
                failures = 0;
                // Rounds start every interval, however long each took.
                schedule.every.saturating_sub(started.elapsed())
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = backoff(schedule.every, schedule.max_backoff, failures);
                warn!(
                    worker = name,
                    error = %e,
                    failures_in_a_row = failures,
                    retry_in_secs = wait.as_secs_f64(),
                    "worker round failed"
                );
                wait
            }
        };
    }
    info!(worker = name, "worker stopped");
}

async fn listen(pool: &PgPool, channel: &str, name: &str) -> Option<PgListener> {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => {
            warn!(worker = name, error = %e, "cannot LISTEN; polling");
            return None;
        }
    };
    match listener.listen(channel).await {
        Ok(()) => Some(listener),
        Err(e) => {
            warn!(worker = name, error = %e, "cannot LISTEN; polling");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;

    /// Runs `script` as the worker's rounds on paused time and answers when
    /// each round started, in seconds after the first.
    async fn run_script(schedule: Schedule, script: Vec<Result<Round, &'static str>>) -> Vec<u64> {
        // Never connected: no channel is listened to.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .expect("lazy pool");
        let cancel = CancellationToken::new();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let mut script = script.into_iter();
        let (log, stop) = (starts.clone(), cancel.clone());
        run(&pool, schedule, cancel, move || {
            log.lock().expect("log").push(Instant::now());
            let next = script.next();
            if next.is_none() {
                stop.cancel();
            }
            let next = next.unwrap_or(Ok(Round::Idle));
            async move { next }
        })
        .await;
        let starts = starts.lock().expect("log");
        starts.iter().map(|t| (*t - starts[0]).as_secs()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn more_runs_again_at_once_idle_waits_an_interval_and_failures_back_off() {
        let schedule = Schedule::every("test", Duration::from_secs(10))
            .backing_off_to(Duration::from_secs(30));
        let starts = run_script(
            schedule,
            vec![
                Ok(Round::More), // at 0: more to do
                Ok(Round::Idle), // at 0 again: caught up
                Err("down"),     // at 10
                Err("down"),     // at 20 (first failure: one interval)
                Err("down"),     // at 40 (doubled)
                Err("down"),     // at 70 (capped at 30)
                Ok(Round::Idle), // at 100: back, the failures forgotten
                Ok(Round::Idle), // at 110
            ],
        )
        .await;
        assert_eq!(starts, vec![0, 0, 10, 20, 40, 70, 100, 110, 120]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_worker_stops_while_it_waits() {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .expect("lazy pool");
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let worker = tokio::spawn(async move {
            run(
                &pool,
                Schedule::every("test", Duration::from_secs(3600)),
                stop,
                || async { Ok::<_, &str>(Round::Idle) },
            )
            .await
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(1), worker)
            .await
            .expect("stopped without waiting out its interval")
            .expect("joined");
    }

    #[test]
    fn backoff_doubles_from_the_interval_up_to_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(10), s(60), 1), s(10));
        assert_eq!(backoff(s(10), s(60), 2), s(20));
        assert_eq!(backoff(s(10), s(60), 3), s(40));
        assert_eq!(backoff(s(10), s(60), 4), s(60));
        assert_eq!(backoff(s(10), s(60), 200), s(60));
        // A cap below the interval never waits less than the interval.
        assert_eq!(backoff(s(10), s(1), 5), s(10));
    }
}
