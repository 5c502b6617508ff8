//! The grid proxy port: the ThreeFold Grid's node and farm catalog as the
//! grid proxy serves it, with its wire types ([`types`]) and the client that
//! reads every page ([`client`]). The grid proxy simulator that speaks the
//! same shapes lives in the dev crate.

pub mod client;
pub mod types;

pub use client::{GridClient, GridError};
pub use types::{GridFarm, GridNode};

/// The grid's catalog as the marketplace reads it: the port the grid sync
/// worker depends on. [`GridClient`] fills it from a grid proxy (the real
/// one, or the simulator, which speaks the same JSON).
#[async_trait::async_trait]
pub trait GridCatalog: Send + Sync + 'static {
    /// Where the catalog comes from, for logs and events' causation.
    fn source(&self) -> String;

    /// Every node on the grid, in node id order.
    async fn nodes(&self) -> client::Result<Vec<GridNode>>;

    /// Every farm on the grid, in farm id order.
    async fn farms(&self) -> client::Result<Vec<GridFarm>>;
}

#[async_trait::async_trait]
impl GridCatalog for GridClient {
    fn source(&self) -> String {
        format!("grid-proxy:{}", self.base_url())
    }

    async fn nodes(&self) -> client::Result<Vec<GridNode>> {
        GridClient::nodes(self).await
    }

    async fn farms(&self) -> client::Result<Vec<GridFarm>> {
        GridClient::farms(self).await
    }
}
