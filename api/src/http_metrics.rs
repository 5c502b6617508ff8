//! HTTP metrics: requests and their latency per method, route template
//! (`/v1/deployments/{id}`, never the raw path, so ids do not multiply the
//! series) and status, as a Prometheus counter and histogram. Per replica:
//! unlike the figures `/metrics` reads from the database, these count what
//! this process answered, so a scraper sums them over replicas. Latency is
//! the time to the response's head (a server-sent events stream counts
//! until it starts).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// Bucket bounds, in seconds.
const BOUNDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of requests no route matched (the 404 fallback).
const UNMATCHED: &str = "unmatched";

#[derive(Debug, Default)]
struct Series {
    /// Per bucket, not cumulative (the last one is above every bound).
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_us: AtomicU64,
}

type Key = (String, String, u16);

/// The counters of one API replica.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    series: RwLock<HashMap<Key, Arc<Series>>>,
}

impl HttpMetrics {
    /// Records one answer.
    pub fn observe(&self, method: &str, route: &str, status: u16, took: Duration) {
        let key = (method.to_string(), route.to_string(), status);
        let found = self
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let series = match found {
            Some(s) => s,
            None => self
                .series
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_default()
                .clone(),
        };
        let secs = took.as_secs_f64();
        let bucket = BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BOUNDS.len());
        series.buckets[bucket].fetch_add(1, Relaxed);
        series
            .sum_us
            .fetch_add(took.as_micros().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    /// Appends the counter and the histogram in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<&Key> = series.keys().collect();
        keys.sort();
        let label = |(method, route, status): &Key| {
            format!(
                "method=\"{}\",route=\"{}\",status=\"{status}\"",
                escape(method),
                escape(route)
            )
        };
        let _ = writeln!(out, "# HELP marketplace_http_requests_total HTTP requests this replica answered, by method, route template and status.");
        let _ = writeln!(out, "# TYPE marketplace_http_requests_total counter");
        for key in &keys {
            let s = &series[*key];
            let count: u64 = s.buckets.iter().map(|b| b.load(Relaxed)).sum();
            let _ = writeln!(
                out,
                "marketplace_http_requests_total{{{}}} {count}",
                label(key)
            );
        }
        let _ = writeln!(out, "# HELP marketplace_http_request_duration_seconds Time to the response's head, by method, route template and status.");
        let _ = writeln!(
            out,
            "# TYPE marketplace_http_request_duration_seconds histogram"
        );
        for key in &keys {
            let s = &series[*key];
            let labels = label(key);
            let mut cumulative = 0;
            for (i, bound) in BOUNDS.iter().enumerate() {
                cumulative += s.buckets[i].load(Relaxed);
                let _ = writeln!(
                    out,
                    "marketplace_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += s.buckets[BOUNDS.len()].load(Relaxed);
            let _ = writeln!(
                out,
                "marketplace_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
            );
            let _ = writeln!(
                out,
                "marketplace_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_us.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "marketplace_http_request_duration_seconds_count{{{labels}}} {cumulative}"
            );
        }
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The middleware: times the request and records its answer.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    state
        .http_metrics
        .observe(&method, &route, response.status().as_u16(), start.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_labelled_by_template() {
        let m = HttpMetrics::default();
        m.observe(
            "GET",
            "/v1/deployments/{id}",
            200,
            Duration::from_micros(800),
        );
        m.observe(
            "GET",
            "/v1/deployments/{id}",
            200,
            Duration::from_millis(30),
        );
        m.observe("GET", "/v1/deployments/{id}", 404, Duration::from_secs(20));
        let mut out = String::new();
        m.render(&mut out);
        let l = "method=\"GET\",route=\"/v1/deployments/{id}\",status=\"200\"";
        assert!(
            out.contains(&format!("marketplace_http_requests_total{{{l}}} 2")),
            "{out}"
        );
        assert!(
            out.contains(&format!("_bucket{{{l},le=\"0.001\"}} 1")),
            "{out}"
        );
        assert!(
            out.contains(&format!("_bucket{{{l},le=\"0.025\"}} 1")),
            "{out}"
        );
        assert!(
            out.contains(&format!("_bucket{{{l},le=\"0.05\"}} 2")),
            "{out}"
        );
        assert!(out.contains(&format!("_count{{{l}}} 2")), "{out}");
        let l404 = "method=\"GET\",route=\"/v1/deployments/{id}\",status=\"404\"";
        assert!(
            out.contains(&format!("_bucket{{{l404},le=\"10\"}} 0")),
            "{out}"
        );
        assert!(
            out.contains(&format!("_bucket{{{l404},le=\"+Inf\"}} 1")),
            "{out}"
        );
    }
}
