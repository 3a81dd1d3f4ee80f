//! The log table: one fixed-size entry per log number, in chunk files of
//! `CHUNK_LOGS` entries, with a summary per block of entries and a hash of
//! log IDs. See the module docs of `crate::history` for the layout.

use std::path::{Path, PathBuf};

use ferrox_storage::MappedFile;

use super::HistoryError;
use crate::model::{Id, LogStatus, LogType, TimestampMs};

/// Log numbers per chunk file.
pub const CHUNK_LOGS: u64 = 1 << 16;
/// Entries per summary block: small enough that a block a query skips
/// saves real work, large enough that summaries are few.
pub const BLOCK_LOGS: u64 = 1 << 12;
const BLOCKS: usize = (CHUNK_LOGS / BLOCK_LOGS) as usize;
pub const ENTRY_BYTES: usize = 128;
const HEADER_REGION_BYTES: usize = 8192;
pub const CHUNK_HEADER_BYTES: usize = 64;
const SUMMARY_BYTES: usize = 320;
const SUMMARY_BITS_BYTES: usize = 256;
const ID_SLOTS: usize = 2 * CHUNK_LOGS as usize;
const ID_SLOT_BYTES: usize = 16;
const ENTRIES_AT: usize = HEADER_REGION_BYTES;
const IDS_AT: usize = ENTRIES_AT + CHUNK_LOGS as usize * ENTRY_BYTES;
pub const CHUNK_FILE_BYTES: usize = IDS_AT + ID_SLOTS * ID_SLOT_BYTES;
const MAGIC: &[u8; 8] = b"FRXHTAB\0";
/// The table's format; a change needs a new number and a golden test.
const TABLE_VERSION: u32 = 1;
const ENTRY_VERSION: u8 = 1;

const _: () = assert!(CHUNK_HEADER_BYTES + BLOCKS * SUMMARY_BYTES <= HEADER_REGION_BYTES);
const _: () = assert!(SUMMARY_BITS_BYTES + 8 + 4 * 8 <= SUMMARY_BYTES);
const _: () = assert!(CHUNK_FILE_BYTES.is_multiple_of(4096));
// The ID hash is at most half full, so probes stay short.
const _: () = assert!(ID_SLOTS >= 2 * CHUNK_LOGS as usize);

/// An ended log, as the table holds it: everything a search filters on,
/// and where its row is.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: Id,
    pub destination_id: Id,
    pub source_id: Id,
    /// Where its message was accepted in the journal.
    pub position: u64,
    pub message_id: u64,
    pub received_at_ms: TimestampMs,
    pub updated_at_ms: TimestampMs,
    /// Offset of its row in the rows files.
    pub row: u64,
    pub data_model_hash: u32,
    pub event_type_hash: u32,
    /// Journal position of the event that ended it.
    pub ended_at: u64,
    pub status: LogStatus,
    pub log_type: LogType,
    /// Journal position of the event that made it: its message's
    /// `position`, or later for a resent log. Stored as 0 when equal to
    /// `position`, so entries written before resends existed read the same.
    pub created_at: u64,
}

pub fn status_code_of(s: LogStatus) -> u8 {
    s as u8 + 1
}

pub fn status_of(code: u8) -> Option<LogStatus> {
    use LogStatus::*;
    [Pending, Retrying, ProcessingFailed, Succeeded, Failed, Filtered].get(usize::from(code.checked_sub(1)?)).copied()
}

