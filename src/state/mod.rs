//! Engine state: a fold over journal events. The router applies each event
//! as it appends it, in log order; after a restart the same fold over the
//! replayed log rebuilds the same state.
//!
//! An entry is *durable* once the journal has synced its position. Readers
//! outside the router act only on durable messages, logs and alerts (see
//! `durable` arguments), so no message is shown or delivered before it is
//! durable. A log's status changes are shown as recorded; the ledger's
//! flusher syncs them within milliseconds.

mod query;

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::Arc,
};

pub use self::query::{LogFilter, LogPage};
use crate::{
    journal::{Accepted, Alert, ArchivedEvent, Attempt, Event, NewLog, decode},
    model::{Destination, Id, LogStatus, LogType, Source, Subscription, TimestampMs},
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
    /// Every log, in acceptance order.
    logs: Vec<Log>,
    log_index: HashMap<Id, usize>,
    pub queues: HashMap<Id, Queue>,
    idempotency: HashMap<(Id, String), Idempotent>,
    idempotency_order: VecDeque<(TimestampMs, Id, String)>,
    pub alerts: Vec<(u64, Alert)>,
    /// Position of the last event applied.
    pub position: u64,
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
    pub data_model: Arc<str>,
    pub event_type: Arc<str>,
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

/// Messages by ID. IDs are dense from 1 (the router assigns them in
/// order), so a vector indexed by `id - 1` serves.
#[derive(Debug, Default)]
pub struct Messages(Vec<Option<Message>>);

impl Messages {
    pub fn get(&self, id: &u64) -> Option<&Message> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        self.0.get(index)?.as_ref()
    }

    fn insert(&mut self, message: Message) {
        let Some(index) = message.id.checked_sub(1).and_then(|i| usize::try_from(i).ok()) else { return };
        if self.0.len() <= index {
            self.0.resize(index + 1, None);
        }
        self.0[index] = Some(message);
    }
}

/// One shared copy of each data model and event type name.
#[derive(Debug, Default)]
struct Interner(HashSet<Arc<str>>);

impl Interner {
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.0.get(name) {
            return known.clone();
        }
        let name: Arc<str> = Arc::from(name);
        self.0.insert(name.clone());
        name
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
    pub attempts: Vec<Attempt>,
    /// Why the log is in its status, when an operator or a failure says so.
    pub reason: Option<Box<str>>,
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
}

/// The parts of an accepted message the state keeps (the payload stays in
/// the journal).
struct AcceptedMeta<'a> {
    message_id: u64,
    log_type: LogType,
    source_id: Id,
    data_model: &'a str,
    event_type: &'a str,
    received_at_ms: TimestampMs,
    idempotency_key: Option<&'a str>,
    logs: Vec<NewLog>,
}

impl State {
    /// Applies an event the router has just appended at `position`.
    pub fn apply(&mut self, position: u64, event: &Event) {
        self.position = position;
        match event {
            Event::MessageAccepted(a) => self.accept(position, meta_of(a)),
            other => self.apply_config_or_delivery(other),
        }
    }

    /// Applies an event read back from the journal.
    pub fn apply_archived(&mut self, position: u64, event: &ArchivedEvent) -> Result<(), String> {
        self.position = position;
        if let ArchivedEvent::MessageAccepted(a) = event {
            let logs = a
                .logs
                .iter()
                .map(|l| NewLog {
                    id: (&l.id).into(),
                    attempt_id: (&l.attempt_id).into(),
                    destination_id: (&l.destination_id).into(),
                })
                .collect();
            let log_type = rkyv::deserialize::<LogType, rkyv::rancor::Error>(&a.log_type).map_err(|e| e.to_string())?;
            let meta = AcceptedMeta {
                message_id: a.message_id.to_native(),
                log_type,
                source_id: (&a.source_id).into(),
                data_model: a.data_model.as_str(),
                event_type: a.event_type.as_str(),
                received_at_ms: a.received_at_ms.to_native(),
                idempotency_key: a.idempotency_key.as_ref().map(|k| k.as_str()),
                logs,
            };
            self.accept(position, meta);
        } else {
            self.apply_config_or_delivery(&decode(event)?);
        }
        Ok(())
    }

