//! The ZOS deployment a marketplace deployment becomes, built the same way
//! every time from the deployment's state, so that its challenge hash (the
//! node contract's `deployment_hash`) is the same before and after a crash.
//!
//! A VM is one `network-light` private network, its extra disks as
//! `zmount`s, a public `ip` when asked, and the `zmachine`. A Kubernetes
//! cluster is the same network with one `zmachine` per master and worker
//! (k3s images read `K3S_TOKEN`, `K3S_URL` and `K3S_NODE_NAME`), masters
//! with a public IPv4 when asked. Every name is the deployment's own, as
//! [`WorkloadSpec::workload_names`] gives them. The version is the spec's
//! revision; a workload's version is the revision its data last changed in,
//! so that an update restarts only what changed.

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use marketplace_app::tfchain::Signer;
use marketplace_app::zos::types::{Signature, SignatureRequest};
use marketplace_app::zos::{Deployment, SignatureRequirement, Workload, WorkloadResult};
use marketplace_domain::deployment::{
    qsfs, spread, DeploymentState, MachineSize, WorkloadSpec, WorkloadState, WorkloadStatus,
    ZdbBackend, ZdbEndpoint, QSFS_BACKENDS, QSFS_MINIMAL_SHARDS,
};
use serde_json::{json, Value};
use uuid::Uuid;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// What the deployment carries that is secret but must not change between
/// builds: the cluster token, derived from the custodial key.
pub struct Secrets {
    /// `K3S_TOKEN`.
    pub k3s_token: String,
    /// The QSFS disks' zdb namespace password.
    pub zdb_password: String,
    /// The QSFS disks' encryption key (hex, 32 bytes).
    pub qsfs_key: String,
}

/// A QSFS disk's backend `(disk, index)`: two `zdb` namespaces (data, in
/// sequential mode, half the disk's size since any two of four restore
/// it; and metadata, 1 GiB, in user mode) on the backend's node.
pub fn zdb(
    id: Uuid,
    twin_id: u32,
    s: &DeploymentState,
    disk: u8,
    index: u8,
    secrets: &Secrets,
) -> Deployment {
    let name = s.name.as_str();
    let gb = qsfs::disks(s).get(usize::from(disk)).copied().unwrap_or(0);
    let data_size = u64::from(gb).div_ceil(u64::from(QSFS_MINIMAL_SHARDS)) * GIB;
    let zdb = |suffix: &str, size: u64, mode: &str| {
        workload(
            0,
            &format!("{name}q{disk}z{index}{suffix}"),
            "zdb",
            json!({ "size": size, "mode": mode, "password": secrets.zdb_password, "public": false }),
        )
    };
    Deployment {
        version: 0,
        twin_id,
        contract_id: 0,
        metadata: json!({ "type": "zdb", "name": format!("{name}q{disk}z{index}"), "projectName": format!("marketplace/{id}") })
            .to_string(),
        description: format!("marketplace deployment {id}: QSFS disk {disk}, backend {index}"),
        expiration: 0,
        signature_requirement: SignatureRequirement {
            requests: vec![SignatureRequest { twin_id, required: false, weight: 1 }],
            weight_required: 1,
            signatures: Vec::new(),
            signature_style: String::new(),
        },
        workloads: vec![zdb("data", data_size, "seq"), zdb("meta", GIB, "user")],
    }
}

