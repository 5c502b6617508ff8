//! The provider request view: one row per farm's request, its latest round,
//! for the operators' review queue and the provider's own page. An approved
//! row makes its provider the farm's owner ([`farm_owner`], [`farms_of`]),
//! which maintenance commands look up first.
//!
//! Every column comes from events, never from the clock, so a rebuild
//! reproduces the table exactly (ARCHITECTURE.md, invariant 6).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use marketplace_domain::provider::{ProviderRequestEvent, Status, EVENT_VERSION};
use sqlx::{PgConnection, PgPool};

use crate::{ApplyError, Projection, StoredEvent};

/// Builds `provider_requests`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProviderRequestProjection;

/// The projection's name, under which its checkpoint is kept.
pub const NAME: &str = "provider_requests";

/// The aggregate type it reads.
pub const AGGREGATE_TYPE: &str = "provider_request";

/// Reads a stored provider request event, upcasting older payload versions.
pub fn upcast(event: &StoredEvent) -> Result<ProviderRequestEvent, ApplyError> {
    crate::decode_event(event, EVENT_VERSION)
}

/// The farm id an aggregate id names.
fn farm_of(stored: &StoredEvent) -> Result<i64, ApplyError> {
    match stored.aggregate_id.parse::<u32>() {
        Ok(id) if id > 0 => Ok(i64::from(id)),
        _ => Err(ApplyError::Poison(format!(
            "aggregate id {:?} is not a farm id",
            stored.aggregate_id
        ))),
    }
}

#[async_trait::async_trait]
impl Projection for ProviderRequestProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[AGGREGATE_TYPE]
    }

    /// One statement per event, guarded by `version = sequence - 1`; when it
    /// changes no row, a second look tells a duplicate (no-op) from a gap or
    /// a missing row (poison).
    async fn apply(&self, conn: &mut PgConnection, stored: &StoredEvent) -> Result<(), ApplyError> {
        use ProviderRequestEvent as E;
        let farm_id = farm_of(stored)?;
        let event = upcast(stored)?;
        let seq = stored.sequence;
        // $1 farm, $2 sequence, $3 when; the rest per event.
        let head = |sql: &'static str| sqlx::query(sql).bind(farm_id).bind(seq).bind(event.at());
        macro_rules! update {
            ($set:literal) => {
                head(concat!(
                    "UPDATE provider_requests SET version = $2, updated_at = $3, ",
                    $set,
                    " WHERE farm_id = $1 AND version = $2 - 1"
                ))
            };
        }
        let query = match &event {
            E::ProviderRequestSubmitted {
                provider,
                company,
                contact,
                farm_id: named,
                node_ids,
                country,
                message,
                round,
                ..
            } => {
                if i64::from(*named) != farm_id {
                    return Err(ApplyError::Poison(format!(
                        "a submission for farm {named} in the stream of farm {farm_id}"
                    )));
                }
                let nodes: Vec<i64> = node_ids.as_slice().iter().map(|&n| n.into()).collect();
                let round = i32::try_from(*round)
                    .map_err(|_| ApplyError::Poison(format!("round {round} out of range")))?;
                let q = if seq == 1 {
                    head(
                        "INSERT INTO provider_requests
                            (farm_id, version, submitted_at, updated_at, provider, company, contact,
                             node_ids, country, message, round, status)
                         VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10, 'submitted')
                         ON CONFLICT (farm_id) DO NOTHING",
                    )
                } else {
                    // A new round: the row starts over, but the latest reason and
                    // question stay, as the aggregate keeps them.
                    update!(
                        "submitted_at = $3, provider = $4, company = $5, contact = $6,
                         node_ids = $7, country = $8, message = $9, round = $10,
                         status = 'submitted', last_answer = NULL"
                    )
                };
                q.bind(provider)
                    .bind(company.as_str())
                    .bind(contact.as_str())
                    .bind(nodes)
                    .bind(country.as_str())
                    .bind(message.clone())
                    .bind(round)
            }
            E::ProviderRequestApproved { .. } => update!("status = 'approved'"),
            E::ProviderRequestRejected { reason, .. } => {
                update!("status = 'rejected', last_reason = $4").bind(reason.clone())
            }
            // A new question has no answer yet.
            E::InformationRequested { question, .. } => {
                update!("status = 'information_requested', last_question = $4, last_answer = NULL")
                    .bind(question.clone())
            }
            E::InformationProvided { answer, .. } => {
                update!("status = 'submitted', last_answer = $4").bind(answer.clone())
            }
            E::ProviderRequestWithdrawn { .. } => update!("status = 'withdrawn'"),
        };
        if query.execute(&mut *conn).await?.rows_affected() == 1 {
            return Ok(());
        }
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM provider_requests WHERE farm_id = $1")
                .bind(farm_id)
                .fetch_optional(&mut *conn)
                .await?;
        crate::unchanged(current, stored, "farm")
    }

    fn tables(&self) -> &'static [&'static str] {
        &["provider_requests"]
    }
}

