//! The engine's journal on the cluster's stream: [`StreamJournal`].
//!
//! Every node appends to the one stream and folds all of it, its own
//! records and everyone else's, in stream order. An append names the
//! sequence it follows (the last record its node folded) and JetStream
//! refuses it if another record came first; the node then folds what it
//! missed and decides again. So every record was decided on exactly the
//! state it follows, as with the embedded log's single writer, and every
//! node folds the same records in the same order into the same state.
//!
//! The NATS client runs on a runtime of its own thread; the journal's
//! calls, which the engine makes synchronously, wait for its answers.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::{Condvar, Mutex};
use rkyv::util::AlignedVec;
use tokio::sync::Notify;

use super::{ClusterError, ClusterLog, ClusterSettings, Expect, Io, Record};
use crate::{
    journal::{
        CommitFuture, DecodeError, Event, Health, Journal, JournalError, NewLog, ReplayFn, Replayed, Snapshot, decode,
        decode_event, encode, message_payload,
    },
    limits,
};

/// The subject key of the engine's records.
const KEY: &str = "engine";
/// The subject key of snapshots, so that a starting node finds the last
/// one without reading the stream.
const SNAPSHOT_KEY: &str = "snapshot";
/// How long the follower waits for a record before it asks whether the
/// stream holds more than it got.
const FOLLOW_WATCH: Duration = Duration::from_secs(2);
/// How often an append that got no answer is repeated (under its ID).
const APPEND_TRIES: usize = 3;
/// How long a start's replay waits for the next record when the read is
/// cut off (a leader election), before the start fails.
const REPLAY_PATIENCE: Duration = Duration::from_secs(30);
/// How long a fold waits for the records another writer came first with.
const ARRIVAL_PATIENCE: Duration = Duration::from_millis(limits::CLUSTER_ARRIVAL_PATIENCE_MS);

/// Records that arrived from the stream and are not folded yet.
#[derive(Debug, Default)]
struct Inbox {
    records: Mutex<Arrived>,
    arrived: Condvar,
    notify: Arc<Notify>,
    /// The newest records, by sequence, within `CLUSTER_RECENT_BYTES`: the bodies
    /// the destination actors are about to deliver.
    recent: Mutex<Recent>,
}

#[derive(Debug, Default)]
struct Recent {
    records: BTreeMap<u64, (u16, Bytes)>,
    bytes: usize,
}

impl Recent {
    fn keep(&mut self, sequence: u64, kind: u16, payload: Bytes) {
        self.bytes += payload.len();
        self.records.insert(sequence, (kind, payload));
        while self.bytes > limits::CLUSTER_RECENT_BYTES {
            let Some((_, (_, oldest))) = self.records.pop_first() else { break };
            self.bytes -= oldest.len();
        }
    }
}

#[derive(Debug, Default)]
struct Arrived {
    records: BTreeMap<u64, Record>,
    /// Why the stream can no longer be followed (a damaged record).
    failed: Option<String>,
}

/// The journal on the cluster's stream.
#[derive(Debug)]
pub struct StreamJournal {
    io: Io,
    log: ClusterLog,
    context: async_nats::jetstream::Context,
    /// Names this node's appends: `<node>-<boot>-<n>`.
    node: String,
    boot: u64,
    proposals: AtomicU64,
    inbox: Arc<Inbox>,
    /// The highest sequence known to be stored: appended here or arrived.
    last: Arc<AtomicU64>,
    /// The stream's first sequence, as last seen: records below it were
    /// purged by retention.
    first: AtomicU64,
    health: Mutex<Health>,
}

impl StreamJournal {
    /// Connects to the cluster, opens (or creates) the journal stream and
    /// starts following it after its last record as it stands now.
    pub fn open(settings: &ClusterSettings) -> Result<Self, JournalError> {
        let io = Io::start().map_err(JournalError::Start)?;
        let opening = settings.clone();
        let (context, log) = io
            .call(async move {
                let context = super::connect(&opening).await?;
                let log = ClusterLog::open(context.clone(), opening.replicas).await?;
                Ok::<_, ClusterError>((context, log))
            })?
            .map_err(cluster)?;
        let reading = log.clone();
        let through = io
            .call(async move { super::opening("reading the journal stream", || reading.last_sequence()).await })?
            .map_err(cluster)?;
        let reading = log.clone();
        let first = io
            .call(async move { super::opening("reading the journal stream", || reading.first_sequence()).await })?
            .map_err(cluster)?;
        let journal = Self {
            io,
            log,
            context,
            node: settings.node_name.clone(),
            boot: boot_number(),
            proposals: AtomicU64::new(0),
            inbox: Arc::default(),
            last: Arc::new(AtomicU64::new(through)),
            first: AtomicU64::new(first),
            health: Mutex::new(Health::Writable),
        };
        journal.follow(through + 1);
        Ok(journal)
    }

