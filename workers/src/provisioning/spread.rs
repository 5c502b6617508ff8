//! The manager's steps for a spread cluster's workers: each placed on a
//! node of its own, contracted, deployed and brought to the current
//! revision; workers past the count released. The cluster is marked
//! running only when the masters and every worker run at the revision.

use chrono::Utc;
use marketplace_app::placement;
use marketplace_app::tfchain::ChainError;
use marketplace_app::zos::ZosError;
use marketplace_domain::deployment::{
    spread, DeploymentCommand, DeploymentState, NodeAssignment, WorkloadStatus,
};
use marketplace_domain::placement::Demand;
use tracing::warn;
use uuid::Uuid;

use super::{build, deployment_data, Ctx, Provisioner, Satellite, Step, StepError};
use crate::jobs::Leased;

/// Worker `index`'s capacity reservation is held under its own id.
pub(super) fn worker_reservation(id: Uuid, index: u8) -> Uuid {
    Uuid::new_v5(&id, format!("worker/{index}").as_bytes())
}

impl Provisioner {
    /// The next step the workers need, or `None` when every one runs at the
    /// current revision (then `running` are their states, in order).
    pub(super) async fn spread_workers(
        &self,
        ctx: &Ctx<'_>,
        s: &DeploymentState,
        job: &Leased,
    ) -> Result<Option<Step>, StepError> {
        let Some(k) = spread::cluster(s) else {
            return Ok(None);
        };
        let (signer, twin) = self.twin(&s.owner, ctx.cause).await?;
        if let Some(extra) = s.spread_workers.iter().find(|w| w.index >= k.workers) {
            if let Some(c) = extra.contract_id {
                self.cancel_contract(&signer, c).await?;
            }
            placement::release(&self.pool, worker_reservation(ctx.id, extra.index)).await?;
            let step = self
                .command(
                    ctx,
                    DeploymentCommand::ReleaseWorker {
                        index: extra.index,
                        failure: None,
                        at: Utc::now(),
                    },
                )
                .await?;
            return Ok(Some(step));
        }
        for index in 0..k.workers {
            let Some(w) = spread::worker(s, index) else {
                return self.place_worker(ctx, s, index).await.map(Some);
            };
            if w.running.as_ref().is_some_and(|(r, _)| *r == s.revision) {
                continue;
            }
            let Some(wanted) =
                build::spread_worker(ctx.id, twin, s, index, &self.secrets(&s.owner, ctx.id))
            else {
                return Ok(None);
            };
            let node = w.node.node_id;
            let signer_ref = &signer;
            let give_up = move |reason: String| async move {
                if let Some(c) = w.contract_id {
                    self.cancel_contract(signer_ref, c).await?;
                }
                placement::release(&self.pool, worker_reservation(ctx.id, index)).await?;
                warn!(%reason, node, worker = index, "spread worker failed; placing it again");
                self.command(
                    ctx,
                    DeploymentCommand::ReleaseWorker {
                        index,
                        failure: Some(reason),
                        at: Utc::now(),
                    },
                )
                .await
            };
            let Some(contract_id) = w.contract_id else {
                let step = match self
                    .satellite_contract(ctx, s, &signer, node, &wanted)
                    .await?
                {
                    Ok(contract_id) => {
                        self.command(
                            ctx,
                            DeploymentCommand::RecordWorkerContract {
                                index,
                                contract_id,
                                at: Utc::now(),
                            },
                        )
                        .await?
                    }
                    Err(reason) => give_up(reason).await?,
                };
                return Ok(Some(step));
            };
            let now = self.chain.latest_block().await?.timestamp;
            let waiting_for = format!(
                "worker {index} on node {node} contract {contract_id} revision {}",
                s.revision
            );
            let since = match (&job.waiting_for, job.waiting_since) {
                (Some(w), Some(since)) if *w == waiting_for => since,
                _ => now,
            };
            // The node runs an older spec of it: update the contract and the node.
            let address = self.node_address(node).await?;
            let current = self.nodes.get(address, twin, contract_id).await.ok();
            let (target, send) = build::next(wanted, current.as_ref());
            if current.is_some() && send {
                let hash = target.deployment_hash();
                let on_chain = self.chain.contract(contract_id).await?;
                let carried = on_chain
                    .as_ref()
                    .and_then(|c| c.node_contract())
                    .map(|c| c.deployment_hash.clone());
                if carried.as_deref() != Some(hash.as_str()) {
                    match self
                        .chain
                        .update_node_contract(
                            &signer,
                            contract_id,
                            &hash,
                            &deployment_data(ctx.id, s),
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(e @ ChainError::Module { .. }) => {
                            return give_up(format!("the chain refused the update ({e})"))
                                .await
                                .map(Some)
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                let signed = build::signed(target, contract_id, &signer, twin);
                if let Err(ZosError::Refused { message, .. }) =
                    self.nodes.update(address, twin, &signed).await
                {
                    return give_up(format!("node {node} refused the update: {message}"))
                        .await
                        .map(Some);
                }
                return Ok(Some(Step::Wait {
                    after: self.options.poll_min,
                    waiting_for,
                    since,
                }));
            }
            let version = target.version;
            let step = match self
                .satellite(node, contract_id, target, &signer, twin)
                .await?
            {
                Satellite::Up(d) if d.version == version => {
                    let Some(workload) = build::machine_states(&d).into_iter().next() else {
                        return give_up(format!("node {node} reports no machine"))
                            .await
                            .map(Some);
                    };
                    placement::mark_running(
                        &self.pool,
                        worker_reservation(ctx.id, index),
                        Utc::now(),
                    )
                    .await?;
                    self.command(
                        ctx,
                        DeploymentCommand::MarkWorkerRunning {
                            index,
                            workload,
                            at: Utc::now(),
                        },
                    )
                    .await?
                }
                Satellite::Failed(reason) => give_up(reason).await?,
                Satellite::Up(_) | Satellite::Pending => {
                    self.wait_or_stall(waiting_for, since, now, "worker not up yet".into(), give_up)
                        .await?
                }
            };
            return Ok(Some(step));
        }
        Ok(None)
    }

    /// The workers' states, in order, for the cluster's running report.
    pub(super) fn worker_states(s: &DeploymentState) -> Vec<WorkloadStatus> {
        let mut workers: Vec<_> = s
            .spread_workers
            .iter()
            .filter_map(|w| w.running.clone().map(|r| (w.index, r.1)))
            .collect();
        workers.sort_by_key(|(i, _)| *i);
        workers.into_iter().map(|(_, w)| w).collect()
    }

    async fn place_worker(
        &self,
        ctx: &Ctx<'_>,
        s: &DeploymentState,
        index: u8,
    ) -> Result<Step, StepError> {
        let Some(k) = spread::cluster(s) else {
            return Ok(Step::Next);
        };
        let machines = s.spec.machines();
        let worker = machines
            .get(usize::from(k.masters))
            .copied()
            .unwrap_or_default();
        let mut exclude = s.tried_nodes.clone();
        exclude.extend(s.node.map(|n| n.node_id));
        exclude.extend(s.spread_workers.iter().map(|w| w.node.node_id));
        let (_, policy) = marketplace_projections::pricing::current_policy(&self.pool).await?;
        let chosen = placement::reserve(
            &self.pool,
            worker_reservation(ctx.id, index),
            &Demand::from_machines(vec![worker]),
            &s.placement,
            &policy,
            Utc::now(),
            &exclude,
        )
        .await?;
        match chosen {
            Ok(choice) => {
                self.command(
                    ctx,
                    DeploymentCommand::AssignWorker {
                        index,
                        node: NodeAssignment {
                            node_id: choice.node_id,
                            farm_id: choice.farm_id,
                        },
                        at: Utc::now(),
                    },
                )
                .await
            }
            Err(none) => {
                self.teardown(s).await?;
                self.release_all(ctx.id).await?;
                self.fail(
                    ctx,
                    format!("worker {index} needs a node of its own: {}", none.reason),
                )
                .await
            }
        }
    }
}
