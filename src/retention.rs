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

use std::time::Duration;

use crate::{
    clock::SharedClock,
    journal::{Event, JournalError},
    ledger::Ledger,
};

/// What one compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Where the snapshot was written.
    pub snapshot_at: u64,
    /// Records below this were released.
    pub released_below: u64,
    pub segments_deleted: usize,
}

/// Appends a snapshot if it lets segments go; returns its position and the
/// position below which records may be released once it is durable.
pub fn snapshot_if_useful(ledger: &Ledger, now_ms: i64, retention_ms: i64) -> Result<Option<(u64, u64)>, JournalError> {
    let retain_after_ms = now_ms.saturating_sub(retention_ms);
    let recorded = ledger.record_with(|state, next| {
        let from = state.needed_from(retain_after_ms, now_ms).unwrap_or(next).min(next);
        (ledger.releasable(from) > 0).then(|| Event::Snapshot(state.snapshot(from, retain_after_ms)))
    })?;
    Ok(recorded.and_then(|(position, event)| match event {
        Event::Snapshot(snapshot) => Some((position, snapshot.from)),
        _ => None,
    }))
}

/// One compaction: snapshot, wait for it to be durable, release.
pub async fn compact(ledger: &Ledger, now_ms: i64, retention_ms: i64) -> Result<Option<Compacted>, JournalError> {
    let Some((snapshot_at, from)) = snapshot_if_useful(ledger, now_ms, retention_ms)? else { return Ok(None) };
    ledger.commit(snapshot_at).await?;
    let segments_deleted = ledger.release_below(from)?;
    Ok(Some(Compacted { snapshot_at, released_below: from, segments_deleted }))
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
                Ok(Some(done)) => tracing::info!(
                    snapshot_at = done.snapshot_at,
                    released_below = done.released_below,
                    segments_deleted = done.segments_deleted,
                    "journal compacted"
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "journal compaction failed; will try again"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    //! Model test: random traffic, operator actions and compactions on a
    //! real journal with tiny segments; after every reopen the replayed
    //! state must equal the live one, and segments must actually go.

    use std::{path::Path, sync::Arc};

    use ferrox_storage::Options;
    use proptest::prelude::*;

    use super::*;
    use crate::{
        fixtures::{DESTINATIONS, destination, new_logs, source, subscription},
        journal::{Accepted, Journal, Keyed, WalJournal, body_hash},
        model::{Alert, AlertKind, Attempt, Id, LogStatus, LogType},
        server::rebuild,
    };

    const HOUR_MS: i64 = 3_600_000;

    #[derive(Debug, Clone)]
    enum Op {
        /// A message to the destinations in the mask (at least one).
        Send {
            mask: u8,
            keyed: bool,
            body: u16,
        },
        /// The head of a queue finishes with a terminal status.
        Finish {
            dest: u8,
            status: u8,
        },
        /// The head of a queue fails and will retry.
        Retry {
            dest: u8,
        },
        /// An operator retries a kept terminal log.
        ManualRetry {
            pick: u16,
        },
        Pause {
            dest: u8,
        },
        Resume {
            dest: u8,
        },
        Alert {
            dest: u8,
        },
        /// A destination is changed, deleted, or created again.
        Reconfigure {
            dest: u8,
            delete: bool,
        },
        Advance {
            minutes: u16,
        },
        Compact,
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (1u8..8, any::<bool>(), 0u16..2000).prop_map(|(mask, keyed, body)| Op::Send { mask, keyed, body }),
            4 => (0u8..3, 0u8..3).prop_map(|(dest, status)| Op::Finish { dest, status }),
            1 => (0u8..3).prop_map(|dest| Op::Retry { dest }),
            1 => any::<u16>().prop_map(|pick| Op::ManualRetry { pick }),
            1 => (0u8..3).prop_map(|dest| Op::Pause { dest }),
            1 => (0u8..3).prop_map(|dest| Op::Resume { dest }),
            1 => (0u8..3).prop_map(|dest| Op::Alert { dest }),
            1 => (0u8..3, any::<bool>()).prop_map(|(dest, delete)| Op::Reconfigure { dest, delete }),
            2 => (0u16..600).prop_map(|minutes| Op::Advance { minutes }),
            2 => Just(Op::Compact),
            1 => Just(Op::Reopen),
        ]
    }

    fn options() -> Options {
        Options { segment_bytes: 16 << 10, max_record_bytes: 8 << 10, ..Options::default() }
    }

    fn open(dir: &Path) -> (Arc<WalJournal>, Ledger) {
        let journal = Arc::new(WalJournal::open(dir, options()).expect("opening the journal"));
        let state = rebuild(journal.as_ref()).expect("replaying the journal");
        let ledger = Ledger::new(journal.clone(), state);
        (journal, ledger)
    }

    /// Runs the ops; returns how many segments compactions deleted.
    fn run(ops: &[Op]) -> usize {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (mut journal, mut ledger) = open(dir.path());
        let record = |ledger: &Ledger, event: Event| ledger.record(&event).expect("appending");
        record(&ledger, Event::TokenKeyCreated { key: [7; 32] });
        record(&ledger, Event::SourceUpserted(source()));
        for n in 0..DESTINATIONS {
            record(&ledger, Event::DestinationUpserted(destination(n, 0)));
            record(&ledger, Event::SubscriptionUpserted(subscription(n)));
        }
        let (mut now_ms, mut next_id, mut deleted) = (1_700_000_000_000i64, 1000u128, 0usize);
        let mut fresh = || {
            next_id += 1;
            Id(next_id)
        };
        for op in ops {
            let head = |ledger: &Ledger, dest: u8| {
                let state = ledger.state().read();
                let destination = Id(100 + u128::from(dest));
                let head = state.queue_head(destination, u64::MAX)?;
                assert_eq!(head.destination_id, destination, "the head of a queue belongs to it");
                assert!(!head.status.is_terminal(), "the head of a queue is not terminal");
                Some(head.id)
            };
            match *op {
                Op::Send { mask, keyed, body } => {
                    let (message_id, logs) = {
                        let state = ledger.state().read();
                        (state.next_message_id.max(1), new_logs(&state, u64::from(mask), &mut fresh))
                    };
                    if logs.is_empty() {
                        continue;
                    }
                    let payload = vec![b'x'; usize::from(body)];
                    record(
                        &ledger,
                        Event::MessageAccepted(Accepted {
                            message_id,
                            log_type: LogType::Async,
                            source_id: Id(1),
                            data_model: "PatientAdmin".into(),
                            event_type: "NewPatient".into(),
                            received_at_ms: now_ms,
                            idempotency: keyed
                                .then(|| Keyed { key: format!("key-{}", body % 16), body_hash: body_hash(&payload) }),
                            logs,
                            payload,
                        }),
                    );
                }
                Op::Finish { dest, .. } | Op::Retry { dest } if head(&ledger, dest).is_some() => {
                    let log_id = head(&ledger, dest).expect("checked above");
                    let status = match *op {
                        Op::Finish { status, .. } => {
                            [LogStatus::Succeeded, LogStatus::Failed, LogStatus::Filtered][usize::from(status)]
                        }
                        _ => LogStatus::Retrying,
                    };
                    let attempt = Attempt {
                        id: fresh(),
                        started_at_ms: now_ms,
                        duration_ms: 3,
                        http_status: Some(if status == LogStatus::Succeeded { 200 } else { 500 }),
                        error: None,
                        response: Some("{}".into()),
                    };
                    record(&ledger, Event::AttemptRecorded { log_id, attempt });
                    record(&ledger, Event::LogStatusChanged { log_id, status, at_ms: now_ms + 3, reason: None });
                }
                Op::Finish { .. } | Op::Retry { .. } => {}
                Op::ManualRetry { pick } => {
                    let log_id = {
                        let state = ledger.state().read();
                        let terminal: Vec<Id> = state
                            .logs()
                            .filter(|l| l.status.is_terminal() && state.destinations.contains_key(&l.destination_id))
                            .map(|l| l.id)
                            .collect();
                        (!terminal.is_empty()).then(|| terminal[usize::from(pick) % terminal.len()])
                    };
                    if let Some(log_id) = log_id {
                        let event = Event::LogStatusChanged {
                            log_id,
                            status: LogStatus::Pending,
                            at_ms: now_ms,
                            reason: Some("manual retry".into()),
                        };
                        record(&ledger, event);
                    }
                }
                Op::Pause { dest } => {
                    let destination_id = Id(100 + u128::from(dest));
                    record(&ledger, Event::QueuePaused { destination_id, at_ms: now_ms, reason: "operator".into() });
                }
                Op::Resume { dest } => {
                    record(&ledger, Event::QueueResumed { destination_id: Id(100 + u128::from(dest)), at_ms: now_ms });
                }
                Op::Alert { dest } => {
                    let alert = Alert {
                        id: fresh(),
                        kind: AlertKind::QueuePaused,
                        destination_id: Id(100 + u128::from(dest)),
                        log_id: None,
                        at_ms: now_ms,
                        text: "paused".into(),
                    };
                    record(&ledger, Event::AlertRaised(alert));
                }
                Op::Reconfigure { dest, delete } => {
                    let n = u128::from(dest);
                    let exists = ledger.state().read().destinations.contains_key(&Id(100 + n));
                    if delete && exists {
                        record(&ledger, Event::DestinationDeleted { id: Id(100 + n) });
                    } else {
                        record(&ledger, Event::DestinationUpserted(destination(n, now_ms as u64)));
                        record(&ledger, Event::SubscriptionUpserted(subscription(n)));
                    }
                }
                Op::Advance { minutes } => now_ms += i64::from(minutes) * 60_000,
                Op::Compact => {
                    if let Some((at, from)) = snapshot_if_useful(&ledger, now_ms, HOUR_MS).expect("snapshot") {
                        journal.wal().sync_through(at).expect("syncing the snapshot");
                        deleted += journal.release_below(from).expect("releasing");
                        // Nothing the engine keeps was released.
                        let state = ledger.state().read();
                        let first = journal.retained().0;
                        assert!(state.messages.iter().all(|m| m.position >= first), "a kept message was released");
                    }
                }
                Op::Reopen => {
                    journal.wal().sync().expect("syncing before the reopen");
                    let live = ledger.state().read().fingerprint();
                    drop(ledger);
                    drop(journal);
                    (journal, ledger) = open(dir.path());
                    let replayed = ledger.state().read().fingerprint();
                    if replayed != live {
                        let (a, b) = (format!("{live:#?}"), format!("{replayed:#?}"));
                        let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
                        let at = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
                        let from = at.saturating_sub(30);
                        panic!(
                            "the replayed state differs from the live one at line {at}:\n--- live\n{}\n--- replayed\n{}",
                            a[from..(at + 5).min(a.len())].join("\n"),
                            b[from..(at + 5).min(b.len())].join("\n")
                        );
                    }
                }
            }
        }
        deleted
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn replay_after_compaction_rebuilds_the_live_state(ops in proptest::collection::vec(op(), 1..400)) {
            let mut ops = ops;
            ops.push(Op::Reopen);
            run(&ops);
        }
    }

    /// Old segments really go once their messages are delivered and past
    /// retention, and a queue left paused keeps its messages.
    #[test]
    fn delivered_messages_past_retention_release_their_segments() {
        let mut ops = Vec::new();
        for i in 0..300u16 {
            ops.push(Op::Send { mask: 0b011, keyed: i % 7 == 0, body: 500 });
            ops.push(Op::Finish { dest: 0, status: 0 });
            ops.push(Op::Finish { dest: 1, status: 1 });
        }
        ops.push(Op::Send { mask: 0b100, keyed: false, body: 10 });
        ops.extend([Op::Advance { minutes: 61 }, Op::Compact]);
        // The idempotency window (24 h) still holds the keyed messages.
        ops.extend([Op::Reopen, Op::Advance { minutes: 24 * 60 }, Op::Compact, Op::Reopen]);
        assert!(run(&ops) >= 5, "segments were deleted");
    }
}
