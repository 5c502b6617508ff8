//! The manager's steps for a VM's standby: placed on another farm,
//! contracted and brought up without its machine, then the primary's node
//! watched; 30 minutes unreachable (chain clock) and the standby takes
//! over.

use chrono::Utc;
use marketplace_app::placement;
use marketplace_app::zos::ZosError;
use marketplace_domain::deployment::{
    DeploymentCommand, DeploymentState, NodeAssignment, STANDBY_TAKEOVER_MINUTES,
};
use marketplace_domain::placement::Demand;
use tracing::{info, warn};
use uuid::Uuid;

use super::{build, Ctx, Provisioner, Satellite, Step, StepError};
use crate::jobs::Leased;

impl Provisioner {
    // ---- the standby ----

    /// Keeps a VM's standby: placed on another farm, contracted, its disks
    /// and network up on its node; then watches the primary's node and,
    /// once it has been unreachable for 30 minutes (chain clock), cancels
    /// the primary's contract and fails over.
    pub(super) async fn standby(
        &self,
        ctx: &Ctx<'_>,
        s: &DeploymentState,
        job: &Leased,
    ) -> Result<Step, StepError> {
        let now = self.chain.latest_block().await?.timestamp;
        let Some(primary) = s.node else {
            return Ok(Step::Done);
        };
        let Some(sb) = &s.standby else {
            return self.place_standby(ctx, s, primary, now).await;
        };
        let (signer, twin) = self.twin(&s.owner, ctx.cause).await?;
        let deployment = build::standby(ctx.id, twin, s, &self.secrets(&s.owner, ctx.id));
        let node = sb.node.node_id;
        let signer_ref = &signer;
        let give_up = move |reason: String| async move {
            if let Some(c) = sb.contract_id {
                self.cancel_contract(signer_ref, c).await?;
            }
            placement::release(&self.pool, standby_reservation(ctx.id)).await?;
            warn!(%reason, node, "standby failed");
            self.command(
                ctx,
                DeploymentCommand::AbandonStandby {
                    reason,
                    at: Utc::now(),
                },
            )
            .await
        };
        let Some(contract_id) = sb.contract_id else {
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
                    DeploymentCommand::RecordStandbyContract {
                        contract_id,
                        at: Utc::now(),
                    },
                )
                .await;
        };
        if !sb.ready {
            let waiting_for = format!("standby node {node} contract {contract_id}");
            let since = match (&job.waiting_for, job.waiting_since) {
                (Some(w), Some(since)) if *w == waiting_for => since,
                _ => now,
            };
            match self
                .satellite(node, contract_id, deployment, &signer, twin)
                .await?
            {
                Satellite::Up(_) => {
                    placement::mark_running(&self.pool, standby_reservation(ctx.id), Utc::now())
                        .await?;
                    return self
                        .command(ctx, DeploymentCommand::MarkStandbyReady { at: Utc::now() })
                        .await;
                }
                Satellite::Failed(reason) => return give_up(reason).await,
                Satellite::Pending => {}
            }
            return self
                .wait_or_stall(
                    waiting_for,
                    since,
                    now,
                    "standby not up yet".into(),
                    give_up,
                )
                .await;
        }
        // Ready: is the primary's node still there?
        let primary_address = self.node_address(primary.node_id).await?;
        let down = format!("primary node {} unreachable", primary.node_id);
        match self.nodes.statistics(primary_address, twin).await {
            Err(ZosError::Unreachable(e)) => {
                let since = match (&job.waiting_for, job.waiting_since) {
                    (Some(w), Some(since)) if *w == down => since,
                    _ => now,
                };
                let minutes = (now - since) / 60;
                if minutes >= STANDBY_TAKEOVER_MINUTES {
                    if let Some(c) = s.contract_id {
                        self.cancel_contract(&signer, c).await?;
                    }
                    placement::release(&self.pool, ctx.id).await?;
                    let reason = format!(
                        "node {} unreachable for {minutes} minutes ({e}); the standby on node {node} took over",
                        primary.node_id
                    );
                    info!(%reason, "failing over");
                    return self
                        .command(
                            ctx,
                            DeploymentCommand::FailOver {
                                reason,
                                at: Utc::now(),
                            },
                        )
                        .await;
                }
                Ok(Step::Wait {
                    after: self.options.standby_check,
                    waiting_for: down,
                    since,
                })
            }
            _ => Ok(Step::Wait {
                after: self.options.standby_check,
                waiting_for: format!("primary node {} reachable", primary.node_id),
                since: now,
            }),
        }
    }

    async fn place_standby(
        &self,
        ctx: &Ctx<'_>,
        s: &DeploymentState,
        primary: NodeAssignment,
        now: i64,
    ) -> Result<Step, StepError> {
        // Never the primary's farm, nor a node that failed before.
        let same_farm: Vec<i64> =
            sqlx::query_scalar("SELECT node_id FROM node_catalog WHERE farm_id = $1")
                .bind(i64::from(primary.farm_id))
                .fetch_all(&self.pool)
                .await?;
        let mut exclude = s.tried_nodes.clone();
        exclude.push(primary.node_id);
        exclude.extend(same_farm.into_iter().filter_map(|n| u32::try_from(n).ok()));
        let (_, policy) = marketplace_projections::pricing::current_policy(&self.pool).await?;
        let chosen = placement::reserve(
            &self.pool,
            standby_reservation(ctx.id),
            &Demand::of(&s.spec),
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
                    DeploymentCommand::AssignStandby {
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
                warn!(reason = %none.reason, "no node of another farm for the standby yet");
                Ok(Step::Wait {
                    after: self.options.standby_check,
                    waiting_for: format!("a standby node: {}", none.reason),
                    since: now,
                })
            }
        }
    }
}

/// The standby's capacity reservation is held under its own id.
pub(super) fn standby_reservation(id: Uuid) -> Uuid {
    Uuid::new_v5(&id, b"standby")
}
