//! What the benches share: token settings, knobs from the environment,
//! percentiles, the request body they send, and the machine line they print.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{json, Value};

pub const ISSUER: &str = "https://issuer.bench/";
pub const AUDIENCE: &str = "marketplace-api";
pub const ROLES_CLAIM: &str = "https://marketplace.bench/roles";

/// A numeric knob from the environment; a value that is not a number stops the bench.
pub fn env_num(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
        Err(_) => default,
    }
}

/// The `q` quantile (0..=1) of sorted durations, in milliseconds.
pub fn pct(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    ms(sorted[rank - 1])
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The deployment request every bench sends.
pub fn vm_body(name: &str) -> Value {
    json!({
        "name": name,
        "spec": {
            "kind": "vm",
            "size": { "cpu": 2, "memory_mib": 4096, "rootfs_gb": 20 },
            "disks_gb": [50],
            "public_ipv4": true,
            "image": "https://hub.grid.tf/tf-official-apps/base:latest.flist",
            "ssh_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqtest alice@laptop"
        },
        "placement": { "country": "Belgium", "certified_only": false, "min_uptime_bps": 9500 }
    })
}

/// CPUs, model and memory, and what shares them (`sharing`).
pub fn machine_line(sharing: &str) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or("?".into(), |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0));
    format!("machine: {cpus} CPUs ({model}), {mem} RAM; {sharing} share them")
}

/// Whole-machine busy and iowait CPU seconds, and this process's, so far.
pub fn cpu_times() -> (f64, f64, f64) {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let get = |i: usize| f.get(i).copied().unwrap_or(0.0);
    // user nice system idle iowait irq softirq steal
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = own.rsplit_once(')').map(|(_, s)| s).unwrap_or_default();
    let g: Vec<f64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // utime and stime, counted from the field after the (dropped) state.
    let own = g.get(10).copied().unwrap_or(0.0) + g.get(11).copied().unwrap_or(0.0);
    (busy / hz, get(4) / hz, own / hz)
}

/// An authenticator for tokens signed by `key` with the bench's settings;
/// the key is preloaded, so its JWKS URL is never fetched.
pub async fn authenticator(
    key: &marketplace_dev::keys::SigningKey,
) -> marketplace_api::auth::Authenticator {
    let auth = marketplace_api::auth::Authenticator::new(marketplace_api::auth::AuthConfig {
        jwks_url: "http://127.0.0.1:9/unused/jwks.json".into(),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        roles_claim: ROLES_CLAIM.into(),
        leeway_secs: 30,
    });
    auth.preload(&key.jwks()).await;
    auth
}

/// The API settings the benches serve with: no payments, 64 KiB bodies.
pub fn api_settings() -> marketplace_api::ApiSettings {
    marketplace_api::ApiSettings {
        body_limit: 64 * 1024,
        read_wait: Duration::from_secs(2),
        tft_price: marketplace_domain::TftPrice::from_usd_units(100_000).expect("price"),
        stripe_webhook_secret: None,
        payments: None,
        dev_jwks: None,
        // Measures something else: the limiter off (benches/rate_limit.rs measures it).
        rate_limit: marketplace_api::rate_limit::RateLimitConfig::off(),
        metrics: marketplace_api::metrics::MetricsAccess::open(),
    }
}

/// CPU seconds used so far by the PostgreSQL server of `data_dir`: the
/// postmaster (with the children it has reaped) and its live children, as
/// `/proc` counts them; 0 if `postmaster.pid` cannot be read.
pub fn postgres_cpu(data_dir: &std::path::Path) -> f64 {
    let postmaster: Option<u32> = std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next()?.trim().parse().ok());
    let (Some(postmaster), Ok(procs)) = (postmaster, std::fs::read_dir("/proc")) else {
        return 0.0;
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut ticks = 0.0;
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or_default();
        // ppid, then utime, stime, cutime, cstime at 10..=13 (state dropped).
        let g: Vec<f64> = after
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let at = |i: usize| g.get(i).copied().unwrap_or(0.0);
        if pid == postmaster {
            ticks += at(10) + at(11) + at(12) + at(13);
        } else if at(0) == f64::from(postmaster) {
            ticks += at(10) + at(11);
        }
    }
    ticks / hz
}

