//! The journal's events: everything that changes engine state, as written
//! to the write-ahead log (rkyv-archived). State is a fold over them.

use rkyv::{Archive, Deserialize, Serialize};

use crate::model::{Destination, Id, LogStatus, LogType, Source, Subscription, TimestampMs};

/// WAL record kind of a journal event.
pub const EVENT_KIND: u16 = 1;

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Event {
    SourceUpserted(Source),
    SourceDeleted {
        id: Id,
    },
    DestinationUpserted(Destination),
    DestinationDeleted {
        id: Id,
    },
    SubscriptionUpserted(Subscription),
    SubscriptionDeleted {
        id: Id,
    },
    /// The key that signs source tokens, created once.
    TokenKeyCreated {
        key: [u8; 32],
    },
    MessageAccepted(Accepted),
    /// A delivery attempt finished (written by the destination's actor).
    AttemptRecorded {
        log_id: Id,
        attempt: Attempt,
    },
    /// A log changed status (written by the destination's actor).
    LogStatusChanged {
        log_id: Id,
        status: LogStatus,
        at_ms: TimestampMs,
        reason: Option<String>,
    },
    QueuePaused {
        destination_id: Id,
        at_ms: TimestampMs,
        reason: String,
    },
    QueueResumed {
        destination_id: Id,
        at_ms: TimestampMs,
    },
    AlertRaised(Alert),
}

/// One accepted SEND (or recorded query) with its logs.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Accepted {
    pub message_id: u64,
    pub log_type: LogType,
    pub source_id: Id,
    pub data_model: String,
    pub event_type: String,
    pub received_at_ms: TimestampMs,
    pub idempotency_key: Option<String>,
    pub logs: Vec<NewLog>,
    /// The request body as received.
    pub payload: Vec<u8>,
}

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewLog {
    pub id: Id,
    /// The ID of the log's first delivery attempt, returned in the 200.
    pub attempt_id: Id,
    pub destination_id: Id,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
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

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
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

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub id: Id,
    pub kind: AlertKind,
    pub destination_id: Id,
    pub log_id: Option<Id>,
    pub at_ms: TimestampMs,
    pub text: String,
}

impl Event {
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain owned data into a growable buffer cannot fail.
        rkyv::to_bytes::<rkyv::rancor::Error>(self).map(|b| b.into_vec()).unwrap_or_default()
    }
}

/// Validates an archived event read from the log.
pub fn access(bytes: &[u8]) -> Result<&ArchivedEvent, String> {
    rkyv::access::<ArchivedEvent, rkyv::rancor::Error>(bytes).map_err(|e| e.to_string())
}

/// Deserializes an archived event in full (the payload is copied).
pub fn decode(archived: &ArchivedEvent) -> Result<Event, String> {
    rkyv::deserialize::<Event, rkyv::rancor::Error>(archived).map_err(|e| e.to_string())
}
