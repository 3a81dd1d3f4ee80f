//! Start-up: bind the port, open the journal and replay it into state,
//! apply the configuration file's objects, start the router and the
//! destination actors, and serve HTTP.

mod in_cluster;

use std::{net::SocketAddr, sync::Arc};

use actix::Actor;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use ferrox_storage::Options;

use self::in_cluster::{Membership, StreamCluster, fold_arrivals, follow_ownership, join, shared_sessions};

use crate::{
    alerts,
    auth::TokenKey,
    clock::SharedClock,
    cluster::{Holding, StreamJournal, channel_duty},
    config::Config,
    delivery::{Deliveries, Shared},
    error::ApiError,
    history::History,
    http::{self, AppCtx, health::EngineLevels},
    ids::{IdSource, SharedIds},
    journal::{Event, Journal, JournalError, Replayed, Snapshot, WalJournal},
    jq::{TransformPool, WorkerCommand},
    ledger::Ledger,
    limits,
    metrics::Metrics,
    objects::file,
    retention,
    router::Router,
    state::State,
    tls,
    traces::Traces,
};

/// A running engine: the HTTP server and what it serves.
pub struct Running {
    pub server: actix_web::dev::Server,
    pub addrs: Vec<SocketAddr>,
    /// `https` with `[tls]`, else `http`.
    pub scheme: &'static str,
    pub ctx: AppCtx,
    ledger: Ledger,
    /// In cluster mode: how to leave the cluster when serving ends.
    cluster: Option<Membership>,
}

impl Running {
    /// Serves until the server is stopped (SIGTERM, SIGINT), then compacts
    /// once, so that the next start replays only the work in hand rather
    /// than everything since the last periodic compaction.
    pub async fn serve(self) -> anyhow::Result<()> {
        let served = self.server.await.context("serving HTTP");
        self.ctx.traces.shutdown();
        served?;
        if let Some(membership) = self.cluster {
            membership.stop.send_replace(true);
            let left = actix_web::rt::task::spawn_blocking(move || membership.left.recv_timeout(LEAVING));
            if !matches!(left.await, Ok(Ok(()))) {
                tracing::warn!("the cluster was not told this node left; its leases run out instead");
            }
            // The cluster's journal keeps its own limits: nothing to compact here.
            return Ok(());
        }
        let (now_ms, retention_ms) = (self.ctx.clock.now_ms(), self.ctx.config.retention_ms());
        match retention::compact_at_stop(&self.ledger, now_ms, retention_ms).await {
            Ok(done) => tracing::info!(snapshot_at = done.snapshot_at, "journal compacted at stop"),
            Err(e) => tracing::warn!(error = %e, "the compaction at stop failed; the next start replays more"),
        }
        Ok(())
    }
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("addrs", &self.addrs).finish_non_exhaustive()
    }
}

/// How long a stopping node waits to hand its leases over.
const LEAVING: std::time::Duration = std::time::Duration::from_secs(5);

/// The journal a node runs on: its embedded log, or the cluster's stream.
enum Opened {
    Embedded(Arc<WalJournal>),
    Cluster(Arc<StreamJournal>),
}

impl Opened {
    fn journal(&self) -> Arc<dyn Journal> {
        match self {
            Self::Embedded(wal) => wal.clone(),
            Self::Cluster(stream) => stream.clone(),
        }
    }
}

/// Opens the cluster's journal stream and rebuilds the state from it.
fn recover_cluster(config: &Config, cluster: &crate::config::ClusterConfig) -> anyhow::Result<(Opened, State)> {
    let settings = cluster.settings();
    let journal = StreamJournal::open(&settings)
        .with_context(|| format!("joining the cluster through {}", settings.nats_urls.join(", ")))?;
    tracing::info!(node = %settings.node_name, records = journal.durable_through(), "joined the cluster's journal stream");
    let (record, taken) = (config.max_record_bytes() as usize, journal.max_record_bytes());
    if record > taken {
        tracing::warn!(
            max_body_bytes = config.max_body_bytes,
            nats_max_payload = taken,
            "the NATS servers take messages of at most {taken} bytes: a SEND whose record is larger is refused \
             (503); raise max_payload on the servers above max_body_bytes plus 64 KiB"
        );
    }
    let history = History::open(&config.history_dir(), journal.released_below()).context("opening the history")?;
    let state = rebuild(&journal, history)?;
    Ok((Opened::Cluster(Arc::new(journal)), state))
}

