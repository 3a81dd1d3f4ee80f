//! What retention needs of the state (see `crate::retention`): where the
//! messages still needed begin, the snapshot of everything else, dropping
//! what a snapshot releases, and taking a snapshot back in replay.

use super::{IDEMPOTENCY_WINDOW_MS, State};
use crate::{
    journal::{KeptAlert, PausedQueue, Snapshot},
    limits,
    model::{Id, TimestampMs},
};

impl State {
    /// The position from which every message the engine must keep was
    /// accepted: the oldest message with a log not terminal, or changed at
    /// or after `retain_after_ms`, or whose idempotency key is still
    /// remembered. `None` when no message needs keeping.
    pub fn needed_from(&self, retain_after_ms: TimestampMs, now_ms: TimestampMs) -> Option<u64> {
        // Keys are in acceptance order: the first still remembered is the oldest.
        let keyed = self.idempotency_order.iter().find_map(|(at, source, key)| {
            let entry = self.idempotency.get(&(*source, key.clone()))?;
            (entry.at_ms == *at && now_ms - at < IDEMPOTENCY_WINDOW_MS).then_some(entry.position)
        });
        let needed = self
            .messages
            .iter()
            .find(|m| {
                m.logs()
                    .filter_map(|i| self.log_at(i))
                    .any(|l| !l.status.is_terminal() || l.updated_at_ms >= retain_after_ms)
            })
            .map(|m| m.position);
        match (keyed, needed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A snapshot of everything a replay from `from` cannot rebuild.
    pub fn snapshot(&self, from: u64, retain_after_ms: TimestampMs) -> Snapshot {
        let first_log_index =
            self.messages.iter().find(|m| m.position >= from).map_or(self.log_base + self.logs.len(), |m| m.first_log);
        let mut paused: Vec<PausedQueue> = self
            .queues
            .iter()
            .filter_map(|(id, q)| {
                q.paused.as_ref().map(|(at_ms, reason)| PausedQueue {
                    destination_id: *id,
                    at_ms: *at_ms,
                    reason: reason.clone(),
                })
            })
            .collect();
        paused.sort_by_key(|p| p.destination_id);
        Snapshot {
            from,
            first_log_index: first_log_index as u64,
            retain_after_ms,
            sources: self.sources.values().cloned().collect(),
            destinations: self.destinations.values().cloned().collect(),
            subscriptions: self.subscriptions.values().cloned().collect(),
            token_key: self.token_key,
            next_message_id: self.next_message_id,
            paused,
            alerts: self.kept_alerts(retain_after_ms),
            alert_channels: self.alert_channels.iter().map(|(c, p)| (c.clone(), *p)).collect(),
        }
    }

    /// Drops what a snapshot lets the journal release: messages accepted
    /// before `from` with their logs, and alerts past retention.
    pub(super) fn forget_before(&mut self, snapshot: &Snapshot) {
        while self.messages.first().is_some_and(|m| m.position < snapshot.from) {
            let Some(logs) = self.messages.drop_first() else { break };
            for _ in logs {
                if let Some(log) = self.logs.front() {
                    let id = log.id;
                    self.logs.drop_front();
                    self.log_index.remove(id, self.log_base);
                    self.log_base += 1;
                }
            }
        }
        self.alerts = self.kept_alerts(snapshot.retain_after_ms);
        let forgotten: Vec<_> =
            self.idempotency.iter().filter(|(_, e)| e.position < snapshot.from).map(|(k, _)| k.clone()).collect();
        for key in forgotten {
            self.idempotency.remove(&key);
        }
        let idempotency = &self.idempotency;
        self.idempotency_order
            .retain(|(at, source, key)| idempotency.get(&(*source, key.clone())).is_some_and(|e| e.at_ms == *at));
    }

    /// Takes everything but messages and logs from a snapshot met in replay.
    pub(super) fn restore(&mut self, snapshot: &Snapshot) {
        self.sources = snapshot.sources.iter().map(|s| (s.id, s.clone())).collect();
        self.api_keys = snapshot.sources.iter().map(|s| (s.api_key.clone(), s.id)).collect();
        self.destinations = snapshot.destinations.iter().map(|d| (d.id, d.clone())).collect();
        self.subscriptions = snapshot.subscriptions.iter().map(|s| (s.id, s.clone())).collect();
        self.token_key = snapshot.token_key;
        self.next_message_id = self.next_message_id.max(snapshot.next_message_id);
        let gone: Vec<Id> = self.queues.keys().filter(|id| !self.destinations.contains_key(id)).copied().collect();
        for id in gone {
            self.end_queue(id);
        }
        for id in self.destinations.keys() {
            self.queues.entry(*id).or_default();
        }
        for paused in &snapshot.paused {
            if let Some(queue) = self.queues.get_mut(&paused.destination_id) {
                queue.paused = Some((paused.at_ms, paused.reason.clone()));
            }
        }
        self.alerts = snapshot.alerts.clone();
        self.alert_channels = snapshot.alert_channels.iter().cloned().collect();
    }

    /// The alerts to keep: those within retention, and those a channel has
    /// yet to send (each channel gets each alert at least once), among the
    /// newest `ALERTS_UNSENT_KEPT`.
    fn kept_alerts(&self, retain_after_ms: TimestampMs) -> Vec<KeptAlert> {
        let newest = self.alerts.len().saturating_sub(limits::ALERTS_UNSENT_KEPT);
        let unsent = |k: &KeptAlert| self.alert_channels.values().any(|&done| done < k.position);
        let keep = |(i, k): &(usize, &KeptAlert)| k.alert.at_ms >= retain_after_ms || (*i >= newest && unsent(k));
        self.alerts.iter().enumerate().filter(keep).map(|(_, k)| k.clone()).collect()
    }
}
