//! Console sessions shared by the nodes: a JetStream key-value bucket,
//! `FERROX_SESSIONS`, of sessions by the digest of their cookie. Its
//! entries age out after a session's idle time unless written again, and a
//! session holds only digests and its CSRF token, never an operator's
//! token.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream::StorageType};
use bytes::Bytes;

use super::{ClusterError, Io, opening};

/// The bucket of console sessions.
pub const SESSIONS: &str = "FERROX_SESSIONS";
/// How long a read or write of a session may take before the node goes on
/// without the bucket.
const PATIENCE: Duration = Duration::from_secs(2);

/// The session bucket, read and written from the engine's threads.
#[derive(Debug, Clone)]
pub struct SessionBucket {
    io: Io,
    store: kv::Store,
}

impl SessionBucket {
    /// Opens the bucket, creating it with `replicas` copies and entries
    /// that last `idle` if it does not exist.
    pub fn open(io: &Io, context: &jetstream::Context, replicas: usize, idle: Duration) -> Result<Self, ClusterError> {
        let config = kv::Config {
            bucket: SESSIONS.into(),
            history: 1,
            max_age: idle,
            storage: StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        let context = context.clone();
        let store = io
            .call(async move {
                opening("opening the console session bucket", || async {
                    match context.get_key_value(SESSIONS).await {
                        Ok(store) => Ok(store),
                        Err(_) => context.create_key_value(config.clone()).await,
                    }
                })
                .await
            })
            .map_err(|e| ClusterError::JetStream {
                what: "opening the console session bucket",
                reason: e.to_string(),
            })??;
        Ok(Self { io: io.clone(), store })
    }

    fn run<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
    ) -> Result<T, String> {
        let timed =
            async move { tokio::time::timeout(PATIENCE, work).await.map_err(|_| "no answer in time".to_owned())? };
        self.io.call(timed).map_err(|e| e.to_string())?
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let (store, key) = (self.store.clone(), key.to_owned());
        self.run(async move {
            let entry = store.entry(&key).await.map_err(|e| e.to_string())?;
            Ok(entry.filter(|e| e.operation == kv::Operation::Put).map(|e| e.value.to_vec()))
        })
    }

    pub fn put(&self, key: &str, value: Vec<u8>) -> Result<(), String> {
        let (store, key) = (self.store.clone(), key.to_owned());
        self.run(async move { store.put(&key, Bytes::from(value)).await.map(|_| ()).map_err(|e| e.to_string()) })
    }

    pub fn delete(&self, key: &str) -> Result<(), String> {
        let (store, key) = (self.store.clone(), key.to_owned());
        self.run(async move { store.delete(&key).await.map_err(|e| e.to_string()) })
    }
}
