//! The history's checkpoint: `HEADER`, which says what the last sync made
//! durable (see the module docs of `history`), and the two halves of taking
//! one: noted under the state's lock, synced outside it.

use std::path::{Path, PathBuf};

use super::HistoryError;

pub(super) const HEADER_MAGIC: &[u8; 8] = b"FRXHIST\0";
/// Why a history is built when there was none: a first start, or a data
/// directory from a build before the history.
pub const NO_HISTORY: &str = "there is no history yet";
/// The history's format. A change needs a new number, and an older
/// history is rebuilt from the journal rather than read. Version 2 added
/// the idempotency keys (`keys.rs`) and their end to the header.
const HISTORY_VERSION: u32 = 2;
const HEADER_BYTES: usize = 48;

/// What a checkpoint made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Header {
    pub(super) applied_through: u64,
    pub(super) rows_end: u64,
    pub(super) keys_end: u64,
}

impl Header {
    pub(super) fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..8].copy_from_slice(HEADER_MAGIC);
        b[8..12].copy_from_slice(&HISTORY_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.applied_through.to_le_bytes());
        b[24..32].copy_from_slice(&self.rows_end.to_le_bytes());
        b[32..40].copy_from_slice(&self.keys_end.to_le_bytes());
        let crc = crc32fast::hash(&b[..44]);
        b[44..48].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub(super) fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() < 12 || &b[0..8] != HEADER_MAGIC {
            return Err("not a history header".into());
        }
        let version = u32::from_le_bytes(b[8..12].try_into().map_err(|_| "short")?);
        if version != HISTORY_VERSION {
            return Err(format!("its format (version {version}) is not this build's (version {HISTORY_VERSION})"));
        }
        if b.len() != HEADER_BYTES || crc32fast::hash(&b[..44]).to_le_bytes() != b[44..48] {
            return Err("header checksum mismatch".into());
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        Ok(Self { applied_through: u64_at(16), rows_end: u64_at(24), keys_end: u64_at(32) })
    }
}

/// Files to sync and the header to write once they are: a checkpoint
/// taken under the state lock and finished outside it.
#[derive(Debug)]
pub struct Checkpoint {
    pub(super) dir: PathBuf,
    pub(super) header: Header,
    pub(super) files: Vec<(PathBuf, std::io::Result<std::fs::File>)>,
    pub(super) failed: Option<String>,
}

impl Checkpoint {
    /// The journal position the checkpoint covers.
    pub fn applied_through(&self) -> u64 {
        self.header.applied_through
    }

    /// Syncs the files, then replaces the header. Give the outcome to
    /// `History::checkpoint_finished`.
    pub fn finish(self) -> Result<Finished, HistoryError> {
        if let Some(failed) = self.failed {
            return Err(HistoryError::Damaged(format!(
                "an earlier checkpoint failed ({failed}); the history is rebuilt at the next start"
            )));
        }
        for (path, file) in self.files {
            file.and_then(|f| f.sync_data()).map_err(HistoryError::io(&path))?;
        }
        write_header(&self.dir, &self.header)?;
        Ok(Finished(self.header))
    }
}

/// A checkpoint made durable.
#[derive(Debug)]
pub struct Finished(pub(super) Header);

pub(super) fn write_header(dir: &Path, header: &Header) -> Result<(), HistoryError> {
    use std::io::Write;
    let path = dir.join("HEADER");
    let tmp = dir.join("HEADER.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(HistoryError::io(&tmp))?;
    file.write_all(&header.encode()).and_then(|()| file.sync_data()).map_err(HistoryError::io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(HistoryError::io(&path))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(HistoryError::io(dir))
}