/// `pgbench` against `url`: `clients` clients for 10 s, each transaction
/// one insert of an event-sized row; answers transactions per second.
pub async fn pgbench_baseline(
    url: &str,
    pool: &sqlx::PgPool,
    clients: usize,
) -> anyhow::Result<f64> {
    sqlx::query("DROP TABLE IF EXISTS pgbench_events")
        .execute(pool)
        .await?;
    sqlx::query("CREATE TABLE pgbench_events (LIKE events INCLUDING ALL)")
        .execute(pool)
        .await?;
    let payload = serde_json::json!({ "DeploymentRequested": {
        "owner": "bench", "name": "web1", "kind": "vm", "spec": vm_body("web1")["spec"].clone(),
        "placement": {"country": null, "farm_id": null, "certified_only": false, "dedicated": false, "min_uptime_bps": 0},
        "at": "2026-12-01T00:00:00Z" } });
    let metadata = serde_json::json!({ "actor_subject": "bench0", "actor_role": "cloud-user",
        "correlation_id": "00000000-0000-4000-8000-000000000000", "causation_id": "00000000-0000-4000-8000-000000000000",
        "request_id": "00000000-0000-4000-8000-000000000000", "recorded_at": "2026-12-01T00:00:00Z" });
    let script = std::env::temp_dir().join(format!("pgbench-{}.sql", std::process::id()));
    // The row's payload and metadata come from a one-row table: pgbench
    // would read their colons as its variables.
    sqlx::query("DROP TABLE IF EXISTS pgbench_model")
        .execute(pool)
        .await?;
    sqlx::query("CREATE TABLE pgbench_model AS SELECT $1::jsonb AS payload, $2::jsonb AS metadata")
        .bind(&payload)
        .bind(&metadata)
        .execute(pool)
        .await?;
    std::fs::write(
        &script,
        "\\set id random(1, 2000000000)\nINSERT INTO pgbench_events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) SELECT 'deployment', :client_id || '-' || :id, 1, 'DeploymentRequested', '2', payload, metadata FROM pgbench_model ON CONFLICT DO NOTHING;\n",
    )?;
    let binary = ["pgbench"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .chain(
            std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|d| d.path().join("bin/pgbench")),
        )
        .find(|p| {
            std::process::Command::new(p)
                .arg("--version")
                .output()
                .is_ok()
        })
        .ok_or_else(|| anyhow::anyhow!("no pgbench on this machine"))?;
    let out = tokio::process::Command::new(binary)
        .args(["-n", "-M", "prepared", "-T", "10", "-j", "2"])
        .arg("-c")
        .arg(clients.to_string())
        .arg("-f")
        .arg(&script)
        .arg(url)
        .output()
        .await?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench's output: {text}"))?;
    sqlx::query("DROP TABLE pgbench_events, pgbench_model")
        .execute(pool)
        .await?;
    Ok(tps)
}

/// The VM every bus-level bench requests.
pub fn bench_vm_spec() -> marketplace_domain::deployment::WorkloadSpec {
    use marketplace_domain::deployment::*;
    let size = MachineSize::new(1, 1024, 10).expect("size");
    let image =
        FlistImage::new("https://hub.grid.tf/tf-official-apps/base:latest.flist").expect("image");
    let key =
        SshPublicKey::new("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqbench bench@host").expect("key");
    WorkloadSpec::Vm(VmSpec::new(size, vec![], false, image, key).expect("vm"))
}

/// A new deployment's request of [`bench_vm_spec`], named `name`.
pub fn request_command(name: &str) -> marketplace_domain::deployment::DeploymentCommand {
    marketplace_domain::deployment::DeploymentCommand::Request {
        owner: "bench".into(),
        name: marketplace_domain::deployment::DeploymentName::new(name).expect("name"),
        spec: bench_vm_spec(),
        placement: Default::default(),
        at: chrono::Utc::now(),
    }
}

/// `n` new deployments' requests through the command bus from `clients`
/// tasks (each on a random id; `fresh`: decided without loading it);
/// answers commands/s.
pub async fn bus_requests(
    stores: &std::sync::Arc<marketplace_app::Stores>,
    n: usize,
    clients: usize,
    round: &str,
    fresh: bool,
) -> f64 {
    use marketplace_domain::deployment::Deployment;
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (stores, round) = (stores.clone(), round.to_string());
            tokio::spawn(async move {
                for i in (c..n).step_by(clients) {
                    let name = format!("{round}x{i}");
                    let mut bus = marketplace_app::Exec::<Deployment>::new(
                        &stores.deployments,
                        uuid::Uuid::new_v4().to_string(),
                        marketplace_app::EventMetadata::for_worker("bench", "bench"),
                    );
                    if fresh {
                        bus = bus.fresh();
                    }
                    bus.run(|_| Ok(request_command(&name)))
                        .await
                        .expect("command");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// The statements PostgreSQL spent most time on since the last
/// `pg_stat_statements_reset()` (needs `MARKETPLACE_PG_SETTINGS=shared_preload_libraries=pg_stat_statements`).
pub async fn top_statements(pool: &sqlx::PgPool, mode: &str) -> Vec<String> {
    let rows: Result<Vec<(String, i64, f64)>, sqlx::Error> = sqlx::query_as(
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 110), calls, total_exec_time
           FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12",
    )
    .fetch_all(pool)
    .await;
    match rows {
        Ok(rows) => rows
            .into_iter()
            .map(|(q, calls, ms)| format!("[{mode}] pg: {ms:>9.0} ms {calls:>7} calls  {q}"))
            .collect(),
        Err(e) => vec![format!("[{mode}] pg_stat_statements unavailable: {e}")],
    }
}