impl Entry {
    fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut b = [0u8; ENTRY_BYTES];
        b[0..16].copy_from_slice(&self.id.0.to_le_bytes());
        b[16..32].copy_from_slice(&self.destination_id.0.to_le_bytes());
        b[32..48].copy_from_slice(&self.source_id.0.to_le_bytes());
        b[48..56].copy_from_slice(&self.position.to_le_bytes());
        b[56..64].copy_from_slice(&self.message_id.to_le_bytes());
        b[64..72].copy_from_slice(&self.received_at_ms.to_le_bytes());
        b[72..80].copy_from_slice(&self.updated_at_ms.to_le_bytes());
        b[80..88].copy_from_slice(&self.row.to_le_bytes());
        b[88..92].copy_from_slice(&self.data_model_hash.to_le_bytes());
        b[92..96].copy_from_slice(&self.event_type_hash.to_le_bytes());
        b[96..104].copy_from_slice(&self.ended_at.to_le_bytes());
        b[104] = status_code_of(self.status);
        b[105] = match self.log_type {
            LogType::Async => 1,
            LogType::Query => 2,
        };
        b[106] = ENTRY_VERSION;
        let created_at = if self.created_at == self.position { 0 } else { self.created_at };
        b[108..116].copy_from_slice(&created_at.to_le_bytes());
        let crc = crc32fast::hash(&b[..124]);
        b[124..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// The entry in `b`: `Ok(None)` for an empty slot.
    fn decode(b: &[u8]) -> Result<Option<Self>, String> {
        if b[106] == 0 && b.iter().all(|&x| x == 0) {
            return Ok(None);
        }
        let crc = u32::from_le_bytes(b[124..128].try_into().map_err(|_| "short entry")?);
        if crc32fast::hash(&b[..124]) != crc {
            return Err("entry checksum mismatch".into());
        }
        if b[106] != ENTRY_VERSION {
            return Err(format!("entry version {} is not known to this build", b[106]));
        }
        let u128_at = |i: usize| u128::from_le_bytes(b[i..i + 16].try_into().unwrap_or_default());
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
        Ok(Some(Self {
            id: Id(u128_at(0)),
            destination_id: Id(u128_at(16)),
            source_id: Id(u128_at(32)),
            position: u64_at(48),
            message_id: u64_at(56),
            received_at_ms: u64_at(64) as i64,
            updated_at_ms: u64_at(72) as i64,
            row: u64_at(80),
            data_model_hash: u32_at(88),
            event_type_hash: u32_at(92),
            ended_at: u64_at(96),
            created_at: match u64_at(108) {
                0 => u64_at(48),
                at => at,
            },
            status: status_of(b[104]).ok_or("unknown status code")?,
            log_type: match b[105] {
                1 => LogType::Async,
                2 => LogType::Query,
                _ => return Err("unknown log type code".into()),
            },
        }))
    }
}

/// What a search looks for, as summary keys: a block is read only if it
/// may hold a match.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub keys: Vec<u64>,
    pub since_ms: Option<TimestampMs>,
    pub until_ms: Option<TimestampMs>,
}

/// Summary keys, one bit each in a block's filter.
pub mod key {
    use super::*;

    fn mix(mut x: u64) -> u64 {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }

    fn of(tag: u64, value: u128) -> u64 {
        mix(mix(tag ^ value as u64) ^ (value >> 64) as u64)
    }

    pub fn destination(id: Id) -> u64 {
        of(1, id.0)
    }
    pub fn source(id: Id) -> u64 {
        of(2, id.0)
    }
    pub fn status(s: LogStatus) -> u64 {
        of(3, u128::from(status_code_of(s)))
    }
    pub fn destination_status(id: Id, s: LogStatus) -> u64 {
        of(4 + u64::from(status_code_of(s)), id.0)
    }
    pub fn data_model(hash: u32) -> u64 {
        of(20, u128::from(hash))
    }
    pub fn event_type(hash: u32) -> u64 {
        of(21, u128::from(hash))
    }

    /// The keys an entry sets.
    pub fn all(e: &Entry) -> [u64; 6] {
        [
            destination(e.destination_id),
            source(e.source_id),
            status(e.status),
            destination_status(e.destination_id, e.status),
            data_model(e.data_model_hash),
            event_type(e.event_type_hash),
        ]
    }
}

/// A name's 32-bit FNV-1a hash: what the table filters names by (a match
/// is confirmed against the row).
pub fn name_hash(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// One chunk file: the entries of log numbers `number * CHUNK_LOGS ..`.
#[derive(Debug)]
pub struct Chunk {
    pub number: u64,
    file: MappedFile,
}

pub fn chunk_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:016x}.tbl"))
}

