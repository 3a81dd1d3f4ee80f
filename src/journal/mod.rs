//! The journal: the engine's events on the write-ahead log, behind a narrow
//! trait so that another log could back it.
//!
//! Events ([`Event`]) are the engine's own types; what reaches the disk is
//! their versioned wire form (`wire`), whose module docs hold the record
//! kinds and the rules by which the format evolves. Only the
//! [`Ledger`](crate::ledger::Ledger) appends.

mod event;
mod wire;

use std::{fmt, future::Future, path::Path, pin::Pin, sync::Arc};

/// Whether the journal takes writes: the log's own account.
pub use ferrox_storage::Health;
use ferrox_storage::{Committer, Options, Wal, vfs::Vfs};

pub use self::{
    event::{
        Accepted, AlertSend, BodyHash, ConfigBatch, Event, KeptAlert, Keyed, MessageView, NewLog, PausedQueue,
        Replayed, Resent, ResentLog, Snapshot, body_hash,
    },
    wire::{
        DecodeError, RESENT_LOG_BYTES, decode, decode_event, describe_kind, encode, event_name, is_snapshot,
        known_kinds, message_payload,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Storage(#[from] ferrox_storage::Error),
    #[error("journal record {position}: {reason}")]
    Undecodable { position: u64, reason: String },
    #[error("journal record {position}: {reason}")]
    UnknownRecord { position: u64, reason: String },
    #[error("an event could not be encoded: {0}")]
    Unencodable(String),
    #[error("journal record {position} is not a message")]
    NotAMessage { position: u64 },
    #[error("the journal's committer could not start: {0}")]
    Start(std::io::Error),
    #[error("the journal was checkpointed at {checkpoint} but holds no snapshot: records it needs were deleted")]
    MissingSnapshot { checkpoint: u64 },
    /// The cluster's journal stream did not take or give a record.
    #[error("the cluster journal: {0}")]
    Cluster(String),
}

impl JournalError {
    fn decoding(position: u64, error: DecodeError) -> Self {
        match error {
            DecodeError::Unknown(reason) => Self::UnknownRecord { position, reason },
            DecodeError::Invalid(reason) => Self::Undecodable { position, reason },
        }
    }
}

pub type CommitFuture = Pin<Box<dyn Future<Output = Result<(), JournalError>> + Send>>;

/// A function given each replayed event; an error stops the replay.
pub type ReplayFn<'f> = dyn FnMut(u64, Replayed<'_>) -> Result<(), String> + 'f;

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
    /// Calls `f` with every durable event from `from` on, in order. A
    /// record that cannot be read, or an error from `f`, stops the replay.
    fn replay(&self, from: u64, f: &mut ReplayFn<'_>) -> Result<(), JournalError>;
    /// The last durable snapshot and its position, if any.
    fn last_snapshot(&self) -> Result<Option<(u64, Snapshot)>, JournalError>;
    /// Declares records below `position` unneeded and deletes the segments
    /// that hold only such records; returns how many were deleted.
    fn release_below(&self, position: u64) -> Result<usize, JournalError>;
    /// How many segments `release_below(position)` would delete now.
    fn releasable(&self, position: u64) -> usize;
    /// The position records were last released below (0 if never).
    fn released_below(&self) -> u64;
    /// The first position retained and the number of segment files.
    fn retained(&self) -> (u64, usize);
    /// The request body of the message accepted at `position`.
    fn message_payload(&self, position: u64) -> Result<Vec<u8>, JournalError>;
    /// The logs of the message accepted at `position`, if it is durable.
    fn message_logs(&self, position: u64) -> Result<Option<Vec<NewLog>>, JournalError>;
    /// Whether the journal takes writes now.
    fn health(&self) -> Health;

    /// Whether other writers append to this journal too (cluster mode):
    /// then an append must follow the last record folded
    /// ([`append_after`](Self::append_after)), and their records are folded
    /// as they come ([`foreign`](Self::foreign)).
    fn shared(&self) -> bool {
        false
    }

    /// Appends `event` if the journal's last record is still at `after`;
    /// `Ok(None)` if another writer came first. A journal with one writer
    /// never refuses.
    fn append_after(&self, event: &Event, after: u64) -> Result<Option<u64>, JournalError> {
        let _ = after;
        self.append(event).map(Some)
    }

    /// Appends `events` one after another as one atomic batch, all or
    /// none, if the journal's last record is still at `after`; returns the
    /// first one's position, or `Ok(None)` if another writer came first.
    fn append_batch_after(&self, events: &[Event], after: u64) -> Result<Option<u64>, JournalError> {
        let _ = after;
        let mut first = None;
        for event in events {
            let position = self.append(event)?;
            first.get_or_insert(position);
        }
        Ok(first)
    }

    /// The records other writers appended after `after`, in order, as far
    /// as they have arrived; with `wait`, waits a while for at least one.
    fn foreign(&self, after: u64, wait: bool) -> Result<Vec<(u64, Event)>, JournalError> {
        let _ = (after, wait);
        Ok(Vec::new())
    }

    /// Notified when records of other writers arrive.
    fn arrivals(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}

/// The journal on ferrox's own write-ahead log.
#[derive(Debug)]
pub struct WalJournal {
    committer: Committer,
}

impl WalJournal {
    pub fn open(dir: &Path, options: Options) -> Result<Self, JournalError> {
        Self::start(Wal::open(dir, options)?)
    }

    /// Opens the journal on the file system `vfs` (a simulated disk, in tests).
    pub fn open_on(vfs: Arc<dyn Vfs>, dir: &Path, options: Options) -> Result<Self, JournalError> {
        Self::start(Wal::open_on(vfs, dir, options)?)
    }

    fn start(wal: Wal) -> Result<Self, JournalError> {
        let committer = Committer::start(Arc::new(wal)).map_err(JournalError::Start)?;
        Ok(Self { committer })
    }

    pub fn wal(&self) -> &Arc<Wal> {
        self.committer.wal()
    }
}

impl Journal for WalJournal {
    fn append(&self, event: &Event) -> Result<u64, JournalError> {
        let (kind, bytes) = wire::encode(event).map_err(JournalError::Unencodable)?;
        Ok(self.wal().append(kind, &bytes)?)
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

    fn replay(&self, from: u64, f: &mut ReplayFn<'_>) -> Result<(), JournalError> {
        for record in self.wal().iter_from(from) {
            let record = record?;
            let position = record.seq();
            let replayed =
                wire::decode(record.kind(), record.payload()).map_err(|e| JournalError::decoding(position, e))?;
            f(position, replayed).map_err(|reason| JournalError::Undecodable { position, reason })?;
        }
        Ok(())
    }

    fn last_snapshot(&self) -> Result<Option<(u64, Snapshot)>, JournalError> {
        let wal = self.wal();
        let mut position = wal.synced_through();
        while position >= wal.first_seq() && position > 0 {
            if let Some(record) = wal.get(position)?
                && wire::is_snapshot(record.kind())
            {
                return match wire::decode_event(record.kind(), record.payload()) {
                    Ok(Event::Snapshot(snapshot)) => Ok(Some((position, snapshot))),
                    Ok(_) => Err(JournalError::Undecodable { position, reason: "not a snapshot".into() }),
                    Err(e) => Err(JournalError::decoding(position, e)),
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

    fn released_below(&self) -> u64 {
        self.wal().checkpoint_seq()
    }

    fn retained(&self) -> (u64, usize) {
        (self.wal().first_seq(), self.wal().segment_count())
    }

    fn message_payload(&self, position: u64) -> Result<Vec<u8>, JournalError> {
        let record = self.wal().get(position)?.ok_or(JournalError::NotAMessage { position })?;
        match wire::message_payload(record.kind(), record.payload()) {
            Ok(payload) => Ok(payload.to_vec()),
            Err(_) => Err(JournalError::NotAMessage { position }),
        }
    }

    fn message_logs(&self, position: u64) -> Result<Option<Vec<NewLog>>, JournalError> {
        let Some(record) = self.wal().get(position)? else { return Ok(None) };
        match wire::decode(record.kind(), record.payload()).map_err(|e| JournalError::decoding(position, e))? {
            Replayed::Message(view) => Ok(Some(view.logs)),
            Replayed::Event(_) => Err(JournalError::NotAMessage { position }),
        }
    }

    fn health(&self) -> Health {
        self.wal().health()
    }
}
