//! Cluster mode on NATS JetStream (SPEC §17): the replicated journal
//! stream, the engine's journal on it, and the destination leases.
//!
//! What is here is the part every node shares with the others:
//!
//! - [`ClusterLog`]: the journal's records on one JetStream stream, each a
//!   message whose stream sequence is its position. A record is answered
//!   only once a quorum of servers synced it (the servers run with
//!   `sync_interval: always`). Every record carries a CRC-32 header that is
//!   checked on read, so a record damaged on a server's disk is refused
//!   rather than folded. An append may name the sequence it expects to
//!   follow, on the whole stream or on one record's subject: JetStream
//!   refuses it when another writer came first, which is how a node that
//!   lost a destination's lease is fenced off from its queue.
//! - [`Leases`]: one key per destination in a JetStream key-value bucket
//!   whose entries age out unless kept. Taking a lease creates the key
//!   only if it is absent; keeping it rewrites the key at the revision last
//!   seen. The revision is the holder's fencing token.
//! - [`Owner`]: a node's share of the destinations: heartbeats, rendezvous
//!   hashing over the live nodes, leases taken, kept and handed over, so
//!   that a dead node's destinations pass on within `lease_ms`.
//!
//! - [`StreamJournal`]: the engine's journal on the stream. Every node
//!   folds the whole stream in order; a node appends only right after the
//!   last record it folded, so every record is decided on the state it
//!   follows. `ferrox serve` runs on it when the configuration has a
//!   `[cluster]` section.
//! - [`Holding`]: what a node holds, which decides the destinations its
//!   actors deliver and whether it sends the cluster's alerts.

mod io;
mod journal;
mod lease;
mod log;
mod owners;
mod sessions;

use std::time::Duration;

pub use self::{
    io::Io,
    journal::StreamJournal,
    lease::{Lease, Leases},
    log::{ClusterLog, Expect, Record},
    owners::{Members, NODES, Owner, Round, channel_duty, preferred},
    sessions::{SESSIONS, SessionBucket},
};

/// The key of the duty to send the cluster's alerts, leased like a
/// destination so that one node at a time sends them.
pub const ALERTS_DUTY: &str = "alerts";
/// The key of the duty to snapshot the stream and purge what retention no
/// longer needs, so that one node at a time does.
pub const RETENTION_DUTY: &str = "retention";

/// The leases a node holds, as its [`Owner`] publishes them.
pub type Held = tokio::sync::watch::Receiver<std::collections::BTreeMap<String, u64>>;

/// What this node may do: in cluster mode, deliver the destinations whose
/// lease it holds and send alerts while it holds their duty; alone, all of
/// it.
#[derive(Debug, Clone, Default)]
pub struct Holding(Option<Leased>);

#[derive(Debug, Clone)]
struct Leased {
    node: std::sync::Arc<str>,
    held: Held,
    kept: Kept,
}

/// When a node's leases were last kept, to tell whether they surely are
/// still its own: a process that was frozen or cut off learns it from its
/// own clock before it sends anything more.
#[derive(Debug, Clone)]
pub struct Kept {
    /// When the last round that kept every lease began.
    at: std::sync::Arc<parking_lot::Mutex<tokio::time::Instant>>,
    /// How long after that the leases surely last: a quarter of a lease,
    /// well within the half a lease their entries live.
    sure_for: Duration,
}

impl Kept {
    pub(crate) fn new(sure_for: Duration) -> Self {
        Self { at: std::sync::Arc::new(parking_lot::Mutex::new(tokio::time::Instant::now())), sure_for }
    }

    /// A round that began at `at` kept every lease.
    pub(crate) fn kept(&self, at: tokio::time::Instant) {
        let mut last = self.at.lock();
        *last = (*last).max(at);
    }

    /// Whether the leases are surely still held now.
    pub fn sure(&self) -> bool {
        self.at.lock().elapsed() < self.sure_for
    }
}

impl Holding {
    /// A node alone: it holds everything.
    pub fn everything() -> Self {
        Self(None)
    }

