//! An HTTP client for the grid proxy's `/nodes` and `/farms` that reads
//! every page.
//!
//! The proxy pages with `page` (from 1) and `size` (default 50, no upper
//! bound enforced); with `ret_count=true` it also answers the total in a
//! `count` header (plus `size` and `pages`). The client asks for a stable
//! order (`sort_by` the id, ascending) so pages do not shuffle between
//! requests, stops at the first short page (or once `count` items were
//! paged), and drops an item already seen if the catalog moved under it.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use super::types::{GridFarm, GridNode};

/// Items asked for per page.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// How long one request may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A guard against a server that never answers a short page.
const MAX_PAGES: u32 = 10_000;

/// How much of an error body to keep in the error.
const BODY_SNIPPET_CHARS: usize = 300;

/// Why a grid proxy read failed. Every variant names the URL.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    /// The base URL does not parse or cannot carry a path.
    #[error("invalid grid proxy URL {url:?}: {reason}")]
    InvalidUrl {
        /// As given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// No answer within the timeout.
    #[error("GET {url} timed out after {after:?}")]
    Timeout {
        /// The page requested.
        url: Url,
        /// The timeout in force.
        after: Duration,
    },
    /// Connection refused, reset, DNS failure, or the body broke off.
    #[error("GET {url} failed: {source}")]
    Request {
        /// The page requested.
        url: Url,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The proxy answered with a non-success status.
    #[error("GET {url} answered {status}: {body}")]
    Status {
        /// The page requested.
        url: Url,
        /// The status answered.
        status: StatusCode,
        /// The start of the body, for the log.
        body: String,
    },
    /// The body is not a JSON array of the expected items.
    #[error("GET {url}: unexpected JSON: {source}")]
    Decode {
        /// The page requested.
        url: Url,
        /// Where and why decoding failed.
        #[source]
        source: serde_json::Error,
    },
    /// The proxy answered more items than the page size: it ignores `size`,
    /// so paging would never end.
    #[error("GET {url} answered {got} items for a page of {size}")]
    PageTooLarge {
        /// The page requested.
        url: Url,
        /// Items answered.
        got: usize,
        /// Items asked for.
        size: u32,
    },
    /// Every page was full up to the guard.
    #[error("GET {url}: still full pages after {pages} pages")]
    TooManyPages {
        /// The last page requested.
        url: Url,
        /// Pages read.
        pages: u32,
    },
}

/// Result of a grid proxy read.
pub type Result<T, E = GridError> = std::result::Result<T, E>;

/// Reads the grid proxy's node and farm catalog.
#[derive(Debug, Clone)]
pub struct GridClient {
    http: reqwest::Client,
    base: Url,
    page_size: u32,
    timeout: Duration,
}

impl GridClient {
    /// A client for the proxy at `base_url` (e.g. `https://gridproxy.grid.tf`;
    /// a path prefix is kept).
    pub fn new(base_url: &str) -> Result<Self> {
        let base = Url::parse(base_url).map_err(|e| GridError::InvalidUrl {
            url: base_url.to_owned(),
            reason: e.to_string(),
        })?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(GridError::InvalidUrl {
                url: base_url.to_owned(),
                reason: "expected an http or https URL".to_owned(),
            });
        }
        let mut client = GridClient {
            http: reqwest::Client::new(),
            base,
            page_size: DEFAULT_PAGE_SIZE,
            timeout: DEFAULT_TIMEOUT,
        };
        client.http = client.build_http()?;
        Ok(client)
    }

    /// Asks for `size` items a page (at least 1).
    pub fn with_page_size(mut self, size: u32) -> Self {
        self.page_size = size.max(1);
        self
    }

    /// Gives each request at most `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self> {
        self.timeout = timeout;
        self.http = self.build_http()?;
        Ok(self)
    }

    /// The proxy's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Every node on the grid, in node id order.
    pub async fn nodes(&self) -> Result<Vec<GridNode>> {
        self.fetch_all("nodes", "node_id", |n: &GridNode| n.node_id)
            .await
    }

    /// Every farm on the grid, in farm id order.
    pub async fn farms(&self) -> Result<Vec<GridFarm>> {
        self.fetch_all("farms", "farm_id", |f: &GridFarm| f.farm_id)
            .await
    }

    fn build_http(&self) -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("marketplace-workers/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(GridError::Client)
    }

    fn page_url(&self, path: &str, sort_by: &str, page: u32) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            // `new` refused URLs that cannot be a base, so this always runs.
            segments.pop_if_empty().push(path);
        }
        url.query_pairs_mut()
            .append_pair("page", &page.to_string())
            .append_pair("size", &self.page_size.to_string())
            .append_pair("ret_count", "true")
            .append_pair("sort_by", sort_by)
            .append_pair("sort_order", "asc");
        url
    }

    async fn fetch_all<T, K>(&self, path: &str, sort_by: &str, key: K) -> Result<Vec<T>>
    where
        T: DeserializeOwned,
        K: Fn(&T) -> u32,
    {
        let size = self.page_size;
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        for page in 1..=MAX_PAGES {
            let url = self.page_url(path, sort_by, page);
            let (batch, count) = self.fetch_page::<T>(&url).await?;
            let got = batch.len();
            if got > size as usize {
                return Err(GridError::PageTooLarge { url, got, size });
            }
            for item in batch {
                if seen.insert(key(&item)) {
                    items.push(item);
                }
            }
            let paged_everything =
                count.is_some_and(|count| u64::from(page) * u64::from(size) >= count);
            if got < size as usize || paged_everything {
                tracing::debug!(%url, pages = page, items = items.len(), "grid proxy read");
                return Ok(items);
            }
        }
        Err(GridError::TooManyPages {
            url: self.page_url(path, sort_by, MAX_PAGES),
            pages: MAX_PAGES,
        })
    }

    /// One page and, when the proxy sent it, the `count` header.
    async fn fetch_page<T: DeserializeOwned>(&self, url: &Url) -> Result<(Vec<T>, Option<u64>)> {
        let transport = |source: reqwest::Error| {
            if source.is_timeout() {
                GridError::Timeout {
                    url: url.clone(),
                    after: self.timeout,
                }
            } else {
                GridError::Request {
                    url: url.clone(),
                    source,
                }
            }
        };
        let response = self.http.get(url.clone()).send().await.map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(GridError::Status {
                url: url.clone(),
                status,
                body: body.chars().take(BODY_SNIPPET_CHARS).collect(),
            });
        }
        let count = response
            .headers()
            .get("count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = response.bytes().await.map_err(transport)?;
        // Go encodes an empty result slice as `null`.
        let batch: Option<Vec<T>> =
            serde_json::from_slice(&body).map_err(|source| GridError::Decode {
                url: url.clone(),
                source,
            })?;
        Ok((batch.unwrap_or_default(), count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_urls_keep_a_path_prefix_and_carry_the_paging_params() {
        let client = GridClient::new("http://proxy.example/api/v1/")
            .expect("valid")
            .with_page_size(150);
        let url = client.page_url("nodes", "node_id", 3);
        assert_eq!(
            url.as_str(),
            "http://proxy.example/api/v1/nodes?page=3&size=150&ret_count=true&sort_by=node_id&sort_order=asc"
        );
        let bare = GridClient::new("http://proxy.example").expect("valid");
        assert_eq!(bare.page_url("farms", "farm_id", 1).path(), "/farms");
    }

    #[test]
    fn rejects_urls_that_are_not_http() {
        for bad in ["not a url", "mailto:a@b.c", "ftp://proxy.example"] {
            let err = GridClient::new(bad).expect_err(bad);
            assert!(matches!(err, GridError::InvalidUrl { .. }), "{bad}: {err}");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
