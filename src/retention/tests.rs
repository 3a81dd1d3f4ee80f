//! Model test: random traffic, operator actions and compactions on a
//! real journal with tiny segments; after every reopen the replayed
//! state must equal the live one, and segments must actually go.

use std::{path::Path, sync::Arc};

use ferrox_storage::Options;
use proptest::prelude::*;

use super::*;
use crate::{
    fixtures::{DESTINATIONS, destination, new_logs, source, subscription},
    history::History,
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
        kind: u8,
    },
    /// An operator resends kept ended logs of one destination.
    Resend {
        pick: u16,
        count: u8,
    },
    /// An operator is made, changed or deleted through the API.
    Operator {
        name: u8,
        delete: bool,
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
    /// The journal syncs: ended logs move to the history.
    Sync,
    Reopen,
    /// Reopen after a power loss that took every history write since
    /// its last checkpoint.
    LoseHistory,
    /// Reopen after a byte of the history's table was damaged.
    DamageHistory {
        at: u32,
    },
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating a directory");
    for entry in std::fs::read_dir(from).expect("listing a directory") {
        let path = entry.expect("a directory entry").path();
        let target = to.join(path.file_name().expect("a file name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            match std::fs::copy(&path, &target) {
                Ok(_) => {}
                // A file being made ahead, renamed as it was listed.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("copying {}: {e}", path.display()),
            }
        }
    }
}

/// Flips a byte among the table's written entries, if there are any.
fn damage_history(history: &Path, at: u32) {
    let Some(chunk) = std::fs::read_dir(history.join("table")).expect("listing the table").next() else { return };
    let path = chunk.expect("a directory entry").path();
    let mut bytes = std::fs::read(&path).expect("reading a chunk");
    // Entries start at 8192, 128 bytes each; the first few are written.
    let offset = 8192 + (at as usize % (4 * 128));
    bytes[offset] ^= 0x40;
    std::fs::write(&path, &bytes).expect("writing a chunk");
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..8, any::<bool>(), 0u16..2000).prop_map(|(mask, keyed, body)| Op::Send { mask, keyed, body }),
        4 => (0u8..3, 0u8..3).prop_map(|(dest, status)| Op::Finish { dest, status }),
        1 => (0u8..3).prop_map(|dest| Op::Retry { dest }),
        1 => any::<u16>().prop_map(|pick| Op::ManualRetry { pick }),
        1 => (0u8..3).prop_map(|dest| Op::Pause { dest }),
        1 => (0u8..3).prop_map(|dest| Op::Resume { dest }),
        1 => (0u8..3, 0u8..3).prop_map(|(dest, kind)| Op::Alert { dest, kind }),
        1 => (any::<u16>(), 1u8..5).prop_map(|(pick, count)| Op::Resend { pick, count }),
        1 => (0u8..3, any::<bool>()).prop_map(|(name, delete)| Op::Operator { name, delete }),
        1 => (0u8..3, any::<bool>()).prop_map(|(dest, delete)| Op::Reconfigure { dest, delete }),
        2 => (0u16..600).prop_map(|minutes| Op::Advance { minutes }),
        2 => Just(Op::Compact),
        2 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        1 => Just(Op::LoseHistory),
        1 => any::<u32>().prop_map(|at| Op::DamageHistory { at }),
    ]
}

fn options() -> Options {
    Options { segment_bytes: 16 << 10, max_record_bytes: 8 << 10, ..Options::default() }
}

fn open(dir: &Path) -> (Arc<WalJournal>, Ledger) {
    let journal = Arc::new(WalJournal::open(&dir.join("wal"), options()).expect("opening the journal"));
    let history = History::open(&dir.join("history"), journal.released_below()).expect("opening the history");
    let state = rebuild(journal.as_ref(), history).expect("replaying the journal");
    let ledger = Ledger::new(journal.clone(), state);
    (journal, ledger)
}

