//! The history as a whole: find, scan, checkpoint, reopen, release.

use super::{checkpoint::HEADER_MAGIC, *};
use crate::model::{LogType, TimestampMs};

fn entry(n: u64, status: LogStatus, updated_at_ms: TimestampMs) -> (Entry, Row) {
    let id = Id(0x1000 + u128::from(n));
    let entry = Entry {
        id,
        destination_id: Id(100 + u128::from(n % 2)),
        source_id: Id(1),
        position: 10 * n + 5,
        message_id: n,
        received_at_ms: 1_000 + n as i64,
        updated_at_ms,
        row: 0,
        data_model_hash: name_hash("PatientAdmin"),
        event_type_hash: name_hash("NewPatient"),
        ended_at: 10 * n + 7,
        status,
        log_type: LogType::Async,
        created_at: 10 * n + 5,
    };
    let row = Row {
        id,
        first_attempt_id: Id(9),
        status,
        log_type: LogType::Async,
        updated_at_ms,
        data_model: "PatientAdmin".into(),
        event_type: "NewPatient".into(),
        reason: None,
        attempts: Vec::new(),
        resent_from: None,
    };
    (entry, row)
}

#[test]
fn entries_are_found_searched_checkpointed_and_released() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut history = History::open(dir.path(), 0).expect("opening");
    assert_eq!(history.rebuilding(), Some(NO_HISTORY));
    let numbers = [3, 4, CHUNK_LOGS + 1, CHUNK_LOGS + 2];
    for (i, &n) in numbers.iter().enumerate() {
        let status = if i == 2 { LogStatus::Failed } else { LogStatus::Succeeded };
        let (e, row) = entry(n, status, 50 * i as i64);
        history.put(n, e, &row).expect("writing");
    }
    let outcome = history.checkpoint().finish();
    history.checkpoint_finished(&outcome);
    assert_eq!(history.checkpointed_through(), 10 * (CHUNK_LOGS + 2) + 7);
    drop(history);

    let mut history = History::open(dir.path(), 0).expect("reopening");
    assert_eq!(history.rebuilding(), None, "the checkpointed history is intact");
    assert_eq!((history.len(), history.count(LogStatus::Failed)), (4, 1));
    let (n, found) = history.find(Id(0x1000 + u128::from(CHUNK_LOGS + 1))).expect("readable").expect("found");
    assert_eq!((n, found.status), (CHUNK_LOGS + 1, LogStatus::Failed));
    assert_eq!(history.row(&found).expect("its row").id, found.id);
    // A scan reads the blocks that may match, newest first; the caller
    // filters their entries.
    let scan = |probe: Probe, below: u64| {
        let mut seen = Vec::new();
        history
            .scan(below, &probe, |n, _| {
                seen.push(n);
                ControlFlow::Continue(())
            })
            .expect("scanning");
        seen
    };
    let probe = |d: u128| Probe { keys: vec![key::destination(Id(d))], ..Probe::default() };
    assert_eq!(scan(probe(100), u64::MAX), [CHUNK_LOGS + 2, CHUNK_LOGS + 1, 4, 3]);
    assert_eq!(scan(probe(100), CHUNK_LOGS + 1), [4, 3], "below a cursor");
    assert_eq!(scan(probe(555), u64::MAX), Vec::<u64>::new(), "no block holds destination 555");
    assert_eq!(history.needed_from(60).expect("readable"), Some(10 * (CHUNK_LOGS + 1) + 5));
    assert_eq!(history.first_at(40).expect("readable"), Some(4));

    // Releasing below the second chunk's first message hides the first
    // chunk's entries and deletes its file.
    history.release_below(10 * (CHUNK_LOGS + 1), u64::MAX).expect("releasing");
    assert_eq!((history.len(), history.first_visible()), (2, CHUNK_LOGS + 1));
    assert_eq!(history.find(Id(0x1000 + 3)).expect("readable"), None);
    assert!(!table::chunk_path(&dir.path().join("table"), 0).exists(), "the first chunk's file is gone");
}

#[test]
fn the_next_chunk_is_made_ahead_and_one_left_by_a_crash_is_used() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let table_dir = dir.path().join("table");
    let mut history = History::open(dir.path(), 0).expect("opening");
    let (e, row) = entry(5, LogStatus::Succeeded, 10);
    history.put(5, e, &row).expect("writing");
    // Writing into chunk 0 starts making chunk 1; wait for it as a crash
    // right after would find it.
    history.ahead.settle();
    history.rows.settle();
    let made = Chunk::open(&table_dir, 1).expect("chunk 1 was made ahead, with its header");
    assert_eq!(made.min_row(), None, "and nothing in it");
    drop(made);
    let outcome = history.checkpoint().finish();
    history.checkpoint_finished(&outcome);
    drop(history);

    let mut history = History::open(dir.path(), 0).expect("a chunk made ahead opens as an empty one");
    assert_eq!((history.rebuilding(), history.len()), (None, 1));
    let n = CHUNK_LOGS + 3;
    let (e, row) = entry(n, LogStatus::Failed, 20);
    history.put(n, e, &row).expect("writing into the chunk made ahead");
    let (found, entry) = history.find(Id(0x1000 + u128::from(n))).expect("readable").expect("found");
    assert_eq!((found, entry.status), (n, LogStatus::Failed));
    assert_eq!(history.row(&entry).expect("its row").status, LogStatus::Failed);
}

#[test]
fn a_history_of_an_older_format_is_rebuilt_and_keys_come_back_after_a_checkpoint() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut history = History::open(dir.path(), 0).expect("opening");
    let (e, row) = entry(1, LogStatus::Succeeded, 10);
    history.put(1, e, &row).expect("writing");
    let key = StoredKey { key: key_hash(Id(1), "k"), body_hash: [3; 16], position: 15, message_id: 1, at_ms: 5 };
    history.put_key(&key);
    let outcome = history.checkpoint().finish();
    history.checkpoint_finished(&outcome);
    drop(history);
    let mut history = History::open(dir.path(), 0).expect("reopening");
    assert_eq!(history.rebuilding(), None);
    assert_eq!(history.take_loaded_keys(), [key], "the key at or below the checkpoint (17) comes back");
    drop(history);

    // A header written by the format before the keys (version 1, 40 bytes).
    let mut old = [0u8; 40];
    old[0..8].copy_from_slice(HEADER_MAGIC);
    old[8..12].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32fast::hash(&old[..36]);
    old[36..40].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(dir.path().join("HEADER"), old).expect("writing an old header");
    let history = History::open(dir.path(), 0).expect("reopening");
    let why = history.rebuilding().expect("rebuilt").to_owned();
    assert!(why.contains("version 1"), "{why}");
    assert_eq!((history.len(), history.stored(1).expect("readable")), (0, None), "emptied, to be rebuilt");
}
