//! The history store: every ended log, on disk beside the journal, so that
//! memory holds only the work in hand (logs not yet ended) while operators
//! search a week of history.
//!
//! The history is derived data. The journal is the truth: the history can
//! always be rebuilt by replaying it, is checked when the engine starts,
//! and is rebuilt when it is missing, damaged, or out of step with the
//! journal. Nothing is ever trusted over the journal.
//!
//! # What goes in, and when
//!
//! A log enters the history once the event that ended it (a terminal
//! status) is durable in the journal; until then it stays in memory with
//! the live logs (`State::settle`). So the history only ever holds what a
//! crash cannot take back. A log an operator retries comes back to memory
//! (its history entry stays, shadowed) and is written again when it ends.
//!
//! # Layout
//!
//! ```text
//! <data_dir>/history/HEADER                the checkpoint (below)
//! <data_dir>/history/table/<chunk>.tbl     log numbers chunk·65536 .. +65536
//! <data_dir>/history/rows/<file>.rows      rows, in the order logs ended
//! <data_dir>/history/keys/<file>.keys      idempotency keys, in acceptance order
//! ```
//!
//! The keys (`keys.rs`) are not logs: they are the last 24 hours of
//! `Idempotency-Key`s, kept so that a restart loads them instead of
//! replaying a day of journal. Memory holds the same keys, hashed.
//!
//! Every file is made ahead (`ahead.rs`): when file `n` comes into use,
//! `n + 1` is created on a thread of its own, so no SEND waits for a file
//! to be zero-filled and synced.
//!
//! Log numbers are dense and in the order logs were made (the state numbers
//! every log as it is accepted or resent, and a replay numbers them the same
//! way), so "newest first" is "highest number first", and the API's cursors
//! are log numbers. A resent log (SPEC §13) is a new log of an old message:
//! its number and `created_at` are those of the resend, its `position` its
//! message's; it leaves retention with its message.
//!
//! A **table chunk** (`table.rs`) is one fixed-size file, zero-filled when
//! created and memory-mapped:
//!
//! | offset | bytes | what |
//! |---|---|---|
//! | 0 | 64 | header: magic `FRXHTAB\0`, version, chunk number, CRC; the lowest row offset referenced (outside the CRC) |
//! | 64 | 16 × 320 | one summary per block of 4096 entries: a 2048-bit filter of destination, source, status, destination+status, data model and event type; entry count; earliest and latest `received_at`; latest `updated_at`; highest position an entry was made at |
//! | 8192 | 65536 × 128 | entries by log number: log, destination and source IDs, message position and ID, times, row offset, name hashes, ending position, status, type, version, the position a resent log was made at (0 for any other), CRC-32 |
//! | 8 MiB + 8192 | 131072 × 16 | open-addressing hash of log IDs (low 64 bits → number in chunk), at most half full |
//!
//! A **row** (`rows.rs`) holds the rest: names, reason and every attempt
//! (with the journal position that recorded it), framed by length and
//! CRC-32 in 16 MiB files that are appended to in the order logs end.
//!
//! # Lookups
//!
//! - `GET /logs/{id}`: the in-memory logs first; then each chunk's ID hash,
//!   newest chunk first, confirming the full ID on the entry; then the row,
//!   and the payload from the journal at the message's position.
//! - `GET /logs`: log numbers are walked downward from the cursor, merging
//!   the in-memory logs with the table. A block of 4096 entries is skipped
//!   unless its summary may hold a match (every filter's bit is set and its
//!   time range meets `since`/`until`); entries are filtered on their own
//!   fields, names confirmed against the row.
//!
//! # Durability and rebuilds
//!
//! Writes go to memory-mapped files and are not synced one by one. Every
//! compaction takes a **checkpoint**: it notes, under the state lock, the
//! journal position `applied_through` the history reflects and where the
//! next row goes, syncs every file written since the last checkpoint, then
//! replaces `HEADER` atomically. The snapshot written next replays from no
//! later than `applied_through + 1` and the oldest message then in memory,
//! so after any crash the replay redoes every change the header does not
//! cover: events at or below `applied_through` leave the history alone,
//! later ones are written again (table writes are idempotent; rows go
//! again from the header's row end, overwriting rows of the lost tail).
//!
//! Keys are written as their messages are applied, before they are
//! durable: the header records where they end, and only those at or below
//! `applied_through` are believed at start (the replay gives back the rest).
//!
//! At start, the header, every chunk and rows header and every entry's CRC
//! are checked. The history is rebuilt from the journal (every retained
//! record replayed) when it is missing or damaged, when its header is
//! ahead of the journal, or when the journal's snapshot would replay from
//! past what the history holds.
//!
//! # Retention
//!
//! Entries whose message was accepted before the journal's release point
//! (the position compaction last released records below) are past
//! retention: never shown, and not counted. Table chunks holding only such
//! entries are deleted with the rows files only they reference, at the
//! compaction that released them.

