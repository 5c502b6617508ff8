//! ZOS's deployment JSON (zosbase `pkg/gridtypes`) and its challenge hash.
//!
//! The challenge is what ZOS writes, in order, before hashing with MD5:
//! the deployment's `version`, `twin_id`, `metadata`, `description`,
//! `expiration`, its signature requirement (each request's `twin_id`,
//! `weight`, `required`, then `weight_required` and `signature_style`),
//! then each workload's `version`, `name`, `type`, `metadata`,
//! `description` and data. `contract_id`, signatures and results are not
//! in it, so the hash is known before the contract exists. ZOS writes each
//! workload type's data field by field; here a workload's data is written
//! as its JSON with keys sorted, which is as deterministic and covers
//! every field. The node contract's `deployment_hash` is the hash in hex.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

/// A deployment: the workloads one node contract pays for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Bumped on every update; each workload carries the version it last
    /// changed in.
    pub version: u32,
    /// The owning twin (the contract's).
    pub twin_id: u32,
    /// Set once the node contract exists.
    pub contract_id: u64,
    /// Free text; ours is JSON naming the marketplace deployment.
    pub metadata: String,
    /// Free text.
    pub description: String,
    /// Unix seconds; 0 for none.
    pub expiration: i64,
    /// Who must sign.
    pub signature_requirement: SignatureRequirement,
    /// The workloads.
    pub workloads: Vec<Workload>,
}

/// `SignatureRequirement`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SignatureRequirement {
    /// The twins asked to sign.
    pub requests: Vec<SignatureRequest>,
    /// The weight of signatures needed.
    pub weight_required: u32,
    /// The signatures given.
    pub signatures: Vec<Signature>,
    /// Empty, or `"sr25519"`-style hints.
    pub signature_style: String,
}

/// One twin asked to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRequest {
    /// The twin.
    pub twin_id: u32,
    /// Whether its signature is required.
    pub required: bool,
    /// Its weight.
    pub weight: u32,
}

/// One signature of the challenge hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signing twin.
    pub twin_id: u32,
    /// Hex of the signature.
    pub signature: String,
    /// `sr25519` or `ed25519`.
    pub signature_type: String,
}

/// A workload: `zmachine`, `zmount`, `network-light`, `ip`, `qsfs`, …
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// The deployment version it last changed in.
    pub version: u32,
    /// Unique within the deployment.
    pub name: String,
    /// The workload type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The type's fields.
    pub data: serde_json::Value,
    /// Free text.
    pub metadata: String,
    /// Free text.
    pub description: String,
    /// What the node made of it.
    pub result: WorkloadResult,
}

/// `Result`: what the node reports of a workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadResult {
    /// Unix seconds of this state.
    pub created: i64,
    /// The state.
    pub state: ResultState,
    /// Why, for `error`.
    pub message: String,
    /// Type-specific output (a zmachine's `ip`, `console_url`, …).
    pub data: serde_json::Value,
}

impl Default for WorkloadResult {
    fn default() -> Self {
        WorkloadResult {
            created: 0,
            state: ResultState::Init,
            message: String::new(),
            data: serde_json::Value::Null,
        }
    }
}

/// A workload's state on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultState {
    /// Accepted, not yet up.
    Init,
    /// Up.
    Ok,
    /// Failed; see the message.
    Error,
    /// Removed.
    Deleted,
    /// Paused (its contract is in its grace period).
    Paused,
    /// An update left it as it was (an update it refused).
    Unchanged,
}

impl Deployment {
    /// The challenge ZOS hashes (see the module's documentation).
    pub fn challenge(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = write!(
            out,
            "{}{}{}{}{}",
            self.version, self.twin_id, self.metadata, self.description, self.expiration
        );
        let req = &self.signature_requirement;
        for r in &req.requests {
            let _ = write!(out, "{}{}{}", r.twin_id, r.weight, r.required);
        }
        let _ = write!(out, "{}{}", req.weight_required, req.signature_style);
        for w in &self.workloads {
            let _ = write!(
                out,
                "{}{}{}{}{}{}",
                w.version,
                w.name,
                w.kind,
                w.metadata,
                w.description,
                canonical_json(&w.data)
            );
        }
        out
    }