/// One row of `provider_requests`: a farm's latest round.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ProviderRequestRow {
    /// The farm (the aggregate id).
    pub farm_id: i64,
    /// Subject of the provider who submitted the latest round.
    pub provider: String,
    /// The provider's company.
    pub company: String,
    /// Where to reach the provider.
    pub contact: String,
    /// The nodes offered, in the order given.
    pub node_ids: Vec<i64>,
    /// Where the farm is.
    pub country: String,
    /// The provider's note with the latest submission.
    pub message: Option<String>,
    /// Status name (see [`Status::as_str`]).
    pub status: String,
    /// 1 for the first submission, one more for each re-submission.
    pub round: i32,
    /// The latest rejection reason, from this round or an earlier one.
    pub last_reason: Option<String>,
    /// The latest question asked, from this round or an earlier one.
    pub last_question: Option<String>,
    /// The answer to the latest question, in this round; cleared by a new
    /// question or a new round.
    pub last_answer: Option<String>,
    /// When the latest round was submitted: the queue's order.
    pub submitted_at: DateTime<Utc>,
    /// When the request last changed.
    pub updated_at: DateTime<Utc>,
    /// Last aggregate sequence applied.
    pub version: i64,
}

impl ProviderRequestRow {
    /// The status, if it is one this build knows.
    pub fn status(&self) -> Option<Status> {
        Status::parse(&self.status)
    }
}

/// Filters and page of a list query.
#[derive(Debug, Clone, Default)]
pub struct ProviderListQuery {
    /// Only this provider's requests (`None`: everyone's, for operators).
    pub provider: Option<String>,
    /// Only in this status (the review queue: [`Status::Submitted`]).
    pub status: Option<Status>,
    /// Continue after this cursor.
    pub after: Option<Cursor>,
    /// Page size, at least 1.
    pub limit: i64,
}

/// A position in the oldest-first list: the last row's submission time and farm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    submitted_at: DateTime<Utc>,
    farm_id: i64,
}

impl Cursor {
    /// The cursor after a row.
    pub fn after(row: &ProviderRequestRow) -> Self {
        Self {
            submitted_at: row.submitted_at,
            farm_id: row.farm_id,
        }
    }

    /// Opaque text form for clients.
    pub fn encode(&self) -> String {
        let raw = format!("{}|{}", self.submitted_at.timestamp_micros(), self.farm_id);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Parses a cursor a client sent back; `None` if it is not one of ours.
    pub fn decode(text: &str) -> Option<Self> {
        let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (micros, farm) = raw.split_once('|')?;
        Some(Self {
            submitted_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            farm_id: farm.parse().ok()?,
        })
    }
}

/// Lists requests oldest submission first (ties by farm id); returns the
/// page and the cursor of the next one.
pub async fn list(
    pool: &PgPool,
    query: &ProviderListQuery,
) -> Result<(Vec<ProviderRequestRow>, Option<Cursor>), sqlx::Error> {
    let limit = query.limit.max(1);
    let mut sql = sqlx::QueryBuilder::new("SELECT * FROM provider_requests WHERE true");
    if let Some(provider) = &query.provider {
        sql.push(" AND provider = ").push_bind(provider);
    }
    if let Some(status) = query.status {
        sql.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(after) = query.after {
        sql.push(" AND (submitted_at, farm_id) > (")
            .push_bind(after.submitted_at)
            .push(", ")
            .push_bind(after.farm_id)
            .push(")");
    }
    // One extra row tells whether there is a next page.
    sql.push(" ORDER BY submitted_at, farm_id LIMIT ")
        .push_bind(limit + 1);
    let mut rows: Vec<ProviderRequestRow> = sql.build_query_as().fetch_all(pool).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(Cursor::after)
    } else {
        None
    };
    Ok((rows, next))
}

/// One farm's request.
pub async fn get(pool: &PgPool, farm_id: u32) -> Result<Option<ProviderRequestRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM provider_requests WHERE farm_id = $1")
        .bind(i64::from(farm_id))
        .fetch_optional(pool)
        .await
}

/// The farm's owner: the provider of its approved request, if approved.
pub async fn farm_owner(pool: &PgPool, farm_id: u32) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT provider FROM provider_requests WHERE farm_id = $1 AND status = 'approved'",
    )
    .bind(i64::from(farm_id))
    .fetch_optional(pool)
    .await
}

/// The farms a provider owns (approved requests), by farm id.
pub async fn farms_of(pool: &PgPool, provider: &str) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT farm_id FROM provider_requests
          WHERE provider = $1 AND status = 'approved' ORDER BY farm_id",
    )
    .bind(provider)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            submitted_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid"),
            farm_id: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not-a-cursor"), None);
        assert_eq!(Cursor::decode(""), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("1|x")), None);
    }
}
