//! Delivery (SPEC §4): one actor per destination, spread over a few
//! arbiters, fed by hints from the router. Each actor prepares bodies on
//! the processing pool (`crate::jq`), ahead of its queue's head, and
//! journals the alerts of its queue's episodes (`crate::alerts` sends them).

mod actor;
mod attempt;
mod fence;
mod lanes;
mod operate;
mod outcome;
pub mod request;
pub mod schedule;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use actix::{Actor, Addr, Arbiter, ArbiterHandle};
use parking_lot::Mutex;

pub use self::operate::Action;
use self::{
    actor::{DestinationActor, Stop, Wake},
    operate::Operate,
};
use crate::{
    clock::SharedClock,
    egress::Egress,
    error::ApiError,
    ids::SharedIds,
    jq::{AheadCounts, TransformPool},
    ledger::Ledger,
    limits,
    model::Id,
    operators::AuditDraft,
};

/// What every destination actor shares.
#[derive(Debug)]
pub struct Shared {
    pub ledger: Ledger,
    pub clock: SharedClock,
    pub ids: SharedIds,
    pub pool: TransformPool,
    pub retry_schedule_ms: Vec<u64>,
    /// TLS for `https://` destinations, with their client certificates.
    pub tls: Arc<crate::tls::ClientTls>,
    /// Where deliveries may go.
    pub egress: Egress,
    /// What the actors' processing look-ahead did, for `/metrics`.
    pub ahead_counts: Arc<AheadCounts>,
    /// Attempts and outcomes, for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where the spans of delivery attempts go.
    pub traces: Arc<crate::traces::Traces>,
    /// Which destinations this node delivers (in cluster mode, those whose
    /// lease it holds).
    pub holding: crate::cluster::Holding,
}

/// A destination's actor, and the lease it delivers under (0 alone;
/// `None` when it does not deliver).
type Started = (Addr<DestinationActor>, Option<u64>);

/// The destination actors, by destination.
#[derive(Clone)]
pub struct Deliveries {
    shared: Arc<Shared>,
    /// Each destination's actor, and the lease it delivers under, or `None`
    /// when it only serves operator actions.
    actors: Arc<Mutex<HashMap<Id, Started>>>,
    arbiters: Arc<Vec<ArbiterHandle>>,
    next: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries").field("actors", &self.actors.lock().len()).finish()
    }
}

impl Deliveries {
    /// Starts the arbiters and an actor for every destination.
    pub fn start(shared: Shared) -> Self {
        let arbiters = (0..limits::DELIVERY_ARBITERS).map(|_| Arbiter::new().handle()).collect();
        let deliveries = Self {
            shared: Arc::new(shared),
            actors: Arc::default(),
            arbiters: Arc::new(arbiters),
            next: Arc::default(),
        };
        deliveries.reconcile();
        deliveries
    }

    /// Starts actors for new destinations, forgets those of deleted ones
    /// (which stop themselves), and wakes the rest. An actor found stopped
    /// while its destination exists is started again: no destination
    /// stops delivering silently. In cluster mode, an actor whose lease was
    /// taken or given up since it started (or lost and taken again) is
    /// stopped, its attempt in flight with it, and started again delivering
    /// or not: a new owner starts from the last recorded outcome.
    pub fn reconcile(&self) {
        let wanted: Vec<Id> = self.shared.ledger.state().read().destinations.keys().copied().collect();
        let mut actors = self.actors.lock();
        actors.retain(|id, (addr, epoch)| {
            let keep = wanted.contains(id) && addr.connected() && *epoch == self.epoch(*id);
            if keep {
                let _ = addr.try_send(Wake);
            } else {
                addr.do_send(Stop);
            }
            keep
        });
        for id in wanted {
            actors.entry(id).or_insert_with(|| self.start_actor(id));
        }
    }

    fn epoch(&self, id: Id) -> Option<u64> {
        self.shared.holding.epoch(&id.to_string())
    }

    fn start_actor(&self, id: Id) -> Started {
        let arbiter = &self.arbiters[self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len()];
        let shared = self.shared.clone();
        let key = id.to_string();
        let epoch = self.shared.holding.epoch(&key);
        let fence = self.shared.holding.lease_of(&key).map(|(node, epoch)| fence::Fence::new(node, epoch));
        let delivering = epoch.is_some();
        (
            DestinationActor::start_in_arbiter(arbiter, move |_| DestinationActor::new(id, shared, delivering, fence)),
            epoch,
        )
    }

    /// Hands on what folding other nodes' records touched (cluster mode).
    pub fn touched(&self, touched: &[crate::ledger::Touched]) {
        if touched.contains(&crate::ledger::Touched::Configuration) {
            return self.reconcile();
        }
        let mut woken = std::collections::HashSet::new();
        for t in touched {
            if let crate::ledger::Touched::Destination(id) = t
                && woken.insert(*id)
            {
                self.wake(*id);
            }
        }
    }

    /// The actor of `destination`, started again if it had stopped while
    /// the destination exists.
    fn actor(&self, destination: Id) -> Option<Addr<DestinationActor>> {
        let addr = self.actors.lock().get(&destination).map(|(addr, _)| addr.clone())?;
        if addr.connected() {
            return Some(addr);
        }
        self.reconcile();
        self.actors.lock().get(&destination).map(|(addr, _)| addr.clone())
    }

    /// The processing pool, for work that is not a delivery (queries).
    pub fn pool(&self) -> &TransformPool {
        &self.shared.pool
    }

    /// Tells a destination's actor to look at its queue. If its mailbox is
    /// full the hint is not needed: every queued message makes it look.
    pub fn wake(&self, destination: Id) {
        if let Some(addr) = self.actor(destination) {
            let _ = addr.try_send(Wake);
        }
    }

    /// What the processing look-ahead did, over every destination.
    pub fn ahead_counts(&self) -> &AheadCounts {
        &self.shared.ahead_counts
    }

    pub fn ahead_counts_shared(&self) -> Arc<AheadCounts> {
        self.shared.ahead_counts.clone()
    }

    /// Runs an operator action on a destination's queue; returns once its
    /// events are durable.
    pub async fn operate(&self, destination: Id, action: Action, audit: Option<AuditDraft>) -> Result<(), ApiError> {
        let addr = self.actor(destination);
        let addr = addr.ok_or_else(|| ApiError::not_found(format!("destination {destination} not found")))?;
        match addr.send(Operate { action, audit }).await {
            Ok(result) => result,
            Err(e) => Err(ApiError::internal(format!("the destination's actor is not running: {e}"))),
        }
    }
}
