//! ZOS nodes, as the marketplace talks to them: the node's RMB commands
//! (`zos.deployment.deploy`, `.update`, `.get`, `.changes`,
//! `zos.statistics.get`) behind the [`Nodes`] port, and ZOS's deployment
//! JSON ([`types`]) with its challenge hash, which the node contract
//! carries as `deployment_hash`.
//!
//! A real adapter is an RMB peer; the one here ([`rmb`]) speaks RMB's
//! envelope over plain HTTP to the dev-only ZOS SIMULATOR.

pub mod rmb;
pub mod types;

use async_trait::async_trait;

pub use types::{
    Capacity, Deployment, ResultState, SignatureRequirement, Statistics, Workload, WorkloadResult,
};

/// Which node, and as whom: RMB addresses the node by its twin, and the
/// node checks that the sender's twin owns the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAddress {
    /// The node's id on the grid.
    pub node_id: u32,
    /// The node's own twin (RMB destination).
    pub twin_id: u32,
}

/// Why a node call did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZosError {
    /// The node answered with an error (RMB's `err{code, message}`), e.g.
    /// no contract for this deployment or a hash mismatch.
    #[error("node refused ({code}): {message}")]
    Refused {
        /// RMB error code.
        code: u32,
        /// The node's message.
        message: String,
    },
    /// The node could not be reached (down, or RMB timed out).
    #[error("node unreachable: {0}")]
    Unreachable(String),
}

/// The nodes' RMB commands.
#[async_trait]
pub trait Nodes: Send + Sync {
    /// `zos.deployment.deploy`: the node starts the workloads of a
    /// deployment whose node contract exists and whose hash matches.
    async fn deploy(
        &self,
        node: NodeAddress,
        source_twin: u32,
        deployment: &Deployment,
    ) -> Result<(), ZosError>;

    /// `zos.deployment.update`: a new version of a deployed deployment (the
    /// contract already carries its hash).
    async fn update(
        &self,
        node: NodeAddress,
        source_twin: u32,
        deployment: &Deployment,
    ) -> Result<(), ZosError>;

    /// `zos.deployment.get {contract_id}`: the deployment with each
    /// workload's current result.
    async fn get(
        &self,
        node: NodeAddress,
        source_twin: u32,
        contract_id: u64,
    ) -> Result<Deployment, ZosError>;

    /// `zos.deployment.changes {contract_id}`: the workloads' result
    /// changes, oldest first (one entry per change of state).
    async fn changes(
        &self,
        node: NodeAddress,
        source_twin: u32,
        contract_id: u64,
    ) -> Result<Vec<Workload>, ZosError>;

    /// `zos.statistics.get`: the node's total, used and system capacity.
    async fn statistics(&self, node: NodeAddress, source_twin: u32)
        -> Result<Statistics, ZosError>;
}
