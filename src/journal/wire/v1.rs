//! Version 1 of every record type: the first versioned format. Each record
//! is the rkyv archive of one of the types below, of its own kind (see the
//! table in `wire`). Identifiers are `u128`, enums are explicit one-byte
//! codes (an unknown code is an error), times are `i64` milliseconds.
//!
//! Frozen once released: a change to a record's fields is a new version of
//! that record type, in a module of its own, and this one stays to read
//! what was written with it.

use rkyv::{Archive, Serialize, rancor, util::AlignedVec, with::InlineAsBox};

use super::super::event::{
    Accepted, AlertSend, ConfigBatch, Event, KeptAlert, Keyed, MessageView, NewLog as DomainNewLog, PausedQueue,
    Replayed, Snapshot as DomainSnapshot,
};
use crate::model::{self, AlertKind, Environment, LogStatus, LogType};

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
    /// 1 QueuePaused, 2 ProcessingFailed, 3 QueueRecovered.
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

// --- the engine's events to records -------------------------------------

fn environment_code(e: Environment) -> u8 {
    match e {
        Environment::Production => 1,
        Environment::Staging => 2,
        Environment::Development => 3,
    }
}

fn status_code(s: LogStatus) -> u8 {
    match s {
        LogStatus::Pending => 1,
        LogStatus::Retrying => 2,
        LogStatus::ProcessingFailed => 3,
        LogStatus::Succeeded => 4,
        LogStatus::Failed => 5,
        LogStatus::Filtered => 6,
    }
}

fn log_type_code(t: LogType) -> u8 {
    match t {
        LogType::Async => 1,
        LogType::Query => 2,
    }
}

fn alert_kind_code(k: AlertKind) -> u8 {
    match k {
        AlertKind::QueuePaused => 1,
        AlertKind::ProcessingFailed => 2,
        AlertKind::QueueRecovered => 3,
    }
}

fn source(s: &model::Source) -> Source {
    Source { id: s.id.0, name: s.name.clone(), api_key: s.api_key.clone(), secret_hash: s.secret_hash.clone() }
}

fn destination(d: &model::Destination) -> Destination {
    Destination {
        id: d.id.0,
        name: d.name.clone(),
        url: d.url.clone(),
        environment: environment_code(d.environment),
        verification_token: d.verification_token.clone(),
        signing_secret: d.signing_secret.clone(),
        timeout_ms: d.timeout_ms,
        enabled: d.enabled,
    }
}

fn subscription(s: &model::Subscription) -> Subscription {
    Subscription {
        id: s.id.0,
        source_id: s.source_id.0,
        destination_id: s.destination_id.0,
        data_model: s.data_model.clone(),
        event_types: s.event_types.clone(),
        transform: s.transform.clone(),
        response_transform: s.response_transform.clone(),
    }
}

fn attempt(a: &model::Attempt) -> Attempt {
    Attempt {
        id: a.id.0,
        started_at_ms: a.started_at_ms,
        duration_ms: a.duration_ms,
        http_status: a.http_status,
        error: a.error.clone(),
        response: a.response.clone(),
    }
}

fn alert(a: &model::Alert) -> Alert {
    Alert {
        id: a.id.0,
        kind: alert_kind_code(a.kind),
        destination_id: a.destination_id.0,
        log_id: a.log_id.map(|l| l.0),
        at_ms: a.at_ms,
        text: a.text.clone(),
    }
}

