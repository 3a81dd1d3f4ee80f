//! Capture: a consistent copy of a log that another process may be
//! appending to, taken without its lock.
//!
//! The copy is a prefix of the log: every record that was durable when the
//! capture started, and perhaps some written since. It needs no help from
//! the writer, because of three facts of the format and the writer:
//!
//! - A record is written once and never changed while the log is open, so
//!   the bytes of a record that was synced before the capture started read
//!   back the same at any later moment, and CRC-valid.
//! - Synced records are contiguous: sequence numbers are consecutive from
//!   the first retained record to the synced-through point.
//! - Retention writes the checkpoint before it deletes the segments below
//!   it, and deletes whole segments only.
//!
//! So the capture lists the segment files, opens every one (an open file
//! stays readable after retention unlinks it; a file gone before it is
//! opened makes the attempt start again), then reads the checkpoint, then
//! reads the segments in order with `pread` into its own memory, never
//! through a shared map, since the writer changes the unused part of the
//! active segment while it is read. It keeps records while each is
//! CRC-valid and follows the one before; the first slot that is empty,
//! torn, or not the next sequence number ends the copy there. Everything
//! after that point in the copied segment is written as zeros, so the copy
//! ends cleanly, as a log that was closed there.
//!
//! A record after the end that vouches (by its synced-through stamp) for
//! the sequence number expected at the end means either that the writer
//! got ahead of the read (the attempt starts again) or that synced data is
//! damaged (after several attempts, [`Error::Corrupt`]). A finished copy is
//! synced, file by file and then the directory, and checked by
//! [`inspect`](crate::inspect) before it is reported.
//!
//! The copy holds segment files and the checkpoint, no `LOCK`: it opens as
//! any log does.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use crate::{
    checkpoint,
    error::{Error, Result, io_err},
    inspect::inspect,
    layout::{
        RECORD_HEADER_BYTES, RecordHeader, SEGMENT_HEADER_BYTES, SegmentHeader, Slot, decode_record, is_zero,
        peek_header, record_bytes,
    },
    segment,
    vfs::StdFs,
};

/// Attempts before a capture gives up on a log that keeps changing under
/// it. An attempt starts again only when retention deleted a segment
/// between the listing and the opening, or the writer overtook the read.
const ATTEMPTS: u32 = 8;
/// Bytes read from a segment per `pread`.
const READ_WINDOW_BYTES: usize = 4 << 20;
/// Bytes buffered before a write to a copied segment.
const WRITE_BUFFER_BYTES: usize = 4 << 20;

/// What [`capture`] copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// Segment files written.
    pub segments: usize,
    /// Records copied.
    pub records: u64,
    /// The first and the last sequence number copied, if any record was.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The checkpoint copied with them.
    pub checkpoint: u64,
    /// Bytes of the copied records, headers and padding included.
    pub record_bytes: u64,
    /// Attempts it took.
    pub attempts: u32,
}

/// Copies the log in `src` into `dst`, a directory that must be empty or
/// absent, while another process may be appending to `src`: every record
/// durable when the call started is in the copy. See the module docs.
pub fn capture(src: &Path, dst: &Path) -> Result<Captured> {
    prepare_target(dst)?;
    let mut last_reason = String::new();
    for attempt in 1..=ATTEMPTS {
        match capture_once(src, dst, attempt == ATTEMPTS)? {
            Some(mut captured) => {
                captured.attempts = attempt;
                confirm(dst, &captured)?;
                return Ok(captured);
            }
            None => {
                last_reason = format!("attempt {attempt} overtaken");
                clear(dst)?;
            }
        }
    }
    Err(Error::Io {
        op: "capture",
        path: src.to_path_buf(),
        source: io::Error::other(format!("the log kept changing under the copy ({last_reason})")),
    })
}

fn prepare_target(dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(io_err("create", dst))?;
    let mut entries = std::fs::read_dir(dst).map_err(io_err("list", dst))?;
    if entries.next().is_some() {
        return Err(Error::Io {
            op: "capture into",
            path: dst.to_path_buf(),
            source: io::Error::new(io::ErrorKind::AlreadyExists, "the directory is not empty"),
        });
    }
    Ok(())
}

/// Removes what a failed attempt wrote (only files this module names).
fn clear(dst: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dst).map_err(io_err("list", dst))? {
        let entry = entry.map_err(io_err("list", dst))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if segment::parse_name(&name).is_some() || name == checkpoint::FILE_NAME {
            std::fs::remove_file(entry.path()).map_err(io_err("remove", entry.path()))?;
        }
    }
    Ok(())
}

/// One segment file of the source, opened before anything is read.
struct Source {
    index: u64,
    path: PathBuf,
    file: File,
}

