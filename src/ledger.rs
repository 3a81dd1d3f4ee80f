//! The journal and the state it folds into, kept in step: every writer
//! (the router, the destination actors) appends and applies under one
//! lock, so the live state follows log order exactly, as replay does.

use std::sync::Arc;

use parking_lot::RwLock;

use crate::{
    journal::{CommitFuture, Event, Journal, JournalError},
    state::State,
};

#[derive(Debug, Clone)]
pub struct Ledger {
    journal: Arc<dyn Journal>,
    state: Arc<RwLock<State>>,
}

impl Ledger {
    pub fn new(journal: Arc<dyn Journal>, state: Arc<RwLock<State>>) -> Self {
        Self { journal, state }
    }

    /// Appends `event` and applies it; returns its position. Nothing is
    /// applied if the append fails. Durable once `commit` resolves.
    pub fn record(&self, event: &Event) -> Result<u64, JournalError> {
        let mut state = self.state.write();
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
        let mut state = self.state.write();
        let Some(event) = decide(&state, self.journal.appended_through() + 1) else { return Ok(None) };
        let position = self.journal.append(&event)?;
        state.apply(position, &event);
        Ok(Some((position, event)))
    }

    pub fn commit(&self, position: u64) -> CommitFuture {
        self.journal.commit(position)
    }

    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    pub fn state(&self) -> &Arc<RwLock<State>> {
        &self.state
    }

    pub fn durable_through(&self) -> u64 {
        self.journal.durable_through()
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
