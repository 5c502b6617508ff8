//! The Kafka path survives a PostgreSQL restart: the relay loses its lock
//! and its connection, the workers their transactions; all reconnect, and
//! no event is lost or applied twice. It runs on a private PostgreSQL
//! server of its own, never the one the other tests share, because it
//! stops and restarts it.

use std::time::Duration;

use crate::common::kafka::*;
use crate::common::*;
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use sqlx::postgres::PgPoolOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_and_workers_survive_a_postgres_restart() {
    let dir = scratch::dir().join("pg-restart");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let options = || EmbeddedOptions {
        data_dir: dir.join("pgdata"),
        port,
        durable: false,
        max_connections: 100,
    };
    let pg = EmbeddedPostgres::start(options())
        .await
        .expect("start PostgreSQL");
    pg.ensure_database("restart").await.expect("database");
    let url = pg.url("restart");
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .expect("connect");
    marketplace::MIGRATOR.run(&pool).await.expect("migrate");
    let app = spawn_app_on(
        pool,
        url,
        AppOptions {
            projections: false,
            ..AppOptions::default()
        },
    )
    .await;
    let config = config_for(&shared_broker().await);
    spawn_relay(&app, &config, &app.cancel);
    spawn_workers(&app, &config, &app.cancel);

    for i in 0..20 {
        app.request(&alice(), &vm_body(&format!("before{i}"))).await;
    }
    wait_until("the views caught up", LIMIT, || views_caught_up(&app.pool)).await;

    pg.stop().await.expect("stop PostgreSQL");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pg = EmbeddedPostgres::start(options())
        .await
        .expect("restart PostgreSQL");

    for i in 0..20 {
        app.request(&alice(), &vm_body(&format!("after{i}"))).await;
    }
    wait_until("the relay caught up after the restart", LIMIT, || {
        relay_at_head(&app.pool)
    })
    .await;
    wait_until("the views caught up after the restart", LIMIT, || {
        views_caught_up(&app.pool)
    })
    .await;
    assert_eq!(
        scalar(&app.pool, "SELECT count(*) FROM deployment_views").await,
        40
    );
    assert_views_exact(&app.pool).await;
    app.cancel.cancel();
    drop(app);
    pg.stop().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