/// Opens the journal and rebuilds the state from it.
pub fn recover(config: &Config) -> anyhow::Result<(Arc<WalJournal>, State)> {
    let options = Options {
        segment_bytes: config.storage.segment_bytes,
        max_record_bytes: config.max_record_bytes(),
        ..Options::default()
    };
    let journal = WalJournal::open(&config.wal_dir(), options).context("opening the write-ahead log")?;
    let stats = journal.wal().recovery_stats().clone();
    tracing::info!(
        records = stats.records,
        segments = stats.segments,
        torn_bytes_dropped = stats.torn_bytes_dropped,
        duration_ms = stats.duration.as_millis() as u64,
        "write-ahead log recovered"
    );
    let history = History::open(&config.history_dir(), journal.released_below()).context("opening the history")?;
    let state = rebuild(&journal, history)?;
    Ok((Arc::new(journal), state))
}

/// Rebuilds the state from a journal and the history beside it: from the
/// journal's last snapshot, if any, when the history is intact; from every
/// retained record, rebuilding the history, when it is not, or when the
/// replay finds it damaged.
pub fn rebuild(journal: &dyn Journal, history: History) -> anyhow::Result<State> {
    let mut state = replay(journal, State::new(history))?;
    if let Some(failure) = state.history_failure.take() {
        let mut history = std::mem::replace(state.history_mut(), History::temporary());
        history.reset(format!("the replay could not read it back: {failure}")).context("emptying the history")?;
        state = replay(journal, State::new(history))?;
        if let Some(failure) = state.history_failure.take() {
            anyhow::bail!("the history was rebuilt and still cannot be read back: {failure}");
        }
    }
    Ok(state)
}

fn replay(journal: &dyn Journal, mut state: State) -> anyhow::Result<State> {
    let snapshot = journal.last_snapshot().context("finding the journal's last snapshot")?;
    let checkpointed = state.history().checkpointed_through();
    if state.history().rebuilding().is_none() {
        let mismatch = if checkpointed > journal.durable_through() {
            Some(format!("it holds events up to {checkpointed}, past the journal's end"))
        } else {
            snapshot.as_ref().filter(|(_, s)| s.from > checkpointed + 1).map(|(_, s)| {
                format!("the journal replays from {} but the history holds events only up to {checkpointed}", s.from)
            })
        };
        if let Some(reason) = mismatch {
            state.history_mut().reset(reason).context("emptying the history to rebuild it")?;
        }
    }
    let rebuilding = state.history().rebuilding().map(str::to_owned);
    let from = match (&snapshot, &rebuilding) {
        (Some((position, snapshot)), None) => {
            tracing::info!(snapshot_at = position, from = snapshot.from, "replaying from the last snapshot");
            state.begin_replay(*position, snapshot);
            state.begin_replay_at(snapshot.first_log_index);
            snapshot.from
        }
        (Some((position, snapshot)), Some(reason)) => {
            let start = journal.released_below().max(journal.retained().0).min(snapshot.from);
            let first_log = first_log_before(journal, start, snapshot)?;
            announce_rebuild(reason, start);
            state.begin_replay(*position, snapshot);
            state.begin_replay_at(first_log);
            start
        }
        (None, reason) => {
            if let Some(reason) = reason {
                announce_rebuild(reason, 0);
            }
            state.begin_replay_at(0);
            0
        }
    };
    let replayed = journal.replay(from, &mut |position, replayed| {
        state.apply_replayed(position, replayed);
        state.replayed_at_start += 1;
        state.settle(position).map_err(|e| format!("writing the history: {e}"))
    });
    if let Err(e) = replayed {
        if state.history().rebuilding().is_none() && !matches!(e, JournalError::Storage(_)) {
            // The history failed the replay, not the journal: rebuild it.
            state.history_failure = Some(e.to_string());
            return Ok(state);
        }
        return Err(e).context("replaying the journal");
    }
    if state.history_failure.is_some() {
        return Ok(state);
    }
    if let Some(position) = state.replay_snapshot_pending() {
        anyhow::bail!("replaying the journal: the snapshot at {position} was not met");
    }
    state.end_replay();
    Ok(state)
}

fn announce_rebuild(reason: &str, from: u64) {
    match reason {
        crate::history::NO_HISTORY => tracing::info!(from, "building the history from the journal"),
        _ => tracing::warn!(reason = %reason, from, "rebuilding the history from the journal"),
    }
}

/// The number of the first log accepted at or after `start`, given that
/// the snapshot's `from` has `first_log_index`: counted back over the
/// logs made in between (accepted or resent).
fn first_log_before(journal: &dyn Journal, start: u64, snapshot: &Snapshot) -> anyhow::Result<u64> {
    const DONE: &str = "reached the snapshot's start";
    let mut between = 0u64;
    journal
        .replay(start, &mut |position, replayed| {
            if position >= snapshot.from {
                return Err(DONE.into());
            }
            match replayed {
                Replayed::Message(view) => between += view.logs.len() as u64,
                Replayed::Event(Event::LogsResent(resent)) => between += resent.logs.len() as u64,
                Replayed::Event(_) => {}
            }
            Ok(())
        })
        .or_else(|e| match e {
            JournalError::Undecodable { reason, .. } if reason == DONE => Ok(()),
            e => Err(e),
        })
        .context("counting the logs before the snapshot")?;
    snapshot.first_log_index.checked_sub(between).with_context(|| {
        format!("the snapshot numbers its first log {} but {between} logs come before it", snapshot.first_log_index)
    })
}

