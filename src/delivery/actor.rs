//! One actor per destination: the only owner of its FIFO cursor, pause
//! state and retry timer, and the only writer of its logs' status.
//!
//! The actor reads its queue from the state (the log is the truth) and
//! delivers the head, one log at a time. Meanwhile it prepares the logs
//! after the head, within bounds (`process`, `ahead`), so that their
//! transforms run in parallel with the head's delivery. Hints (`Wake`)
//! only say "look again"; every handler re-reads the state, so a lost or
//! repeated hint changes nothing.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;

use super::{
    Shared, attempt,
    fence::{Fence, Right},
    lanes::LaneKeys,
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
    /// The logs being processed or delivered, with their lanes: at most
    /// one, or with lanes one per lane up to `max_in_flight`.
    pub(super) flights: HashMap<Id, Arc<str>>,
    /// Retry timers, by the log they are for: one, or one per blocked lane.
    retries: HashMap<Id, SpawnHandle>,
    /// Logs whose retry timer went off, due now whatever the clock says.
    pub(super) due: HashSet<Id>,
    /// The lanes of the queue's logs, read from their messages.
    pub(super) lane_keys: LaneKeys,
    /// Outcomes on their way to the disk, and the alert episode.
    outcomes: Outcomes,
    /// Bodies for the head and, ahead of it, for the logs after it.
    processing: Processing,
    /// Whether it delivers; in cluster mode, a node that does not hold the
    /// destination's lease keeps an actor only for operator actions.
    delivering: bool,
    /// A look at the queue is scheduled, for when the right to deliver may
    /// be back.
    looking_again: bool,
}

impl DestinationActor {
    pub fn new(id: Id, shared: Arc<Shared>, delivering: bool, fence: Option<Fence>) -> Self {
        let durable = shared.ledger.durable_through();
        let episode_open = {
            let state = shared.ledger.state().read();
            let head = state.queue_head(id, durable);
            let head_blocked =
                head.is_some_and(|h| matches!(h.status, LogStatus::Retrying | LogStatus::ProcessingFailed));
            head_blocked || state.lanes_blocked(id) > 0
        };
        let clients = tls::Clients::new(shared.tls.clone(), shared.egress);
        let processing = Processing::new(
            id,
            shared.ledger.state().clone(),
            shared.ledger.reader(),
            shared.pool.clone(),
            shared.ahead_counts.clone(),
        );
        let outcomes = Outcomes::new(id, shared.clone(), episode_open, fence);
        Self {
            id,
            shared,
            clients,
            flights: HashMap::new(),
            retries: HashMap::new(),
            due: HashSet::new(),
            lane_keys: LaneKeys::default(),
            outcomes,
            processing,
            delivering,
            looking_again: false,
        }
    }

