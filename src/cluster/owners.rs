//! Which node delivers which destination.
//!
//! Every node writes a heartbeat to the `FERROX_NODES` bucket, whose
//! entries age out like leases, so the live nodes are the bucket's keys.
//! A heartbeat carries how far its node has folded the journal stream, so
//! that retention purges nothing a live node has not folded.
//! Each destination prefers one live node by rendezvous hashing (the node
//! whose hash with the destination's ID is highest), so a node joining or
//! leaving moves only the destinations it wins or held. In each round a node:
//!
//! - keeps the leases it holds, and learns which it lost;
//! - hands over a lease whose destination now prefers another live node;
//! - takes the lease of a destination that prefers it, once free;
//! - takes any lease left free for a quarter of a lease, whichever node it
//!   prefers (an orphan whose preferred node is not taking it).
//!
//! Entries last half of `lease_ms` and rounds come every eighth, so a lease
//! is kept four times over before it could run out, and a dead owner's
//! destinations are taken within `lease_ms` of its death: half a lease for
//! its entries to age out, an eighth for the next round to see them gone.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::jetstream::{self, kv, stream::StorageType};
use bytes::Bytes;
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use tokio::{sync::watch, time::Instant};

use super::{ClusterError, ClusterSettings, Holding, Kept, Lease, Leases, opening};

/// The bucket of node heartbeats.
pub const NODES: &str = "FERROX_NODES";
/// The version of a heartbeat's value: 1 told how far the node folded, 2
/// adds the duties it takes that not every node does.
const HEARTBEAT_VERSION: u32 = 2;

/// A heartbeat's value. An empty value (written by a version before the
/// first) or one that does not parse is read as having folded nothing and
/// taking no optional duty.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Heartbeat {
    v: u32,
    /// The last stream sequence the node folded.
    folded: u64,
    /// The optional duties it takes: the alert channels it is configured
    /// with (version 2; none in version 1).
    #[serde(default)]
    duties: BTreeSet<String>,
}

impl Heartbeat {
    fn read(value: &[u8]) -> Self {
        serde_json::from_slice(value).unwrap_or_default()
    }
}

/// The live nodes as their heartbeats tell.
#[derive(Debug, Clone)]
pub struct Members {
    nodes: kv::Store,
}

impl Members {
    /// The last sequence every live node has folded: the lowest in their
    /// heartbeats (0 if none tells, or one does not).
    pub async fn folded_by_all(&self) -> Result<u64, ClusterError> {
        let keys: Vec<String> = self
            .nodes
            .keys()
            .await
            .map_err(|e| ClusterError::jetstream("listing the nodes", e))?
            .try_collect()
            .await
            .map_err(|e| ClusterError::jetstream("listing the nodes", e))?;
        let mut lowest: Option<u64> = None;
        for key in keys {
            // A node gone since it was listed has nothing to wait for.
            let Some(value) =
                self.nodes.get(&key).await.map_err(|e| ClusterError::jetstream("reading a heartbeat", e))?
            else {
                continue;
            };
            let folded = Heartbeat::read(&value).folded;
            lowest = Some(lowest.map_or(folded, |l| l.min(folded)));
        }
        Ok(lowest.unwrap_or(0))
    }
}

/// The optional duty of sending alerts through `channel` (a channel's
/// name): taken only by the nodes configured with it.
pub fn channel_duty(channel: &str) -> String {
    format!("{}-{channel}", super::ALERTS_DUTY)
}

/// Whether only some nodes take `key`: the duty of an alert channel.
fn optional(key: &str) -> bool {
    key.strip_prefix(super::ALERTS_DUTY).is_some_and(|rest| rest.starts_with('-'))
}

/// The destination's preferred node among `live`: the highest rendezvous
/// hash of node and destination.
pub fn preferred<'a>(destination: &str, live: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    live.into_iter().max_by_key(|node| {
        let digest = Sha256::new().chain_update(node.as_bytes()).chain_update([0]).chain_update(destination).finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first), *node)
    })
}

/// What one round changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Leases taken this round.
    pub gained: Vec<String>,
    /// Leases found lost (expired or taken): their work must stop at once.
    pub lost: Vec<String>,
    /// Leases given up because their destination prefers another node.
    pub handed_over: Vec<String>,
}

/// One node's share of the destinations.
#[derive(Debug)]
pub struct Owner {
    node: String,
    leases: Leases,
    nodes: kv::Store,
    held: BTreeMap<String, Lease>,
    /// When each destination's lease was first seen free, for orphans.
    free_since: HashMap<String, Instant>,
    lease: Duration,
    /// Where the held destinations are published as they change: a
    /// destination leaves it before its lease is given up, and joins it
    /// once its lease is taken.
    published: watch::Sender<BTreeMap<String, u64>>,
    /// How far this node has folded the stream, told in its heartbeat.
    folded: Arc<AtomicU64>,
    /// When a round last kept every lease.
    kept: Kept,
    /// The optional duties this node takes, told in its heartbeat.
    duties: BTreeSet<String>,
}