/// A ready backend's endpoint, from what its node reports.
pub fn zdb_endpoint(d: &Deployment) -> Option<ZdbEndpoint> {
    let find = |suffix: &str| {
        d.workloads
            .iter()
            .find(|w| w.kind == "zdb" && w.name.ends_with(suffix))
    };
    let (data, meta) = (find("data")?, find("meta")?);
    let namespace = |w: &Workload| {
        w.result
            .data
            .get("Namespace")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let ip = data.result.data.pointer("/IPs/0").and_then(Value::as_str)?;
    let port = data.result.data.get("Port").and_then(Value::as_u64)?;
    Some(ZdbEndpoint {
        address: format!("[{ip}]:{port}"),
        data_namespace: namespace(data)?,
        meta_namespace: namespace(meta)?,
    })
}

/// The VM's `qsfs` workloads, one per disk, over its ready backends.
fn qsfs_workloads(version: u32, s: &DeploymentState, secrets: &Secrets) -> Vec<Workload> {
    let name = s.name.as_str();
    qsfs::disks(s)
        .iter()
        .enumerate()
        .map(|(disk, gb)| {
            let mut backends: Vec<&ZdbBackend> =
                s.zdbs.iter().filter(|z| usize::from(z.disk) == disk).collect();
            backends.sort_by_key(|z| z.index);
            let zdbs = |meta: bool| -> Vec<Value> {
                backends
                    .iter()
                    .filter_map(|z| z.endpoint.as_ref())
                    .map(|e| {
                        json!({
                            "address": e.address,
                            "namespace": if meta { &e.meta_namespace } else { &e.data_namespace },
                            "password": secrets.zdb_password,
                        })
                    })
                    .collect()
            };
            let encryption = json!({ "algorithm": "AES", "key": secrets.qsfs_key });
            workload(
                version,
                &format!("{name}qsfs{disk}"),
                "qsfs",
                json!({
                    "cache": GIB,
                    "config": {
                        "minimal_shards": QSFS_MINIMAL_SHARDS,
                        "expected_shards": QSFS_BACKENDS,
                        "redundant_groups": 0,
                        "redundant_nodes": 0,
                        "max_zdb_data_dir_size": u64::from(*gb),
                        "encryption": encryption,
                        "meta": { "type": "zdb", "config": { "prefix": format!("{name}qsfs{disk}"), "encryption": encryption, "backends": zdbs(true) } },
                        "groups": [{ "backends": zdbs(false) }],
                        "compression": { "algorithm": "snappy" },
                    },
                }),
            )
        })
        .collect()
}

/// The deployment's ZOS deployment at its current revision, unsigned and
/// without a contract.
pub fn deployment(id: Uuid, twin_id: u32, s: &DeploymentState, secrets: &Secrets) -> Deployment {
    // As first sent to a node: version 0 ([`next`] makes the update).
    let version = 0;
    let name = s.name.as_str();
    let net = format!("{name}net");
    let subnet = subnet(id);
    let mut workloads = vec![if spread::cluster(s).is_some() {
        spread_network(version, id, &net, &subnet, 0, secrets)
    } else {
        workload(
            version,
            &net,
            "network-light",
            json!({ "subnet": format!("{subnet}.0/24"), "mycelium": { "hex_key": mycelium_key(id, &net), "peers": [] } }),
        )
    }];
    match &s.spec {
        WorkloadSpec::Vm(vm) => {
            let mut mounts = Vec::new();
            for (i, gb) in vm.disks_gb.iter().enumerate() {
                let disk = format!("{name}disk{i}");
                workloads.push(workload(
                    version,
                    &disk,
                    "zmount",
                    json!({ "size": u64::from(*gb) * GIB }),
                ));
                mounts.push(json!({ "name": disk, "mountpoint": format!("/mnt/disk{i}") }));
            }
            for (i, q) in qsfs_workloads(version, s, secrets).into_iter().enumerate() {
                mounts.push(json!({ "name": q.name, "mountpoint": format!("/qsfs{i}") }));
                workloads.push(q);
            }
            let public_ip = if vm.public_ipv4 {
                let ip = format!("{name}ip");
                workloads.push(workload(
                    version,
                    &ip,
                    "ip",
                    json!({ "v4": true, "v6": false }),
                ));
                ip
            } else {
                String::new()
            };
            let env = json!({ "SSH_KEY": vm.ssh_key.as_str() });
            workloads.push(machine(
                version,
                name,
                vm.image.as_str(),
                &vm.size,
                &net,
                &format!("{subnet}.2"),
                &public_ip,
                Value::Array(mounts),
                env,
                mycelium_key(id, name),
            ));
        }
        WorkloadSpec::Kubernetes(k) => {
            let names = s.spec.workload_names(&s.name);
            let master_ip = format!("{subnet}.2");
            // A spread cluster's workers are deployments of their own.
            let here = if k.spread {
                usize::from(k.masters)
            } else {
                names.len()
            };
            for (i, node) in names.iter().enumerate().take(here) {
                let is_master = i < usize::from(k.masters);
                let size = if is_master {
                    &k.master_size
                } else {
                    &k.worker_size
                };
                let public_ip = if is_master && k.public_ipv4 {
                    let ip = format!("{node}ip");
                    workloads.push(workload(
                        version,
                        &ip,
                        "ip",
                        json!({ "v4": true, "v6": false }),
                    ));
                    ip
                } else {
                    String::new()
                };
                let mut env = json!({
                    "SSH_KEY": k.ssh_key.as_str(),
                    "K3S_TOKEN": secrets.k3s_token,
                    "K3S_NODE_NAME": node,
                });
                if i > 0 {
                    env["K3S_URL"] = json!(format!("https://{master_ip}:6443"));
                }
                workloads.push(machine(
                    version,
                    node,
                    k.image.as_str(),
                    size,
                    &net,
                    &format!("{subnet}.{}", i + 2),
                    &public_ip,
                    json!([]),
                    env,
                    mycelium_key(id, node),
                ));
            }
        }
    }
    Deployment {
        version,
        twin_id,
        contract_id: 0,
        metadata: json!({ "type": s.spec.kind().as_str(), "name": name, "projectName": format!("marketplace/{id}") })
            .to_string(),
        description: format!("marketplace deployment {id}"),
        expiration: 0,
        signature_requirement: SignatureRequirement {
            requests: vec![SignatureRequest { twin_id, required: false, weight: 1 }],
            weight_required: 1,
            signatures: Vec::new(),
            signature_style: String::new(),
        },
        workloads,
    }
}

/// A spread cluster's network: one `network` (wireguard) per node over the
/// deployment's /16, the masters' node on the first /24 and worker `i` on
/// the `i + 1`-th. Peers are left to the nodes (the SIMULATOR does not
/// route).
fn spread_network(
    version: u32,
    id: Uuid,
    net: &str,
    subnet: &str,
    part: u32,
    secrets: &Secrets,
) -> Workload {
    let (range, third) = subnet.rsplit_once('.').unwrap_or((subnet, "0"));
    let third: u32 = third.parse().unwrap_or(0);
    let key = Blake2b::<U32>::digest(
        format!("wireguard\n{id}\n{part}\n{}", secrets.k3s_token).as_bytes(),
    );
    workload(
        version,
        net,
        "network",
        json!({
            "ip_range": format!("{range}.0.0/16"),
            "subnet": format!("{range}.{}.0/24", (third + part) % 256),
            "wireguard_private_key": hex::encode(key),
            "wireguard_listen_port": 3000 + part,
            "peers": [],
        }),
    )
}

/// Worker `index` of a spread cluster: its share of the network and its
/// machine, joined to the first master.
pub fn spread_worker(
    id: Uuid,
    twin_id: u32,
    s: &DeploymentState,
    index: u8,
    secrets: &Secrets,
) -> Option<Deployment> {
    let k = spread::cluster(s)?;
    let name = s.name.as_str();
    let net = format!("{name}net");
    let base = subnet(id);
    let (range, third) = base.rsplit_once('.').unwrap_or((base.as_str(), "0"));
    let third: u32 = third.parse().unwrap_or(0);
    let part = u32::from(index) + 1;
    let node = format!("{name}worker{index}");
    let env = json!({
        "SSH_KEY": k.ssh_key.as_str(),
        "K3S_TOKEN": secrets.k3s_token,
        "K3S_NODE_NAME": node,
        "K3S_URL": format!("https://{base}.2:6443"),
    });
    let ip = format!("{range}.{}.2", (third + part) % 256);
    let workloads = vec![
        spread_network(0, id, &net, &base, part, secrets),
        machine(
            0,
            &node,
            k.image.as_str(),
            &k.worker_size,
            &net,
            &ip,
            "",
            json!([]),
            env,
            mycelium_key(id, &node),
        ),
    ];
    Some(Deployment {
        version: 0,
        twin_id,
        contract_id: 0,
        metadata: json!({ "type": "kubernetes", "name": node, "projectName": format!("marketplace/{id}") }).to_string(),
        description: format!("marketplace deployment {id}: worker {index}"),
        expiration: 0,
        signature_requirement: SignatureRequirement {
            requests: vec![SignatureRequest { twin_id, required: false, weight: 1 }],
            weight_required: 1,
            signatures: Vec::new(),
            signature_style: String::new(),
        },
        workloads,
    })
}

/// A VM's standby on its own node: the VM's network, its disks, its root
/// disk's copy (`<name>sync`) and its public IP, but no machine yet; the
/// machine is added when the standby takes over.
pub fn standby(id: Uuid, twin_id: u32, s: &DeploymentState, secrets: &Secrets) -> Deployment {
    let mut d = deployment(id, twin_id, s, secrets);
    let name = s.name.as_str().to_string();
    let root = d
        .workload(&name)
        .and_then(|vm| vm.data.get("size").cloned())
        .unwrap_or(Value::Null);
    d.workloads.retain(|w| w.kind != "zmachine");
    d.workloads.push(workload(
        d.version,
        &format!("{name}sync"),
        "zmount",
        json!({ "size": root }),
    ));
    d.description = format!("marketplace deployment {id} (standby)");
    d
}

/// The deployment for `contract_id`, signed by the owner's twin. Workloads
/// unchanged since `previous` keep the version they had there.
pub fn signed(mut d: Deployment, contract_id: u64, signer: &Signer, twin_id: u32) -> Deployment {
    d.contract_id = contract_id;
    let signature = signer.sign(&d.challenge_hash());
    d.signature_requirement.signatures = vec![Signature {
        twin_id,
        signature: hex::encode(signature),
        signature_type: "sr25519".into(),
    }];
    d
}

/// What to send a node that holds `current` (or nothing) so that it runs
/// `fresh` (as built, version 0), and whether anything must be sent. ZOS
/// creates a deployment at version 0 only; an update is the node's version
/// plus one, and each workload keeps the version it last changed in, so
/// the node restarts only what changed. Deterministic from the node's state
/// and the spec, so a repeated step computes the same deployment and hash.
pub fn next(fresh: Deployment, current: Option<&Deployment>) -> (Deployment, bool) {
    let Some(current) = current else {
        return (fresh, true);
    };
    let same = |a: &Workload, b: &Workload| a.kind == b.kind && a.data == b.data;
    let unchanged = fresh.workloads.len() == current.workloads.len()
        && fresh
            .workloads
            .iter()
            .all(|w| current.workload(&w.name).is_some_and(|old| same(old, w)));
    let version = if unchanged {
        current.version
    } else {
        current.version + 1
    };
    let mut d = fresh;
    d.version = version;
    for w in &mut d.workloads {
        w.version = match current.workload(&w.name) {
            Some(old) if same(old, w) => old.version,
            _ => version,
        };
    }
    (d, !unchanged)
}

/// How many public IPv4s the deployment's contract reserves.
pub fn public_ips(d: &Deployment) -> u32 {
    d.workloads.iter().filter(|w| w.kind == "ip").count() as u32
}

/// The marketplace's workload states from what the node reports: one per
/// machine (the names the deployment expects), with the VM's addresses.
pub fn machine_states(d: &Deployment) -> Vec<WorkloadStatus> {
    d.workloads
        .iter()
        .filter(|w| w.kind == "zmachine")
        .map(|w| {
            let r = &w.result;
            let mut status = WorkloadStatus::new(
                w.name.clone(),
                state(r),
                (!r.message.is_empty()).then(|| r.message.clone()),
            );
            let text = |v: &Value, key: &str| {
                v.get(key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            };
            status.ip = text(&r.data, "ip");
            status.console_url = text(&r.data, "console_url");
            let ip_name = w
                .data
                .pointer("/network/public_ip")
                .and_then(Value::as_str)
                .unwrap_or("");
            status.public_ip = d
                .workload(ip_name)
                .and_then(|ip| text(&ip.result.data, "ip"));
            status
        })
        .collect()
}

/// The first workload (of any type) that failed, with why.
pub fn failure(d: &Deployment) -> Option<String> {
    use marketplace_app::zos::ResultState as R;
    d.workloads.iter().find_map(|w| match w.result.state {
        R::Error | R::Deleted | R::Paused | R::Unchanged => Some(format!(
            "workload {} is {}: {}",
            w.name,
            state_name(w.result.state),
            if w.result.message.is_empty() {
                "no message"
            } else {
                &w.result.message
            }
        )),
        R::Init | R::Ok => None,
    })
}

/// Whether every workload of `version` is up.
pub fn all_ok(d: &Deployment) -> bool {
    d.workloads
        .iter()
        .all(|w| w.result.state == marketplace_app::zos::ResultState::Ok)
}

fn state(r: &WorkloadResult) -> WorkloadState {
    use marketplace_app::zos::ResultState as R;
    match r.state {
        R::Init => WorkloadState::Init,
        R::Ok => WorkloadState::Ok,
        R::Error => WorkloadState::Error,
        R::Deleted => WorkloadState::Deleted,
        R::Paused => WorkloadState::Paused,
        R::Unchanged => WorkloadState::Unchanged,
    }
}

fn state_name(s: marketplace_app::zos::ResultState) -> &'static str {
    use marketplace_app::zos::ResultState as R;
    match s {
        R::Init => "init",
        R::Ok => "ok",
        R::Error => "error",
        R::Deleted => "deleted",
        R::Paused => "paused",
        R::Unchanged => "unchanged",
    }
}

fn workload(version: u32, name: &str, kind: &str, data: Value) -> Workload {
    Workload {
        version,
        name: name.to_string(),
        kind: kind.to_string(),
        data,
        metadata: String::new(),
        description: String::new(),
        result: WorkloadResult::default(),
    }
}

#[allow(clippy::too_many_arguments)]
fn machine(
    version: u32,
    name: &str,
    flist: &str,
    size: &MachineSize,
    net: &str,
    ip: &str,
    public_ip: &str,
    mounts: Value,
    env: Value,
    mycelium: String,
) -> Workload {
    workload(
        version,
        name,
        "zmachine",
        json!({
            "flist": flist,
            "network": {
                "public_ip": public_ip,
                "planetary": false,
                "mycelium": { "network": net, "hex_seed": mycelium },
                "interfaces": [{ "network": net, "ip": ip }],
            },
            "size": u64::from(size.rootfs_gb) * GIB,
            "compute_capacity": { "cpu": size.cpu, "memory": u64::from(size.memory_mib) * MIB },
            "mounts": mounts,
            "entrypoint": "/sbin/zinit init",
            "env": env,
            "corex": false,
            "gpu": [],
        }),
    )
}

/// `10.x.y`: the deployment's private /24, from its id.
fn subnet(id: Uuid) -> String {
    let b = id.as_bytes();
    format!("10.{}.{}", 20 + b[0] % 200, b[1])
}

fn mycelium_key(id: Uuid, name: &str) -> String {
    let digest = Blake2b::<U32>::digest(format!("mycelium\n{id}\n{name}").as_bytes());
    hex::encode(&digest[..6])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use marketplace_domain::deployment::{
        Deployment as Aggregate, DeploymentCommand, DeploymentName, FlistImage, KubernetesSpec,
        Placement, SshPublicKey, VmSpec,
    };
    use marketplace_domain::EventSourced;

    fn state(spec: WorkloadSpec) -> DeploymentState {
        let mut d = Aggregate::default();
        let events = d
            .decide_command(DeploymentCommand::Request {
                owner: "alice".into(),
                name: DeploymentName::new("web").expect("name"),
                spec,
                placement: Placement::default(),
                at: Utc.timestamp_opt(1_700_000_000, 0).single().expect("time"),
            })
            .expect("requested");
        for e in &events {
            d.apply_one(e);
        }
        d.state().cloned().expect("state")
    }

    fn image() -> FlistImage {
        FlistImage::new("https://hub.grid.tf/tf-official-apps/base:latest.flist").expect("flist")
    }

    fn key() -> SshPublicKey {
        SshPublicKey::new("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample alice@example")
            .expect("key")
    }

    fn secrets() -> Secrets {
        Secrets {
            k3s_token: "token".into(),
            zdb_password: "pw".into(),
            qsfs_key: "00".repeat(32),
        }
    }

    #[test]
    fn a_vm_is_a_network_its_disks_an_ip_and_the_machine() {
        let size = MachineSize::new(2, 4096, 20).expect("size");
        let vm = VmSpec::new(size, vec![50], true, image(), key()).expect("vm");
        let id = Uuid::from_u128(7);
        let d = deployment(id, 10_001, &state(WorkloadSpec::Vm(vm)), &secrets());
        let kinds: Vec<&str> = d.workloads.iter().map(|w| w.kind.as_str()).collect();
        assert_eq!(kinds, ["network-light", "zmount", "ip", "zmachine"]);
        assert_eq!(public_ips(&d), 1);
        let vm = d.workload("web").expect("machine");
        assert_eq!(vm.data["compute_capacity"]["memory"], 4096 * MIB);
        assert_eq!(vm.data["network"]["public_ip"], "webip");
        assert_eq!(
            d.deployment_hash(),
            deployment(
                id,
                10_001,
                &state(WorkloadSpec::Vm(
                    VmSpec::new(size, vec![50], true, image(), key()).expect("vm")
                )),
                &secrets()
            )
            .deployment_hash(),
            "the same deployment hashes the same"
        );
    }

    #[test]
    fn a_cluster_has_a_machine_per_master_and_worker_joined_to_the_first() {
        let size = MachineSize::new(2, 4096, 20).expect("size");
        let k = KubernetesSpec::new(1, 2, size, size, false, image(), key()).expect("k8s");
        let d = deployment(
            Uuid::from_u128(9),
            10_001,
            &state(WorkloadSpec::Kubernetes(k)),
            &secrets(),
        );
        let machines: Vec<&Workload> = d
            .workloads
            .iter()
            .filter(|w| w.kind == "zmachine")
            .collect();
        assert_eq!(
            machines.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
            ["webmaster0", "webworker0", "webworker1"]
        );
        assert!(machines[0].data["env"].get("K3S_URL").is_none());
        assert_eq!(
            machines[2].data["env"]["K3S_URL"],
            machines[1].data["env"]["K3S_URL"]
        );
        assert_eq!(public_ips(&d), 0);
    }

    #[test]
    fn unchanged_workloads_keep_their_version_across_an_update() {
        let size = MachineSize::new(2, 4096, 20).expect("size");
        let vm = VmSpec::new(size, vec![], false, image(), key()).expect("vm");
        let s = state(WorkloadSpec::Vm(vm.clone()));
        let old = deployment(Uuid::from_u128(3), 1, &s, &secrets());
        let mut grown = s.clone();
        grown.revision = 1;
        grown.spec = WorkloadSpec::Vm(VmSpec {
            size: MachineSize::new(4, 8192, 40).expect("size"),
            ..vm
        });
        let (new, send) = next(
            deployment(Uuid::from_u128(3), 1, &grown, &secrets()),
            Some(&old),
        );
        assert!(send);
        assert_eq!(old.version, 0, "created at version 0");
        assert_eq!(new.version, 1);
        assert_eq!(new.workload("webnet").map(|w| w.version), Some(0));
        assert_eq!(new.workload("web").map(|w| w.version), Some(1));
        assert_ne!(new.deployment_hash(), old.deployment_hash());
        let (again, send) = next(
            deployment(Uuid::from_u128(3), 1, &grown, &secrets()),
            Some(&new),
        );
        assert!(!send, "the node already runs it");
        assert_eq!(again.deployment_hash(), new.deployment_hash());
    }
}
