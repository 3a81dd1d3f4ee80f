//! Threshold alerts (SPEC §14): a destination may set `alert_depth`
//! (pending logs) and `alert_age_ms` (how long its oldest pending log has
//! waited). Crossing either raises one `QueueBacklog`; falling back under
//! both raises `QueueRecovered`. Once per episode: the state keeps which
//! queues are backlogged (`State::backlogged`, in snapshots), so a restart
//! neither repeats nor forgets an episode.
//!
//! A watcher looks at every queue with a threshold each
//! `limits::BACKLOG_CHECK_MS`, under the state's read lock, in O(1) per
//! queue: its depth, and its head's age (a queue is in the order its logs
//! joined it: a retried log goes first and is older than the rest, a
//! resent one last and newer).

use std::time::Duration;

use crate::{
    clock::SharedClock,
    ids::SharedIds,
    journal::Event,
    ledger::Ledger,
    limits,
    model::{Alert, AlertKind, Id, TimestampMs},
    state::State,
};

/// What a look at the queues calls for: the alerts to raise.
pub fn check(state: &State, now_ms: TimestampMs, ids: &dyn crate::ids::IdSource) -> Vec<Event> {
    let mut events = Vec::new();
    for d in state.destinations.values() {
        let backlogged = state.backlogged.contains(&d.id);
        if d.alert_depth.is_none() && d.alert_age_ms.is_none() && !backlogged {
            continue;
        }
        let queue = state.queues.get(&d.id);
        let depth = queue.map_or(0, |q| q.pending.len()) as u64;
        let head = queue.and_then(|q| q.pending.front()).and_then(|&i| state.log_at(i));
        let age = head.and_then(|h| state.queued_at(h)).map_or(0, |at| now_ms.saturating_sub(at).max(0) as u64);
        let deep = d.alert_depth.is_some_and(|limit| depth >= limit);
        let old = d.alert_age_ms.is_some_and(|limit| age >= limit);
        let raise = |kind: AlertKind, log_id: Option<Id>, text: String| {
            Event::AlertRaised(Alert { id: ids.id(), kind, destination_id: d.id, log_id, at_ms: now_ms, text })
        };
        let limits = format!(
            "alert_depth {}, alert_age_ms {}",
            d.alert_depth.map_or("none".to_owned(), |v| v.to_string()),
            d.alert_age_ms.map_or("none".to_owned(), |v| v.to_string())
        );
        if (deep || old) && !backlogged {
            let text = format!(
                "{depth} logs pending, the oldest waiting {} s ({limits}): the receiver is slow, down or paused",
                age / 1000
            );
            events.push(raise(AlertKind::QueueBacklog, head.map(|h| h.id), text));
        } else if !(deep || old) && backlogged {
            let text = format!("back under its thresholds: {depth} logs pending, the oldest waiting {} s", age / 1000);
            // No log: a `QueueRecovered` without one ends a backlog.
            events.push(raise(AlertKind::QueueRecovered, None, text));
        }
    }
    events
}

/// Watches the queues on the current arbiter, journaling what `check`
/// finds. The alert channels send them once durable.
pub fn watch(ledger: Ledger, clock: SharedClock, ids: SharedIds, holding: crate::cluster::Holding) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(Duration::from_millis(limits::BACKLOG_CHECK_MS));
        loop {
            tick.tick().await;
            // In a cluster, one node watches: the one that sends alerts.
            if !holding.holds(crate::cluster::ALERTS_DUTY) {
                continue;
            }
            let events = check(&ledger.state().read(), clock.now_ms(), ids.as_ref());
            for event in events {
                if let Err(e) = ledger.record(&event) {
                    tracing::warn!(error = %e, "a backlog alert could not be journaled; will look again");
                    break;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        fixtures,
        ids::SeededIds,
        journal::{Accepted, NewLog},
        model::{LogStatus, LogType},
    };

    /// A state and the next journal position, applied in order.
    struct Journal {
        state: State,
        position: u64,
        ids: SeededIds,
    }

    impl Journal {
        fn apply(&mut self, event: &Event) {
            self.position += 1;
            self.state.apply(self.position, event);
        }

        fn accept(&mut self, destination: Id, at_ms: TimestampMs) {
            let n = u128::from(self.position);
            let logs = vec![NewLog { id: Id(1000 + n), attempt_id: Id(2000 + n), destination_id: destination }];
            self.apply(&Event::MessageAccepted(Accepted {
                message_id: self.position + 1,
                log_type: LogType::Async,
                source_id: Id(1),
                data_model: "PatientAdmin".into(),
                event_type: "NewPatient".into(),
                received_at_ms: at_ms,
                idempotency: None,
                logs,
                payload: b"{}".to_vec(),
            }));
        }

        fn deliver_head(&mut self, destination: Id, at_ms: TimestampMs) {
            let head = self.state.queue_head(destination, u64::MAX).map(|l| l.id).expect("a head");
            self.apply(&Event::LogStatusChanged { log_id: head, status: LogStatus::Succeeded, at_ms, reason: None });
        }

        /// Looks at the queues at `now`; the kinds of alerts raised.
        fn check(&mut self, now: TimestampMs) -> Vec<AlertKind> {
            let events = check(&self.state, now, &self.ids);
            events.iter().for_each(|e| self.apply(e));
            events
                .iter()
                .map(|e| match e {
                    Event::AlertRaised(a) => a.kind,
                    other => panic!("not an alert: {other:?}"),
                })
                .collect()
        }
    }

    #[test]
    fn one_backlog_per_episode_and_recovery_under_both_thresholds() {
        let mut j = Journal { state: State::default(), position: 0, ids: SeededIds::new(7) };
        let mut d = fixtures::destination(1, 1);
        (d.alert_depth, d.alert_age_ms) = (Some(3), Some(60_000));
        j.apply(&Event::DestinationUpserted(d.clone()));
        assert_eq!(j.check(1_000), []);
        for _ in 0..3 {
            j.accept(d.id, 1_000);
        }
        // Three pending: at the depth.
        assert_eq!(j.check(2_000), [AlertKind::QueueBacklog]);
        assert_eq!(j.check(3_000), [], "once per episode");
        j.deliver_head(d.id, 3_000);
        // Two pending, but the oldest has waited past alert_age_ms.
        assert_eq!(j.check(61_000), []);
        j.deliver_head(d.id, 61_000);
        j.deliver_head(d.id, 61_000);
        j.accept(d.id, 61_000);
        // Under both: recovered, once.
        assert_eq!(j.check(62_000), [AlertKind::QueueRecovered]);
        assert_eq!(j.check(63_000), []);
        // Age alone crosses.
        assert_eq!(j.check(121_000), [AlertKind::QueueBacklog]);
        // A pause's recovery (with its log) does not end a backlog.
        let log_id = j.state.queue_head(d.id, u64::MAX).map(|l| l.id);
        let recovered = Alert {
            id: Id(9),
            kind: AlertKind::QueueRecovered,
            destination_id: d.id,
            log_id,
            at_ms: 121_500,
            text: "queue recovered".into(),
        };
        j.apply(&Event::AlertRaised(recovered));
        assert_eq!(j.check(122_000), []);
        // Thresholds removed: the episode ends.
        (d.alert_depth, d.alert_age_ms) = (None, None);
        j.apply(&Event::DestinationUpserted(d));
        assert_eq!(j.check(123_000), [AlertKind::QueueRecovered]);
        assert!(j.state.backlogged.is_empty());
    }
}
