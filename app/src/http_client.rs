//! What the HTTP adapters of the chain and node ports share: checking a base
//! URL, building a client with timeouts, joining paths under a base that
//! may carry a prefix, and keeping an error body short.

use std::time::Duration;

use reqwest::Url;

/// How much of an error body an error keeps.
const BODY_SNIPPET_CHARS: usize = 300;

/// Why an HTTP adapter cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    /// The base URL does not parse or cannot carry a path.
    #[error("invalid base URL {url:?}: {reason}")]
    InvalidUrl {
        /// As given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// `base_url` parsed, if it is an http(s) URL that can carry a path.
pub(crate) fn parse_base(base_url: &str) -> Result<Url, HttpSetupError> {
    let base = Url::parse(base_url).map_err(|e| HttpSetupError::InvalidUrl {
        url: base_url.to_owned(),
        reason: e.to_string(),
    })?;
    if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
        return Err(HttpSetupError::InvalidUrl {
            url: base_url.to_owned(),
            reason: "expected an http or https URL".to_owned(),
        });
    }
    Ok(base)
}

/// A client whose every request (connection included) takes at most `timeout`.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, HttpSetupError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("marketplace/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(HttpSetupError::Client)
}

/// `base` with `segments` appended to its path (a prefix is kept).
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        // `parse_base` refused URLs that cannot be a base, so this always runs.
        path.pop_if_empty().extend(segments);
    }
    url
}

/// The start of a body, for an error message.
pub(crate) fn snippet(body: &str) -> String {
    body.chars().take(BODY_SNIPPET_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_keep_their_prefix_and_refuse_other_schemes() {
        let base = parse_base("http://127.0.0.1:8090/prefix/").expect("base");
        assert_eq!(
            join(&base, &["chain", "blocks", "latest"]).as_str(),
            "http://127.0.0.1:8090/prefix/chain/blocks/latest"
        );
        assert!(parse_base("ftp://example.org").is_err());
        assert!(parse_base("not a url").is_err());
        assert_eq!(snippet(&"x".repeat(1_000)).len(), BODY_SNIPPET_CHARS);
    }
}
