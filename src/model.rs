//! The engine's domain objects. They are also the payloads of journal
//! events (rkyv-archived), so every field is a fixed-width integer, a
//! string or a list: no `usize`, no wall-clock types.

use std::fmt;

use rkyv::{Archive, Deserialize, Serialize};

/// A 128-bit identifier, shown as a hyphenated UUID.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[rkyv(derive(Debug, PartialEq, Eq, Hash))]
pub struct Id(pub u128);

impl Id {
    pub fn parse(text: &str) -> Option<Self> {
        uuid::Uuid::parse_str(text).ok().map(|u| Self(u.as_u128()))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        uuid::Uuid::from_u128(self.0).hyphenated().fmt(f)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&ArchivedId> for Id {
    fn from(a: &ArchivedId) -> Self {
        Self(a.0.to_native())
    }
}

/// Milliseconds since the Unix epoch, UTC.
pub type TimestampMs = i64;

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub id: Id,
    pub name: String,
    pub api_key: String,
    /// `pbkdf2-sha256$<rounds>$<salt hex>$<digest hex>` of the secret; the secret itself is
    /// never stored.
    pub secret_hash: String,
}

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub enum Environment {
    Production,
    Staging,
    Development,
}

impl Environment {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "production" => Some(Self::Production),
            "staging" => Some(Self::Staging),
            "development" => Some(Self::Development),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Staging => "staging",
            Self::Development => "development",
        }
    }
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub id: Id,
    pub name: String,
    pub url: String,
    pub environment: Environment,
    pub verification_token: String,
    /// `whsec_` followed by the base64 of the key.
    pub signing_secret: String,
    pub timeout_ms: u64,
    pub enabled: bool,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub id: Id,
    pub source_id: Id,
    pub destination_id: Id,
    pub data_model: String,
    /// Empty means every event type of the data model.
    pub event_types: Vec<String>,
    pub transform: Option<String>,
    pub response_transform: Option<String>,
}

impl Subscription {
    pub fn matches(&self, data_model: &str, event_type: &str) -> bool {
        self.data_model == data_model
            && (self.event_types.is_empty() || self.event_types.iter().any(|e| e == event_type))
    }
}

/// Status of a log (SPEC §5).
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub enum LogStatus {
    Pending,
    Retrying,
    ProcessingFailed,
    Succeeded,
    Failed,
    Filtered,
}

impl LogStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Retrying => "Retrying",
            Self::ProcessingFailed => "ProcessingFailed",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Filtered => "Filtered",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Retrying, Self::ProcessingFailed, Self::Succeeded, Self::Failed, Self::Filtered]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// Whether the log has left its destination's queue for good.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Filtered)
    }
}

/// Whether a log came from an asynchronous SEND or a synchronous query.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub enum LogType {
    Async,
    Query,
}

impl LogType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Async => "Async",
            Self::Query => "Query",
        }
    }
}
