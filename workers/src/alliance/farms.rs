//! Each founded alliance gets its chain farm: the marketplace creates a twin
//! for the alliance's custodial account (`Custody::alliance`) and a farm
//! under it, then records them (`AssignFarm`). Every step is looked up
//! before it is made, so a crash anywhere repeats nothing: an existing twin
//! is found by account, an existing farm by its name (derived from the
//! alliance id), and `AssignFarm` of the same farm is a no-op.

use chrono::Utc;
use marketplace_app::tfchain::{Chain, ChainError, Custody};
use marketplace_app::{CommandError, EventMetadata, Exec, Stores};
use marketplace_domain::alliance::{Alliance, AllianceCommand, AllianceFarm, ChainAccount};
use marketplace_projections::alliances;
use sqlx::PgPool;
use tracing::info;

use super::AllianceWorkError;

/// The worker's name in event metadata.
pub const WORKER: &str = "alliance-farms";

/// The farm name of an alliance: `alliance-` and its id's first 31
/// letters and digits (the chain allows 3 to 40 of `a-z A-Z 0-9 - _`).
pub fn farm_name(alliance_id: &str) -> String {
    let clean: String = alliance_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(31)
        .collect();
    format!("alliance-{clean}")
}

/// Creates (or finds) the twin and farm of every alliance without one and
/// records them; how many it assigned.
pub async fn assign_farms_once(
    pool: &PgPool,
    stores: &Stores,
    chain: &dyn Chain,
    custody: &Custody,
) -> Result<usize, AllianceWorkError> {
    let mut assigned = 0;
    for id in alliances::without_farm(pool).await? {
        let signer = custody.alliance(&id);
        let twin_id = match chain.twin_id_by_account(signer.address()).await? {
            Some(t) => t,
            None => {
                match chain.create_twin(&signer, None).await {
                    Ok(_) => {}
                    Err(e) if e.is("tfgridModule", "TwinWithSameAccountIdExists") => {}
                    Err(e) => return Err(e.into()),
                }
                chain
                    .twin_id_by_account(signer.address())
                    .await?
                    .ok_or_else(|| {
                        ChainError::Unavailable("the twin created is not found".into())
                    })?
            }
        };
        let name = farm_name(&id);
        let farm_id = match chain.farm_id_by_name(&name).await? {
            Some(f) => f,
            None => chain.create_farm(&signer, &name).await?,
        };
        let account = ChainAccount::new(signer.address())
            .map_err(|e| CommandError::Internal(format!("alliance account: {}", e.reason)))?;
        let farm = AllianceFarm {
            farm_id,
            twin_id,
            account,
        };
        let done = Exec::<Alliance>::new(
            &stores.alliances,
            id.clone(),
            EventMetadata::for_worker(WORKER, &format!("{WORKER}/{id}")),
        )
        .run_unless_done(|a| {
            if a.state().and_then(|s| s.farm.as_ref()).is_some() {
                return Ok(None);
            }
            Ok(Some(AllianceCommand::AssignFarm {
                farm: farm.clone(),
                at: Utc::now(),
            }))
        })
        .await?;
        if !done.events.is_empty() {
            info!(alliance = %id, farm_id, twin_id, "alliance farm assigned");
            assigned += 1;
        }
    }
    Ok(assigned)
}
