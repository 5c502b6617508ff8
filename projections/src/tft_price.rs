//! The TFT price feed's view: every average price the chain stored, as the
//! chain follower observed it, keyed by the feed's sequence. The newest row
//! is the price quotes and top-ups convert at; before any row, the price
//! configured applies.

use chrono::{DateTime, Utc};
use marketplace_domain::tft_price::{TftPriceEvent, AGGREGATE_ID, EVENT_VERSION};
use sqlx::{PgConnection, PgPool};

use crate::{ApplyError, Projection, StoredEvent};

/// Builds `tft_price_observations`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TftPriceProjection;

/// The projection's name, under which its checkpoint is kept.
pub const NAME: &str = "tft_price";

/// The aggregate type it reads.
pub const AGGREGATE_TYPE: &str = "tft_price";

#[async_trait::async_trait]
impl Projection for TftPriceProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[AGGREGATE_TYPE]
    }

    /// One insert per observation keyed by the sequence: a duplicate
    /// inserts nothing.
    async fn apply(&self, conn: &mut PgConnection, stored: &StoredEvent) -> Result<(), ApplyError> {
        if stored.aggregate_id != AGGREGATE_ID {
            return Err(ApplyError::Poison(format!(
                "TFT price aggregate {:?}; there is only {AGGREGATE_ID:?}",
                stored.aggregate_id
            )));
        }
        let TftPriceEvent::AveragePriceObserved {
            price_musd,
            event,
            stored_at,
            ..
        } = crate::decode_event(stored, EVENT_VERSION)?;
        sqlx::query(
            "INSERT INTO tft_price_observations
                (sequence, price_musd, block_number, event_index, observed_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sequence) DO NOTHING",
        )
        .bind(stored.sequence)
        .bind(
            i32::try_from(price_musd)
                .map_err(|_| ApplyError::Poison("price out of range".into()))?,
        )
        .bind(i64::from(event.block_number))
        .bind(i64::from(event.event_index))
        .bind(stored_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    fn tables(&self) -> &'static [&'static str] {
        &["tft_price_observations"]
    }
}

/// The newest price the chain stored: mUSD per TFT and when, if any.
pub async fn latest(pool: &PgPool) -> Result<Option<(u32, DateTime<Utc>)>, sqlx::Error> {
    let row: Option<(i32, DateTime<Utc>)> = sqlx::query_as(
        "SELECT price_musd, observed_at FROM tft_price_observations
          ORDER BY sequence DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(p, at)| (u32::try_from(p).unwrap_or(0), at)))
}
