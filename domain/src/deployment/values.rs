//! Value objects of a deployment. Constructors validate; the limits are the
//! marketplace's own. Deserialisation does not validate again: events are
//! facts, valid when they were recorded, and must load even if a limit later
//! changes.

use serde::{Deserialize, Serialize};

use crate::money::TftAmount;
use crate::pricing::MachineUsage;

/// An out-of-range or malformed field of a deployment spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    /// The offending field, as named in the API (`vm.cpu`, `placement.country`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
    /// For a value that is fine on its own but breaks a rule across
    /// fields (tiers out of order, shares not summing to the whole), which
    /// no schema can state: the rule's stable name, which the API answers
    /// as its problem type instead of `invalid-command`.
    pub rule: Option<&'static str>,
}

impl SpecError {
    /// An error about one field.
    pub fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            reason: reason.into(),
            rule: None,
        }
    }

    /// An error about how `field` stands to other fields, named `rule`.
    pub fn across(field: &str, rule: &'static str, reason: impl Into<String>) -> Self {
        Self {
            rule: Some(rule),
            ..Self::new(field, reason)
        }
    }

    /// The same error, with the field placed under a parent (`workers` + `cpu` = `workers.cpu`).
    pub fn under(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

fn in_range(field: &str, value: u64, min: u64, max: u64, unit: &str) -> Result<(), SpecError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            format!("must be between {min} and {max} {unit}, got {value}"),
        ))
    }
}

/// A deployment's name: 2 to 50 lowercase letters and digits, starting with a letter
/// (names become workload names on the node, which must be alphanumeric).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeploymentName(String);

