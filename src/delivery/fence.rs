//! A cluster node's right to deliver one destination (SPEC §17).
//!
//! Holding the destination's lease is not enough: a process frozen past
//! its lease (a long pause, a VM stopped) wakes up believing it still
//! holds it. So before it delivers, the node records its takeover in the
//! journal (`Event::DeliveryTaken`, with the lease's revision as its
//! epoch), and records an outcome only while the journal's last takeover
//! of the destination is its own. The check is decided on the state the
//! outcome's append follows, and the append is refused if anything came
//! in between, so it is atomic with the journal's order: once a new holder
//! recorded its takeover, nothing the old one decides lands after it.
//!
//! The node also sends nothing while its lease rounds have not kept its
//! leases lately (`Holding::sure`): a frozen process learns from its own
//! clock, before it sends again, that it may have lost them.

use std::{sync::Arc, time::Duration};

use super::Shared;
use crate::{journal::Event, model::Id, state::State};

/// What the node may do with the destination now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Right {
    Deliver,
    /// Not now: look again after this.
    Wait(Duration),
    /// Another node took the destination: this one delivers it no more.
    Fenced,
}

/// How long to wait before looking again when the leases are not sure or
/// the takeover could not be recorded.
const LOOK_AGAIN: Duration = Duration::from_millis(250);

/// The lease a node delivers a destination under.
#[derive(Debug)]
pub(super) struct Fence {
    node: Arc<str>,
    epoch: u64,
    /// The takeover is recorded.
    taken: bool,
    fenced: bool,
}

impl Fence {
    pub(super) fn new(node: Arc<str>, epoch: u64) -> Self {
        Self { node, epoch, taken: false, fenced: false }
    }

    /// Whether the journal's last takeover of `destination` in `state` is
    /// this one.
    pub(super) fn named_in(&self, state: &State, destination: Id) -> bool {
        state.takers.get(&destination).is_some_and(|t| *t.node == *self.node && t.epoch == self.epoch)
    }

    /// Whether this node may deliver `destination` now, recording its
    /// takeover first if it has not yet.
    pub(super) fn right(&mut self, shared: &Shared, destination: Id) -> Right {
        if self.fenced {
            return Right::Fenced;
        }
        if !shared.holding.sure() {
            return Right::Wait(LOOK_AGAIN);
        }
        if !self.taken {
            let taking = shared.ledger.record_with(|state, _| {
                // A later takeover (a higher epoch) fences this one off; a
                // takeover of this lease already recorded (the actor started
                // again) stands.
                let newer_or_mine = state.takers.get(&destination).is_some_and(|t| t.epoch >= self.epoch);
                (!newer_or_mine).then(|| Event::DeliveryTaken {
                    destination_id: destination,
                    node: self.node.to_string(),
                    epoch: self.epoch,
                })
            });
            if let Err(e) = taking {
                tracing::warn!(%destination, error = %e, "the takeover of a destination could not be recorded yet");
                return Right::Wait(LOOK_AGAIN);
            }
            self.taken = true;
        }
        if !self.named_in(&shared.ledger.state().read(), destination) {
            self.fence(destination);
            return Right::Fenced;
        }
        Right::Deliver
    }

    /// Another node took the destination: this one stops.
    pub(super) fn fence(&mut self, destination: Id) {
        if !self.fenced {
            tracing::warn!(%destination, node = %self.node, epoch = self.epoch,
                "another node took this destination over: this node no longer delivers it");
        }
        self.fenced = true;
    }
}
