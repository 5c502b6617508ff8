//! Rate limiting and HTTP metrics: a burst past a budget gets 429 with
//! `Retry-After` and a problem document, across two API replicas sharing
//! one database; budgets are separate (commands, reads, per subject; per
//! address without a token; the webhook intake); a limited request changes
//! nothing; `/metrics` counts requests per route template and status and
//! the limited ones, and `serve` keeps it off the API's address and behind
//! its token.

use std::process::Stdio;
use std::time::{Duration, Instant};

use marketplace_api::rate_limit::{Budget, RateLimitConfig};
use serde_json::{json, Value};

use crate::common::*;

fn limits(f: impl FnOnce(&mut RateLimitConfig)) -> AppOptions {
    let mut config = generous_rate_limits();
    f(&mut config);
    AppOptions {
        rate_limit: config,
        ..AppOptions::default()
    }
}

/// Asserts a 429 problem document with `Retry-After`; returns the seconds.
async fn expect_limited(r: reqwest::Response) -> u64 {
    let retry_after: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a 429 says when to retry");
    assert!(retry_after >= 1);
    assert_eq!(
        r.headers().get("ratelimit-remaining").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    let problem = expect_problem(r, 429).await;
    assert_eq!(problem["type"], "/problems/rate-limited");
    retry_after
}

async fn scrape(app: &TestApp) -> String {
    let r = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), 200);
    r.text().await.expect("text")
}

/// The value of the sample `name{labels}` in a scrape (0 when absent).
fn sample(scrape: &str, series: &str) -> u64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map_or(0, |v| v.trim().parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_across_two_replicas_stays_within_one_global_budget() {
    // 10 commands at once, then one every 10 s; replicas lease up to 4.
    let budget = Budget::new(6, 10);
    let options = || {
        limits(|c| {
            c.commands = budget;
            c.lease_max = 4;
        })
    };
    let (pool, url) = fresh_database().await;
    let first = spawn_app_on(pool.clone(), url.clone(), options()).await;
    let second = spawn_app_on(
        pool,
        url,
        AppOptions {
            projections: false,
            ..options()
        },
    )
    .await;
    let token = alice();
    let started = Instant::now();
    let (mut allowed, mut limited) = (0u64, 0u64);
    for i in 0..40 {
        let app = if i % 2 == 0 { &first } else { &second };
        let r = app
            .post("/v1/deployments", &token, &vm_body(&format!("vm{i}")))
            .await;
        match r.status().as_u16() {
            202 => allowed += 1,
            429 => {
                expect_limited(r).await;
                limited += 1;
            }
            other => panic!("unexpected {other}: {}", r.text().await.unwrap_or_default()),
        }
    }
    let elapsed = started.elapsed();
    // The stated bound: burst + rate × (elapsed + lease lifetime).
    let refill = ((elapsed.as_secs_f64() + 1.0) * f64::from(budget.per_minute) / 60.0) as u64;
    let bound = u64::from(budget.burst) + refill;
    assert!(
        allowed <= bound,
        "{allowed} commands allowed across both replicas; the global budget is {bound}"
    );
    assert!(
        allowed >= u64::from(budget.burst) / 2,
        "the budget was mostly usable: {allowed} allowed"
    );
    assert_eq!(allowed + limited, 40);
    // Each replica limited some: the budget is one, not one per replica.
    let (a, b) = (scrape(&first).await, scrape(&second).await);
    let limited_series =
        "marketplace_rate_limit_requests_total{budget=\"commands\",outcome=\"limited\"}";
    assert!(sample(&a, limited_series) > 0 && sample(&b, limited_series) > 0);
    assert_eq!(
        sample(&a, limited_series) + sample(&b, limited_series),
        limited
    );
    // A limited request changes nothing: one deployment per allowed one.
    let deployments: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT aggregate_id) FROM events WHERE aggregate_type = 'deployment'",
    )
    .fetch_one(&first.pool)
    .await
    .expect("count");
    assert_eq!(deployments as u64, allowed);
}

