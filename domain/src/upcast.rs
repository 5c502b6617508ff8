//! Reading old event payloads as today's (upcasting). A stored event is
//! never rewritten: it keeps the version it was written with, and every
//! reader (aggregate loads, projections, the audit API, Kafka consumers)
//! passes it through [`upcast`] before parsing, so all of them see the
//! current shape. Each step turns one version into the next; a chain of
//! steps takes any older version to the current one.

use serde_json::Value;

use crate::{deployment, node, pricing, provider, tft_price, wallet};

/// Why a payload cannot be read as the current version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    /// No step leads from this version to the current one.
    #[error("unknown version {version} of {event_type} (a {aggregate_type} event; current is {current})")]
    UnknownVersion {
        /// The aggregate type.
        aggregate_type: String,
        /// The event type.
        event_type: String,
        /// The stored version.
        version: String,
        /// The version readers expect.
        current: String,
    },
    /// Not an aggregate type the marketplace has.
    #[error("unknown aggregate type {0:?}")]
    UnknownAggregate(String),
    /// The old payload lacks what its step needs.
    #[error("{event_type} version {version} payload cannot be upcast: {reason}")]
    Malformed {
        /// The event type.
        event_type: String,
        /// The version being upcast.
        version: String,
        /// Why.
        reason: String,
    },
}

/// One step: `(from, to, how)`; `how` gets the event type and the payload.
type Step = (
    &'static str,
    &'static str,
    fn(&str, Value) -> Result<Value, String>,
);

/// Every aggregate type the marketplace stores.
pub const AGGREGATE_TYPES: &[&str] = &[
    "alliance",
    "deployment",
    "node",
    "pricing_policy",
    "provider_request",
    "tft_price",
    "user",
    "wallet",
];

/// The version each aggregate type's events are written with today.
pub fn current_version(aggregate_type: &str) -> Option<&'static str> {
    Some(match aggregate_type {
        "alliance" => crate::alliance::EVENT_VERSION,
        "deployment" => deployment::EVENT_VERSION,
        "node" => node::EVENT_VERSION,
        "pricing_policy" => pricing::EVENT_VERSION,
        "provider_request" => provider::EVENT_VERSION,
        "tft_price" => tft_price::EVENT_VERSION,
        "user" => crate::user::EVENT_VERSION,
        "wallet" => wallet::EVENT_VERSION,
        _ => return None,
    })
}

fn steps(aggregate_type: &str) -> &'static [Step] {
    match aggregate_type {
        "deployment" => &[("1", "2", deployment_v1_to_v2)],
        _ => &[],
    }
}

/// `payload`, stored as `version` of `event_type`, in the current version's
/// shape. A payload already current is returned as it is.
pub fn upcast(
    aggregate_type: &str,
    event_type: &str,
    version: &str,
    mut payload: Value,
) -> Result<Value, UpcastError> {
    let current = current_version(aggregate_type)
        .ok_or_else(|| UpcastError::UnknownAggregate(aggregate_type.to_string()))?;
    let mut at = version;
    while at != current {
        let Some((_, to, how)) = steps(aggregate_type).iter().find(|(from, ..)| *from == at) else {
            return Err(UpcastError::UnknownVersion {
                aggregate_type: aggregate_type.to_string(),
                event_type: event_type.to_string(),
                version: version.to_string(),
                current: current.to_string(),
            });
        };
        payload = how(event_type, payload).map_err(|reason| UpcastError::Malformed {
            event_type: event_type.to_string(),
            version: at.to_string(),
            reason,
        })?;
        at = to;
    }
    Ok(payload)
}