    /// MD5 of the challenge.
    pub fn challenge_hash(&self) -> [u8; 16] {
        Md5::digest(self.challenge().as_bytes()).into()
    }

    /// The node contract's `deployment_hash`: the challenge hash in hex.
    pub fn deployment_hash(&self) -> String {
        hex::encode(self.challenge_hash())
    }

    /// The workload named `name`.
    pub fn workload(&self, name: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.name == name)
    }
}

/// JSON with object keys sorted, at every depth, and no whitespace: the
/// same text for the same value whatever order its maps were built in. The
/// chain adapter signs calls in this form too.
pub(crate) fn canonical_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Capacity as ZOS counts it: cores, bytes, and public IPv4s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capacity {
    /// Cores.
    pub cru: u64,
    /// SSD bytes.
    pub sru: u64,
    /// HDD bytes.
    pub hru: u64,
    /// Memory bytes.
    pub mru: u64,
    /// Public IPv4s.
    pub ipv4u: u64,
}

/// What users have on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UsersStatistics {
    /// Live deployments.
    pub deployments: u64,
    /// Live workloads.
    pub workloads: u64,
    /// Unix seconds of the newest deployment.
    pub last_deployment_timestamp: i64,
}

/// `zos.statistics.get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Statistics {
    /// The node's capacity.
    pub total: Capacity,
    /// Used by workloads and the system.
    pub used: Capacity,
    /// Reserved by ZOS itself.
    pub system: Capacity,
    /// Deployments and workloads.
    pub users: UsersStatistics,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Deployment {
        Deployment {
            version: 0,
            twin_id: 42,
            contract_id: 0,
            metadata: r#"{"deployment":"d1"}"#.into(),
            description: String::new(),
            expiration: 0,
            signature_requirement: SignatureRequirement {
                requests: vec![SignatureRequest {
                    twin_id: 42,
                    required: false,
                    weight: 1,
                }],
                weight_required: 1,
                signatures: Vec::new(),
                signature_style: String::new(),
            },
            workloads: vec![Workload {
                version: 0,
                name: "vm".into(),
                kind: "zmachine".into(),
                data: json!({"flist": "https://hub/x.flist", "compute_capacity": {"cpu": 1, "memory": 1}}),
                metadata: String::new(),
                description: String::new(),
                result: WorkloadResult::default(),
            }],
        }
    }

    #[test]
    fn the_hash_ignores_contract_signatures_and_results() {
        let before = sample();
        let mut after = sample();
        after.contract_id = 99;
        after.signature_requirement.signatures.push(Signature {
            twin_id: 42,
            signature: "00".into(),
            signature_type: "sr25519".into(),
        });
        after.workloads[0].result.state = ResultState::Ok;
        assert_eq!(before.deployment_hash(), after.deployment_hash());
        assert_eq!(before.deployment_hash().len(), 32);
    }

    #[test]
    fn the_hash_covers_the_version_and_every_data_field() {
        let base = sample().deployment_hash();
        let mut bumped = sample();
        bumped.version = 1;
        assert_ne!(base, bumped.deployment_hash());
        let mut bigger = sample();
        bigger.workloads[0].data["compute_capacity"]["cpu"] = json!(2);
        assert_ne!(base, bigger.deployment_hash());
    }

    #[test]
    fn json_key_order_does_not_change_the_hash() {
        let mut reordered = sample();
        reordered.workloads[0].data =
            json!({"compute_capacity": {"memory": 1, "cpu": 1}, "flist": "https://hub/x.flist"});
        assert_eq!(sample().deployment_hash(), reordered.deployment_hash());
    }

    #[test]
    fn wire_names_are_zos_names() {
        let text = serde_json::to_value(sample()).expect("json");
        assert_eq!(text["workloads"][0]["type"], "zmachine");
        assert_eq!(text["workloads"][0]["result"]["state"], "init");
        assert!(text["signature_requirement"]["weight_required"].is_number());
    }
}