impl Owner {
    /// Joins the cluster as `settings.node_name`, opening (or creating) the
    /// lease and node buckets.
    pub async fn open(context: &jetstream::Context, settings: &ClusterSettings) -> Result<Self, ClusterError> {
        let entry_life = settings.lease / 2;
        let leases = Leases::open(context, &settings.node_name, settings.replicas, entry_life).await?;
        let config = kv::Config {
            bucket: NODES.into(),
            history: 1,
            max_age: entry_life,
            storage: StorageType::File,
            num_replicas: settings.replicas,
            ..Default::default()
        };
        let nodes = opening("opening the node bucket", || async {
            match context.get_key_value(NODES).await {
                Ok(store) => Ok(store),
                Err(_) => context.create_key_value(config.clone()).await,
            }
        })
        .await?;
        Ok(Self {
            node: settings.node_name.clone(),
            leases,
            nodes,
            held: BTreeMap::new(),
            free_since: HashMap::new(),
            lease: settings.lease,
            published: watch::Sender::new(BTreeMap::new()),
            folded: Arc::default(),
            kept: Kept::new(settings.lease / 4),
            duties: BTreeSet::new(),
        })
    }

    /// Takes the optional duties `duties` (see [`channel_duty`]) besides
    /// the keys every node takes; only nodes that take one are preferred
    /// for it.
    pub fn with_duties(mut self, duties: impl IntoIterator<Item = String>) -> Self {
        self.duties = duties.into_iter().collect();
        self
    }

    /// Where the node sets how far it has folded the stream, for its
    /// heartbeats.
    pub fn folded(&self) -> Arc<AtomicU64> {
        self.folded.clone()
    }

    /// The live nodes' heartbeats, to read apart from the rounds.
    pub fn members(&self) -> Members {
        Members { nodes: self.nodes.clone() }
    }

    /// How often rounds come.
    pub fn interval(&self) -> Duration {
        self.lease / 8
    }

    /// The destinations this node holds, with each lease's fencing token,
    /// as they change.
    pub fn held(&self) -> watch::Receiver<BTreeMap<String, u64>> {
        self.published.subscribe()
    }

    /// What this node holds, for the engine: the leases as they change,
    /// and whether they are surely still held.
    pub fn holding(&self) -> Holding {
        Holding::leased(&self.node, self.held(), self.kept.clone())
    }

    fn publish(&self) {
        self.published.send_replace(self.held.iter().map(|(d, l)| (d.clone(), l.epoch)).collect());
    }

    /// The nodes whose heartbeat has not aged out.
    pub async fn live(&self) -> Result<BTreeSet<String>, ClusterError> {
        let keys = self.nodes.keys().await.map_err(|e| ClusterError::jetstream("listing the nodes", e))?;
        keys.try_collect().await.map_err(|e| ClusterError::jetstream("listing the nodes", e))
    }

    /// The live nodes and the optional duties each takes.
    async fn live_duties(&self) -> Result<BTreeMap<String, BTreeSet<String>>, ClusterError> {
        let mut nodes = BTreeMap::new();
        for node in self.live().await? {
            let value = self.nodes.get(&node).await.map_err(|e| ClusterError::jetstream("reading a heartbeat", e))?;
            // A node gone since it was listed is not live.
            if let Some(value) = value {
                nodes.insert(node, Heartbeat::read(&value).duties);
            }
        }
        Ok(nodes)
    }

    /// One round over `destinations` (with this node's optional duties
    /// among them): heartbeat, keep, hand over, take.
    pub async fn round(&mut self, destinations: &[String]) -> Result<Round, ClusterError> {
        let beat =
            Heartbeat { v: HEARTBEAT_VERSION, folded: self.folded.load(Ordering::SeqCst), duties: self.duties.clone() };
        let value = serde_json::to_vec(&beat).map_err(|e| ClusterError::jetstream("writing the heartbeat", e))?;
        self.nodes
            .put(&self.node, Bytes::from(value))
            .await
            .map_err(|e| ClusterError::jetstream("writing the heartbeat", e))?;
        let live = self.live_duties().await?;
        // A key's candidates: every live node, or for an optional duty those
        // that take it.
        let candidates = |key: &str| -> Vec<&str> {
            live.iter().filter(|(_, duties)| !optional(key) || duties.contains(key)).map(|(n, _)| n.as_str()).collect()
        };
        let mut round = Round::default();

        let wanted: BTreeSet<&str> = destinations.iter().map(String::as_str).collect();
        let held: Vec<String> = self.held.keys().cloned().collect();
        for destination in held {
            let Some(lease) = self.held.get_mut(&destination) else { continue };
            if !self.leases.keep(lease).await? {
                self.held.remove(&destination);
                self.publish();
                round.lost.push(destination);
                continue;
            }
            let goes_elsewhere = preferred(&destination, candidates(&destination)) != Some(self.node.as_str());
            if goes_elsewhere || !wanted.contains(destination.as_str()) {
                if let Some(lease) = self.held.remove(&destination) {
                    self.publish();
                    self.leases.release(lease).await?;
                }
                round.handed_over.push(destination);
            }
        }

        let now = Instant::now();
        let taken = self.leases.taken().await?;
        for destination in destinations {
            if self.held.contains_key(destination) {
                continue;
            }
            let mine = preferred(destination, candidates(destination)) == Some(self.node.as_str());
            if taken.contains(destination) {
                self.free_since.remove(destination);
                continue;
            }
            let since = *self.free_since.entry(destination.clone()).or_insert(now);
            if (mine || now.duration_since(since) >= self.lease / 4)
                && let Some(lease) = self.leases.acquire(destination).await?
            {
                self.free_since.remove(destination);
                self.held.insert(destination.clone(), lease);
                self.publish();
                round.gained.push(destination.clone());
            }
        }
        Ok(round)
    }

