//! The write-ahead log: append, group commit, segment roll, reads and
//! retention.

use std::{
    any::Any,
    fmt,
    hash::{BuildHasher, RandomState},
    path::{Path, PathBuf},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::{
    checkpoint,
    error::{Error, Result, io_err},
    index::{Cursor, Index, Located, Record},
    layout::{RecordHeader, SEGMENT_HEADER_BYTES, encode_record, record_bytes},
    options::Options,
    prepare::{Next, Preparer},
    recovery::{self, RecoveryStats},
    rng::SplitMix64,
    segment::{DELETED_SUFFIX, Segment, file_name},
    vfs::{StdFs, Vfs},
};

/// A segmented, CRC-checked, group-committed write-ahead log.
///
/// `append` assigns the next sequence number and buffers the record; `sync`
/// makes everything appended so far durable, sharing one `fdatasync` among
/// all callers waiting at that moment. Records become readable once synced.
/// All methods take `&self`; share the log with an `Arc`.
pub struct Wal {
    dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    options: Options,
    writer: Mutex<Writer>,
    sync_state: Mutex<SyncState>,
    sync_done: Condvar,
    /// Highest sequence number durable and readable.
    synced_through: AtomicU64,
    /// Highest sequence number appended.
    appended_through: AtomicU64,
    /// Mirrors `SyncState::failed` so appends need not take that lock.
    poisoned: AtomicBool,
    index: RwLock<Index>,
    checkpoint: Mutex<u64>,
    stats: RecoveryStats,
    /// Creates the next segment ahead of need; `None` when disabled.
    preparer: Option<Preparer>,
    _lock: Box<dyn Any + Send + Sync>,
    /// Told of each sync's time and records; see [`Wal::observe_syncs`].
    sync_observer: OnceLock<SyncObserver>,
}

/// Called after each successful sync with its time (the batch's writes and
/// `fdatasync`) and the records it made durable. It runs on the syncing
/// thread, so it must be quick: a counter or a histogram, nothing more.
pub type SyncObserver = Box<dyn Fn(Duration, u64) + Send + Sync>;

/// Whether the log takes writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Writable,
    /// Appends succeed, but the next segment cannot be created: they will
    /// fail once the active segment is full, unless the disk heals first.
    Degraded(String),
    /// Appends fail: the active segment is full and no next segment could
    /// be created (the disk is full or failing). Creation is retried in the
    /// background; appends succeed again once it works.
    Unwritable(String),
    /// A write or sync failed: nothing more is taken until the log is
    /// reopened.
    Failed(String),
}

struct Writer {
    active: Arc<Segment>,
    /// Where the next record goes in `active`.
    offset: usize,
    next_seq: u64,
    /// Records appended but not yet written to their files, in order.
    pending: Vec<Chunk>,
    /// Empty segments ready to roll into, in order.
    spares: Vec<Arc<Segment>>,
    /// Why the last roll found no segment, until one succeeds.
    roll_failure: Option<String>,
    next_index: u64,
    rng: SplitMix64,
    /// Buffers of flushed chunks, kept to avoid reallocating.
    free_buffers: Vec<Vec<u8>>,
}

/// Consecutive records bound for one segment.
struct Chunk {
    segment: Arc<Segment>,
    offset: usize,
    bytes: Vec<u8>,
    first_seq: u64,
    record_offsets: Vec<u32>,
}

#[derive(Default)]
struct SyncState {
    /// A leader is writing and syncing a batch.
    syncing: bool,
    /// Set for good after a failed write or sync.
    failed: Option<String>,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("synced_through", &self.synced_through())
            .field("appended_through", &self.appended_through.load(Ordering::Acquire))
            .finish()
    }
}

