//! Between memory and the history: ended logs leave memory for the history
//! once their end is durable, and a log an operator retries comes back.

use super::{Log, LogDetail, LogRecord, Message, State};
use crate::{
    history::{Entry, HistoryError, Row, name_hash},
    model::{Id, LogStatus},
};

impl State {
    /// Moves the logs whose ending event is at or below `durable` from
    /// memory to the history. The ledger calls it as durability advances;
    /// a replay, after every event. A table entry's `ended_at` tells which
    /// ending it holds, so writing is idempotent across replays.
    pub fn settle(&mut self, durable: u64) -> Result<(), HistoryError> {
        while let Some(&(position, index)) = self.ending.front() {
            if position > durable {
                break;
            }
            // Retried since, or ended again later: not this ending.
            let Some(log) = self.logs.get(&index).filter(|l| l.ended_at == position) else {
                self.ending.pop_front();
                continue;
            };
            // A replay meets endings the history holds already, for good
            // (at or below its checkpoint); those it leaves alone. Any other,
            // it writes: a history entry past the checkpoint may point at a
            // row that a crash lost, and one from before this ending is older.
            let stored = self.history.stored(index as u64)?;
            let covered =
                stored.is_some_and(|e| e.ended_at >= position && e.ended_at <= self.history.checkpointed_through());
            if !covered {
                // On failure the log stays in memory, to be tried again.
                let (entry, row) = self.history_form(log)?;
                self.history.put(index as u64, entry, &row)?;
            }
            self.ending.pop_front();
            self.forget(index);
        }
        Ok(())
    }

    /// Drops log number `index` from memory, with its message once it has
    /// no other log there.
    fn forget(&mut self, index: usize) {
        let Some(log) = self.logs.remove(&index) else { return };
        self.log_index.remove(log.id, index);
        self.memory_counts[log.status as usize] -= 1;
        if let Some(shadowed) = log.detail.as_ref().and_then(|d| d.shadowed) {
            self.shadowed_counts[shadowed as usize] -= 1;
        }
        if let Some(message) = self.messages.get_mut(&log.message_id) {
            message.logs_in_memory = message.logs_in_memory.saturating_sub(1);
            if message.logs_in_memory == 0 {
                self.messages.remove(&log.message_id);
            }
        }
    }

    /// An ended log as the history keeps it.
    fn history_form(&self, log: &Log) -> Result<(Entry, Row), HistoryError> {
        let message = self
            .messages
            .get(&log.message_id)
            .ok_or_else(|| HistoryError::Damaged(format!("log {} ended without its message in memory", log.id)))?;
        let (data_model, event_type) = (self.name(message.data_model), self.name(message.event_type));
        let entry = Entry {
            id: log.id,
            destination_id: log.destination_id,
            source_id: message.source_id,
            position: log.position,
            message_id: log.message_id,
            received_at_ms: message.received_at_ms,
            updated_at_ms: log.updated_at_ms,
            row: 0,
            data_model_hash: name_hash(data_model),
            event_type_hash: name_hash(event_type),
            ended_at: log.ended_at,
            status: log.status,
            log_type: message.log_type,
            created_at: log.created_at(),
        };
        let detail = log.detail.as_deref();
        let attempts = detail
            .map_or_else(Vec::new, |d| d.attempt_positions.iter().copied().zip(d.attempts.iter().cloned()).collect());
        let row = Row {
            id: log.id,
            first_attempt_id: log.first_attempt_id,
            status: log.status,
            log_type: message.log_type,
            updated_at_ms: log.updated_at_ms,
            data_model: data_model.to_string(),
            event_type: event_type.to_string(),
            reason: log.reason().map(str::to_owned),
            attempts,
            resent_from: log.resent_from(),
        };
        Ok((entry, row))
    }

