//! The manager's steps for a VM's QSFS disks: while the VM is `placed`,
//! each disk's backends are placed on other nodes, contracted and brought
//! up (two `zdb` namespaces each), one step at a time; the VM's own
//! contract waits until every backend reports its endpoint, since the VM's
//! `qsfs` workloads name them.

use chrono::Utc;
use marketplace_app::placement;
use marketplace_domain::deployment::{
    qsfs, DeploymentCommand, DeploymentState, NodeAssignment, Placement, QSFS_BACKENDS,
};
use marketplace_domain::placement::Demand;
use marketplace_domain::pricing::MachineUsage;
use tracing::warn;
use uuid::Uuid;

use super::{build, Ctx, Provisioner, Satellite, Step, StepError};
use crate::jobs::Leased;

/// A backend's capacity reservation is held under its own id.
pub(super) fn zdb_reservation(id: Uuid, disk: u8, index: u8) -> Uuid {
    Uuid::new_v5(&id, format!("zdb/{disk}/{index}").as_bytes())
}

impl Provisioner {
    /// The next step the QSFS backends need, or `None` when all are up.
    pub(super) async fn qsfs_backends(
        &self,
        ctx: &Ctx<'_>,
        s: &DeploymentState,
        job: &Leased,
    ) -> Result<Option<Step>, StepError> {
        for (disk, gb) in qsfs::disks(s).iter().enumerate() {
            let disk = disk as u8;
            for index in 0..QSFS_BACKENDS {
                let step = match qsfs::backend(s, disk, index) {
                    None => self.place_zdb(ctx, s, disk, index, *gb).await?,
                    Some(z) if z.endpoint.is_some() => continue,
                    Some(_) => self.bring_up_zdb(ctx, s, disk, index, job).await?,
                };
                return Ok(Some(step));
            }
        }
        Ok(None)
    }

    async fn place_zdb(
        &self,
        ctx: &Ctx<'_>,
        s: &DeploymentState,
        disk: u8,
        index: u8,
        gb: u32,
    ) -> Result<Step, StepError> {
        let mut exclude = s.tried_nodes.clone();
        exclude.extend(s.node.map(|n| n.node_id));
        exclude.extend(
            s.zdbs
                .iter()
                .filter(|z| z.disk == disk)
                .map(|z| z.node.node_id),
        );
        let data_gb = u64::from(gb).div_ceil(2) + 1;
        let demand = Demand::from_machines(vec![MachineUsage {
            hru_gb: data_gb,
            ..MachineUsage::default()
        }]);
        let (_, policy) = marketplace_projections::pricing::current_policy(&self.pool).await?;
        let chosen = placement::reserve(
            &self.pool,
            zdb_reservation(ctx.id, disk, index),
            &demand,
            &Placement::default(),
            &policy,
            Utc::now(),
            &exclude,
        )
        .await?;
        match chosen {
            Ok(choice) => {
                self.command(
                    ctx,
                    DeploymentCommand::AssignZdb {
                        disk,
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
                self.release_all(ctx.id).await?;
                self.teardown(s).await?;
                self.fail(
                    ctx,
                    format!("QSFS disk {disk} needs {QSFS_BACKENDS} backends on distinct other nodes: {}", none.reason),
                )
                .await
            }
        }
    }

    async fn bring_up_zdb(
        &self,
        ctx: &Ctx<'_>,
        s: &DeploymentState,
        disk: u8,
        index: u8,
        job: &Leased,
    ) -> Result<Step, StepError> {
        let Some(z) = qsfs::backend(s, disk, index) else {
            return Ok(Step::Next);
        };
        let node = z.node.node_id;
        let (signer, twin) = self.twin(&s.owner, ctx.cause).await?;
        let deployment = build::zdb(
            ctx.id,
            twin,
            s,
            disk,
            index,
            &self.secrets(&s.owner, ctx.id),
        );
        let signer_ref = &signer;
        let give_up = move |reason: String| async move {
            if let Some(c) = z.contract_id {
                self.cancel_contract(signer_ref, c).await?;
            }
            placement::release(&self.pool, zdb_reservation(ctx.id, disk, index)).await?;
            warn!(%reason, node, disk, index, "QSFS backend failed");
            self.command(
                ctx,
                DeploymentCommand::AbandonZdb {
                    disk,
                    index,
                    reason,
                    at: Utc::now(),
                },
            )
            .await
        };
        let Some(contract_id) = z.contract_id else {
            let contract_id = match self
                .satellite_contract(ctx, s, &signer, node, &deployment)
                .await?
            {
                Ok(id) => id,
                Err(reason) => return give_up(reason).await,
            };
            return self
                .command(
                    ctx,
                    DeploymentCommand::RecordZdbContract {
                        disk,
                        index,
                        contract_id,
                        at: Utc::now(),
                    },
                )
                .await;
        };
        let now = self.chain.latest_block().await?.timestamp;
        let waiting_for =
            format!("QSFS backend {disk}/{index} on node {node} contract {contract_id}");
        let since = match (&job.waiting_for, job.waiting_since) {
            (Some(w), Some(since)) if *w == waiting_for => since,
            _ => now,
        };
        match self
            .satellite(node, contract_id, deployment, &signer, twin)
            .await?
        {
            Satellite::Up(d) => {
                let Some(endpoint) = build::zdb_endpoint(&d) else {
                    return give_up(format!("node {node} reports no zdb endpoint")).await;
                };
                placement::mark_running(
                    &self.pool,
                    zdb_reservation(ctx.id, disk, index),
                    Utc::now(),
                )
                .await?;
                return self
                    .command(
                        ctx,
                        DeploymentCommand::MarkZdbReady {
                            disk,
                            index,
                            endpoint,
                            at: Utc::now(),
                        },
                    )
                    .await;
            }
            Satellite::Failed(reason) => return give_up(reason).await,
            Satellite::Pending => {}
        }
        self.wait_or_stall(
            waiting_for,
            since,
            now,
            "backend not up yet".into(),
            give_up,
        )
        .await
    }
}
