//! One actor per destination: the only owner of its FIFO cursor, pause
//! state and retry timer, and the only writer of its logs' status.
//!
//! The actor reads its queue from the state (the log is the truth) and
//! delivers the head, one log at a time. Meanwhile it prepares the logs
//! after the head, within bounds (`process`, `ahead`), so that their
//! transforms run in parallel with the head's delivery. Hints (`Wake`)
//! only say "look again"; every handler re-reads the state, so a lost or
//! repeated hint changes nothing.

use std::{sync::Arc, time::Duration};

use actix::prelude::*;

use super::{
    Shared, attempt,
    outcome::{Outcome, Outcomes},
    schedule::next_attempt_at,
};
use crate::{
    journal::Event,
    jq::Processing,
    limits,
    model::{Destination, Id, LogStatus},
    state::Log,
    tls,
};

pub struct DestinationActor {
    pub(super) id: Id,
    pub(super) shared: Arc<Shared>,
    /// Its HTTP clients: with the destination's client certificate, if any.
    clients: tls::Clients,
    /// The log being processed or delivered.
    in_flight: Option<Id>,
    /// The retry timer: the log it is for and its handle.
    retry: Option<(Id, SpawnHandle)>,
    /// Outcomes on their way to the disk, and the alert episode.
    outcomes: Outcomes,
    /// Bodies for the head and, ahead of it, for the logs after it.
    processing: Processing,
}

impl DestinationActor {
    pub fn new(id: Id, shared: Arc<Shared>) -> Self {
        let durable = shared.ledger.durable_through();
        let episode_open = shared
            .ledger
            .state()
            .read()
            .queue_head(id, durable)
            .is_some_and(|h| matches!(h.status, LogStatus::Retrying | LogStatus::ProcessingFailed));
        let clients = tls::Clients::new(shared.tls.clone(), shared.egress);
        let processing = Processing::new(
            id,
            shared.ledger.state().clone(),
            shared.ledger.reader(),
            shared.pool.clone(),
            shared.ahead_counts.clone(),
        );
        let outcomes = Outcomes::new(id, shared.clone(), episode_open);
        Self { id, shared, clients, in_flight: None, retry: None, outcomes, processing }
    }