impl DeploymentName {
    /// Validates a name.
    pub fn new(name: &str) -> Result<Self, SpecError> {
        let ok_chars = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let starts_with_letter = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        if !(2..=50).contains(&name.len()) || !ok_chars || !starts_with_letter {
            return Err(SpecError::new(
                "name",
                "must be 2 to 50 lowercase letters or digits, starting with a letter",
            ));
        }
        Ok(Self(name.to_string()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The size of one machine: vCPUs, memory in MiB, root disk in GB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineSize {
    /// Virtual CPUs, 1 to 32.
    pub cpu: u32,
    /// Memory in MiB, 256 MiB to 256 GiB.
    pub memory_mib: u32,
    /// Root filesystem in GB, 1 to 10,000.
    pub rootfs_gb: u32,
}

impl MachineSize {
    /// Validates a machine size.
    pub fn new(cpu: u32, memory_mib: u32, rootfs_gb: u32) -> Result<Self, SpecError> {
        in_range("cpu", cpu.into(), 1, 32, "vCPU")?;
        in_range("memory_mib", memory_mib.into(), 256, 262_144, "MiB")?;
        in_range("rootfs_gb", rootfs_gb.into(), 1, 10_000, "GB")?;
        Ok(Self {
            cpu,
            memory_mib,
            rootfs_gb,
        })
    }
}

/// A flist image URL: `https://…/….flist`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FlistImage(String);

impl FlistImage {
    /// Validates an image reference.
    pub fn new(url: &str) -> Result<Self, SpecError> {
        let ok = url.len() <= 512
            && url.starts_with("https://")
            && url.ends_with(".flist")
            && url.len() > "https://".len() + ".flist".len()
            && !url.chars().any(char::is_whitespace);
        if !ok {
            return Err(SpecError::new(
                "image",
                "must be an https URL of a .flist image, at most 512 characters",
            ));
        }
        Ok(Self(url.to_string()))
    }
    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An OpenSSH public key line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SshPublicKey(String);

const SSH_KEY_TYPES: [&str; 6] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
];

impl SshPublicKey {
    /// Validates the shape of a key: `<type> <base64> [comment]` on one line.
    pub fn new(key: &str) -> Result<Self, SpecError> {
        let key = key.trim();
        let mut parts = key.split_whitespace();
        let kind = parts.next().unwrap_or_default();
        let body = parts.next().unwrap_or_default();
        let body_ok = body.len() >= 16
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=');
        if key.len() > 4096 || key.contains('\n') || !SSH_KEY_TYPES.contains(&kind) || !body_ok {
            return Err(SpecError::new(
                "ssh_key",
                "must be one OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa)",
            ));
        }
        Ok(Self(key.to_string()))
    }
    /// The key line.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A single virtual machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSpec {
    /// CPU, memory and root disk.
    pub size: MachineSize,
    /// Extra SSD disks in GB, at most 8, each 1 to 10,000 GB.
    pub disks_gb: Vec<u32>,
    /// Whether the VM gets a public IPv4 address.
    pub public_ipv4: bool,
    /// The flist the VM boots.
    pub image: FlistImage,
    /// The key allowed to log in.
    pub ssh_key: SshPublicKey,
    /// Whether a standby VM is kept on a node of another farm, started when
    /// the primary's node has been unreachable for
    /// [`STANDBY_TAKEOVER_MINUTES`] (ours: the grid has no backup workload).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standby: bool,
    /// Quantum-safe (QSFS) disks, in GB: each is a `qsfs` workload on the
    /// VM's node whose data is spread over [`QSFS_BACKENDS`] `zdb` backends
    /// on other nodes, any [`QSFS_MINIMAL_SHARDS`] of which restore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub qsfs_gb: Vec<u32>,
}

/// The `zdb` backends each QSFS disk is spread over, each on its own node.
pub const QSFS_BACKENDS: u8 = 4;

/// How many of a QSFS disk's backends restore its data.
pub const QSFS_MINIMAL_SHARDS: u8 = 2;

/// How long the primary's node must have been unreachable before its
/// standby takes over.
pub const STANDBY_TAKEOVER_MINUTES: i64 = 30;

impl VmSpec {
    /// Validates a VM spec.
    pub fn new(
        size: MachineSize,
        disks_gb: Vec<u32>,
        public_ipv4: bool,
        image: FlistImage,
        ssh_key: SshPublicKey,
    ) -> Result<Self, SpecError> {
        validate_disks(&disks_gb)?;
        Ok(Self {
            size,
            disks_gb,
            public_ipv4,
            image,
            ssh_key,
            standby: false,
            qsfs_gb: Vec::new(),
        })
    }

    /// The same VM with these QSFS disks: at most 2, each 10 to 10,000 GB.
    pub fn with_qsfs(self, qsfs_gb: Vec<u32>) -> Result<Self, SpecError> {
        if qsfs_gb.len() > 2 {
            return Err(SpecError::new("qsfs_gb", "at most 2 QSFS disks"));
        }
        for gb in &qsfs_gb {
            in_range("qsfs_gb", (*gb).into(), 10, 10_000, "GB")?;
        }
        Ok(Self { qsfs_gb, ..self })
    }

    /// The same VM, with or without a standby.
    pub fn with_standby(self, standby: bool) -> Self {
        Self { standby, ..self }
    }
}

fn validate_disks(disks: &[u32]) -> Result<(), SpecError> {
    if disks.len() > 8 {
        return Err(SpecError::new("disks_gb", "at most 8 extra disks"));
    }
    for d in disks {
        in_range("disks_gb", (*d).into(), 1, 10_000, "GB")?;
    }
    Ok(())
}

/// A Kubernetes cluster: masters and workers on a private network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesSpec {
    /// Number of masters: 1, 3 or 5 (an odd count keeps etcd's quorum).
    pub masters: u8,
    /// Number of workers, 0 to 50.
    pub workers: u8,
    /// Size of each master.
    pub master_size: MachineSize,
    /// Size of each worker.
    pub worker_size: MachineSize,
    /// Whether each master gets a public IPv4 address.
    pub public_ipv4: bool,
    /// The flist the machines boot.
    pub image: FlistImage,
    /// The key allowed to log in.
    pub ssh_key: SshPublicKey,
    /// Whether each worker runs on a node of its own (its own deployment and
    /// contract, joined to the masters' network), rather than all on the
    /// masters' node.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spread: bool,
}

impl KubernetesSpec {
    /// The same cluster, its workers spread over nodes of their own or not.
    pub fn with_spread(self, spread: bool) -> Self {
        Self { spread, ..self }
    }

    /// Validates a cluster spec.
    pub fn new(
        masters: u8,
        workers: u8,
        master_size: MachineSize,
        worker_size: MachineSize,
        public_ipv4: bool,
        image: FlistImage,
        ssh_key: SshPublicKey,
    ) -> Result<Self, SpecError> {
        validate_masters(masters)?;
        validate_workers(workers)?;
        Ok(Self {
            masters,
            workers,
            master_size,
            worker_size,
            public_ipv4,
            image,
            ssh_key,
            spread: false,
        })
    }
}

fn validate_masters(masters: u8) -> Result<(), SpecError> {
    if matches!(masters, 1 | 3 | 5) {
        Ok(())
    } else {
        Err(SpecError::new("masters", "must be 1, 3 or 5"))
    }
}

fn validate_workers(workers: u8) -> Result<(), SpecError> {
    in_range("workers", workers.into(), 0, 50, "workers")
}

/// What a deployment runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum WorkloadSpec {
    /// One virtual machine.
    Vm(VmSpec),
    /// A Kubernetes cluster.
    Kubernetes(KubernetesSpec),
}

/// The kind of a deployment, for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentKind {
    /// One virtual machine.
    Vm,
    /// A Kubernetes cluster.
    Kubernetes,
}

impl DeploymentKind {
    /// The kind's name as stored and filtered on.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentKind::Vm => "vm",
            DeploymentKind::Kubernetes => "kubernetes",
        }
    }
}

