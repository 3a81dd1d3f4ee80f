//! The idempotency keys of accepted messages, on disk, so that a restart
//! loads the last 24 hours of keys instead of replaying 24 hours of
//! journal to find them.
//!
//! `keys/<file>.keys`: 16 MiB files of fixed 64-byte records, appended in
//! acceptance order (journal positions only grow along the files):
//!
//! | offset | bytes | what |
//! |---|---|---|
//! | 0 | 16 | the key: the first 16 bytes of SHA-256 over the source ID (16 bytes, little-endian) and the `Idempotency-Key` |
//! | 16 | 16 | the digest of the body that came with it |
//! | 32 | 8 | the message's journal position |
//! | 40 | 8 | the message ID |
//! | 48 | 8 | when it was received (ms since the epoch) |
//! | 56 | 1 | record version (1) |
//! | 60 | 4 | CRC-32 of bytes 0..60 |
//!
//! Each file begins with a 64-byte header (magic `FRXHKEY\0`, version,
//! file number, CRC). A key is written when its message is applied, before
//! it is durable in the journal. A checkpoint syncs the files and records
//! in `HEADER` where the keys end; at open every record before that end
//! must be whole (or the history is rebuilt), only those at positions up
//! to the checkpoint are believed, and everything after them is zeroed and
//! synced before a new key is written there. The replay from the snapshot,
//! which begins at or before the checkpoint, gives back the keys past it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use ferrox_storage::MappedFile;
use sha2::{Digest, Sha256};

use super::{HistoryError, ahead::Ahead};
use crate::{
    journal::BodyHash,
    model::{Id, TimestampMs},
};

const MAGIC: &[u8; 8] = b"FRXHKEY\0";
const KEYS_VERSION: u32 = 1;
const RECORD_VERSION: u8 = 1;
const FILE_BYTES: u64 = 16 << 20;
const RECORD_BYTES: u64 = 64;
/// The header takes the first record's room.
const FIRST_SLOT: u64 = RECORD_BYTES;

/// A source's `Idempotency-Key`, hashed to a fixed size.
pub type KeyHash = [u8; 16];

/// The key `key` of source `source`, as stored and remembered.
pub fn key_hash(source: Id, key: &str) -> KeyHash {
    let mut digest = Sha256::new();
    digest.update(source.0.to_le_bytes());
    digest.update(key.as_bytes());
    let mut hash = [0u8; 16];
    hash.copy_from_slice(&digest.finalize()[..16]);
    hash
}

/// One remembered key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredKey {
    pub key: KeyHash,
    pub body_hash: BodyHash,
    pub position: u64,
    pub message_id: u64,
    pub at_ms: TimestampMs,
}

impl StoredKey {
    fn encode(&self) -> [u8; RECORD_BYTES as usize] {
        let mut b = [0u8; RECORD_BYTES as usize];
        b[0..16].copy_from_slice(&self.key);
        b[16..32].copy_from_slice(&self.body_hash);
        b[32..40].copy_from_slice(&self.position.to_le_bytes());
        b[40..48].copy_from_slice(&self.message_id.to_le_bytes());
        b[48..56].copy_from_slice(&self.at_ms.to_le_bytes());
        b[56] = RECORD_VERSION;
        let crc = crc32fast::hash(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// The record in `b`, if a whole one of a known version is there.
    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != RECORD_BYTES as usize || crc32fast::hash(&b[..60]).to_le_bytes() != b[60..64] {
            return None;
        }
        if b[56] != RECORD_VERSION {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        Some(Self {
            key: b[0..16].try_into().ok()?,
            body_hash: b[16..32].try_into().ok()?,
            position: u64_at(32),
            message_id: u64_at(40),
            at_ms: u64_at(48) as TimestampMs,
        })
    }
}

fn keys_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:016x}.keys"))
}

