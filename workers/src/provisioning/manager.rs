//! The provisioning process manager's steps: from a deployment's state to
//! the next command, through placement, TFChain and the node.
//!
//! Each run loads the deployment and acts on its status, again after every
//! command it commits, until it must wait (for the node) or has nothing to
//! do. Every step looks before it acts, so a repeated run (after a crash or
//! a lapsed lease) finds its own effects instead of doubling them: the
//! twin is looked up by account, the contract by (node, deployment hash),
//! the node's deployment by contract, a cancelled contract by its state.
//! Commands are decided against the version the step read; a concurrent
//! change (a user's cancel, an operator's override) makes the step read
//! again instead of acting on a stale state.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use marketplace_app::bus::{load, Exec, Stores};
use marketplace_app::placement;
use marketplace_app::tfchain::{Chain, ChainError, Custody, Signer};
use marketplace_app::zos::{Deployment as ZosDeployment, NodeAddress, Nodes, ZosError};
use marketplace_app::{CommandError, EventMetadata};
use marketplace_domain::deployment::{
    standby, DeletionCause, Deployment, DeploymentCommand, DeploymentState, NodeAssignment, Status,
};
use marketplace_domain::placement::Demand;
use marketplace_domain::wallet::{Wallet, WalletCommand};
use sqlx::PgPool;
use tracing::{info, warn, Instrument};
use uuid::Uuid;

use super::build::{self, Secrets};

#[path = "qsfs.rs"]
mod qsfs_steps;
#[path = "spread.rs"]
mod spread_steps;
#[path = "standby.rs"]
mod standby_steps;
use crate::jobs::{Leased, Settle};
use standby_steps::standby_reservation;

/// The worker's name in events' metadata.
pub const WORKER: &str = "provisioning";

/// How the manager provisions.
#[derive(Debug, Clone)]
pub struct ProvisioningOptions {
    /// Nodes tried before a deployment fails.
    pub max_nodes: usize,
    /// How long workloads may stay short of `ok` (on the chain's clock).
    pub stall_timeout: Duration,
    /// First wait between looks at a node.
    pub poll_min: Duration,
    /// Longest wait between looks at a node.
    pub poll_max: Duration,
    /// How often a VM with a standby has its primary's node looked at.
    pub standby_check: Duration,
}

impl Default for ProvisioningOptions {
    fn default() -> Self {
        Self {
            max_nodes: 3,
            stall_timeout: Duration::from_secs(4 * 60),
            poll_min: Duration::from_millis(100),
            poll_max: Duration::from_secs(5),
            standby_check: Duration::from_secs(30),
        }
    }
}

/// Why a step could not go on now; the job is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The command path failed.
    #[error("command: {0}")]
    Command(#[from] CommandError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The chain failed in a way a retry may fix.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// Something the manager cannot act on.
    #[error("{0}")]
    Stuck(String),
}

/// What a step leaves to do.
enum Step {
    /// Read the deployment again and go on.
    Next,
    /// Nothing to do until an event wakes the job.
    Done,
    /// Look again later.
    Wait {
        after: Duration,
        waiting_for: String,
        since: i64,
    },
}

/// The provisioning process manager.
#[derive(Clone)]
pub struct Provisioner {
    pool: PgPool,
    stores: Arc<Stores>,
    chain: Arc<dyn Chain>,
    nodes: Arc<dyn Nodes>,
    custody: Arc<Custody>,
    options: ProvisioningOptions,
}

impl Provisioner {
    /// A manager over these ports.
    pub fn new(
        pool: PgPool,
        chain: Arc<dyn Chain>,
        nodes: Arc<dyn Nodes>,
        custody: Arc<Custody>,
        options: ProvisioningOptions,
    ) -> Self {
        let stores = Arc::new(Stores::new(&pool));
        Self {
            pool,
            stores,
            chain,
            nodes,
            custody,
            options,
        }
    }