#[tokio::test]
async fn commands_reads_and_subjects_have_separate_budgets() {
    let app = spawn_app_with(limits(|c| {
        c.commands = Budget::new(1, 3);
        c.reads = Budget::new(1, 5);
    }))
    .await;
    for i in 0..3 {
        app.request(&alice(), &vm_body(&format!("vm{i}"))).await;
    }
    let before = app.total_events().await;
    let r = app
        .post("/v1/deployments", &alice(), &vm_body("one-too-many"))
        .await;
    let retry_after = expect_limited(r).await;
    assert!(
        (50..=60).contains(&retry_after),
        "one command a minute: the next in about a minute, got {retry_after}"
    );
    assert_eq!(
        app.total_events().await,
        before,
        "the refused command did nothing"
    );
    // Reads are a budget of their own, and so is every other subject.
    let r = app.get("/v1/deployments", &alice()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["ratelimit-limit"], "5");
    app.request(&bob(), &vm_body("bobs")).await;
    // The same request through an Idempotency-Key is refused the same way.
    let r = app
        .client
        .post(app.url("/v1/deployments"))
        .bearer_auth(alice())
        .header("idempotency-key", "after-the-limit")
        .json(&vm_body("keyed"))
        .send()
        .await
        .expect("send");
    expect_limited(r).await;
    let keys: i64 =
        sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE key = 'after-the-limit'")
            .fetch_one(&app.pool)
            .await
            .expect("keys");
    assert_eq!(keys, 0, "a refused request claims no Idempotency-Key");
    // Reads run out on their own.
    for _ in 0..4 {
        assert_eq!(app.get("/v1/deployments", &alice()).await.status(), 200);
    }
    expect_limited(app.get("/v1/deployments", &alice()).await).await;
}

#[tokio::test]
async fn requests_without_a_token_are_limited_per_address() {
    let app = spawn_app_with(limits(|c| {
        c.anonymous = Budget::new(1, 3);
        c.webhook = Budget::new(1, 2);
        c.trusted_proxies = vec!["127.0.0.1".parse().expect("proxy")];
    }))
    .await;
    let from = |address: &'static str| {
        app.client
            .get(app.url("/v1/openapi.json"))
            .header("x-forwarded-for", address)
    };
    for _ in 0..3 {
        assert_eq!(
            from("203.0.113.1").send().await.expect("send").status(),
            200
        );
    }
    expect_limited(from("203.0.113.1").send().await.expect("send")).await;
    // A bad token is no way around it: it spends the same address's budget.
    let r = app
        .client
        .get(app.url("/v1/deployments"))
        .bearer_auth("not-a-token")
        .header("x-forwarded-for", "203.0.113.1, 10.0.0.1")
        .send()
        .await
        .expect("send");
    expect_limited(r).await;
    // Another client address behind the trusted proxy has its own budget,
    // and a valid token its subject's.
    assert_eq!(
        from("203.0.113.2").send().await.expect("send").status(),
        200
    );
    let r = app
        .client
        .get(app.url("/v1/deployments"))
        .bearer_auth(alice())
        .header("x-forwarded-for", "203.0.113.1")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    // Probes are never limited.
    for _ in 0..10 {
        let r = app
            .client
            .get(app.url("/healthz"))
            .header("x-forwarded-for", "203.0.113.1")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    }
    // The webhook intake has its stricter budget: unsigned is 400 until it is spent.
    let hook = || {
        app.client
            .post(app.url("/v1/webhooks/stripe"))
            .header("x-forwarded-for", "198.51.100.7")
            .body("{}")
            .send()
    };
    for _ in 0..2 {
        assert_eq!(hook().await.expect("send").status(), 400);
    }
    expect_limited(hook().await.expect("send")).await;
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_inbox")
        .fetch_one(&app.pool)
        .await
        .expect("inbox");
    assert_eq!(inbox, 0);

    // Without a trusted proxy, X-Forwarded-For is the client's say only.
    let direct = spawn_app_with(limits(|c| c.anonymous = Budget::new(1, 2))).await;
    for (i, address) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .iter()
        .enumerate()
    {
        let r = direct
            .client
            .get(direct.url("/v1/openapi.json"))
            .header("x-forwarded-for", *address)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), if i < 2 { 200 } else { 429 });
    }
}

#[tokio::test]
async fn every_limited_operation_documents_429() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    let shared = &doc["components"]["responses"]["RateLimited"];
    assert!(shared["headers"]["Retry-After"].is_object(), "{shared:#}");
    assert_eq!(
        shared["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            let documented = operation["responses"]["429"]["$ref"]
                == json!("#/components/responses/RateLimited");
            let probe = ["/healthz", "/readyz", "/metrics"].contains(&path.as_str());
            assert_eq!(documented, !probe, "{method} {path}");
            operations += 1;
        }
    }
    assert!(operations > 50);
}

