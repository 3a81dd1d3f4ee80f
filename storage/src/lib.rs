//! `ferrox-storage`: the write-ahead log everything in ferrox stands on.
//!
//! It stores opaque byte records, each with a sequence number and a kind,
//! and proves they come back. It knows nothing of what is above it: no
//! actors, no HTTP, no JSON.
//!
//! ```text
//! append(kind, bytes) -> seq      buffered, not yet durable
//! sync() / sync_through(seq)      durable: one fdatasync per batch
//! get(seq), iter_from(seq)        durable records, read in place
//! checkpoint(seq)                 segments wholly below seq are deleted
//! ```
//!
//! Beside the log it offers [`MappedFile`], a fixed-size file
//! memory-mapped read-write, for the derived files the engine indexes its
//! history in. It is not a log and has no CRC of its own: callers frame and
//! check their bytes, and sync them (see its module for what the caller
//! must guarantee).
//!
//! # Files
//!
//! A log lives in one directory:
//!
//! | file | what |
//! |---|---|
//! | `00000000000000000001.seg`, ... | segments, named by index (20 digits, so names sort in log order) |
//! | `checkpoint` | the owner's checkpoint (32 bytes, CRC-checked, replaced atomically) |
//! | `LOCK` | held with an exclusive `flock` while the log is open; holds the holder's process ID |
//! | `*.tmp`, `*.deleted` | leftovers of an interrupted creation or deletion, removed at open (and a failed creation removes its own) |
//!
//! # Segment layout
//!
//! Every segment has the same fixed size (`segment_bytes`, default 64 MiB),
//! is written full of zeros when created (so its blocks are allocated and an
//! `fdatasync` later flushes data only), starts with a 64-byte header, and is
//! synced, renamed into place and its directory synced before it is used.
//! Hence a file with a segment name always has a complete header. Segments
//! are memory-mapped read-only for reading; records are written with
//! `pwrite` in batches (one write per batch and segment).
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 8 | magic `FRXWAL\0\x01` |
//! | 8 | 4 | format version (1) |
//! | 12 | 4 | header size (64) |
//! | 16 | 8 | segment index |
//! | 24 | 8 | segment size in bytes |
//! | 32 | 8 | salt: random, non-zero, mixed into every record CRC |
//! | 40 | 20 | reserved, zero |
//! | 60 | 4 | CRC-32 of bytes 0..60 |
//!
//! Records follow from offset 64, back to back, each starting on a 16-byte
//! boundary. A record never spans segments; when the next one does not fit,
//! the log rolls to the next segment and the rest of the current one stays
//! zero.
//!
//! # Record layout
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 4 | CRC-32 (crc32fast) of bytes 4..32, then the segment salt (8 bytes LE), then the payload |
//! | 4 | 4 | payload length |
//! | 8 | 8 | sequence number (≥ 1, consecutive across the log) |
//! | 16 | 8 | synced-through: the highest sequence number durable when this record was written |
//! | 24 | 2 | kind (≥ 1; chosen by the owner) |
//! | 26 | 2 | marker `0x5752` |
//! | 28 | 4 | reserved, zero |
//! | 32 | len | payload, then zero padding to a multiple of 16 |
//!
//! All integers are little-endian and of fixed width. The payload starts
//! 16-byte aligned in the map, so the owner can validate and read archived
//! (rkyv) data in place. An all-zero header is never a record: the sequence
//! number, kind and marker must be non-zero, and the salt keeps even an empty
//! payload from hashing to zero.
//!
//! # Reading and the in-memory index
//!
//! Readers get records in place from the segment's map, through an index
//! from sequence number to offset. The index is sparse: per segment it keeps
//! the number of published records and the offset of every 32nd record,
//! 4 bytes per 32 records, so an eighth of a byte a record (30 million
//! records take 3.75 MB). A record between two kept offsets is found by
//! stepping from the kept one over the headers before it, at most 31, each
//! header's payload length giving the next record's offset; the headers
//! stepped over belong to published records and have their sequence number
//! checked, and the record returned has its CRC checked on every read.
//! Iteration carries each record's end to the next and steps over nothing.
//!
//! # Durability contract
//!
//! A record is durable when `sync_through(seq)` (or `sync`, or
//! `append_sync`) has returned `Ok`: its bytes were written and its segment
//! `fdatasync`ed. The owner acknowledges nothing before that; in ferrox a
//! SEND is answered 200 only then. Concurrent callers share syncs: one
//! caller becomes the leader, writes every pending record and syncs once;
//! the others wait until the synced-through point reaches their record.
//! Only durable records are visible to `get` and `iter_from`, so a reader
//! never sees a record a crash could take back.
//!
//! A failed write or `fdatasync` is fatal to the writer: after it, what
//! reached the disk is unknown (the kernel may have dropped the dirty pages),
//! so retrying the sync could falsely report success. The log reports the
//! error and refuses every later append and sync with [`Error::Poisoned`]
//! until it is reopened, when recovery establishes what is on disk.
//!
//! A segment that cannot be created (ENOSPC or EIO while its zeros are
//! written) is not such a failure: nothing was written to it. Its partial
//! file is removed, and the thread that prepares segments ahead tries again
//! with backoff; meanwhile an append that needs the segment fails at once
//! with [`Error::NoSegment`], and [`Wal::health`] says so. Once a segment
//! can be created, appends go on, with no reopen. Records are written only
//! into segments whose blocks were allocated when they were created, so a
//! record's write cannot meet a full disk.
//!
//! # Recovery and the torn-tail policy
//!
//! Opening the log verifies the header of every segment and the CRC of every
//! record in every retained segment, and checks that sequence numbers are
//! consecutive. The log ends cleanly where the next slot is all zeros and
//! everything after it is zero. Otherwise recovery has found a bad point,
//! and asks whether the bad record had been acknowledged:
//!
//! - Writes that were not synced may reach the disk in any subset and torn
//!   at any sector, so valid records may follow a bad one after a crash.
//!   But a record written after a sync carries that sync's synced-through
//!   point. If some valid record after the bad point vouches for the
//!   sequence number expected there, the bad record had been synced: that is
//!   **damage to acknowledged data**, and open fails with
//!   [`Error::Corrupt`] naming the segment file and offset, unless the
//!   caller asked for [`Recovery::Repair`], which truncates the log there and
//!   reports what it discarded.
//! - Otherwise it is a **torn tail**, never acknowledged: everything from the
//!   bad point on is zeroed (later segments are deleted) and synced, and the
//!   log continues. [`RecoveryStats`] reports the bytes dropped.
//!
//! A damaged segment header or a segment missing from the middle cannot
//! come from a crash, so they are always damage.
//!
//! One case cannot be told apart: damage within the last synced batch, with
//! no later record to vouch for it, looks like a torn tail. Such damage
//! needs a fault of the disk itself (a flipped bit), and it is limited to the
//! records of that batch.
//!
//! # Checkpoints and retention
//!
//! The owner declares a checkpoint, a sequence number below which it no
//! longer needs records (it wrote a snapshot record, or everything before is
//! terminal). The checkpoint is written to its file atomically; then every
//! segment whose records all lie below it is renamed to `*.deleted`,
//! unlinked, and the directory synced. Records below the checkpoint that
//! share a segment with later ones stay readable. Recovery checks that the
//! first retained record is at or below the checkpoint.
//!
//! # What is assumed of the disk
//!
//! - `fdatasync` returning success means the written data, and the file
//!   length, survive power loss; a directory `fsync` does the same for
//!   creations, renames and removals in it.
//! - Writes that were not synced may be lost, kept, or torn at any 512-byte
//!   sector boundary, in any combination. Synced data is not changed by a
//!   crash; if the disk corrupts it anyway, the CRC detects it.
//! - Nothing but this crate writes to the directory while it is open. The
//!   `LOCK` file keeps a second process of ferrox out.
//!
//! # Copies of a live log
//!
//! [`capture`] copies a log that another process has open, without its lock:
//! every record synced before the call started, and perhaps later ones, cut
//! at a clean end, with the checkpoint. It reads the files through handles
//! of its own with `pread`, never a shared map, because the writer changes the
//! active segment while it is read; see its module for why the copy is
//! consistent with a log that stopped at that point.
//!
//! # Testing seam
//!
//! All file I/O goes through [`vfs::Vfs`]. [`sim::LazyDisk`] is an
//! in-memory implementation that can crash, keeping only what a real disk
//! would have to keep, and can fail syncs or file creation on demand.

#![deny(unsafe_code)]

mod capture;
mod checkpoint;
mod commit;
mod crc;
mod error;
mod index;
mod inspect;
mod layout;
mod mapped;
#[allow(unsafe_code)]
mod mmap;
mod options;
mod prepare;
mod recovery;
mod rng;
mod segment;
pub mod sim;
pub mod vfs;
mod wal;

pub use crate::{
    capture::{Captured, capture},
    commit::{Commit, Committer},
    error::{Error, Result},
    index::Record,
    inspect::{Inspection, inspect},
    mapped::MappedFile,
    options::{
        DEFAULT_MAX_RECORD_BYTES, DEFAULT_SEGMENT_BYTES, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES, Options, Recovery,
    },
    recovery::RecoveryStats,
    vfs::lock_holder,
    wal::{Health, Iter, SyncObserver, Wal},
};

/// The offsets and sizes of the on-disk format, for tools and tests.
pub mod format {
    pub use crate::layout::{RECORD_ALIGN, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};

    /// Bytes a record with a payload of `payload_len` bytes takes in a segment.
    pub const fn record_bytes(payload_len: usize) -> usize {
        crate::layout::record_bytes(payload_len)
    }
}
