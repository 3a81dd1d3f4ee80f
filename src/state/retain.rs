//! What retention needs of the state (see `crate::retention`): where a
//! replay must begin, where the journal's records are still needed, the
//! snapshot of everything else, and taking a snapshot back in replay.

use super::{IDEMPOTENCY_WINDOW_MS, State};
use crate::{
    history::HistoryError,
    journal::{KeptAlert, PausedQueue, Snapshot},
    limits,
    model::{Id, TimestampMs},
};

impl State {
    /// The position from which a replay rebuilds the logs in memory
    /// (idempotency keys come back from the history). `u64::MAX` when
    /// memory holds none.
    pub fn replay_floor(&self) -> u64 {
        self.messages.iter().map(|m| m.since).min().unwrap_or(u64::MAX)
    }

    /// The position from which the journal must keep every record: the
    /// oldest message with a log in memory, or changed at or after
    /// `retain_after_ms`, or whose idempotency key is still remembered.
    /// `None` when no message needs keeping.
    pub fn needed_from(&self, retain_after_ms: TimestampMs, now_ms: TimestampMs) -> Result<Option<u64>, HistoryError> {
        let keyed = self
            .idempotency
            .values()
            .filter(|e| now_ms.saturating_sub(e.at_ms) < IDEMPOTENCY_WINDOW_MS)
            .map(|e| e.position)
            .min();
        let in_memory = self.messages.iter().map(|m| m.position).min();
        let history = self.history.needed_from(retain_after_ms)?;
        Ok([keyed, in_memory, history].into_iter().flatten().min())
    }

    /// The number of the first log made (accepted or resent) at or after
    /// `position`.
    pub fn first_log_at(&self, position: u64) -> Result<u64, HistoryError> {
        let in_memory = self.logs.iter().find(|(_, l)| l.created_at() >= position).map(|(n, _)| *n as u64);
        let history = self.history.first_at(position)?;
        Ok([in_memory, history].into_iter().flatten().min().unwrap_or(self.next_log as u64))
    }

    /// A snapshot of everything a replay from `from` cannot rebuild.
    pub fn snapshot(&self, from: u64, retain_after_ms: TimestampMs) -> Result<Snapshot, HistoryError> {
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
        Ok(Snapshot {
            from,
            first_log_index: self.first_log_at(from)?,
            retain_after_ms,
            sources: self.sources.values().cloned().collect(),
            destinations: self.destinations.values().cloned().collect(),
            subscriptions: self.subscriptions.values().cloned().collect(),
            token_key: self.token_key,
            next_message_id: self.next_message_id,
            paused,
            alerts: self.kept_alerts(retain_after_ms),
            alert_channels: self.alert_channels.iter().map(|(c, p)| (c.clone(), *p)).collect(),
            audit: self.audit.iter().filter(|(_, e)| e.at_ms >= retain_after_ms).cloned().collect(),
            operators: self.operators.values().cloned().collect(),
            backlogged: self.backlogged.iter().copied().collect(),
        })
    }

    /// What a snapshot lets go: alerts and audit entries past retention.
    pub(super) fn forget_before(&mut self, snapshot: &Snapshot) {
        self.snapshot_from = snapshot.from;
        self.alerts = self.kept_alerts(snapshot.retain_after_ms);
        self.audit.retain(|(_, e)| e.at_ms >= snapshot.retain_after_ms);
    }

    /// Takes everything but messages and logs from a snapshot met in replay.
    pub(super) fn restore(&mut self, snapshot: &Snapshot) {
        self.snapshot_from = snapshot.from;
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
        self.audit = snapshot.audit.clone();
        self.operators = snapshot.operators.iter().map(|o| (o.name.clone(), o.clone())).collect();
        self.backlogged = snapshot.backlogged.iter().copied().collect();
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
