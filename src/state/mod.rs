//! Engine state: a fold over journal events. The router applies each event
//! as it appends it, in log order; after a restart the same fold over the
//! replayed log rebuilds the same state.
//!
//! After a snapshot (see `crate::retention`), messages accepted before its
//! `from` position are dropped from memory, as the journal may delete them.
//! A replay then starts at `from`: it rebuilds messages and their logs
//! from the records, and everything else from the snapshot.
//!
//! An entry is *durable* once the journal has synced its position. Readers
//! outside the router act only on durable messages, logs and alerts (see
//! `durable` arguments), so no message is shown or delivered before it is
//! durable. A log's status changes are shown as recorded; the ledger's
//! flusher syncs them within milliseconds.

mod chunked;
mod query;
mod retain;
mod tables;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
};

pub use self::query::{LogFilter, LogPage};
pub use self::tables::{Messages, Name};
use self::{
    chunked::Chunked,
    tables::{Interner, LogIndex},
};
use crate::{
    journal::{AlertSend, BodyHash, Event, KeptAlert, MessageView, Replayed, Snapshot},
    model::{Attempt, Destination, Id, LogStatus, LogType, Source, Subscription, TimestampMs},
};

/// How long an `Idempotency-Key` is remembered (SPEC §3: 24 h).
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Default)]
pub struct State {
    pub sources: BTreeMap<Id, Source>,
    api_keys: HashMap<String, Id>,
    pub destinations: BTreeMap<Id, Destination>,
    pub subscriptions: BTreeMap<Id, Subscription>,
    pub token_key: Option<[u8; 32]>,
    /// The ID the next accepted message gets.
    pub next_message_id: u64,
    pub messages: Messages,
    names: Interner,
    /// Every log kept, in acceptance order; the first is log number
    /// `log_base` (log numbers are the indexes used everywhere else).
    logs: Chunked<Log>,
    log_base: usize,
    /// Log numbers by ID: see `LogIndex`.
    log_index: LogIndex,
    pub queues: HashMap<Id, Queue>,
    idempotency: HashMap<(Id, String), Idempotent>,
    /// Keys in acceptance order, to forget them when their window ends.
    idempotency_order: VecDeque<(TimestampMs, Id, String)>,
    /// Alerts kept, in the order raised, with how each channel sent them.
    pub alerts: Vec<KeptAlert>,
    /// Each alert channel and the position of the last alert it is done
    /// with (sent, or refused for good).
    pub alert_channels: BTreeMap<String, u64>,
    /// Position of the last event applied.
    pub position: u64,
    /// While replaying after a snapshot: its position. Events before it
    /// touch messages and logs only.
    replay_snapshot_at: Option<u64>,
}

/// An accepted message, as kept in memory: its body stays in the journal.
/// Kept small, since one stays in memory per message (see `Interner`).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: u64,
    /// Where the message's event sits in the journal.
    pub position: u64,
    pub log_type: LogType,
    pub source_id: Id,
    /// Interned names: see `State::name`.
    pub data_model: Name,
    pub event_type: Name,
    pub received_at_ms: TimestampMs,
    /// Its logs are the `log_count` logs from index `first_log`: a
    /// message's logs are created together.
    pub first_log: usize,
    pub log_count: u32,
}

