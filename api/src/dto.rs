//! Request and response bodies. Their JSON shapes equal what the domain
//! stores, so a view's stored spec reads back as the same body a client sent.
//! Requests refuse unknown fields; turning a body into a domain value runs
//! the domain's validating constructors.

use chrono::{DateTime, Utc};
use marketplace_domain::deployment::{
    Country, DeletionCause, DeploymentName, FlistImage, KubernetesSpec, MachineSize, Placement,
    ResizeSpec, SpecError, SshPublicKey, VmSpec, WorkloadSpec, WorkloadState, WorkloadStatus,
};
use marketplace_domain::pricing::{DiscountLevel, Quote};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// CPU, memory and root disk of one machine.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SizeBody {
    /// Virtual CPUs (1 to 32).
    #[schema(minimum = 1, maximum = 32)]
    pub cpu: u32,
    /// Memory in MiB (256 to 262,144).
    #[schema(minimum = 256, maximum = 262_144)]
    pub memory_mib: u32,
    /// Root filesystem in GB (1 to 10,000).
    #[schema(minimum = 1, maximum = 10_000)]
    pub rootfs_gb: u32,
}

impl SizeBody {
    fn into_domain(self, field: &str) -> Result<MachineSize, SpecError> {
        MachineSize::new(self.cpu, self.memory_mib, self.rootfs_gb).map_err(|e| e.under(field))
    }
}

/// An extra SSD disk's size in GB.
#[derive(ToSchema)]
#[schema(minimum = 1, maximum = 10_000)]
#[allow(dead_code)]
pub struct DiskGb(u32);

/// A QSFS disk's size in GB.
#[derive(ToSchema)]
#[schema(minimum = 10, maximum = 10_000)]
#[allow(dead_code)]
pub struct QsfsGb(u32);

fn masters_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .enum_values(Some([1, 3, 5]))
        .build()
}

/// A single VM.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VmBody {
    /// Its size.
    pub size: SizeBody,
    /// Extra SSD disks in GB (at most 8, each 1 to 10,000).
    #[serde(default)]
    #[schema(max_items = 8, value_type = Vec<DiskGb>)]
    pub disks_gb: Vec<u32>,
    /// Whether it gets a public IPv4 address.
    #[serde(default)]
    pub public_ipv4: bool,
    /// The flist image URL (`https://….flist`).
    #[schema(pattern = r"^https://\S+\.flist$", max_length = 512)]
    pub image: String,
    /// An OpenSSH public key line.
    #[schema(
        pattern = r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/=]{16,}( [^\n]*)?$",
        max_length = 4096
    )]
    pub ssh_key: String,
    /// Keep a standby VM on a node of another farm, started when this
    /// one's node has been unreachable for 30 minutes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standby: bool,
    /// Quantum-safe (QSFS) disks in GB (at most 2, each 10 to 10,000),
    /// each spread over 4 `zdb` backends on other nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 2, value_type = Vec<QsfsGb>)]
    pub qsfs_gb: Vec<u32>,
}

/// A Kubernetes cluster.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesBody {
    /// Masters: 1, 3 or 5.
    #[schema(schema_with = masters_schema)]
    pub masters: u8,
    /// Workers: 0 to 50.
    #[schema(minimum = 0, maximum = 50)]
    pub workers: u8,
    /// Size of each master.
    pub master_size: SizeBody,
    /// Size of each worker.
    pub worker_size: SizeBody,
    /// Whether each master gets a public IPv4 address.
    #[serde(default)]
    pub public_ipv4: bool,
    /// The flist image URL.
    #[schema(pattern = r"^https://\S+\.flist$", max_length = 512)]
    pub image: String,
    /// An OpenSSH public key line.
    #[schema(
        pattern = r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/=]{16,}( [^\n]*)?$",
        max_length = 4096
    )]
    pub ssh_key: String,
    /// Run each worker on a node of its own instead of all on the masters' node.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spread: bool,
}

/// What a deployment runs, tagged by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SpecBody {
    /// One VM.
    Vm(VmBody),
    /// A Kubernetes cluster.
    Kubernetes(KubernetesBody),
}