impl WorkloadSpec {
    /// VM or Kubernetes.
    pub fn kind(&self) -> DeploymentKind {
        match self {
            WorkloadSpec::Vm(_) => DeploymentKind::Vm,
            WorkloadSpec::Kubernetes(_) => DeploymentKind::Kubernetes,
        }
    }

    /// The resources each machine reserves, for pricing.
    pub fn machines(&self) -> Vec<MachineUsage> {
        let usage = |size: &MachineSize, extra_gb: u64, ipv4: bool| MachineUsage {
            cru: size.cpu.into(),
            mru_mib: size.memory_mib.into(),
            sru_gb: u64::from(size.rootfs_gb) + extra_gb,
            hru_gb: 0,
            ipv4: u64::from(ipv4),
        };
        match self {
            WorkloadSpec::Vm(vm) => {
                let extra = vm.disks_gb.iter().map(|d| u64::from(*d)).sum();
                vec![usage(&vm.size, extra, vm.public_ipv4)]
            }
            WorkloadSpec::Kubernetes(k) => {
                let masters = (0..k.masters).map(|_| usage(&k.master_size, 0, k.public_ipv4));
                let workers = (0..k.workers).map(|_| usage(&k.worker_size, 0, false));
                masters.chain(workers).collect()
            }
        }
    }

    /// The workloads the node will run, by name (one VM each).
    pub fn workload_names(&self, name: &DeploymentName) -> Vec<String> {
        match self {
            WorkloadSpec::Vm(_) => vec![name.as_str().to_string()],
            WorkloadSpec::Kubernetes(k) => (0..k.masters)
                .map(|i| format!("{}master{i}", name.as_str()))
                .chain((0..k.workers).map(|i| format!("{}worker{i}", name.as_str())))
                .collect(),
        }
    }
}

/// A country name or ISO 3166 code, as the grid proxy filters on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Country(String);

/// The letters a country's name is written in: the Latin letters of ASCII
/// and Latin-1 (`Côte d'Ivoire`, `Curaçao`), as the grid names countries.
pub fn is_country_letter(c: char) -> bool {
    c.is_ascii_alphabetic()
        || matches!(c, '\u{c0}'..='\u{d6}' | '\u{d8}'..='\u{f6}' | '\u{f8}'..='\u{ff}')
}

/// [`Country::new`]'s rule as a regular expression, for the API's document.
pub const COUNTRY_PATTERN: &str =
    "^[A-Za-z\\u00c0-\\u00d6\\u00d8-\\u00f6\\u00f8-\\u00ff][A-Za-z\\u00c0-\\u00d6\\u00d8-\\u00f6\\u00f8-\\u00ff .'-]{1,55}$";

