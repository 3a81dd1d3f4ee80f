//! One log line for each journaled event an operator looks for: failed
//! deliveries, pauses and resumes, alerts, operator actions and changes of
//! configuration, each with its IDs as fields. Lines come from the events
//! as they are journaled, so whatever makes a change (the API, the
//! console, a destination's actor, the configuration file) is logged the
//! same way, and nothing is logged again when the journal is replayed.
//! Secrets never appear: objects are named by ID and name only.

use crate::{
    journal::Event,
    model::{Attempt, Id, LogStatus},
    state::State,
};

/// Logs `event`, just journaled at `position` and applied to `state`.
pub fn journaled(state: &State, position: u64, event: &Event) {
    match event {
        Event::AttemptRecorded { log_id, attempt } => attempt_recorded(state, *log_id, attempt),
        Event::LogStatusChanged { log_id, status, reason, .. } => status_changed(state, *log_id, *status, reason),
        Event::QueuePaused { destination_id, reason, .. } => {
            tracing::warn!(destination_id = %destination_id, reason = %reason, position, "queue paused");
        }
        Event::QueueResumed { destination_id, .. } => {
            tracing::info!(destination_id = %destination_id, position, "queue resumed");
        }
        Event::AlertRaised(alert) => tracing::warn!(
            alert_id = %alert.id,
            kind = alert.kind.as_str(),
            destination_id = %alert.destination_id,
            log_id = %alert.log_id.map(|id| id.to_string()).unwrap_or_default(),
            text = %alert.text,
            "alert raised"
        ),
        Event::Audited(entry) => tracing::info!(
            operator = %entry.operator,
            action = %entry.action,
            target_id = %entry.target,
            detail = %entry.detail,
            audit_id = %entry.id,
            "operator action"
        ),
        Event::LogsResent(resent) => tracing::info!(
            destination_id = %resent.destination_id,
            logs = resent.logs.len(),
            first_log_id = %resent.logs.first().map(|l| l.id.to_string()).unwrap_or_default(),
            "logs resent"
        ),
        Event::DeliveryTaken { destination_id, node, epoch } => tracing::info!(
            destination_id = %destination_id,
            node = %node,
            epoch,
            position,
            "destination taken over: the node named delivers it from here on"
        ),
        _ => configuration_changed(position, event),
    }
}

/// Changes of sources, destinations, subscriptions and operators.
fn configuration_changed(position: u64, event: &Event) {
    let (object, id, name): (&str, String, &str) = match event {
        Event::SourceUpserted(s) => ("source", s.id.to_string(), &s.name),
        Event::SourceDeleted { id } => ("source deleted", id.to_string(), ""),
        Event::DestinationUpserted(d) => ("destination", d.id.to_string(), &d.name),
        Event::DestinationDeleted { id } => ("destination deleted", id.to_string(), ""),
        Event::SubscriptionUpserted(s) => ("subscription", s.id.to_string(), &s.data_model),
        Event::SubscriptionDeleted { id } => ("subscription deleted", id.to_string(), ""),
        Event::OperatorUpserted(o) => ("operator", String::new(), &o.name),
        Event::OperatorDeleted { name } => ("operator deleted", String::new(), name),
        Event::ConfigurationApplied(batch) => {
            tracing::info!(
                config_file = %batch.origin,
                sources = batch.sources.len(),
                destinations = batch.destinations.len(),
                subscriptions = batch.subscriptions.len(),
                position,
                "configuration file applied"
            );
            return;
        }
        _ => return,
    };
    tracing::info!(object, id = %id, name = %name, position, "configuration changed");
}

/// A failed attempt, with the receiver's status or the transport error.
fn attempt_recorded(state: &State, log_id: Id, attempt: &Attempt) {
    let succeeded = attempt.http_status.is_some_and(|s| (200..300).contains(&s)) && attempt.error.is_none();
    if succeeded {
        return;
    }
    let log = state.log(log_id);
    tracing::warn!(
        destination_id = %log.map(|l| l.destination_id.to_string()).unwrap_or_default(),
        log_id = %log_id,
        message_id = log.map_or(0, |l| l.message_id),
        attempt_id = %attempt.id,
        http_status = attempt.http_status.unwrap_or(0),
        duration_ms = attempt.duration_ms,
        error = %attempt.error.as_deref().unwrap_or(""),
        "delivery failed"
    );
}

/// A log that ended badly or waits for an operator.
fn status_changed(state: &State, log_id: Id, status: LogStatus, reason: &Option<String>) {
    if !matches!(status, LogStatus::Failed | LogStatus::ProcessingFailed) {
        return;
    }
    let log = state.log(log_id);
    tracing::warn!(
        destination_id = %log.map(|l| l.destination_id.to_string()).unwrap_or_default(),
        log_id = %log_id,
        message_id = log.map_or(0, |l| l.message_id),
        status = status.as_str(),
        reason = %reason.as_deref().unwrap_or(""),
        "log failed"
    );
}
