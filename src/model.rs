//! The engine's domain objects, as the engine works with them. They are not
//! what the journal writes: `journal::wire` has its own versioned record
//! types and converts explicitly, so these may change freely.

use std::fmt;

/// A 128-bit identifier, shown as a hyphenated UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
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

/// Milliseconds since the Unix epoch, UTC.
pub type TimestampMs = i64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub id: Id,
    pub name: String,
    pub api_key: String,
    /// `pbkdf2-sha256$<rounds>$<salt hex>$<digest hex>` of the secret; the secret itself is
    /// never stored.
    pub secret_hash: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

#[derive(Clone, Debug, PartialEq, Eq)]
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

#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// One try to deliver a log (SPEC §1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub id: Id,
    pub started_at_ms: TimestampMs,
    pub duration_ms: u64,
    pub http_status: Option<u16>,
    /// Transport error or the receiver's error text.
    pub error: Option<String>,
    /// The first 4 KiB of the receiver's answer.
    pub response: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertKind {
    QueuePaused,
    ProcessingFailed,
    QueueRecovered,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueuePaused => "QueuePaused",
            Self::ProcessingFailed => "ProcessingFailed",
            Self::QueueRecovered => "QueueRecovered",
        }
    }
}

/// A change made through the operator API, and who made it (SPEC §12).
/// Never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: Id,
    pub at_ms: TimestampMs,
    /// The operator's name.
    pub operator: String,
    /// What was done: `source.create`, `destination.pause`, `log.retry`, ...
    pub action: String,
    /// The ID of the object it was done to.
    pub target: String,
    /// A few words more: the object's name, a forced delete.
    pub detail: String,
}

/// An alert about a destination's queue (SPEC §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub id: Id,
    pub kind: AlertKind,
    pub destination_id: Id,
    pub log_id: Option<Id>,
    pub at_ms: TimestampMs,
    pub text: String,
}