mod ahead;
mod checkpoint;
mod keys;
mod release;
mod rows;
mod table;

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::ControlFlow,
    path::{Path, PathBuf},
};

pub use self::checkpoint::{Checkpoint, Finished, NO_HISTORY};
use self::{
    ahead::Ahead,
    checkpoint::{Header, write_header},
    keys::Keys,
    rows::Rows,
    table::Chunk,
};
pub use self::{
    keys::{KeyHash, StoredKey, key_hash},
    rows::Row,
    table::{CHUNK_LOGS, Entry, Probe, key, name_hash},
};
use crate::model::{Id, LogStatus};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the history is damaged: {0}")]
    Damaged(String),
}

impl HistoryError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io { path: path.to_path_buf(), source }
    }
}

/// The history store. Owned by the state; see the module docs.
#[derive(Debug)]
pub struct History {
    dir: PathBuf,
    chunks: BTreeMap<u64, Chunk>,
    rows: Rows,
    keys: Keys,
    /// The keys read at open, until the state takes them.
    loaded_keys: Vec<StoredKey>,
    /// What the last checkpoint made durable.
    checkpointed: Header,
    /// The latest journal position written.
    applied_through: u64,
    dirty: BTreeSet<u64>,
    /// Why a checkpoint failed, once one has.
    failed: Option<String>,
    /// Entries of messages accepted before this position are past retention.
    visible_from: u64,
    /// No visible entry has a lower log number.
    first_visible: u64,
    /// Visible entries by status (`LogStatus as usize`).
    counts: [u64; 6],
    /// Visible entries of resent logs, by message position and number:
    /// they leave retention with their message, out of number order, so
    /// a release finds them here rather than at the front of the table.
    resent: BTreeSet<(u64, u64)>,
    /// Why the history is being rebuilt, while it is.
    rebuilding: Option<String>,
    /// The next table chunk, made ahead.
    ahead: Ahead,
    _temporary: Option<tempfile::TempDir>,
}

impl History {
    /// Opens the history in `dir` (created if missing), checking all of
    /// it. A history that cannot be used is emptied, and `rebuilding` says
    /// why: the caller must then replay the whole journal into it.
    pub fn open(dir: &Path, visible_from: u64) -> Result<Self, HistoryError> {
        match Self::open_intact(dir, visible_from) {
            Ok(history) => Ok(history),
            Err(HistoryError::Damaged(why)) => Self::empty(dir, visible_from, why),
            Err(e) => Err(e),
        }
    }