// By hand: the derive describes each variant as `allOf` its body and the
// tag, which no value satisfies, the body refusing unknown fields
// (`additionalProperties: false`) and so the tag. Here each variant is its
// body's object with `kind` added, as serde reads it.
impl utoipa::PartialSchema for SpecBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{OneOfBuilder, Schema};
        use utoipa::openapi::RefOr;
        fn tagged(kind: &str, body: RefOr<Schema>) -> Schema {
            let RefOr::T(Schema::Object(mut object)) = body else {
                unreachable!("a struct's schema is an object")
            };
            object.properties.insert(
                "kind".into(),
                RefOr::T(Schema::Object(crate::contract::string_enum([kind]))),
            );
            object.required.insert(0, "kind".into());
            Schema::Object(object)
        }
        OneOfBuilder::new()
            .item(tagged("vm", <VmBody as utoipa::PartialSchema>::schema()))
            .item(tagged(
                "kubernetes",
                <KubernetesBody as utoipa::PartialSchema>::schema(),
            ))
            .description(Some("What a deployment runs, tagged by `kind`."))
            .into()
    }
}

impl ToSchema for SpecBody {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <VmBody as ToSchema>::schemas(schemas);
        <KubernetesBody as ToSchema>::schemas(schemas);
    }
}

impl SpecBody {
    /// Validates the spec into the domain's value.
    pub fn into_domain(self) -> Result<WorkloadSpec, SpecError> {
        let under = |e: SpecError| e.under("spec");
        match self {
            SpecBody::Vm(vm) => {
                let size = vm.size.into_domain("size").map_err(under)?;
                let image = FlistImage::new(&vm.image).map_err(under)?;
                let key = SshPublicKey::new(&vm.ssh_key).map_err(under)?;
                let spec = VmSpec::new(size, vm.disks_gb, vm.public_ipv4, image, key)
                    .map_err(under)?
                    .with_standby(vm.standby)
                    .with_qsfs(vm.qsfs_gb)
                    .map_err(under)?;
                Ok(WorkloadSpec::Vm(spec))
            }
            SpecBody::Kubernetes(k) => {
                let master = k.master_size.into_domain("master_size").map_err(under)?;
                let worker = k.worker_size.into_domain("worker_size").map_err(under)?;
                let image = FlistImage::new(&k.image).map_err(under)?;
                let key = SshPublicKey::new(&k.ssh_key).map_err(under)?;
                let spec = KubernetesSpec::new(
                    k.masters,
                    k.workers,
                    master,
                    worker,
                    k.public_ipv4,
                    image,
                    key,
                )
                .map_err(under)?
                .with_spread(k.spread);
                Ok(WorkloadSpec::Kubernetes(spec))
            }
        }
    }
}

/// Where a deployment may be placed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementBody {
    /// Only nodes in this country.
    #[serde(default)]
    #[schema(schema_with = crate::contract::nullable_country_name)]
    pub country: Option<String>,
    /// Only nodes of this farm.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub farm_id: Option<u32>,
    /// Only certified nodes.
    #[serde(default)]
    pub certified_only: bool,
    /// A dedicated node.
    #[serde(default)]
    pub dedicated: bool,
    /// Minimum node uptime in basis points (9,500 = 95%).
    #[serde(default)]
    #[schema(maximum = 10_000)]
    pub min_uptime_bps: u16,
    /// Alliance nodes only: nodes counted now in this provider alliance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alliance_id: Option<Uuid>,
}

impl PlacementBody {
    /// Validates placement criteria.
    pub fn into_domain(self) -> Result<Placement, SpecError> {
        let under = |e: SpecError| e.under("placement");
        let country = self
            .country
            .as_deref()
            .map(Country::new)
            .transpose()
            .map_err(under)?;
        let mut placement = Placement::new(
            country,
            self.farm_id,
            self.certified_only,
            self.dedicated,
            self.min_uptime_bps,
        )
        .map_err(under)?;
        placement.alliance_id = self.alliance_id.map(|id| id.to_string());
        Ok(placement)
    }
}

/// `POST /v1/deployments`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestDeploymentBody {
    /// 2 to 50 lowercase letters and digits, starting with a letter.
    #[schema(pattern = "^[a-z][a-z0-9]{1,49}$")]
    pub name: String,
    /// What to run.
    pub spec: SpecBody,
    /// Where it may go; when omitted, your default placement (`PATCH
    /// /v1/me`, `default_placement`), or anywhere if you set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementBody>,
}

impl RequestDeploymentBody {
    /// Validates every field; `placement` is `None` when the request
    /// names none (the user's default applies).
    pub fn into_domain(
        self,
    ) -> Result<(DeploymentName, WorkloadSpec, Option<Placement>), SpecError> {
        Ok((
            DeploymentName::new(&self.name)?,
            self.spec.into_domain()?,
            self.placement.map(PlacementBody::into_domain).transpose()?,
        ))
    }
}