/// One attempt: `None` when the source changed under it in a way another
/// attempt gets past.
fn capture_once(src: &Path, dst: &Path, last: bool) -> Result<Option<Captured>> {
    let mut names = std::fs::read_dir(src)
        .map_err(io_err("list", src))?
        .filter_map(|e| e.ok().and_then(|e| segment::parse_name(&e.file_name().to_string_lossy())))
        .collect::<Vec<u64>>();
    names.sort_unstable();
    let mut sources = Vec::with_capacity(names.len());
    for index in names {
        let path = src.join(segment::file_name(index));
        match File::open(&path) {
            Ok(file) => sources.push(Source { index, path, file }),
            // Retention deleted it after the listing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", &path)(e)),
        }
    }
    // Read after the segments are open: the checkpoint only grows, and the
    // segments it lets retention delete are gone only after it is written.
    let checkpoint_seq = read_checkpoint(src)?;
    let mut captured = Captured { checkpoint: checkpoint_seq, ..Captured::default() };
    let mut expected: Option<u64> = None;
    // The position of the last segment copied from, and where it ended.
    let mut end = (0, Stop::Empty(SEGMENT_HEADER_BYTES));
    for (pos, source) in sources.iter().enumerate() {
        let copied = copy_segment(source, dst, expected, &mut captured)?;
        if copied.records == 0 {
            break;
        }
        expected = copied.next_seq;
        end = (pos, copied.stop);
        if matches!(copied.stop, Stop::Bad(_)) {
            break;
        }
    }
    let floor = checkpoint_seq.max(1);
    if captured.first_seq.is_some_and(|first| first > floor) {
        return Err(Error::Corrupt {
            segment: sources[0].path.clone(),
            offset: SEGMENT_HEADER_BYTES as u64,
            seq: floor,
            reason: "records below the checkpoint are missing",
        });
    }
    if let Some(expected) = expected
        && vouched_after(&sources[end.0 + 1..], expected)?
    {
        if !last {
            return Ok(None);
        }
        return Err(Error::Corrupt {
            segment: sources[end.0].path.clone(),
            offset: end.1.offset(),
            seq: expected,
            reason: "a later segment's records prove this record had been synced",
        });
    }
    checkpoint::write(&StdFs, dst, checkpoint_seq)?;
    sync_dir(dst)?;
    Ok(Some(captured))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("sync directory", dir))
}

fn read_checkpoint(src: &Path) -> Result<u64> {
    let path = src.join(checkpoint::FILE_NAME);
    match std::fs::read(&path) {
        Ok(bytes) => {
            checkpoint::decode(&bytes).map_err(|reason| Error::Corrupt { segment: path, offset: 0, seq: 0, reason })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_err("read", &path)(e)),
    }
}

/// Why a segment's copy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// An empty slot at this offset: the end of the segment's records.
    Empty(usize),
    /// Bytes at this offset that are not the next record: torn, not yet
    /// written in full, or damaged.
    Bad(usize),
}

impl Stop {
    fn offset(self) -> u64 {
        match self {
            Self::Empty(at) | Self::Bad(at) => at as u64,
        }
    }
}

/// What [`copy_segment`] found.
struct Copied {
    records: u64,
    next_seq: Option<u64>,
    stop: Stop,
}

/// Copies the records of `source` that follow `expected` (any first
/// record, when `None`) into a segment file of the same name in `dst`,
/// zeros after them; writes nothing when its first record does not follow.
fn copy_segment(source: &Source, dst: &Path, mut expected: Option<u64>, captured: &mut Captured) -> Result<Copied> {
    let len = source.file.metadata().map_err(io_err("stat", &source.path))?.len();
    let header = read_header(source, len)?;
    let len = usize::try_from(len).map_err(|_| corrupt(source, 0, "segment too large"))?;
    let mut window = Window { file: &source.file, len, start: 0, buf: Vec::new() };
    let mut out: Option<(PathBuf, BufWriter<File>)> = None;
    let mut copied = Copied { records: 0, next_seq: None, stop: Stop::Empty(SEGMENT_HEADER_BYTES) };
    let mut offset = SEGMENT_HEADER_BYTES;
    loop {
        let (record, bytes) = match read_slot(&mut window, offset, header.salt).map_err(io_err("read", &source.path))? {
            Read::Empty => {
                copied.stop = Stop::Empty(offset);
                break;
            }
            Read::Bad => {
                copied.stop = Stop::Bad(offset);
                break;
            }
            Read::Record(record, bytes) => (record, bytes),
        };
        if expected.is_some_and(|e| e != record.seq) {
            copied.stop = Stop::Bad(offset);
            break;
        }
        if out.is_none() {
            let path = dst.join(segment::file_name(source.index));
            let file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(io_err("create", &path))?;
            let mut writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
            writer.write_all(&header.encode()).map_err(io_err("write", &path))?;
            out = Some((path, writer));
            captured.segments += 1;
            captured.first_seq.get_or_insert(record.seq);
        }
        if let Some((path, writer)) = &mut out {
            writer.write_all(bytes).map_err(io_err("write", path.as_path()))?;
        }
        captured.records += 1;
        captured.record_bytes += bytes.len() as u64;
        captured.last_seq = Some(record.seq);
        copied.records += 1;
        expected = Some(record.seq + 1);
        copied.next_seq = expected;
        offset += bytes.len();
    }
    if let Some((path, writer)) = out {
        finish(&path, writer, offset, len)?;
    }
    Ok(copied)
}

