//! The journal's events: everything that changes engine state, as written
//! to the write-ahead log (rkyv-archived). State is a fold over them.

use rkyv::{Archive, Deserialize, Serialize};

use crate::model::{Destination, Id, LogStatus, LogType, Source, Subscription, TimestampMs};

/// WAL record kind of a journal event.
pub const EVENT_KIND: u16 = 1;
/// WAL record kind of a [`Snapshot`], so that start-up finds the last one
/// by reading record headers only.
pub const SNAPSHOT_KIND: u16 = 2;

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
    /// Everything but messages and their logs, as of this event, and the
    /// position from which the journal still holds every message the
    /// engine keeps; see `crate::retention`.
    Snapshot(Snapshot),
}

impl Event {
    /// The WAL record kind the event is written as.
    pub fn kind(&self) -> u16 {
        match self {
            Self::Snapshot(_) => SNAPSHOT_KIND,
            _ => EVENT_KIND,
        }
    }
}

/// The state a replay cannot rebuild from the messages kept: written
/// before records below `from` are released. Replay reads messages, their
/// logs' attempts and statuses from `from` on, and everything else from
/// here (see `State::apply_archived`).
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Every message the engine keeps was accepted at or after this
    /// position; records below it are no longer needed.
    pub from: u64,
    /// The absolute index of the first log kept, so log cursors stay valid.
    pub first_log_index: u64,
    /// Messages and logs last changed before this are past retention.
    pub retain_after_ms: TimestampMs,
    pub sources: Vec<Source>,
    pub destinations: Vec<Destination>,
    pub subscriptions: Vec<Subscription>,
    pub token_key: Option<[u8; 32]>,
    pub next_message_id: u64,
    pub paused: Vec<PausedQueue>,
    /// Alerts within retention, with the positions they were raised at.
    pub alerts: Vec<KeptAlert>,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PausedQueue {
    pub destination_id: Id,
    pub at_ms: TimestampMs,
    pub reason: String,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct KeptAlert {
    pub position: u64,
    pub alert: Alert,
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
