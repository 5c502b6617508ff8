//! The web console: the API serves it at `/` with the SPA's routes falling
//! back to `index.html`, never in place of an API path; `serve` mints no
//! tokens; dev mode's `POST /dev/token` mints ones its own API accepts.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{fresh_database, spawn_app};

#[tokio::test]
async fn the_console_is_served_at_the_root_and_its_routes_fall_back_to_its_page() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    for path in ["/", "/deployments/3f1c", "/wallet"] {
        let res = http.get(app.url(path)).send().await.expect("get");
        assert_eq!(res.status(), 200, "{path}");
        let kind = res.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("text/html"), "{path}: {kind}");
        assert_eq!(res.headers()["cache-control"], "no-cache", "{path}");
        assert!(res.text().await.unwrap().contains("<html"), "{path}");
    }
    // API paths keep their problem 404s; a missing file is not the page.
    for path in [
        "/v1/nothing-here",
        "/dev/nothing",
        "/console/nothing",
        "/x.js",
    ] {
        let res = http.get(app.url(path)).send().await.expect("get");
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
    }
    // Without an OIDC client id the console says it cannot sign in, and
    // `serve` (which this harness is) mints no tokens.
    let config: Value = http
        .get(app.url("/console/config.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        config,
        json!({ "auth": { "mode": "unconfigured" }, "stripe": null })
    );
    let res = http
        .post(app.url("/dev/token"))
        .json(&json!({ "sub": "mallory", "roles": ["cloud-operator"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// `marketplace dev` or `serve` on a database of the harness's, until dropped.
struct Spawned {
    base: String,
    log: std::path::PathBuf,
    child: tokio::process::Child,
}

impl Spawned {
    async fn start(command: &str, env: &[(&str, String)]) -> Spawned {
        let (_pool, database_url) = fresh_database().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let data =
            crate::common::scratch::dir().join(format!("{command}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&data).expect("data dir");
        let log = data.join("stderr.log");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_marketplace"));
        cmd.arg(command)
            .env("DATABASE_URL", &database_url)
            .env("MARKETPLACE_DATA_DIR", &data)
            .env("MARKETPLACE_LISTEN", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "text");
        for var in [
            "STRIPE_SECRET_KEY",
            "GRID_PROXY_URL",
            "JWT_JWKS_URL",
            "JWT_ISSUER",
            "JWT_AUDIENCE",
            "TFCHAIN_URL",
            "MARKETPLACE_CHAIN_SEED",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v.replace("{data}", &data.display().to_string()));
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .kill_on_drop(true)
            .spawn()
            .expect("start marketplace");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(res) = http.get(format!("{base}/healthz")).send().await {
                if res.status().is_success() {
                    return Spawned { base, log, child };
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "marketplace {command} did not answer /healthz within 60 s: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Signs in as `sub` the way the console does, and reads `path` with it.
    async fn sign_in_as(&self, sub: &str, role: &str, path: &str) -> Value {
        let http = reqwest::Client::new();
        let minted: Value = http
            .post(format!("{}/dev/token", self.base))
            .json(&json!({ "sub": sub, "roles": [role] }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(minted["expires_in"], 3600);
        let token = minted["token"].as_str().expect("token");
        let res = http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        res.json().await.unwrap()
    }

    async fn config(&self) -> Value {
        reqwest::get(format!("{}/console/config.json", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
async fn dev_mode_signs_in_as_anyone_through_the_console() {
    let dev = Spawned::start("dev", &[]).await;
    let http = reqwest::Client::new();
    assert_eq!(dev.config().await["auth"], json!({ "mode": "dev" }));
    let me = dev.sign_in_as("alice", "cloud-user", "/v1/me").await;
    assert_eq!(me["user_id"], "alice", "{me}");

    // A role that does not exist, or none, is refused and mints nothing.
    for body in [
        json!({ "sub": "alice", "roles": ["root"] }),
        json!({ "sub": "alice", "roles": [] }),
        json!({ "sub": "", "roles": ["cloud-user"] }),
    ] {
        let res = http
            .post(format!("{}/dev/token", dev.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{body}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
}

/// `docker compose up` without an Auth0 tenant: `serve` runs a development
/// issuer, says so loudly, and the console signs in with it.
#[tokio::test]
async fn serve_without_an_issuer_runs_a_development_one_and_says_so() {
    let serve = Spawned::start(
        "serve",
        &[(
            "MARKETPLACE_DEV_ISSUER_KEY",
            "{data}/keys/dev-signing-key.pem".to_string(),
        )],
    )
    .await;
    assert!(
        serve.log().contains("DEVELOPMENT issuer"),
        "{}",
        serve.log()
    );
    assert_eq!(serve.config().await["auth"], json!({ "mode": "dev" }));
    // (No projection runs beside this `serve`: a list, not the user.)
    let listed = serve
        .sign_in_as("bob", "cloud-operator", "/v1/deployments")
        .await;
    assert!(listed["items"].is_array(), "{listed}");
    let forged = reqwest::Client::new()
        .get(format!("{}/v1/deployments", serve.base))
        .bearer_auth("e30.e30.e30")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
}
