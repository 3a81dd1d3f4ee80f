//! The journal and the state it folds into, kept in step, and the only
//! writer of both.
//!
//! Every writer (the router, the destination actors, compaction) appends
//! through a [`Ledger`], which appends and applies under one lock, so the
//! live state follows log order exactly, as replay does. Everyone else
//! holds read-only handles: a [`StateReader`] and a [`JournalReader`]. The
//! ledger keeps the only writable handle on each, so "only the Ledger
//! appends" is a rule of the types, not of review.

use std::sync::Arc;

use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::{
    history::{Checkpoint, Finished, HistoryError},
    journal::{CommitFuture, Event, Health, Journal, JournalError},
    model::Id,
    state::State,
};

#[derive(Clone)]
pub struct Ledger {
    journal: Arc<dyn Journal>,
    state: StateReader,
    /// In cluster mode, what folding other nodes' records touched, for
    /// [`fold_arrived`](Self::fold_arrived) to hand on.
    touched: Arc<Mutex<Vec<Touched>>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("journal", &self.journal).finish_non_exhaustive()
    }
}

/// What a record another node appended means for this node's destination
/// actors (cluster mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touched {
    /// The destination's queue changed: its actor should look at it.
    Destination(Id),
    /// Destinations came, went or changed.
    Configuration,
}

/// What `event`, folded into `state`, touched.
fn touches(state: &State, event: &Event, into: &mut Vec<Touched>) {
    match event {
        Event::MessageAccepted(accepted) => {
            into.extend(accepted.logs.iter().map(|l| Touched::Destination(l.destination_id)));
        }
        Event::LogsResent(resent) => into.push(Touched::Destination(resent.destination_id)),
        Event::QueuePaused { destination_id, .. }
        | Event::QueueResumed { destination_id, .. }
        | Event::DeliveryTaken { destination_id, .. } => {
            into.push(Touched::Destination(*destination_id));
        }
        Event::LogStatusChanged { log_id, .. } => {
            if let Ok(Some((destination, _))) = state.log_status(*log_id) {
                into.push(Touched::Destination(destination));
            }
        }
        Event::DestinationUpserted(_) | Event::DestinationDeleted { .. } | Event::ConfigurationApplied(_) => {
            into.push(Touched::Configuration);
        }
        _ => {}
    }
}

/// Read access to the engine's state.
#[derive(Debug, Clone)]
pub struct StateReader(Arc<RwLock<State>>);

impl StateReader {
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.0.read()
    }
}

/// Read access to the journal: what is durable, and message bodies.
#[derive(Debug, Clone)]
pub struct JournalReader(Arc<dyn Journal>);

impl JournalReader {
    /// The highest durable position.
    pub fn durable_through(&self) -> u64 {
        self.0.durable_through()
    }

    /// The request body of the message accepted at `position`.
    pub fn message_payload(&self, position: u64) -> Result<Vec<u8>, JournalError> {
        self.0.message_payload(position)
    }

    /// The first position retained and the number of segment files.
    pub fn retained(&self) -> (u64, usize) {
        self.0.retained()
    }

    /// The logs of the durable message accepted at `position`.
    pub fn message_logs(&self, position: u64) -> Result<Option<Vec<crate::journal::NewLog>>, JournalError> {
        self.0.message_logs(position)
    }

    /// Whether the journal takes writes now, and why not.
    pub fn health(&self) -> Health {
        self.0.health()
    }
}

impl Ledger {
    /// The ledger over `journal`, whose replay gave `state`.
    pub fn new(journal: Arc<dyn Journal>, state: State) -> Self {
        Self { journal, state: StateReader(Arc::new(RwLock::new(state))), touched: Arc::default() }
    }

    /// Whether other nodes append to the journal too (cluster mode).
    pub fn shared(&self) -> bool {
        self.journal.shared()
    }

    /// Folds the records other nodes appended that have arrived; returns
    /// what they (and those folded while appending since the last call)
    /// touched.
    pub fn fold_arrived(&self) -> Result<Vec<Touched>, JournalError> {
        self.fold(&mut self.state.0.write(), false)?;
        Ok(std::mem::take(&mut *self.touched.lock()))
    }

    /// Notified when other nodes' records arrive (cluster mode).
    pub fn arrivals(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.journal.arrivals()
    }