fn corrupt(source: &Source, offset: u64, reason: &'static str) -> Error {
    Error::Corrupt { segment: source.path.clone(), offset, seq: 0, reason }
}

fn read_header(source: &Source, len: u64) -> Result<SegmentHeader> {
    let mut bytes = [0u8; SEGMENT_HEADER_BYTES];
    source.file.read_exact_at(&mut bytes, 0).map_err(io_err("read", &source.path))?;
    // Segments are complete before they are named: a bad header is damage.
    let header = SegmentHeader::decode(&bytes).map_err(|reason| corrupt(source, 0, reason))?;
    if header.index != source.index {
        return Err(corrupt(source, 0, "segment header names another segment"));
    }
    if header.segment_bytes != len {
        return Err(corrupt(source, 0, "segment file length differs from its header"));
    }
    Ok(header)
}

/// Zero-fills a copied segment from `offset` to its full length, so its
/// blocks are allocated as the writer expects of every segment, and syncs it.
fn finish(path: &Path, mut writer: BufWriter<File>, mut offset: usize, len: usize) -> Result<()> {
    let zeros = vec![0u8; WRITE_BUFFER_BYTES];
    while offset < len {
        let n = WRITE_BUFFER_BYTES.min(len - offset);
        writer.write_all(&zeros[..n]).map_err(io_err("write", path))?;
        offset += n;
    }
    let file = writer.into_inner().map_err(|e| io_err("write", path)(e.into_error()))?;
    file.sync_all().map_err(io_err("sync", path))
}

/// Whether the first record of any of `later` segments vouches for `expected`.
fn vouched_after(later: &[Source], expected: u64) -> Result<bool> {
    for source in later {
        let len = source.file.metadata().map_err(io_err("stat", &source.path))?.len();
        let Ok(header) = read_header(source, len) else { continue };
        let len = usize::try_from(len).unwrap_or(0);
        let mut window = Window { file: &source.file, len, start: 0, buf: Vec::new() };
        let slot = read_slot(&mut window, SEGMENT_HEADER_BYTES, header.salt).map_err(io_err("read", &source.path))?;
        if let Read::Record(record, _) = slot
            && record.synced_through >= expected
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The slot at an offset, as read into the capture's own memory.
enum Read<'a> {
    Empty,
    Bad,
    Record(RecordHeader, &'a [u8]),
}

fn read_slot<'w>(window: &'w mut Window<'_>, offset: usize, salt: u64) -> io::Result<Read<'w>> {
    if offset + RECORD_HEADER_BYTES > window.len {
        // The writer never starts a record where its header does not fit.
        return Ok(Read::Empty);
    }
    let head: [u8; RECORD_HEADER_BYTES] = window.at(offset, RECORD_HEADER_BYTES)?.try_into().unwrap_or([1; 32]);
    if is_zero(&head) {
        return Ok(Read::Empty);
    }
    let (_, payload_len) = peek_header(&head);
    let total = record_bytes(payload_len as usize);
    if total > window.len - offset {
        return Ok(Read::Bad);
    }
    let bytes = window.at(offset, total)?;
    Ok(match decode_record(bytes, 0, salt) {
        Slot::Record(record, _) => Read::Record(record, bytes),
        Slot::Empty => Read::Empty,
        Slot::Invalid(_) => Read::Bad,
    })
}

/// A segment read through `pread` a window at a time.
struct Window<'a> {
    file: &'a File,
    len: usize,
    start: usize,
    buf: Vec<u8>,
}

impl Window<'_> {
    /// The `n` bytes at `offset`, which lie inside the file.
    fn at(&mut self, offset: usize, n: usize) -> io::Result<&[u8]> {
        assert!(offset + n <= self.len, "read {offset}+{n} past a segment of {}", self.len);
        if offset < self.start || offset + n > self.start + self.buf.len() {
            let size = n.max(READ_WINDOW_BYTES).min(self.len - offset);
            self.buf.resize(size, 0);
            self.file.read_exact_at(&mut self.buf, offset as u64)?;
            self.start = offset;
        }
        Ok(&self.buf[offset - self.start..offset - self.start + n])
    }
}

/// Checks the copy as a log opening it would, and removes the `LOCK` file
/// the check leaves, so the copy holds only the log.
fn confirm(dst: &Path, captured: &Captured) -> Result<()> {
    let inspection = inspect(dst)?;
    let lock = dst.join("LOCK");
    std::fs::remove_file(&lock).map_err(io_err("remove", &lock))?;
    sync_dir(dst)?;
    let found = (inspection.stats.records, inspection.stats.torn_at.is_none());
    if found != (captured.records, true) {
        return Err(Error::Io {
            op: "check the copy in",
            path: dst.to_path_buf(),
            source: io::Error::other(format!(
                "{} records copied, {} read back, torn tail {:?}",
                captured.records, inspection.stats.records, inspection.stats.torn_at
            )),
        });
    }
    Ok(())
}