/// Runs the ops; returns how many segments compactions deleted.
fn run(ops: &[Op]) -> usize {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let durable_history = dir.path().join("history-as-checkpointed");
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
                        .all_logs()
                        .into_iter()
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
                // As through the operator API: with its audit entry.
                let entry = crate::model::AuditEntry {
                    id: fresh(),
                    at_ms: now_ms,
                    operator: "night-shift".into(),
                    action: "destination.pause".into(),
                    target: destination_id.to_string(),
                    detail: String::new(),
                };
                record(&ledger, Event::Audited(entry));
            }
            Op::Resume { dest } => {
                record(&ledger, Event::QueueResumed { destination_id: Id(100 + u128::from(dest)), at_ms: now_ms });
            }
            Op::Alert { dest, kind } => {
                let kinds = [AlertKind::QueuePaused, AlertKind::QueueBacklog, AlertKind::QueueRecovered];
                let alert = Alert {
                    id: fresh(),
                    kind: kinds[usize::from(kind) % kinds.len()],
                    destination_id: Id(100 + u128::from(dest)),
                    log_id: None,
                    at_ms: now_ms,
                    text: "alert".into(),
                };
                record(&ledger, Event::AlertRaised(alert));
            }
            Op::Resend { pick, count } => {
                let resent = {
                    let state = ledger.state().read();
                    let released = journal.released_below();
                    let ended: Vec<crate::state::LogRecord> = state
                        .all_logs()
                        .into_iter()
                        .filter(|l| l.status.is_terminal() && l.position >= released)
                        .filter(|l| state.destinations.contains_key(&l.destination_id))
                        .collect();
                    (!ended.is_empty()).then(|| {
                        let destination_id = ended[usize::from(pick) % ended.len()].destination_id;
                        let logs = ended
                            .iter()
                            .rev()
                            .filter(|l| l.destination_id == destination_id)
                            .take(usize::from(count))
                            .map(|l| crate::journal::ResentLog {
                                id: fresh(),
                                attempt_id: fresh(),
                                resent_from: l.id,
                                message_id: l.message_id,
                                message_position: l.position,
                                log_type: LogType::Async,
                                source_id: Id(1),
                                data_model: "PatientAdmin".into(),
                                event_type: "NewPatient".into(),
                                received_at_ms: l.received_at_ms.expect("a message"),
                            })
                            .collect();
                        crate::journal::Resent { destination_id, at_ms: now_ms, logs }
                    })
                };
                if let Some(resent) = resent {
                    record(&ledger, Event::LogsResent(resent));
                }
            }
            Op::Operator { name, delete } => {
                let name = format!("operator-{name}");
                if delete {
                    record(&ledger, Event::OperatorDeleted { name });
                } else {
                    let operator = crate::model::OperatorRecord {
                        name,
                        token_hash: [u8::try_from(now_ms % 251).unwrap_or(0); 32],
                        role: crate::model::Role::Operator,
                        phi_access: now_ms % 2 == 0,
                        created_at_ms: now_ms,
                    };
                    record(&ledger, Event::OperatorUpserted(operator));
                }
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
            Op::Sync => {
                journal.wal().sync().expect("syncing");
                ledger.settle();
            }
            Op::Compact => {
                let done = checkpoint_history(&ledger).expect("checkpointing the history");
                // What a power loss cannot take from the history.
                let _ = std::fs::remove_dir_all(&durable_history);
                copy_dir(&dir.path().join("history"), &durable_history);
                let planned = plan(&ledger, now_ms, HOUR_MS, done).expect("planning a compaction");
                if let Some(at) = planned.snapshot_at {
                    journal.wal().sync_through(at).expect("syncing the snapshot");
                }
                if let Some(below) = planned.release {
                    deleted += ledger.release_below(below).expect("releasing");
                }
                // Nothing the engine shows was released.
                let first = journal.retained().0;
                let logs = ledger.state().read().all_logs();
                assert!(logs.iter().all(|l| l.position >= first), "a log shown was released");
            }
            Op::Reopen | Op::LoseHistory | Op::DamageHistory { .. } => {
                journal.wal().sync().expect("syncing before the reopen");
                // Keys past their window answer nothing; a compaction
                // forgets them, and a rebuild may not bring them back.
                let expired = now_ms - crate::state::IDEMPOTENCY_WINDOW_MS;
                ledger.forget_keys_before(expired);
                let live = ledger.state().read().fingerprint();
                drop(ledger);
                drop(journal);
                let history = dir.path().join("history");
                match *op {
                    // Power fails: the history keeps only what its last
                    // checkpoint synced, at worst.
                    Op::LoseHistory if durable_history.join("HEADER").exists() => {
                        std::fs::remove_dir_all(&history).expect("removing the history");
                        copy_dir(&durable_history, &history);
                    }
                    Op::DamageHistory { at } => damage_history(&history, at),
                    _ => {}
                }
                (journal, ledger) = open(dir.path());
                ledger.forget_keys_before(expired);
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

/// A resent log leaves retention with its message, out of log-number
/// order: uncounted then, and not again when later releases pass it.
#[test]
fn resent_logs_leave_retention_with_their_messages_counted_once() {
    // Fillers to destination 2 fill segments, so releases happen.
    let fill = |ops: &mut Vec<Op>| {
        for _ in 0..12 {
            ops.extend([Op::Send { mask: 0b100, keyed: false, body: 1900 }, Op::Finish { dest: 2, status: 0 }]);
        }
    };
    let mut ops = Vec::new();
    fill(&mut ops);
    // A to destination 0, delivered; B to destination 1, waiting.
    ops.extend([Op::Send { mask: 0b001, keyed: false, body: 10 }, Op::Finish { dest: 0, status: 0 }]);
    fill(&mut ops);
    ops.push(Op::Send { mask: 0b010, keyed: false, body: 10 });
    fill(&mut ops);
    // A resent and delivered: its log is numbered after B's.
    ops.extend([Op::Resend { pick: 24, count: 1 }, Op::Finish { dest: 0, status: 0 }]);
    fill(&mut ops);
    // B ends 50 minutes later; 20 minutes on, A's logs are past
    // retention and B's is not: A's message is released.
    ops.extend([Op::Advance { minutes: 50 }, Op::Finish { dest: 1, status: 0 }, Op::Sync]);
    ops.extend([Op::Advance { minutes: 20 }, Op::Compact, Op::Reopen]);
    // Then B's too, past the resent log's number.
    fill(&mut ops);
    ops.extend([Op::Advance { minutes: 120 }, Op::Sync, Op::Compact, Op::Reopen]);
    assert!(run(&ops) >= 2, "segments were deleted");
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
