//! Format 0: the journal as written before records were versioned (up to
//! commit `a92ca61`, `tests/golden/format-0`). Record kind 1 holds any
//! event but a snapshot and kind 2 a snapshot, each the rkyv archive of the
//! enum below, whose types were then the engine's own domain types.
//!
//! Frozen: nothing here may change, not a field, not the order of a
//! variant, or data directories of that time would be misread. Records are
//! only read; they are converted to the engine's events below.

// The originals of these types are never built here, only their archives read.
#![allow(dead_code)]

use rkyv::{Archive, rancor};

use super::super::event::{
    Accepted, AlertSend, Event, KeptAlert, Keyed, MessageView, NewLog, PausedQueue, Replayed, Snapshot, body_hash,
};
use crate::model;

/// The record kind of any event but a snapshot.
pub const EVENT_KIND: u16 = 1;
/// The record kind of a snapshot.
pub const SNAPSHOT_KIND: u16 = 2;

#[derive(Archive)]
pub struct Id(pub u128);

#[derive(Archive)]
pub struct Source {
    pub id: Id,
    pub name: String,
    pub api_key: String,
    pub secret_hash: String,
}

#[derive(Archive)]
pub enum Environment {
    Production,
    Staging,
    Development,
}

#[derive(Archive)]
pub struct Destination {
    pub id: Id,
    pub name: String,
    pub url: String,
    pub environment: Environment,
    pub verification_token: String,
    pub signing_secret: String,
    pub timeout_ms: u64,
    pub enabled: bool,
}

#[derive(Archive)]
pub struct Subscription {
    pub id: Id,
    pub source_id: Id,
    pub destination_id: Id,
    pub data_model: String,
    pub event_types: Vec<String>,
    pub transform: Option<String>,
    pub response_transform: Option<String>,
}

#[derive(Archive)]
pub enum LogStatus {
    Pending,
    Retrying,
    ProcessingFailed,
    Succeeded,
    Failed,
    Filtered,
}

#[derive(Archive)]
pub enum LogType {
    Async,
    Query,
}

#[derive(Archive)]
pub enum V0Event {
    SourceUpserted(Source),
    SourceDeleted { id: Id },
    DestinationUpserted(Destination),
    DestinationDeleted { id: Id },
    SubscriptionUpserted(Subscription),
    SubscriptionDeleted { id: Id },
    TokenKeyCreated { key: [u8; 32] },
    MessageAccepted(V0Accepted),
    AttemptRecorded { log_id: Id, attempt: Attempt },
    LogStatusChanged { log_id: Id, status: LogStatus, at_ms: i64, reason: Option<String> },
    QueuePaused { destination_id: Id, at_ms: i64, reason: String },
    QueueResumed { destination_id: Id, at_ms: i64 },
    AlertRaised(Alert),
    Snapshot(V0Snapshot),
}

#[derive(Archive)]
pub struct V0Snapshot {
    pub from: u64,
    pub first_log_index: u64,
    pub retain_after_ms: i64,
    pub sources: Vec<Source>,
    pub destinations: Vec<Destination>,
    pub subscriptions: Vec<Subscription>,
    pub token_key: Option<[u8; 32]>,
    pub next_message_id: u64,
    pub paused: Vec<V0PausedQueue>,
    pub alerts: Vec<V0KeptAlert>,
}

#[derive(Archive)]
pub struct V0PausedQueue {
    pub destination_id: Id,
    pub at_ms: i64,
    pub reason: String,
}

#[derive(Archive)]
pub struct V0KeptAlert {
    pub position: u64,
    pub alert: Alert,
}

#[derive(Archive)]
pub struct V0Accepted {
    pub message_id: u64,
    pub log_type: LogType,
    pub source_id: Id,
    pub data_model: String,
    pub event_type: String,
    pub received_at_ms: i64,
    pub idempotency_key: Option<String>,
    pub logs: Vec<V0NewLog>,
    pub payload: Vec<u8>,
}

#[derive(Archive)]
pub struct V0NewLog {
    pub id: Id,
    pub attempt_id: Id,
    pub destination_id: Id,
}

#[derive(Archive)]
pub struct Attempt {
    pub id: Id,
    pub started_at_ms: i64,
    pub duration_ms: u64,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub response: Option<String>,
}

#[derive(Archive)]
pub enum AlertKind {
    QueuePaused,
    ProcessingFailed,
    QueueRecovered,
}

#[derive(Archive)]
pub struct Alert {
    pub id: Id,
    pub kind: AlertKind,
    pub destination_id: Id,
    pub log_id: Option<Id>,
    pub at_ms: i64,
    pub text: String,
}

fn access(bytes: &[u8]) -> Result<&ArchivedV0Event, String> {
    rkyv::access::<ArchivedV0Event, rancor::Error>(bytes).map_err(|e| e.to_string())
}

