//! The crate's error type.

use std::{io, path::PathBuf};

/// Everything that can go wrong in the write-ahead log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("record of {len} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge { len: usize, max: u32 },
    #[error("record kind 0 is reserved")]
    ReservedKind,
    /// A sync or write failed earlier. Whether the data reached the disk is
    /// unknown, so the log refuses further appends and syncs until reopened.
    #[error("the write-ahead log failed and accepts no more writes: {0}")]
    Poisoned(String),
    /// The active segment is full and the next one cannot be created (the
    /// disk is full or failing). Not fatal: creation is retried in the
    /// background, and appends succeed again once it works.
    #[error("no segment to write to: {0}")]
    NoSegment(String),
    /// Acknowledged data is damaged: a bad record is followed by records that
    /// prove it had been synced. Opening with [`Recovery::Repair`](crate::Recovery::Repair)
    /// truncates the log at this point.
    #[error("damaged record in {} at offset {offset} (expected sequence {seq}): {reason}", segment.display())]
    Corrupt { segment: PathBuf, offset: u64, seq: u64, reason: &'static str },
    #[error("sequence number {seq} has not been appended")]
    NotAppended { seq: u64 },
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    #[error("checkpoint {requested} is beyond the end of the log ({next_seq} is the next sequence number)")]
    CheckpointBeyondEnd { requested: u64, next_seq: u64 },
}

impl Error {
    /// Whether opening failed because another process holds the log's lock.
    pub fn is_locked(&self) -> bool {
        matches!(self, Self::Io { op: "lock", source, .. } if source.kind() == io::ErrorKind::WouldBlock)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches the operation and path to an I/O error.
pub(crate) fn io_err(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
