//! Start-up: open the journal, replay it into state, start the router,
//! upsert the configured objects, and serve HTTP.

use std::{net::SocketAddr, sync::Arc};

use actix::Actor;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use ferrox_storage::Options;
use serde_json::Value;

use crate::{
    auth::TokenKey,
    clock::SharedClock,
    config::Config,
    delivery::{AlertSink, Deliveries, Shared},
    error::ApiError,
    http::{self, AppCtx},
    ids::{IdSource, SharedIds},
    journal::{Event, Journal, WalJournal},
    jq::{TransformPool, WorkerCommand},
    ledger::Ledger,
    limits,
    model::Id,
    objects::{DestinationSpec, SourceSpec, SubscriptionSpec},
    retention,
    router::{Change, Decide, Router},
    state::State,
    tls,
};

/// A running engine: the HTTP server and what it serves.
pub struct Running {
    pub server: actix_web::dev::Server,
    pub addrs: Vec<SocketAddr>,
    pub ctx: AppCtx,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("addrs", &self.addrs).finish_non_exhaustive()
    }
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
    let state = rebuild(&journal)?;
    Ok((Arc::new(journal), state))
}

/// Rebuilds the state from a journal: from its last snapshot, if any.
pub fn rebuild(journal: &dyn Journal) -> anyhow::Result<State> {
    let mut state = State::default();
    let snapshot = journal.last_snapshot().context("finding the journal's last snapshot")?;
    let from = match &snapshot {
        Some((position, snapshot)) => {
            tracing::info!(snapshot_at = position, from = snapshot.from, "replaying from the last snapshot");
            state.begin_replay(*position, snapshot);
            snapshot.from
        }
        None => 0,
    };
    journal
        .replay(from, &mut |position, replayed| {
            state.apply_replayed(position, replayed);
            Ok(())
        })
        .context("replaying the journal")?;
    if let Some(position) = state.replay_snapshot_pending() {
        anyhow::bail!("replaying the journal: the snapshot at {position} was not met");
    }
    Ok(state)
}

/// Starts the engine: must run inside an actix system.
pub async fn start(config: Config, clock: SharedClock, ids: SharedIds) -> anyhow::Result<Running> {
    let tls = tls::client_config(config.delivery.ca_file.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
    let (journal, state) = recover(&config)?;
    let ledger = Ledger::new(journal, state);
    ledger.spawn_flusher(std::time::Duration::from_millis(limits::FLUSH_INTERVAL_MS));
    retention::spawn(
        ledger.clone(),
        clock.clone(),
        config.retention_ms(),
        std::time::Duration::from_millis(config.storage.compaction_interval_ms),
    );
    let shared = Shared {
        ledger: ledger.clone(),
        clock: clock.clone(),
        ids: ids.clone(),
        pool: TransformPool::start(
            limits::PROCESSING_WORKERS,
            WorkerCommand::current_exe().context("finding this executable for the processing workers")?,
            std::time::Duration::from_millis(config.delivery.transform_timeout_ms),
        )
        .context("starting the processing pool")?,
        retry_schedule_ms: config.delivery.retry_schedule_ms.clone(),
        alerts: AlertSink::start(config.alert_webhook_url.clone(), tls.clone()),
        tls: tls.clone(),
        ahead_counts: Arc::default(),
    };
    let deliveries = Deliveries::start(shared);
    let router = Router::new(ledger.clone(), clock.clone(), ids.clone()).with_deliveries(deliveries.clone()).start();
    let run = |decide: Box<Decide>| {
        let router = router.clone();
        async move {
            router
                .send(Change { decide })
                .await
                .map_err(|e| anyhow::anyhow!("router: {e}"))?
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
    };
    run(Box::new(|state, ids| {
        let event = state.token_key.is_none().then(|| Event::TokenKeyCreated { key: *TokenKey::generate(ids).bytes() });
        Ok((event, Value::Null))
    }))
    .await?;
    for spec in config.sources.clone() {
        run(Box::new(move |state, ids| upsert_source(state, ids, &spec)))
            .await
            .context("upserting a configured source")?;
    }
    let default_timeout_ms = config.delivery.timeout_ms;
    for spec in config.destinations.clone() {
        run(Box::new(move |state, ids| upsert_destination(state, ids, &spec, default_timeout_ms)))
            .await
            .context("upserting a configured destination")?;
    }
    for spec in config.subscriptions.clone() {
        run(Box::new(move |state, ids| upsert_subscription(state, ids, &spec)))
            .await
            .context("upserting a configured subscription")?;
    }
    let state = ledger.state().clone();
    let token_key = Arc::new(TokenKey::new(state.read().token_key.context("the token key was not created")?));
    let config = Arc::new(config);
    let journal = ledger.reader();
    let ctx = AppCtx { state, journal, router, deliveries, config: config.clone(), clock, ids, token_key, tls };
    let app_ctx = ctx.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(app_ctx.clone()))
            .app_data(http::QueryClient::new(&app_ctx.tls))
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
    })
    .bind(config.listen)
    .with_context(|| format!("binding {}", config.listen))?
    .shutdown_timeout(5);
    let addrs = server.addrs();
    Ok(Running { server: server.run(), addrs, ctx })
}

type Decided = Result<(Option<Event>, Value), ApiError>;

fn by_id_or_name<'a, T>(
    items: impl Iterator<Item = &'a T>,
    id: Option<&str>,
    name: &str,
    get: impl Fn(&T) -> (Id, &str),
) -> Option<&'a T> {
    let id = id.and_then(Id::parse);
    items.filter(|t| get(t).1 == name || Some(get(t).0) == id).min_by_key(|t| Some(get(t).0) != id)
}

fn upsert_source(state: &State, ids: &dyn IdSource, spec: &SourceSpec) -> Decided {
    let existing = by_id_or_name(state.sources.values(), spec.id.as_deref(), &spec.name, |s| (s.id, &s.name));
    let (source, _) = spec.build(None, existing, state, ids)?;
    Ok(((existing != Some(&source)).then_some(Event::SourceUpserted(source)), Value::Null))
}

fn upsert_destination(state: &State, ids: &dyn IdSource, spec: &DestinationSpec, default_timeout_ms: u64) -> Decided {
    let existing = by_id_or_name(state.destinations.values(), spec.id.as_deref(), &spec.name, |d| (d.id, &d.name));
    let destination = spec.build(None, existing, default_timeout_ms, ids)?;
    Ok(((existing != Some(&destination)).then_some(Event::DestinationUpserted(destination)), Value::Null))
}

fn upsert_subscription(state: &State, ids: &dyn IdSource, spec: &SubscriptionSpec) -> Decided {
    let wanted = (Id::parse(&spec.source_id), Id::parse(&spec.destination_id));
    let existing = match spec.id.as_deref().and_then(Id::parse) {
        Some(id) => state.subscriptions.get(&id),
        None => state
            .subscriptions
            .values()
            .find(|s| (Some(s.source_id), Some(s.destination_id)) == wanted && s.data_model == spec.data_model),
    };
    let subscription = spec.build(None, existing, state, ids)?;
    Ok(((existing != Some(&subscription)).then_some(Event::SubscriptionUpserted(subscription)), Value::Null))
}
