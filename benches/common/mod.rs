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
