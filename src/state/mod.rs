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

mod accept;
mod keys;
mod log;
mod query;
mod retain;
mod settle;
mod tables;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::Arc,
};

pub use self::keys::Idempotent;
pub use self::log::Log;
use self::log::LogDetail;
pub use self::query::{LogFilter, LogPage, LogRecord, MAX_PAGE};
use self::tables::{Interner, LogIndex};
pub use self::tables::{Messages, Name};
use crate::{
    history::{History, KeyHash},
    journal::{AlertSend, Event, KeptAlert, Replayed, Snapshot},
    model::{
        AlertKind, AuditEntry, Destination, Id, LogStatus, LogType, OperatorRecord, Source, Subscription, TimestampMs,
    },
};

/// How long an `Idempotency-Key` is remembered (SPEC §3: 24 h).
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// Who delivers a destination in cluster mode, as the journal says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taker {
    pub node: String,
    /// The lease revision it was taken at.
    pub epoch: u64,
}

/// The engine's state. Memory holds the work in hand: logs not yet ended,
/// and ended ones until their end is durable. Every ended log is in the
/// history on disk (`crate::history`), which the state owns and writes as
/// part of the same fold.
#[derive(Debug)]
pub struct State {
    pub sources: BTreeMap<Id, Source>,
    api_keys: HashMap<String, Id>,
    pub destinations: BTreeMap<Id, Destination>,
    pub subscriptions: BTreeMap<Id, Subscription>,
    pub token_key: Option<[u8; 32]>,
    /// The ID the next accepted message gets.
    pub next_message_id: u64,
    /// Messages with a log in memory.
    pub messages: Messages,
    names: Interner,
    /// Logs in memory by log number. Every log is numbered as it is
    /// accepted, densely and in acceptance order; a replay numbers them
    /// the same way (from the snapshot's `first_log_index`).
    logs: BTreeMap<usize, Log>,
    /// The number the next log gets.
    next_log: usize,
    /// Log numbers by ID, of the logs in memory: see `LogIndex`.
    log_index: LogIndex,
    /// Logs ended in memory, by the journal position that ended them: each
    /// goes to the history once that position is durable.
    ending: VecDeque<(u64, usize)>,
    /// Logs in memory by status (`LogStatus as usize`).
    memory_counts: [u64; 6],
    /// Logs brought back from the history, by their status there: counted
    /// in memory, not again in the history.
    shadowed_counts: [u64; 6],
    history: History,
    /// Why the history could not give back a log it should hold, if it
    /// could not: a replay that meets this rebuilds the history.
    pub history_failure: Option<String>,
    pub queues: HashMap<Id, Queue>,
    /// Idempotency keys of the last 24 hours, hashed (`history::key_hash`):
    /// also on disk, in the history.
    idempotency: HashMap<KeyHash, Idempotent>,
    /// Keys in acceptance order, to forget them when their window ends.
    idempotency_order: VecDeque<(TimestampMs, KeyHash)>,
    /// The position of the last key remembered: a replay meeting a key
    /// the history gave back does not remember it twice.
    last_key_position: u64,
    /// Alerts kept, in the order raised, with how each channel sent them.
    pub alerts: Vec<KeptAlert>,
    /// The audit trail within retention, oldest first, with the positions
    /// its entries were journaled at.
    pub audit: Vec<(u64, AuditEntry)>,
    /// Each alert channel and the position of the last alert it is done
    /// with (sent, or refused for good).
    pub alert_channels: BTreeMap<String, u64>,
    /// Operators made through the operator API, by name.
    pub operators: BTreeMap<String, OperatorRecord>,
    /// Destinations with a `QueueBacklog` alert not yet followed by a
    /// `QueueRecovered` (SPEC §14).
    pub backlogged: BTreeSet<Id>,
    /// In cluster mode: the node and lease epoch of each destination's last
    /// takeover (`Event::DeliveryTaken`) folded, which alone may record the
    /// destination's outcomes. Not in snapshots: every node records its own
    /// takeover before it delivers.
    pub takers: HashMap<Id, Taker>,
    /// Position of the last event applied.
    pub position: u64,
    /// The `from` of the last snapshot applied.
    pub snapshot_from: u64,
    /// While replaying after a snapshot: its position. Events before it
    /// touch messages and logs only.
    replay_snapshot_at: Option<u64>,
    /// Journal records the start replayed (`ferrox_start_replayed_records`).
    pub replayed_at_start: u64,
}

