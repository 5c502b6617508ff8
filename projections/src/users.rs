//! The users view: one row per token subject, the profile and settings as
//! the user's events left them, for `GET /v1/me`, the operators' user list
//! and the notification process manager (the recipient's address, time
//! zone and channel preferences).
//!
//! A batch is applied set-based: the rows it touches are read in one
//! statement, its events folded into them in order (each row's `version`
//! is the last sequence applied: a redelivered event is skipped, a gap is
//! poison), and the rows written back in one upsert. `apply` is the same
//! path for a batch of one, so live processing, a rebuild and a retried
//! dead letter build the same rows.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use marketplace_domain::user::{UserEvent, EVENT_VERSION};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::{ApplyError, Projection, StoredEvent};

/// Builds `users`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserProjection;

/// The projection's name, under which its checkpoint is kept.
pub const NAME: &str = "users";

/// The aggregate type it reads.
pub const AGGREGATE_TYPE: &str = "user";

/// Reads a stored user event, upcasting older payload versions.
pub fn upcast(event: &StoredEvent) -> Result<UserEvent, ApplyError> {
    crate::decode_event(event, EVENT_VERSION)
}

/// One row of `users`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UserRow {
    /// The token subject.
    pub user_id: String,
    /// The token's email claim.
    pub email: Option<String>,
    /// The token's name claim.
    pub name: Option<String>,
    /// The name shown for the user.
    pub display_name: Option<String>,
    /// The user's company.
    pub company: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// Where the user wants mail.
    pub contact_email: Option<String>,
    /// Whether a code sent there came back.
    pub contact_email_verified: bool,
    /// IANA zone name.
    pub time_zone: String,
    /// `{"<kind>": {"feed": bool, "email": bool, "webhook": bool}}`, as set.
    pub notification_prefs: Value,
    /// Placement criteria for deployments that name none.
    pub default_placement: Option<Value>,
    /// Last aggregate sequence applied.
    pub version: i64,
    /// When the user was opened.
    pub created_at: DateTime<Utc>,
    /// When the user last changed.
    pub updated_at: DateTime<Utc>,
}

impl UserRow {
    /// Where a notification to this user goes: the contact email once
    /// verified, else the token's email.
    pub fn recipient(&self) -> Option<&str> {
        match &self.contact_email {
            Some(c) if self.contact_email_verified => Some(c),
            _ => self.email.as_deref(),
        }
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<Value, ApplyError> {
    serde_json::to_value(value).map_err(|e| ApplyError::Poison(e.to_string()))
}

/// The row after one event, from the row before it (`None`: no row yet).
fn fold(
    row: Option<UserRow>,
    stored: &StoredEvent,
    event: &UserEvent,
) -> Result<UserRow, ApplyError> {
    use UserEvent as E;
    let seq = stored.sequence;
    let at = event.at();
    if let E::UserRegistered {
        user_id,
        email,
        name,
        ..
    } = event
    {
        if row.is_some() || seq != 1 {
            return Err(ApplyError::Poison(format!(
                "UserRegistered at sequence {seq} for a user the view already has"
            )));
        }
        if *user_id != stored.aggregate_id {
            return Err(ApplyError::Poison(format!(
                "a registration of {user_id:?} in the stream of {:?}",
                stored.aggregate_id
            )));
        }
        return Ok(UserRow {
            user_id: user_id.clone(),
            email: email.clone(),
            name: name.clone(),
            display_name: None,
            company: None,
            country: None,
            contact_email: None,
            contact_email_verified: false,
            time_zone: "UTC".into(),
            notification_prefs: Value::Object(Default::default()),
            default_placement: None,
            version: seq,
            created_at: at,
            updated_at: at,
        });
    }
    let Some(mut row) = row else {
        return Err(ApplyError::Poison(format!(
            "{} at sequence {seq} for a user the view does not have",
            stored.event_type
        )));
    };
    match event {
        E::UserRegistered { .. } => {}
        E::TokenClaimsChanged { email, name, .. } => {
            row.email = email.clone();
            row.name = name.clone();
        }
        E::ProfileUpdated {
            display_name,
            company,
            country,
            ..
        } => {
            row.display_name = display_name.as_ref().map(|t| t.as_str().to_string());
            row.company = company.as_ref().map(|t| t.as_str().to_string());
            row.country = country.as_ref().map(|c| c.as_str().to_string());
        }
        E::ContactEmailChanged { contact_email, .. } => {
            row.contact_email = contact_email.as_ref().map(|e| e.as_str().to_string());
            row.contact_email_verified = false;
        }
        E::SettingsUpdated {
            notification_prefs,
            time_zone,
            default_placement,
            ..
        } => {
            row.notification_prefs = json(notification_prefs)?;
            row.time_zone = time_zone.as_str().to_string();
            row.default_placement = default_placement.as_ref().map(json).transpose()?;
        }
        // A code pending is the aggregate's business, not the view's.
        E::ContactEmailVerificationStarted { .. } | E::ContactEmailVerificationFailed { .. } => {}
        E::ContactEmailVerified { email, .. } => {
            row.contact_email = Some(email.as_str().to_string());
            row.contact_email_verified = true;
        }
    }
    row.version = seq;
    row.updated_at = at;
    Ok(row)
}

#[async_trait::async_trait]
impl Projection for UserProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[AGGREGATE_TYPE]
    }

    async fn apply(&self, conn: &mut PgConnection, stored: &StoredEvent) -> Result<(), ApplyError> {
        self.apply_batch(conn, &[stored]).await
    }