    /// Runs rounds every [`interval`](Self::interval) until `stop` is set;
    /// then hands every lease over and leaves. A round that fails (the
    /// cluster unreachable) is logged and tried again; leases not kept in
    /// time are lost, and the next round that succeeds says so.
    pub async fn run(self, destinations: Vec<String>, stop: watch::Receiver<bool>) {
        self.run_over(watch::channel(destinations).1, stop).await;
    }

    /// Like [`run`](Self::run), over the destinations `destinations` holds
    /// at each round: the engine's, as they are configured.
    pub async fn run_over(mut self, destinations: watch::Receiver<Vec<String>>, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(self.interval());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut kept_at = Instant::now();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => break,
            }
            let now = destinations.borrow().clone();
            // A round that hangs (the cluster unreachable) is a failed one:
            // waiting out the client's timeout would outlast the leases.
            let began = Instant::now();
            let round = tokio::time::timeout(self.lease / 4, self.round(&now)).await;
            match round {
                Ok(Ok(round)) => {
                    kept_at = began;
                    self.kept.kept(began);
                    if !round.lost.is_empty() {
                        tracing::warn!(node = %self.node, lost = ?round.lost,
                            "destination leases lost (run out or taken): no longer delivering them");
                    }
                    if !round.gained.is_empty() || !round.handed_over.is_empty() {
                        tracing::info!(node = %self.node, gained = ?round.gained,
                            handed_over = ?round.handed_over, "destination leases changed");
                    }
                }
                Ok(Err(e)) => tracing::warn!(node = %self.node, error = %e, "a lease round failed"),
                Err(_) => tracing::warn!(node = %self.node, "a lease round got no answer in time"),
            }
            self.give_up_if_cut_off(kept_at);
        }
        self.leave().await;
    }

    /// Stops holding everything when no round has kept the leases for a
    /// quarter of a lease: they run out half a lease after the last keep,
    /// and another node may take them then, so this node stops delivering
    /// well before. It takes them again, or others do, once it can.
    fn give_up_if_cut_off(&mut self, kept_at: Instant) {
        if self.held.is_empty() || kept_at.elapsed() < self.lease / 4 {
            return;
        }
        let held = std::mem::take(&mut self.held);
        self.publish();
        tracing::warn!(node = %self.node, destinations = held.len(), cut_off_ms = kept_at.elapsed().as_millis() as u64,
            "cut off from the cluster: no longer delivering the destinations whose leases it cannot keep");
    }

    /// Gives every lease up and removes the heartbeat, so that the other
    /// nodes take over at once rather than after the leases run out.
    pub async fn leave(&mut self) {
        let held = std::mem::take(&mut self.held);
        self.publish();
        for (_, lease) in held {
            if let Err(e) = self.leases.release(lease).await {
                tracing::warn!(node = %self.node, error = %e, "a lease could not be given up");
            }
        }
        if let Err(e) = self.nodes.delete(&self.node).await {
            tracing::warn!(node = %self.node, error = %e, "the heartbeat could not be removed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_destination_prefers_one_node_and_a_leaving_node_moves_only_its_own() {
        let three = ["node-1", "node-2", "node-3"];
        let destinations: Vec<String> = (0..300).map(|i| format!("dest-{i}")).collect();
        let before: Vec<&str> = destinations.iter().map(|d| preferred(d, three).expect("a node")).collect();
        for node in three {
            let share = before.iter().filter(|n| **n == node).count();
            assert!((60..=140).contains(&share), "{node} prefers {share} of 300");
        }
        let two = ["node-1", "node-3"];
        for (d, was) in destinations.iter().zip(&before) {
            let now = preferred(d, two).expect("a node");
            if *was != "node-2" {
                assert_eq!(now, *was, "{d} moved though its node stayed");
            }
        }
        assert_eq!(preferred("dest-1", []), None);
        assert_eq!(preferred("dest-1", three), preferred("dest-1", ["node-3", "node-1", "node-2"]));
    }
}
