//! Retention: dropping what the engine no longer needs, so the journal's
//! old segments can be deleted (SPEC §10).
//!
//! A message is kept while any of its logs is not terminal, or changed
//! within the retention window, or while its `Idempotency-Key` is still
//! remembered. Every so often the engine finds the position of the oldest
//! message it keeps; if segments lie wholly below it, it appends a
//! [`Snapshot`](crate::journal::Snapshot) of everything a replay from there
//! could not rebuild (configuration, pauses, alerts), waits for it to be
//! durable, and only then checkpoints the journal at that position, which
//! deletes those segments. A crash at any point leaves either the old
//! snapshot and all its records, or the new snapshot and the records it
//! needs.

use std::{sync::Arc, time::Duration};

use crate::{
    clock::SharedClock,
    cluster::{Holding, RETENTION_DUTY},
    history::HistoryError,
    journal::{Event, JournalError},
    ledger::Ledger,
    limits,
};

#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("the history's checkpoint did not finish: {0}")]
    Interrupted(String),
}

/// What one compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Where the snapshot was written, if one was.
    pub snapshot_at: Option<u64>,
    /// Records below this were released, if any were.
    pub released_below: Option<u64>,
    pub segments_deleted: usize,
}

/// The history's checkpoint, made durable: what a snapshot may rely on.
#[derive(Debug, Clone, Copy)]
pub struct HistoryDone {
    /// Events at or below this are in the history for good.
    pub applied_through: u64,
    /// Where a replay had to begin, when the checkpoint was taken, to
    /// rebuild what memory held.
    pub floor: u64,
    /// A snapshot is written when it moves the replay's start by at least
    /// this many positions (or lets segments go).
    pub snapshot_after: u64,
}

/// Takes the history's checkpoint, syncing in the calling thread.
pub fn checkpoint_history(ledger: &Ledger) -> Result<HistoryDone, HistoryError> {
    let (checkpoint, floor) = ledger.history_checkpoint();
    let applied_through = checkpoint.applied_through();
    let finished = checkpoint.finish();
    ledger.history_checkpoint_finished(&finished);
    finished.map(|_| HistoryDone { applied_through, floor, snapshot_after: limits::SNAPSHOT_REPLAY_RECORDS })
}

/// What a compaction plans: a snapshot at a position, and a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub snapshot_at: Option<u64>,
    pub release: Option<u64>,
}

/// Appends a snapshot if it lets segments go or moves the replay's start
/// far enough; plans releasing records below the position retention
/// needs, once the snapshot is durable.
pub fn plan(ledger: &Ledger, now_ms: i64, retention_ms: i64, done: HistoryDone) -> Result<Planned, CompactionError> {
    let retain_after_ms = now_ms.saturating_sub(retention_ms);
    let mut failure = None;
    let mut release = None;
    ledger.forget_keys_before(now_ms.saturating_sub(crate::state::IDEMPOTENCY_WINDOW_MS));
    let recorded = ledger.record_with(|state, next| {
        let from = done.floor.min(done.applied_through + 1).min(state.replay_floor()).min(next);
        let needed = match state.needed_from(retain_after_ms, now_ms) {
            Ok(needed) => needed.unwrap_or(next).min(from),
            Err(e) => {
                failure = Some(e);
                return None;
            }
        };
        let releases = needed > ledger.released_below() && ledger.releasable(needed) > 0;
        let advances = from >= state.snapshot_from.saturating_add(done.snapshot_after);
        if releases {
            release = Some(needed);
        }
        if !(releases || advances) || from <= state.snapshot_from {
            return None;
        }
        match state.snapshot(from, retain_after_ms) {
            Ok(snapshot) => Some(Event::Snapshot(snapshot)),
            Err(e) => {
                failure = Some(e);
                None
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    let snapshot_at = recorded.map(|(position, _)| position);
    // Records go only below what the latest snapshot replays from.
    let from = ledger.state().read().snapshot_from;
    Ok(Planned { snapshot_at, release: release.map(|r| r.min(from)).filter(|&r| r > ledger.released_below()) })
}

/// One compaction: checkpoint the history, snapshot, wait for the
/// snapshot to be durable, release.
pub async fn compact(ledger: &Ledger, now_ms: i64, retention_ms: i64) -> Result<Compacted, CompactionError> {
    compact_with(ledger, now_ms, retention_ms, limits::SNAPSHOT_REPLAY_RECORDS).await
}

/// The compaction of a clean stop: a snapshot however little the replay's
/// start moves, so that the next start replays only the work in hand.
pub async fn compact_at_stop(ledger: &Ledger, now_ms: i64, retention_ms: i64) -> Result<Compacted, CompactionError> {
    compact_with(ledger, now_ms, retention_ms, 1).await
}

async fn compact_with(
    ledger: &Ledger,
    now_ms: i64,
    retention_ms: i64,
    snapshot_after: u64,
) -> Result<Compacted, CompactionError> {
    let (checkpoint, floor) = ledger.history_checkpoint();
    let applied_through = checkpoint.applied_through();
    // Syncing the history's files may take a while: not on an arbiter.
    let finished = actix_web::rt::task::spawn_blocking(move || checkpoint.finish())
        .await
        .map_err(|e| CompactionError::Interrupted(e.to_string()))?;
    ledger.history_checkpoint_finished(&finished);
    finished?;
    let planned = plan(ledger, now_ms, retention_ms, HistoryDone { applied_through, floor, snapshot_after })?;
    if let Some(position) = planned.snapshot_at {
        ledger.commit(position).await?;
    }
    let segments_deleted = match planned.release {
        Some(below) => ledger.release_below(below)?,
        None => 0,
    };
    Ok(Compacted { snapshot_at: planned.snapshot_at, released_below: planned.release, segments_deleted })
}

/// Compacts every `interval` on the current arbiter. A failure is logged
/// and tried again next time: nothing is released unless the snapshot that
/// covers it is durable.
pub fn spawn(ledger: Ledger, clock: SharedClock, retention_ms: i64, interval: Duration) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match compact(&ledger, clock.now_ms(), retention_ms).await {
                Ok(done) if done.snapshot_at.is_some() || done.released_below.is_some() => tracing::info!(
                    snapshot_at = done.snapshot_at,
                    released_below = done.released_below,
                    segments_deleted = done.segments_deleted,
                    "journal compacted"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "journal compaction failed; will try again"),
            }
        }
    });
}