/// `POST /v1/deployments/{id}/resize`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeBody {
    /// The new size of the VM, or of every worker of a cluster.
    pub size: SizeBody,
    /// For a cluster, a new worker count (0 to 50).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 50)]
    pub workers: Option<u8>,
}

impl ResizeBody {
    /// Validates the resize.
    pub fn into_domain(self) -> Result<ResizeSpec, SpecError> {
        ResizeSpec::new(self.size.into_domain("size")?, self.workers)
    }
}

/// `POST /v1/deployments/{id}/cancel`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why, optionally (at most 1,000 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The node placement chose.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignNodeBody {
    /// Grid node id.
    pub node_id: u32,
    /// The node's farm.
    pub farm_id: u32,
}

/// The contract created on chain.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractBody {
    /// TFChain contract id.
    pub contract_id: u64,
    /// The rent contract of a dedicated node, if one was taken.
    #[serde(default)]
    pub rent_contract_id: Option<u64>,
}

/// A workload's state as the node reports it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadBody {
    /// Workload name.
    pub name: String,
    /// `init`, `ok`, `error`, `deleted`, `paused` or `unchanged`.
    #[schema(schema_with = workload_state_schema)]
    pub state: WorkloadState,
    /// The node's message.
    #[serde(default)]
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

impl From<WorkloadBody> for WorkloadStatus {
    fn from(w: WorkloadBody) -> Self {
        WorkloadStatus {
            ip: w.ip,
            public_ip: w.public_ip,
            console_url: w.console_url,
            ..WorkloadStatus::new(w.name, w.state, w.message)
        }
    }
}

/// Workload states reported by the node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadsBody {
    /// One entry per workload.
    pub workloads: Vec<WorkloadBody>,
}

/// A failed deployment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailedBody {
    /// One entry per workload.
    #[serde(default)]
    pub workloads: Vec<WorkloadBody>,
    /// Why it failed.
    pub reason: String,
}

/// A deleted deployment's cause.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    /// `canceled_by_user`, `out_of_funds` or `canceled_by_collective`.
    #[schema(schema_with = deletion_cause_schema)]
    pub cause: DeletionCause,
}

/// A domain enum's names, as serde writes them.
fn names_of<T: Serialize>(values: &[T]) -> Vec<String> {
    values
        .iter()
        .filter_map(|v| serde_json::to_value(v).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn workload_state_schema() -> utoipa::openapi::schema::Object {
    use WorkloadState::*;
    // A new state fails to compile here until it is listed below.
    let _every = |s: WorkloadState| match s {
        Init | Ok | Error | Deleted | Paused | Unchanged => (),
    };
    let names = names_of(&[Init, Ok, Error, Deleted, Paused, Unchanged]);
    crate::contract::string_enum(names.iter().map(String::as_str))
}

fn deletion_cause_schema() -> utoipa::openapi::schema::Object {
    use DeletionCause::*;
    let _every = |c: DeletionCause| match c {
        CanceledByUser | OutOfFunds | CanceledByCollective => (),
    };
    let names = names_of(&[CanceledByUser, OutOfFunds, CanceledByCollective]);
    crate::contract::string_enum(names.iter().map(String::as_str))
}

/// An empty command body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

/// A command was accepted: the aggregate and its version after the command.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct CommandAccepted {
    /// The aggregate's id (a deployment's uuid, a farm or node id, `current` for the pricing policy).
    pub id: String,
    /// Its version now; read with `min_version` to see your own write.
    pub version: u64,
}

/// One deployment in a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeploymentSummary {
    /// Id.
    pub id: Uuid,
    /// Owner's subject.
    pub owner: String,
    /// Name.
    pub name: String,
    /// `vm` or `kubernetes`.
    pub kind: String,
    /// Status.
    pub status: String,
    /// Assigned node.
    pub node_id: Option<i64>,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Version of the view.
    pub version: i64,
}