/// The archived event of a format-0 record of kind `kind`.
fn access_kind(kind: u16, bytes: &[u8]) -> Result<&ArchivedV0Event, String> {
    let event = access(bytes)?;
    let is_snapshot = matches!(event, ArchivedV0Event::Snapshot(_));
    if is_snapshot != (kind == SNAPSHOT_KIND) {
        return Err(format!("a format-0 record of kind {kind} holds the wrong event"));
    }
    Ok(event)
}

/// Reads a format-0 record of kind `kind`.
pub fn decode(kind: u16, bytes: &[u8]) -> Result<Replayed<'_>, String> {
    Ok(match access_kind(kind, bytes)? {
        ArchivedV0Event::MessageAccepted(a) => Replayed::Message(message_view(a)),
        other => Replayed::Event(convert(other)),
    })
}

/// The body of a format-0 message record.
pub fn message_payload(bytes: &[u8]) -> Result<&[u8], String> {
    match access(bytes)? {
        ArchivedV0Event::MessageAccepted(a) => Ok(a.payload.as_slice()),
        _ => Err("not a message".to_owned()),
    }
}

fn id(a: &ArchivedId) -> model::Id {
    model::Id(a.0.to_native())
}

fn message_view(a: &ArchivedV0Accepted) -> MessageView<'_> {
    MessageView {
        message_id: a.message_id.to_native(),
        log_type: log_type(&a.log_type),
        source_id: id(&a.source_id),
        data_model: a.data_model.as_str(),
        event_type: a.event_type.as_str(),
        received_at_ms: a.received_at_ms.to_native(),
        // Format 0 kept no digest of the body: it is taken from the body.
        idempotency: a.idempotency_key.as_ref().map(|k| (k.as_str(), body_hash(a.payload.as_slice()))),
        logs: a.logs.iter().map(new_log).collect(),
    }
}

fn new_log(l: &ArchivedV0NewLog) -> NewLog {
    NewLog { id: id(&l.id), attempt_id: id(&l.attempt_id), destination_id: id(&l.destination_id) }
}

fn log_type(a: &ArchivedLogType) -> model::LogType {
    match a {
        ArchivedLogType::Async => model::LogType::Async,
        ArchivedLogType::Query => model::LogType::Query,
    }
}

fn source(a: &ArchivedSource) -> model::Source {
    model::Source {
        id: id(&a.id),
        name: a.name.to_string(),
        api_key: a.api_key.to_string(),
        secret_hash: a.secret_hash.to_string(),
        alert_emails: Vec::new(),
    }
}

fn destination(a: &ArchivedDestination) -> model::Destination {
    model::Destination {
        id: id(&a.id),
        name: a.name.to_string(),
        url: a.url.to_string(),
        environment: match a.environment {
            ArchivedEnvironment::Production => model::Environment::Production,
            ArchivedEnvironment::Staging => model::Environment::Staging,
            ArchivedEnvironment::Development => model::Environment::Development,
        },
        verification_token: a.verification_token.to_string(),
        signing_secret: a.signing_secret.to_string(),
        timeout_ms: a.timeout_ms.to_native(),
        enabled: a.enabled,
        alert_emails: Vec::new(),
        alert_depth: None,
        alert_age_ms: None,
        client_cert: None,
        fifo_key: None,
        max_in_flight: 1,
    }
}

fn subscription(a: &ArchivedSubscription) -> model::Subscription {
    model::Subscription {
        id: id(&a.id),
        source_id: id(&a.source_id),
        destination_id: id(&a.destination_id),
        data_model: a.data_model.to_string(),
        event_types: a.event_types.iter().map(|e| e.to_string()).collect(),
        transform: a.transform.as_ref().map(|t| t.to_string()),
        response_transform: a.response_transform.as_ref().map(|t| t.to_string()),
    }
}

fn status(a: &ArchivedLogStatus) -> model::LogStatus {
    match a {
        ArchivedLogStatus::Pending => model::LogStatus::Pending,
        ArchivedLogStatus::Retrying => model::LogStatus::Retrying,
        ArchivedLogStatus::ProcessingFailed => model::LogStatus::ProcessingFailed,
        ArchivedLogStatus::Succeeded => model::LogStatus::Succeeded,
        ArchivedLogStatus::Failed => model::LogStatus::Failed,
        ArchivedLogStatus::Filtered => model::LogStatus::Filtered,
    }
}

fn attempt(a: &ArchivedAttempt) -> model::Attempt {
    model::Attempt {
        id: id(&a.id),
        started_at_ms: a.started_at_ms.to_native(),
        duration_ms: a.duration_ms.to_native(),
        http_status: a.http_status.as_ref().map(|s| s.to_native()),
        error: a.error.as_ref().map(|e| e.to_string()),
        response: a.response.as_ref().map(|r| r.to_string()),
    }
}

