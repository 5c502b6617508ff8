//! Invariant 6: a rebuild from the store, run during live writes and reads,
//! swaps in without failing a read, and afterwards the view equals, row by
//! row, a from-scratch rebuild.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::*;
use marketplace_projections::deployments::DeploymentProjection;
use marketplace_projections::tail;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_during_live_writes_never_fails_a_read_and_equals_a_fresh_one() {
    let app = Arc::new(spawn_app().await);
    let mut seeded = Vec::new();
    for i in 0..150 {
        seeded.push(app.request(&alice(), &vm_body(&format!("seed{i}"))).await);
    }
    let (last_id, last_v) = seeded.last().cloned().expect("seeded");
    app.read(&alice(), &last_id, last_v).await;

    let stop = CancellationToken::new();
    let written = Arc::new(AtomicUsize::new(0));
    let (reads, failed_reads) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for w in 0..3 {
        let (app, stop, written) = (app.clone(), stop.clone(), written.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.is_cancelled() {
                let r = app
                    .post(
                        "/v1/deployments",
                        &alice(),
                        &vm_body(&format!("live{w}x{i}")),
                    )
                    .await;
                assert_eq!(r.status(), 202);
                written.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        }));
    }
    for r in 0..3 {
        let (app, stop, reads, failed) = (
            app.clone(),
            stop.clone(),
            reads.clone(),
            failed_reads.clone(),
        );
        let id = seeded[r * 40].0.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let list = app.get("/v1/deployments?limit=20", &alice()).await;
                let detail = app.get(&format!("/v1/deployments/{id}"), &alice()).await;
                for response in [list, detail] {
                    reads.fetch_add(1, Ordering::SeqCst);
                    if response.status() != 200 {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }

    let written_before = written.load(Ordering::SeqCst);
    let replayed = tail::rebuild(&app.pool, &DeploymentProjection, 25)
        .await
        .expect("rebuild");
    let written_during = written.load(Ordering::SeqCst) - written_before;
    // Let the live runner work on the swapped-in tables for a moment.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.cancel();
    for t in tasks {
        t.await.expect("task");
    }
    assert!(
        replayed >= 150,
        "the rebuild read the store ({replayed} events)"
    );
    assert!(written_during > 0, "writes went on during the rebuild");
    assert!(reads.load(Ordering::SeqCst) > 0);
    assert_eq!(
        failed_reads.load(Ordering::SeqCst),
        0,
        "no read failed during the rebuild"
    );

    tail::catch_up(&app.pool, &DeploymentProjection, 100)
        .await
        .expect("catch up");
    let live = dump_views(&app.pool, &DeploymentProjection).await;
    let deployments = app.total_events().await;
    assert_eq!(
        live[0]["rows"].as_array().map(Vec::len),
        Some(deployments as usize),
        "every deployment is in the view"
    );

    // From scratch, with nothing else going on.
    tail::rebuild(&app.pool, &DeploymentProjection, 500)
        .await
        .expect("fresh rebuild");
    tail::catch_up(&app.pool, &DeploymentProjection, 100)
        .await
        .expect("catch up");
    let fresh = dump_views(&app.pool, &DeploymentProjection).await;
    assert_eq!(live, fresh, "replay equals live");

    let leftovers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rebuild\\_%' OR nspname LIKE 'retired\\_%'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("schemas");
    assert_eq!(leftovers, 0, "the rebuild cleans up after itself");
}

/// Every view in the registry, rebuilt from the store, equals what its
/// runner built live from the same events (the audit index, the TFT price
/// feed and the notifications among them).
#[tokio::test]
async fn every_projection_in_the_registry_rebuilds_to_what_it_built_live() {
    let app = spawn_app().await;
    crate::audit_search::seed_every_aggregate(&app).await;
    for projection in marketplace_projections::registry() {
        tail::catch_up(&app.pool, &projection, 100)
            .await
            .expect("catch up");
        let live = dump_views(&app.pool, &projection).await;
        let rows: usize = live
            .iter()
            .filter_map(|t| t["rows"].as_array().map(Vec::len))
            .sum();
        tail::rebuild(&app.pool, &projection, 7)
            .await
            .expect("rebuild");
        let rebuilt = dump_views(&app.pool, &projection).await;
        assert_eq!(live, rebuilt, "{}: replay equals live", projection.name());
        // The scenario raises no notification and founds no alliance.
        if !["notifications", "alliances"].contains(&projection.name()) {
            assert!(rows > 0, "{}: the scenario gave it rows", projection.name());
        }
    }
}

/// The set-based batch apply (what runners and rebuilds use) builds the
/// same rows as applying each event on its own (what a view built as of a
/// time uses), for every view in the registry.
#[tokio::test]
async fn set_based_batches_build_what_one_event_at_a_time_builds() {
    let app = spawn_app().await;
    crate::audit_search::seed_every_aggregate(&app).await;
    for i in 0..30 {
        app.request(&alice(), &vm_body(&format!("batch{i}"))).await;
    }
    let now = chrono::Utc::now() + chrono::Duration::seconds(1);
    for projection in marketplace_projections::registry() {
        tail::rebuild(&app.pool, &projection, 500)
            .await
            .expect("rebuild in batches");
        let schema = format!("one_by_one_{}", projection.name());
        marketplace_projections::as_of::build(&app.pool, &projection, now, &schema, 500)
            .await
            .expect("one event at a time");
        for table in projection.tables() {
            let dump = |from: String| {
                let pool = app.pool.clone();
                async move {
                    sqlx::query_scalar::<_, serde_json::Value>(&format!(
                        "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t::text), '[]') FROM {from} t"
                    ))
                    .fetch_one(&pool)
                    .await
                    .expect("dump")
                }
            };
            assert_eq!(
                dump(format!("public.{table}")).await,
                dump(format!("{schema}.{table}")).await,
                "{}: {table}",
                projection.name()
            );
        }
    }
}

/// A batch that carries the same request twice (a redelivery, as the
/// Kafka path may give) builds one row and one history line, on the
/// set-based path as on the per-event one.
#[tokio::test]
async fn a_request_delivered_twice_in_one_batch_is_applied_once() {
    let app = spawn_app_with(AppOptions {
        projections: false,
        ..AppOptions::default()
    })
    .await;
    let (id, _) = app.request(&alice(), &vm_body("twice")).await;
    let stored: marketplace_projections::StoredEvent = sqlx::query_as(
        "SELECT position, txid, aggregate_type, aggregate_id, sequence, event_type, event_version,
                payload, metadata, recorded_at FROM events WHERE aggregate_id = $1",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .expect("event");
    let batch = vec![stored.clone(), stored];
    let mut tx = app.pool.begin().await.expect("tx");
    let dead = marketplace_projections::apply_events(&mut tx, &DeploymentProjection, &batch, false)
        .await
        .expect("apply");
    let owners = marketplace_projections::apply_events(
        &mut tx,
        &marketplace_workers::notify::NotificationManager,
        &batch,
        false,
    )
    .await
    .expect("apply");
    tx.commit().await.expect("commit");
    assert_eq!(dead.map(|d| d.len()), Some(0), "applied, nothing dead");
    assert_eq!(
        owners.map(|d| d.len()),
        Some(0),
        "owners applied, nothing dead"
    );
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notification_owners WHERE deployment_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .expect("owners");
    assert_eq!(recorded, 1);
    let (views, history): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM deployment_views WHERE id = $1::uuid),
                (SELECT count(*) FROM deployment_history WHERE deployment_id = $1::uuid)",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .expect("counts");
    assert_eq!((views, history), (1, 1));
}

/// A rebuilt view keeps the live table's storage parameters: the
/// deployment view's fillfactor, which leaves room on each page for its
/// rows' in-place updates, would otherwise be lost at the first rebuild.
#[tokio::test]
async fn a_rebuilt_view_keeps_its_room_for_in_place_updates() {
    let app = spawn_app().await;
    let (id, v) = app.request(&alice(), &vm_body("roomy")).await;
    app.read(&alice(), &id, v).await;
    let options = || async {
        sqlx::query_scalar::<_, Option<Vec<String>>>(
            "SELECT reloptions FROM pg_class WHERE oid = 'public.deployment_views'::regclass",
        )
        .fetch_one(&app.pool)
        .await
        .expect("reloptions")
        .unwrap_or_default()
    };
    assert_eq!(options().await, vec!["fillfactor=70".to_string()]);
    tail::rebuild(&app.pool, &DeploymentProjection, 100)
        .await
        .expect("rebuild");
    assert_eq!(options().await, vec!["fillfactor=70".to_string()]);
    app.read(&alice(), &id, v).await;
}
