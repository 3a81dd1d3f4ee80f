//! A node's part in a cluster, as the engine starts it: joining the
//! sharing of destinations and duties, following what other nodes append,
//! retention's view of the cluster, and the shared console sessions.

use std::sync::Arc;

use anyhow::Context as _;

use crate::{
    cluster::{ALERTS_DUTY, Holding, Members, Owner, RETENTION_DUTY, SessionBucket, StreamJournal},
    config::Config,
    delivery::Deliveries,
    http,
    ledger::Ledger,
    limits, retention,
};

/// A cluster node's part in sharing the destinations: stopping it gives
/// its leases up at once, so the other nodes take over without waiting
/// for them to run out.
pub(super) struct Membership {
    pub(super) stop: tokio::sync::watch::Sender<bool>,
    pub(super) left: std::sync::mpsc::Receiver<()>,
}

/// Joins the sharing of destinations: this node's heartbeat and leases,
/// over the destinations configured, the alerts and retention duties, and
/// `duties`, the duties of the alert channels this node is configured
/// with; run on the cluster client's runtime.
pub(super) fn join(
    stream: &StreamJournal,
    settings: &crate::cluster::ClusterSettings,
    ledger: &Ledger,
    duties: Vec<String>,
) -> anyhow::Result<(Holding, Membership, Members)> {
    let (context, opening) = (stream.context().clone(), settings.clone());
    let owner = stream
        .io()
        .call(async move { Owner::open(&context, &opening).await })?
        .context("opening the cluster's lease buckets")?
        .with_duties(duties.clone());
    let holding = owner.holding();
    let (folded, members) = (owner.folded(), owner.members());
    let leased_keys = move |ledger: &Ledger| leased_keys(ledger, &duties);
    let (destinations, watched) = tokio::sync::watch::channel(leased_keys(ledger));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (done, left) = std::sync::mpsc::sync_channel(1);
    stream.io().spawn(async move {
        owner.run_over(watched, stopped).await;
        let _ = done.send(());
    });
    // The keys follow the configuration, and the heartbeat how far this
    // node folded: looked at every round.
    let ledger = ledger.clone();
    let every = settings.lease / 8;
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(every);
        loop {
            tick.tick().await;
            folded.store(ledger.state().read().position, std::sync::atomic::Ordering::SeqCst);
            let now = leased_keys(&ledger);
            destinations.send_if_modified(|keys| {
                let changed = *keys != now;
                *keys = now;
                changed
            });
        }
    });
    Ok((holding, Membership { stop, left }, members))
}

/// Retention's view of the cluster: where the stream starts, and how far
/// every live node has folded it.
pub(super) struct StreamCluster {
    pub(super) stream: Arc<StreamJournal>,
    pub(super) members: Members,
}

impl retention::Cluster for StreamCluster {
    fn stream_start(&self) -> Result<u64, crate::journal::JournalError> {
        self.stream.stream_start()
    }

    fn folded_by_all(&self) -> Result<u64, crate::journal::JournalError> {
        let members = self.members.clone();
        self.stream
            .io()
            .call(async move { members.folded_by_all().await })?
            .map_err(|e| crate::journal::JournalError::Cluster(e.to_string()))
    }
}

/// How long a console session lasts unused.
const CONSOLE_IDLE: std::time::Duration = std::time::Duration::from_millis(limits::CONSOLE_SESSION_IDLE_MS as u64);

/// The console's sessions kept in the cluster's session bucket.
#[derive(Debug)]
struct SharedSessions(crate::cluster::SessionBucket);

impl http::SessionStore for SharedSessions {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.get(key)
    }

    fn put(&self, key: &str, value: Vec<u8>) -> Result<(), String> {
        self.0.put(key, value)
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        self.0.delete(key)
    }
}

/// What a node leases: every destination, the alerts (backlog watch) and
/// retention duties, and its own optional `duties`.
fn leased_keys(ledger: &Ledger, duties: &[String]) -> Vec<String> {
    let state = ledger.state().read();
    let mut keys: Vec<String> = state.destinations.keys().map(ToString::to_string).collect();
    keys.extend([ALERTS_DUTY, RETENTION_DUTY].map(str::to_owned));
    keys.extend(duties.iter().cloned());
    keys
}

/// Folds other nodes' records as they arrive, and wakes the destination
/// actors they concern.
pub(super) fn fold_arrivals(ledger: Ledger, deliveries: Deliveries) {
    let Some(arrivals) = ledger.arrivals() else { return };
    actix_web::rt::spawn(async move {
        loop {
            match ledger.fold_arrived() {
                Ok(touched) => deliveries.touched(&touched),
                Err(e) => {
                    tracing::error!(error = %e, "the cluster's records could not be folded; trying again");
                    actix_web::rt::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            }
            arrivals.notified().await;
        }
    });
}

/// Starts and stops delivering as this node takes and gives up leases.
pub(super) fn follow_ownership(deliveries: Deliveries, holding: Holding) {
    let Some(mut held) = holding.watch() else { return };
    actix_web::rt::spawn(async move {
        while held.changed().await.is_ok() {
            deliveries.reconcile();
        }
    });
}

/// The console's sessions, shared through the cluster's session bucket.
pub(super) fn shared_sessions(stream: &StreamJournal, config: &Config) -> anyhow::Result<http::Sessions> {
    let replicas = config.cluster.as_ref().map_or(1, |c| c.settings().replicas);
    let bucket = SessionBucket::open(stream.io(), stream.context(), replicas, CONSOLE_IDLE)
        .context("opening the cluster's console sessions")?;
    Ok(http::Sessions::shared(Arc::new(SharedSessions(bucket))))
}
