//! Operators of the operator API and their roles (SPEC §12): who may read,
//! who may act on queues and logs, who may change the configuration, and
//! who may read message bodies (PHI).
//!
//! Tokens are kept only as SHA-256 digests: the configuration file holds
//! the tokens it declares, the engine's memory holds none. A request's
//! bearer token is hashed and looked up; a digest gives nothing away about
//! how close a wrong token came, so the lookup needs no constant-time care.

use std::collections::HashMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::model::{AuditEntry, Id, TimestampMs};

/// Shortest operator token accepted.
pub const MIN_TOKEN_CHARS: usize = 16;

pub use crate::model::Role;

/// An `[[operators]]` entry of the configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSpec {
    pub name: String,
    pub token: String,
    pub role: Role,
    #[serde(default)]
    pub phi_access: bool,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
    pub role: Role,
    /// May read message bodies.
    pub phi_access: bool,
}

/// What an operator is about to change, for the audit trail: journaled
/// with the change, once it is decided (SPEC §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDraft {
    pub operator: String,
    pub action: String,
    /// The object's ID; for a creation, taken from the answer.
    pub target: Option<String>,
    pub detail: String,
}

impl AuditDraft {
    pub fn new(operator: &Operator, action: &str, target: Option<String>) -> Self {
        Self { operator: operator.name.clone(), action: action.to_owned(), target, detail: String::new() }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// The entry to journal, with its ID and time; `answer` is the change's
    /// answer, which names a created object.
    pub fn entry(self, id: Id, at_ms: TimestampMs, answer: &serde_json::Value) -> AuditEntry {
        let named = answer.get("id").and_then(|v| v.as_str()).map(str::to_owned);
        let name = answer.get("name").and_then(|v| v.as_str());
        let detail = match (self.detail.is_empty(), name) {
            (true, Some(name)) => format!("name '{name}'"),
            _ => self.detail,
        };
        AuditEntry {
            id,
            at_ms,
            operator: self.operator,
            action: self.action,
            target: self.target.or(named).unwrap_or_default(),
            detail,
        }
    }
}

/// The name `admin_token` goes by.
pub const ADMIN_NAME: &str = "admin";

/// A token's digest.
pub type TokenHash = [u8; 32];

pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The operators of the configuration (`admin_token` and
/// `[[operators]]`), by token digest. Operators made through the operator
/// API are the state's (`State::operators`), journaled.
#[derive(Debug, Clone, Default)]
pub struct Operators {
    by_token: HashMap<TokenHash, Operator>,
}

/// Checks an operator's name: what the configuration and the API accept.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(format!("operator name '{name}' must be 1 to 100 visible characters"));
    }
    Ok(())
}

/// Checks a token's length.
pub fn check_token(name: &str, token: &str) -> Result<(), String> {
    if token.chars().count() < MIN_TOKEN_CHARS {
        return Err(format!("the token of operator '{name}' must be at least {MIN_TOKEN_CHARS} characters"));
    }
    Ok(())
}

impl Operators {
    /// The operators of a configuration: `admin_token` as `admin` (role
    /// `admin`, PHI access), then each `[[operators]]` entry. Checks names
    /// and tokens.
    pub fn from_config(admin_token: Option<&str>, specs: &[OperatorSpec]) -> Result<Self, String> {
        let mut operators = Self::default();
        if let Some(token) = admin_token {
            operators.add(token, Operator { name: ADMIN_NAME.into(), role: Role::Admin, phi_access: true })?;
        }
        for spec in specs {
            let operator = Operator { name: spec.name.clone(), role: spec.role, phi_access: spec.phi_access };
            operators.add(&spec.token, operator)?;
        }
        Ok(operators)
    }

    fn add(&mut self, token: &str, operator: Operator) -> Result<(), String> {
        let name = operator.name.clone();
        let name = &name;
        check_name(name)?;
        if self.by_token.values().any(|o| o.name == *name) {
            return Err(if name == ADMIN_NAME {
                "the operator name 'admin' is taken by admin_token".into()
            } else {
                format!("two operators are named '{name}'")
            });
        }
        check_token(name, token)?;
        if self.by_token.insert(token_hash(token), operator).is_some() {
            return Err(format!("operator '{name}' has the same token as another operator"));
        }
        Ok(())
    }

    /// The operator whose token has this digest.
    pub fn find(&self, hash: &TokenHash) -> Option<&Operator> {
        self.by_token.get(hash)
    }

    /// The operator named `name`.
    pub fn named(&self, name: &str) -> Option<&Operator> {
        self.by_token.values().find(|o| o.name == name)
    }

    /// Every operator, by name.
    pub fn all(&self) -> Vec<&Operator> {
        let mut all: Vec<&Operator> = self.by_token.values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, token: &str, role: Role) -> OperatorSpec {
        OperatorSpec { name: name.into(), token: token.into(), role, phi_access: false }
    }

    #[test]
    fn tokens_find_their_operators_and_bad_lists_are_refused() {
        let ops = Operators::from_config(
            Some("admin-token-0123456789"),
            &[spec("ana", "viewer-token-0123456789", Role::Viewer)],
        )
        .expect("valid");
        let find = |token: &str| ops.find(&token_hash(token));
        assert_eq!(find("admin-token-0123456789").map(|o| (o.role, o.phi_access)), Some((Role::Admin, true)));
        assert_eq!(find("viewer-token-0123456789").map(|o| o.name.as_str()), Some("ana"));
        assert_eq!(find("viewer-token-012345678"), None);
        assert_eq!(ops.named("ana").map(|o| o.role), Some(Role::Viewer));
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);

        let refused = |specs: &[OperatorSpec]| Operators::from_config(Some("admin-token-0123456789"), specs);
        assert!(refused(&[spec("x", "short", Role::Viewer)]).unwrap_err().contains("at least 16"));
        assert!(refused(&[spec("admin", "another-token-0123456", Role::Viewer)]).unwrap_err().contains("admin_token"));
        assert!(refused(&[spec("x", "admin-token-0123456789", Role::Viewer)]).unwrap_err().contains("same token"));
        let twice = [spec("x", "token-one-0123456789", Role::Viewer), spec("x", "token-two-0123456789", Role::Admin)];
        assert!(refused(&twice).unwrap_err().contains("two operators"));
        assert!(refused(&[spec(" ", "token-one-0123456789", Role::Viewer)]).is_err());
    }
}
