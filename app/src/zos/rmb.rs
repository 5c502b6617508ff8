//! [`HttpRmb`]: the [`Nodes`] port over RMB's envelope carried by plain
//! HTTP, as the dev-only ZOS SIMULATOR (`marketplace-dev`, `grid_sim`)
//! answers it. A real node is reached through an RMB relay (websocket,
//! signed envelopes); that adapter comes later.
//!
//! `POST {base}/rmb` with a [`wire::Envelope`] (`ver`, `ref`, `src` the
//! sender's twin, `dst` the node's twin, `cmd`, `exp`, `dat` the base64 of
//! the command's JSON, `now`). The answer is a [`wire::Reply`] with the
//! same `ref` and either `dat` (base64 JSON) or `err {code, message}`.
//!
//! Errors: an `err` reply, or a 400 (an envelope the peer cannot read), is
//! [`ZosError::Refused`]; no connection, a timeout, a 504 (the node does not
//! answer), a 404 (no peer with that twin), any other status or a body that
//! does not parse is [`ZosError::Unreachable`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use tracing::debug;

use super::{Deployment, NodeAddress, Nodes, Statistics, Workload, ZosError};
pub use crate::http_client::HttpSetupError;
use crate::http_client::{self, snippet};

/// How long one command may take (and the envelope's `exp`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// RMB's envelope and reply, as carried over HTTP.
pub mod wire {
    use serde::{Deserialize, Serialize};

    /// A request to a twin.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Envelope {
        /// Protocol version, 1.
        pub ver: u32,
        /// The request's id (a UUID), echoed by the reply.
        #[serde(rename = "ref")]
        pub reference: String,
        /// The sender's twin id, as text.
        pub src: String,
        /// The destination twins (one: the node's).
        pub dst: Vec<u32>,
        /// The command, e.g. `zos.deployment.deploy`.
        pub cmd: String,
        /// Seconds the request stays valid after `now`.
        pub exp: u64,
        /// Base64 of the command's JSON.
        pub dat: String,
        /// When it was sent, unix seconds.
        pub now: i64,
    }

    /// A reply: `dat` or `err`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Reply {
        /// Protocol version, 1.
        pub ver: u32,
        /// The request's `ref`.
        #[serde(rename = "ref")]
        pub reference: String,
        /// The answering twin, as text.
        pub src: String,
        /// The request's sender.
        pub dst: Vec<String>,
        /// Base64 of the answer's JSON (empty for none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub dat: Option<String>,
        /// Why the peer refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub err: Option<ReplyError>,
    }

    /// RMB's `err`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ReplyError {
        /// Error code.
        pub code: u32,
        /// The peer's message.
        pub message: String,
    }
}

use wire::{Envelope, Reply};

/// The [`Nodes`] port over RMB-over-HTTP (see the module documentation).
#[derive(Debug, Clone)]
pub struct HttpRmb {
    http: reqwest::Client,
    url: Url,
    timeout: Duration,
}

impl HttpRmb {
    /// The peer at `base_url` (commands go to `{base_url}/rmb`), each
    /// command limited to [`DEFAULT_TIMEOUT`].
    pub fn new(base_url: &str) -> Result<HttpRmb, HttpSetupError> {
        HttpRmb::with_timeout(base_url, DEFAULT_TIMEOUT)
    }

    /// The peer at `base_url`, each command limited to `timeout`.
    pub fn with_timeout(base_url: &str, timeout: Duration) -> Result<HttpRmb, HttpSetupError> {
        let base = http_client::parse_base(base_url)?;
        Ok(HttpRmb {
            http: http_client::client(timeout)?,
            url: http_client::join(&base, &["rmb"]),
            timeout,
        })
    }