    /// Cluster node `node` holding what `held` says, as it changes, kept
    /// as `kept` tells.
    pub fn leased(node: &str, held: Held, kept: Kept) -> Self {
        Self(Some(Leased { node: node.into(), held, kept }))
    }

    /// Whether this node holds the lease of `key` (a destination's ID, or
    /// a duty) now.
    pub fn holds(&self, key: &str) -> bool {
        self.epoch(key).is_some()
    }

    /// The fencing token of the lease held on `key`: its epoch in cluster
    /// mode, 0 alone; `None` when this node does not hold it.
    pub fn epoch(&self, key: &str) -> Option<u64> {
        match &self.0 {
            None => Some(0),
            Some(leased) => leased.held.borrow().get(key).copied(),
        }
    }

    /// In cluster mode, this node's name and the lease of `key` it holds,
    /// with which it records a takeover and fences its outcomes.
    pub fn lease_of(&self, key: &str) -> Option<(std::sync::Arc<str>, u64)> {
        let leased = self.0.as_ref()?;
        let epoch = leased.held.borrow().get(key).copied()?;
        Some((leased.node.clone(), epoch))
    }

    /// Whether the leases held are surely still this node's now (always
    /// alone): a node whose rounds have not kept them lately (frozen, or
    /// cut off from the cluster) sends nothing until one does.
    pub fn sure(&self) -> bool {
        self.0.as_ref().is_none_or(|leased| leased.kept.sure())
    }

    /// The leases held, to wait for their changes; `None` alone.
    pub fn watch(&self) -> Option<Held> {
        self.0.as_ref().map(|leased| leased.held.clone())
    }
}

/// How a node joins the cluster: the `[cluster]` settings of SPEC §17.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// NATS servers to connect to (`nats://host:port`); the client learns
    /// the rest of the cluster from them.
    pub nats_urls: Vec<String>,
    /// This node's name, unique in the cluster: the holder named in leases.
    pub node_name: String,
    /// Copies of every stream and bucket (3 in production; 1–5).
    pub replicas: usize,
    /// How long a lease lasts without being kept.
    pub lease: Duration,
}

impl ClusterSettings {
    pub const DEFAULT_REPLICAS: usize = 3;
    pub const DEFAULT_LEASE: Duration = Duration::from_millis(10_000);

    /// Checks the settings, saying what is wrong with the first bad one.
    pub fn check(&self) -> Result<(), String> {
        if self.nats_urls.is_empty() {
            return Err("cluster.nats_urls names no server".into());
        }
        for url in &self.nats_urls {
            if url.trim().is_empty() {
                return Err("cluster.nats_urls holds an empty address".into());
            }
        }
        if !is_token(&self.node_name) {
            return Err(format!("cluster.node_name {:?} must be 1–64 letters, digits, '-' or '_'", self.node_name));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(format!("cluster.replicas is {}; it must be 1–5", self.replicas));
        }
        if self.lease < Duration::from_millis(500) || self.lease > Duration::from_secs(600) {
            return Err(format!("cluster.lease_ms is {}; it must be 500–600000", self.lease.as_millis()));
        }
        Ok(())
    }
}

