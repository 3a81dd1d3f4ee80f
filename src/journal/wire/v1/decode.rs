//! Version-1 records as the engine's events.

use rkyv::rancor;

use super::{
    ArchivedAlert, ArchivedAlertChannelClosed, ArchivedAlertChannelOpened, ArchivedAlertSent, ArchivedAttemptRecorded,
    ArchivedAuditRecorded, ArchivedConfigurationApplied, ArchivedDeleted, ArchivedDestination,
    ArchivedLogStatusChanged, ArchivedMessageAccepted, ArchivedNewLog, ArchivedQueuePaused, ArchivedQueueResumed,
    ArchivedSnapshot, ArchivedSource, ArchivedSubscription, ArchivedTokenKeyCreated, types,
};
use crate::{
    journal::{
        Accepted, AlertSend, ConfigBatch, Event, KeptAlert, Keyed, MessageView, NewLog as DomainNewLog, PausedQueue,
        Replayed, Snapshot as DomainSnapshot,
    },
    model::{self, AlertKind, Environment, LogStatus, LogType},
};

type Decoded<T> = Result<T, String>;

pub fn access<T>(bytes: &[u8]) -> Decoded<&T>
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
        4 => Ok(AlertKind::QueueBacklog),
        _ => Err(format!("unknown alert kind code {code}")),
    }
}

pub fn from_source(a: &ArchivedSource) -> model::Source {
    model::Source {
        id: id(&a.id),
        name: a.name.to_string(),
        api_key: a.api_key.to_string(),
        secret_hash: a.secret_hash.to_string(),
        alert_emails: Vec::new(),
    }
}

pub fn from_destination(a: &ArchivedDestination) -> Decoded<model::Destination> {
    Ok(model::Destination {
        id: id(&a.id),
        name: a.name.to_string(),
        url: a.url.to_string(),
        environment: environment_of(a.environment)?,
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
    })
}

pub fn from_subscription(a: &ArchivedSubscription) -> model::Subscription {
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

pub fn from_alert(a: &ArchivedAlert) -> Decoded<model::Alert> {
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

pub fn from_snapshot(a: &ArchivedSnapshot) -> Decoded<DomainSnapshot> {
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
        audit: Vec::new(),
        operators: Vec::new(),
        backlogged: Vec::new(),
    })
}

pub fn from_audit(a: &ArchivedAuditRecorded) -> model::AuditEntry {
    model::AuditEntry {
        id: id(&a.id),
        at_ms: a.at_ms.to_native(),
        operator: a.operator.to_string(),
        action: a.action.to_string(),
        target: a.target.to_string(),
        detail: a.detail.to_string(),
    }
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
        AUDIT_RECORDED => event(access::<ArchivedAuditRecorded>(bytes).map(|a| Event::Audited(from_audit(a)))),
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
