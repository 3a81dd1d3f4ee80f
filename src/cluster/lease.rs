//! Destination leases in a JetStream key-value bucket.
//!
//! The bucket keeps one entry per destination, naming the node that
//! delivers it, and ages every entry out `lease` after it was last written.
//! A node takes a free lease by creating the key (refused if it exists) and
//! keeps it by rewriting the key at the revision it last saw (refused if
//! anyone wrote since). So at most one node holds a destination at a time,
//! and a node that stops keeping its lease loses it within `lease`.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    kv::{self, CreateErrorKind, Operation, UpdateErrorKind},
    stream::StorageType,
};
use bytes::Bytes;

use super::{ClusterError, is_token, opening};

/// The bucket holding the leases.
pub const BUCKET: &str = "FERROX_LEASES";

/// A lease this node holds on one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub destination: String,
    /// The revision at which the lease was taken: the holder's fencing
    /// token, the same for as long as it keeps the lease.
    pub epoch: u64,
    /// The revision it was last kept at.
    pub revision: u64,
}

/// The leases, as seen by one node.
#[derive(Debug, Clone)]
pub struct Leases {
    store: kv::Store,
    node: String,
    lease: Duration,
}

impl Leases {
    /// Opens the bucket, creating it with `replicas` copies and entries
    /// that last `lease` if it does not exist. A bucket made before keeps
    /// its own lease duration, which [`duration`](Self::duration) reports.
    pub async fn open(
        context: &jetstream::Context,
        node: &str,
        replicas: usize,
        lease: Duration,
    ) -> Result<Self, ClusterError> {
        if !is_token(node) {
            return Err(ClusterError::BadName(node.into()));
        }
        let config = kv::Config {
            bucket: BUCKET.into(),
            history: 1,
            max_age: lease,
            storage: StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        let store = opening("opening the lease bucket", || async {
            match context.get_key_value(BUCKET).await {
                Ok(store) => Ok(store),
                Err(_) => context.create_key_value(config.clone()).await,
            }
        })
        .await?;
        let status = store.status().await.map_err(|e| ClusterError::jetstream("reading the lease bucket", e))?;
        let lasting = status.max_age();
        if lasting != lease {
            tracing::warn!(
                configured_ms = lease.as_millis() as u64,
                bucket_ms = lasting.as_millis() as u64,
                "the lease bucket was made with another lease_ms; its own holds for every node"
            );
        }
        Ok(Self { store, node: node.into(), lease: lasting })
    }

    /// How long a lease lasts unless kept.
    pub fn duration(&self) -> Duration {
        self.lease
    }

    /// Takes the lease on `destination` if no node holds it.
    pub async fn acquire(&self, destination: &str) -> Result<Option<Lease>, ClusterError> {
        if !is_token(destination) {
            return Err(ClusterError::BadName(destination.into()));
        }
        match self.store.create(destination, Bytes::from(self.node.clone())).await {
            Ok(revision) => Ok(Some(Lease { destination: destination.into(), epoch: revision, revision })),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(ClusterError::jetstream("taking a lease", e)),
        }
    }

    /// Keeps `lease` for another `duration()`; `Ok(false)` when it was lost
    /// (it expired, or another node took it), and then it must not be used.
    pub async fn keep(&self, lease: &mut Lease) -> Result<bool, ClusterError> {
        match self.store.update(&lease.destination, Bytes::from(self.node.clone()), lease.revision).await {
            Ok(revision) => {
                lease.revision = revision;
                Ok(true)
            }
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(ClusterError::jetstream("keeping a lease", e)),
        }
    }

    /// Gives `lease` up, so that another node may take it at once. A lease
    /// already lost is left to its new holder.
    pub async fn release(&self, lease: Lease) -> Result<(), ClusterError> {
        match self.store.delete_expect_revision(&lease.destination, Some(lease.revision)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == kv::DeleteErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(ClusterError::jetstream("releasing a lease", e)),
        }
    }

    /// The destinations whose lease some node holds now.
    pub async fn taken(&self) -> Result<std::collections::BTreeSet<String>, ClusterError> {
        use futures_util::TryStreamExt;
        let keys = self.store.keys().await.map_err(|e| ClusterError::jetstream("listing the leases", e))?;
        keys.try_collect().await.map_err(|e| ClusterError::jetstream("listing the leases", e))
    }

    /// The node holding `destination`'s lease and the lease's revision.
    pub async fn holder(&self, destination: &str) -> Result<Option<(String, u64)>, ClusterError> {
        let entry = self.store.entry(destination).await.map_err(|e| ClusterError::jetstream("reading a lease", e))?;
        Ok(entry
            .filter(|e| e.operation == Operation::Put)
            .map(|e| (String::from_utf8_lossy(&e.value).into_owned(), e.revision)))
    }
}
