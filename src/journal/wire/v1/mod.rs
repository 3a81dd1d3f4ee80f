//! Version 1 of every record type: the first versioned format. Each record
//! is the rkyv archive of one of the types below, of its own kind (see the
//! table in `wire`). Identifiers are `u128`, enums are explicit one-byte
//! codes (an unknown code is an error), times are `i64` milliseconds.
//!
//! Frozen once released: a change to a record's fields is a new version of
//! that record type, in a module of its own, and this one stays to read
//! what was written with it. The types are here; `encode` makes them from
//! the engine's events and `decode` the events from them.

mod decode;
mod encode;

use rkyv::{Archive, Serialize, with::InlineAsBox};

pub use self::{
    decode::{
        accepted, access as decode_access, decode, from_alert, from_audit, from_destination, from_snapshot,
        from_source, from_subscription, message_payload,
    },
    encode::{alert, audit, destination, encode, snapshot, source, subscription, to_bytes},
};

/// The record types: the high byte of a record kind.
pub mod types {
    pub const SOURCE_UPSERTED: u8 = 1;
    pub const SOURCE_DELETED: u8 = 2;
    pub const DESTINATION_UPSERTED: u8 = 3;
    pub const DESTINATION_DELETED: u8 = 4;
    pub const SUBSCRIPTION_UPSERTED: u8 = 5;
    pub const SUBSCRIPTION_DELETED: u8 = 6;
    pub const CONFIGURATION_APPLIED: u8 = 7;
    pub const TOKEN_KEY_CREATED: u8 = 8;
    pub const MESSAGE_ACCEPTED: u8 = 9;
    pub const ATTEMPT_RECORDED: u8 = 10;
    pub const LOG_STATUS_CHANGED: u8 = 11;
    pub const QUEUE_PAUSED: u8 = 12;
    pub const QUEUE_RESUMED: u8 = 13;
    pub const ALERT_RAISED: u8 = 14;
    pub const ALERT_CHANNEL_OPENED: u8 = 15;
    pub const ALERT_SENT: u8 = 16;
    pub const SNAPSHOT: u8 = 17;
    pub const ALERT_CHANNEL_CLOSED: u8 = 18;
    pub const AUDIT_RECORDED: u8 = 19;
}

#[derive(Archive, Serialize)]
pub struct Source {
    pub id: u128,
    pub name: String,
    pub api_key: String,
    pub secret_hash: String,
}

#[derive(Archive, Serialize)]
pub struct Destination {
    pub id: u128,
    pub name: String,
    pub url: String,
    /// 1 production, 2 staging, 3 development.
    pub environment: u8,
    pub verification_token: String,
    pub signing_secret: String,
    pub timeout_ms: u64,
    pub enabled: bool,
}

#[derive(Archive, Serialize)]
pub struct Subscription {
    pub id: u128,
    pub source_id: u128,
    pub destination_id: u128,
    pub data_model: String,
    pub event_types: Vec<String>,
    pub transform: Option<String>,
    pub response_transform: Option<String>,
}

/// `SourceDeleted`, `DestinationDeleted`, `SubscriptionDeleted`.
#[derive(Archive, Serialize)]
pub struct Deleted {
    pub id: u128,
}

#[derive(Archive, Serialize)]
pub struct ConfigurationApplied {
    pub origin: String,
    pub sources: Vec<Source>,
    pub destinations: Vec<Destination>,
    pub subscriptions: Vec<Subscription>,
}

#[derive(Archive, Serialize)]
pub struct TokenKeyCreated {
    pub key: [u8; 32],
}

/// Written from borrowed parts, so a body is copied once, into the record.
#[derive(Archive, Serialize)]
pub struct MessageAccepted<'a> {
    pub message_id: u64,
    /// 1 async, 2 query.
    pub log_type: u8,
    pub source_id: u128,
    #[rkyv(with = InlineAsBox)]
    pub data_model: &'a str,
    #[rkyv(with = InlineAsBox)]
    pub event_type: &'a str,
    pub received_at_ms: i64,
    pub idempotency: Option<Idempotency>,
    pub logs: Vec<NewLog>,
    #[rkyv(with = InlineAsBox)]
    pub payload: &'a [u8],
}

#[derive(Archive, Serialize)]
pub struct Idempotency {
    pub key: String,
    pub body_hash: [u8; 16],
}

#[derive(Archive, Serialize)]
pub struct NewLog {
    pub id: u128,
    pub attempt_id: u128,
    pub destination_id: u128,
}

#[derive(Archive, Serialize)]
pub struct Attempt {
    pub id: u128,
    pub started_at_ms: i64,
    pub duration_ms: u64,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub response: Option<String>,
}

#[derive(Archive, Serialize)]
pub struct AttemptRecorded {
    pub log_id: u128,
    pub attempt: Attempt,
}

#[derive(Archive, Serialize)]
pub struct LogStatusChanged {
    pub log_id: u128,
    /// 1 Pending, 2 Retrying, 3 ProcessingFailed, 4 Succeeded, 5 Failed,
    /// 6 Filtered.
    pub status: u8,
    pub at_ms: i64,
    pub reason: Option<String>,
}

#[derive(Archive, Serialize)]
pub struct QueuePaused {
    pub destination_id: u128,
    pub at_ms: i64,
    pub reason: String,
}

#[derive(Archive, Serialize)]
pub struct QueueResumed {
    pub destination_id: u128,
    pub at_ms: i64,
}

#[derive(Archive, Serialize)]
pub struct Alert {
    pub id: u128,
    /// 1 QueuePaused, 2 ProcessingFailed, 3 QueueRecovered; 4 QueueBacklog
    /// only in `AlertRaised` version 2 and snapshots of version 3.
    pub kind: u8,
    pub destination_id: u128,
    pub log_id: Option<u128>,
    pub at_ms: i64,
    pub text: String,
}

#[derive(Archive, Serialize)]
pub struct AlertChannelOpened {
    pub channel: String,
    pub after: u64,
}

#[derive(Archive, Serialize)]
pub struct AlertChannelClosed {
    pub channel: String,
}

#[derive(Archive, Serialize)]
pub struct AlertSent {
    pub channel: String,
    pub alert_position: u64,
    pub at_ms: i64,
    pub refused: Option<String>,
}

#[derive(Archive, Serialize)]
pub struct Snapshot {
    pub from: u64,
    pub first_log_index: u64,
    pub retain_after_ms: i64,
    pub sources: Vec<Source>,
    pub destinations: Vec<Destination>,
    pub subscriptions: Vec<Subscription>,
    pub token_key: Option<[u8; 32]>,
    pub next_message_id: u64,
    pub paused: Vec<QueuePaused>,
    pub alerts: Vec<KeptAlertRecord>,
    pub alert_channels: Vec<ChannelCursor>,
}

#[derive(Archive, Serialize)]
pub struct KeptAlertRecord {
    pub position: u64,
    pub alert: Alert,
    pub sent: Vec<AlertSendRecord>,
}

#[derive(Archive, Serialize)]
pub struct AlertSendRecord {
    pub channel: String,
    pub at_ms: i64,
    pub refused: Option<String>,
}

#[derive(Archive, Serialize)]
pub struct ChannelCursor {
    pub channel: String,
    pub through: u64,
}

/// A change made through the operator API (type 19, added with snapshot
/// version 2).
#[derive(Archive, Serialize)]
pub struct AuditRecorded {
    pub id: u128,
    pub at_ms: i64,
    pub operator: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}
