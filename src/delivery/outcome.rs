//! What a delivery's end does to the journal: the attempt, the log's new
//! status, and the alerts of its queue's pause or halt episode. The
//! destination's actor owns one `Outcomes`, which journals them, keeps an
//! outcome the journal cannot take now until it can, and keeps the window
//! of outcomes journaled but not yet durable.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use super::{
    Shared,
    fence::{Fence, Right},
};
use crate::{
    journal::{CommitFuture, Event},
    limits,
    model::{Alert, AlertKind, Attempt, Environment, Id, LogStatus},
};

/// How a delivery ended.
pub(super) enum Outcome {
    Filtered,
    Attempted { attempt: Attempt, success: bool, environment: Environment },
}

/// The events of an outcome the journal has not taken yet.
#[derive(Debug)]
struct Unrecorded {
    log_id: Id,
    events: VecDeque<Event>,
    tries: u32,
}

/// A destination's outcomes on their way to the disk, and its alert
/// episode.
pub(super) struct Outcomes {
    destination: Id,
    shared: Arc<Shared>,
    /// A pause or halt alert was raised and no recovery yet: one episode
    /// covers the destination while any of its lanes is blocked.
    episode_open: bool,
    /// Outcomes of deliveries the journal has not taken yet, in the order
    /// they ended (more than one only with lanes in flight together).
    unrecorded: VecDeque<Unrecorded>,
    /// Where the outcomes journaled but maybe not yet durable end, oldest
    /// first: at most `UNSYNCED_OUTCOMES_MAX`, which bounds what a crash
    /// makes the queue send again.
    unsynced: VecDeque<u64>,
    /// The position a sync was asked up to.
    sync_asked: u64,
    /// In cluster mode, the lease it delivers under: outcomes are recorded
    /// only while the journal names it the destination's taker.
    fence: Option<Fence>,
}

impl Outcomes {
    pub(super) fn new(destination: Id, shared: Arc<Shared>, episode_open: bool, fence: Option<Fence>) -> Self {
        Self {
            fence,
            destination,
            shared,
            episode_open,
            unrecorded: VecDeque::new(),
            unsynced: VecDeque::new(),
            sync_asked: 0,
        }
    }

    /// Journals what happened to `log_id` (of an ordered lane when
    /// `laned`) and the alerts it calls for; the wait before trying again
    /// if the journal did not take it all.
    pub(super) fn record(&mut self, log_id: Id, laned: bool, result: Result<Outcome, String>) -> Option<Duration> {
        let now = self.shared.clock.now_ms();
        let status = |status, reason: Option<String>| Event::LogStatusChanged { log_id, status, at_ms: now, reason };
        let mut events = Vec::new();
        match result {
            // The head leaving the queue, however it leaves, ends a pause or
            // halt episode.
            Ok(Outcome::Filtered) => {
                events.push(status(LogStatus::Filtered, None));
                events.extend(self.recovered(log_id));
            }
            Err(reason) => {
                events.push(status(LogStatus::ProcessingFailed, Some(reason.clone())));
                let text = format!("processing failed: {reason}");
                events.extend(self.alert(AlertKind::ProcessingFailed, Some(log_id), text));
            }
            Ok(Outcome::Attempted { attempt, success, environment }) => {
                let error = attempt.error.clone();
                events.push(Event::AttemptRecorded { log_id, attempt });
                if success {
                    events.push(status(LogStatus::Succeeded, None));
                    events.extend(self.recovered(log_id));
                } else if environment == Environment::Production {
                    events.push(status(LogStatus::Retrying, error.clone()));
                    // The lane's key is left out: it is often a patient's ID.
                    let paused = if laned {
                        "its lane paused for retries, the other lanes go on"
                    } else {
                        "queue paused for retries"
                    };
                    let text = format!("delivery failed, {paused}: {}", error.unwrap_or_default());
                    events.extend(self.alert(AlertKind::QueuePaused, Some(log_id), text));
                } else {
                    events.push(status(LogStatus::Failed, error));
                    events.extend(self.recovered(log_id));
                }
            }
        }
        if let Some(Event::LogStatusChanged { status, .. }) =
            events.iter().find(|e| matches!(e, Event::LogStatusChanged { .. }))
        {
            self.shared.metrics.outcome(self.destination, status.as_str());
        }
        // The ledger's flusher makes these durable within its interval: the
        // next delivery need not wait, and should a crash come first,
        // at-least-once delivery covers an outcome that was not durable.
        self.unrecorded.push_back(Unrecorded { log_id, events: events.into(), tries: 0 });
        self.journal()
    }

    /// Journals the outcome not yet journaled, if any; the wait before
    /// trying again if the journal still cannot take it (the disk is full).
    /// Until it is journaled the queue waits: its head's status in the
    /// state is not its outcome yet.
    pub(super) fn journal(&mut self) -> Option<Duration> {
        loop {
            match self.journal_first() {
                None => return None,
                Some(Some(wait)) => return Some(wait),
                Some(None) => {}
            }
        }
    }