/// Whether `name` can stand in a NATS subject or key: letters, digits,
/// `-` and `_`, 1–64 of them.
pub(crate) fn is_token(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach the NATS servers {urls}: {reason}")]
    Connect { urls: String, reason: String },
    #[error("JetStream {what}: {reason}")]
    JetStream { what: &'static str, reason: String },
    #[error("the append expected to follow sequence {expected}, but another writer came first")]
    Conflict { expected: u64 },
    #[error("stream record {sequence}: {reason}")]
    Damaged { sequence: u64, reason: String },
    #[error("{0:?} cannot name a destination in the cluster")]
    BadName(String),
}

impl ClusterError {
    fn jetstream(what: &'static str, error: impl std::fmt::Display) -> Self {
        Self::JetStream { what, reason: error.to_string() }
    }
}

/// How long opening a stream or bucket waits for a cluster that is still
/// electing its leaders.
const OPEN_PATIENCE: Duration = Duration::from_secs(30);

/// Runs `open` until it succeeds or `OPEN_PATIENCE` has passed: a cluster
/// that has just started answers timeouts until its servers elect a leader.
async fn opening<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    what: &'static str,
    mut open: impl FnMut() -> F,
) -> Result<T, ClusterError> {
    let end = tokio::time::Instant::now() + OPEN_PATIENCE;
    loop {
        match open().await {
            Ok(opened) => return Ok(opened),
            Err(e) if tokio::time::Instant::now() >= end => return Err(ClusterError::jetstream(what, e)),
            Err(e) => tracing::debug!(error = %e, "{what}: retrying"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Connects to the NATS servers as node `settings.node_name`.
pub async fn connect(settings: &ClusterSettings) -> Result<async_nats::jetstream::Context, ClusterError> {
    settings.check().map_err(|reason| ClusterError::Connect { urls: settings.nats_urls.join(","), reason })?;
    let client = async_nats::ConnectOptions::new()
        .name(format!("ferrox {}", settings.node_name))
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(settings.nats_urls.as_slice())
        .await
        .map_err(|e| ClusterError::Connect { urls: settings.nats_urls.join(","), reason: e.to_string() })?;
    let mut context = async_nats::jetstream::new(client);
    // A quorum commit waits out a leader election when a server is lost.
    context.set_timeout(Duration::from_secs(10));
    Ok(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClusterSettings {
        ClusterSettings {
            nats_urls: vec!["nats://127.0.0.1:4222".into()],
            node_name: "node-1".into(),
            replicas: ClusterSettings::DEFAULT_REPLICAS,
            lease: ClusterSettings::DEFAULT_LEASE,
        }
    }

    #[test]
    fn settings_are_checked_one_by_one() {
        assert_eq!(settings().check(), Ok(()));
        type Spoil = fn(&mut ClusterSettings);
        let cases: [(Spoil, &str); 5] = [
            (|s| s.nats_urls.clear(), "names no server"),
            (|s| s.nats_urls.push(" ".into()), "empty address"),
            (|s| s.node_name = "node 1".into(), "must be 1–64 letters"),
            (|s| s.replicas = 7, "must be 1–5"),
            (|s| s.lease = Duration::from_millis(100), "must be 500–600000"),
        ];
        for (spoil, expected) in cases {
            let mut bad = settings();
            spoil(&mut bad);
            let error = bad.check().expect_err(expected);
            assert!(error.contains(expected), "{error:?} should say {expected:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn leases_are_sure_only_for_a_while_after_a_round_kept_them() {
        let lease = Duration::from_millis(4_000);
        let kept = Kept::new(lease / 4);
        let (_publish, held) =
            tokio::sync::watch::channel(std::collections::BTreeMap::from([("dest-1".to_owned(), 17)]));
        let holding = Holding::leased("node-1", held, kept.clone());
        assert!(holding.sure());
        assert_eq!(holding.lease_of("dest-1"), Some(("node-1".into(), 17)));
        assert_eq!((holding.epoch("dest-1"), holding.epoch("dest-2")), (Some(17), None));
        // Frozen past a quarter of a lease with no round: no longer sure.
        tokio::time::advance(lease / 4).await;
        assert!(!holding.sure());
        // A round that began before the freeze and ended after it does not
        // make them sure again; one that begins now does.
        kept.kept(tokio::time::Instant::now() - lease / 2);
        assert!(!holding.sure());
        kept.kept(tokio::time::Instant::now());
        assert!(holding.sure());
        // Alone, a node holds everything, always surely.
        assert!(Holding::everything().sure());
        assert_eq!(Holding::everything().epoch("dest-2"), Some(0));
    }

    #[test]
    fn tokens_are_what_a_subject_can_hold() {
        assert!(is_token("lab-system_2"));
        for bad in ["", "a.b", "a*", "a>", "a b", &"x".repeat(65)] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }
}