/// Deployment events 1 → 2: `DeploymentRequested` gains `kind`, taken from
/// its spec's tag (`{"kind": "vm", ...}`); every other event is unchanged.
fn deployment_v1_to_v2(event_type: &str, mut payload: Value) -> Result<Value, String> {
    if event_type != "DeploymentRequested" {
        return Ok(payload);
    }
    let body = payload
        .get_mut("DeploymentRequested")
        .and_then(Value::as_object_mut)
        .ok_or("no DeploymentRequested body")?;
    let kind = body
        .get("spec")
        .and_then(|s| s.get("kind"))
        .cloned()
        .ok_or("its spec has no kind")?;
    body.entry("kind").or_insert(kind);
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::deployment::{DeploymentEvent, DeploymentKind};

    use crate::deployment::{
        DeploymentName, FlistImage, KubernetesSpec, MachineSize, Placement, SshPublicKey, VmSpec,
        WorkloadSpec,
    };

    /// A request as version 1 wrote it: today's payload without `kind`.
    fn v1_requested(kind: &str) -> Value {
        let size = MachineSize::new(2, 4096, 20).expect("size");
        let image = FlistImage::new("https://hub.grid.tf/tf-official-apps/base:latest.flist")
            .expect("image");
        let key =
            SshPublicKey::new("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq alice@laptop").expect("key");
        let spec = if kind == "vm" {
            WorkloadSpec::Vm(VmSpec::new(size, vec![], false, image, key).expect("vm"))
        } else {
            WorkloadSpec::Kubernetes(
                KubernetesSpec::new(1, 2, size, size, false, image, key).expect("cluster"),
            )
        };
        let event = DeploymentEvent::DeploymentRequested {
            owner: "alice".into(),
            name: DeploymentName::new("web1").expect("name"),
            kind: spec.kind(),
            spec,
            placement: Placement::default(),
            at: chrono::DateTime::UNIX_EPOCH,
        };
        let mut payload = serde_json::to_value(event).expect("serialises");
        payload["DeploymentRequested"]
            .as_object_mut()
            .expect("body")
            .remove("kind");
        payload
    }

    #[test]
    fn a_version_1_request_reads_as_version_2_with_its_kind_from_the_spec() {
        let up = upcast("deployment", "DeploymentRequested", "1", v1_requested("vm")).expect("up");
        assert_eq!(up["DeploymentRequested"]["kind"], "vm");
        let up = upcast(
            "deployment",
            "DeploymentRequested",
            "1",
            v1_requested("kubernetes"),
        )
        .expect("up");
        assert_eq!(up["DeploymentRequested"]["kind"], "kubernetes");
    }

    #[test]
    fn a_version_1_payload_without_the_new_field_does_not_parse_until_upcast() {
        let v1 = v1_requested("vm");
        assert!(serde_json::from_value::<DeploymentEvent>(v1.clone()).is_err());
        let up = upcast("deployment", "DeploymentRequested", "1", v1).expect("up");
        let Ok(DeploymentEvent::DeploymentRequested { kind, .. }) = serde_json::from_value(up)
        else {
            panic!("parses as version 2");
        };
        assert_eq!(kind, DeploymentKind::Vm);
    }

    #[test]
    fn other_version_1_deployment_events_and_current_payloads_pass_unchanged() {
        let cancelled = json!({"DeploymentCancelled": {"reason": "done"}});
        assert_eq!(
            upcast("deployment", "DeploymentCancelled", "1", cancelled.clone()),
            Ok(cancelled.clone())
        );
        assert_eq!(
            upcast("deployment", "DeploymentCancelled", "2", cancelled.clone()),
            Ok(cancelled.clone())
        );
        assert_eq!(
            upcast("wallet", "WalletOpened", "1", cancelled.clone()),
            Ok(cancelled)
        );
    }

    #[test]
    fn unknown_versions_and_aggregates_are_refused_by_name() {
        let e = upcast("deployment", "DeploymentCancelled", "99", json!({})).expect_err("99");
        assert!(
            e.to_string()
                .contains("unknown version 99 of DeploymentCancelled"),
            "{e}"
        );
        assert!(upcast("wallet", "WalletOpened", "2", json!({})).is_err());
        assert!(matches!(
            upcast("spaceship", "Launched", "1", json!({})),
            Err(UpcastError::UnknownAggregate(_))
        ));
        let e = upcast(
            "deployment",
            "DeploymentRequested",
            "1",
            json!({"DeploymentRequested": {}}),
        )
        .expect_err("no spec");
        assert!(matches!(e, UpcastError::Malformed { .. }), "{e}");
    }
}
