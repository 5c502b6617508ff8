//! [`HttpChain`]: the [`Chain`] port over the HTTP shape of the dev-only
//! TFChain SIMULATOR (`marketplace-dev`, `grid_sim`). It is not a TFChain
//! client: a real chain speaks SCALE over JSON-RPC and gets a `subxt`
//! adapter of its own. What this one speaks ([`wire`] holds the types, which
//! the simulator uses too):
//!
//! - `POST {base}/chain/extrinsic` with a [`wire::SignedExtrinsic`]: a
//!   [`wire::Call`] (`pallet`, `name`, `args`, the pallets' own names) and
//!   the signer's sr25519 signature of [`wire::Call::signing_payload`].
//!   200 answers the [`Receipt`]; 422 `{"module_error": {pallet, error}}` a
//!   dispatch error; 401 a signature that does not verify; 400 a call the
//!   simulator does not know.
//! - `GET {base}/chain/storage/{pallet}/{item}?<keys>` → `{"value": …}`,
//!   `null` when the storage map holds nothing under those keys.
//! - `GET {base}/chain/blocks/latest` → a [`Block`].
//! - `GET {base}/chain/events?after_block=&after_index=&limit=` (optional
//!   `pallet`, `name` and `from_block` filters) → `{"events": [...]}` in
//!   chain order; 410 `{"error", "first_kept_block"}` when events it asks
//!   for are older than the retention ([`ChainError::Pruned`]).
//!
//! Balances travel as decimal strings (JSON numbers lose precision past
//! 2^53 in many readers; TFT balances are `u128`).
//!
//! Errors: a 422 is [`ChainError::Module`]; anything else (no connection, a
//! timeout, another status, a body that does not parse) is
//! [`ChainError::Unavailable`], since the call may or may not have been
//! applied. Nothing secret is logged: signers show as their addresses.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::debug;

use super::{Block, Chain, ChainError, ChainEvent, Contract, EventId, Receipt, Signer};
pub use crate::http_client::HttpSetupError;
use crate::http_client::{self, snippet};

/// How long one request may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Events asked for per page when [`Chain::find_remark`] scans them.
const REMARK_SCAN_PAGE: u32 = 1_000;

/// The simulator's wire format, shared by the adapter and the simulator so
/// that "what is signed" is defined once.
pub mod wire {
    use serde::{Deserialize, Serialize};

    use crate::tfchain::{parse_signature, ss58_public_key, verify, ChainEvent, Signer, Ss58Error};
    use crate::zos::types::canonical_json;
    use marketplace_domain::wallet::KeyType;