    /// Where commands are posted.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Sends `cmd` with `dat` to the node as `source_twin`; the answer's
    /// JSON (`null` when the node answers nothing).
    async fn call<D: Serialize>(
        &self,
        node: NodeAddress,
        source_twin: u32,
        cmd: &str,
        dat: &D,
    ) -> Result<serde_json::Value, ZosError> {
        let payload = serde_json::to_vec(dat)
            .map_err(|e| ZosError::Unreachable(format!("encoding {cmd}: {e}")))?;
        let envelope = Envelope {
            ver: 1,
            reference: uuid::Uuid::new_v4().to_string(),
            src: source_twin.to_string(),
            dst: vec![node.twin_id],
            cmd: cmd.to_owned(),
            exp: self.timeout.as_secs().max(1),
            dat: BASE64.encode(payload),
            now: unix_now(),
        };
        debug!(
            node_id = node.node_id,
            twin_id = node.twin_id,
            cmd,
            reference = %envelope.reference,
            "RMB command to a ZOS SIMULATOR node"
        );
        let url = &self.url;
        let response = self
            .http
            .post(url.clone())
            .json(&envelope)
            .send()
            .await
            .map_err(|e| {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "failed"
                };
                ZosError::Unreachable(format!("{cmd} to node {}: {what}: {e}", node.node_id))
            })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| ZosError::Unreachable(format!("{cmd} to node {}: {e}", node.node_id)))?;
        match status {
            StatusCode::OK => {}
            StatusCode::BAD_REQUEST => {
                return Err(ZosError::Refused {
                    code: u32::from(status.as_u16()),
                    message: snippet(&body),
                })
            }
            other => {
                return Err(ZosError::Unreachable(format!(
                    "{cmd} to node {}: POST {url} answered {other}: {}",
                    node.node_id,
                    snippet(&body)
                )))
            }
        }
        let reply: Reply = serde_json::from_str(&body).map_err(|e| {
            ZosError::Unreachable(format!(
                "{cmd} to node {}: unexpected reply: {e}",
                node.node_id
            ))
        })?;
        if reply.reference != envelope.reference {
            return Err(ZosError::Unreachable(format!(
                "{cmd} to node {}: the reply answers another request",
                node.node_id
            )));
        }
        if let Some(err) = reply.err {
            return Err(ZosError::Refused {
                code: err.code,
                message: err.message,
            });
        }
        let dat = reply.dat.unwrap_or_default();
        if dat.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        let bytes = BASE64.decode(dat.as_bytes()).map_err(|e| {
            ZosError::Unreachable(format!(
                "{cmd} to node {}: reply not base64: {e}",
                node.node_id
            ))
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ZosError::Unreachable(format!(
                "{cmd} to node {}: reply not JSON: {e}",
                node.node_id
            ))
        })
    }

    async fn query<T: DeserializeOwned, D: Serialize>(
        &self,
        node: NodeAddress,
        source_twin: u32,
        cmd: &str,
        dat: &D,
    ) -> Result<T, ZosError> {
        let value = self.call(node, source_twin, cmd, dat).await?;
        serde_json::from_value(value).map_err(|e| {
            ZosError::Unreachable(format!(
                "{cmd} to node {}: unexpected answer: {e}",
                node.node_id
            ))
        })
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[async_trait]
impl Nodes for HttpRmb {
    async fn deploy(
        &self,
        node: NodeAddress,
        source_twin: u32,
        deployment: &Deployment,
    ) -> Result<(), ZosError> {
        self.call(node, source_twin, "zos.deployment.deploy", deployment)
            .await
            .map(drop)
    }

    async fn update(
        &self,
        node: NodeAddress,
        source_twin: u32,
        deployment: &Deployment,
    ) -> Result<(), ZosError> {
        self.call(node, source_twin, "zos.deployment.update", deployment)
            .await
            .map(drop)
    }

    async fn get(
        &self,
        node: NodeAddress,
        source_twin: u32,
        contract_id: u64,
    ) -> Result<Deployment, ZosError> {
        self.query(
            node,
            source_twin,
            "zos.deployment.get",
            &json!({ "contract_id": contract_id }),
        )
        .await
    }

    async fn changes(
        &self,
        node: NodeAddress,
        source_twin: u32,
        contract_id: u64,
    ) -> Result<Vec<Workload>, ZosError> {
        self.query(
            node,
            source_twin,
            "zos.deployment.changes",
            &json!({ "contract_id": contract_id }),
        )
        .await
    }

    async fn statistics(
        &self,
        node: NodeAddress,
        source_twin: u32,
    ) -> Result<Statistics, ZosError> {
        self.query(node, source_twin, "zos.statistics.get", &json!({}))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::wire::*;

    #[test]
    fn envelopes_use_rmb_field_names() {
        let envelope = Envelope {
            ver: 1,
            reference: "r".into(),
            src: "10000".into(),
            dst: vec![1001],
            cmd: "zos.statistics.get".into(),
            exp: 30,
            dat: String::new(),
            now: 1,
        };
        let text = serde_json::to_value(&envelope).expect("json");
        assert_eq!(text["ref"], "r");
        assert_eq!(text["dst"][0], 1001);
        let reply: Reply = serde_json::from_str(
            r#"{"ver":1,"ref":"r","src":"1001","dst":["10000"],"err":{"code":409,"message":"exists"}}"#,
        )
        .expect("reply");
        assert_eq!(reply.err.map(|e| e.message), Some("exists".to_owned()));
        assert_eq!(reply.dat, None);
    }
}