/// Starts the engine: must run inside an actix system. The port is bound
/// first and answers "starting" (`http::starting`) while the journal is
/// replayed and the engine set up; then the engine takes it over.
pub async fn start(config: Config, clock: SharedClock, ids: SharedIds) -> anyhow::Result<Running> {
    let serving = match config.tls.files().map_err(|e| anyhow::anyhow!(e))? {
        Some((cert, key)) => Some(tls::ServingCert::load(cert, key).map_err(|e| anyhow::anyhow!(e))?),
        None => None,
    };
    let https = serving.as_ref().map(tls::ServingCert::server_config).transpose().map_err(|e| anyhow::anyhow!(e))?;
    let listener = std::net::TcpListener::bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    let shared_listener = listener.try_clone().context("sharing the listening socket")?;
    let starting = http::starting::serve(shared_listener, https.clone()).context("answering while starting")?;
    let starting_handle = starting.handle();
    actix_web::rt::spawn(starting);
    let built = build(config, clock, ids, serving).await;
    starting_handle.stop(true).await;
    let (ctx, ledger, cluster) = built?;
    let app_ctx = ctx.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(app_ctx.clone()))
            .app_data(http::QueryClient::new(app_ctx.tls.clone(), app_ctx.config.egress()))
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ApiError::invalid(format!("Invalid query: {e}")).into()),
            )
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| ApiError::not_found(format!("Invalid path: {e}")).into()),
            )
            .configure(http::routes)
            .default_service(web::to(|| async {
                HttpResponse::NotFound().json(ApiError::not_found("No such endpoint").redox_body("Http", None, None))
            }))
    });
    let (server, scheme) = match https {
        Some(https) => (server.listen_rustls_0_23(listener, https), "https"),
        None => (server.listen(listener), "http"),
    };
    let server = server.context("serving HTTP on the bound port")?.shutdown_timeout(5);
    let addrs = server.addrs();
    crate::logs::started(&ctx.config, &ctx.state.read(), &addrs, scheme);
    Ok(Running { server: server.run(), addrs, scheme, ctx, ledger, cluster })
}