fn snapshot(s: &DomainSnapshot) -> Snapshot {
    Snapshot {
        from: s.from,
        first_log_index: s.first_log_index,
        retain_after_ms: s.retain_after_ms,
        sources: s.sources.iter().map(source).collect(),
        destinations: s.destinations.iter().map(destination).collect(),
        subscriptions: s.subscriptions.iter().map(subscription).collect(),
        token_key: s.token_key,
        next_message_id: s.next_message_id,
        paused: s
            .paused
            .iter()
            .map(|p| QueuePaused { destination_id: p.destination_id.0, at_ms: p.at_ms, reason: p.reason.clone() })
            .collect(),
        alerts: s
            .alerts
            .iter()
            .map(|k| KeptAlertRecord {
                position: k.position,
                alert: alert(&k.alert),
                sent: k
                    .sent
                    .iter()
                    .map(|s| AlertSendRecord { channel: s.channel.clone(), at_ms: s.at_ms, refused: s.refused.clone() })
                    .collect(),
            })
            .collect(),
        alert_channels: s
            .alert_channels
            .iter()
            .map(|(channel, through)| ChannelCursor { channel: channel.clone(), through: *through })
            .collect(),
    }
}

fn message(a: &Accepted) -> MessageAccepted<'_> {
    MessageAccepted {
        message_id: a.message_id,
        log_type: log_type_code(a.log_type),
        source_id: a.source_id.0,
        data_model: &a.data_model,
        event_type: &a.event_type,
        received_at_ms: a.received_at_ms,
        idempotency: a.idempotency.as_ref().map(|k| Idempotency { key: k.key.clone(), body_hash: k.body_hash }),
        logs: a
            .logs
            .iter()
            .map(|l| NewLog { id: l.id.0, attempt_id: l.attempt_id.0, destination_id: l.destination_id.0 })
            .collect(),
        payload: &a.payload,
    }
}

fn to_bytes<T>(value: &T) -> Result<AlignedVec, rancor::Error>
where
    T: for<'a> Serialize<
        rkyv::api::high::HighSerializer<AlignedVec, rkyv::ser::allocator::ArenaHandle<'a>, rancor::Error>,
    >,
{
    rkyv::to_bytes::<rancor::Error>(value)
}

/// The record type and bytes of `event`.
pub fn encode(event: &Event) -> Result<(u8, AlignedVec), rancor::Error> {
    use types::*;
    Ok(match event {
        Event::SourceUpserted(s) => (SOURCE_UPSERTED, to_bytes(&source(s))?),
        Event::SourceDeleted { id } => (SOURCE_DELETED, to_bytes(&Deleted { id: id.0 })?),
        Event::DestinationUpserted(d) => (DESTINATION_UPSERTED, to_bytes(&destination(d))?),
        Event::DestinationDeleted { id } => (DESTINATION_DELETED, to_bytes(&Deleted { id: id.0 })?),
        Event::SubscriptionUpserted(s) => (SUBSCRIPTION_UPSERTED, to_bytes(&subscription(s))?),
        Event::SubscriptionDeleted { id } => (SUBSCRIPTION_DELETED, to_bytes(&Deleted { id: id.0 })?),
        Event::ConfigurationApplied(batch) => {
            let record = ConfigurationApplied {
                origin: batch.origin.clone(),
                sources: batch.sources.iter().map(source).collect(),
                destinations: batch.destinations.iter().map(destination).collect(),
                subscriptions: batch.subscriptions.iter().map(subscription).collect(),
            };
            (CONFIGURATION_APPLIED, to_bytes(&record)?)
        }
        Event::TokenKeyCreated { key } => (TOKEN_KEY_CREATED, to_bytes(&TokenKeyCreated { key: *key })?),
        Event::MessageAccepted(a) => (MESSAGE_ACCEPTED, to_bytes(&message(a))?),
        Event::AttemptRecorded { log_id, attempt: a } => {
            (ATTEMPT_RECORDED, to_bytes(&AttemptRecorded { log_id: log_id.0, attempt: attempt(a) })?)
        }
        Event::LogStatusChanged { log_id, status, at_ms, reason } => {
            let record = LogStatusChanged {
                log_id: log_id.0,
                status: status_code(*status),
                at_ms: *at_ms,
                reason: reason.clone(),
            };
            (LOG_STATUS_CHANGED, to_bytes(&record)?)
        }
        Event::QueuePaused { destination_id, at_ms, reason } => {
            let record = QueuePaused { destination_id: destination_id.0, at_ms: *at_ms, reason: reason.clone() };
            (QUEUE_PAUSED, to_bytes(&record)?)
        }
        Event::QueueResumed { destination_id, at_ms } => {
            (QUEUE_RESUMED, to_bytes(&QueueResumed { destination_id: destination_id.0, at_ms: *at_ms })?)
        }
        Event::AlertRaised(a) => (ALERT_RAISED, to_bytes(&alert(a))?),
        Event::AlertChannelOpened { channel, after } => {
            (ALERT_CHANNEL_OPENED, to_bytes(&AlertChannelOpened { channel: channel.clone(), after: *after })?)
        }
        Event::AlertChannelClosed { channel } => {
            (ALERT_CHANNEL_CLOSED, to_bytes(&AlertChannelClosed { channel: channel.clone() })?)
        }
        Event::AlertSent { channel, alert_position, at_ms, refused } => {
            let record = AlertSent {
                channel: channel.clone(),
                alert_position: *alert_position,
                at_ms: *at_ms,
                refused: refused.clone(),
            };
            (ALERT_SENT, to_bytes(&record)?)
        }
        Event::Snapshot(s) => (SNAPSHOT, to_bytes(&snapshot(s))?),
    })
}