    /// Looks at the queue: starts the head's delivery if it is due, and
    /// prepares the logs after it.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if !self.delivering {
            if !self.shared.ledger.state().read().destinations.contains_key(&self.id) {
                ctx.stop();
            }
            return;
        }
        self.pump_head(ctx);
        self.look_ahead(ctx);
    }

    /// Starts the head's delivery or its retry timer, if due; with lanes,
    /// those of every lane's head (`pump_lanes`).
    fn pump_head(&mut self, ctx: &mut Context<Self>) {
        let laned = {
            let state = self.shared.ledger.state().read();
            state.destinations.get(&self.id).and_then(|d| d.fifo_key.clone().map(|k| (d.clone(), k)))
        };
        if let Some((dest, key)) = laned {
            return self.pump_lanes(dest, &key, ctx);
        }
        // Until the last outcome is journaled, the head in the state is
        // not what it was: nothing more goes out.
        if !self.flights.is_empty() || self.outcomes.waiting() || !self.window_open(ctx) {
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
            LogStatus::Pending => self.deliver(dest, head, Arc::from(""), ctx),
            LogStatus::Retrying => self.wait_to_retry(dest, head, ctx),
            // Halted: waits for an operator.
            _ => {}
        }
    }

    /// Whether another delivery may go out (see `Outcomes::window`); when
    /// the window is full, the sync it asks for wakes the queue.
    pub(super) fn window_open(&mut self, ctx: &mut Context<Self>) -> bool {
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
        if self.retries.contains_key(&head.id) {
            return;
        }
        let due = next_attempt_at(&head, &self.shared.retry_schedule_ms);
        if due <= self.shared.clock.now_ms() {
            return self.deliver(dest, head, Arc::from(""), ctx);
        }
        self.arm_retry(head.id, due, ctx);
    }

    /// Sets the retry timer of `log` for `due`: when it goes off, the log
    /// is due whatever the clock says, and the queue is looked at.
    pub(super) fn arm_retry(&mut self, log: Id, due: i64, ctx: &mut Context<Self>) {
        let sleep = self.shared.clock.sleep_until(due);
        let handle = ctx.spawn(sleep.into_actor(self).map(move |(), act, ctx| {
            act.retries.remove(&log);
            act.due.insert(log);
            act.pump_due(ctx);
        }));
        self.retries.insert(log, handle);
    }

    /// Whether `log` has a retry timer set.
    pub(super) fn retry_armed(&self, log: Id) -> bool {
        self.retries.contains_key(&log)
    }

    /// After a retry timer: deliver the head if it is still waiting.
    fn pump_due(&mut self, ctx: &mut Context<Self>) {
        if !self.delivering {
            return;
        }
        let laned = self.shared.ledger.state().read().destinations.get(&self.id).is_some_and(|d| d.fifo_key.is_some());
        if laned {
            return self.pump(ctx);
        }
        self.due.clear();
        if !self.flights.is_empty() || self.outcomes.waiting() || !self.window_open(ctx) {
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
                self.deliver(dest, head, Arc::from(""), ctx);
                self.look_ahead(ctx);
            }
            _ => self.pump(ctx),
        }
    }

    /// Cancels every retry timer.
    fn cancel_retries(&mut self, ctx: &mut Context<Self>) {
        for (_, handle) in self.retries.drain() {
            ctx.cancel_future(handle);
        }
        self.due.clear();
    }

    /// Processes and delivers `head`, the head of `lane` (the empty lane
    /// without a key), then records the outcome.
    pub(super) fn deliver(&mut self, dest: Destination, head: Log, lane: Arc<str>, ctx: &mut Context<Self>) {
        if !self.may_deliver(ctx) {
            return;
        }
        if let Some(handle) = self.retries.remove(&head.id) {
            ctx.cancel_future(handle);
        }
        self.due.remove(&head.id);
        self.flights.insert(head.id, lane);
        let (preparation, received_at_ms) = self.processing.for_head(&head);
        let shared = self.shared.clone();
        let client = self.clients.get(dest.client_cert.as_ref());
        let log_id = head.id;
        let work = async move {
            let Some(body) = preparation.await? else { return Ok(Outcome::Filtered) };
            Ok(attempt::send(&shared, client, &dest, &head, received_at_ms, body).await)
        };
        ctx.spawn(work.into_actor(self).map(move |result: Result<Outcome, String>, act, ctx| {
            let laned = act.flights.remove(&log_id).is_some_and(|lane| !lane.is_empty());
            let retry = act.outcomes.record(log_id, laned, result);
            act.journal_later(retry, ctx);
            act.pump(ctx);
        }));
    }

    /// Whether a delivery may go out now (see `fence`); when not yet, the
    /// queue is looked at again shortly.
    fn may_deliver(&mut self, ctx: &mut Context<Self>) -> bool {
        match self.outcomes.right() {
            Right::Deliver => true,
            Right::Fenced => false,
            Right::Wait(wait) => {
                if !self.looking_again {
                    self.looking_again = true;
                    ctx.run_later(wait, |act, ctx| {
                        act.looking_again = false;
                        act.pump(ctx);
                    });
                }
                false
            }
        }
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

/// Stop: the node took or gave up the destination's lease.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for DestinationActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

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

    /// Whether `log` is being delivered, or its outcome waits to be
    /// journaled.
    pub(super) fn busy_with(&self, log: Id) -> bool {
        self.flights.contains_key(&log) || self.outcomes.is_waiting(log)
    }

    /// Whether an outcome waits to be journaled: until it is, the state's
    /// heads are not what they are.
    pub(super) fn outcomes_waiting(&self) -> bool {
        self.outcomes.waiting()
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
        self.cancel_retries(ctx);
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
