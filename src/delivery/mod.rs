//! Delivery (SPEC §4): one actor per destination, spread over a few
//! arbiters, fed by hints from the router. Each actor prepares bodies on
//! the processing pool (`crate::jq`), ahead of its queue's head; alerts are
//! posted to a webhook without holding anything up.

mod actor;
mod alerts;
mod operate;
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
use serde_json::Value;

use self::{
    actor::{DestinationActor, Wake},
    operate::Operate,
};
pub use self::{alerts::AlertSink, operate::Action};
use crate::{
    clock::SharedClock,
    error::ApiError,
    ids::SharedIds,
    jq::{AheadCounts, TransformPool},
    ledger::Ledger,
    limits,
    model::Id,
};

/// What every destination actor shares.
#[derive(Debug)]
pub struct Shared {
    pub ledger: Ledger,
    pub clock: SharedClock,
    pub ids: SharedIds,
    pub pool: TransformPool,
    pub retry_schedule_ms: Vec<u64>,
    pub alerts: AlertSink,
    /// TLS for `https://` destinations (`tls::client_config`).
    pub tls: Arc<rustls::ClientConfig>,
    /// What the actors' processing look-ahead did, for `/metrics`.
    pub ahead_counts: Arc<AheadCounts>,
}

/// The destination actors, by destination.
#[derive(Clone)]
pub struct Deliveries {
    shared: Arc<Shared>,
    actors: Arc<Mutex<HashMap<Id, Addr<DestinationActor>>>>,
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
    /// (which stop themselves), and wakes the rest.
    pub fn reconcile(&self) {
        let wanted: Vec<Id> = self.shared.ledger.state().read().destinations.keys().copied().collect();
        let mut actors = self.actors.lock();
        actors.retain(|id, addr| {
            let keep = wanted.contains(id);
            let _ = addr.try_send(Wake);
            keep
        });
        for id in wanted {
            if actors.contains_key(&id) {
                continue;
            }
            let arbiter = &self.arbiters[self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len()];
            let shared = self.shared.clone();
            let addr = DestinationActor::start_in_arbiter(arbiter, move |_| DestinationActor::new(id, shared));
            actors.insert(id, addr);
        }
    }

    /// The processing pool, for work that is not a delivery (queries).
    pub fn pool(&self) -> &TransformPool {
        &self.shared.pool
    }

    /// Tells a destination's actor to look at its queue. If its mailbox is
    /// full the hint is not needed: every queued message makes it look.
    pub fn wake(&self, destination: Id) {
        if let Some(addr) = self.actors.lock().get(&destination) {
            let _ = addr.try_send(Wake);
        }
    }

    /// What the processing look-ahead did, over every destination.
    pub fn ahead_counts(&self) -> &AheadCounts {
        &self.shared.ahead_counts
    }

    /// Runs an operator action on a destination's queue.
    pub async fn operate(&self, destination: Id, action: Action) -> Result<Value, ApiError> {
        let addr = self.actors.lock().get(&destination).cloned();
        let addr = addr.ok_or_else(|| ApiError::not_found(format!("destination {destination} not found")))?;
        match addr.send(Operate(action)).await {
            Ok(result) => result,
            Err(e) => Err(ApiError::internal(format!("the destination's actor is not running: {e}"))),
        }
    }
}