    /// One call: `pallet.name(args)`, e.g. `smartContractModule.cancelContract
    /// {contract_id: 7}`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Call {
        /// The pallet, e.g. `smartContractModule`.
        pub pallet: String,
        /// The call, e.g. `createNodeContract`.
        pub name: String,
        /// Its arguments by the pallet's names.
        pub args: serde_json::Value,
    }

    impl Call {
        /// `pallet.name(args)`.
        pub fn new(pallet: &str, name: &str, args: serde_json::Value) -> Call {
            Call {
                pallet: pallet.to_owned(),
                name: name.to_owned(),
                args,
            }
        }

        /// What a signer signs: the call as JSON with the object keys sorted
        /// at every depth and no whitespace, e.g.
        /// `{"args":{"contract_id":7},"name":"cancelContract","pallet":"smartContractModule"}`.
        /// The same call gives the same text however its JSON was built.
        pub fn signing_payload(&self) -> String {
            canonical_json(&serde_json::json!({
                "pallet": self.pallet,
                "name": self.name,
                "args": self.args,
            }))
        }
    }

    /// A signed extrinsic, as posted to `/chain/extrinsic`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct SignedExtrinsic {
        /// The signing account's SS58 address.
        pub signer: String,
        /// What it calls.
        pub call: Call,
        /// `0x` and the hex of the sr25519 signature (`substrate` context)
        /// of [`Call::signing_payload`].
        pub signature: String,
    }

    /// Why an extrinsic's signature is not accepted.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum BadSignature {
        /// The signer is not an SS58 address.
        #[error("signer is not an SS58 account: {0}")]
        Address(#[from] Ss58Error),
        /// The signature is not 64 bytes of hex.
        #[error("signature is not 0x and 128 hex digits")]
        Malformed,
        /// It does not verify under the signer's key.
        #[error("signature does not verify under the signer's key")]
        Mismatch,
    }

    impl SignedExtrinsic {
        /// `call`, signed by `signer`.
        pub fn sign(signer: &Signer, call: Call) -> SignedExtrinsic {
            let signature = signer.sign(call.signing_payload().as_bytes());
            SignedExtrinsic {
                signer: signer.address().to_owned(),
                call,
                signature: format!("0x{}", hex::encode(signature)),
            }
        }

        /// Whether the signature is the signer's, over this call.
        pub fn verify(&self) -> Result<(), BadSignature> {
            let key = ss58_public_key(&self.signer)?;
            let signature = parse_signature(&self.signature).ok_or(BadSignature::Malformed)?;
            if verify(
                KeyType::Sr25519,
                &key,
                &self.call.signing_payload(),
                &signature,
            ) {
                Ok(())
            } else {
                Err(BadSignature::Mismatch)
            }
        }
    }

    /// The 422 body: the pallet's error by its name.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ModuleErrorBody {
        /// Which error.
        pub module_error: ModuleError,
    }

    /// A pallet's error.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ModuleError {
        /// The pallet, e.g. `balances`.
        pub pallet: String,
        /// The error, e.g. `InsufficientBalance`.
        pub error: String,
    }

    /// A storage read: `{"value": …}`, `null` for nothing stored.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct StorageValue<T> {
        /// What is stored.
        pub value: Option<T>,
    }

    /// A page of `/chain/events`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct EventsPage {
        /// In chain order.
        pub events: Vec<ChainEvent>,
    }

    /// The 410 body of `/chain/events`: the events asked for were dropped.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct EventsGone {
        /// Why.
        pub error: String,
        /// The oldest block whose events are still kept.
        pub first_kept_block: u32,
    }

    /// `system.Account`: `frame_system`'s `AccountInfo`, as far as kept.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct AccountInfo {
        /// Extrinsics the account has sent.
        pub nonce: u32,
        /// Its balances.
        pub data: AccountData,
    }

    /// `pallet_balances`' `AccountData`, base units.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct AccountData {
        /// Spendable.
        #[serde(with = "balance")]
        pub free: u128,
        /// Reserved: in the simulator, as on chain, what billing took and
        /// has not yet distributed as rewards.
        #[serde(with = "balance")]
        pub reserved: u128,
        /// Frozen (never, in the simulator).
        #[serde(with = "balance")]
        pub frozen: u128,
    }

    /// A `u128` balance as a decimal string; a JSON number is accepted too.
    pub mod balance {
        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes the decimal string.
        pub fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&value.to_string())
        }

        /// Reads a decimal string or a non-negative integer.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Either {
                Text(String),
                Number(u64),
            }
            match Either::deserialize(d)? {
                Either::Text(text) => text.trim().parse().map_err(serde::de::Error::custom),
                Either::Number(n) => Ok(u128::from(n)),
            }
        }
    }
}

use wire::{AccountInfo, Call, EventsPage, ModuleErrorBody, SignedExtrinsic, StorageValue};

/// The [`Chain`] port over the TFChain SIMULATOR's HTTP API (see the module
/// documentation).
#[derive(Debug, Clone)]
pub struct HttpChain {
    http: reqwest::Client,
    base: Url,
}

impl HttpChain {
    /// The simulator at `base_url` (e.g. `http://127.0.0.1:8090`; a path
    /// prefix is kept), each request limited to [`DEFAULT_TIMEOUT`].
    pub fn new(base_url: &str) -> Result<HttpChain, HttpSetupError> {
        HttpChain::with_timeout(base_url, DEFAULT_TIMEOUT)
    }

    /// The simulator at `base_url`, each request limited to `timeout`.
    pub fn with_timeout(base_url: &str, timeout: Duration) -> Result<HttpChain, HttpSetupError> {
        Ok(HttpChain {
            http: http_client::client(timeout)?,
            base: http_client::parse_base(base_url)?,
        })
    }