    /// Folds other nodes' records that arrived after the last one folded;
    /// with `wait`, waits for at least one.
    fn fold(&self, state: &mut State, wait: bool) -> Result<(), JournalError> {
        let foreign = self.journal.foreign(state.position, wait)?;
        if foreign.is_empty() {
            return Ok(());
        }
        let mut touched = self.touched.lock();
        for (position, event) in &foreign {
            state.apply(*position, event);
            touches(state, event, &mut touched);
            crate::logs::journaled(state, *position, event);
        }
        settle(state, self.journal.durable_through());
        Ok(())
    }

    /// In cluster mode: decides an event on the state as it follows every
    /// record folded, appends it right after them, and applies it. When
    /// another node appended first, folds its records and decides again.
    fn propose(
        &self,
        state: &mut State,
        decide: &mut dyn FnMut(&State, u64) -> Option<Event>,
    ) -> Result<Option<(u64, Event)>, JournalError> {
        self.fold(state, false)?;
        loop {
            let after = state.position;
            let Some(event) = decide(state, after + 1) else { return Ok(None) };
            match self.journal.append_after(&event, after)? {
                Some(position) => {
                    state.apply(position, &event);
                    crate::logs::journaled(state, position, &event);
                    settle(state, self.journal.durable_through());
                    return Ok(Some((position, event)));
                }
                None => self.fold(state, true)?,
            }
        }
    }

    /// Records the events `decide` makes, one after another in one atomic
    /// commit: in cluster mode decided on the state as it follows every
    /// record folded, and decided again when another node appended first.
    /// Returns the first one's position and the events (none if `decide`
    /// made none).
    pub fn record_batch_with(
        &self,
        decide: &mut dyn FnMut(&State) -> Vec<Event>,
    ) -> Result<Option<(u64, Vec<Event>)>, JournalError> {
        let mut state = self.state.0.write();
        if self.journal.shared() {
            self.fold(&mut state, false)?;
        }
        loop {
            let after = state.position;
            let events = decide(&state);
            if events.is_empty() {
                return Ok(None);
            }
            let Some(first) = self.journal.append_batch_after(&events, after)? else {
                self.fold(&mut state, true)?;
                continue;
            };
            for (position, event) in (first..).zip(&events) {
                state.apply(position, event);
                crate::logs::journaled(&state, position, event);
            }
            settle(&mut state, self.journal.durable_through());
            return Ok(Some((first, events)));
        }
    }

    /// Records `events` in one atomic commit if `may` says so on the state
    /// they would follow: in cluster mode, decided again when another node
    /// appended first. `Ok(None)` when `may` said no and nothing was
    /// written; otherwise the first event's position.
    pub fn record_batch_if(&self, events: &[Event], may: &dyn Fn(&State) -> bool) -> Result<Option<u64>, JournalError> {
        let recorded = self.record_batch_with(&mut |state| if may(state) { events.to_vec() } else { Vec::new() })?;
        Ok(recorded.map(|(first, _)| first))
    }

    fn propose_event(&self, state: &mut State, event: &Event) -> Result<u64, JournalError> {
        let proposed = self.propose(state, &mut |_, _| Some(event.clone()))?;
        proposed.map(|(position, _)| position).ok_or_else(|| JournalError::Unencodable("nothing was proposed".into()))
    }

    /// Appends `event` and applies it; returns its position. Nothing is
    /// applied if the append fails. Durable once `commit` resolves.
    pub fn record(&self, event: &Event) -> Result<u64, JournalError> {
        let mut state = self.state.0.write();
        if self.journal.shared() {
            return self.propose_event(&mut state, event);
        }
        let position = self.journal.append(event)?;
        state.apply(position, event);
        crate::logs::journaled(&state, position, event);
        settle(&mut state, self.journal.durable_through());
        Ok(position)
    }

