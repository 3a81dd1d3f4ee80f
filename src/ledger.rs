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

use parking_lot::{RwLock, RwLockReadGuard};

use crate::{
    journal::{CommitFuture, Event, Health, Journal, JournalError},
    state::State,
};

#[derive(Debug, Clone)]
pub struct Ledger {
    journal: Arc<dyn Journal>,
    state: StateReader,
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

    /// Whether the journal takes writes now, and why not.
    pub fn health(&self) -> Health {
        self.0.health()
    }
}

impl Ledger {
    /// The ledger over `journal`, whose replay gave `state`.
    pub fn new(journal: Arc<dyn Journal>, state: State) -> Self {
        Self { journal, state: StateReader(Arc::new(RwLock::new(state))) }
    }

    /// Appends `event` and applies it; returns its position. Nothing is
    /// applied if the append fails. Durable once `commit` resolves.
    pub fn record(&self, event: &Event) -> Result<u64, JournalError> {
        let mut state = self.state.0.write();
        let position = self.journal.append(event)?;
        state.apply(position, event);
        Ok(position)
    }

    /// Like `record`, with the event decided under the state lock from
    /// the state and the position the event will get. Nothing is written
    /// if `decide` returns `None`.
    pub fn record_with(
        &self,
        decide: impl FnOnce(&State, u64) -> Option<Event>,
    ) -> Result<Option<(u64, Event)>, JournalError> {
        let mut state = self.state.0.write();
        let Some(event) = decide(&state, self.journal.appended_through() + 1) else { return Ok(None) };
        let position = self.journal.append(&event)?;
        state.apply(position, &event);
        Ok(Some((position, event)))
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

    /// Declares records below `position` unneeded and deletes the segments
    /// that hold only such records; returns how many were deleted.
    pub fn release_below(&self, position: u64) -> Result<usize, JournalError> {
        self.journal.release_below(position)
    }

    /// Syncs, every `interval`, whatever was appended without anyone waiting
    /// for it (delivery outcomes, alerts). Runs on the current arbiter.
    pub fn spawn_flusher(&self, interval: std::time::Duration) {
        let journal = self.journal.clone();
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
            }
        });
    }
}
