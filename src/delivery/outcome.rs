//! What a delivery's end does to the journal: the attempt, the log's new
//! status, and the alerts of its queue's pause or halt episode. An outcome
//! the journal cannot take now waits in the actor and is tried again.

use std::{collections::VecDeque, time::Duration};

use actix::prelude::*;

use super::actor::DestinationActor;
use crate::{
    journal::Event,
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
pub(super) struct Unrecorded {
    log_id: Id,
    events: VecDeque<Event>,
    tries: u32,
}

impl DestinationActor {
    /// Journals what happened to `log_id` and the alerts it calls for.
    pub(super) fn record(&mut self, log_id: Id, result: Result<Outcome, String>, ctx: &mut Context<Self>) {
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
                events.extend(self.alert(
                    AlertKind::ProcessingFailed,
                    Some(log_id),
                    format!("processing failed: {reason}"),
                ));
            }
            Ok(Outcome::Attempted { attempt, success, environment }) => {
                let error = attempt.error.clone();
                events.push(Event::AttemptRecorded { log_id, attempt });
                if success {
                    events.push(status(LogStatus::Succeeded, None));
                    events.extend(self.recovered(log_id));
                } else if environment == Environment::Production {
                    events.push(status(LogStatus::Retrying, error.clone()));
                    let text = format!("delivery failed, queue paused for retries: {}", error.unwrap_or_default());
                    events.extend(self.alert(AlertKind::QueuePaused, Some(log_id), text));
                } else {
                    events.push(status(LogStatus::Failed, error));
                    events.extend(self.recovered(log_id));
                }
            }
        }
        // The ledger's flusher makes these durable within its interval: the
        // next delivery need not wait, and should a crash come first,
        // at-least-once delivery covers an outcome that was not durable.
        self.unrecorded = Some(Unrecorded { log_id, events: events.into(), tries: 0 });
        self.journal_outcome(ctx);
    }

    /// Journals the outcome not yet journaled, if any; returns whether none
    /// is left. A journal that cannot take it now (the disk is full) is
    /// tried again with backoff, and the queue waits meanwhile: its head's
    /// status in the state is not its outcome until the outcome is
    /// journaled. The actor never stops over it.
    pub(super) fn journal_outcome(&mut self, ctx: &mut Context<Self>) -> bool {
        let Some(unrecorded) = &mut self.unrecorded else { return true };
        while let Some(event) = unrecorded.events.front() {
            let recorded = self.shared.ledger.record(event);
            if let Ok(position) = recorded
                && unrecorded.events.len() == 1
            {
                self.unsynced.push_back(position);
            }
            if let Err(e) = recorded {
                unrecorded.tries += 1;
                let tries = unrecorded.tries;
                if tries == 1 || tries.is_multiple_of(10) {
                    tracing::error!(
                        destination = %self.id, error = %e, tries,
                        "a delivery outcome could not be journaled: the queue waits and tries again"
                    );
                }
                let shift = tries.min(16);
                let wait_ms = (limits::OUTCOME_RETRY_MIN_MS << shift).min(limits::OUTCOME_RETRY_MAX_MS);
                ctx.run_later(Duration::from_millis(wait_ms), |act, ctx| {
                    if act.journal_outcome(ctx) {
                        act.wake(ctx);
                    }
                });
                return false;
            }
            unrecorded.events.pop_front();
        }
        if unrecorded.tries > 0 {
            tracing::info!(destination = %self.id, tries = unrecorded.tries, "the delivery outcome was journaled: the queue goes on");
        }
        self.unrecorded = None;
        true
    }

    /// The log whose outcome waits to be journaled, if any.
    pub(super) fn unrecorded_log(&self) -> Option<Id> {
        self.unrecorded.as_ref().map(|u| u.log_id)
    }

    /// An alert for a new pause or halt episode; none while one is open.
    fn alert(&mut self, kind: AlertKind, log_id: Option<Id>, text: String) -> Option<Event> {
        if self.episode_open {
            return None;
        }
        self.episode_open = true;
        let alert = Alert {
            id: self.shared.ids.id(),
            kind,
            destination_id: self.id,
            log_id,
            at_ms: self.shared.clock.now_ms(),
            text,
        };
        Some(Event::AlertRaised(alert))
    }

    /// The recovery alert, when an episode was open.
    pub(super) fn recovered(&mut self, log_id: Id) -> Option<Event> {
        if !self.episode_open {
            return None;
        }
        self.episode_open = false;
        let alert = Alert {
            id: self.shared.ids.id(),
            kind: AlertKind::QueueRecovered,
            destination_id: self.id,
            log_id: Some(log_id),
            at_ms: self.shared.clock.now_ms(),
            text: "queue recovered".to_owned(),
        };
        Some(Event::AlertRaised(alert))
    }
}