// --- records to the engine's events -------------------------------------

type Decoded<T> = Result<T, String>;

fn access<T>(bytes: &[u8]) -> Decoded<&T>
where
    T: rkyv::Portable + for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>,
{
    rkyv::access::<T, rancor::Error>(bytes).map_err(|e| e.to_string())
}

fn id(value: &rkyv::rend::u128_le) -> model::Id {
    model::Id(value.to_native())
}

fn environment_of(code: u8) -> Decoded<Environment> {
    match code {
        1 => Ok(Environment::Production),
        2 => Ok(Environment::Staging),
        3 => Ok(Environment::Development),
        _ => Err(format!("unknown environment code {code}")),
    }
}

fn status_of(code: u8) -> Decoded<LogStatus> {
    match code {
        1 => Ok(LogStatus::Pending),
        2 => Ok(LogStatus::Retrying),
        3 => Ok(LogStatus::ProcessingFailed),
        4 => Ok(LogStatus::Succeeded),
        5 => Ok(LogStatus::Failed),
        6 => Ok(LogStatus::Filtered),
        _ => Err(format!("unknown log status code {code}")),
    }
}

fn log_type_of(code: u8) -> Decoded<LogType> {
    match code {
        1 => Ok(LogType::Async),
        2 => Ok(LogType::Query),
        _ => Err(format!("unknown log type code {code}")),
    }
}

fn alert_kind_of(code: u8) -> Decoded<AlertKind> {
    match code {
        1 => Ok(AlertKind::QueuePaused),
        2 => Ok(AlertKind::ProcessingFailed),
        3 => Ok(AlertKind::QueueRecovered),
        _ => Err(format!("unknown alert kind code {code}")),
    }
}

fn from_source(a: &ArchivedSource) -> model::Source {
    model::Source {
        id: id(&a.id),
        name: a.name.to_string(),
        api_key: a.api_key.to_string(),
        secret_hash: a.secret_hash.to_string(),
    }
}

fn from_destination(a: &ArchivedDestination) -> Decoded<model::Destination> {
    Ok(model::Destination {
        id: id(&a.id),
        name: a.name.to_string(),
        url: a.url.to_string(),
        environment: environment_of(a.environment)?,
        verification_token: a.verification_token.to_string(),
        signing_secret: a.signing_secret.to_string(),
        timeout_ms: a.timeout_ms.to_native(),
        enabled: a.enabled,
    })
}

