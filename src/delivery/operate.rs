//! Operator actions on a destination's queue (SPEC §6): pause, resume,
//! manual retry and skip. They go through the destination's actor, the
//! only owner of its queue, and return once their events are durable; the
//! operator API then answers with the queue or the log as it reads now.

use actix::prelude::*;
use serde_json::Value;

use super::actor::DestinationActor;
use crate::{
    error::ApiError,
    journal::Event,
    model::{Id, LogStatus},
    operators::AuditDraft,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Retry(Id),
    Skip(Id),
}

#[derive(Debug)]
pub struct Operate {
    pub action: Action,
    /// Who asks, for the audit trail: journaled after the action's events,
    /// if it has any (a pause of a paused queue changes nothing).
    pub audit: Option<AuditDraft>,
}

impl Message for Operate {
    type Result = Result<(), ApiError>;
}

impl Handler<Operate> for DestinationActor {
    type Result = ResponseFuture<Result<(), ApiError>>;

    fn handle(&mut self, msg: Operate, ctx: &mut Self::Context) -> Self::Result {
        let decided = self.decide(msg.action, ctx);
        let mut events = match decided {
            Ok(events) => events,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        if let Some(draft) = msg.audit.filter(|_| !events.is_empty()) {
            let shared = self.shared();
            events.push(Event::Audited(draft.entry(shared.ids.id(), shared.clock.now_ms(), &Value::Null)));
        }
        self.forget_prepared();
        let ledger = self.shared().ledger.clone();
        let mut last = None;
        for event in &events {
            match ledger.record(event) {
                Ok(position) => last = Some(position),
                Err(e) => {
                    let e = ApiError::from(e);
                    return Box::pin(async move { Err(e) });
                }
            }
        }
        self.wake(ctx);
        let commit = last.map(|p| ledger.commit(p));
        Box::pin(async move {
            if let Some(commit) = commit {
                commit.await?;
            }
            Ok(())
        })
    }
}

impl DestinationActor {
    /// The events an action calls for, or why it cannot be done.
    fn decide(&mut self, action: Action, ctx: &mut Context<Self>) -> Result<Vec<Event>, ApiError> {
        let now = self.shared().clock.now_ms();
        let durable = self.shared().ledger.durable_through();
        let (paused, head) = {
            let state = self.shared().ledger.state().read();
            let queue = state.queues.get(&self.id());
            (queue.is_some_and(|q| q.paused.is_some()), state.queue_head(self.id(), durable).map(|h| (h.id, h.status)))
        };
        let destination_id = self.id();
        match action {
            Action::Pause if paused => Ok(Vec::new()),
            Action::Pause => {
                Ok(vec![Event::QueuePaused { destination_id, at_ms: now, reason: "paused by an operator".to_owned() }])
            }
            Action::Resume if !paused => Ok(Vec::new()),
            Action::Resume => Ok(vec![Event::QueueResumed { destination_id, at_ms: now }]),
            Action::Retry(log_id) => {
                let status = self.log_status(log_id)?;
                if !matches!(status, LogStatus::ProcessingFailed | LogStatus::Failed | LogStatus::Retrying) {
                    return Err(ApiError::conflict(format!(
                        "log {log_id} is {}: only ProcessingFailed, Failed or Retrying logs can be retried",
                        status.as_str()
                    )));
                }
                self.not_in_flight(log_id)?;
                let recovered = self.after_operator(ctx, None);
                let retry = Event::LogStatusChanged {
                    log_id,
                    status: LogStatus::Pending,
                    at_ms: now,
                    reason: Some("manual retry".to_owned()),
                };
                Ok([Some(retry), recovered].into_iter().flatten().collect())
            }
            Action::Skip(log_id) => {
                // The head of the queue, or with lanes of its lane.
                let head_status = match head {
                    Some((id, status)) if id == log_id => Some(status),
                    _ if self.laned() && self.is_lane_head(log_id) => Some(self.log_status(log_id)?),
                    _ => None,
                };
                let stuck = head_status
                    .is_some_and(|s| paused || matches!(s, LogStatus::Retrying | LogStatus::ProcessingFailed));
                if !stuck {
                    return Err(ApiError::conflict(format!(
                        "log {log_id} is not the head of a paused or halted queue (or lane)"
                    )));
                }
                self.not_in_flight(log_id)?;
                let recovered = self.after_operator(ctx, Some(log_id));
                let skip = Event::LogStatusChanged {
                    log_id,
                    status: LogStatus::Failed,
                    at_ms: now,
                    reason: Some("skipped by an operator".to_owned()),
                };
                Ok([Some(skip), recovered].into_iter().flatten().collect())
            }
        }
    }

    fn laned(&self) -> bool {
        self.shared().ledger.state().read().destinations.get(&self.id()).is_some_and(|d| d.fifo_key.is_some())
    }

    fn log_status(&self, log_id: Id) -> Result<LogStatus, ApiError> {
        let state = self.shared().ledger.state().read();
        let found = state.log_status(log_id).map_err(|e| ApiError::internal(format!("reading the history: {e}")))?;
        let status = found.filter(|(destination, _)| *destination == self.id()).map(|(_, status)| status);
        status.ok_or_else(|| ApiError::not_found(format!("log {log_id} not found")))
    }

    fn not_in_flight(&self, log_id: Id) -> Result<(), ApiError> {
        if self.busy_with(log_id) {
            return Err(ApiError::conflict(format!("log {log_id} is being delivered right now; try again")));
        }
        Ok(())
    }
}