    fn apply_config_or_delivery(&mut self, event: &Event) {
        match event {
            Event::SourceUpserted(s) => {
                if let Some(old) = self.sources.insert(s.id, s.clone()) {
                    self.api_keys.remove(&old.api_key);
                }
                self.api_keys.insert(s.api_key.clone(), s.id);
            }
            Event::SourceDeleted { id } => {
                if let Some(old) = self.sources.remove(id) {
                    self.api_keys.remove(&old.api_key);
                }
                self.subscriptions.retain(|_, s| s.source_id != *id);
            }
            Event::DestinationUpserted(d) => {
                self.destinations.insert(d.id, d.clone());
                self.queues.entry(d.id).or_default();
            }
            Event::DestinationDeleted { id } => {
                self.destinations.remove(id);
                self.subscriptions.retain(|_, s| s.destination_id != *id);
                // A forced delete ends the logs still queued for it.
                if let Some(queue) = self.queues.remove(id) {
                    for index in queue.pending {
                        let log = &mut self.logs[index];
                        log.status = LogStatus::Failed;
                        log.reason = Some("destination deleted".into());
                    }
                }
            }
            Event::SubscriptionUpserted(s) => {
                self.subscriptions.insert(s.id, s.clone());
            }
            Event::SubscriptionDeleted { id } => {
                self.subscriptions.remove(id);
            }
            Event::TokenKeyCreated { key } => self.token_key = Some(*key),
            Event::MessageAccepted(a) => self.accept(self.position, meta_of(a)),
            Event::AttemptRecorded { log_id, attempt } => {
                if let Some(log) = self.log_mut(*log_id) {
                    log.updated_at_ms = attempt.started_at_ms.saturating_add(attempt.duration_ms as i64);
                    log.attempts.push(attempt.clone());
                }
            }
            Event::LogStatusChanged { log_id, status, at_ms, reason } => {
                self.set_status(*log_id, *status, *at_ms, reason.clone())
            }
            Event::QueuePaused { destination_id, at_ms, reason } => {
                self.queues.entry(*destination_id).or_default().paused = Some((*at_ms, reason.clone()));
            }
            Event::QueueResumed { destination_id, .. } => {
                self.queues.entry(*destination_id).or_default().paused = None;
            }
            Event::AlertRaised(alert) => self.alerts.push((self.position, alert.clone())),
        }
    }

    fn accept(&mut self, position: u64, a: AcceptedMeta<'_>) {
        let first_log = self.logs.len();
        for new in &a.logs {
            let index = self.logs.len();
            self.logs.push(Log {
                id: new.id,
                message_id: a.message_id,
                position,
                destination_id: new.destination_id,
                first_attempt_id: new.attempt_id,
                status: LogStatus::Pending,
                updated_at_ms: a.received_at_ms,
                attempts: Vec::new(),
                reason: None,
            });
            self.log_index.insert(new.id, index);
            if a.log_type == LogType::Async {
                self.queues.entry(new.destination_id).or_default().pending.push_back(index);
            }
        }
        if let Some(key) = a.idempotency_key {
            let entry = Idempotent { message_id: a.message_id, position, at_ms: a.received_at_ms };
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
        let Some(&index) = self.log_index.get(&log_id) else { return };
        let log = &mut self.logs[index];
        log.status = status;
        log.updated_at_ms = at_ms;
        log.reason = reason.map(String::into_boxed_str);
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
        queue.pending.iter().filter_map(|&i| self.logs.get(i)).find(|l| l.position <= durable)
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

    pub fn source_by_api_key(&self, api_key: &str) -> Option<&Source> {
        self.api_keys.get(api_key).and_then(|id| self.sources.get(id))
    }

    /// The message an `Idempotency-Key` of `source` named within the window.
    pub fn idempotent(&self, source: Id, key: &str, now_ms: TimestampMs) -> Option<Idempotent> {
        self.idempotency.get(&(source, key.to_owned())).filter(|e| now_ms - e.at_ms < IDEMPOTENCY_WINDOW_MS).copied()
    }

    pub fn log(&self, id: Id) -> Option<&Log> {
        self.log_index.get(&id).map(|&i| &self.logs[i])
    }

    fn log_mut(&mut self, id: Id) -> Option<&mut Log> {
        self.log_index.get(&id).map(|&i| &mut self.logs[i])
    }

    pub fn log_at(&self, index: usize) -> Option<&Log> {
        self.logs.get(index)
    }

    pub fn log_count(&self) -> usize {
        self.logs.len()
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

fn meta_of(a: &Accepted) -> AcceptedMeta<'_> {
    AcceptedMeta {
        message_id: a.message_id,
        log_type: a.log_type,
        source_id: a.source_id,
        data_model: &a.data_model,
        event_type: &a.event_type,
        received_at_ms: a.received_at_ms,
        idempotency_key: a.idempotency_key.as_deref(),
        logs: a.logs.clone(),
    }
}
