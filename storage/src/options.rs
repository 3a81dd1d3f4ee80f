//! Tunables of the log, with their limits.

use crate::{
    error::{Error, Result},
    layout::{SEGMENT_HEADER_BYTES, record_bytes},
};

/// Default segment size: large enough that rolling is rare, small enough that
/// retention frees space in useful steps.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Default largest payload: a generous bound for one clinical message with
/// attachments that still leaves room for several records per segment.
pub const DEFAULT_MAX_RECORD_BYTES: u32 = 16 << 20;
/// Smallest segment accepted, so every segment holds at least a few records.
pub const MIN_SEGMENT_BYTES: u64 = 4096;
/// Largest segment accepted: record offsets within a segment are kept as
/// `u32` in the in-memory index.
pub const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64 + 1;

/// What to do when recovery finds damaged acknowledged data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recovery {
    /// Refuse to open and name the segment and offset of the damage.
    #[default]
    Strict,
    /// Truncate the log at the damage and report what was discarded.
    Repair,
    /// Change nothing: report a torn tail without zeroing it, and damage as
    /// an error. Used by [`inspect`](crate::inspect); `Wal::open` refuses it.
    ReadOnly,
}

/// How a log is opened.
#[derive(Debug, Clone)]
pub struct Options {
    /// Size of every segment file.
    pub segment_bytes: u64,
    /// Largest payload [`Wal::append`](crate::Wal::append) accepts.
    pub max_record_bytes: u32,
    /// Create the next segment in the background before it is needed.
    pub prepare_ahead: bool,
    pub recovery: Recovery,
    /// Seed for segment salts; `None` draws one from the OS.
    pub seed: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            prepare_ahead: true,
            recovery: Recovery::Strict,
            seed: None,
        }
    }
}

impl Options {
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidOptions(msg));
        if self.recovery == Recovery::ReadOnly {
            return bad("a log opened for writing cannot use Recovery::ReadOnly; use inspect".into());
        }
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes)
            || !self.segment_bytes.is_multiple_of(4096)
        {
            return bad(format!(
                "segment_bytes must be a multiple of 4096 between {MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES}, not {}",
                self.segment_bytes
            ));
        }
        let largest = (SEGMENT_HEADER_BYTES + record_bytes(self.max_record_bytes as usize)) as u64;
        if self.max_record_bytes == 0 || largest > self.segment_bytes {
            return bad(format!(
                "max_record_bytes {} must be positive and fit in one segment of {} bytes with its headers",
                self.max_record_bytes, self.segment_bytes
            ));
        }
        Ok(())
    }
}
