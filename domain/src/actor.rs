//! Who issued a command: the authenticated subject and the role it acted in.

use serde::{Deserialize, Serialize};

/// The role a principal acts in, as carried in its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Deploys workloads and pays for them.
    CloudUser,
    /// Sells node capacity (a farmer).
    CloudProvider,
    /// Runs the marketplace; may act on any tenant's aggregates.
    CloudOperator,
}

impl Role {
    /// The role's name as it appears in tokens and in event metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::CloudUser => "cloud-user",
            Role::CloudProvider => "cloud-provider",
            Role::CloudOperator => "cloud-operator",
        }
    }

    /// Parses a role name from a token claim; unknown names are ignored by callers.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "cloud-user" => Some(Role::CloudUser),
            "cloud-provider" => Some(Role::CloudProvider),
            "cloud-operator" => Some(Role::CloudOperator),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The principal behind a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The token's `sub`.
    pub subject: String,
    /// The role the principal acted in.
    pub role: Role,
}

impl Actor {
    /// Builds an actor from a subject and role.
    pub fn new(subject: impl Into<String>, role: Role) -> Self {
        Self {
            subject: subject.into(),
            role,
        }
    }

    /// Operators act on every tenant's aggregates.
    pub fn is_operator(&self) -> bool {
        self.role == Role::CloudOperator
    }
}
