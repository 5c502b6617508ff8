//! Lets a read wait, bounded, until its view has caught up with a version:
//! projection runners notify the `views` channel when they commit, and
//! waiting readers look again on each notification (and every 100 ms in case
//! one is missed). Long-lived readers (event streams) subscribe to the same
//! notifications.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A counter that moves whenever some view committed.
#[derive(Clone)]
pub struct ViewWatcher {
    rx: watch::Receiver<u64>,
}

impl ViewWatcher {
    /// Starts listening; the task ends with `cancel`.
    pub fn spawn(pool: PgPool, cancel: CancellationToken) -> Self {
        let (tx, rx) = watch::channel(0u64);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            while !cancel.is_cancelled() {
                let mut listener = match PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for view changes; reads poll meanwhile");
                        tokio::select! { _ = tokio::time::sleep(backoff) => {}, _ = cancel.cancelled() => return }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                };
                if let Err(e) = listener.listen("views").await {
                    tracing::warn!(error = %e, "cannot listen for view changes");
                    continue;
                }
                backoff = Duration::from_millis(100);
                loop {
                    tokio::select! {
                        n = listener.recv() => match n {
                            Ok(_) => { tx.send_modify(|c| *c = c.wrapping_add(1)); }
                            Err(e) => { tracing::warn!(error = %e, "view notifications lost; reconnecting"); break; }
                        },
                        _ = cancel.cancelled() => return,
                    }
                }
            }
        });
        Self { rx }
    }

    /// A long-lived reader's wake-ups (an event stream): each [`ViewChanges::next`]
    /// returns once some view committed after the previous one returned.
    pub fn subscribe(&self) -> ViewChanges {
        let mut rx = self.rx.clone();
        rx.mark_unchanged();
        ViewChanges { rx }
    }

    /// Calls `look` until it answers `Some`, or `timeout` passes (`None`).
    pub async fn wait_for<T, F, Fut>(
        &self,
        timeout: Duration,
        mut look: F,
    ) -> Result<Option<T>, sqlx::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, sqlx::Error>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.rx.clone();
        loop {
            rx.mark_unchanged();
            if let Some(found) = look().await? {
                return Ok(Some(found));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let nap = (deadline - now).min(Duration::from_millis(100));
            let _ = tokio::time::timeout(nap, rx.changed()).await;
        }
    }
}

/// Wake-ups of one long-lived reader, from [`ViewWatcher::subscribe`].
pub struct ViewChanges {
    rx: watch::Receiver<u64>,
}

/// Why [`ViewChanges::next`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Some view committed since the last wake-up (or since subscribing).
    Changed,
    /// Nothing was heard within the wait: look anyway, in case a
    /// notification was lost while the listener reconnected.
    TimedOut,
    /// The watcher has stopped: the server is shutting down.
    Closed,
}

impl ViewChanges {
    /// Waits until some view commits after the previous wake-up, or `max`
    /// passes. A commit that lands while the caller is reading (between two
    /// calls) wakes the next call at once, so none is missed.
    pub async fn next(&mut self, max: Duration) -> Wake {
        match tokio::time::timeout(max, self.rx.changed()).await {
            Ok(Ok(())) => Wake::Changed,
            Ok(Err(_)) => Wake::Closed,
            Err(_) => Wake::TimedOut,
        }
    }
}

/// Reads one row a caller may see, waiting (bounded by `wait`) until its
/// version reaches `min_version`: a row the caller may not see answers 404
/// at once; a visible row that stays behind answers 503 (retry shortly).
pub async fn read_visible<T, F, Fut>(
    views: &ViewWatcher,
    wait: Duration,
    min_version: i64,
    fetch: F,
    visible: impl Fn(&T) -> bool,
    version: impl Fn(&T) -> i64,
) -> Result<T, crate::error::ApiError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, sqlx::Error>>,
{
    use crate::error::ApiError;
    let wait = if min_version > 0 {
        wait
    } else {
        Duration::ZERO
    };
    let found = views
        .wait_for(wait, || {
            let row = fetch();
            let (visible, version) = (&visible, &version);
            async move {
                Ok(row
                    .await?
                    .filter(|r| !visible(r) || version(r) >= min_version))
            }
        })
        .await?;
    match found {
        Some(row) if visible(&row) => Ok(row),
        Some(_) => Err(ApiError::NotFound),
        None => match fetch().await? {
            Some(row) if visible(&row) => Err(ApiError::ViewLagging),
            _ => Err(ApiError::NotFound),
        },
    }
}
