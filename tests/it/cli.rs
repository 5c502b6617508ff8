//! The binary's configuration: wrong settings stop start-up naming the key,
//! production mode refuses the dev issuer, and `marketplace token` mints
//! tokens that the dev key set verifies.

use std::process::Command;

use marketplace_api::auth::{AuthConfig, Authenticator};
use marketplace_dev::keys::{self as dev_keys, SigningKey};
use marketplace_domain::Role;

fn marketplace() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_marketplace"));
    for var in [
        "DATABASE_URL",
        "JWT_JWKS_URL",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "MARKETPLACE_TFT_PRICE_USD",
        "KAFKA_BROKERS",
        "KAFKA_TOPIC_PREFIX",
        "PROJECTION_SOURCE",
        "PROJECTIONS",
    ] {
        c.env_remove(var);
    }
    c
}

fn stderr_of(c: &mut Command) -> String {
    let out = c.output().expect("run marketplace");
    assert!(!out.status.success(), "expected failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_kafka_path_names_what_is_missing_or_wrong() {
    let db = ["--database-url", "postgres://nobody@127.0.0.1:1/x"];
    let err = stderr_of(marketplace().arg("relay").args(db));
    assert!(err.contains("KAFKA_BROKERS"), "{err}");
    let err = stderr_of(
        marketplace()
            .args(["project", "--source", "kafka"])
            .args(db),
    );
    assert!(err.contains("KAFKA_BROKERS"), "{err}");
    let err = stderr_of(
        marketplace()
            .arg("relay")
            .args(db)
            .env("KAFKA_BROKERS", "127.0.0.1:9092")
            .env("KAFKA_TOPIC_PREFIX", "no spaces"),
    );
    assert!(err.contains("KAFKA_TOPIC_PREFIX"), "{err}");
    let err = stderr_of(
        marketplace()
            .arg("project")
            .args(db)
            .env("PROJECTIONS", "deployments,bogus"),
    );
    assert!(
        err.contains("bogus") && err.contains("PROJECTIONS"),
        "{err}"
    );
    let err = stderr_of(
        marketplace()
            .args(["project", "--source", "kafka", "--once"])
            .args(db)
            .env("KAFKA_BROKERS", "127.0.0.1:9092"),
    );
    assert!(err.contains("--once"), "{err}");
    let err = stderr_of(
        marketplace()
            .args(["dead-letters", "retry", "bogus"])
            .args(db),
    );
    assert!(
        err.contains("DATABASE_URL") || err.contains("bogus"),
        "{err}"
    );
}

#[test]
fn wrong_configuration_fails_naming_the_key() {
    let serve = || {
        let mut c = marketplace();
        c.args(["serve", "--database-url", "postgres://nobody@127.0.0.1:1/x"])
            .env("JWT_JWKS_URL", "http://127.0.0.1:1/jwks.json")
            .env("JWT_ISSUER", "https://issuer.test/")
            .env("JWT_AUDIENCE", "api");
        c
    };
    let err = stderr_of(serve().env("MARKETPLACE_TFT_PRICE_USD", "cheap"));
    assert!(err.contains("MARKETPLACE_TFT_PRICE_USD"), "{err}");
    let err = stderr_of(serve().env("MARKETPLACE_LISTEN", "nowhere"));
    assert!(err.contains("MARKETPLACE_LISTEN"), "{err}");
    let err = stderr_of(serve().env("MARKETPLACE_BODY_LIMIT", "12"));
    assert!(err.contains("MARKETPLACE_BODY_LIMIT"), "{err}");
    let err =
        stderr_of(marketplace().args(["serve", "--database-url", "postgres://x@127.0.0.1:1/x"]));
    assert!(
        err.contains("JWT_JWKS_URL"),
        "a missing setting is named: {err}"
    );
    let err = stderr_of(serve().env("MARKETPLACE_LISTEN", "127.0.0.1:0"));
    assert!(
        err.contains("DATABASE_URL"),
        "an unreachable database is named: {err}"
    );
}

#[test]
fn production_mode_refuses_the_dev_issuer() {
    let err = stderr_of(
        marketplace()
            .args(["serve", "--database-url", "postgres://nobody@127.0.0.1:1/x"])
            .env("JWT_JWKS_URL", "http://127.0.0.1:1/jwks.json")
            .env("JWT_ISSUER", dev_keys::DEV_ISSUER)
            .env("JWT_AUDIENCE", dev_keys::DEV_AUDIENCE),
    );
    assert!(err.contains("JWT_ISSUER") && err.contains("dev"), "{err}");
}

#[tokio::test]
async fn the_token_command_mints_what_the_dev_server_accepts() {
    let dir = crate::common::scratch::dir().join(format!("token-{}", uuid::Uuid::new_v4()));
    let out = marketplace()
        .args([
            "token",
            "--role",
            "cloud-user",
            "--role",
            "cloud-operator",
            "--sub",
            "alice",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .expect("token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string();

    // The dev server verifies with the key kept in the same data directory.
    let key = SigningKey::load_or_create(&dir.join("dev-signing-key.pem")).expect("key");
    let auth = Authenticator::new(AuthConfig {
        jwks_url: "http://127.0.0.1:1/unused".into(),
        issuer: dev_keys::DEV_ISSUER.into(),
        audience: dev_keys::DEV_AUDIENCE.into(),
        roles_claim: dev_keys::DEV_ROLES_CLAIM.into(),
        leeway_secs: 30,
    });
    auth.preload(&key.jwks()).await;
    let principal = auth.verify(&token).await.expect("accepted");
    assert_eq!(principal.subject, "alice");
    assert_eq!(principal.roles, vec![Role::CloudUser, Role::CloudOperator]);

    // A production authenticator with another issuer refuses it.
    let prod = Authenticator::new(AuthConfig {
        jwks_url: "http://127.0.0.1:1/unused".into(),
        issuer: "https://tenant.auth0.test/".into(),
        audience: "api".into(),
        roles_claim: "roles".into(),
        leeway_secs: 30,
    });
    prod.preload(&key.jwks()).await;
    assert!(prod.verify(&token).await.is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