    fn open_intact(dir: &Path, visible_from: u64) -> Result<Self, HistoryError> {
        let header = match std::fs::read(dir.join("HEADER")) {
            Ok(bytes) => Header::decode(&bytes).map_err(HistoryError::Damaged)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HistoryError::Damaged(NO_HISTORY.into()));
            }
            Err(e) => return Err(HistoryError::io(&dir.join("HEADER"))(e)),
        };
        let (table_dir, rows_dir) = (dir.join("table"), dir.join("rows"));
        let mut chunks = BTreeMap::new();
        for entry in std::fs::read_dir(&table_dir).map_err(HistoryError::io(&table_dir))? {
            let path = entry.map_err(HistoryError::io(&table_dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if let Some(number) = name.strip_suffix(".tbl").and_then(|n| u64::from_str_radix(n, 16).ok()) {
                chunks.insert(number, Chunk::open(&table_dir, number)?);
            }
        }
        let rows = Rows::open(&rows_dir, header.rows_end)?;
        let (keys, loaded_keys) = Keys::open(&dir.join("keys"), header.keys_end, header.applied_through)?;
        let mut history = Self {
            dir: dir.to_path_buf(),
            chunks,
            rows,
            keys,
            loaded_keys,
            checkpointed: header,
            applied_through: header.applied_through,
            dirty: BTreeSet::new(),
            failed: None,
            visible_from,
            first_visible: u64::MAX,
            counts: [0; 6],
            resent: BTreeSet::new(),
            rebuilding: None,
            ahead: Ahead::default(),
            _temporary: None,
        };
        history.recount()?;
        Ok(history)
    }

    /// An empty history in `dir`, to be rebuilt for the reason given.
    fn empty(dir: &Path, visible_from: u64, reason: String) -> Result<Self, HistoryError> {
        for sub in ["table", "rows", "keys"] {
            let path = dir.join(sub);
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(HistoryError::io(&path)(e)),
            }
            std::fs::create_dir_all(&path).map_err(HistoryError::io(&path))?;
        }
        let header = Header::default();
        write_header(dir, &header)?;
        let rows = Rows::open(&dir.join("rows"), 0)?;
        let (keys, _) = Keys::open(&dir.join("keys"), 0, 0)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            chunks: BTreeMap::new(),
            rows,
            keys,
            loaded_keys: Vec::new(),
            checkpointed: header,
            applied_through: 0,
            dirty: BTreeSet::new(),
            failed: None,
            visible_from,
            first_visible: u64::MAX,
            counts: [0; 6],
            resent: BTreeSet::new(),
            rebuilding: Some(reason),
            ahead: Ahead::default(),
            _temporary: None,
        })
    }

    /// An empty history in a temporary directory, removed on drop.
    pub fn temporary() -> Self {
        let temp = tempfile::tempdir().expect("a temporary directory for the history");
        let mut history =
            Self::empty(temp.path(), 0, "temporary".into()).expect("creating a history in a temporary directory");
        history.rebuilding = None;
        history._temporary = Some(temp);
        history
    }

    /// Checks every entry and counts the visible ones.
    fn recount(&mut self) -> Result<(), HistoryError> {
        let (mut counts, mut first, mut resent) = ([0u64; 6], u64::MAX, BTreeSet::new());
        for chunk in self.chunks.values() {
            for (n, entry) in chunk.entries() {
                if let Some(e) = entry?
                    && e.position >= self.visible_from
                {
                    counts[e.status as usize] += 1;
                    first = first.min(n);
                    if e.created_at != e.position {
                        resent.insert((e.position, n));
                    }
                }
            }
        }
        (self.counts, self.first_visible, self.resent) = (counts, first, resent);
        Ok(())
    }

    /// Why the history is being rebuilt from the whole journal, if it is.
    pub fn rebuilding(&self) -> Option<&str> {
        self.rebuilding.as_deref()
    }

    /// Marks a rebuild needed (the journal and the history disagree):
    /// empties the history.
    pub fn reset(&mut self, reason: String) -> Result<(), HistoryError> {
        let temporary = self._temporary.take();
        // Nothing may be in the making while the directories are emptied.
        self.ahead.settle();
        self.rows.settle();
        self.keys.settle();
        *self = Self::empty(&self.dir, self.visible_from, reason)?;
        self._temporary = temporary;
        Ok(())
    }

    /// The rebuild is over.
    pub fn rebuilt(&mut self) {
        self.rebuilding = None;
    }

    /// The journal position the last checkpoint covers: events at or
    /// below it are in the history for good.
    pub fn checkpointed_through(&self) -> u64 {
        self.checkpointed.applied_through
    }

    /// The latest journal position written into the history.
    pub fn applied_through(&self) -> u64 {
        self.applied_through
    }

    /// The idempotency keys read at open, in acceptance order (once).
    pub fn take_loaded_keys(&mut self) -> Vec<StoredKey> {
        std::mem::take(&mut self.loaded_keys)
    }

    /// Remembers an idempotency key on disk. A key that cannot be written
    /// fails the next checkpoint, so that the history (keys with it) is
    /// rebuilt from the journal at the next start; memory keeps the key.
    pub fn put_key(&mut self, key: &StoredKey) {
        if let Err(e) = self.keys.append(key) {
            tracing::error!(error = %e, "an idempotency key could not be written to the history");
            self.failed.get_or_insert_with(|| e.to_string());
        }
    }

    /// Deletes the keys files holding only keys accepted before `position`.
    pub fn release_keys_below(&mut self, position: u64) -> Result<(), HistoryError> {
        self.keys.delete_below(position)
    }

    /// Writes an ended log: its row, then its entry at log number `n`.
    /// `ended_at` is the journal position of the event that ended it.
    pub fn put(&mut self, n: u64, mut entry: Entry, row: &Row) -> Result<(), HistoryError> {
        entry.row = self.rows.append(row)?;
        let number = n / CHUNK_LOGS;
        let chunk = match self.chunks.entry(number) {
            std::collections::btree_map::Entry::Occupied(c) => c.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                let dir = self.dir.join("table");
                let len = table::CHUNK_FILE_BYTES as u64;
                let made =
                    self.ahead.next_of(number, len, |n| table::chunk_path(&dir, n), |n| Chunk::header(n).to_vec());
                slot.insert(Chunk::made(number, made.map_err(|(path, e)| HistoryError::io(&path)(e))?))
            }
        };
        if let Ok(Some(old)) = chunk.get(n)
            && old.position >= self.visible_from
        {
            self.counts[old.status as usize] -= 1;
            self.resent.remove(&(old.position, n));
        }
        if entry.position >= self.visible_from {
            self.counts[entry.status as usize] += 1;
            self.first_visible = self.first_visible.min(n);
            if entry.created_at != entry.position {
                self.resent.insert((entry.position, n));
            }
        }
        self.applied_through = self.applied_through.max(entry.ended_at);
        chunk.put(n, &entry);
        self.dirty.insert(number);
        Ok(())
    }

    /// The entry of log number `n`, visible or not.
    pub fn stored(&self, n: u64) -> Result<Option<Entry>, HistoryError> {
        let Some(chunk) = self.chunks.get(&(n / CHUNK_LOGS)) else { return Ok(None) };
        chunk.get(n)
    }

    /// The visible entry of log number `n`, if any.
    pub fn entry(&self, n: u64) -> Result<Option<Entry>, HistoryError> {
        let Some(chunk) = self.chunks.get(&(n / CHUNK_LOGS)) else { return Ok(None) };
        Ok(chunk.get(n)?.filter(|e| e.position >= self.visible_from))
    }

    pub fn row(&self, entry: &Entry) -> Result<Row, HistoryError> {
        let row = self.rows.read(entry.row)?;
        if row.id != entry.id {
            return Err(HistoryError::Damaged(format!("the row of log {} holds log {}", entry.id, row.id)));
        }
        Ok(row)
    }

    /// The log number and visible entry of log `id`.
    pub fn find(&self, id: Id) -> Result<Option<(u64, Entry)>, HistoryError> {
        for chunk in self.chunks.values().rev() {
            for n in chunk.candidates(id) {
                if let Some(e) = chunk.get(n)?.filter(|e| e.id == id && e.position >= self.visible_from) {
                    return Ok(Some((n, e)));
                }
            }
        }
        Ok(None)
    }

    /// Calls `f` with each visible entry below log number `below` that
    /// `probe` may match, highest number first, until it breaks.
    pub fn scan(
        &self,
        below: u64,
        probe: &Probe,
        mut f: impl FnMut(u64, Entry) -> ControlFlow<()>,
    ) -> Result<(), HistoryError> {
        for chunk in self.chunks.range(..below.div_ceil(CHUNK_LOGS)).map(|(_, c)| c).rev() {
            let base = chunk.number * CHUNK_LOGS;
            let end = below.min(base + CHUNK_LOGS);
            if end <= self.first_visible {
                return Ok(());
            }
            let mut n = end;
            while n > base.max(self.first_visible) {
                let block = ((n - 1 - base) / table::BLOCK_LOGS) as usize;
                let block_start = base + block as u64 * table::BLOCK_LOGS;
                if !chunk.block_may_match(block, probe) {
                    n = block_start;
                    continue;
                }
                while n > block_start.max(self.first_visible) {
                    n -= 1;
                    if let Some(e) = chunk.get(n)?.filter(|e| e.position >= self.visible_from)
                        && f(n, e).is_break()
                    {
                        return Ok(());
                    }
                }
                n = block_start;
            }
        }
        Ok(())
    }

    /// The lowest log number a visible entry may have.
    pub fn first_visible(&self) -> u64 {
        self.first_visible
    }

    /// Visible entries by status.
    pub fn count(&self, status: LogStatus) -> u64 {
        self.counts[status as usize]
    }

    /// Visible entries.
    pub fn len(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The oldest message position, among visible entries changed at or
    /// after `after_ms`: the journal must keep records from there.
    pub fn needed_from(&self, after_ms: i64) -> Result<Option<u64>, HistoryError> {
        let found = self.first_entry(
            |chunk, block| chunk.block_updated_max(block).is_some_and(|t| t >= after_ms),
            |e| e.position >= self.visible_from && e.updated_at_ms >= after_ms,
        )?;
        Ok(found.map(|(_, e)| e.position))
    }

    /// The lowest log number of an entry made at or after `position`
    /// (accepted, or resent), among entries not past retention.
    pub fn first_at(&self, position: u64) -> Result<Option<u64>, HistoryError> {
        let found = self.first_entry(
            |chunk, block| chunk.block_position_max(block).is_some_and(|p| p >= position),
            |e| e.created_at >= position,
        )?;
        Ok(found.map(|(n, _)| n))
    }

    /// The lowest-numbered entry from `first_visible` on that `wanted`
    /// accepts, reading only the blocks `block_may_hold` lets through.
    fn first_entry(
        &self,
        block_may_hold: impl Fn(&Chunk, usize) -> bool,
        wanted: impl Fn(&Entry) -> bool,
    ) -> Result<Option<(u64, Entry)>, HistoryError> {
        for chunk in self.chunks.range(self.first_visible / CHUNK_LOGS..).map(|(_, c)| c) {
            let base = chunk.number * CHUNK_LOGS;
            for block in 0..(CHUNK_LOGS / table::BLOCK_LOGS) as usize {
                if !block_may_hold(chunk, block) {
                    continue;
                }
                let start = (base + block as u64 * table::BLOCK_LOGS).max(self.first_visible);
                for n in start..base + (block as u64 + 1) * table::BLOCK_LOGS {
                    if let Some(e) = chunk.get(n)?.filter(&wanted) {
                        return Ok(Some((n, e)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Begins a checkpoint: what to sync, and the header to write after.
    pub fn checkpoint(&mut self) -> Checkpoint {
        let header =
            Header { applied_through: self.applied_through, rows_end: self.rows.end(), keys_end: self.keys.end() };
        let dirty = std::mem::take(&mut self.dirty);
        let mut files: Vec<(PathBuf, std::io::Result<std::fs::File>)> = dirty
            .iter()
            .filter_map(|n| self.chunks.get(n))
            .map(|c| (c.path().to_path_buf(), c.sync_handle()))
            .collect();
        for file in self.rows.files_from(self.checkpointed.rows_end) {
            files.push((file.path().to_path_buf(), file.sync_handle()));
        }
        files.extend(self.keys.take_dirty());
        Checkpoint { dir: self.dir.clone(), header, files, failed: self.failed.clone() }
    }

    /// Takes in how a checkpoint ended. After a failed sync the kernel may
    /// have dropped the pages it could not write and marked them clean, so
    /// no later sync can vouch for them: the header goes, the history is
    /// rebuilt at the next start, and no checkpoint is taken until then.
    pub fn checkpoint_finished(&mut self, outcome: &Result<Finished, HistoryError>) {
        match outcome {
            Ok(Finished(header)) => self.checkpointed = *header,
            Err(e) => {
                let header = self.dir.join("HEADER");
                if let Err(removing) = std::fs::remove_file(&header)
                    && removing.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::error!(error = %removing, "the history's header could not be removed");
                }
                self.failed = Some(e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests;