fn alert(a: &ArchivedAlert) -> model::Alert {
    model::Alert {
        id: id(&a.id),
        kind: match a.kind {
            ArchivedAlertKind::QueuePaused => model::AlertKind::QueuePaused,
            ArchivedAlertKind::ProcessingFailed => model::AlertKind::ProcessingFailed,
            ArchivedAlertKind::QueueRecovered => model::AlertKind::QueueRecovered,
        },
        destination_id: id(&a.destination_id),
        log_id: a.log_id.as_ref().map(id),
        at_ms: a.at_ms.to_native(),
        text: a.text.to_string(),
    }
}

fn snapshot(a: &ArchivedV0Snapshot) -> Snapshot {
    Snapshot {
        audit: Vec::new(),
        operators: Vec::new(),
        backlogged: Vec::new(),
        from: a.from.to_native(),
        first_log_index: a.first_log_index.to_native(),
        retain_after_ms: a.retain_after_ms.to_native(),
        sources: a.sources.iter().map(source).collect(),
        destinations: a.destinations.iter().map(destination).collect(),
        subscriptions: a.subscriptions.iter().map(subscription).collect(),
        token_key: a.token_key.as_ref().copied(),
        next_message_id: a.next_message_id.to_native(),
        paused: a
            .paused
            .iter()
            .map(|p| PausedQueue {
                destination_id: id(&p.destination_id),
                at_ms: p.at_ms.to_native(),
                reason: p.reason.to_string(),
            })
            .collect(),
        // Format 0 sent alerts from memory and kept no record of it.
        alerts: a
            .alerts
            .iter()
            .map(|k| KeptAlert {
                position: k.position.to_native(),
                alert: alert(&k.alert),
                sent: Vec::<AlertSend>::new(),
            })
            .collect(),
        alert_channels: Vec::new(),
    }
}

fn convert(event: &ArchivedV0Event) -> Event {
    match event {
        ArchivedV0Event::SourceUpserted(s) => Event::SourceUpserted(source(s)),
        ArchivedV0Event::SourceDeleted { id: i } => Event::SourceDeleted { id: id(i) },
        ArchivedV0Event::DestinationUpserted(d) => Event::DestinationUpserted(destination(d)),
        ArchivedV0Event::DestinationDeleted { id: i } => Event::DestinationDeleted { id: id(i) },
        ArchivedV0Event::SubscriptionUpserted(s) => Event::SubscriptionUpserted(subscription(s)),
        ArchivedV0Event::SubscriptionDeleted { id: i } => Event::SubscriptionDeleted { id: id(i) },
        ArchivedV0Event::TokenKeyCreated { key } => Event::TokenKeyCreated { key: *key },
        ArchivedV0Event::MessageAccepted(a) => Event::MessageAccepted(Accepted {
            message_id: a.message_id.to_native(),
            log_type: log_type(&a.log_type),
            source_id: id(&a.source_id),
            data_model: a.data_model.to_string(),
            event_type: a.event_type.to_string(),
            received_at_ms: a.received_at_ms.to_native(),
            idempotency: a
                .idempotency_key
                .as_ref()
                .map(|k| Keyed { key: k.to_string(), body_hash: body_hash(a.payload.as_slice()) }),
            logs: a.logs.iter().map(new_log).collect(),
            payload: a.payload.to_vec(),
        }),
        ArchivedV0Event::AttemptRecorded { log_id, attempt: a } => {
            Event::AttemptRecorded { log_id: id(log_id), attempt: attempt(a) }
        }
        ArchivedV0Event::LogStatusChanged { log_id, status: s, at_ms, reason } => Event::LogStatusChanged {
            log_id: id(log_id),
            status: status(s),
            at_ms: at_ms.to_native(),
            reason: reason.as_ref().map(|r| r.to_string()),
        },
        ArchivedV0Event::QueuePaused { destination_id, at_ms, reason } => Event::QueuePaused {
            destination_id: id(destination_id),
            at_ms: at_ms.to_native(),
            reason: reason.to_string(),
        },
        ArchivedV0Event::QueueResumed { destination_id, at_ms } => {
            Event::QueueResumed { destination_id: id(destination_id), at_ms: at_ms.to_native() }
        }
        ArchivedV0Event::AlertRaised(a) => Event::AlertRaised(alert(a)),
        ArchivedV0Event::Snapshot(s) => Event::Snapshot(snapshot(s)),
    }
}

/// Reads a whole format-0 record as an event (a message with its body).
pub fn decode_owned(kind: u16, bytes: &[u8]) -> Result<Event, String> {
    access_kind(kind, bytes).map(convert)
}
