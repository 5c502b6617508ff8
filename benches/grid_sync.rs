//! One full grid sync of an UNCHANGED catalog of 10,000 nodes.
//!
//! Everything runs in this process: a private PostgreSQL (durable: fsync,
//! synchronous_commit and full_page_writes on), migrations, the grid proxy
//! SIMULATOR on 127.0.0.1:0 serving a generated catalog (`Seed::generate`,
//! its clock fixed), and the grid sync worker with a manual clock set to the
//! simulator's. The first sync loads the catalog (one `NodeDiscovered` per
//! node, 8 commands at a time); the node projection then catches up; then
//! each timed sync reads the same grid again and must issue 0 commands.
//!
//! Printed per timed run: `fetch` (every page of `/nodes` over HTTP,
//! parsed), `view` (every stored snapshot read from `node_catalog`; runs
//! concurrently with `fetch`), `compare` (conversion and diff), and `total`
//! (the whole `sync_once`, including `info!` logging).
//!
//! Then, on the same 10,000 loaded nodes, catalog query latency: three
//! typical filters, each run BENCH_QUERIES times through
//! `nodes::catalog` (the function the API's `GET /v1/nodes` calls, one page
//! of 20), reporting p50 and p99.
//!
//! `cargo bench --bench grid_sync`. Environment: BENCH_NODES (10000),
//! BENCH_FARMS (400), BENCH_RUNS (5), BENCH_PAGE_SIZES (`100,1000`: the
//! client's default page, and a larger one), BENCH_DURABLE (1). Exits
//! non-zero if a timed sync issues any command.

use std::sync::Arc;
use std::time::{Duration, Instant};

use marketplace_app::grid::GridClient;
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use marketplace_dev::grid_sim::Seed;
use marketplace_dev::grid_sim::{self as sim, SimClock};
use marketplace_projections::nodes::NodeProjection;
use marketplace_projections::tail;
use marketplace_workers::grid::{GridSync, GridSyncOptions, ManualClock};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn env_num(name: &str, default: u32) -> u32 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
        Err(_) => default,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let nodes = env_num("BENCH_NODES", 10_000);
    let farms = env_num("BENCH_FARMS", 400);
    let runs = env_num("BENCH_RUNS", 5).max(1);
    let durable = env_num("BENCH_DURABLE", 1) != 0;
    let page_sizes: Vec<u32> = std::env::var("BENCH_PAGE_SIZES")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("BENCH_PAGE_SIZES: numbers"))
        .collect();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "grid sync bench: {nodes} nodes in {farms} farms, {runs} timed runs per page size, \
         {cpus} CPUs, PostgreSQL {}",
        if durable { "durable" } else { "non-durable" }
    );

    let dir = std::env::temp_dir().join(format!("marketplace-bench-grid-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = EmbeddedPostgres::start(EmbeddedOptions {
        data_dir: dir.join("pgdata"),
        port: 0,
        durable,
        max_connections: 100,
    })
    .await?;
    pg.ensure_database("bench").await?;
    let pool = marketplace::wiring::connect(&pg.url("bench").into(), 32).await?;
    marketplace::MIGRATOR.run(&pool).await?;

    let mut seed = Seed::generate(farms, nodes, 1);
    seed.now = Some(1_750_000_000);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let cancel = CancellationToken::new();
    let simulator = tokio::spawn(sim::serve(
        listener,
        seed,
        sim::SimOptions::default(),
        cancel.clone(),
    ));
    let clock: SimClock = reqwest::get(format!("{base}/sim/clock"))
        .await?
        .json()
        .await?;
    let clock =
        ManualClock::new(chrono::DateTime::from_timestamp(clock.now, 0).expect("simulated clock"));
    let worker = |page_size: u32| {
        GridSync::new(
            GridClient::new(&base)
                .expect("client")
                .with_page_size(page_size),
            pool.clone(),
            Arc::new(clock.clone()),
            GridSyncOptions::default(),
        )
    };

    let t = Instant::now();
    let load = worker(page_sizes[0]).sync_once().await?;
    println!(
        "first sync (load): {} nodes fetched, {} commands, {} events, {} failed in {} ms \
         (fetch {} ms, apply {} ms)",
        load.fetched,
        load.commands,
        load.events,
        load.failed,
        ms(t.elapsed()),
        ms(load.fetch),
        ms(load.apply)
    );
    let t = Instant::now();
    let applied = tail::catch_up(&pool, &NodeProjection, 500).await?;
    println!(
        "node projection caught up: {applied} events in {} ms",
        ms(t.elapsed())
    );

    let mut ok = true;
    for &page_size in &page_sizes {
        let w = worker(page_size);
        println!(
            "\nunchanged sync, page size {page_size} ({} pages):",
            nodes.div_ceil(page_size)
        );
        println!(
            "{:>4} {:>10} {:>10} {:>10} {:>10} {:>9}",
            "run", "fetch ms", "view ms", "compare ms", "total ms", "commands"
        );
        let (mut fetch, mut view, mut compare, mut total) = (vec![], vec![], vec![], vec![]);
        for run in 1..=runs {
            let t = Instant::now();
            let stats = w.sync_once().await?;
            let elapsed = t.elapsed();
            println!(
                "{run:>4} {:>10} {:>10} {:>10} {:>10} {:>9}",
                ms(stats.fetch),
                ms(stats.view),
                ms(stats.compare),
                ms(elapsed),
                stats.commands
            );
            if stats.commands != 0 || stats.events != 0 || stats.unchanged != nodes as usize {
                eprintln!("an unchanged sync issued commands: {stats:?}");
                ok = false;
            }
            fetch.push(stats.fetch);
            view.push(stats.view);
            compare.push(stats.compare);
            total.push(elapsed);
        }
        println!(
            "  med {:>10} {:>10} {:>10} {:>10}",
            ms(median(fetch)),
            ms(median(view)),
            ms(median(compare)),
            ms(median(total))
        );
    }

    catalog_latency(&pool).await?;

    cancel.cancel();
    let _ = simulator.await;
    pool.close().await;
    pg.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    if !ok {
        anyhow::bail!("an unchanged sync issued commands");
    }
    Ok(())
}