impl Message {
    /// Indexes of its logs.
    pub fn logs(&self) -> std::ops::Range<usize> {
        self.first_log..self.first_log + self.log_count as usize
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub id: Id,
    pub message_id: u64,
    pub position: u64,
    pub destination_id: Id,
    pub first_attempt_id: Id,
    pub status: LogStatus,
    pub updated_at_ms: TimestampMs,
    /// Attempts and reason, boxed: most logs in memory are pending and
    /// have neither, so they pay one pointer instead of 40 bytes.
    detail: Option<Box<LogDetail>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct LogDetail {
    attempts: Vec<Attempt>,
    /// Why the log is in its status, when an operator or a failure says so.
    reason: Option<Box<str>>,
}

impl Log {
    pub fn attempts(&self) -> &[Attempt] {
        self.detail.as_ref().map_or(&[], |d| &d.attempts)
    }

    pub fn reason(&self) -> Option<&str> {
        self.detail.as_ref()?.reason.as_deref()
    }

    fn push_attempt(&mut self, attempt: Attempt) {
        self.detail.get_or_insert_default().attempts.push(attempt);
    }

    fn set_reason(&mut self, reason: Option<Box<str>>) {
        match (&mut self.detail, reason) {
            (None, None) => {}
            (Some(detail), reason) => detail.reason = reason,
            (detail @ None, reason) => *detail = Some(Box::new(LogDetail { attempts: Vec::new(), reason })),
        }
    }
}

/// A destination's queue: its non-terminal logs in acceptance order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Queue {
    pub pending: VecDeque<usize>,
    /// Set while an operator has paused the destination: when and why.
    pub paused: Option<(TimestampMs, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Idempotent {
    pub message_id: u64,
    pub position: u64,
    pub at_ms: TimestampMs,
    /// The digest of the body that came with the key.
    pub body_hash: BodyHash,
}

impl State {
    /// Applies an event the ledger has just appended at `position`.
    pub fn apply(&mut self, position: u64, event: &Event) {
        self.position = position;
        match event {
            Event::MessageAccepted(a) => self.accept(position, a.view()),
            Event::Snapshot(snapshot) => self.forget_before(snapshot),
            other => self.apply_config_or_delivery(other),
        }
    }

    /// Prepares a replay that starts at `snapshot.from`, the snapshot
    /// being at `position`.
    pub fn begin_replay(&mut self, position: u64, snapshot: &Snapshot) {
        self.replay_snapshot_at = Some(position);
        self.log_base = usize::try_from(snapshot.first_log_index).unwrap_or(usize::MAX);
    }

    /// The snapshot position a replay has not reached yet, if any.
    pub fn replay_snapshot_pending(&self) -> Option<u64> {
        self.replay_snapshot_at
    }

    /// Applies an event read back from the journal.
    pub fn apply_replayed(&mut self, position: u64, replayed: Replayed<'_>) {
        self.position = position;
        let event = match replayed {
            Replayed::Message(view) => return self.accept(position, view),
            Replayed::Event(event) => event,
        };
        if self.replay_snapshot_at.is_some_and(|at| position < at) {
            // Before the snapshot, only messages' attempts and statuses
            // count; the snapshot holds the outcome of everything else. Of
            // the configuration, only which queues exist counts: it decides
            // where logs go.
            match &event {
                Event::AttemptRecorded { .. } | Event::LogStatusChanged { .. } => {}
                Event::DestinationDeleted { id } => return self.end_queue(*id),
                Event::DestinationUpserted(d) => {
                    self.queues.entry(d.id).or_default();
                    return;
                }
                Event::ConfigurationApplied(batch) => {
                    for d in &batch.destinations {
                        self.queues.entry(d.id).or_default();
                    }
                    return;
                }
                _ => return,
            }
        }
        if let Event::Snapshot(snapshot) = &event {
            if self.replay_snapshot_at == Some(position) {
                self.restore(snapshot);
                self.replay_snapshot_at = None;
            }
            // An older snapshot, or one after the messages it names: the
            // replay already holds what it says.
            return;
        }
        self.apply_config_or_delivery(&event);
    }

    fn apply_config_or_delivery(&mut self, event: &Event) {
        match event {
            Event::SourceUpserted(s) => self.upsert_source(s),
            Event::SourceDeleted { id } => {
                if let Some(old) = self.sources.remove(id) {
                    self.api_keys.remove(&old.api_key);
                }
                self.subscriptions.retain(|_, s| s.source_id != *id);
            }
            Event::DestinationUpserted(d) => self.upsert_destination(d),
            Event::DestinationDeleted { id } => {
                self.destinations.remove(id);
                self.subscriptions.retain(|_, s| s.destination_id != *id);
                self.end_queue(*id);
            }
            Event::SubscriptionUpserted(s) => {
                self.subscriptions.insert(s.id, s.clone());
            }
            Event::ConfigurationApplied(batch) => {
                batch.sources.iter().for_each(|s| self.upsert_source(s));
                batch.destinations.iter().for_each(|d| self.upsert_destination(d));
                for s in &batch.subscriptions {
                    self.subscriptions.insert(s.id, s.clone());
                }
            }
            Event::SubscriptionDeleted { id } => {
                self.subscriptions.remove(id);
            }
            Event::TokenKeyCreated { key } => self.token_key = Some(*key),
            Event::MessageAccepted(a) => self.accept(self.position, a.view()),
            Event::AttemptRecorded { log_id, attempt } => {
                if let Some(log) = self.log_mut(*log_id) {
                    log.updated_at_ms = attempt.started_at_ms.saturating_add(attempt.duration_ms as i64);
                    log.push_attempt(attempt.clone());
                }
            }
            Event::LogStatusChanged { log_id, status, at_ms, reason } => {
                self.set_status(*log_id, *status, *at_ms, reason.clone())
            }
            // Only a configured destination has a queue to pause.
            Event::QueuePaused { destination_id, at_ms, reason } => {
                if let Some(queue) = self.queues.get_mut(destination_id) {
                    queue.paused = Some((*at_ms, reason.clone()));
                }
            }
            Event::QueueResumed { destination_id, .. } => {
                if let Some(queue) = self.queues.get_mut(destination_id) {
                    queue.paused = None;
                }
            }
            Event::AlertRaised(alert) => {
                self.alerts.push(KeptAlert { position: self.position, alert: alert.clone(), sent: Vec::new() })
            }
            Event::AlertChannelOpened { channel, after } => {
                self.alert_channels.insert(channel.clone(), *after);
            }
            Event::AlertChannelClosed { channel } => {
                self.alert_channels.remove(channel);
            }
            Event::AlertSent { channel, alert_position, at_ms, refused } => {
                let cursor = self.alert_channels.entry(channel.clone()).or_default();
                *cursor = (*cursor).max(*alert_position);
                if let Ok(i) = self.alerts.binary_search_by_key(alert_position, |k| k.position) {
                    let sent = AlertSend { channel: channel.clone(), at_ms: *at_ms, refused: refused.clone() };
                    self.alerts[i].sent.push(sent);
                }
            }
            Event::Snapshot(snapshot) => self.forget_before(snapshot),
        }
    }

    fn upsert_source(&mut self, s: &Source) {
        if let Some(old) = self.sources.insert(s.id, s.clone()) {
            self.api_keys.remove(&old.api_key);
        }
        self.api_keys.insert(s.api_key.clone(), s.id);
    }

    fn upsert_destination(&mut self, d: &Destination) {
        self.destinations.insert(d.id, d.clone());
        self.queues.entry(d.id).or_default();
    }

    /// A deleted destination's queue ends: a forced delete fails the logs
    /// still queued for it.
    fn end_queue(&mut self, id: Id) {
        if let Some(queue) = self.queues.remove(&id) {
            for index in queue.pending {
                if let Some(log) = self.log_at_mut(index) {
                    log.status = LogStatus::Failed;
                    log.set_reason(Some("destination deleted".into()));
                }
            }
        }
    }

    fn accept(&mut self, position: u64, a: MessageView<'_>) {
        let first_log = self.log_base + self.logs.len();
        for new in &a.logs {
            let index = self.log_base + self.logs.len();
            self.logs.push_back(Log {
                id: new.id,
                message_id: a.message_id,
                position,
                destination_id: new.destination_id,
                first_attempt_id: new.attempt_id,
                status: LogStatus::Pending,
                updated_at_ms: a.received_at_ms,
                detail: None,
            });
            self.log_index.insert(new.id, index);
            if a.log_type == LogType::Async {
                self.queues.entry(new.destination_id).or_default().pending.push_back(index);
            }
        }
        if let Some((key, body_hash)) = a.idempotency {
            let entry = Idempotent { message_id: a.message_id, position, at_ms: a.received_at_ms, body_hash };
            self.idempotency.insert((a.source_id, key.to_owned()), entry);
            self.idempotency_order.push_back((a.received_at_ms, a.source_id, key.to_owned()));
            self.forget_idempotency_before(a.received_at_ms - IDEMPOTENCY_WINDOW_MS);
        }
        self.next_message_id = self.next_message_id.max(a.message_id + 1);
        let message = Message {
            id: a.message_id,
            position,
            log_type: a.log_type,
            source_id: a.source_id,
            data_model: self.names.intern(a.data_model),
            event_type: self.names.intern(a.event_type),
            received_at_ms: a.received_at_ms,
            first_log,
            log_count: u32::try_from(a.logs.len()).unwrap_or(u32::MAX),
        };
        self.messages.insert(message);
    }

    fn set_status(&mut self, log_id: Id, status: LogStatus, at_ms: TimestampMs, reason: Option<String>) {
        let Some(index) = self.index_of(log_id) else { return };
        let Some(log) = self.log_at_mut(index) else { return };
        log.status = status;
        log.updated_at_ms = at_ms;
        log.set_reason(reason.map(String::into_boxed_str));
        let destination_id = log.destination_id;
        let Some(queue) = self.queues.get_mut(&destination_id) else { return };
        if status.is_terminal() {
            // Logs finish at the head of their queue, nearly always: O(1).
            if queue.pending.front() == Some(&index) {
                queue.pending.pop_front();
            } else {
                queue.pending.retain(|&i| i != index);
            }
        } else if queue.pending.front() != Some(&index) && !queue.pending.contains(&index) {
            // A manual retry of a terminal log: it goes next (SPEC §6).
            queue.pending.push_front(index);
        }
    }

    /// The first durable log in a destination's queue.
    pub fn queue_head(&self, destination: Id, durable: u64) -> Option<&Log> {
        let queue = self.queues.get(&destination)?;
        queue.pending.iter().filter_map(|&i| self.log_at(i)).find(|l| l.position <= durable)
    }

    fn forget_idempotency_before(&mut self, cutoff_ms: TimestampMs) {
        while let Some((at, source, key)) = self.idempotency_order.front().cloned() {
            if at >= cutoff_ms {
                break;
            }
            self.idempotency_order.pop_front();
            if self.idempotency.get(&(source, key.clone())).is_some_and(|e| e.at_ms == at) {
                self.idempotency.remove(&(source, key));
            }
        }
    }

    /// The text of an interned name.
    pub fn name(&self, name: Name) -> &Arc<str> {
        self.names.get(name)
    }

    pub fn source_by_api_key(&self, api_key: &str) -> Option<&Source> {
        self.api_keys.get(api_key).and_then(|id| self.sources.get(id))
    }

    /// The message an `Idempotency-Key` of `source` named within the window.
    pub fn idempotent(&self, source: Id, key: &str, now_ms: TimestampMs) -> Option<Idempotent> {
        self.idempotency.get(&(source, key.to_owned())).filter(|e| now_ms - e.at_ms < IDEMPOTENCY_WINDOW_MS).copied()
    }

    pub fn log(&self, id: Id) -> Option<&Log> {
        self.log_at(self.index_of(id)?)
    }

    fn log_mut(&mut self, id: Id) -> Option<&mut Log> {
        let index = self.index_of(id)?;
        self.log_at_mut(index)
    }

    fn index_of(&self, id: Id) -> Option<usize> {
        self.log_index.get(id, |n| self.log_at(n).map(|l| l.id))
    }

    /// Log number `index`, if kept.
    pub fn log_at(&self, index: usize) -> Option<&Log> {
        self.logs.get(index.checked_sub(self.log_base)?)
    }

    fn log_at_mut(&mut self, index: usize) -> Option<&mut Log> {
        self.logs.get_mut(index.checked_sub(self.log_base)?)
    }

    /// Log numbers kept: `start..end`.
    pub fn log_range(&self) -> std::ops::Range<usize> {
        self.log_base..self.log_base + self.logs.len()
    }

    /// Logs kept.
    pub fn log_count(&self) -> usize {
        self.logs.len()
    }

    /// Logs kept, oldest first.
    pub fn logs(&self) -> impl Iterator<Item = &Log> {
        self.logs.iter()
    }

    /// The subscriptions of `source` that match a data model and event type.
    pub fn matching_subscriptions<'a>(
        &'a self,
        source: Id,
        data_model: &'a str,
        event_type: &'a str,
    ) -> impl Iterator<Item = &'a Subscription> {
        self.subscriptions.values().filter(move |s| s.source_id == source && s.matches(data_model, event_type))
    }
}

/// Everything a replay must rebuild, in a comparable form.
#[cfg(test)]
#[derive(Debug, PartialEq)]
pub(crate) struct Fingerprint {
    sources: Vec<Source>,
    destinations: Vec<Destination>,
    subscriptions: Vec<Subscription>,
    token_key: Option<[u8; 32]>,
    next_message_id: u64,
    messages: Vec<(Message, Arc<str>, Arc<str>)>,
    logs: Vec<(usize, Log)>,
    queues: BTreeMap<Id, Queue>,
    idempotency: BTreeMap<(Id, String), (u64, u64, TimestampMs, BodyHash)>,
    alerts: Vec<KeptAlert>,
    alert_channels: BTreeMap<String, u64>,
    position: u64,
}

#[cfg(test)]
impl State {
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            sources: self.sources.values().cloned().collect(),
            destinations: self.destinations.values().cloned().collect(),
            subscriptions: self.subscriptions.values().cloned().collect(),
            token_key: self.token_key,
            next_message_id: self.next_message_id,
            messages: self
                .messages
                .iter()
                .map(|m| {
                    let names = (self.name(m.data_model).clone(), self.name(m.event_type).clone());
                    (Message { data_model: Name(0), event_type: Name(0), ..m.clone() }, names.0, names.1)
                })
                .collect(),
            logs: self.log_range().zip(self.logs.iter().cloned()).collect(),
            queues: self.queues.iter().map(|(k, v)| (*k, v.clone())).collect(),
            idempotency: self
                .idempotency
                .iter()
                .map(|(k, e)| (k.clone(), (e.message_id, e.position, e.at_ms, e.body_hash)))
                .collect(),
            alerts: self.alerts.clone(),
            alert_channels: self.alert_channels.clone(),
            position: self.position,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_message_records_stay_small() {
        // One of each stays in memory per pending message (README,
        // performance): a regression here costs memory at scale.
        assert!(std::mem::size_of::<Log>() <= 96, "Log is {} bytes", std::mem::size_of::<Log>());
        assert!(std::mem::size_of::<Option<Message>>() <= 64, "{}", std::mem::size_of::<Option<Message>>());
    }
}