/// Replays the journal, applies the configuration file and starts every
/// part of the engine; returns what the HTTP handlers share, and the ledger.
async fn build(
    config: Config,
    clock: SharedClock,
    ids: SharedIds,
    serving: Option<Arc<tls::ServingCert>>,
) -> anyhow::Result<(AppCtx, Ledger, Option<Membership>)> {
    let tls = tls::client_config(config.delivery.ca_file.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
    let client_tls = Arc::new(tls::ClientTls::new(tls.clone()));
    // From here on SIGHUP reloads certificates rather than ending the
    // process, replay included.
    tls::on_hangup(serving, client_tls.clone()).context("listening for SIGHUP")?;
    let (opened, state) = match &config.cluster {
        Some(cluster) => recover_cluster(&config, cluster)?,
        None => recover(&config).map(|(wal, state)| (Opened::Embedded(wal), state))?,
    };
    let metrics = Arc::new(Metrics::new());
    let traces = Arc::new(match &config.otlp_endpoint {
        Some(endpoint) => Traces::export_to(endpoint).map_err(|e| anyhow::anyhow!(e))?,
        None => Traces::off(),
    });
    // Weak: the metrics read their levels from the journal, so a strong
    // reference here would keep the journal (and its lock) alive forever.
    let observed = Arc::downgrade(&metrics);
    if let Opened::Embedded(wal) = &opened {
        wal.wal().observe_syncs(Box::new(move |took, records| {
            if let Some(metrics) = observed.upgrade() {
                metrics.wal_synced(took, records);
            }
        }));
    }
    let ledger = Ledger::new(opened.journal(), state);
    // The whole file is checked before anything at all is written.
    plan_file(&config, &ledger.state().read(), ids.as_ref())?;
    let key = ledger
        .record_with(|state, _| {
            state.token_key.is_none().then(|| Event::TokenKeyCreated { key: *TokenKey::generate(ids.as_ref()).bytes() })
        })
        .context("creating the token key")?;
    if let Some((position, _)) = key {
        ledger.commit(position).await.context("creating the token key")?;
    }
    // Planned again as it is recorded: in a cluster, another node may have
    // applied the same file first.
    let mut owned = None;
    let applied = ledger
        .record_with(|state, _| {
            let plan = plan_file(&config, state, ids.as_ref()).ok()?;
            owned = Some(plan.owned);
            plan.event
        })
        .context("journaling the configuration file's objects")?;
    if let Some((position, _)) = applied {
        ledger.commit(position).await.context("journaling the configuration file's objects")?;
    }
    let file = Arc::new(owned.context("the configuration file could not be planned")?);
    let channels = alerts::configured(&config, &tls, ledger.state());
    let (holding, membership, members) = match &opened {
        Opened::Cluster(stream) => {
            let settings = config.cluster.as_ref().context("cluster mode without [cluster]")?.settings();
            let duties = channels.iter().map(|c| channel_duty(&c.name));
            let (holding, membership, members) = join(stream, &settings, &ledger, duties.collect())?;
            (holding, Some(membership), Some(members))
        }
        Opened::Embedded(_) => (Holding::everything(), None, None),
    };
    // In a cluster each node is configured on its own: a channel this node
    // lacks may be another's, so only a node alone closes one.
    let alone = matches!(opened, Opened::Embedded(_));
    alerts::open(&ledger, &channels, alone).await.context("opening the alert channels")?;
    alerts::start(ledger.clone(), clock.clone(), channels, holding.clone());
    alerts::backlog::watch(ledger.clone(), clock.clone(), ids.clone(), holding.clone());
    let compaction_interval = std::time::Duration::from_millis(config.storage.compaction_interval_ms);
    match &opened {
        Opened::Embedded(_) => {
            ledger.spawn_flusher(std::time::Duration::from_millis(limits::FLUSH_INTERVAL_MS));
            retention::spawn(ledger.clone(), clock.clone(), config.retention_ms(), compaction_interval);
        }
        Opened::Cluster(stream) => {
            let members = members.context("cluster mode without its members")?;
            retention::spawn_shared(
                ledger.clone(),
                clock.clone(),
                config.retention_ms(),
                compaction_interval,
                holding.clone(),
                Arc::new(StreamCluster { stream: stream.clone(), members }),
            );
        }
    }
    let shared = Shared {
        ledger: ledger.clone(),
        clock: clock.clone(),
        ids: ids.clone(),
        pool: TransformPool::start(
            limits::PROCESSING_WORKERS,
            WorkerCommand::current_exe(config.delivery.transform_memory_mb)
                .context("finding this executable for the processing workers")?,
            std::time::Duration::from_millis(config.delivery.transform_timeout_ms),
        )
        .context("starting the processing pool")?,
        retry_schedule_ms: config.delivery.retry_schedule_ms.clone(),
        tls: client_tls.clone(),
        egress: config.egress(),
        ahead_counts: Arc::default(),
        metrics: metrics.clone(),
        traces: traces.clone(),
        holding: holding.clone(),
    };
    let deliveries = Deliveries::start(shared);
    if let Opened::Cluster(_) = &opened {
        fold_arrivals(ledger.clone(), deliveries.clone());
        follow_ownership(deliveries.clone(), holding);
    }
    let router = Router::new(ledger.clone(), clock.clone(), ids.clone()).with_deliveries(deliveries.clone()).start();
    let state = ledger.state().clone();
    let token_key = Arc::new(TokenKey::new(state.read().token_key.context("the token key was not created")?));
    let journal = ledger.reader();
    // In cluster mode console sessions are shared, so that an operator
    // signed in on one node is on all.
    let sessions = match &opened {
        Opened::Cluster(stream) => Arc::new(shared_sessions(stream, &config)?),
        Opened::Embedded(_) => Arc::default(),
    };
    let config = Arc::new(config);
    let throttles = Arc::new(http::Throttles::new(&clock));
    let operators = Arc::new(config.operators().map_err(|e| anyhow::anyhow!("operators: {e}"))?);
    let ctx = AppCtx {
        state,
        journal,
        router,
        deliveries,
        config,
        file,
        throttles,
        clock,
        ids,
        token_key,
        tls: client_tls,
        operators,
        sessions,
        metrics,
        traces,
    };
    ctx.metrics.read_levels_from(Arc::new(EngineLevels {
        state: ctx.state.clone(),
        journal: ctx.journal.clone(),
        ahead: ctx.deliveries.ahead_counts_shared(),
    }));
    Ok((ctx, ledger, membership))
}

/// Checks the configuration file's objects as a whole: what to journal,
/// all of them or none, and which objects the file owns.
fn plan_file(config: &Config, state: &State, ids: &dyn IdSource) -> anyhow::Result<file::Plan> {
    let planned = file::plan(&config.declared(), state, ids);
    planned.map_err(|errors| {
        let origin = config.origin.as_ref().map_or_else(String::new, |p| format!(" {}", p.display()));
        anyhow::anyhow!(
            "the configuration file{origin} has {} error(s); nothing of it was applied:\n  {}",
            errors.len(),
            errors.join("\n  ")
        )
    })
}
