//! The lines of `ferrox wal dump`: one per record, as readable text or as
//! one JSON object, with the same fields. Secrets and bodies stay out of
//! them: the summary names IDs, names and sizes.

use serde::Serialize;

use crate::{
    clock::rfc3339,
    journal::{Event, decode_event, describe_kind, event_name},
    model::TimestampMs,
};

/// One record of the journal, described.
#[derive(Debug, Serialize)]
pub struct Line {
    /// The record's position (sequence number) in the journal.
    pub position: u64,
    /// The event's name, or the record kind in words when this build
    /// cannot read it.
    pub kind: String,
    /// When the event happened (RFC 3339), for events that carry a time.
    pub time: Option<String>,
    /// Bytes of the record's payload.
    pub bytes: u64,
    /// The IDs and names the event is about.
    pub summary: String,
}

impl Line {
    /// Describes the record at `position` of kind `kind`.
    pub fn of(position: u64, kind: u16, payload: &[u8]) -> Self {
        let bytes = payload.len() as u64;
        match decode_event(kind, payload) {
            Ok(event) => Self {
                position,
                kind: event_name(&event).to_owned(),
                time: time_of(&event).map(rfc3339),
                bytes,
                summary: summary(&event),
            },
            Err(e) => Self { position, kind: describe_kind(kind), time: None, bytes, summary: e.to_string() },
        }
    }

    /// `position  time  kind summary`, columns aligned.
    pub fn text(&self) -> String {
        let time = self.time.as_deref().unwrap_or("-");
        format!("{:>10} {:>8}B {time:<24} {} {}", self.position, self.bytes, self.kind, self.summary)
    }

    pub fn json(&self) -> String {
        // A struct of strings and integers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn time_of(event: &Event) -> Option<TimestampMs> {
    Some(match event {
        Event::MessageAccepted(a) => a.received_at_ms,
        Event::AttemptRecorded { attempt, .. } => attempt.started_at_ms,
        Event::LogStatusChanged { at_ms, .. }
        | Event::QueuePaused { at_ms, .. }
        | Event::QueueResumed { at_ms, .. }
        | Event::AlertSent { at_ms, .. } => *at_ms,
        Event::AlertRaised(alert) => alert.at_ms,
        Event::OperatorUpserted(o) => o.created_at_ms,
        Event::LogsResent(r) => r.at_ms,
        Event::Audited(a) => a.at_ms,
        _ => return None,
    })
}

/// The event's IDs and names; never a secret, a body or an error text.
fn summary(event: &Event) -> String {
    match event {
        Event::MessageAccepted(a) => {
            let logs: Vec<String> = a.logs.iter().map(|l| l.id.to_string()).collect();
            format!(
                "id={} {}:{} source={} payload={}B logs=[{}]",
                a.message_id,
                a.data_model,
                a.event_type,
                a.source_id,
                a.payload.len(),
                logs.join(",")
            )
        }
        Event::TokenKeyCreated { .. } => String::new(),
        Event::SourceUpserted(s) => format!("id={} name={:?}", s.id, s.name),
        Event::DestinationUpserted(d) => format!("id={} name={:?} enabled={}", d.id, d.name, d.enabled),
        Event::SubscriptionUpserted(s) => {
            format!("id={} source={} destination={} {}", s.id, s.source_id, s.destination_id, s.data_model)
        }
        Event::SourceDeleted { id } | Event::DestinationDeleted { id } | Event::SubscriptionDeleted { id } => {
            format!("id={id}")
        }
        Event::ConfigurationApplied(b) => format!(
            "origin={:?} sources={} destinations={} subscriptions={}",
            b.origin,
            b.sources.len(),
            b.destinations.len(),
            b.subscriptions.len()
        ),
        Event::AttemptRecorded { log_id, attempt } => format!(
            "log={log_id} attempt={} http_status={} duration_ms={}",
            attempt.id,
            attempt.http_status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
            attempt.duration_ms
        ),
        Event::LogStatusChanged { log_id, status, .. } => format!("log={log_id} status={status:?}"),
        Event::QueuePaused { destination_id, .. } | Event::QueueResumed { destination_id, .. } => {
            format!("destination={destination_id}")
        }
        Event::AlertRaised(a) => format!(
            "id={} {:?} destination={} log={}",
            a.id,
            a.kind,
            a.destination_id,
            a.log_id.map_or_else(|| "-".to_owned(), |l| l.to_string())
        ),
        Event::AlertChannelOpened { channel, after } => format!("channel={channel:?} after={after}"),
        Event::AlertChannelClosed { channel } => format!("channel={channel:?}"),
        Event::AlertSent { channel, alert_position, refused, .. } => {
            format!("channel={channel:?} alert={alert_position} refused={}", refused.is_some())
        }
        Event::OperatorUpserted(o) => format!("name={:?}", o.name),
        Event::OperatorDeleted { name } => format!("name={name:?}"),
        Event::LogsResent(r) => {
            let logs: Vec<String> = r.logs.iter().map(|l| format!("{}<-{}", l.id, l.resent_from)).collect();
            format!("destination={} logs=[{}]", r.destination_id, logs.join(","))
        }
        Event::DeliveryTaken { destination_id, node, epoch } => {
            format!("destination={destination_id} node={node:?} epoch={epoch}")
        }
        Event::Audited(a) => {
            format!("id={} operator={:?} action={:?} target={:?}", a.id, a.operator, a.action, a.target)
        }
        Event::Snapshot(s) => format!(
            "from={} sources={} destinations={} subscriptions={} paused={} alerts={} audit={} next_message_id={}",
            s.from,
            s.sources.len(),
            s.destinations.len(),
            s.subscriptions.len(),
            s.paused.len(),
            s.alerts.len(),
            s.audit.len(),
            s.next_message_id
        ),
    }
}