/// A page of deployments, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeploymentPage {
    /// The page.
    pub items: Vec<DeploymentSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One step of a deployment's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    /// The event's sequence (the deployment's version after it).
    pub sequence: i64,
    /// What happened.
    pub event: String,
    /// Status after it.
    pub status: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Who caused it.
    pub actor: Option<String>,
    /// In which role.
    pub actor_role: Option<String>,
    /// Event-specific facts.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A deployment with its history of states.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeploymentDetail {
    /// Id.
    pub id: Uuid,
    /// Owner's subject.
    pub owner: String,
    /// Name.
    pub name: String,
    /// `vm` or `kubernetes`.
    pub kind: String,
    /// Status.
    pub status: String,
    /// What it runs now.
    pub spec: SpecBody,
    /// Placement criteria.
    pub placement: PlacementBody,
    /// Assigned node.
    pub node_id: Option<i64>,
    /// The node's farm.
    pub farm_id: Option<i64>,
    /// Chain contract.
    pub contract_id: Option<i64>,
    /// Why placement chose the node (an operator's manual assignment says so).
    pub placement_reason: Option<String>,
    /// Nodes a provisioning attempt failed on, in order: placement avoids them.
    pub tried_nodes: Vec<i64>,
    /// The dedicated node's rent contract, when one was taken.
    pub rent_contract_id: Option<i64>,
    /// The spec's revision: 0 as requested, one more per resize.
    pub revision: i32,
    /// The revision last reported running.
    pub running_revision: Option<i32>,
    /// Running, but not yet on the spec's revision: a resize is being applied.
    pub update_pending: bool,
    /// A VM's standby, when it asked for one: `{node_id, farm_id, reason,
    /// contract_id, ready}`. The VM runs on `node_id` above (the active
    /// one); the standby holds its disks and network on another farm.
    #[schema(value_type = Option<Object>)]
    pub standby: Option<serde_json::Value>,
    /// The last takeover: `{from_node, to_node, reason, at}`: why the VM
    /// now runs on what was its standby's node.
    #[schema(value_type = Option<Object>)]
    pub failover: Option<serde_json::Value>,
    /// A VM's QSFS disks' `zdb` backends by `<disk>/<index>`: `{node_id,
    /// farm_id, contract_id, endpoint}` (endpoint once its node runs it).
    #[schema(value_type = Object)]
    pub qsfs_backends: serde_json::Value,
    /// A spread cluster's workers by index: `{node_id, farm_id,
    /// contract_id, running_revision, workload}`, each on a node of its own.
    #[schema(value_type = Object)]
    pub spread_workers: serde_json::Value,
    /// The node it is placed on, with the node's capacity.
    pub node: Option<DeploymentNode>,
    /// Last reported workload states.
    pub workloads: Vec<WorkloadBody>,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// Why it was deleted.
    pub deletion_cause: Option<String>,
    /// Start of the current grace period.
    pub grace_since: Option<DateTime<Utc>>,
    /// When the data is deleted unless the balance is topped up (14 days
    /// after the grace period began).
    pub deletion_at: Option<DateTime<Utc>>,
    /// Its contracts the chain has in grace now.
    pub grace_contracts: Vec<i64>,
    /// TFT base units the chain billed it so far, all its contracts together.
    pub billed_to_date_tft_units: u64,
    /// How many bills the chain sent.
    pub bills: u64,
    /// When the chain last billed it.
    pub last_billed_at: Option<DateTime<Utc>>,
    /// The staking discount the chain applied on its last bill (`none`,
    /// `default`, `bronze`, `silver`, `gold`).
    pub last_discount_level: Option<String>,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Version of the view (last event applied).
    pub version: i64,
    /// Every state it went through, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Maintenance scheduled on its node that has not ended, by start.
    pub maintenance: Vec<MaintenanceBody>,
}

/// Where a node's capacity figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CapacitySource {
    /// Asked of the node just now (`zos.statistics.get`).
    Node,
    /// The node catalog, as last synced from the grid.
    Catalog,
    /// Neither the node nor the catalog could tell.
    Unknown,
}

/// Capacity in the grid's units: cores, bytes of memory and disk, IPv4s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CapacityBody {
    /// Cores.
    pub cru: u64,
    /// Memory, bytes.
    pub mru: u64,
    /// SSD, bytes.
    pub sru: u64,
    /// HDD, bytes.
    pub hru: u64,
    /// Public IPv4 addresses; only the node itself tells (null from the catalog).
    pub ipv4u: Option<u64>,
}

impl From<marketplace_app::zos::Capacity> for CapacityBody {
    fn from(c: marketplace_app::zos::Capacity) -> Self {
        Self {
            cru: c.cru,
            mru: c.mru,
            sru: c.sru,
            hru: c.hru,
            ipv4u: Some(c.ipv4u),
        }
    }
}