fn from_subscription(a: &ArchivedSubscription) -> model::Subscription {
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

fn from_alert(a: &ArchivedAlert) -> Decoded<model::Alert> {
    Ok(model::Alert {
        id: id(&a.id),
        kind: alert_kind_of(a.kind)?,
        destination_id: id(&a.destination_id),
        log_id: a.log_id.as_ref().map(id),
        at_ms: a.at_ms.to_native(),
        text: a.text.to_string(),
    })
}

fn from_new_log(l: &ArchivedNewLog) -> DomainNewLog {
    DomainNewLog { id: id(&l.id), attempt_id: id(&l.attempt_id), destination_id: id(&l.destination_id) }
}

fn message_view<'a>(a: &'a ArchivedMessageAccepted<'_>) -> Decoded<MessageView<'a>> {
    Ok(MessageView {
        message_id: a.message_id.to_native(),
        log_type: log_type_of(a.log_type)?,
        source_id: id(&a.source_id),
        data_model: a.data_model.get(),
        event_type: a.event_type.get(),
        received_at_ms: a.received_at_ms.to_native(),
        idempotency: a.idempotency.as_ref().map(|k| (k.key.as_str(), k.body_hash)),
        logs: a.logs.iter().map(from_new_log).collect(),
    })
}

fn from_snapshot(a: &ArchivedSnapshot) -> Decoded<DomainSnapshot> {
    let alerts = a
        .alerts
        .iter()
        .map(|k| {
            Ok(KeptAlert {
                position: k.position.to_native(),
                alert: from_alert(&k.alert)?,
                sent: k
                    .sent
                    .iter()
                    .map(|s| AlertSend {
                        channel: s.channel.to_string(),
                        at_ms: s.at_ms.to_native(),
                        refused: s.refused.as_ref().map(|r| r.to_string()),
                    })
                    .collect(),
            })
        })
        .collect::<Decoded<Vec<_>>>()?;
    Ok(DomainSnapshot {
        from: a.from.to_native(),
        first_log_index: a.first_log_index.to_native(),
        retain_after_ms: a.retain_after_ms.to_native(),
        sources: a.sources.iter().map(from_source).collect(),
        destinations: a.destinations.iter().map(from_destination).collect::<Decoded<_>>()?,
        subscriptions: a.subscriptions.iter().map(from_subscription).collect(),
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
        alerts,
        alert_channels: a.alert_channels.iter().map(|c| (c.channel.to_string(), c.through.to_native())).collect(),
    })
}

/// Reads a version-1 record of type `type_code`; `None` if this version
/// has no such type.
pub fn decode(type_code: u8, bytes: &[u8]) -> Option<Decoded<Replayed<'_>>> {
    use types::*;
    let event = |e: Decoded<Event>| Some(e.map(Replayed::Event));
    match type_code {
        SOURCE_UPSERTED => event(access::<ArchivedSource>(bytes).map(|s| Event::SourceUpserted(from_source(s)))),
        SOURCE_DELETED => event(access::<ArchivedDeleted>(bytes).map(|d| Event::SourceDeleted { id: id(&d.id) })),
        DESTINATION_UPSERTED => {
            event(access::<ArchivedDestination>(bytes).and_then(from_destination).map(Event::DestinationUpserted))
        }
        DESTINATION_DELETED => {
            event(access::<ArchivedDeleted>(bytes).map(|d| Event::DestinationDeleted { id: id(&d.id) }))
        }
        SUBSCRIPTION_UPSERTED => {
            event(access::<ArchivedSubscription>(bytes).map(|s| Event::SubscriptionUpserted(from_subscription(s))))
        }
        SUBSCRIPTION_DELETED => {
            event(access::<ArchivedDeleted>(bytes).map(|d| Event::SubscriptionDeleted { id: id(&d.id) }))
        }
        CONFIGURATION_APPLIED => event(access::<ArchivedConfigurationApplied>(bytes).and_then(|c| {
            Ok(Event::ConfigurationApplied(ConfigBatch {
                origin: c.origin.to_string(),
                sources: c.sources.iter().map(from_source).collect(),
                destinations: c.destinations.iter().map(from_destination).collect::<Decoded<_>>()?,
                subscriptions: c.subscriptions.iter().map(from_subscription).collect(),
            }))
        })),
        TOKEN_KEY_CREATED => {
            event(access::<ArchivedTokenKeyCreated>(bytes).map(|t| Event::TokenKeyCreated { key: t.key }))
        }
        MESSAGE_ACCEPTED => {
            Some(access::<ArchivedMessageAccepted<'_>>(bytes).and_then(message_view).map(Replayed::Message))
        }
        ATTEMPT_RECORDED => event(access::<ArchivedAttemptRecorded>(bytes).map(|r| {
            let a = &r.attempt;
            Event::AttemptRecorded {
                log_id: id(&r.log_id),
                attempt: model::Attempt {
                    id: id(&a.id),
                    started_at_ms: a.started_at_ms.to_native(),
                    duration_ms: a.duration_ms.to_native(),
                    http_status: a.http_status.as_ref().map(|s| s.to_native()),
                    error: a.error.as_ref().map(|e| e.to_string()),
                    response: a.response.as_ref().map(|r| r.to_string()),
                },
            }
        })),
        LOG_STATUS_CHANGED => event(access::<ArchivedLogStatusChanged>(bytes).and_then(|r| {
            Ok(Event::LogStatusChanged {
                log_id: id(&r.log_id),
                status: status_of(r.status)?,
                at_ms: r.at_ms.to_native(),
                reason: r.reason.as_ref().map(|r| r.to_string()),
            })
        })),
        QUEUE_PAUSED => event(access::<ArchivedQueuePaused>(bytes).map(|r| Event::QueuePaused {
            destination_id: id(&r.destination_id),
            at_ms: r.at_ms.to_native(),
            reason: r.reason.to_string(),
        })),
        QUEUE_RESUMED => event(
            access::<ArchivedQueueResumed>(bytes)
                .map(|r| Event::QueueResumed { destination_id: id(&r.destination_id), at_ms: r.at_ms.to_native() }),
        ),
        ALERT_RAISED => event(access::<ArchivedAlert>(bytes).and_then(from_alert).map(Event::AlertRaised)),
        ALERT_CHANNEL_OPENED => event(
            access::<ArchivedAlertChannelOpened>(bytes)
                .map(|r| Event::AlertChannelOpened { channel: r.channel.to_string(), after: r.after.to_native() }),
        ),
        ALERT_CHANNEL_CLOSED => event(
            access::<ArchivedAlertChannelClosed>(bytes)
                .map(|r| Event::AlertChannelClosed { channel: r.channel.to_string() }),
        ),
        ALERT_SENT => event(access::<ArchivedAlertSent>(bytes).map(|r| Event::AlertSent {
            channel: r.channel.to_string(),
            alert_position: r.alert_position.to_native(),
            at_ms: r.at_ms.to_native(),
            refused: r.refused.as_ref().map(|r| r.to_string()),
        })),
        SNAPSHOT => event(access::<ArchivedSnapshot>(bytes).and_then(from_snapshot).map(Event::Snapshot)),
        _ => None,
    }
}

/// The body of a version-1 message record.
pub fn message_payload(bytes: &[u8]) -> Decoded<&[u8]> {
    access::<ArchivedMessageAccepted<'_>>(bytes).map(|a| a.payload.get())
}

/// The whole message of a version-1 message record, body included.
pub fn accepted(bytes: &[u8]) -> Decoded<Accepted> {
    let a = access::<ArchivedMessageAccepted<'_>>(bytes)?;
    let view = message_view(a)?;
    Ok(Accepted {
        message_id: view.message_id,
        log_type: view.log_type,
        source_id: view.source_id,
        data_model: view.data_model.to_owned(),
        event_type: view.event_type.to_owned(),
        received_at_ms: view.received_at_ms,
        idempotency: view.idempotency.map(|(key, body_hash)| Keyed { key: key.to_owned(), body_hash }),
        logs: view.logs,
        payload: a.payload.get().to_vec(),
    })
}
