//! Value objects of a provider request. Constructors validate; the limits are
//! the marketplace's own. Deserialisation does not validate again: events are
//! facts and must load even if a limit later changes.

use serde::{Deserialize, Serialize};

pub use crate::deployment::{Country, SpecError};

/// Longest free text (message, note, reason, question, answer), in characters.
pub const MAX_FREE_TEXT: usize = 2_000;
/// Most nodes one request may list.
pub const MAX_NODES: usize = 500;
/// Longest e-mail address (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;

/// The provider's company name: 2 to 100 characters once trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CompanyName(String);

impl CompanyName {
    /// Validates a company name; surrounding whitespace is dropped.
    pub fn new(name: &str) -> Result<Self, SpecError> {
        let name = name.trim();
        if !(2..=100).contains(&name.chars().count()) || name.chars().any(char::is_control) {
            return Err(SpecError::new(
                "company",
                "must be 2 to 100 characters, not blank",
            ));
        }
        Ok(Self(name.to_string()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A contact e-mail address. Only its shape is checked: one `@`, a local
/// part, and a domain with a dot; whether it receives mail is not ours to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContactEmail(String);

impl ContactEmail {
    /// Validates an address.
    pub fn new(email: &str) -> Result<Self, SpecError> {
        let shape_ok = match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && domain.split('.').all(|label| !label.is_empty())
            }
            None => false,
        };
        if !shape_ok
            || email.len() > MAX_EMAIL
            || email.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(SpecError::new(
                "contact",
                "must be an e-mail address of at most 254 characters",
            ));
        }
        Ok(Self(email.to_string()))
    }
    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The grid node ids a request offers: 1 to 500, each positive, no duplicates.
/// The order given is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeIds(Vec<u32>);

impl NodeIds {
    /// Validates a list of node ids.
    pub fn new(ids: Vec<u32>) -> Result<Self, SpecError> {
        if ids.is_empty() || ids.len() > MAX_NODES {
            return Err(SpecError::new(
                "node_ids",
                format!("must list 1 to {MAX_NODES} nodes"),
            ));
        }
        if ids.contains(&0) {
            return Err(SpecError::new("node_ids", "node ids start at 1"));
        }
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(SpecError::new(
                "node_ids",
                format!("node {} is listed twice", w[0]),
            ));
        }
        Ok(Self(ids))
    }
    /// The ids, in the order given.
    pub fn as_slice(&self) -> &[u32] {
        &self.0
    }
    /// Whether the request lists this node.
    pub fn contains(&self, node_id: u32) -> bool {
        self.0.contains(&node_id)
    }
}

/// Checks a free text: at most [`MAX_FREE_TEXT`] characters and, when
/// `required`, not blank.
pub fn check_free_text(field: &str, text: &str, required: bool) -> Result<(), SpecError> {
    if required && text.trim().is_empty() {
        return Err(SpecError::new(field, "must not be blank"));
    }
    if text.chars().count() > MAX_FREE_TEXT {
        return Err(SpecError::new(
            field,
            format!("must be at most {MAX_FREE_TEXT} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn company_names_are_trimmed_and_bounded() {
        assert_eq!(
            CompanyName::new("  Acme Farms ").map(|c| c.as_str().to_string()),
            Ok("Acme Farms".to_string())
        );
        assert!(CompanyName::new("   ").is_err());
        assert!(CompanyName::new(" A ").is_err());
        assert!(CompanyName::new(&"x".repeat(100)).is_ok());
        assert!(CompanyName::new(&"x".repeat(101)).is_err());
        assert_eq!(
            CompanyName::new("").map_err(|e| e.field),
            Err("company".to_string())
        );
    }

    #[test]
    fn contact_emails_need_one_at_and_a_dotted_domain() {
        for ok in ["a@b.co", "first.last+tag@mail.example.org"] {
            assert!(ContactEmail::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "ab.co", "@b.co", "a@", "a@bco", "a@b@c.co", "a b@c.co", "a@b.co ", "a@.co",
            "a@b.", "a@b..co",
        ] {
            assert!(ContactEmail::new(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@b.co", "a".repeat(249));
        assert_eq!(long.len(), 254);
        assert!(ContactEmail::new(&long).is_ok());
        assert!(ContactEmail::new(&format!("a{long}")).is_err());
    }

    #[test]
    fn node_ids_are_positive_unique_and_bounded() {
        assert!(NodeIds::new(vec![3, 1, 2]).is_ok());
        assert!(NodeIds::new(vec![]).is_err());
        assert!(NodeIds::new(vec![1, 0]).is_err());
        assert!(NodeIds::new(vec![4, 2, 4]).is_err());
        assert!(NodeIds::new((1..=500).collect()).is_ok());
        assert!(NodeIds::new((1..=501).collect()).is_err());
        assert_eq!(
            NodeIds::new(vec![7, 5]).map(|n| n.as_slice().to_vec()),
            Ok(vec![7, 5])
        );
    }

    #[test]
    fn free_texts_are_bounded_and_maybe_required() {
        assert!(check_free_text("reason", "  ", true).is_err());
        assert!(check_free_text("message", "", false).is_ok());
        assert!(check_free_text("answer", &"é".repeat(2_000), true).is_ok());
        assert_eq!(
            check_free_text("answer", &"é".repeat(2_001), true).map_err(|e| e.field),
            Err("answer".to_string())
        );
    }
}