impl Wal {
    /// Opens (creating if needed) the log in `dir` on the real file system.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Self> {
        Self::open_on(Arc::new(StdFs), dir, options)
    }

    /// Opens the log in `dir` on the given file system, running recovery.
    pub fn open_on(vfs: Arc<dyn Vfs>, dir: impl AsRef<Path>, options: Options) -> Result<Self> {
        let started = Instant::now();
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        vfs.create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let lock = vfs.lock(&dir).map_err(io_err("lock", &dir))?;
        let checkpoint = checkpoint::read(vfs.as_ref(), &dir)?;
        let recovered = recovery::recover(vfs.as_ref(), &dir, &options, checkpoint)?;
        let mut rng = SplitMix64::new(options.seed.unwrap_or_else(|| RandomState::new().hash_one(std::process::id())));
        let mut next_index = recovered.next_index;
        let (active, offset) = match recovered.tail {
            Some(tail) => tail,
            None => {
                let seg = Segment::create(vfs.as_ref(), &dir, next_index, options.segment_bytes, salt(&mut rng))?;
                next_index += 1;
                (seg, SEGMENT_HEADER_BYTES)
            }
        };
        let last = recovered.next_seq - 1;
        let mut stats = recovered.stats;
        stats.duration = started.elapsed();
        let preparer = match options.prepare_ahead {
            true => Some(
                Preparer::start(vfs.clone(), dir.clone(), options.segment_bytes)
                    .map_err(io_err("start the preparing thread for", &dir))?,
            ),
            false => None,
        };
        let writer = Writer {
            active,
            offset,
            next_seq: recovered.next_seq,
            pending: Vec::new(),
            spares: recovered.spares,
            roll_failure: None,
            next_index,
            rng,
            free_buffers: Vec::new(),
        };
        let wal = Self {
            dir,
            vfs,
            options,
            writer: Mutex::new(writer),
            sync_state: Mutex::new(SyncState::default()),
            sync_done: Condvar::new(),
            synced_through: AtomicU64::new(last),
            appended_through: AtomicU64::new(last),
            poisoned: AtomicBool::new(false),
            index: RwLock::new(Index::new(recovered.indexed)),
            checkpoint: Mutex::new(checkpoint),
            stats,
            preparer,
            _lock: lock,
            sync_observer: OnceLock::new(),
        };
        wal.prepare_ahead(&mut wal.writer.lock());
        Ok(wal)
    }

    /// Buffers a record and returns its sequence number. It is durable, and
    /// readable, once a [`sync`](Self::sync) covering it returns.
    pub fn append(&self, kind: u16, payload: &[u8]) -> Result<u64> {
        if kind == 0 {
            return Err(Error::ReservedKind);
        }
        if payload.len() > self.options.max_record_bytes as usize {
            return Err(Error::RecordTooLarge { len: payload.len(), max: self.options.max_record_bytes });
        }
        let size = record_bytes(payload.len());
        let mut w = self.writer.lock();
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned(self.sync_state.lock().failed.clone().unwrap_or_default()));
        }
        if w.offset + size > w.active.len() {
            self.roll(&mut w)?;
        }
        let seq = w.next_seq;
        let header = RecordHeader {
            // Bounded by `max_record_bytes`, a `u32`.
            payload_len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            seq,
            synced_through: self.synced_through.load(Ordering::Acquire),
            kind,
        };
        let w = &mut *w;
        let continues = w.pending.last().is_some_and(|c| Arc::ptr_eq(&c.segment, &w.active));
        if !continues {
            let bytes = w.free_buffers.pop().unwrap_or_default();
            w.pending.push(Chunk {
                segment: w.active.clone(),
                offset: w.offset,
                bytes,
                first_seq: seq,
                record_offsets: Vec::new(),
            });
        }
        let Some(chunk) = w.pending.last_mut() else { unreachable!("a chunk was just ensured") };
        encode_record(&mut chunk.bytes, &header, w.active.salt, payload);
        chunk.record_offsets.push(u32::try_from(w.offset).unwrap_or(u32::MAX));
        w.offset += size;
        w.next_seq += 1;
        self.appended_through.store(seq, Ordering::Release);
        Ok(seq)
    }

    /// Makes every record appended so far durable.
    pub fn sync(&self) -> Result<()> {
        self.sync_through(self.appended_through.load(Ordering::Acquire))
    }

    /// Waits until record `seq` is durable, syncing if no one else is.
    /// Concurrent callers share one write and one `fdatasync` per batch.
    pub fn sync_through(&self, seq: u64) -> Result<()> {
        loop {
            if self.synced_through.load(Ordering::Acquire) >= seq {
                return Ok(());
            }
            let mut state = self.sync_state.lock();
            if let Some(reason) = &state.failed {
                return Err(Error::Poisoned(reason.clone()));
            }
            if self.synced_through.load(Ordering::Acquire) >= seq {
                return Ok(());
            }
            if seq > self.appended_through.load(Ordering::Acquire) {
                return Err(Error::NotAppended { seq });
            }
            if state.syncing {
                self.sync_done.wait(&mut state);
                continue;
            }
            state.syncing = true;
            drop(state);
            let result = self.flush();
            let mut state = self.sync_state.lock();
            state.syncing = false;
            if let Err(e) = &result {
                state.failed = Some(e.to_string());
                self.poisoned.store(true, Ordering::Release);
            }
            self.sync_done.notify_all();
            result?;
        }
    }

    /// Sets what is told of each sync (for the embedding's metrics); only
    /// the first call takes effect, and it returns whether this one did.
    pub fn observe_syncs(&self, observer: SyncObserver) -> bool {
        self.sync_observer.set(observer).is_ok()
    }

    /// Appends one record and waits until it is durable.
    pub fn append_sync(&self, kind: u16, payload: &[u8]) -> Result<u64> {
        let seq = self.append(kind, payload)?;
        self.sync_through(seq)?;
        Ok(seq)
    }

    /// The sync leader's work: write the pending chunks, sync their files,
    /// then publish the records to readers.
    fn flush(&self) -> Result<()> {
        let started = Instant::now();
        let chunks = std::mem::take(&mut self.writer.lock().pending);
        for chunk in &chunks {
            let seg = &chunk.segment;
            seg.file.write_at(chunk.offset as u64, &chunk.bytes).map_err(io_err("write", &seg.path))?;
        }
        // A batch spans at most a few segments; sync each once, in log order.
        for (i, chunk) in chunks.iter().enumerate() {
            let seg = &chunk.segment;
            if chunks.get(i + 1).is_none_or(|next| !Arc::ptr_eq(&next.segment, seg)) {
                seg.file.sync().map_err(io_err("fdatasync", &seg.path))?;
            }
        }
        let Some(last) = chunks.last() else {
            return Ok(());
        };
        let last_seq = last.first_seq + last.record_offsets.len() as u64 - 1;
        {
            let mut index = self.index.write();
            for chunk in &chunks {
                for (i, &offset) in chunk.record_offsets.iter().enumerate() {
                    index.push(&chunk.segment, chunk.first_seq + i as u64, offset);
                }
            }
            // Raised before the index lock is released: a reader that finds
            // a record in the index then sees `synced_through` cover it.
            self.synced_through.store(last_seq, Ordering::Release);
        }
        if let Some(observe) = self.sync_observer.get() {
            let records = chunks.iter().map(|c| c.record_offsets.len() as u64).sum();
            observe(started.elapsed(), records);
        }
        let mut w = self.writer.lock();
        for mut chunk in chunks {
            chunk.bytes.clear();
            if w.free_buffers.len() < 4 {
                w.free_buffers.push(chunk.bytes);
            }
        }
        Ok(())
    }

    /// Switches appends to the next segment. On failure nothing changes and
    /// the append that asked fails; a later append tries again. A failure
    /// to create a segment is not fatal: nothing was written to it.
    fn roll(&self, w: &mut Writer) -> Result<()> {
        let next = if !w.spares.is_empty() {
            w.spares.remove(0)
        } else {
            match self.preparer.as_ref().map_or(Next::NotAsked, Preparer::take) {
                Next::Ready(segment) => {
                    debug_assert_eq!(segment.index, w.next_index);
                    w.next_index += 1;
                    segment
                }
                // The preparing thread retries with backoff; an append per
                // request must not each try a creation of its own.
                Next::Failing(reason) => {
                    w.roll_failure = Some(reason.clone());
                    return Err(Error::NoSegment(reason));
                }
                Next::NotAsked => {
                    let salt = salt(&mut w.rng);
                    let created =
                        Segment::create(self.vfs.as_ref(), &self.dir, w.next_index, self.options.segment_bytes, salt);
                    match created {
                        Ok(segment) => {
                            w.next_index += 1;
                            segment
                        }
                        Err(e) => {
                            w.roll_failure = Some(e.to_string());
                            return Err(e);
                        }
                    }
                }
            }
        };
        w.roll_failure = None;
        w.active = next;
        w.offset = SEGMENT_HEADER_BYTES;
        self.prepare_ahead(w);
        Ok(())
    }

    /// Asks for the next segment to be created in the background, if
    /// enabled and no spare is ready.
    fn prepare_ahead(&self, w: &mut Writer) {
        if let Some(preparer) = &self.preparer
            && w.spares.is_empty()
        {
            preparer.ask(w.next_index, salt(&mut w.rng));
        }
    }

    /// Whether the log takes writes now.
    pub fn health(&self) -> Health {
        if let Some(reason) = self.failure() {
            return Health::Failed(reason);
        }
        let ready = self.preparer.as_ref().is_some_and(Preparer::has_ready);
        let w = self.writer.lock();
        match (&w.roll_failure, self.preparer.as_ref().and_then(Preparer::failure)) {
            (Some(reason), _) if !ready && w.spares.is_empty() => Health::Unwritable(reason.clone()),
            (_, Some(reason)) if w.spares.is_empty() => Health::Degraded(reason),
            _ => Health::Writable,
        }
    }

    /// The durable record `seq`, read in place, or `None` if it is not
    /// retained or not yet synced. Its CRC is checked again on every read.
    pub fn get(&self, seq: u64) -> Result<Option<Record>> {
        // The lock guard is dropped before the walk to the record.
        let located = self.index.read().locate(seq);
        located.map(Located::read).transpose()
    }

    /// Iterates over durable records from `seq` (or the first retained one,
    /// if later), including records synced while iterating.
    pub fn iter_from(&self, seq: u64) -> Iter<'_> {
        let first = self.first_seq();
        Iter { wal: self, cursor: Cursor::new(seq.max(first)) }
    }

    /// The first retained sequence number (the next one if none is retained).
    pub fn first_seq(&self) -> u64 {
        self.index.read().first_seq().unwrap_or_else(|| self.synced_through() + 1)
    }

    /// Highest sequence number that is durable (0 when the log is empty).
    pub fn synced_through(&self) -> u64 {
        self.synced_through.load(Ordering::Acquire)
    }

    /// The sequence number the next append will get.
    pub fn next_seq(&self) -> u64 {
        self.appended_through.load(Ordering::Acquire) + 1
    }

    /// Why the log accepts no more writes, once a write or sync failed.
    pub fn failure(&self) -> Option<String> {
        if !self.poisoned.load(Ordering::Acquire) {
            return None;
        }
        self.sync_state.lock().failed.clone()
    }

    /// The last declared checkpoint (0 if none).
    pub fn checkpoint_seq(&self) -> u64 {
        *self.checkpoint.lock()
    }

    /// What recovery found when this log was opened.
    pub fn recovery_stats(&self) -> &RecoveryStats {
        &self.stats
    }

    /// Number of segment files holding retained records.
    pub fn segment_count(&self) -> usize {
        self.index.read().segment_count()
    }

    /// How many segments a checkpoint at `seq` would delete now.
    pub fn releasable(&self, seq: u64) -> usize {
        self.index.read().count_below(seq.min(self.synced_through() + 1))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Declares that records below `seq` are no longer needed: persists the
    /// checkpoint, then deletes every segment whose records all lie below
    /// it. Returns how many segments were deleted. `seq` may be at most one
    /// past the last durable record.
    pub fn checkpoint(&self, seq: u64) -> Result<usize> {
        let next_seq = self.synced_through() + 1;
        if seq > next_seq {
            return Err(Error::CheckpointBeyondEnd { requested: seq, next_seq });
        }
        let mut current = self.checkpoint.lock();
        if seq <= *current {
            return Ok(0);
        }
        checkpoint::write(self.vfs.as_ref(), &self.dir, seq)?;
        *current = seq;
        let doomed = self.index.write().drain_below(seq);
        for seg in &doomed {
            let deleted = self.dir.join(format!("{}{DELETED_SUFFIX}", file_name(seg.index)));
            self.vfs.rename(&seg.path, &deleted).map_err(io_err("rename", &seg.path))?;
            self.vfs.remove(&deleted).map_err(io_err("remove", &deleted))?;
        }
        if !doomed.is_empty() {
            self.vfs.sync_dir(&self.dir).map_err(io_err("sync directory", &self.dir))?;
        }
        Ok(doomed.len())
    }
}

fn salt(rng: &mut SplitMix64) -> u64 {
    rng.next_u64() | 1
}

/// Iterator over durable records; see [`Wal::iter_from`].
#[derive(Debug)]
pub struct Iter<'a> {
    wal: &'a Wal,
    /// Carries each record's end to the next, so iterating steps over no
    /// record headers to find one.
    cursor: Cursor,
}

impl Iterator for Iter<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        let located = self.cursor.locate(&self.wal.index.read())?;
        Some(self.cursor.read(located))
    }
}