    /// Records `events` in order under one hold of the state lock, as
    /// `record` does each; stops at the first the journal refuses. Returns
    /// the positions of those recorded, and the refusal if there was one.
    pub fn record_each<'a>(&self, events: impl IntoIterator<Item = &'a Event>) -> (Vec<u64>, Option<JournalError>) {
        let mut state = self.state.0.write();
        let mut positions = Vec::new();
        let mut refused = None;
        if self.journal.shared() {
            drop(state);
            let events: Vec<Event> = events.into_iter().cloned().collect();
            return match self.record_batch_with(&mut |_| events.clone()) {
                Ok(Some((first, recorded))) => ((first..).take(recorded.len()).collect(), None),
                Ok(None) => (Vec::new(), None),
                Err(e) => (Vec::new(), Some(e)),
            };
        }
        for event in events {
            match self.journal.append(event) {
                Ok(position) => {
                    state.apply(position, event);
                    crate::logs::journaled(&state, position, event);
                    positions.push(position);
                }
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        settle(&mut state, self.journal.durable_through());
        (positions, refused)
    }

    /// Like `record`, with the event decided under the state lock from
    /// the state and the position the event will get. Nothing is written
    /// if `decide` returns `None`.
    pub fn record_with(
        &self,
        mut decide: impl FnMut(&State, u64) -> Option<Event>,
    ) -> Result<Option<(u64, Event)>, JournalError> {
        let mut state = self.state.0.write();
        if self.journal.shared() {
            return self.propose(&mut state, &mut decide);
        }
        let Some(event) = decide(&state, self.journal.appended_through() + 1) else { return Ok(None) };
        let position = self.journal.append(&event)?;
        state.apply(position, &event);
        crate::logs::journaled(&state, position, &event);
        settle(&mut state, self.journal.durable_through());
        Ok(Some((position, event)))
    }

    /// Moves the logs whose end is durable from memory to the history.
    pub fn settle(&self) {
        settle(&mut self.state.0.write(), self.journal.durable_through());
    }

    /// Begins a checkpoint of the history; with it, where a replay must
    /// begin to rebuild what memory holds now.
    pub fn history_checkpoint(&self) -> (Checkpoint, u64) {
        let mut state = self.state.0.write();
        let floor = state.replay_floor();
        (state.history_mut().checkpoint(), floor)
    }

    /// Takes in how a checkpoint of the history ended.
    pub fn history_checkpoint_finished(&self, outcome: &Result<Finished, HistoryError>) {
        self.state.0.write().history_mut().checkpoint_finished(outcome);
    }

    /// The position compaction last released records below: messages
    /// accepted before it are past retention.
    pub fn released_below(&self) -> u64 {
        self.journal.released_below()
    }

    /// Resolves once the event at `position`, and all before it, is durable.
    pub fn commit(&self, position: u64) -> CommitFuture {
        self.journal.commit(position)
    }

    pub fn state(&self) -> &StateReader {
        &self.state
    }

    pub fn reader(&self) -> JournalReader {
        JournalReader(self.journal.clone())
    }

    pub fn durable_through(&self) -> u64 {
        self.journal.durable_through()
    }

    /// How many segments `release_below(position)` would delete now.
    pub fn releasable(&self, position: u64) -> usize {
        self.journal.releasable(position)
    }

    /// Forgets the idempotency keys received before `cutoff_ms`.
    pub fn forget_keys_before(&self, cutoff_ms: i64) {
        self.state.0.write().forget_keys_before(cutoff_ms);
    }

    /// Declares records below `position` unneeded and deletes the segments
    /// that hold only such records; returns how many were deleted.
    pub fn release_below(&self, position: u64) -> Result<usize, JournalError> {
        // Under the state lock, so no operator brings back a log of a
        // message being released (a retry, a resend): a message with a log
        // in memory since the compaction planned keeps its records.
        let mut state = self.state.0.write();
        let in_memory = state.messages.iter().map(|m| m.position).min().unwrap_or(u64::MAX);
        let position = position.min(in_memory);
        let deleted = self.journal.release_below(position)?;
        let keep_from = state.memory_logs().next().map_or(u64::MAX, |(n, _)| n as u64);
        if let Err(e) = state.history_mut().release_below(position, keep_from) {
            tracing::warn!(error = %e, "the history could not let go of logs past retention; will try again");
        }
        let oldest_key = state.oldest_key_position().unwrap_or(u64::MAX);
        if let Err(e) = state.history_mut().release_keys_below(oldest_key) {
            tracing::warn!(error = %e, "the history could not let go of expired idempotency keys; will try again");
        }
        Ok(deleted)
    }

    /// Syncs, every `interval`, whatever was appended without anyone waiting
    /// for it (delivery outcomes, alerts). Runs on the current arbiter.
    pub fn spawn_flusher(&self, interval: std::time::Duration) {
        let journal = self.journal.clone();
        let state = self.state.clone();
        actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(interval);
            loop {
                tick.tick().await;
                let appended = journal.appended_through();
                if appended > journal.durable_through()
                    && let Err(e) = journal.commit(appended).await
                {
                    tracing::error!(error = %e, "journal sync failed");
                    return;
                }
                settle(&mut state.0.write(), journal.durable_through());
            }
        });
    }
}

/// Settles what is durable; a history that cannot be written keeps the
/// logs in memory and is tried again at the next settle.
fn settle(state: &mut State, durable: u64) {
    if let Err(e) = state.settle(durable) {
        tracing::error!(error = %e, "ended logs could not be written to the history; they stay in memory");
    }
}