/// What retention in cluster mode asks of the cluster.
pub trait Cluster: Send + Sync {
    /// Where the journal stream starts now, as its servers say.
    fn stream_start(&self) -> Result<u64, JournalError>;
    /// The last position every live node has folded: records after it are
    /// not purged, so that no node finds a gap in what it follows.
    fn folded_by_all(&self) -> Result<u64, JournalError>;
}

/// Retention in cluster mode, every `interval`. Every node checkpoints
/// its own history and forgets old idempotency keys. The node holding the
/// retention duty also snapshots on the stream and purges the records
/// below what retention needs and every live node has folded, as
/// [`compact`] does with segments; the others let their history go below
/// where the stream now starts. The snapshot is durable once appended (a
/// quorum holds it), so it is never purged past without one that covers
/// it.
pub fn spawn_shared(
    ledger: Ledger,
    clock: SharedClock,
    retention_ms: i64,
    interval: Duration,
    holding: Holding,
    cluster: Arc<dyn Cluster>,
) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (ledger, now_ms, duty) = (ledger.clone(), clock.now_ms(), holding.holds(RETENTION_DUTY));
            let cluster = cluster.clone();
            // Appending, purging and syncing wait on the network and disks.
            let round = actix_web::rt::task::spawn_blocking(move || {
                if duty {
                    compact_shared(&ledger, now_ms, retention_ms, &*cluster)
                } else {
                    follow_stream_start(&ledger, now_ms, &*cluster)
                }
            })
            .await;
            match round {
                Ok(Ok(done)) if done.snapshot_at.is_some() || done.released_below.is_some() => tracing::info!(
                    snapshot_at = done.snapshot_at,
                    released_below = done.released_below,
                    records_purged = done.segments_deleted,
                    "journal stream compacted"
                ),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "journal stream compaction failed; will try again"),
                Err(e) => tracing::warn!(error = %e, "journal stream compaction stopped; will try again"),
            }
        }
    });
}

/// The retention duty's round: checkpoint the history, snapshot if
/// needed, purge below what retention needs and every live node folded.
fn compact_shared(
    ledger: &Ledger,
    now_ms: i64,
    retention_ms: i64,
    cluster: &dyn Cluster,
) -> Result<Compacted, CompactionError> {
    let done = checkpoint_history(ledger)?;
    let planned = plan(ledger, now_ms, retention_ms, done)?;
    // A shared journal's append returns once a quorum of servers holds the
    // record: the snapshot is durable already.
    let release = match planned.release {
        Some(below) => Some(below.min(cluster.folded_by_all()?.saturating_add(1))),
        None => None,
    }
    .filter(|&below| below > ledger.released_below());
    let segments_deleted = match release {
        Some(below) => ledger.release_below(below)?,
        None => 0,
    };
    Ok(Compacted { snapshot_at: planned.snapshot_at, released_below: release, segments_deleted })
}

/// Another node's round: checkpoint the history, forget old keys, and let
/// the history go below where the duty's holder purged the stream.
fn follow_stream_start(ledger: &Ledger, now_ms: i64, cluster: &dyn Cluster) -> Result<Compacted, CompactionError> {
    checkpoint_history(ledger)?;
    ledger.forget_keys_before(now_ms.saturating_sub(crate::state::IDEMPOTENCY_WINDOW_MS));
    let before = ledger.released_below();
    let start = cluster.stream_start()?;
    if start <= before.max(1) {
        return Ok(Compacted { snapshot_at: None, released_below: None, segments_deleted: 0 });
    }
    ledger.release_below(start)?;
    Ok(Compacted { snapshot_at: None, released_below: Some(start), segments_deleted: 0 })
}

#[cfg(test)]
mod tests;