fn header(number: u64) -> [u8; FIRST_SLOT as usize] {
    let mut h = [0u8; FIRST_SLOT as usize];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&KEYS_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&number.to_le_bytes());
    let crc = crc32fast::hash(&h[..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The keys files, and where the next key goes.
#[derive(Debug)]
pub struct Keys {
    dir: PathBuf,
    files: BTreeMap<u64, MappedFile>,
    /// The position of the first key in each file.
    firsts: BTreeMap<u64, u64>,
    /// Offset of the next record (file number × file size + offset in it).
    end: u64,
    /// The position of the last key written: keys come in position order,
    /// so a replay does not write again what is there.
    last_position: u64,
    /// Files written since the last checkpoint.
    dirty: std::collections::BTreeSet<u64>,
    ahead: Ahead,
}

impl Keys {
    /// Opens the keys in `dir` (created if missing) that a checkpoint left
    /// ending at `end`, believing those at positions up to `through`;
    /// returns them in acceptance order.
    pub fn open(dir: &Path, end: u64, through: u64) -> Result<(Self, Vec<StoredKey>), HistoryError> {
        std::fs::create_dir_all(dir).map_err(HistoryError::io(dir))?;
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(HistoryError::io(dir))? {
            let path = entry.map_err(HistoryError::io(dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let Some(number) = name.strip_suffix(".keys").and_then(|n| u64::from_str_radix(n, 16).ok()) else {
                continue;
            };
            let file = MappedFile::open(&path).map_err(HistoryError::io(&path))?;
            if file.len() as u64 != FILE_BYTES || file.bytes()[..FIRST_SLOT as usize] != header(number) {
                return Err(HistoryError::Damaged(format!("{}: bad header or size", path.display())));
            }
            files.insert(number, file);
        }
        let start = files.keys().next().map_or(FIRST_SLOT, |n| n * FILE_BYTES + FIRST_SLOT);
        let mut keys = Self {
            dir: dir.to_path_buf(),
            end: start,
            files,
            firsts: BTreeMap::new(),
            last_position: 0,
            dirty: std::collections::BTreeSet::new(),
            ahead: Ahead::default(),
        };
        let mut loaded = Vec::new();
        while keys.end < end {
            let key = keys.read(keys.end).ok_or_else(|| {
                HistoryError::Damaged(format!("the idempotency key at {} is missing or damaged", keys.end))
            })?;
            if key.position > through {
                break;
            }
            if key.position <= keys.last_position {
                return Err(HistoryError::Damaged(format!("the idempotency key at {} is out of order", keys.end)));
            }
            keys.firsts.entry(keys.end / FILE_BYTES).or_insert(key.position);
            keys.last_position = key.position;
            loaded.push(key);
            keys.end = next_slot(keys.end);
        }
        keys.clear_tail()?;
        Ok((keys, loaded))
    }

    /// Where the next key goes: a checkpoint records it.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The record at `offset`, if a whole one is there.
    fn read(&self, offset: u64) -> Option<StoredKey> {
        let file = self.files.get(&(offset / FILE_BYTES))?;
        let start = (offset % FILE_BYTES) as usize;
        StoredKey::decode(file.bytes().get(start..start + RECORD_BYTES as usize)?)
    }

    /// Zeroes and syncs everything after the believed keys, and removes
    /// later files, so that whatever is found there after a crash was
    /// written since.
    fn clear_tail(&mut self) -> Result<(), HistoryError> {
        let current = self.end / FILE_BYTES;
        let later: Vec<u64> = self.files.range(current + 1..).map(|(n, _)| *n).collect();
        for number in later {
            if let Some(file) = self.files.remove(&number) {
                let path = file.path().to_path_buf();
                drop(file);
                std::fs::remove_file(&path).map_err(HistoryError::io(&path))?;
            }
        }
        if let Some(file) = self.files.get_mut(&current) {
            let start = (self.end % FILE_BYTES) as usize;
            let tail = &mut file.bytes_mut()[start..];
            if tail.iter().any(|&b| b != 0) {
                tail.fill(0);
                let path = file.path().to_path_buf();
                file.sync_handle().and_then(|f| f.sync_data()).map_err(HistoryError::io(&path))?;
            }
        }
        Ok(())
    }

    /// Appends a key, unless a key at or after its position is there (a
    /// replay meeting what was kept).
    pub fn append(&mut self, key: &StoredKey) -> Result<(), HistoryError> {
        if key.position <= self.last_position {
            return Ok(());
        }
        let number = self.end / FILE_BYTES;
        let file = match self.files.entry(number) {
            std::collections::btree_map::Entry::Occupied(file) => file.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                let dir = &self.dir;
                let made = self.ahead.next_of(number, FILE_BYTES, |n| keys_path(dir, n), |n| header(n).to_vec());
                slot.insert(made.map_err(|(path, e)| HistoryError::io(&path)(e))?)
            }
        };
        let start = (self.end % FILE_BYTES) as usize;
        file.bytes_mut()[start..start + RECORD_BYTES as usize].copy_from_slice(&key.encode());
        self.firsts.entry(number).or_insert(key.position);
        self.dirty.insert(number);
        self.last_position = key.position;
        self.end = next_slot(self.end);
        Ok(())
    }

    /// The files written since the last call, to sync at a checkpoint.
    pub fn take_dirty(&mut self) -> Vec<(PathBuf, std::io::Result<std::fs::File>)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty.iter().filter_map(|n| self.files.get(n)).map(|f| (f.path().to_path_buf(), f.sync_handle())).collect()
    }

    /// Deletes the files whose keys all came before `position`: those
    /// followed by a file whose first key is at or before it.
    pub fn delete_below(&mut self, position: u64) -> Result<(), HistoryError> {
        let numbers: Vec<u64> = self.firsts.keys().copied().collect();
        for pair in numbers.windows(2) {
            let (number, next) = (pair[0], pair[1]);
            if self.firsts.get(&next).is_none_or(|&first| first > position) {
                break;
            }
            self.firsts.remove(&number);
            self.dirty.remove(&number);
            if let Some(file) = self.files.remove(&number) {
                let path = file.path().to_path_buf();
                drop(file);
                std::fs::remove_file(&path).map_err(HistoryError::io(&path))?;
            }
        }
        Ok(())
    }

    /// The number of keys files.
    #[cfg(test)]
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// Waits for the file in the making, if any.
    pub fn settle(&mut self) {
        self.ahead.settle();
    }
}

/// The slot after the one at `offset`, moving to the next file's first
/// slot at a file's end.
fn next_slot(offset: u64) -> u64 {
    let next = offset + RECORD_BYTES;
    if next.is_multiple_of(FILE_BYTES) { next + FIRST_SLOT } else { next }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(position: u64) -> StoredKey {
        StoredKey {
            key: key_hash(Id(1), &format!("k-{position}")),
            body_hash: [7; 16],
            position,
            message_id: position / 2,
            at_ms: 1_700_000_000_000 + position as i64,
        }
    }

    #[test]
    fn keys_up_to_the_checkpoint_come_back_and_the_tail_is_cleared() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (mut keys, loaded) = Keys::open(dir.path(), 0, 0).expect("opening");
        assert!(loaded.is_empty());
        for p in [10, 20, 30] {
            keys.append(&key(p)).expect("appending");
        }
        keys.append(&key(20)).expect("a replayed key is not written again");
        // The checkpoint: the files synced, the end recorded, through 25.
        let end = keys.end();
        keys.append(&key(40)).expect("appending after the checkpoint");
        keys.settle();
        drop(keys);

        // The key at 30 was not durable in the journal at the checkpoint,
        // and the one at 40 came after it: neither is believed, and a
        // replay gives back 30.
        let (mut keys, loaded) = Keys::open(dir.path(), end, 25).expect("reopening");
        assert_eq!(loaded, [key(10), key(20)]);
        keys.append(&key(30)).expect("appending");
        let end = keys.end();
        drop(keys);
        let missing = Keys::open(dir.path(), end + RECORD_BYTES, 100);
        assert!(matches!(missing, Err(HistoryError::Damaged(_))), "a key missing before the recorded end is damage");
        let (keys, loaded) = Keys::open(dir.path(), end, 100).expect("reopening");
        assert_eq!(loaded, [key(10), key(20), key(30)], "the key at 40 was cleared at the earlier open");
        assert_eq!(keys.files(), 1);
    }

    #[test]
    fn keys_cross_files_and_old_files_are_deleted() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (mut keys, _) = Keys::open(dir.path(), 0, 0).expect("opening");
        let per_file = (FILE_BYTES - FIRST_SLOT) / RECORD_BYTES;
        let total = per_file + 10;
        for p in 1..=total {
            keys.append(&key(p)).expect("appending");
        }
        keys.settle();
        let end = keys.end();
        assert_eq!(keys.files(), 2);
        keys.delete_below(per_file).expect("deleting");
        assert_eq!(keys.files(), 2, "the first file still holds a key at or after the position");
        keys.delete_below(per_file + 1).expect("deleting");
        assert_eq!(keys.files(), 1);
        drop(keys);
        let (_, loaded) = Keys::open(dir.path(), end, total).expect("reopening");
        assert_eq!(loaded.first().map(|k| k.position), Some(per_file + 1));
        assert_eq!(loaded.len() as u64, 10);
    }

    #[test]
    fn a_torn_record_past_the_end_ends_the_keys_and_one_before_it_is_damage() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (mut keys, _) = Keys::open(dir.path(), 0, 0).expect("opening");
        for p in [5, 6, 7] {
            keys.append(&key(p)).expect("appending");
        }
        let end = keys.end();
        let at = (FIRST_SLOT + RECORD_BYTES) as usize;
        keys.files.get_mut(&0).expect("file 0").bytes_mut()[at + 3] ^= 0xff;
        drop(keys);
        // Past the recorded end, a torn record ends the keys; before it,
        // it is damage.
        let (_, loaded) = Keys::open(dir.path(), FIRST_SLOT + RECORD_BYTES, 100).expect("reopening");
        assert_eq!(loaded, [key(5)]);
        let (mut keys, _) = Keys::open(dir.path(), 0, 0).expect("reopening");
        for p in [5, 6, 7] {
            keys.append(&key(p)).expect("appending");
        }
        keys.files.get_mut(&0).expect("file 0").bytes_mut()[at + 3] ^= 0xff;
        drop(keys);
        assert!(matches!(Keys::open(dir.path(), end, 100), Err(HistoryError::Damaged(_))));
    }
}