#[tokio::test]
async fn metrics_count_requests_per_route_template_and_the_limited_ones() {
    let app = spawn_app_with(limits(|c| c.commands = Budget::new(1, 1))).await;
    let (id, _) = app.request(&alice(), &vm_body("web1")).await;
    app.read(&alice(), &id, 1).await;
    let unknown = uuid::Uuid::new_v4();
    let r = app
        .get(&format!("/v1/deployments/{unknown}"), &alice())
        .await;
    assert_eq!(r.status(), 404);
    expect_limited(
        app.post("/v1/deployments", &alice(), &vm_body("web2"))
            .await,
    )
    .await;
    let text = scrape(&app).await;

    let read = "method=\"GET\",route=\"/v1/deployments/{id}\"";
    assert_eq!(
        sample(
            &text,
            &format!("marketplace_http_requests_total{{{read},status=\"200\"}}")
        ),
        1,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("marketplace_http_requests_total{{{read},status=\"404\"}}")
        ),
        1
    );
    assert_eq!(
        sample(
            &text,
            &format!("marketplace_http_request_duration_seconds_bucket{{{read},status=\"404\",le=\"+Inf\"}}")
        ),
        1
    );
    assert!(text.contains(&format!(
        "marketplace_http_request_duration_seconds_sum{{{read},status=\"200\"}}"
    )));
    assert!(text.contains("# TYPE marketplace_http_request_duration_seconds histogram"));
    assert!(
        !text.contains(&unknown.to_string()),
        "no raw paths as labels"
    );
    let command = "method=\"POST\",route=\"/v1/deployments\"";
    assert_eq!(
        sample(
            &text,
            &format!("marketplace_http_requests_total{{{command},status=\"202\"}}")
        ),
        1
    );
    assert_eq!(
        sample(
            &text,
            &format!("marketplace_http_requests_total{{{command},status=\"429\"}}")
        ),
        1
    );
    let outcome = |budget: &str, outcome: &str| {
        sample(
            &text,
            &format!("marketplace_rate_limit_requests_total{{budget=\"{budget}\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(outcome("commands", "allowed"), 1);
    assert_eq!(outcome("commands", "limited"), 1);
    assert!(outcome("reads", "allowed") >= 2);
    assert_eq!(outcome("reads", "limited"), 0);
}

/// `marketplace serve` with `METRICS_ADDR` and `METRICS_TOKEN`: `/metrics`
/// is not on the API's address, and its own answers only to the token.
#[tokio::test]
async fn serve_keeps_metrics_off_the_api_address_and_behind_its_token() {
    let (_pool, database_url) = fresh_database().await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let jwks = serde_json::to_value(key().jwks()).expect("jwks");
    let (jwks_url, _) = serve_jwks(jwks, cancel.clone()).await;
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port()
    };
    let (api_port, metrics_port) = (port(), port());
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_marketplace"));
    serve
        .arg("serve")
        .env("DATABASE_URL", &database_url)
        .env("MARKETPLACE_LISTEN", format!("127.0.0.1:{api_port}"))
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("METRICS_TOKEN", "scrape-secret")
        .env("JWT_JWKS_URL", &jwks_url)
        .env("JWT_ISSUER", ISSUER)
        .env("JWT_AUDIENCE", AUDIENCE)
        .env("JWT_ROLES_CLAIM", ROLES_CLAIM)
        .env("RUST_LOG", "warn")
        .env_remove("TFCHAIN_URL")
        .env_remove("MARKETPLACE_CHAIN_SEED")
        .env_remove("STRIPE_SECRET_KEY")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    let _child = serve.spawn().expect("spawn serve");
    let http = reqwest::Client::new();
    let (api, metrics) = (
        format!("http://127.0.0.1:{api_port}"),
        format!("http://127.0.0.1:{metrics_port}/metrics"),
    );
    let mut up = false;
    for _ in 0..200 {
        if http.get(format!("{api}/healthz")).send().await.is_ok()
            && http.get(&metrics).send().await.is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "serve came up");
    // Something to count.
    let r = http
        .get(format!("{api}/v1/deployments"))
        .bearer_auth(alice())
        .send()
        .await
        .expect("read");
    assert_eq!(r.status(), 200);

    let on_api = http
        .get(format!("{api}/metrics"))
        .send()
        .await
        .expect("send");
    expect_problem(on_api, 404).await;
    let on_api = http
        .get(format!("{api}/metrics"))
        .bearer_auth("scrape-secret")
        .send()
        .await
        .expect("send");
    expect_problem(on_api, 404).await;
    expect_problem(http.get(&metrics).send().await.expect("send"), 401).await;
    let wrong = http
        .get(&metrics)
        .bearer_auth("guess")
        .send()
        .await
        .expect("send");
    expect_problem(wrong, 401).await;
    let scraped = http
        .get(&metrics)
        .bearer_auth("scrape-secret")
        .send()
        .await
        .expect("send");
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.expect("text");
    assert_eq!(
        sample(
            &text,
            "marketplace_http_requests_total{method=\"GET\",route=\"/v1/deployments\",status=\"200\"}"
        ),
        1,
        "{text}"
    );
    cancel.cancel();
}