    /// Journals the oldest outcome not yet journaled: `None` when there is
    /// none, `Some(Some(wait))` when the journal refused it.
    fn journal_first(&mut self) -> Option<Option<Duration>> {
        let unrecorded = self.unrecorded.front_mut()?;
        if !unrecorded.events.is_empty() {
            // One hold of the state's lock for the outcome's events; in
            // cluster mode one commit, only while this node's takeover is
            // the journal's last.
            let (positions, refused) = match &mut self.fence {
                None => self.shared.ledger.record_each(&unrecorded.events),
                Some(fence) => {
                    let events = unrecorded.events.make_contiguous();
                    let (ledger, destination) = (&self.shared.ledger, self.destination);
                    match ledger.record_batch_if(events, &|state| fence.named_in(state, destination)) {
                        Ok(Some(first)) => ((first..).take(events.len()).collect(), None),
                        Ok(None) => {
                            // Its new holder delivers the log again.
                            fence.fence(destination);
                            self.unrecorded.clear();
                            return None;
                        }
                        Err(e) => (Vec::new(), Some(e)),
                    }
                }
            };
            unrecorded.events.drain(..positions.len());
            if unrecorded.events.is_empty()
                && let Some(&last) = positions.last()
            {
                self.unsynced.push_back(last);
            }
            if let Some(e) = refused {
                unrecorded.tries += 1;
                let tries = unrecorded.tries;
                if tries == 1 || tries.is_multiple_of(10) {
                    tracing::error!(
                        destination = %self.destination, error = %e, tries,
                        "a delivery outcome could not be journaled: the queue waits and tries again"
                    );
                }
                let wait_ms = (limits::OUTCOME_RETRY_MIN_MS << tries.min(16)).min(limits::OUTCOME_RETRY_MAX_MS);
                return Some(Some(Duration::from_millis(wait_ms)));
            }
        }
        if unrecorded.tries > 0 {
            let tries = unrecorded.tries;
            tracing::info!(destination = %self.destination, tries, "the delivery outcome was journaled: the queue goes on");
        }
        self.unrecorded.pop_front();
        Some(None)
    }

    /// Whether this node may deliver now (always alone): in cluster mode,
    /// while it holds the lease surely and its takeover is recorded.
    pub(super) fn right(&mut self) -> Right {
        match &mut self.fence {
            None => Right::Deliver,
            Some(fence) => fence.right(&self.shared, self.destination),
        }
    }

    /// Whether an outcome waits to be journaled.
    pub(super) fn waiting(&self) -> bool {
        !self.unrecorded.is_empty()
    }

    /// Whether the outcome of `log` waits to be journaled.
    pub(super) fn is_waiting(&self, log: Id) -> bool {
        self.unrecorded.iter().any(|u| u.log_id == log)
    }

    /// Whether another delivery may go out: fewer than
    /// `UNSYNCED_OUTCOMES_MAX` outcomes are journaled but not yet durable.
    /// Outcomes are synced by the ledger's flusher, off the delivery's path;
    /// a queue that fills the window before the flusher's next sync asks
    /// for one, and must wait for the returned future. A crash thus makes a
    /// queue send again at most its in-flight log and the window.
    pub(super) fn window(&mut self) -> (bool, Option<CommitFuture>) {
        let durable = self.shared.ledger.durable_through();
        while self.unsynced.front().is_some_and(|&p| p <= durable) {
            self.unsynced.pop_front();
        }
        let (Some(&last), used) = (self.unsynced.back(), self.unsynced.len()) else { return (true, None) };
        let open = used < limits::UNSYNCED_OUTCOMES_MAX;
        if open || self.sync_asked >= last {
            return (open, None);
        }
        self.sync_asked = last;
        (false, Some(self.shared.ledger.commit(last)))
    }

    /// An alert for a new pause or halt episode; none while one is open.
    fn alert(&mut self, kind: AlertKind, log_id: Option<Id>, text: String) -> Option<Event> {
        if self.episode_open {
            return None;
        }
        self.episode_open = true;
        Some(self.raised(kind, log_id, text))
    }

    /// The recovery alert, when an episode was open and `log_id`, leaving
    /// the queue, was the last blocked log: with lanes, the episode lasts
    /// while any lane is blocked.
    pub(super) fn recovered(&mut self, log_id: Id) -> Option<Event> {
        if !self.episode_open || self.another_blocked(log_id) {
            return None;
        }
        self.episode_open = false;
        Some(self.raised(AlertKind::QueueRecovered, Some(log_id), "queue recovered".to_owned()))
    }

    /// Whether a log of the queue other than `log_id` blocks its lane.
    fn another_blocked(&self, log_id: Id) -> bool {
        let state = self.shared.ledger.state().read();
        let Some(queue) = state.queues.get(&self.destination) else { return false };
        let blocked = |l: &&crate::state::Log| matches!(l.status, LogStatus::Retrying | LogStatus::ProcessingFailed);
        queue
            .pending
            .iter()
            .take(limits::LANE_SCAN)
            .filter_map(|&i| state.log_at(i))
            .filter(blocked)
            .any(|l| l.id != log_id)
    }

    fn raised(&self, kind: AlertKind, log_id: Option<Id>, text: String) -> Event {
        Event::AlertRaised(Alert {
            id: self.shared.ids.id(),
            kind,
            destination_id: self.destination,
            log_id,
            at_ms: self.shared.clock.now_ms(),
            text,
        })
    }
}