    /// One read of the rows the batch touches, the events folded in
    /// memory in order, one upsert of the rows that changed.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<(), ApplyError> {
        let mut ids: Vec<String> = events.iter().map(|e| e.aggregate_id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let current: Vec<UserRow> =
            sqlx::query_as("SELECT * FROM users WHERE user_id = ANY($1) FOR UPDATE")
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await?;
        let mut rows: HashMap<String, UserRow> = current
            .into_iter()
            .map(|r| (r.user_id.clone(), r))
            .collect();
        let mut changed: Vec<String> = Vec::new();
        for stored in events {
            let event = upcast(stored)?;
            let row = rows.remove(&stored.aggregate_id);
            let version = row.as_ref().map_or(0, |r| r.version);
            if version >= stored.sequence {
                // Applied already (a redelivery).
                if let Some(row) = row {
                    rows.insert(stored.aggregate_id.clone(), row);
                }
                continue;
            }
            if stored.sequence != version + 1 && row.is_some() {
                return Err(ApplyError::Poison(format!(
                    "sequence gap: view at {version}, event at {}",
                    stored.sequence
                )));
            }
            let row = fold(row, stored, &event)?;
            if !changed.contains(&row.user_id) {
                changed.push(row.user_id.clone());
            }
            rows.insert(stored.aggregate_id.clone(), row);
        }
        if changed.is_empty() {
            return Ok(());
        }
        let rows: Vec<&UserRow> = changed.iter().filter_map(|id| rows.get(id)).collect();
        macro_rules! column {
            ($field:ident) => {
                rows.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
            };
        }
        sqlx::query(
            "INSERT INTO users (user_id, email, name, display_name, company, country,
                    contact_email, contact_email_verified, time_zone, notification_prefs,
                    default_placement, version, created_at, updated_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                    $6::text[], $7::text[], $8::boolean[], $9::text[], $10::jsonb[], $11::jsonb[],
                    $12::bigint[], $13::timestamptz[], $14::timestamptz[])
             ON CONFLICT (user_id) DO UPDATE SET
                    email = EXCLUDED.email, name = EXCLUDED.name,
                    display_name = EXCLUDED.display_name, company = EXCLUDED.company,
                    country = EXCLUDED.country, contact_email = EXCLUDED.contact_email,
                    contact_email_verified = EXCLUDED.contact_email_verified,
                    time_zone = EXCLUDED.time_zone,
                    notification_prefs = EXCLUDED.notification_prefs,
                    default_placement = EXCLUDED.default_placement,
                    version = EXCLUDED.version, updated_at = EXCLUDED.updated_at",
        )
        .bind(column!(user_id))
        .bind(column!(email))
        .bind(column!(name))
        .bind(column!(display_name))
        .bind(column!(company))
        .bind(column!(country))
        .bind(column!(contact_email))
        .bind(column!(contact_email_verified))
        .bind(column!(time_zone))
        .bind(column!(notification_prefs))
        .bind(column!(default_placement))
        .bind(column!(version))
        .bind(column!(created_at))
        .bind(column!(updated_at))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    fn tables(&self) -> &'static [&'static str] {
        &["users"]
    }
}

/// One user's row.
pub async fn find(pool: &PgPool, user_id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM users WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await
}

/// A position in the oldest-first list: the last row's creation time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    created_at: DateTime<Utc>,
    user_id: String,
}

impl Cursor {
    /// The cursor after a row.
    pub fn after(row: &UserRow) -> Self {
        Self {
            created_at: row.created_at,
            user_id: row.user_id.clone(),
        }
    }

    /// Opaque text form for clients.
    pub fn encode(&self) -> String {
        let raw = format!("{}|{}", self.created_at.timestamp_micros(), self.user_id);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Parses a cursor a client sent back; `None` if it is not one of ours.
    pub fn decode(text: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
        let (micros, user_id) = raw.split_once('|')?;
        Some(Self {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            user_id: user_id.to_string(),
        })
    }
}

/// Filters and page of the operators' list.
#[derive(Debug, Clone, Default)]
pub struct UserListQuery {
    /// Only users whose token email or contact email is this (any case).
    pub email: Option<String>,
    /// Continue after this cursor.
    pub after: Option<Cursor>,
    /// Page size, at least 1.
    pub limit: i64,
}

/// Users oldest first (ties by id); the page and the next page's cursor.
pub async fn list(
    pool: &PgPool,
    query: &UserListQuery,
) -> Result<(Vec<UserRow>, Option<Cursor>), sqlx::Error> {
    let limit = query.limit.max(1);
    let mut sql = sqlx::QueryBuilder::new("SELECT * FROM users WHERE true");
    if let Some(email) = &query.email {
        let email = email.to_lowercase();
        sql.push(" AND (lower(email) = ")
            .push_bind(email.clone())
            .push(" OR lower(contact_email) = ")
            .push_bind(email)
            .push(")");
    }
    if let Some(after) = &query.after {
        sql.push(" AND (created_at, user_id) > (")
            .push_bind(after.created_at)
            .push(", ")
            .push_bind(after.user_id.clone())
            .push(")");
    }
    sql.push(" ORDER BY created_at, user_id LIMIT ")
        .push_bind(limit + 1);
    let mut rows: Vec<UserRow> = sql.build_query_as().fetch_all(pool).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(Cursor::after)
    } else {
        None
    };
    Ok((rows, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid"),
            user_id: "auth0|a|b".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not-a-cursor"), None);
        assert_eq!(Cursor::decode(""), None);
    }
}
