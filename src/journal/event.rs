//! The engine's events: everything that changes its state, as the engine
//! works with them. State is a fold over them. What the journal writes is
//! their versioned wire form (`wire`), converted explicitly both ways.

use sha2::{Digest, Sha256};

use crate::model::{
    Alert, Attempt, AuditEntry, Destination, Id, LogStatus, LogType, OperatorRecord, Source, Subscription, TimestampMs,
};

#[derive(Clone, Debug, PartialEq)]
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
    /// The objects of the configuration file, applied together: one record,
    /// so a crash leaves all of them or none.
    ConfigurationApplied(ConfigBatch),
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
    /// An alert channel (the webhook, an email list) starts with the alerts
    /// raised after position `after`.
    AlertChannelOpened {
        channel: String,
        after: u64,
    },
    /// An alert channel is no longer configured: its cursor is forgotten.
    AlertChannelClosed {
        channel: String,
    },
    /// The alert raised at `alert_position` left through `channel`: taken,
    /// or refused for good with the reason.
    AlertSent {
        channel: String,
        alert_position: u64,
        at_ms: TimestampMs,
        refused: Option<String>,
    },
    /// An operator made or changed through the operator API.
    OperatorUpserted(OperatorRecord),
    OperatorDeleted {
        name: String,
    },
    /// Logs sent again by an operator (SPEC §13): new logs of old messages,
    /// at the tail of one destination's queue, in this order.
    LogsResent(Resent),
    /// A change made through the operator API, journaled with who made it,
    /// right after the change's own events and in the same commit.
    Audited(AuditEntry),
    /// Everything but messages and their logs, as of this event, and the
    /// position from which the journal still holds every message the
    /// engine keeps; see `crate::retention`.
    Snapshot(Snapshot),
    /// In cluster mode: `node` took the lease of a destination at lease
    /// revision `epoch` (its fencing token), and delivers it from here on.
    /// A destination's outcomes are recorded only by the node and epoch of
    /// its last takeover, so a node that lost the lease unawares (a frozen
    /// process) cannot record over its new holder.
    DeliveryTaken {
        destination_id: Id,
        node: String,
        epoch: u64,
    },
}

/// The objects a configuration file declares, from file `origin`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ConfigBatch {
    pub origin: String,
    pub sources: Vec<Source>,
    pub destinations: Vec<Destination>,
    pub subscriptions: Vec<Subscription>,
}

/// The state a replay cannot rebuild from the messages kept: written
/// before records below `from` are released. Replay reads messages, their
/// logs' attempts and statuses from `from` on, and everything else from
/// here (see `State::apply_replayed`).
#[derive(Clone, Debug, PartialEq, Default)]
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
    /// Alerts within retention or not yet sent everywhere, with the
    /// positions they were raised at.
    pub alerts: Vec<KeptAlert>,
    /// Each alert channel and the position of the last alert it is done with.
    pub alert_channels: Vec<(String, u64)>,
    /// The audit trail within retention, with the positions it was
    /// journaled at (snapshot version 2; empty in older snapshots).
    pub audit: Vec<(u64, AuditEntry)>,
    /// Operators made through the operator API (version 3).
    pub operators: Vec<OperatorRecord>,
    /// Destinations whose queue is past a threshold, with a `QueueBacklog`
    /// alert not yet followed by `QueueRecovered` (version 3).
    pub backlogged: Vec<Id>,
}

/// Logs an operator sent again to one destination.
#[derive(Clone, Debug, PartialEq)]
pub struct Resent {
    pub destination_id: Id,
    pub at_ms: TimestampMs,
    pub logs: Vec<ResentLog>,
}

/// A new log of an old message. It carries what the state keeps of the
/// message, so a replay rebuilds it without the message's own record.
#[derive(Clone, Debug, PartialEq)]
pub struct ResentLog {
    pub id: Id,
    pub attempt_id: Id,
    /// The log it was sent again from.
    pub resent_from: Id,
    pub message_id: u64,
    /// Where the message was accepted in the journal.
    pub message_position: u64,
    pub log_type: LogType,
    pub source_id: Id,
    pub data_model: String,
    pub event_type: String,
    pub received_at_ms: TimestampMs,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PausedQueue {
    pub destination_id: Id,
    pub at_ms: TimestampMs,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptAlert {
    pub position: u64,
    pub alert: Alert,
    pub sent: Vec<AlertSend>,
}

/// How an alert left through one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertSend {
    pub channel: String,
    pub at_ms: TimestampMs,
    /// Set when the channel refused the alert for good.
    pub refused: Option<String>,
}

/// A digest of a request body, kept with its `Idempotency-Key` to tell a
/// repeat from a different request under the same key.
pub type BodyHash = [u8; 16];

/// The first 16 bytes of the body's SHA-256.
pub fn body_hash(body: &[u8]) -> BodyHash {
    let digest = Sha256::digest(body);
    let mut hash = [0u8; 16];
    hash.copy_from_slice(&digest[..16]);
    hash
}

/// An `Idempotency-Key` and the digest of the body it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyed {
    pub key: String,
    pub body_hash: BodyHash,
}

/// One accepted SEND (or recorded query) with its logs.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted {
    pub message_id: u64,
    pub log_type: LogType,
    pub source_id: Id,
    pub data_model: String,
    pub event_type: String,
    pub received_at_ms: TimestampMs,
    pub idempotency: Option<Keyed>,
    pub logs: Vec<NewLog>,
    /// The request body as received.
    pub payload: Vec<u8>,
}

impl Accepted {
    /// What the state keeps of it.
    pub fn view(&self) -> MessageView<'_> {
        MessageView {
            message_id: self.message_id,
            log_type: self.log_type,
            source_id: self.source_id,
            data_model: &self.data_model,
            event_type: &self.event_type,
            received_at_ms: self.received_at_ms,
            idempotency: self.idempotency.as_ref().map(|k| (k.key.as_str(), k.body_hash)),
            logs: self.logs.clone(),
        }
    }
}

/// An accepted message without its body, borrowed from the event or from
/// the journal's record in place: replay reads messages this way, so their
/// bodies are never copied.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageView<'a> {
    pub message_id: u64,
    pub log_type: LogType,
    pub source_id: Id,
    pub data_model: &'a str,
    pub event_type: &'a str,
    pub received_at_ms: TimestampMs,
    pub idempotency: Option<(&'a str, BodyHash)>,
    pub logs: Vec<NewLog>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewLog {
    pub id: Id,
    /// The ID of the log's first delivery attempt, returned in the 200.
    pub attempt_id: Id,
    pub destination_id: Id,
}

/// An event read back from the journal.
#[derive(Debug)]
pub enum Replayed<'a> {
    /// An accepted message, borrowed in place.
    Message(MessageView<'a>),
    Event(Event),
}