    /// Looks at the queue: starts the head's delivery if it is due, and
    /// prepares the logs after it.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        self.pump_head(ctx);
        self.look_ahead(ctx);
    }

    /// Starts the head's delivery or its retry timer, if due.
    fn pump_head(&mut self, ctx: &mut Context<Self>) {
        // Until the last outcome is journaled, the head in the state is
        // not what it was: nothing more goes out.
        if self.in_flight.is_some() || self.outcomes.waiting() || !self.window_open(ctx) {
            return;
        }
        let durable = self.shared.ledger.durable_through();
        let (dest, head, paused) = {
            let state = self.shared.ledger.state().read();
            let dest = state.destinations.get(&self.id).cloned();
            let paused = state.queues.get(&self.id).is_some_and(|q| q.paused.is_some());
            (dest, state.queue_head(self.id, durable).cloned(), paused)
        };
        let Some(dest) = dest else { return ctx.stop() };
        let Some(head) = head else { return };
        if paused || !dest.enabled {
            return;
        }
        match head.status {
            LogStatus::Pending => self.deliver(dest, head, ctx),
            LogStatus::Retrying => self.wait_to_retry(dest, head, ctx),
            // Halted: waits for an operator.
            _ => {}
        }
    }

    /// Whether another delivery may go out (see `Outcomes::window`); when
    /// the window is full, the sync it asks for wakes the queue.
    fn window_open(&mut self, ctx: &mut Context<Self>) -> bool {
        let (open, sync) = self.outcomes.window();
        if let Some(sync) = sync {
            ctx.spawn(sync.into_actor(self).map(|synced, act, ctx| {
                if let Err(e) = synced {
                    tracing::error!(destination = %act.id, error = %e, "delivery outcomes could not be synced");
                }
                act.pump(ctx);
            }));
        }
        open
    }

    /// Schedules the head's next attempt, or makes it now if it is due.
    fn wait_to_retry(&mut self, dest: Destination, head: Log, ctx: &mut Context<Self>) {
        if self.retry.as_ref().is_some_and(|(log, _)| *log == head.id) {
            return;
        }
        let due = next_attempt_at(&head, &self.shared.retry_schedule_ms);
        if due <= self.shared.clock.now_ms() {
            return self.deliver(dest, head, ctx);
        }
        let sleep = self.shared.clock.sleep_until(due);
        let handle = ctx.spawn(sleep.into_actor(self).map(|(), act, ctx| {
            act.retry = None;
            act.pump_due(ctx);
        }));
        self.retry = Some((head.id, handle));
    }

    /// After a retry timer: deliver the head if it is still waiting.
    fn pump_due(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_some() || self.outcomes.waiting() || !self.window_open(ctx) {
            return;
        }
        let durable = self.shared.ledger.durable_through();
        let (dest, head) = {
            let state = self.shared.ledger.state().read();
            let paused = state.queues.get(&self.id).is_some_and(|q| q.paused.is_some());
            let head = state.queue_head(self.id, durable).filter(|h| h.status == LogStatus::Retrying && !paused);
            (state.destinations.get(&self.id).cloned(), head.cloned())
        };
        match (dest, head) {
            (Some(dest), Some(head)) if dest.enabled => {
                self.deliver(dest, head, ctx);
                self.look_ahead(ctx);
            }
            _ => self.pump(ctx),
        }
    }

    fn cancel_retry(&mut self, ctx: &mut Context<Self>) {
        if let Some((_, handle)) = self.retry.take() {
            ctx.cancel_future(handle);
        }
    }

    /// Processes and delivers `head`, then records the outcome.
    fn deliver(&mut self, dest: Destination, head: Log, ctx: &mut Context<Self>) {
        self.cancel_retry(ctx);
        self.in_flight = Some(head.id);
        let (preparation, received_at_ms) = self.processing.for_head(&head);
        let shared = self.shared.clone();
        let client = self.clients.get(dest.client_cert.as_ref());
        let log_id = head.id;
        let work = async move {
            let Some(body) = preparation.await? else { return Ok(Outcome::Filtered) };
            Ok(attempt::send(&shared, client, &dest, &head, received_at_ms, body).await)
        };
        ctx.spawn(work.into_actor(self).map(move |result: Result<Outcome, String>, act, ctx| {
            act.in_flight = None;
            let retry = act.outcomes.record(log_id, result);
            act.journal_later(retry, ctx);
            act.pump(ctx);
        }));
    }

    /// Starts preparing logs after the head (`Processing::start_ahead`);
    /// each preparation, once done, makes room for another.
    fn look_ahead(&mut self, ctx: &mut Context<Self>) {
        for (log, seq, preparation) in self.processing.start_ahead() {
            ctx.spawn(preparation.into_actor(self).map(move |prepared, act, ctx| {
                act.processing.finished(log, seq, &prepared);
                act.look_ahead(ctx);
            }));
        }
    }
}

impl Actor for DestinationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(limits::DESTINATION_MAILBOX);
        ctx.run_interval(Duration::from_millis(limits::DELIVERY_IDLE_CHECK_MS), |act, ctx| act.pump(ctx));
        self.pump(ctx);
    }
}

/// A hint: the queue may have something new.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

impl Handler<Wake> for DestinationActor {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.pump(ctx);
    }
}

impl DestinationActor {
    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(super) fn id(&self) -> Id {
        self.id
    }

    pub(super) fn in_flight(&self) -> Option<Id> {
        self.in_flight
    }

    /// The log whose outcome waits to be journaled, if any.
    pub(super) fn unrecorded_log(&self) -> Option<Id> {
        self.outcomes.waiting_log()
    }

    /// Tries the outcome the journal refused again after `retry`, until it
    /// takes it; then the queue goes on. The actor never stops over it.
    fn journal_later(&mut self, retry: Option<Duration>, ctx: &mut Context<Self>) {
        let Some(wait) = retry else { return };
        ctx.run_later(wait, |act, ctx| match act.outcomes.journal() {
            None => act.pump(ctx),
            retry => act.journal_later(retry, ctx),
        });
    }

    pub(super) fn after_operator(&mut self, ctx: &mut Context<Self>, recovered_log: Option<Id>) -> Option<Event> {
        self.cancel_retry(ctx);
        recovered_log.and_then(|log| self.outcomes.recovered(log))
    }

    pub(super) fn wake(&mut self, ctx: &mut Context<Self>) {
        self.pump(ctx);
    }

    /// Throws away every preparation made ahead: after an operator action
    /// none is trusted (a manual retry re-runs processing).
    pub(super) fn forget_prepared(&mut self) {
        self.processing.forget_ahead();
    }
}
