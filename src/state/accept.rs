//! Logs coming into being: accepted with their message, or resent by an
//! operator (SPEC §13). Each gets the next log number, so numbers follow
//! the journal's order.

use super::{Log, LogDetail, Message, State};
use crate::{
    history::{StoredKey, key_hash},
    journal::{MessageView, Resent},
    model::{LogStatus, LogType},
};

impl State {
    pub(super) fn accept(&mut self, position: u64, a: MessageView<'_>) {
        for new in &a.logs {
            let index = self.next_log;
            self.next_log += 1;
            self.logs.insert(
                index,
                Log {
                    id: new.id,
                    message_id: a.message_id,
                    position,
                    destination_id: new.destination_id,
                    first_attempt_id: new.attempt_id,
                    status: LogStatus::Pending,
                    updated_at_ms: a.received_at_ms,
                    ended_at: 0,
                    detail: None,
                },
            );
            self.memory_counts[LogStatus::Pending as usize] += 1;
            self.log_index.insert(new.id, index);
            if a.log_type == LogType::Async {
                self.queues.entry(new.destination_id).or_default().pending.push_back(index);
            }
        }
        if let Some((key, body_hash)) = a.idempotency
            && position > self.last_key_position
        {
            let key = StoredKey {
                key: key_hash(a.source_id, key),
                body_hash,
                position,
                message_id: a.message_id,
                at_ms: a.received_at_ms,
            };
            self.history.put_key(&key);
            self.remember_key(key);
        }
        self.next_message_id = self.next_message_id.max(a.message_id + 1);
        if a.logs.is_empty() {
            return;
        }
        let message = Message {
            id: a.message_id,
            position,
            log_type: a.log_type,
            source_id: a.source_id,
            data_model: self.names.intern(a.data_model),
            event_type: self.names.intern(a.event_type),
            received_at_ms: a.received_at_ms,
            logs_in_memory: u32::try_from(a.logs.len()).unwrap_or(u32::MAX),
            since: position,
        };
        self.messages.insert(message);
    }

    /// Makes resent logs: new logs of old messages, at the tail of their
    /// destination's queue. Each message comes back to memory if it left.
    pub(super) fn resend(&mut self, position: u64, r: &Resent) {
        for l in &r.logs {
            let index = self.next_log;
            self.next_log += 1;
            let detail = LogDetail { resent: Some((l.resent_from, position, r.at_ms)), ..LogDetail::default() };
            self.logs.insert(
                index,
                Log {
                    id: l.id,
                    message_id: l.message_id,
                    position: l.message_position,
                    destination_id: r.destination_id,
                    first_attempt_id: l.attempt_id,
                    status: LogStatus::Pending,
                    updated_at_ms: r.at_ms,
                    ended_at: 0,
                    detail: Some(Box::new(detail)),
                },
            );
            self.memory_counts[LogStatus::Pending as usize] += 1;
            self.log_index.insert(l.id, index);
            if l.log_type == LogType::Async {
                self.queues.entry(r.destination_id).or_default().pending.push_back(index);
            }
            match self.messages.get_mut(&l.message_id) {
                Some(message) => message.logs_in_memory += 1,
                None => {
                    let message = Message {
                        id: l.message_id,
                        position: l.message_position,
                        log_type: l.log_type,
                        source_id: l.source_id,
                        data_model: self.names.intern(&l.data_model),
                        event_type: self.names.intern(&l.event_type),
                        received_at_ms: l.received_at_ms,
                        logs_in_memory: 1,
                        since: position,
                    };
                    self.messages.insert(message);
                }
            }
        }
    }
}
