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

/// `marketplace dev` on a database of the harness's, until dropped.
struct DevServer {
    base: String,
    child: tokio::process::Child,
}

impl DevServer {
    async fn start() -> DevServer {
        let (_pool, database_url) = fresh_database().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let data = crate::common::scratch::dir().join(format!("dev-{}", uuid::Uuid::new_v4()));
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_marketplace"))
            .arg("dev")
            .env("DATABASE_URL", &database_url)
            .env("MARKETPLACE_DATA_DIR", &data)
            .env("MARKETPLACE_LISTEN", format!("127.0.0.1:{port}"))
            .env_remove("STRIPE_SECRET_KEY")
            .env_remove("GRID_PROXY_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start marketplace dev");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(res) = http.get(format!("{base}/healthz")).send().await {
                if res.status().is_success() {
                    return DevServer { base, child };
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("marketplace dev did not answer /healthz within 60 s");
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
async fn dev_mode_signs_in_as_anyone_through_the_console() {
    let dev = DevServer::start().await;
    let http = reqwest::Client::new();
    let config: Value = http
        .get(format!("{}/console/config.json", dev.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["auth"], json!({ "mode": "dev" }));

    let minted: Value = http
        .post(format!("{}/dev/token", dev.base))
        .json(&json!({ "sub": "alice", "roles": ["cloud-user"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(minted["expires_in"], 3600);
    let token = minted["token"].as_str().expect("token");
    let me = http
        .get(format!("{}/v1/me", dev.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
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
