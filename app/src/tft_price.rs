//! The TFT price quotes and top-ups convert at: the newest average price
//! the chain stored (the `tft_price` view, fed by the chain follower), or
//! the configured price before the first observation.

use marketplace_domain::tft_price::musd_price;
use marketplace_domain::TftPrice;
use sqlx::PgPool;

/// The price in force, and whether it came from the chain.
pub async fn current(pool: &PgPool, configured: TftPrice) -> Result<(TftPrice, bool), sqlx::Error> {
    Ok(
        match marketplace_projections::tft_price::latest(pool)
            .await?
            .and_then(|(musd, _)| musd_price(musd))
        {
            Some(price) => (price, true),
            None => (configured, false),
        },
    )
}