impl Default for State {
    /// A state with a history in a temporary directory.
    fn default() -> Self {
        Self::new(History::temporary())
    }
}

/// An accepted message with a log in memory. Its body stays in the
/// journal. Kept small, since one stays in memory per message (see
/// `Interner`).
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
    /// Its logs in memory.
    pub logs_in_memory: u32,
    /// A replay from here rebuilds its logs in memory: where it was
    /// accepted, or where an operator brought a log of it back from the
    /// history.
    pub since: u64,
}

/// A destination's queue: its non-terminal logs in acceptance order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Queue {
    pub pending: VecDeque<usize>,
    /// Set while an operator has paused the destination: when and why.
    pub paused: Option<(TimestampMs, String)>,
}

impl State {
    /// A state with `history`, remembering the idempotency keys it holds.
    pub fn new(mut history: History) -> Self {
        let keys = history.take_loaded_keys();
        let mut state = Self {
            sources: BTreeMap::new(),
            api_keys: HashMap::new(),
            destinations: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            token_key: None,
            next_message_id: 0,
            messages: Messages::default(),
            names: Interner::default(),
            logs: BTreeMap::new(),
            next_log: 0,
            log_index: LogIndex::default(),
            ending: VecDeque::new(),
            memory_counts: [0; 6],
            shadowed_counts: [0; 6],
            history,
            history_failure: None,
            queues: HashMap::new(),
            idempotency: HashMap::new(),
            idempotency_order: VecDeque::new(),
            last_key_position: 0,
            alerts: Vec::new(),
            audit: Vec::new(),
            alert_channels: BTreeMap::new(),
            operators: BTreeMap::new(),
            backlogged: BTreeSet::new(),
            takers: HashMap::new(),
            position: 0,
            snapshot_from: 0,
            replay_snapshot_at: None,
            replayed_at_start: 0,
        };
        for key in keys {
            state.remember_key(key);
        }
        state
    }

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
        self.next_log = usize::try_from(snapshot.first_log_index).unwrap_or(usize::MAX);
    }

    /// Prepares a replay whose first log gets number `first_log`.
    pub fn begin_replay_at(&mut self, first_log: u64) {
        self.next_log = usize::try_from(first_log).unwrap_or(usize::MAX);
    }

    /// A replay is over.
    pub fn end_replay(&mut self) {
        self.history.rebuilt();
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
            // Resent logs are made like accepted ones, before the snapshot too.
            Replayed::Event(Event::LogsResent(resent)) => return self.resend(position, &resent),
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
            Event::Audited(entry) => self.audit.push((self.position, entry.clone())),
            Event::LogsResent(resent) => self.resend(self.position, resent),
            Event::OperatorUpserted(o) => {
                self.operators.insert(o.name.clone(), o.clone());
            }
            Event::OperatorDeleted { name } => {
                self.operators.remove(name);
            }
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
                self.backlogged.remove(id);
                self.takers.remove(id);
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
                let position = self.position;
                if let Some(log) = self.log_mut(*log_id) {
                    log.updated_at_ms = attempt.started_at_ms.saturating_add(attempt.duration_ms as i64);
                    log.push_attempt(position, attempt.clone());
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
                match alert.kind {
                    AlertKind::QueueBacklog => {
                        self.backlogged.insert(alert.destination_id);
                    }
                    AlertKind::QueueRecovered if alert.log_id.is_none() => {
                        self.backlogged.remove(&alert.destination_id);
                    }
                    _ => {}
                }
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
            Event::DeliveryTaken { destination_id, node, epoch } => {
                self.takers.insert(*destination_id, Taker { node: node.clone(), epoch: *epoch });
            }
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
                let position = self.position;
                let Some(log) = self.logs.get_mut(&index) else { continue };
                let old = std::mem::replace(&mut log.status, LogStatus::Failed);
                log.set_reason(Some("destination deleted".into()));
                log.ended_at = position;
                self.memory_counts[old as usize] -= 1;
                self.memory_counts[LogStatus::Failed as usize] += 1;
                self.ending.push_back((position, index));
            }
        }
    }

    fn set_status(&mut self, log_id: Id, status: LogStatus, at_ms: TimestampMs, reason: Option<String>) {
        let index = match self.index_of(log_id) {
            Some(index) => index,
            // A log brought back from the history by an operator.
            None => match self.revive(log_id) {
                Some(index) => index,
                None => return,
            },
        };
        let position = self.position;
        let Some(log) = self.logs.get_mut(&index) else { return };
        let old = std::mem::replace(&mut log.status, status);
        log.updated_at_ms = at_ms;
        log.set_reason(reason.map(String::into_boxed_str));
        log.ended_at = if status.is_terminal() { position } else { 0 };
        self.memory_counts[old as usize] -= 1;
        self.memory_counts[status as usize] += 1;
        let destination_id = log.destination_id;
        if status.is_terminal() {
            self.ending.push_back((position, index));
        }
        if status.is_terminal() {
            let Some(queue) = self.queues.get_mut(&destination_id) else { return };
            // Logs finish at the head of their queue, nearly always: O(1).
            if queue.pending.front() == Some(&index) {
                queue.pending.pop_front();
            } else {
                queue.pending.retain(|&i| i != index);
            }
            return;
        }
        // A replay may meet a retry before the snapshot that holds the
        // destination: its queue begins here, as an accepted log's does.
        let queue = self.queues.entry(destination_id).or_default();
        if queue.pending.front() != Some(&index) && !queue.pending.contains(&index) {
            // A manual retry of a terminal log: it goes next (SPEC §6).
            queue.pending.push_front(index);
        }
    }

    /// The first durable log in a destination's queue.
    pub fn queue_head(&self, destination: Id, durable: u64) -> Option<&Log> {
        let queue = self.queues.get(&destination)?;
        queue.pending.iter().filter_map(|i| self.logs.get(i)).find(|l| l.created_at() <= durable)
    }

    /// The lanes of a destination's queue whose head is `Retrying` or
    /// `ProcessingFailed` (SPEC §18): only a lane's head is ever attempted,
    /// so these are its blocked logs, among the first `LANE_SCAN` (past
    /// them no lane starts).
    pub fn lanes_blocked(&self, destination: Id) -> usize {
        let Some(queue) = self.queues.get(&destination) else { return 0 };
        let blocked = |l: &&Log| matches!(l.status, LogStatus::Retrying | LogStatus::ProcessingFailed);
        let laned = self.destinations.get(&destination).is_some_and(|d| d.fifo_key.is_some());
        let scanned = if laned { crate::limits::LANE_SCAN } else { 1 };
        queue.pending.iter().take(scanned).filter_map(|&i| self.logs.get(&i)).filter(blocked).count()
    }

    /// When a log joined its queue: when its message was received, or
    /// when it was resent. `None` if its message is not in memory.
    pub fn queued_at(&self, log: &Log) -> Option<TimestampMs> {
        log.resent_at_ms().or_else(|| self.messages.get(&log.message_id).map(|m| m.received_at_ms))
    }

    /// The text of an interned name.
    pub fn name(&self, name: Name) -> &Arc<str> {
        self.names.get(name)
    }

    pub fn source_by_api_key(&self, api_key: &str) -> Option<&Source> {
        self.api_keys.get(api_key).and_then(|id| self.sources.get(id))
    }

    /// Log `id`, if it is in memory (not ended, or ended moments ago). An
    /// ended log is found with `find_log`.
    pub fn log(&self, id: Id) -> Option<&Log> {
        self.log_at(self.index_of(id)?)
    }

    fn log_mut(&mut self, id: Id) -> Option<&mut Log> {
        let index = self.index_of(id)?;
        self.logs.get_mut(&index)
    }

    fn index_of(&self, id: Id) -> Option<usize> {
        self.log_index.get(id, |n| self.logs.get(&n).map(|l| l.id))
    }

    /// Log number `index`, if in memory.
    pub fn log_at(&self, index: usize) -> Option<&Log> {
        self.logs.get(&index)
    }

    /// Logs in memory.
    pub fn logs_in_memory(&self) -> usize {
        self.logs.len()
    }

    /// Logs in memory, oldest first, with their numbers.
    pub fn memory_logs(&self) -> impl DoubleEndedIterator<Item = (usize, &Log)> {
        self.logs.iter().map(|(n, l)| (*n, l))
    }

    /// Logs kept (in memory, or in the history within retention) with
    /// `status`: kept as the state changes, so reading it is O(1).
    pub fn log_count(&self, status: LogStatus) -> u64 {
        let i = status as usize;
        (self.memory_counts[i] + self.history.count(status)).saturating_sub(self.shadowed_counts[i])
    }

    /// The history store.
    pub fn history(&self) -> &History {
        &self.history
    }

    pub(crate) fn history_mut(&mut self) -> &mut History {
        &mut self.history
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

#[cfg(test)]
mod fingerprint;
#[cfg(test)]
pub(crate) use self::fingerprint::Fingerprint;

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