    /// The simulator's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T, ChainError> {
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| unavailable("GET", &url, e))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| unavailable("GET", &url, e))?;
        if status != StatusCode::OK {
            return Err(ChainError::Unavailable(format!(
                "GET {url} answered {status}: {}",
                snippet(&body)
            )));
        }
        serde_json::from_str(&body).map_err(|e| garbage("GET", &url, e))
    }

    async fn storage<T: DeserializeOwned>(
        &self,
        pallet: &str,
        item: &str,
        keys: &[(&str, String)],
    ) -> Result<Option<T>, ChainError> {
        let mut url = http_client::join(&self.base, &["chain", "storage", pallet, item]);
        url.query_pairs_mut().extend_pairs(keys);
        let read: StorageValue<T> = self.get(url).await?;
        Ok(read.value)
    }

    async fn submit(&self, signer: &Signer, call: Call) -> Result<Receipt, ChainError> {
        let url = http_client::join(&self.base, &["chain", "extrinsic"]);
        debug!(
            pallet = %call.pallet,
            call = %call.name,
            signer = signer.address(),
            "submitting an extrinsic to the TFChain SIMULATOR"
        );
        let extrinsic = SignedExtrinsic::sign(signer, call);
        let response = self
            .http
            .post(url.clone())
            .json(&extrinsic)
            .send()
            .await
            .map_err(|e| unavailable("POST", &url, e))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| unavailable("POST", &url, e))?;
        match status {
            StatusCode::OK => serde_json::from_str(&body).map_err(|e| garbage("POST", &url, e)),
            StatusCode::UNPROCESSABLE_ENTITY => {
                let refused: ModuleErrorBody =
                    serde_json::from_str(&body).map_err(|e| garbage("POST", &url, e))?;
                Err(ChainError::Module {
                    pallet: refused.module_error.pallet,
                    error: refused.module_error.error,
                })
            }
            other => Err(ChainError::Unavailable(format!(
                "POST {url} answered {other}: {}",
                snippet(&body)
            ))),
        }
    }

    /// One page of events after `after`, optionally only `pallet.name` ones
    /// from `from_block` on.
    async fn events_page(
        &self,
        after: Option<EventId>,
        limit: u32,
        only: Option<(&str, &str)>,
        from_block: Option<u32>,
    ) -> Result<Vec<ChainEvent>, ChainError> {
        let mut url = http_client::join(&self.base, &["chain", "events"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(after) = after {
                query
                    .append_pair("after_block", &after.block_number.to_string())
                    .append_pair("after_index", &after.event_index.to_string());
            }
            query.append_pair("limit", &limit.to_string());
            if let Some((pallet, name)) = only {
                query
                    .append_pair("pallet", pallet)
                    .append_pair("name", name);
            }
            if let Some(block) = from_block {
                query.append_pair("from_block", &block.to_string());
            }
        }
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| unavailable("GET", &url, e))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| unavailable("GET", &url, e))?;
        match status {
            StatusCode::OK => {
                let page: EventsPage =
                    serde_json::from_str(&body).map_err(|e| garbage("GET", &url, e))?;
                Ok(page.events)
            }
            StatusCode::GONE => {
                let gone: wire::EventsGone =
                    serde_json::from_str(&body).map_err(|e| garbage("GET", &url, e))?;
                Err(ChainError::Pruned {
                    first_kept_block: gone.first_kept_block,
                })
            }
            other => Err(ChainError::Unavailable(format!(
                "GET {url} answered {other}: {}",
                snippet(&body)
            ))),
        }
    }
}

fn unavailable(method: &str, url: &Url, e: reqwest::Error) -> ChainError {
    let what = if e.is_timeout() {
        "timed out"
    } else {
        "failed"
    };
    ChainError::Unavailable(format!("{method} {url} {what}: {e}"))
}

fn garbage(method: &str, url: &Url, e: serde_json::Error) -> ChainError {
    ChainError::Unavailable(format!("{method} {url}: unexpected JSON: {e}"))
}

#[async_trait]
impl Chain for HttpChain {
    async fn latest_block(&self) -> Result<Block, ChainError> {
        self.get(http_client::join(
            &self.base,
            &["chain", "blocks", "latest"],
        ))
        .await
    }

    async fn free_balance(&self, account: &str) -> Result<u128, ChainError> {
        let info: Option<AccountInfo> = self
            .storage("system", "Account", &[("account", account.to_owned())])
            .await?;
        Ok(info.unwrap_or_default().data.free)
    }

