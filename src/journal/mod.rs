//! The journal: the engine's events on the write-ahead log, behind a narrow
//! trait so that another log could back it.

mod event;

use std::{fmt, future::Future, path::Path, pin::Pin, sync::Arc};

use ferrox_storage::{Committer, Options, Wal};

pub use self::event::{
    Accepted, Alert, AlertKind, ArchivedEvent, Attempt, EVENT_KIND, Event, KeptAlert, NewLog, PausedQueue,
    SNAPSHOT_KIND, Snapshot, access, decode,
};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Storage(#[from] ferrox_storage::Error),
    #[error("journal record {position} is not a valid event: {reason}")]
    Undecodable { position: u64, reason: String },
    #[error("journal record {position} is not a message")]
    NotAMessage { position: u64 },
    #[error("the journal's committer could not start: {0}")]
    Start(std::io::Error),
    #[error("the journal was checkpointed at {checkpoint} but holds no snapshot: records it needs were deleted")]
    MissingSnapshot { checkpoint: u64 },
}

pub type CommitFuture = Pin<Box<dyn Future<Output = Result<(), JournalError>> + Send>>;

/// Whether the journal takes writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Appends and syncs succeed.
    Writable,
    /// Appends fail for now (a segment cannot be created: the disk is full
    /// or failing); they succeed again once the cause is gone.
    Unwritable(String),
    /// A write or sync failed: nothing more is taken until a restart.
    Failed(String),
}

/// Where events go and come back from.
pub trait Journal: Send + Sync + fmt::Debug {
    /// Appends an event and returns its position; durable once committed.
    fn append(&self, event: &Event) -> Result<u64, JournalError>;
    /// Resolves when the event at `position` (and all before it) is durable.
    fn commit(&self, position: u64) -> CommitFuture;
    /// The highest durable position.
    fn durable_through(&self) -> u64;
    /// The highest position appended, durable or not.
    fn appended_through(&self) -> u64;
    /// Calls `f` with every durable event from `from` on, in order.
    fn replay(&self, from: u64, f: &mut dyn FnMut(u64, &ArchivedEvent)) -> Result<(), JournalError>;
    /// The last durable snapshot and its position, if any.
    fn last_snapshot(&self) -> Result<Option<(u64, Snapshot)>, JournalError>;
    /// Declares records below `position` unneeded and deletes the segments
    /// that hold only such records; returns how many were deleted.
    fn release_below(&self, position: u64) -> Result<usize, JournalError>;
    /// How many segments `release_below(position)` would delete now.
    fn releasable(&self, position: u64) -> usize;
    /// The first position retained and the number of segment files.
    fn retained(&self) -> (u64, usize);
    /// The request body of the message accepted at `position`.
    fn message_payload(&self, position: u64) -> Result<Vec<u8>, JournalError>;
    /// Whether the journal takes writes now.
    fn health(&self) -> Health;
}

/// The journal on ferrox's own write-ahead log.
#[derive(Debug)]
pub struct WalJournal {
    committer: Committer,
}

impl WalJournal {
    pub fn open(dir: &Path, options: Options) -> Result<Self, JournalError> {
        let wal = Arc::new(Wal::open(dir, options)?);
        let committer = Committer::start(wal).map_err(JournalError::Start)?;
        Ok(Self { committer })
    }

    pub fn wal(&self) -> &Arc<Wal> {
        self.committer.wal()
    }
}

impl Journal for WalJournal {
    fn append(&self, event: &Event) -> Result<u64, JournalError> {
        Ok(self.wal().append(event.kind(), &event.encode())?)
    }

    fn commit(&self, position: u64) -> CommitFuture {
        let commit = self.committer.commit(position);
        Box::pin(async move { Ok(commit.await?) })
    }

    fn durable_through(&self) -> u64 {
        self.wal().synced_through()
    }

    fn appended_through(&self) -> u64 {
        self.wal().next_seq() - 1
    }

    fn replay(&self, from: u64, f: &mut dyn FnMut(u64, &ArchivedEvent)) -> Result<(), JournalError> {
        for record in self.wal().iter_from(from) {
            let record = record?;
            if record.kind() != EVENT_KIND && record.kind() != SNAPSHOT_KIND {
                continue;
            }
            let position = record.seq();
            let event = access(record.payload()).map_err(|reason| JournalError::Undecodable { position, reason })?;
            f(position, event);
        }
        Ok(())
    }

    fn last_snapshot(&self) -> Result<Option<(u64, Snapshot)>, JournalError> {
        let wal = self.wal();
        let mut position = wal.synced_through();
        while position >= wal.first_seq() && position > 0 {
            if let Some(record) = wal.get(position)?
                && record.kind() == SNAPSHOT_KIND
            {
                let event =
                    access(record.payload()).map_err(|reason| JournalError::Undecodable { position, reason })?;
                return match decode(event) {
                    Ok(Event::Snapshot(snapshot)) => Ok(Some((position, snapshot))),
                    Ok(_) => Err(JournalError::Undecodable { position, reason: "not a snapshot".into() }),
                    Err(reason) => Err(JournalError::Undecodable { position, reason }),
                };
            }
            position -= 1;
        }
        match wal.checkpoint_seq() {
            0 => Ok(None),
            checkpoint => Err(JournalError::MissingSnapshot { checkpoint }),
        }
    }

    fn release_below(&self, position: u64) -> Result<usize, JournalError> {
        Ok(self.wal().checkpoint(position)?)
    }

    fn releasable(&self, position: u64) -> usize {
        self.wal().releasable(position)
    }

    fn retained(&self) -> (u64, usize) {
        (self.wal().first_seq(), self.wal().segment_count())
    }

    fn health(&self) -> Health {
        match self.wal().failure() {
            Some(reason) => Health::Failed(reason),
            None => Health::Writable,
        }
    }

    fn message_payload(&self, position: u64) -> Result<Vec<u8>, JournalError> {
        let record = self.wal().get(position)?.ok_or(JournalError::NotAMessage { position })?;
        let event = access(record.payload()).map_err(|reason| JournalError::Undecodable { position, reason })?;
        match event {
            event::ArchivedEvent::MessageAccepted(accepted) => Ok(accepted.payload.to_vec()),
            _ => Err(JournalError::NotAMessage { position }),
        }
    }
}