/// p50/p99 of three typical catalog queries.
async fn catalog_latency(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    use marketplace_domain::node::NodeStatus;
    use marketplace_domain::pricing::PricingPolicy;
    use marketplace_projections::nodes::{catalog, CatalogQuery, Sort};

    let queries = env_num("BENCH_QUERIES", 300) as usize;
    let base = || CatalogQuery {
        policy: PricingPolicy::default(),
        limit: 20,
        ..Default::default()
    };
    let cases: Vec<(&str, CatalogQuery)> = vec![
        (
            "up nodes with >= 8 free vCPUs and 16 GiB, by node id",
            CatalogQuery {
                min_free_cru: Some(8),
                min_free_mru: Some(16 << 30),
                status: vec![NodeStatus::Up],
                ..base()
            },
        ),
        (
            "certified in one country with public IPv4, cheapest first",
            CatalogQuery {
                certified: Some(true),
                has_ipv4: Some(true),
                country: Some("Belgium".into()),
                sort: Sort::PriceAsc,
                ..base()
            },
        ),
        (
            "GPU nodes, rentable, most free memory first",
            CatalogQuery {
                has_gpu: Some(true),
                rentable: Some(true),
                sort: Sort::FreeMruDesc,
                ..base()
            },
        ),
    ];
    println!("\ncatalog query latency over the loaded nodes ({queries} runs each, page of 20):");
    println!(
        "{:<62} {:>6} {:>9} {:>9}",
        "query", "rows", "p50 ms", "p99 ms"
    );
    for (name, query) in cases {
        let mut times = Vec::with_capacity(queries);
        let mut rows = 0;
        for _ in 0..queries {
            let t = Instant::now();
            let (page, _) = catalog(pool, &query).await?;
            times.push(t.elapsed());
            rows = page.len();
        }
        times.sort();
        let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!("{name:<62} {rows:>6} {:>9} {:>9}", ms(p(0.50)), ms(p(0.99)));
    }
    Ok(())
}