    /// Works one leased job: drives its deployment as far as it goes now.
    pub async fn handle(&self, job: Leased) -> Settle {
        let Ok(id) = Uuid::parse_str(&job.job_id) else {
            warn!(job = %job.job_id, "provisioning job for a malformed deployment id; dropped");
            return Settle::Done;
        };
        let cause = match self.cause(id).await {
            Ok(cause) => cause,
            Err(e) => return Settle::Failed(e.to_string()),
        };
        let span = tracing::info_span!("provisioning", deployment = %id, correlation_id = %cause);
        match self.drive(id, &cause, &job).instrument(span).await {
            Ok(settle) => settle,
            Err(e) => Settle::Failed(e.to_string()),
        }
    }

    async fn drive(&self, id: Uuid, cause: &str, job: &Leased) -> Result<Settle, StepError> {
        for _ in 0..32 {
            let (d, version) = load(&self.stores.deployments, &id.to_string()).await?;
            let Some(s) = d.state().cloned() else {
                return Ok(Settle::Done);
            };
            let ctx = Ctx { id, cause, version };
            let step = match s.status {
                Status::Requested => self.place(&ctx, &s).await,
                Status::Placed => self.contract(&ctx, &s, job).await,
                Status::Provisioning => self.bring_up(&ctx, &s, job).await,
                Status::Running if s.update_pending() => self.bring_up(&ctx, &s, job).await,
                Status::Running | Status::Suspended if standby::wanted(&s) => {
                    self.standby(&ctx, &s, job).await
                }
                Status::Running | Status::Suspended => Ok(Step::Done),
                Status::Cancelled => self.cancel(&ctx, &s).await,
                Status::Failed | Status::Deleted => {
                    self.teardown(&s).await?;
                    self.release_all(id).await?;
                    Ok(Step::Done)
                }
            };
            match step {
                Ok(Step::Next) => continue,
                Ok(Step::Done) => return Ok(Settle::Done),
                Ok(Step::Wait {
                    after,
                    waiting_for,
                    since,
                }) => {
                    return Ok(Settle::Later {
                        after,
                        waiting_for: Some(waiting_for),
                        waiting_since: Some(since),
                    })
                }
                // Someone else changed the deployment: read it again.
                Err(StepError::Command(CommandError::VersionConflict(_))) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(Settle::Later {
            after: Duration::ZERO,
            waiting_for: None,
            waiting_since: None,
        })
    }

    /// The request's correlation id: every step's cause.
    async fn cause(&self, id: Uuid) -> Result<String, sqlx::Error> {
        let cause: Option<String> = sqlx::query_scalar(
            "SELECT metadata->>'correlation_id' FROM events
             WHERE aggregate_type = 'deployment' AND aggregate_id = $1 AND sequence = 1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        Ok(cause.unwrap_or_else(|| id.to_string()))
    }

    async fn command(&self, ctx: &Ctx<'_>, command: DeploymentCommand) -> Result<Step, StepError> {
        let name = command.name();
        let metadata = EventMetadata::for_worker_run(
            WORKER,
            ctx.cause,
            ctx.cause,
            &format!("{WORKER}/{}/{}", ctx.id, ctx.version),
        );
        Exec::<Deployment>::new(&self.stores.deployments, ctx.id.to_string(), metadata)
            .expecting(Some(ctx.version))
            .run(|_| Ok(command.clone()))
            .await?;
        info!(step = name, "provisioning step committed");
        Ok(Step::Next)
    }

    // ---- placement ----

    async fn place(&self, ctx: &Ctx<'_>, s: &DeploymentState) -> Result<Step, StepError> {
        if s.tried_nodes.len() >= self.options.max_nodes {
            placement::release(&self.pool, ctx.id).await?;
            let last = s
                .last_attempt_failure
                .as_deref()
                .unwrap_or("no reason given");
            let reason = format!(
                "no node could run it: {} nodes tried ({}); the last said: {last}",
                s.tried_nodes.len(),
                join(&s.tried_nodes)
            );
            return self.fail(ctx, reason).await;
        }
        let demand = match masters_only_when_spread(s) {
            Some(masters) => {
                Demand::from_machines(s.spec.machines().into_iter().take(masters).collect())
            }
            None => Demand::of(&s.spec),
        };
        let (_, policy) = marketplace_projections::pricing::current_policy(&self.pool).await?;
        let mut exclude = s.tried_nodes.clone();
        exclude.extend(s.zdbs.iter().map(|z| z.node.node_id));
        let chosen = placement::reserve(
            &self.pool,
            ctx.id,
            &demand,
            &s.placement,
            &policy,
            Utc::now(),
            &exclude,
        )
        .await?;
        match chosen {
            Ok(choice) => {
                info!(node = choice.node_id, reason = %choice.reason, "placed");
                self.command(
                    ctx,
                    DeploymentCommand::AssignNode {
                        node: NodeAssignment {
                            node_id: choice.node_id,
                            farm_id: choice.farm_id,
                        },
                        reason: Some(choice.reason),
                        at: Utc::now(),
                    },
                )
                .await
            }
            Err(none) => {
                let reason = if s.tried_nodes.is_empty() {
                    none.reason
                } else {
                    format!(
                        "{} (after failures on node {}; the last said: {})",
                        none.reason,
                        join(&s.tried_nodes),
                        s.last_attempt_failure
                            .as_deref()
                            .unwrap_or("no reason given")
                    )
                };
                self.fail(ctx, reason).await
            }
        }
    }

    async fn fail(&self, ctx: &Ctx<'_>, reason: String) -> Result<Step, StepError> {
        warn!(%reason, "deployment failed");
        self.command(
            ctx,
            DeploymentCommand::MarkFailed {
                workloads: Vec::new(),
                reason,
                at: Utc::now(),
            },
        )
        .await
    }

    /// Cancels what the attempt holds on chain and on the node, frees its
    /// reservation, and sends the deployment back to placement.
    async fn abandon(
        &self,
        ctx: &Ctx<'_>,
        s: &DeploymentState,
        reason: String,
    ) -> Result<Step, StepError> {
        warn!(%reason, node = ?s.node.map(|n| n.node_id), "provisioning attempt failed");
        self.teardown(s).await?;
        placement::release(&self.pool, ctx.id).await?;
        self.command(
            ctx,
            DeploymentCommand::AbandonAttempt {
                reason,
                at: Utc::now(),
            },
        )
        .await
    }

    // ---- the chain ----

    /// The owner's custodial account and twin, created on first need.
    async fn twin(&self, owner: &str, cause: &str) -> Result<(Signer, u32), StepError> {
        let signer = self.custody.wallet(owner);
        let (wallet, _) = load(&self.stores.wallets, owner).await?;
        if let Some(account) = wallet.state().and_then(|s| s.chain_account.clone()) {
            return Ok((signer, account.twin_id));
        }
        let twin_id = match self.chain.twin_id_by_account(signer.address()).await? {
            Some(twin) => twin,
            None => match self.chain.create_twin(&signer, None).await {
                Ok(_) => self
                    .chain
                    .twin_id_by_account(signer.address())
                    .await?
                    .ok_or_else(|| {
                        StepError::Stuck("the chain stored a twin but does not find it".into())
                    })?,
                Err(e) if e.is("tfgridModule", "TwinWithSameAccountIdExists") => self
                    .chain
                    .twin_id_by_account(signer.address())
                    .await?
                    .ok_or_else(|| StepError::Stuck(e.to_string()))?,
                Err(e) => return Err(e.into()),
            },
        };
        let metadata = EventMetadata::for_worker_run(WORKER, cause, cause, cause);
        let (owner_open, address) = (owner.to_string(), signer.address().to_string());
        Exec::<Wallet>::new(&self.stores.wallets, owner, metadata)
            .opening(move || WalletCommand::Open {
                owner: owner_open.clone(),
                at: Utc::now(),
            })
            .run(|_| {
                Ok(WalletCommand::RecordChainTwin {
                    address: address.clone(),
                    twin_id,
                    at: Utc::now(),
                })
            })
            .await?;
        info!(twin_id, account = %signer.address(), "custodial twin ready");
        Ok((signer, twin_id))
    }

    fn secrets(&self, owner: &str, id: Uuid) -> Secrets {
        let id = id.to_string();
        let key = self
            .custody
            .derived(&["marketplace", owner, "k3s", &id])
            .public_key();
        let derived = |what: &str| {
            hex::encode(
                self.custody
                    .derived(&["marketplace", owner, what, &id])
                    .public_key(),
            )
        };
        Secrets {
            k3s_token: hex::encode(key),
            zdb_password: derived("zdb")[..32].to_string(),
            qsfs_key: derived("qsfs"),
        }
    }

    fn zos(&self, ctx: &Ctx<'_>, s: &DeploymentState, twin: u32) -> ZosDeployment {
        build::deployment(ctx.id, twin, s, &self.secrets(&s.owner, ctx.id))
    }

    async fn contract(
        &self,
        ctx: &Ctx<'_>,
        s: &DeploymentState,
        job: &Leased,
    ) -> Result<Step, StepError> {
        let Some(node) = s.node else {
            return Err(StepError::Stuck("placed without a node".into()));
        };
        if let Some(step) = self.qsfs_backends(ctx, s, job).await? {
            return Ok(step);
        }
        let (signer, twin) = self.twin(&s.owner, ctx.cause).await?;
        let deployment = self.zos(ctx, s, twin);
        let hash = deployment.deployment_hash();
        let mut rent_contract_id = None;
        if s.placement.dedicated {
            match self.rent(&signer, twin, node.node_id).await? {
                Ok(id) => rent_contract_id = Some(id),
                Err(reason) => return self.abandon(ctx, s, reason).await,
            }
        }
        let contract_id = match self
            .chain
            .contract_id_by_node_and_hash(node.node_id, &hash)
            .await?
        {
            Some(existing) => {
                info!(contract_id = existing, "node contract already on chain");
                existing
            }
            None => {
                let data = deployment_data(ctx.id, s);
                match self
                    .chain
                    .create_node_contract(
                        &signer,
                        node.node_id,
                        &hash,
                        &data,
                        build::public_ips(&deployment),
                        None,
                    )
                    .await
                {
                    Ok(receipt) => receipt.contract().map(|c| c.contract_id).ok_or_else(|| {
                        StepError::Stuck("ContractCreated without a contract".into())
                    })?,
                    Err(e @ ChainError::Module { .. }) => {
                        if let Some(rent) = rent_contract_id {
                            self.cancel_contract(&signer, rent).await?;
                        }
                        let reason = format!(
                            "node {}: the chain refused the contract ({e})",
                            node.node_id
                        );
                        return self.abandon(ctx, s, reason).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        info!(contract_id, ?rent_contract_id, "node contract created");
        self.command(
            ctx,
            DeploymentCommand::RecordContractCreated {
                contract_id,
                rent_contract_id,
                at: Utc::now(),
            },
        )
        .await
    }

    /// The twin's rent contract on a dedicated node: its own, or a new one;
    /// `Err(reason)` when someone else rents it or the chain refuses.
    async fn rent(
        &self,
        signer: &Signer,
        twin: u32,
        node_id: u32,
    ) -> Result<Result<u64, String>, StepError> {
        if let Some(id) = self.chain.active_rent_contract_for_node(node_id).await? {
            let owner = self.chain.contract(id).await?.map(|c| c.twin_id);
            return Ok(if owner == Some(twin) {
                Ok(id)
            } else {
                Err(format!("node {node_id} is rented by another twin"))
            });
        }
        match self.chain.create_rent_contract(signer, node_id, None).await {
            Ok(receipt) => Ok(receipt
                .contract()
                .map(|c| c.contract_id)
                .ok_or_else(|| format!("node {node_id}: ContractCreated without a contract"))),
            Err(e @ ChainError::Module { .. }) => Ok(Err(format!(
                "node {node_id}: the chain refused the rent contract ({e})"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn cancel_contract(&self, signer: &Signer, contract_id: u64) -> Result<(), StepError> {
        match self.chain.contract(contract_id).await? {
            Some(c) if !c.is_deleted() => {
                match self.chain.cancel_contract(signer, contract_id).await {
                    Ok(_) => {
                        info!(contract_id, "contract cancelled");
                        Ok(())
                    }
                    Err(e) if e.is("smartContractModule", "ContractNotExists") => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Frees the deployment's reservations (its own and its standby's).
    async fn release_all(&self, id: Uuid) -> Result<(), StepError> {
        let mut ids = vec![id, standby_reservation(id)];
        ids.extend((0..=50u8).map(|index| spread_steps::worker_reservation(id, index)));
        for disk in 0..2u8 {
            for index in 0..marketplace_domain::deployment::QSFS_BACKENDS {
                ids.push(qsfs_steps::zdb_reservation(id, disk, index));
            }
        }
        placement::release_all(&self.pool, &ids).await?;
        Ok(())
    }

    /// Cancels the deployment's live contracts, node contracts first.
    async fn teardown(&self, s: &DeploymentState) -> Result<(), StepError> {
        let standby = s.standby.as_ref().and_then(|sb| sb.contract_id);
        let zdbs = s.zdbs.iter().filter_map(|z| z.contract_id);
        let workers = s.spread_workers.iter().filter_map(|w| w.contract_id);
        let contracts: Vec<u64> = s
            .contract_id
            .into_iter()
            .chain(standby)
            .chain(zdbs)
            .chain(workers)
            .chain(s.rent_contract_id)
            .collect();
        if contracts.is_empty() {
            return Ok(());
        }
        let signer = self.custody.wallet(&s.owner);
        for id in contracts {
            self.cancel_contract(&signer, id).await?;
        }
        Ok(())
    }

    // ---- the node ----

    async fn node_address(&self, node_id: u32) -> Result<NodeAddress, StepError> {
        let twin: Option<i64> =
            sqlx::query_scalar("SELECT twin_id FROM node_catalog WHERE node_id = $1")
                .bind(i64::from(node_id))
                .fetch_optional(&self.pool)
                .await?;
        let twin_id = twin
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| StepError::Stuck(format!("node {node_id} is not in the catalog")))?;
        Ok(NodeAddress { node_id, twin_id })
    }

    /// Sends the deployment (or its update) to the node and waits for every
    /// workload to be `ok`; an error or a stall abandons the attempt (a
    /// first deployment) or fails the deployment (an update).
    async fn bring_up(
        &self,
        ctx: &Ctx<'_>,
        s: &DeploymentState,
        job: &Leased,
    ) -> Result<Step, StepError> {
        let (Some(node), Some(contract_id)) = (s.node, s.contract_id) else {
            return Err(StepError::Stuck(
                "provisioning without a node or contract".into(),
            ));
        };
        let updating = s.status == Status::Running;
        let give_up = |reason: String| async move {
            if updating {
                self.teardown(s).await?;
                placement::release(&self.pool, ctx.id).await?;
                self.fail(ctx, format!("the update failed: {reason}")).await
            } else {
                self.abandon(ctx, s, reason).await
            }
        };
        let (signer, twin) = self.twin(&s.owner, ctx.cause).await?;
        let Some(contract) = self
            .chain
            .contract(contract_id)
            .await?
            .filter(|c| !c.is_deleted())
        else {
            return give_up(format!("contract {contract_id} is no longer on chain")).await;
        };
        let address = self.node_address(node.node_id).await?;
        let now = self.chain.latest_block().await?.timestamp;
        let waiting_for = format!(
            "node {} contract {contract_id} revision {}",
            node.node_id, s.revision
        );
        let since = match (&job.waiting_for, job.waiting_since) {
            (Some(w), Some(since)) if *w == waiting_for => since,
            _ => now,
        };
        let current = match self.nodes.get(address, twin, contract_id).await {
            Ok(d) => Some(d),
            Err(ZosError::Refused { .. }) => None,
            Err(ZosError::Unreachable(e)) => {
                return self
                    .wait_or_stall(waiting_for, since, now, e, give_up)
                    .await;
            }
        };
        let (wanted, send) = build::next(self.zos(ctx, s, twin), current.as_ref());
        let hash = wanted.deployment_hash();
        let contract_hash = contract.node_contract().map(|c| c.deployment_hash.clone());
        if contract_hash.as_deref() != Some(hash.as_str()) {
            if !updating {
                return give_up(format!("contract {contract_id} carries another deployment")).await;
            }
            match self
                .chain
                .update_node_contract(&signer, contract_id, &hash, &deployment_data(ctx.id, s))
                .await
            {
                Ok(_) => info!(contract_id, "node contract updated"),
                Err(e @ ChainError::Module { .. }) => {
                    return give_up(format!("the chain refused the contract update ({e})")).await
                }
                Err(e) => return Err(e.into()),
            }
        }
        let signed = || build::signed(wanted.clone(), contract_id, &signer, twin);
        let sent = match (&current, send) {
            (None, _) => self
                .nodes
                .deploy(address, twin, &signed())
                .await
                .map(|()| true),
            (Some(_), true) => self
                .nodes
                .update(address, twin, &signed())
                .await
                .map(|()| true),
            (Some(_), false) => Ok(false),
        };
        match sent {
            Ok(true) => info!(
                node = node.node_id,
                contract_id,
                version = wanted.version,
                "deployment sent to the node"
            ),
            Ok(false) => {}
            Err(ZosError::Refused { message, .. }) => {
                return give_up(format!(
                    "node {} refused the deployment: {message}",
                    node.node_id
                ))
                .await;
            }
            Err(ZosError::Unreachable(e)) => {
                return self
                    .wait_or_stall(waiting_for, since, now, e, give_up)
                    .await;
            }
        }
        let reported = match self.nodes.get(address, twin, contract_id).await {
            Ok(d) => d,
            Err(e) => {
                return self
                    .wait_or_stall(waiting_for, since, now, e.to_string(), give_up)
                    .await
            }
        };
        if reported.version == wanted.version {
            if let Some(reason) = build::failure(&reported) {
                return give_up(format!("node {}: {reason}", node.node_id)).await;
            }
            if build::all_ok(&reported) {
                // A spread cluster runs once its workers do too.
                if let Some(step) = self.spread_workers(ctx, s, job).await? {
                    return Ok(step);
                }
                placement::mark_running(&self.pool, ctx.id, Utc::now()).await?;
                let mut workloads = build::machine_states(&reported);
                workloads.extend(Self::worker_states(s));
                return self
                    .command(
                        ctx,
                        DeploymentCommand::MarkRunning {
                            workloads,
                            at: Utc::now(),
                        },
                    )
                    .await;
            }
        }
        self.wait_or_stall(
            waiting_for,
            since,
            now,
            "workloads not ok yet".into(),
            give_up,
        )
        .await
    }

    async fn wait_or_stall<F, Fut>(
        &self,
        waiting_for: String,
        since: i64,
        now: i64,
        why: String,
        give_up: F,
    ) -> Result<Step, StepError>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<Step, StepError>>,
    {
        let waited = Duration::from_secs(now.saturating_sub(since).max(0) as u64);
        if waited >= self.options.stall_timeout {
            return give_up(format!(
                "stalled: {waiting_for} made no progress for {} minutes ({why})",
                waited.as_secs() / 60
            ))
            .await;
        }
        let after = (waited / 10).clamp(self.options.poll_min, self.options.poll_max);
        Ok(Step::Wait {
            after,
            waiting_for,
            since,
        })
    }

    // ---- cancellation ----

    async fn cancel(&self, ctx: &Ctx<'_>, s: &DeploymentState) -> Result<Step, StepError> {
        self.teardown(s).await?;
        self.release_all(ctx.id).await?;
        // The chain's NodeContractCanceled has been seen: the contract reads
        // Deleted (the cancel's own receipt carried the event).
        if let Some(id) = s.contract_id {
            let gone = self
                .chain
                .contract(id)
                .await?
                .is_none_or(|c| c.is_deleted());
            if !gone {
                return Err(StepError::Stuck(format!(
                    "contract {id} is still live after its cancel"
                )));
            }
        }
        self.command(
            ctx,
            DeploymentCommand::Delete {
                cause: DeletionCause::CanceledByUser,
                at: Utc::now(),
            },
        )
        .await
    }
}

/// Where a satellite deployment (a standby, a QSFS backend) is on its node.
enum Satellite {
    /// Every workload is `ok`; what the node reports.
    Up(ZosDeployment),
    /// Sent (now or before) and not up yet, or the node is out of reach.
    Pending,
    /// The node refused it or a workload failed: why.
    Failed(String),
}

impl Provisioner {
    /// The node contract carrying `deployment` on `node`: found by its
    /// hash, or created with `public_ips`; `Ok(Err(reason))` when the chain
    /// refuses it.
    async fn satellite_contract(
        &self,
        ctx: &Ctx<'_>,
        s: &DeploymentState,
        signer: &Signer,
        node: u32,
        deployment: &ZosDeployment,
    ) -> Result<Result<u64, String>, StepError> {
        let hash = deployment.deployment_hash();
        if let Some(existing) = self.chain.contract_id_by_node_and_hash(node, &hash).await? {
            return Ok(Ok(existing));
        }
        let created = self
            .chain
            .create_node_contract(
                signer,
                node,
                &hash,
                &deployment_data(ctx.id, s),
                build::public_ips(deployment),
                None,
            )
            .await;
        match created {
            Ok(receipt) => receipt
                .contract()
                .map(|c| Ok(c.contract_id))
                .ok_or_else(|| StepError::Stuck("ContractCreated without a contract".into())),
            Err(e @ ChainError::Module { .. }) => Ok(Err(format!(
                "node {node}: the chain refused the contract ({e})"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a satellite deployment back from its node, sending it first
    /// when the node does not have it.
    async fn satellite(
        &self,
        node: u32,
        contract_id: u64,
        deployment: ZosDeployment,
        signer: &Signer,
        twin: u32,
    ) -> Result<Satellite, StepError> {
        let address = self.node_address(node).await?;
        match self.nodes.get(address, twin, contract_id).await {
            Ok(d) => Ok(if let Some(reason) = build::failure(&d) {
                Satellite::Failed(format!("node {node}: {reason}"))
            } else if build::all_ok(&d) {
                Satellite::Up(d)
            } else {
                Satellite::Pending
            }),
            Err(ZosError::Refused { .. }) => {
                let signed = build::signed(deployment, contract_id, signer, twin);
                Ok(match self.nodes.deploy(address, twin, &signed).await {
                    Ok(()) | Err(ZosError::Unreachable(_)) => Satellite::Pending,
                    Err(ZosError::Refused { message, .. }) => {
                        Satellite::Failed(format!("node {node} refused it: {message}"))
                    }
                })
            }
            Err(ZosError::Unreachable(_)) => Ok(Satellite::Pending),
        }
    }
}

struct Ctx<'a> {
    id: Uuid,
    cause: &'a str,
    version: u64,
}

/// How many machines run on the deployment's own node when its workers are
/// spread (the masters), or `None`.
fn masters_only_when_spread(s: &DeploymentState) -> Option<usize> {
    marketplace_domain::deployment::spread::cluster(s).map(|k| usize::from(k.masters))
}

/// The node contract's `deployment_data`: which marketplace deployment it is.
fn deployment_data(id: Uuid, s: &DeploymentState) -> String {
    serde_json::json!({
        "version": 3,
        "type": s.spec.kind().as_str(),
        "name": s.name.as_str(),
        "projectName": format!("marketplace/{id}"),
    })
    .to_string()
}

fn join(nodes: &[u32]) -> String {
    nodes
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
