//! The TFT price in force for quotes and top-ups: the chain's newest
//! average price, or the configured one before the first observation.

use marketplace_domain::TftPrice;

use crate::error::ApiError;
use crate::AppState;

/// The price quotes convert at now.
pub async fn in_force(state: &AppState) -> Result<TftPrice, ApiError> {
    Ok(
        marketplace_app::tft_price::current(&state.pool, state.settings.tft_price)
            .await?
            .0,
    )
}
