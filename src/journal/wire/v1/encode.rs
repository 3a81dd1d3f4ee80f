//! The engine's events as version-1 records.

use rkyv::{Serialize, rancor, util::AlignedVec};

use super::{
    Alert, AlertChannelClosed, AlertChannelOpened, AlertSendRecord, AlertSent, Attempt, AttemptRecorded, AuditRecorded,
    ChannelCursor, ConfigurationApplied, Deleted, Destination, Idempotency, KeptAlertRecord, LogStatusChanged,
    MessageAccepted, NewLog, QueuePaused, QueueResumed, Snapshot, Source, Subscription, TokenKeyCreated, types,
};
use crate::{
    journal::{Accepted, Event, Snapshot as DomainSnapshot},
    model::{self, AlertKind, Environment, LogStatus, LogType},
};

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
        AlertKind::QueueBacklog => 4,
    }
}

pub fn source(s: &model::Source) -> Source {
    Source { id: s.id.0, name: s.name.clone(), api_key: s.api_key.clone(), secret_hash: s.secret_hash.clone() }
}

pub fn destination(d: &model::Destination) -> Destination {
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

pub fn subscription(s: &model::Subscription) -> Subscription {
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

pub fn alert(a: &model::Alert) -> Alert {
    Alert {
        id: a.id.0,
        kind: alert_kind_code(a.kind),
        destination_id: a.destination_id.0,
        log_id: a.log_id.map(|l| l.0),
        at_ms: a.at_ms,
        text: a.text.clone(),
    }
}

pub fn snapshot(s: &DomainSnapshot) -> Snapshot {
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

pub fn to_bytes<T>(value: &T) -> Result<AlignedVec, rancor::Error>
where
    T: for<'a> Serialize<
        rkyv::api::high::HighSerializer<AlignedVec, rkyv::ser::allocator::ArenaHandle<'a>, rancor::Error>,
    >,
{
    rkyv::to_bytes::<rancor::Error>(value)
}

/// The record type and bytes of `event`; `None` for an event version 1
/// has no type for.
pub fn encode(event: &Event) -> Option<Result<(u8, AlignedVec), rancor::Error>> {
    use types::*;
    let encoded = |type_code: u8, bytes: Result<AlignedVec, rancor::Error>| Some(bytes.map(|b| (type_code, b)));
    match event {
        Event::SourceUpserted(s) => encoded(SOURCE_UPSERTED, to_bytes(&source(s))),
        Event::SourceDeleted { id } => encoded(SOURCE_DELETED, to_bytes(&Deleted { id: id.0 })),
        Event::DestinationUpserted(d) => encoded(DESTINATION_UPSERTED, to_bytes(&destination(d))),
        Event::DestinationDeleted { id } => encoded(DESTINATION_DELETED, to_bytes(&Deleted { id: id.0 })),
        Event::SubscriptionUpserted(s) => encoded(SUBSCRIPTION_UPSERTED, to_bytes(&subscription(s))),
        Event::SubscriptionDeleted { id } => encoded(SUBSCRIPTION_DELETED, to_bytes(&Deleted { id: id.0 })),
        Event::ConfigurationApplied(batch) => {
            let record = ConfigurationApplied {
                origin: batch.origin.clone(),
                sources: batch.sources.iter().map(source).collect(),
                destinations: batch.destinations.iter().map(destination).collect(),
                subscriptions: batch.subscriptions.iter().map(subscription).collect(),
            };
            encoded(CONFIGURATION_APPLIED, to_bytes(&record))
        }
        Event::TokenKeyCreated { key } => encoded(TOKEN_KEY_CREATED, to_bytes(&TokenKeyCreated { key: *key })),
        Event::MessageAccepted(a) => encoded(MESSAGE_ACCEPTED, to_bytes(&message(a))),
        Event::AttemptRecorded { log_id, attempt: a } => {
            encoded(ATTEMPT_RECORDED, to_bytes(&AttemptRecorded { log_id: log_id.0, attempt: attempt(a) }))
        }
        Event::LogStatusChanged { log_id, status, at_ms, reason } => {
            let record = LogStatusChanged {
                log_id: log_id.0,
                status: status_code(*status),
                at_ms: *at_ms,
                reason: reason.clone(),
            };
            encoded(LOG_STATUS_CHANGED, to_bytes(&record))
        }
        Event::QueuePaused { destination_id, at_ms, reason } => {
            let record = QueuePaused { destination_id: destination_id.0, at_ms: *at_ms, reason: reason.clone() };
            encoded(QUEUE_PAUSED, to_bytes(&record))
        }
        Event::QueueResumed { destination_id, at_ms } => {
            encoded(QUEUE_RESUMED, to_bytes(&QueueResumed { destination_id: destination_id.0, at_ms: *at_ms }))
        }
        Event::AlertRaised(a) => encoded(ALERT_RAISED, to_bytes(&alert(a))),
        Event::AlertChannelOpened { channel, after } => {
            encoded(ALERT_CHANNEL_OPENED, to_bytes(&AlertChannelOpened { channel: channel.clone(), after: *after }))
        }
        Event::AlertChannelClosed { channel } => {
            encoded(ALERT_CHANNEL_CLOSED, to_bytes(&AlertChannelClosed { channel: channel.clone() }))
        }
        Event::AlertSent { channel, alert_position, at_ms, refused } => {
            let record = AlertSent {
                channel: channel.clone(),
                alert_position: *alert_position,
                at_ms: *at_ms,
                refused: refused.clone(),
            };
            encoded(ALERT_SENT, to_bytes(&record))
        }
        Event::Audited(entry) => encoded(AUDIT_RECORDED, to_bytes(&audit(entry))),
        // Written as version 2 (`wire::v2`); version 1 only for tests that
        // read it back.
        Event::Snapshot(s) => encoded(SNAPSHOT, to_bytes(&snapshot(s))),
        Event::OperatorUpserted(_)
        | Event::OperatorDeleted { .. }
        | Event::LogsResent(_)
        | Event::DeliveryTaken { .. } => None,
    }
}

pub fn audit(a: &model::AuditEntry) -> AuditRecorded {
    AuditRecorded {
        id: a.id.0,
        at_ms: a.at_ms,
        operator: a.operator.clone(),
        action: a.action.clone(),
        target: a.target.clone(),
        detail: a.detail.clone(),
    }
}