/// A node's whole capacity and how much of it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeCapacity {
    /// The node's capacity.
    pub total: CapacityBody,
    /// Used by workloads (and, as the node reports it, by the system).
    pub used: CapacityBody,
}

/// The node a deployment is on.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeploymentNode {
    /// Grid node id.
    pub node_id: i64,
    /// The node's farm.
    pub farm_id: i64,
    /// Total and used capacity; null when the source is `unknown`.
    pub capacity: Option<NodeCapacity>,
    /// Where the figures come from: the node, or the catalog when the node
    /// could not be asked (no node port, no answer in time).
    pub source: CapacitySource,
}

/// One status change of a deployment: the `data` of each event of
/// `GET /v1/deployments/{id}/events` (whose `id` is the sequence and whose
/// `event` is the event type).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeploymentChange {
    /// The event's sequence (the deployment's version after it).
    pub sequence: i64,
    /// What happened: `NodeAssigned`, `DeploymentRunning`, …
    pub event: String,
    /// Status after it.
    pub status: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Event-specific facts (a node and why it was chosen, a contract, a reason).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// `POST /v1/quotes`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequestBody {
    /// The spec to price.
    pub spec: SpecBody,
    /// Price on a certified node (x1.25 on CU and SU).
    #[serde(default)]
    pub certified: bool,
    /// The payer's TFT balance in base units, for the staking discount.
    #[serde(default)]
    pub balance_tft_units: Option<u64>,
}

/// A quote. Amounts are integers in 7-decimal base units
/// (1 USD = 1 TFT = 10,000,000 units).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuoteBody {
    /// Compute units, in thousandths.
    pub cu_milli: u64,
    /// Storage units, in thousandths.
    pub su_milli: u64,
    /// Public IPv4 addresses.
    pub ipv4: u64,
    /// USD units per TFT used for the TFT figures.
    pub tft_price_usd_units: u64,
    /// Hourly cost, USD units.
    pub hourly_usd_units: u64,
    /// 30-day monthly cost, USD units.
    pub monthly_usd_units: u64,
    /// Hourly cost, TFT base units.
    pub hourly_tft_units: u64,
    /// Monthly cost, TFT base units.
    pub monthly_tft_units: u64,
    /// `none`, `default`, `bronze`, `silver` or `gold`.
    #[schema(value_type = String, example = "none")]
    pub discount: DiscountLevel,
    /// Discount in percent.
    pub discount_percent: u64,
    /// Hourly cost after discount, USD units.
    pub discounted_hourly_usd_units: u64,
    /// Monthly cost after discount, USD units.
    pub discounted_monthly_usd_units: u64,
    /// Hourly cost after discount, TFT base units.
    pub discounted_hourly_tft_units: u64,
    /// Monthly cost after discount, TFT base units.
    pub discounted_monthly_tft_units: u64,
}

impl From<Quote> for QuoteBody {
    fn from(q: Quote) -> Self {
        QuoteBody {
            cu_milli: q.cu_milli,
            su_milli: q.su_milli,
            ipv4: q.ipv4,
            tft_price_usd_units: q.tft_price.usd_units(),
            hourly_usd_units: q.hourly_usd.units(),
            monthly_usd_units: q.monthly_usd.units(),
            hourly_tft_units: q.hourly_tft.base_units(),
            monthly_tft_units: q.monthly_tft.base_units(),
            discount: q.discount,
            discount_percent: q.discount_percent,
            discounted_hourly_usd_units: q.discounted_hourly_usd.units(),
            discounted_monthly_usd_units: q.discounted_monthly_usd.units(),
            discounted_hourly_tft_units: q.discounted_hourly_tft.base_units(),
            discounted_monthly_tft_units: q.discounted_monthly_tft.base_units(),
        }
    }
}

/// A maintenance window.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MaintenanceBody {
    /// Window id.
    pub window_id: Uuid,
    /// The node.
    pub node_id: i64,
    /// Its farm.
    pub farm_id: i64,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End.
    pub ends_at: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// scheduled or rescheduled.
    pub status: String,
}

impl From<marketplace_projections::nodes::WindowRow> for MaintenanceBody {
    fn from(w: marketplace_projections::nodes::WindowRow) -> Self {
        Self {
            window_id: w.window_id,
            node_id: w.node_id,
            farm_id: w.farm_id,
            starts_at: w.starts_at,
            ends_at: w.ends_at,
            reason: w.reason,
            status: w.status,
        }
    }
}