    /// Brings log `id` back from the history into memory, as it was
    /// before the event being applied now; returns its number.
    pub(super) fn revive(&mut self, id: Id) -> Option<usize> {
        let found = self.history.find(id).and_then(|f| {
            let Some((n, entry)) = f else { return Ok(None) };
            Ok(Some((n, self.history.row(&entry)?, entry)))
        });
        let (n, row, entry) = match found {
            Ok(Some(found)) => found,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(log_id = %id, error = %e, "an ended log could not be read back from the history");
                self.history_failure = Some(e.to_string());
                return None;
            }
        };
        let index = usize::try_from(n).ok()?;
        // A replay may meet the retry before the history's later state:
        // only attempts recorded before it count.
        let (attempt_positions, attempts) = row.attempts.into_iter().filter(|(p, _)| *p < self.position).unzip();
        let detail = LogDetail {
            attempts,
            attempt_positions,
            reason: row.reason.map(String::into_boxed_str),
            shadowed: Some(entry.status),
            // A resent log comes back from the history only once it has
            // ended, so when it joined its queue no longer matters.
            resent: row.resent_from.map(|from| (from, entry.created_at, entry.updated_at_ms)),
        };
        let log = Log {
            id,
            message_id: entry.message_id,
            position: entry.position,
            destination_id: entry.destination_id,
            first_attempt_id: row.first_attempt_id,
            status: entry.status,
            updated_at_ms: entry.updated_at_ms,
            ended_at: 0,
            detail: Some(Box::new(detail)),
        };
        match self.messages.get_mut(&entry.message_id) {
            Some(message) => message.logs_in_memory += 1,
            None => {
                let message = Message {
                    id: entry.message_id,
                    position: entry.position,
                    log_type: entry.log_type,
                    source_id: entry.source_id,
                    data_model: self.names.intern(&row.data_model),
                    event_type: self.names.intern(&row.event_type),
                    received_at_ms: entry.received_at_ms,
                    logs_in_memory: 1,
                    since: self.position,
                };
                self.messages.insert(message);
            }
        }
        self.memory_counts[entry.status as usize] += 1;
        self.shadowed_counts[entry.status as usize] += 1;
        self.log_index.insert(id, index);
        self.logs.insert(index, log);
        Some(index)
    }

    /// What the API shows of a log in memory.
    pub(super) fn memory_record(&self, index: usize, log: &Log) -> LogRecord {
        let message = self.messages.get(&log.message_id);
        LogRecord {
            number: index,
            id: log.id,
            message_id: log.message_id,
            position: log.position,
            log_type: message.map(|m| m.log_type),
            source_id: message.map(|m| m.source_id),
            destination_id: log.destination_id,
            data_model: message.map(|m| self.name(m.data_model).to_string()),
            event_type: message.map(|m| self.name(m.event_type).to_string()),
            status: log.status,
            reason: log.reason().map(str::to_owned),
            received_at_ms: message.map(|m| m.received_at_ms),
            updated_at_ms: log.updated_at_ms,
            attempts: log.attempts().to_vec(),
            resent_from: log.resent_from(),
        }
    }

    /// What the API shows of an ended log in the history.
    pub(super) fn history_record(&self, n: u64, entry: &Entry, row: Row) -> LogRecord {
        LogRecord {
            number: usize::try_from(n).unwrap_or(usize::MAX),
            id: entry.id,
            message_id: entry.message_id,
            position: entry.position,
            log_type: Some(entry.log_type),
            source_id: Some(entry.source_id),
            destination_id: entry.destination_id,
            data_model: Some(row.data_model),
            event_type: Some(row.event_type),
            status: entry.status,
            reason: row.reason,
            received_at_ms: Some(entry.received_at_ms),
            updated_at_ms: entry.updated_at_ms,
            attempts: row.attempts.into_iter().map(|(_, a)| a).collect(),
            resent_from: row.resent_from,
        }
    }

    /// Log `id` as the API shows it, from memory or the history, if its
    /// message is durable (at or below `durable`).
    pub fn find_log(&self, id: Id, durable: u64) -> Result<Option<LogRecord>, HistoryError> {
        if let Some(index) = self.index_of(id) {
            let log = &self.logs[&index];
            return Ok((log.created_at() <= durable).then(|| self.memory_record(index, log)));
        }
        let Some((n, entry)) = self.history.find(id)? else { return Ok(None) };
        if entry.created_at > durable {
            return Ok(None);
        }
        let row = self.history.row(&entry)?;
        Ok(Some(self.history_record(n, &entry, row)))
    }

    /// Whether log `index` is one the history keeps for good: no log
    /// still in memory shadows it.
    pub(super) fn in_memory(&self, index: usize) -> bool {
        self.logs.contains_key(&index)
    }

    /// The status a log has, wherever it is kept.
    pub fn log_status(&self, id: Id) -> Result<Option<(Id, LogStatus)>, HistoryError> {
        if let Some(log) = self.log(id) {
            return Ok(Some((log.destination_id, log.status)));
        }
        Ok(self.history.find(id)?.map(|(_, e)| (e.destination_id, e.status)))
    }
}
