//! Log queries for the operator API: filters and cursor paging, newest
//! first, over the logs in memory and the history, merged by log number.

use std::ops::ControlFlow;

use super::{Log, State};
use crate::{
    history::{Entry, HistoryError, Probe, key, name_hash},
    model::{Attempt, Id, LogStatus, LogType, TimestampMs},
};

/// Largest page `GET /logs` returns, whatever `limit` asks.
pub const MAX_PAGE: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    pub destination: Option<Id>,
    pub source: Option<Id>,
    pub status: Option<LogStatus>,
    pub log_type: Option<LogType>,
    pub data_model: Option<String>,
    pub event_type: Option<String>,
    /// Received at or after.
    pub since_ms: Option<TimestampMs>,
    /// Received before.
    pub until_ms: Option<TimestampMs>,
    pub limit: usize,
    /// Continue below this log number (from a previous page's cursor).
    pub before: Option<usize>,
}

/// A log as the operator API shows it, wherever it is kept. Message
/// fields are `None` only for a log whose message is missing.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// Its log number: the cursor of the page it ends.
    pub number: usize,
    pub id: Id,
    pub message_id: u64,
    /// Where its message sits in the journal (for the payload).
    pub position: u64,
    pub log_type: Option<LogType>,
    pub source_id: Option<Id>,
    pub destination_id: Id,
    pub data_model: Option<String>,
    pub event_type: Option<String>,
    pub status: LogStatus,
    pub reason: Option<String>,
    pub received_at_ms: Option<TimestampMs>,
    pub updated_at_ms: TimestampMs,
    pub attempts: Vec<Attempt>,
    /// The log it was sent again from (SPEC §13).
    pub resent_from: Option<Id>,
}

#[derive(Debug)]
pub struct LogPage {
    pub logs: Vec<LogRecord>,
    /// Number to continue below, when more logs may match.
    pub next: Option<usize>,
}

impl LogFilter {
    fn probe(&self) -> Probe {
        let mut keys = Vec::new();
        match (self.destination, self.status) {
            (Some(d), Some(s)) => keys.push(key::destination_status(d, s)),
            (Some(d), None) => keys.push(key::destination(d)),
            (None, Some(s)) => keys.push(key::status(s)),
            (None, None) => {}
        }
        keys.extend(self.source.map(key::source));
        keys.extend(self.data_model.as_deref().map(|m| key::data_model(name_hash(m))));
        keys.extend(self.event_type.as_deref().map(|e| key::event_type(name_hash(e))));
        Probe { keys, since_ms: self.since_ms, until_ms: self.until_ms }
    }

    /// Whether an entry matches on its own fields (names by hash: a match
    /// is confirmed on the row).
    fn admits(&self, e: &Entry) -> bool {
        self.destination.is_none_or(|d| d == e.destination_id)
            && self.source.is_none_or(|s| s == e.source_id)
            && self.status.is_none_or(|s| s == e.status)
            && self.log_type.is_none_or(|t| t == e.log_type)
            && self.data_model.as_deref().is_none_or(|m| name_hash(m) == e.data_model_hash)
            && self.event_type.as_deref().is_none_or(|t| name_hash(t) == e.event_type_hash)
            && self.since_ms.is_none_or(|t| e.received_at_ms >= t)
            && self.until_ms.is_none_or(|t| e.received_at_ms < t)
    }

    fn admits_names(&self, record: &LogRecord) -> bool {
        self.data_model.as_deref().is_none_or(|m| record.data_model.as_deref() == Some(m))
            && self.event_type.as_deref().is_none_or(|t| record.event_type.as_deref() == Some(t))
    }
}

impl State {
    /// Durable logs matching `filter`, newest first. Logs whose message's
    /// journal position is past `durable` are not shown.
    pub fn query_logs(&self, filter: &LogFilter, durable: u64) -> Result<LogPage, HistoryError> {
        let limit = filter.limit.clamp(1, MAX_PAGE);
        let below = filter.before.unwrap_or(self.next_log).min(self.next_log);
        let from_memory: Vec<LogRecord> = self
            .logs
            .range(..below)
            .rev()
            .filter(|(_, l)| l.created_at() <= durable && self.log_matches(l, filter))
            .take(limit)
            .map(|(n, l)| self.memory_record(*n, l))
            .collect();
        let mut from_history = Vec::new();
        let mut failure = None;
        self.history.scan(below as u64, &filter.probe(), |n, entry| {
            let index = usize::try_from(n).unwrap_or(usize::MAX);
            if entry.created_at > durable || self.in_memory(index) || !filter.admits(&entry) {
                return ControlFlow::Continue(());
            }
            let record = match self.history.row(&entry) {
                Ok(row) => self.history_record(n, &entry, row),
                Err(e) => {
                    failure = Some(e);
                    return ControlFlow::Break(());
                }
            };
            if filter.admits_names(&record) {
                from_history.push(record);
            }
            if from_history.len() == limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let mut logs = merge_newest_first(from_memory, from_history);
        logs.truncate(limit);
        let first_kept = self
            .logs
            .keys()
            .next()
            .copied()
            .unwrap_or(usize::MAX)
            .min(usize::try_from(self.history.first_visible()).unwrap_or(usize::MAX));
        let next = logs.last().map(|l| l.number).filter(|&n| logs.len() == limit && n > first_kept);
        Ok(LogPage { logs, next })
    }

    fn log_matches(&self, log: &Log, f: &LogFilter) -> bool {
        let Some(message) = self.messages.get(&log.message_id) else { return false };
        f.destination.is_none_or(|d| d == log.destination_id)
            && f.source.is_none_or(|s| s == message.source_id)
            && f.status.is_none_or(|s| s == log.status)
            && f.log_type.is_none_or(|t| t == message.log_type)
            && f.data_model.as_deref().is_none_or(|m| m == &**self.name(message.data_model))
            && f.event_type.as_deref().is_none_or(|e| e == &**self.name(message.event_type))
            && f.since_ms.is_none_or(|t| message.received_at_ms >= t)
            && f.until_ms.is_none_or(|t| message.received_at_ms < t)
    }
}

/// Two lists, each newest first, as one.
fn merge_newest_first(a: Vec<LogRecord>, b: Vec<LogRecord>) -> Vec<LogRecord> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.number > y.number,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return out,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
}
