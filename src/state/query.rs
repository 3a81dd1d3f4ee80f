//! Log queries for the operator API: filters and cursor paging, newest first.

use super::{Log, State};
use crate::model::{Id, LogStatus, LogType, TimestampMs};

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
    /// Continue below this log index (from a previous page's cursor).
    pub before: Option<usize>,
}

#[derive(Debug)]
pub struct LogPage<'a> {
    pub logs: Vec<&'a Log>,
    /// Index to continue below, when more logs may match.
    pub next: Option<usize>,
}

impl State {
    /// Durable logs matching `filter`, newest first. Logs whose journal
    /// position is past `durable` are not shown.
    pub fn query_logs(&self, filter: &LogFilter, durable: u64) -> LogPage<'_> {
        let limit = filter.limit.clamp(1, MAX_PAGE);
        let mut logs = Vec::new();
        let kept = self.log_range();
        let mut index = filter.before.unwrap_or(kept.end).min(kept.end);
        while index > kept.start && logs.len() < limit {
            index -= 1;
            let Some(log) = self.log_at(index) else { break };
            if log.position <= durable && self.log_matches(log, filter) {
                logs.push(log);
            }
        }
        let next = (logs.len() == limit && index > kept.start).then_some(index);
        LogPage { logs, next }
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