    async fn twin_id_by_account(&self, account: &str) -> Result<Option<u32>, ChainError> {
        self.storage(
            "tfgridModule",
            "TwinIdByAccountID",
            &[("account", account.to_owned())],
        )
        .await
    }

    async fn create_twin(
        &self,
        signer: &Signer,
        relay: Option<&str>,
    ) -> Result<Receipt, ChainError> {
        let call = Call::new(
            "tfgridModule",
            "createTwin",
            json!({ "relay": relay, "pk": null }),
        );
        self.submit(signer, call).await
    }

    async fn farm_id_by_name(&self, name: &str) -> Result<Option<u32>, ChainError> {
        self.storage("tfgridModule", "FarmIdByName", &[("name", name.to_owned())])
            .await
    }

    async fn create_farm(&self, signer: &Signer, name: &str) -> Result<u32, ChainError> {
        let call = Call::new(
            "tfgridModule",
            "createFarm",
            json!({ "name": name, "public_ips": [] }),
        );
        let receipt = self.submit(signer, call).await?;
        receipt
            .event("tfgridModule", "FarmStored")
            .and_then(|e| e.data["id"].as_u64())
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| {
                ChainError::Unavailable(format!(
                    "tfgridModule.createFarm({name:?}) was included without a FarmStored \
                     carrying the farm's id"
                ))
            })
    }

    async fn transfer_with_remark(
        &self,
        signer: &Signer,
        dest: &str,
        value: u128,
        remark: &[u8],
    ) -> Result<Receipt, ChainError> {
        let transfer = Call::new(
            "balances",
            "transferKeepAlive",
            json!({ "dest": dest, "value": value.to_string() }),
        );
        let remark = Call::new(
            "system",
            "remarkWithEvent",
            json!({ "remark": format!("0x{}", hex::encode(remark)) }),
        );
        let batch = Call::new(
            "utility",
            "batchAll",
            json!({ "calls": [transfer, remark] }),
        );
        self.submit(signer, batch).await
    }

    async fn find_remark(
        &self,
        sender: &str,
        hash: [u8; 32],
        from_block: u32,
    ) -> Result<Option<EventId>, ChainError> {
        let wanted = format!("0x{}", hex::encode(hash));
        let mut after = None;
        loop {
            let page = self
                .events_page(
                    after,
                    REMARK_SCAN_PAGE,
                    Some(("system", "Remarked")),
                    Some(from_block),
                )
                .await?;
            let found = page.iter().find(|e| {
                e.is("system", "Remarked")
                    && e.id.block_number >= from_block
                    && e.data["sender"].as_str() == Some(sender)
                    && e.data["hash"]
                        .as_str()
                        .is_some_and(|h| h.eq_ignore_ascii_case(&wanted))
            });
            if let Some(event) = found {
                return Ok(Some(event.id));
            }
            let last = page.last().map(|e| e.id);
            if page.len() < REMARK_SCAN_PAGE as usize {
                return Ok(None);
            }
            if last <= after {
                return Err(ChainError::Unavailable(
                    "the events page did not move forward".to_owned(),
                ));
            }
            after = last;
        }
    }

    async fn contract_id_by_node_and_hash(
        &self,
        node_id: u32,
        deployment_hash: &str,
    ) -> Result<Option<u64>, ChainError> {
        self.storage(
            "smartContractModule",
            "ContractIDByNodeIDAndHash",
            &[
                ("node_id", node_id.to_string()),
                ("hash", deployment_hash.to_owned()),
            ],
        )
        .await
    }

    async fn active_rent_contract_for_node(&self, node_id: u32) -> Result<Option<u64>, ChainError> {
        self.storage(
            "smartContractModule",
            "ActiveRentContractForNode",
            &[("node_id", node_id.to_string())],
        )
        .await
    }

    async fn contract(&self, contract_id: u64) -> Result<Option<Contract>, ChainError> {
        self.storage(
            "smartContractModule",
            "Contracts",
            &[("contract_id", contract_id.to_string())],
        )
        .await
    }

    async fn create_node_contract(
        &self,
        signer: &Signer,
        node_id: u32,
        deployment_hash: &str,
        deployment_data: &str,
        public_ips: u32,
        solution_provider_id: Option<u64>,
    ) -> Result<Receipt, ChainError> {
        let call = Call::new(
            "smartContractModule",
            "createNodeContract",
            json!({
                "node_id": node_id,
                "deployment_hash": deployment_hash,
                "deployment_data": deployment_data,
                "public_ips": public_ips,
                "solution_provider_id": solution_provider_id,
            }),
        );
        self.submit(signer, call).await
    }

    async fn update_node_contract(
        &self,
        signer: &Signer,
        contract_id: u64,
        deployment_hash: &str,
        deployment_data: &str,
    ) -> Result<Receipt, ChainError> {
        let call = Call::new(
            "smartContractModule",
            "updateNodeContract",
            json!({
                "contract_id": contract_id,
                "deployment_hash": deployment_hash,
                "deployment_data": deployment_data,
            }),
        );
        self.submit(signer, call).await
    }

    async fn create_rent_contract(
        &self,
        signer: &Signer,
        node_id: u32,
        solution_provider_id: Option<u64>,
    ) -> Result<Receipt, ChainError> {
        let call = Call::new(
            "smartContractModule",
            "createRentContract",
            json!({ "node_id": node_id, "solution_provider_id": solution_provider_id }),
        );
        self.submit(signer, call).await
    }

    async fn cancel_contract(
        &self,
        signer: &Signer,
        contract_id: u64,
    ) -> Result<Receipt, ChainError> {
        let call = Call::new(
            "smartContractModule",
            "cancelContract",
            json!({ "contract_id": contract_id }),
        );
        self.submit(signer, call).await
    }

    async fn events(
        &self,
        after: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<ChainEvent>, ChainError> {
        self.events_page(after, limit, None, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::wire::*;
    use super::*;
    use crate::tfchain::Custody;
    use secrecy::SecretString;

    fn signer(name: &str) -> Signer {
        Custody::from_seed(&SecretString::from(
            "0x0505050505050505050505050505050505050505050505050505050505050505".to_owned(),
        ))
        .expect("seed")
        .wallet(name)
    }

    #[test]
    fn the_signing_payload_does_not_depend_on_key_order() {
        let a = Call::new("balances", "x", json!({"value": "1", "dest": "d"}));
        let b: Call = serde_json::from_str(
            r#"{"args": {"dest": "d", "value": "1"}, "name": "x", "pallet": "balances"}"#,
        )
        .expect("call");
        assert_eq!(a.signing_payload(), b.signing_payload());
        assert_eq!(
            a.signing_payload(),
            r#"{"args":{"dest":"d","value":"1"},"name":"x","pallet":"balances"}"#
        );
    }

    #[test]
    fn signed_extrinsics_verify_and_tampering_is_caught() {
        let alice = signer("alice");
        let call = Call::new(
            "smartContractModule",
            "cancelContract",
            json!({"contract_id": 7}),
        );
        let signed = SignedExtrinsic::sign(&alice, call);
        assert_eq!(signed.verify(), Ok(()));

        let mut other_call = signed.clone();
        other_call.call.args = json!({"contract_id": 8});
        assert_eq!(other_call.verify(), Err(BadSignature::Mismatch));

        let mut other_signer = signed.clone();
        other_signer.signer = signer("bob").address().to_owned();
        assert_eq!(other_signer.verify(), Err(BadSignature::Mismatch));

        let mut garbled = signed;
        garbled.signature = "0x1234".to_owned();
        assert_eq!(garbled.verify(), Err(BadSignature::Malformed));
    }

    #[test]
    fn balances_travel_as_strings_and_read_from_numbers_too() {
        let info = AccountInfo {
            nonce: 0,
            data: AccountData {
                free: u128::from(u64::MAX) * 10,
                ..AccountData::default()
            },
        };
        let text = serde_json::to_value(info).expect("json");
        assert_eq!(text["data"]["free"], json!("184467440737095516150"));
        assert_eq!(
            serde_json::from_value::<AccountInfo>(text).expect("back"),
            info
        );
        let number: AccountData =
            serde_json::from_value(json!({"free": 5, "reserved": "0", "frozen": 0}))
                .expect("number");
        assert_eq!(number.free, 5);
    }
}