impl Chunk {
    /// The header a new chunk `number` begins with.
    pub fn header(number: u64) -> [u8; CHUNK_HEADER_BYTES] {
        let mut h = [0u8; CHUNK_HEADER_BYTES];
        h[0..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&TABLE_VERSION.to_le_bytes());
        h[16..24].copy_from_slice(&number.to_le_bytes());
        h[24..32].copy_from_slice(&CHUNK_LOGS.to_le_bytes());
        // Bytes 32..40 change as entries are written: outside the CRC.
        let crc = crc32fast::hash(&h[..32]);
        h[60..64].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Creates chunk `number` now, replacing any file of that name.
    #[cfg(test)]
    pub fn create(dir: &Path, number: u64) -> Result<Self, HistoryError> {
        let path = chunk_path(dir, number);
        let file = super::ahead::make_now(&path, CHUNK_FILE_BYTES as u64, &Self::header(number))
            .map_err(HistoryError::io(&path))?;
        Ok(Self { number, file })
    }

    /// Chunk `number` in a file made ahead with its header (`ahead.rs`).
    pub fn made(number: u64, file: MappedFile) -> Self {
        Self { number, file }
    }

    /// Opens chunk `number` and checks its header.
    pub fn open(dir: &Path, number: u64) -> Result<Self, HistoryError> {
        let path = chunk_path(dir, number);
        let file = MappedFile::open(&path).map_err(HistoryError::io(&path))?;
        let damaged = |why: &str| HistoryError::Damaged(format!("{}: {why}", path.display()));
        if file.len() != CHUNK_FILE_BYTES {
            return Err(damaged("wrong size"));
        }
        let h = &file.bytes()[..CHUNK_HEADER_BYTES];
        if &h[0..8] != MAGIC || crc32fast::hash(&h[..32]).to_le_bytes() != h[60..64] {
            return Err(damaged("bad header"));
        }
        let version = u32::from_le_bytes(h[8..12].try_into().unwrap_or_default());
        if version != TABLE_VERSION {
            return Err(damaged(&format!("table version {version} is not known to this build")));
        }
        if u64::from_le_bytes(h[16..24].try_into().unwrap_or_default()) != number {
            return Err(damaged("holds another chunk"));
        }
        Ok(Self { number, file })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    pub fn sync_handle(&self) -> std::io::Result<std::fs::File> {
        self.file.sync_handle()
    }

    fn slot(n: u64) -> usize {
        ENTRIES_AT + (n % CHUNK_LOGS) as usize * ENTRY_BYTES
    }

    /// The entry of log number `n` (which must be in this chunk).
    pub fn get(&self, n: u64) -> Result<Option<Entry>, HistoryError> {
        let at = Self::slot(n);
        Entry::decode(&self.file.bytes()[at..at + ENTRY_BYTES])
            .map_err(|why| HistoryError::Damaged(format!("{}: log number {n}: {why}", self.path().display())))
    }

    /// Writes the entry of log number `n` and folds it into its block's
    /// summary and the ID hash.
    pub fn put(&mut self, n: u64, entry: &Entry) {
        let at = Self::slot(n);
        self.file.bytes_mut()[at..at + ENTRY_BYTES].copy_from_slice(&entry.encode());
        self.summarize(n, entry);
        self.index_id(n, entry.id);
        // The lowest row offset any entry of the chunk ever pointed at,
        // plus one (zero: none): rows below every chunk's lowest may go.
        let h = &mut self.file.bytes_mut()[32..40];
        let min = u64::from_le_bytes(h.try_into().unwrap_or_default());
        if min == 0 || entry.row + 1 < min {
            h.copy_from_slice(&(entry.row + 1).to_le_bytes());
        }
    }

    /// The lowest row offset an entry of this chunk points at, if any.
    pub fn min_row(&self) -> Option<u64> {
        let min = u64::from_le_bytes(self.file.bytes()[32..40].try_into().unwrap_or_default());
        min.checked_sub(1)
    }

    fn summary_at(n: u64) -> usize {
        CHUNK_HEADER_BYTES + ((n % CHUNK_LOGS) / BLOCK_LOGS) as usize * SUMMARY_BYTES
    }

    fn summarize(&mut self, n: u64, e: &Entry) {
        let at = Self::summary_at(n);
        let s = &mut self.file.bytes_mut()[at..at + SUMMARY_BYTES];
        for k in key::all(e) {
            let bit = (k % (SUMMARY_BITS_BYTES as u64 * 8)) as usize;
            s[bit / 8] |= 1 << (bit % 8);
        }
        let count = u32::from_le_bytes(s[256..260].try_into().unwrap_or_default());
        let read = |s: &[u8], i: usize| i64::from_le_bytes(s[i..i + 8].try_into().unwrap_or_default());
        let max_position = if count == 0 {
            e.created_at
        } else {
            u64::from_le_bytes(s[288..296].try_into().unwrap_or_default()).max(e.created_at)
        };
        let (min_received, max_received, max_updated) = if count == 0 {
            (e.received_at_ms, e.received_at_ms, e.updated_at_ms)
        } else {
            (read(s, 264).min(e.received_at_ms), read(s, 272).max(e.received_at_ms), read(s, 280).max(e.updated_at_ms))
        };
        s[256..260].copy_from_slice(&count.saturating_add(1).to_le_bytes());
        s[264..272].copy_from_slice(&min_received.to_le_bytes());
        s[272..280].copy_from_slice(&max_received.to_le_bytes());
        s[280..288].copy_from_slice(&max_updated.to_le_bytes());
        s[288..296].copy_from_slice(&max_position.to_le_bytes());
    }

    /// The highest position any entry of block `block` was made at
    /// (`Entry::created_at`).
    pub fn block_position_max(&self, block: usize) -> Option<u64> {
        let at = CHUNK_HEADER_BYTES + block * SUMMARY_BYTES;
        let s = &self.file.bytes()[at..at + SUMMARY_BYTES];
        (s[256..260] != [0; 4]).then(|| u64::from_le_bytes(s[288..296].try_into().unwrap_or_default()))
    }

    /// Whether block `block` (of this chunk) may hold an entry `probe`
    /// looks for.
    pub fn block_may_match(&self, block: usize, probe: &Probe) -> bool {
        let at = CHUNK_HEADER_BYTES + block * SUMMARY_BYTES;
        let s = &self.file.bytes()[at..at + SUMMARY_BYTES];
        if s[256..260] == [0; 4] {
            return false;
        }
        let read = |i: usize| i64::from_le_bytes(s[i..i + 8].try_into().unwrap_or_default());
        if probe.since_ms.is_some_and(|t| read(272) < t) || probe.until_ms.is_some_and(|t| read(264) >= t) {
            return false;
        }
        probe.keys.iter().all(|k| {
            let bit = (k % (SUMMARY_BITS_BYTES as u64 * 8)) as usize;
            s[bit / 8] & (1 << (bit % 8)) != 0
        })
    }

    /// The latest change to any entry of block `block`.
    pub fn block_updated_max(&self, block: usize) -> Option<TimestampMs> {
        let at = CHUNK_HEADER_BYTES + block * SUMMARY_BYTES;
        let s = &self.file.bytes()[at..at + SUMMARY_BYTES];
        (s[256..260] != [0; 4]).then(|| i64::from_le_bytes(s[280..288].try_into().unwrap_or_default()))
    }

    fn id_home(id: Id) -> usize {
        ((id.0 as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 47) as usize % ID_SLOTS
    }

    fn id_slot(&self, i: usize) -> (u64, u32) {
        let at = IDS_AT + i * ID_SLOT_BYTES;
        let b = &self.file.bytes()[at..at + ID_SLOT_BYTES];
        let low = u64::from_le_bytes(b[0..8].try_into().unwrap_or_default());
        (low, u32::from_le_bytes(b[8..12].try_into().unwrap_or_default()))
    }

    fn index_id(&mut self, n: u64, id: Id) {
        let offset = (n % CHUNK_LOGS) as u32 + 1;
        let mut i = Self::id_home(id);
        for _ in 0..ID_SLOTS {
            let (low, at) = self.id_slot(i);
            if at == offset && low == id.0 as u64 {
                return;
            }
            if at == 0 {
                let slot = IDS_AT + i * ID_SLOT_BYTES;
                let b = &mut self.file.bytes_mut()[slot..slot + ID_SLOT_BYTES];
                b[0..8].copy_from_slice(&(id.0 as u64).to_le_bytes());
                b[8..12].copy_from_slice(&offset.to_le_bytes());
                return;
            }
            i = (i + 1) % ID_SLOTS;
        }
    }

    /// Log numbers in this chunk that may be log `id` (to confirm against
    /// their entries).
    pub fn candidates(&self, id: Id) -> impl Iterator<Item = u64> + '_ {
        let base = self.number * CHUNK_LOGS;
        let mut i = Self::id_home(id);
        let mut probes = 0;
        std::iter::from_fn(move || {
            while probes < ID_SLOTS {
                probes += 1;
                let (low, at) = self.id_slot(i);
                i = (i + 1) % ID_SLOTS;
                if at == 0 {
                    probes = ID_SLOTS;
                    return None;
                }
                if low == id.0 as u64 {
                    return Some(base + u64::from(at - 1));
                }
            }
            None
        })
    }

    /// Every entry, in log-number order, with its number.
    pub fn entries(&self) -> impl Iterator<Item = (u64, Result<Option<Entry>, HistoryError>)> + '_ {
        let base = self.number * CHUNK_LOGS;
        (base..base + CHUNK_LOGS).map(move |n| (n, self.get(n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn entry(n: u64) -> Entry {
        Entry {
            id: Id(0xabc0_0000 + u128::from(n)),
            destination_id: Id(100 + u128::from(n % 3)),
            source_id: Id(1),
            position: 10 + n,
            message_id: n,
            received_at_ms: 1_000 + n as i64,
            updated_at_ms: 2_000 + n as i64,
            row: n * 64,
            data_model_hash: name_hash("PatientAdmin"),
            event_type_hash: name_hash("NewPatient"),
            ended_at: 20 + n,
            status: if n.is_multiple_of(5) { LogStatus::Failed } else { LogStatus::Succeeded },
            log_type: LogType::Async,
            created_at: if n == 3 { 500 } else { 10 + n },
        }
    }

    #[test]
    fn entries_come_back_and_ids_find_them() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut chunk = Chunk::create(dir.path(), 3).expect("creating a chunk");
        let base = 3 * CHUNK_LOGS;
        for n in [base, base + 1, base + 4095, base + 4096, base + CHUNK_LOGS - 1] {
            chunk.put(n, &entry(n));
        }
        drop(chunk);
        let chunk = Chunk::open(dir.path(), 3).expect("opening the chunk");
        assert_eq!(chunk.get(base + 1).expect("readable"), Some(entry(base + 1)));
        assert_eq!(chunk.get(base + 2).expect("readable"), None, "an empty slot");
        let found: Vec<u64> = chunk.candidates(entry(base + 4096).id).collect();
        assert_eq!(found, [base + 4096]);
        assert_eq!(chunk.candidates(Id(77)).count(), 0);
        let probe = |keys: Vec<u64>| Probe { keys, ..Probe::default() };
        assert!(chunk.block_may_match(0, &probe(vec![key::destination_status(Id(100), LogStatus::Failed)])));
        assert!(!chunk.block_may_match(2, &probe(vec![])), "block 2 is empty");
        assert!(!chunk.block_may_match(0, &probe(vec![key::destination(Id(999))])), "no such destination");
        let since = Probe { since_ms: Some(1_000 + base as i64 + 4096), ..Probe::default() };
        assert!(!chunk.block_may_match(0, &since), "block 0 holds only earlier messages");
        assert!(chunk.block_may_match(1, &since));
    }

    #[test]
    fn a_damaged_entry_or_header_is_reported() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut chunk = Chunk::create(dir.path(), 0).expect("creating a chunk");
        chunk.put(7, &entry(7));
        drop(chunk);
        let path = chunk_path(dir.path(), 0);
        let mut bytes = std::fs::read(&path).expect("reading");
        bytes[ENTRIES_AT + 7 * ENTRY_BYTES + 50] ^= 1;
        std::fs::write(&path, &bytes).expect("writing");
        let chunk = Chunk::open(dir.path(), 0).expect("the header is intact");
        assert!(matches!(chunk.get(7), Err(HistoryError::Damaged(_))));
        drop(chunk);
        bytes[3] ^= 1;
        std::fs::write(&path, &bytes).expect("writing");
        assert!(matches!(Chunk::open(dir.path(), 0), Err(HistoryError::Damaged(_))));
    }
}
