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
    /// Who hears of its messages' processing failures (SPEC §14).
    pub alert_emails: Vec<String>,
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
    /// Who hears of its queue's alerts (SPEC §14).
    pub alert_emails: Vec<String>,
    /// Pending logs past which its queue is backlogged.
    pub alert_depth: Option<u64>,
    /// Age of the oldest pending log past which its queue is backlogged.
    pub alert_age_ms: Option<u64>,
    /// The certificate presented to a receiver that asks for one.
    pub client_cert: Option<ClientCert>,
    /// Ordered lanes (SPEC §18): the key whose logs keep their order; none
    /// for one lane, the whole queue.
    pub fifo_key: Option<crate::lanes::FifoKey>,
    /// Logs in flight at once across lanes, 1–64; 1 without a key.
    pub max_in_flight: u8,
}

/// A client certificate (with its chain) and its private key, as the
/// paths of PEM files (SPEC §16). Both or neither: the type holds both.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientCert {
    pub cert_file: String,
    pub key_file: String,
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
    /// A queue crossed its `alert_depth` or `alert_age_ms`.
    QueueBacklog,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueuePaused => "QueuePaused",
            Self::ProcessingFailed => "ProcessingFailed",
            Self::QueueRecovered => "QueueRecovered",
            Self::QueueBacklog => "QueueBacklog",
        }
    }
}

/// What an operator may do; each role may do all a lower one may (SPEC §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything the operator API shows.
    Viewer,
    /// Also pauses, resumes, retries, skips, resends and replays.
    Operator,
    /// Also changes sources, destinations, subscriptions and operators.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Viewer, Self::Operator, Self::Admin].into_iter().find(|r| r.as_str() == text)
    }
}

/// An operator made through the operator API: its token only as a
/// SHA-256 digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorRecord {
    pub name: String,
    pub token_hash: [u8; 32],
    pub role: Role,
    pub phi_access: bool,
    pub created_at_ms: TimestampMs,
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