impl Country {
    /// Validates a country: 2 to 56 characters, a letter first, then
    /// letters, spaces, dots, apostrophes or hyphens.
    pub fn new(name: &str) -> Result<Self, SpecError> {
        let mut chars = name.chars();
        let ok = (2..=56).contains(&name.chars().count())
            && chars.next().is_some_and(is_country_letter)
            && chars.all(|c| is_country_letter(c) || matches!(c, ' ' | '-' | '.' | '\''));
        if !ok {
            return Err(SpecError::new("country", "must be a country name or code"));
        }
        Ok(Self(name.to_string()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a deployment may be placed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Placement {
    /// Only nodes in this country.
    pub country: Option<Country>,
    /// Only nodes of this farm.
    pub farm_id: Option<u32>,
    /// Only certified nodes.
    pub certified_only: bool,
    /// A dedicated (rented whole) node.
    pub dedicated: bool,
    /// Minimum uptime of the node in basis points (9,500 = 95%).
    pub min_uptime_bps: u16,
    /// Only nodes counted now in this provider alliance ("alliance nodes
    /// only"); absent from events written before alliances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alliance_id: Option<String>,
}

impl Placement {
    /// Validates placement criteria.
    pub fn new(
        country: Option<Country>,
        farm_id: Option<u32>,
        certified_only: bool,
        dedicated: bool,
        min_uptime_bps: u16,
    ) -> Result<Self, SpecError> {
        if farm_id == Some(0) {
            return Err(SpecError::new("farm_id", "farm ids start at 1"));
        }
        in_range(
            "min_uptime_bps",
            min_uptime_bps.into(),
            0,
            10_000,
            "basis points",
        )?;
        Ok(Self {
            country,
            farm_id,
            certified_only,
            dedicated,
            min_uptime_bps,
            alliance_id: None,
        })
    }
}

/// A new size for a running deployment: the VM, or every worker of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResizeSpec {
    /// The new machine size.
    pub size: MachineSize,
    /// For a cluster, a new worker count.
    pub workers: Option<u8>,
}

impl ResizeSpec {
    /// Validates a resize.
    pub fn new(size: MachineSize, workers: Option<u8>) -> Result<Self, SpecError> {
        if let Some(w) = workers {
            validate_workers(w)?;
        }
        Ok(Self { size, workers })
    }
}

/// A workload's state as the node reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadState {
    /// Being deployed.
    Init,
    /// Running.
    Ok,
    /// Failed to deploy or crashed.
    Error,
    /// Removed.
    Deleted,
    /// Paused (grace period).
    Paused,
    /// Unchanged by the last update.
    Unchanged,
}

/// One workload's reported state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadStatus {
    /// Workload name.
    pub name: String,
    /// Its state.
    pub state: WorkloadState,
    /// The node's message, if any.
    pub message: Option<String>,
    /// A VM's address on its private network, once it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// A VM's public IPv4, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
    /// A VM's serial console, as the node exposes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
}

impl WorkloadStatus {
    /// A workload in `state`, with the node's message and no addresses.
    pub fn new(name: impl Into<String>, state: WorkloadState, message: Option<String>) -> Self {
        Self {
            name: name.into(),
            state,
            message,
            ip: None,
            public_ip: None,
            console_url: None,
        }
    }
}

/// Why a deployment was deleted (TFChain's causes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletionCause {
    /// The owner or an operator cancelled it.
    CanceledByUser,
    /// The grace period ran out.
    OutOfFunds,
    /// The chain's council removed it.
    CanceledByCollective,
}

/// The node a deployment is placed on.
/// A VM's standby: a second node of another farm holding the VM's disks
/// and network, ready to start the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standby {
    /// Where it is.
    pub node: NodeAssignment,
    /// Why that node.
    pub reason: Option<String>,
    /// Its node contract, once created.
    pub contract_id: Option<u64>,
    /// Whether its node reports it up.
    pub ready: bool,
}

/// One `zdb` backend of a QSFS disk: its own deployment and contract on a
/// node other than the VM's and the disk's other backends'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZdbBackend {
    /// Which QSFS disk (its index in the spec).
    pub disk: u8,
    /// Which of the disk's backends.
    pub index: u8,
    /// Where it is.
    pub node: NodeAssignment,
    /// Its node contract, once created.
    pub contract_id: Option<u64>,
    /// Where the VM's QSFS reaches it, once its node reports it up.
    pub endpoint: Option<ZdbEndpoint>,
}

/// A ready backend's address and namespaces, as its node reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZdbEndpoint {
    /// `[ip]:port`.
    pub address: String,
    /// The data namespace.
    pub data_namespace: String,
    /// The metadata namespace.
    pub meta_namespace: String,
}

/// A worker of a spread cluster: its own deployment and contract on a node
/// of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpreadWorker {
    /// Which worker.
    pub index: u8,
    /// Where it is.
    pub node: NodeAssignment,
    /// Its node contract, once created.
    pub contract_id: Option<u64>,
    /// The revision its node last reported running, and how.
    pub running: Option<(u32, WorkloadStatus)>,
}

/// The last time the standby took over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failover {
    /// The node given up.
    pub from_node: u32,
    /// The standby's node, now the VM's.
    pub to_node: u32,
    /// Why.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAssignment {
    /// Grid node id.
    pub node_id: u32,
    /// The node's farm.
    pub farm_id: u32,
}

/// What the chain billed a deployment's contracts so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billing {
    /// TFT billed to date, all its contracts together.
    pub billed_to_date: TftAmount,
    /// How many bills.
    pub bills: u64,
    /// The newest bill.
    pub last_bill: Option<crate::chain::ContractBill>,
}