    pub fn io(&self) -> &Io {
        &self.io
    }

    pub fn context(&self) -> &async_nats::jetstream::Context {
        &self.context
    }

    /// The largest message the servers take: the largest record.
    pub fn max_record_bytes(&self) -> usize {
        self.context.client().server_info().max_payload
    }

    /// Asks the servers where the stream starts now (another node's
    /// retention may have purged it) and returns it.
    pub fn stream_start(&self) -> Result<u64, JournalError> {
        let log = self.log.clone();
        let first = self.io.call(async move { log.first_sequence().await })?.map_err(cluster)?;
        Ok(self.first.fetch_max(first, Ordering::SeqCst).max(first))
    }

    /// Follows the stream from `from` into the inbox, for as long as the
    /// process runs; a record that fails its check stops it for good.
    fn follow(&self, mut from: u64) {
        let (log, inbox, last) = (self.log.clone(), self.inbox.clone(), self.last.clone());
        self.io.spawn(async move {
            loop {
                match log.follow(from).await {
                    Ok(records) => {
                        let mut records = std::pin::pin!(records);
                        loop {
                            let Ok(next) = tokio::time::timeout(FOLLOW_WATCH, records.next()).await else {
                                // Quiet: fine if nothing was appended, else
                                // the consumer is stuck (a leader changed).
                                match log.last_sequence().await {
                                    Ok(last) if last >= from => {
                                        tracing::warn!(
                                            from,
                                            last,
                                            "the journal stream's follower is behind; starting again"
                                        );
                                        break;
                                    }
                                    _ => continue,
                                }
                            };
                            let Some(record) = next else { break };
                            match record {
                                Ok(record) if record.sequence != from => {
                                    let e = purged_unread(from, record.sequence);
                                    tracing::error!(error = %e, "this node fell behind the cluster's retention");
                                    inbox.records.lock().failed = Some(e.to_string());
                                    inbox.arrived.notify_all();
                                    inbox.notify.notify_one();
                                    return;
                                }
                                Ok(record) => {
                                    from = record.sequence + 1;
                                    last.fetch_max(record.sequence, Ordering::SeqCst);
                                    inbox.recent.lock().keep(record.sequence, record.kind, record.payload.clone());
                                    inbox.records.lock().records.insert(record.sequence, record);
                                    inbox.arrived.notify_all();
                                    inbox.notify.notify_one();
                                }
                                Err(e @ ClusterError::Damaged { .. }) => {
                                    tracing::error!(error = %e, "the journal stream holds a damaged record");
                                    inbox.records.lock().failed = Some(e.to_string());
                                    inbox.arrived.notify_all();
                                    inbox.notify.notify_one();
                                    return;
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "following the journal stream; starting again");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "following the journal stream; trying again"),
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }

    fn proposal_id(&self) -> String {
        let n = self.proposals.fetch_add(1, Ordering::Relaxed);
        format!("{}-{:016x}-{n}", self.node, self.boot)
    }

    /// The record at `position`, asked of the stream's leader; tried again
    /// for a while when no leader answers (one being elected).
    fn get(&self, position: u64) -> Result<Option<Record>, JournalError> {
        let deadline = std::time::Instant::now() + Duration::from_millis(limits::CLUSTER_APPEND_PATIENCE_MS);
        let mut pause = Duration::from_millis(50);
        loop {
            let log = self.log.clone();
            match self.io.call(async move { log.get(position).await })? {
                Ok(record) => return Ok(record),
                Err(e) if std::time::Instant::now() + pause > deadline => return Err(cluster(e)),
                Err(e) => tracing::warn!(error = %e, position, "reading a journal record; trying again"),
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// The kind and payload of the record at `position`: kept from its
    /// arrival if recent, else read from the servers.
    fn kind_and_payload(&self, position: u64) -> Result<Option<(u16, Bytes)>, JournalError> {
        if let Some(kept) = self.inbox.recent.lock().records.get(&position) {
            return Ok(Some(kept.clone()));
        }
        Ok(self.get(position)?.map(|r| (r.kind, r.payload)))
    }

    fn unwritable(&self, error: ClusterError) -> JournalError {
        *self.health.lock() = Health::Unwritable(error.to_string());
        cluster(error)
    }
}

/// A number telling this run of the node from its earlier runs.
fn boot_number() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return now.as_nanos() as u64 ^ u64::from(std::process::id());
    }
    u64::from_le_bytes(bytes)
}

/// Records from `expected` were purged before they were read: folding on
/// would miss them.
fn purged_unread(expected: u64, got: u64) -> JournalError {
    JournalError::Cluster(format!(
        "records {expected} to {} left the stream (retention) before this node folded them; \
         start the node again to replay from the stream's last snapshot",
        got.saturating_sub(1)
    ))
}

fn cluster(error: ClusterError) -> JournalError {
    JournalError::Cluster(error.to_string())
}

/// The payload copied where the archived forms can be read in place.
fn aligned(payload: &[u8]) -> AlignedVec<16> {
    let mut bytes = AlignedVec::<16>::with_capacity(payload.len());
    bytes.extend_from_slice(payload);
    bytes
}

fn decoding(position: u64, error: DecodeError) -> JournalError {
    match error {
        DecodeError::Unknown(reason) => JournalError::UnknownRecord { position, reason },
        DecodeError::Invalid(reason) => JournalError::Undecodable { position, reason },
    }
}

impl Journal for StreamJournal {
    fn append(&self, event: &Event) -> Result<u64, JournalError> {
        let after = self.last.load(Ordering::SeqCst);
        self.append_after(event, after)?.ok_or_else(|| JournalError::Cluster("another node appended first".into()))
    }

    fn append_after(&self, event: &Event, after: u64) -> Result<Option<u64>, JournalError> {
        let (kind, bytes) = encode(event).map_err(JournalError::Unencodable)?;
        let payload = Bytes::copy_from_slice(&bytes);
        let id = self.proposal_id();
        let key = if matches!(event, Event::Snapshot(_)) { SNAPSHOT_KEY } else { KEY };
        let mut failure = None;
        for attempt in 0..APPEND_TRIES {
            let (log, payload, named) = (self.log.clone(), payload.clone(), id.clone());
            let appended = self
                .io
                .call(async move { log.append(key, kind, payload, &named, Expect::LastSequence(after)).await })?;
            match appended {
                Ok(sequence) => {
                    self.last.fetch_max(sequence, Ordering::SeqCst);
                    *self.health.lock() = Health::Writable;
                    return Ok(Some(sequence));
                }
                Err(ClusterError::Conflict { .. }) => {
                    // A repeat refused because the first try was stored.
                    if attempt > 0 && self.get(after + 1)?.is_some_and(|r| r.id.as_deref() == Some(id.as_str())) {
                        self.last.fetch_max(after + 1, Ordering::SeqCst);
                        return Ok(Some(after + 1));
                    }
                    return Ok(None);
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "an append to the journal stream got no answer");
                    failure = Some(e);
                }
            }
        }
        Err(self.unwritable(failure.unwrap_or(ClusterError::JetStream { what: "appending", reason: "no try".into() })))
    }

    fn append_batch_after(&self, events: &[Event], after: u64) -> Result<Option<u64>, JournalError> {
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            let (kind, bytes) = encode(event).map_err(JournalError::Unencodable)?;
            records.push((kind, Bytes::copy_from_slice(&bytes)));
        }
        let records = Arc::new(records);
        let id = self.proposal_id();
        // While the servers elect a stream leader a commit fails; it is tried
        // again under the same batch ID. If an earlier try was stored after
        // all, the next is refused (the stream moved on) and the record
        // after `after` carries this batch's ID.
        let deadline = std::time::Instant::now() + Duration::from_millis(limits::CLUSTER_APPEND_PATIENCE_MS);
        let mut pause = Duration::from_millis(50);
        let mut attempt = 0u32;
        loop {
            let (log, batch, named) = (self.log.clone(), records.clone(), id.clone());
            let appended = self.io.call(async move { log.append_batch_after(KEY, &batch, &named, after).await })?;
            let failure = match appended {
                Ok(sequences) => {
                    let Some(&last) = sequences.last() else { return Ok(None) };
                    self.last.fetch_max(last, Ordering::SeqCst);
                    *self.health.lock() = Health::Writable;
                    return Ok(sequences.first().copied());
                }
                Err(ClusterError::Conflict { .. }) => {
                    if attempt > 0 && self.get(after + 1)?.is_some_and(|r| r.id.as_deref() == Some(id.as_str())) {
                        self.last.fetch_max(after + records.len() as u64, Ordering::SeqCst);
                        return Ok(Some(after + 1));
                    }
                    return Ok(None);
                }
                Err(e) => e,
            };
            if std::time::Instant::now() + pause > deadline {
                return Err(self.unwritable(failure));
            }
            tracing::warn!(error = %failure, attempt, "a batch for the journal stream was not taken; trying again");
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(1));
            attempt += 1;
        }
    }

    fn foreign(&self, after: u64, wait: bool) -> Result<Vec<(u64, Event)>, JournalError> {
        let mut arrived = self.inbox.records.lock();
        let deadline = std::time::Instant::now() + ARRIVAL_PATIENCE;
        // Every arrival wakes the wait, a record folded already too.
        while wait && arrived.failed.is_none() && arrived.records.range(after + 1..).next().is_none() {
            if self.inbox.arrived.wait_until(&mut arrived, deadline).timed_out() {
                break;
            }
        }
        if let Some(failed) = &arrived.failed {
            return Err(JournalError::Cluster(failed.clone()));
        }
        arrived.records = arrived.records.split_off(&(after + 1));
        let mut events = Vec::new();
        let mut next = after + 1;
        while let Some(record) = arrived.records.remove(&next) {
            let event = decode_event(record.kind, &aligned(&record.payload)).map_err(|e| decoding(next, e))?;
            events.push((next, event));
            next += 1;
        }
        if wait && events.is_empty() {
            return Err(JournalError::Cluster(format!(
                "the records after {after} did not arrive from the stream in {} s",
                ARRIVAL_PATIENCE.as_secs()
            )));
        }
        Ok(events)
    }

    fn arrivals(&self) -> Option<Arc<Notify>> {
        Some(self.inbox.notify.clone())
    }

    fn shared(&self) -> bool {
        true
    }

    fn commit(&self, _position: u64) -> CommitFuture {
        // An append returns once a quorum of servers synced it.
        Box::pin(async { Ok(()) })
    }

    fn durable_through(&self) -> u64 {
        self.last.load(Ordering::SeqCst)
    }

    fn appended_through(&self) -> u64 {
        self.last.load(Ordering::SeqCst)
    }

    fn replay(&self, from: u64, f: &mut ReplayFn<'_>) -> Result<(), JournalError> {
        let log = self.log.clone();
        let through = self.io.call(async move { log.last_sequence().await })?.map_err(cluster)?;
        let from = from.max(1);
        if from > through {
            return Ok(());
        }
        let (send, records) = std::sync::mpsc::sync_channel::<Result<Record, ClusterError>>(1024);
        let log = self.log.clone();
        self.io.spawn(async move {
            // A read cut off (a leader election) goes on after the last
            // record sent, while it makes progress within the patience.
            let mut next = from;
            let mut patience = tokio::time::Instant::now() + REPLAY_PATIENCE;
            loop {
                let failure = match log.follow(next).await {
                    Ok(followed) => {
                        let mut followed = std::pin::pin!(followed);
                        loop {
                            // The records are there: a read quiet this long is stuck.
                            let Ok(read) = tokio::time::timeout(FOLLOW_WATCH, followed.next()).await else {
                                break ClusterError::JetStream { what: "replaying", reason: "the read stalled".into() };
                            };
                            match read {
                                Some(Ok(record)) => {
                                    let sequence = record.sequence;
                                    if send.send(Ok(record)).is_err() || sequence >= through {
                                        return;
                                    }
                                    next = sequence + 1;
                                    patience = tokio::time::Instant::now() + REPLAY_PATIENCE;
                                }
                                Some(Err(e @ ClusterError::Damaged { .. })) => {
                                    let _ = send.send(Err(e));
                                    return;
                                }
                                Some(Err(e)) => break e,
                                None => {
                                    break ClusterError::JetStream {
                                        what: "replaying",
                                        reason: "the read ended".into(),
                                    };
                                }
                            }
                        }
                    }
                    Err(e) => e,
                };
                if tokio::time::Instant::now() >= patience {
                    let _ = send.send(Err(failure));
                    return;
                }
                tracing::warn!(error = %failure, next, "replaying the journal stream; reading on");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        for (expected, record) in (from..).zip(records) {
            let record = record.map_err(cluster)?;
            let position = record.sequence;
            if position != expected {
                return Err(purged_unread(expected, position));
            }
            let bytes = aligned(&record.payload);
            let replayed = decode(record.kind, &bytes).map_err(|e| decoding(position, e))?;
            f(position, replayed).map_err(|reason| JournalError::Undecodable { position, reason })?;
            self.last.fetch_max(position, Ordering::SeqCst);
            if position >= through {
                return Ok(());
            }
        }
        Err(JournalError::Cluster(format!("the stream ended before record {through}")))
    }

    fn last_snapshot(&self) -> Result<Option<(u64, Snapshot)>, JournalError> {
        let log = self.log.clone();
        let last = self
            .io
            .call(async move { super::opening("reading the last snapshot", || log.last_on(SNAPSHOT_KEY)).await })?
            .map_err(cluster)?;
        let Some(record) = last else { return Ok(None) };
        let position = record.sequence;
        let bytes = aligned(&record.payload);
        match decode_event(record.kind, &bytes).map_err(|e| decoding(position, e))? {
            Event::Snapshot(snapshot) => Ok(Some((position, snapshot))),
            _ => {
                Err(JournalError::Undecodable { position, reason: "a snapshot's subject holds another record".into() })
            }
        }
    }

    /// Purges the records below `position` from the stream (on every
    /// server) and returns how many there were. Only the node holding the
    /// retention duty purges past where the stream starts; the others call
    /// this with the start they read, which removes nothing more.
    fn release_below(&self, position: u64) -> Result<usize, JournalError> {
        if position <= self.first.load(Ordering::SeqCst) {
            return Ok(0);
        }
        let log = self.log.clone();
        let purged = self.io.call(async move { log.purge_below(position).await })?.map_err(cluster)?;
        self.first.fetch_max(position, Ordering::SeqCst);
        Ok(usize::try_from(purged).unwrap_or(usize::MAX))
    }

    /// How many records `release_below(position)` would purge.
    fn releasable(&self, position: u64) -> usize {
        usize::try_from(position.saturating_sub(self.first.load(Ordering::SeqCst))).unwrap_or(usize::MAX)
    }

    fn released_below(&self) -> u64 {
        match self.first.load(Ordering::SeqCst) {
            0 | 1 => 0,
            first => first,
        }
    }

    fn retained(&self) -> (u64, usize) {
        (self.first.load(Ordering::SeqCst).max(1), 1)
    }

    fn message_payload(&self, position: u64) -> Result<Vec<u8>, JournalError> {
        let (kind, payload) = self.kind_and_payload(position)?.ok_or(JournalError::NotAMessage { position })?;
        let bytes = aligned(&payload);
        message_payload(kind, &bytes).map(<[u8]>::to_vec).map_err(|_| JournalError::NotAMessage { position })
    }

    fn message_logs(&self, position: u64) -> Result<Option<Vec<NewLog>>, JournalError> {
        let Some((kind, payload)) = self.kind_and_payload(position)? else { return Ok(None) };
        let bytes = aligned(&payload);
        match decode(kind, &bytes).map_err(|e| decoding(position, e))? {
            Replayed::Message(view) => Ok(Some(view.logs)),
            Replayed::Event(_) => Err(JournalError::NotAMessage { position }),
        }
    }

    fn health(&self) -> Health {
        self.health.lock().clone()
    }
}
