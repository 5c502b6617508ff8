//! The private PostgreSQL: start, stop, reuse; URL and version helpers.

use super::*;

fn unique_temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "marketplace-embedded-pg-{}-{nanos}",
        std::process::id()
    ))
}

#[tokio::test]
async fn start_stop_and_reuse_data_dir() {
    let root = unique_temp_dir();
    // A parent we create ourselves, so the chown-created-parents path runs
    // when the test is run as root.
    let data_dir = root.join("pgdata");
    let opts = EmbeddedOptions {
        data_dir: data_dir.clone(),
        port: 0,
        durable: false,
        max_connections: 20,
    };

    let pg = EmbeddedPostgres::start(opts.clone()).await.unwrap();
    assert_ne!(pg.port(), 0);
    assert!(data_dir.join("PG_VERSION").exists());
    pg.ensure_database("x").await.unwrap();
    // Idempotent.
    pg.ensure_database("x").await.unwrap();
    let mut conn = PgConnection::connect(&pg.url("x")).await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    sqlx::query("CREATE TABLE survives_restart (v int)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO survives_restart VALUES (42)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    pg.stop().await.unwrap();
    assert!(!data_dir.join("postmaster.pid").exists());

    // Simulate a crash leftover: a lock file naming a process that is gone.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    fs::write(
        data_dir.join("postmaster.pid"),
        format!("{dead_pid}\n{}\n", data_dir.display()),
    )
    .unwrap();

    // Second start reuses the cluster: the table is still there.
    let pg = EmbeddedPostgres::start(opts).await.unwrap();
    let mut conn = PgConnection::connect(&pg.url("x")).await.unwrap();
    let v: i32 = sqlx::query_scalar("SELECT v FROM survives_restart")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, 42);
    conn.close().await.unwrap();
    pg.stop().await.unwrap();

    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn url_encodes_database_name() {
    let pg = EmbeddedPostgres {
        child: None,
        port: 5433,
        data_dir: PathBuf::from("/nonexistent"),
        superuser: SUPERUSER.to_owned(),
    };
    assert_eq!(pg.url("app"), "postgres://postgres@127.0.0.1:5433/app");
    assert_eq!(
        pg.url("a b/c"),
        "postgres://postgres@127.0.0.1:5433/a%20b%2Fc"
    );
}

#[test]
fn versions_sort_numerically() {
    let mut v = [
        parse_version("9.6"),
        parse_version("15"),
        parse_version("10"),
    ];
    v.sort();
    assert_eq!(v.last().cloned().flatten(), Some(vec![15]));
    assert_eq!(parse_version("main"), None);
}
