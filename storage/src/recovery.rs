//! Recovery at open: verify every record of every retained segment, find the
//! end of the log, and tell a torn tail from damage to acknowledged data.
//!
//! The segments are verified on several threads at once, each on its own
//! (every record's CRC, consecutive sequence numbers within it); then a
//! walk over them in order checks that each begins where the one before it
//! ended. The log ends cleanly where a segment's next slot is all zeros,
//! every later byte of it is zero, and every later segment is empty. Any
//! other stop is a *bad point*. The bytes after a bad point are then searched
//! (at every 16-byte boundary, since a bad record's length cannot be trusted)
//! for valid records whose `synced_through` stamp reaches the sequence number
//! expected at the bad point: such a record proves the bad one had been
//! synced, and hence acknowledged, so it is damage. Without such proof the
//! bad point is a torn tail: everything from it on is zeroed (or, in later
//! segments, deleted) and synced, so the next writer cannot be followed by
//! stale records.

use std::{path::Path, sync::Arc, time::Duration};

use crate::{
    error::{Error, Result, io_err},
    index::IndexedSegment,
    layout::{RECORD_ALIGN, SEGMENT_HEADER_BYTES, Slot, decode_record, is_zero, last_nonzero_end, record_bytes},
    options::{Options, Recovery},
    segment::{self, DELETED_SUFFIX, Segment, TMP_SUFFIX},
    vfs::Vfs,
};

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryStats {
    /// Segment files verified.
    pub segments: usize,
    /// Records verified and kept.
    pub records: u64,
    /// Bytes of the kept records, headers and padding included.
    pub record_bytes: u64,
    /// Bytes of segment files scanned.
    pub scanned_bytes: u64,
    /// Bytes of a torn tail (never acknowledged) that were zeroed or deleted.
    pub torn_bytes_dropped: u64,
    /// Where the torn tail began: segment file name and offset.
    pub torn_at: Option<(String, u64)>,
    /// With [`Recovery::Repair`]: the damage that was cut away, and how many
    /// valid records after it were discarded with it.
    pub repaired: Option<String>,
    pub records_discarded: u64,
    pub duration: Duration,
}

/// The state the writer and readers start from.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) indexed: Vec<IndexedSegment>,
    /// The segment and offset where the next record goes, if any segment
    /// survives.
    pub(crate) tail: Option<(Arc<Segment>, usize)>,
    /// Empty segments after the tail, ready for use.
    pub(crate) spares: Vec<Arc<Segment>>,
    pub(crate) next_seq: u64,
    pub(crate) next_index: u64,
    pub(crate) stats: RecoveryStats,
}

/// The first place where the log is not as it should be.
struct BadPoint {
    /// Position in the list of segment files.
    pos: usize,
    offset: usize,
    reason: &'static str,
}

/// The result of scanning one segment sequentially.
struct Scan {
    /// The segment's records, if it has any.
    indexed: Option<IndexedSegment>,
    record_bytes: u64,
    /// Where the scan stopped, and why if it is not a clean end.
    stop: usize,
    bad: Option<&'static str>,
}

fn scan_segment(seg: &Arc<Segment>, expected: &mut Option<u64>) -> Scan {
    let buf = seg.map.all();
    let mut scan = Scan { indexed: None, record_bytes: 0, stop: SEGMENT_HEADER_BYTES, bad: None };
    loop {
        match decode_record(buf, scan.stop, seg.salt) {
            Slot::Empty => return scan,
            Slot::Invalid(reason) => {
                scan.bad = Some(reason);
                return scan;
            }
            Slot::Record(header, _) => {
                if expected.is_some_and(|e| e != header.seq) {
                    scan.bad = Some("sequence number out of order");
                    return scan;
                }
                *expected = Some(header.seq + 1);
                // Segments are at most 4 GiB (checked in `Options`), so offsets fit.
                let offset = u32::try_from(scan.stop).unwrap_or(u32::MAX);
                scan.indexed.get_or_insert_with(|| IndexedSegment::new(seg.clone(), header.seq)).push(offset);
                let bytes = record_bytes(header.payload_len as usize);
                scan.record_bytes += bytes as u64;
                scan.stop += bytes;
            }
        }
    }
}

/// A segment verified on its own, on one of several threads: its records'
/// CRCs and the sequence numbers within it. `recover` then checks the
/// segments against each other, in order.
struct Checked {
    scan: Scan,
    /// The sequence number after its last record, if it has records.
    next_seq: Option<u64>,
    /// Every byte after where the scan stopped is zero.
    tail_zero: bool,
}

impl Checked {
    fn first_seq(&self) -> Option<u64> {
        self.scan.indexed.as_ref().map(|i| i.first_seq)
    }

    /// Holds nothing: no record, nothing bad, zeros to its end.
    fn empty(&self) -> bool {
        self.scan.indexed.is_none() && self.scan.bad.is_none() && self.tail_zero
    }
}

fn check_segment(seg: &Arc<Segment>) -> Checked {
    let mut next_seq = None;
    let scan = scan_segment(seg, &mut next_seq);
    let tail_zero = scan.bad.is_none() && is_zero(seg.map.bytes(scan.stop, seg.len()));
    Checked { scan, next_seq, tail_zero }
}

/// Verifies every segment, spread over the machine's cores: reading and
/// checking every record is most of a start's time.
fn check_segments(segments: &[std::result::Result<Arc<Segment>, &'static str>]) -> Vec<Option<Checked>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8).min(segments.len().max(1));
    let mut checked: Vec<Option<Checked>> = (0..segments.len()).map(|_| None).collect();
    if threads == 1 {
        for (slot, seg) in checked.iter_mut().zip(segments) {
            *slot = seg.as_ref().ok().map(check_segment);
        }
        return checked;
    }
    let results: Vec<Vec<(usize, Checked)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mine = segments.iter().enumerate().skip(t).step_by(threads);
                    mine.filter_map(|(i, seg)| seg.as_ref().ok().map(|seg| (i, check_segment(seg)))).collect()
                })
            })
            .collect();
        // A worker that panicked checked nothing: its segments read as
        // unchecked, and recovery stops there.
        workers.into_iter().map(|w| w.join().unwrap_or_default()).collect()
    });
    for (i, c) in results.into_iter().flatten() {
        checked[i] = Some(c);
    }
    checked
}

/// Removes leftovers of interrupted creations and deletions, and returns the
/// segment indices present, sorted.
fn list_segments(vfs: &dyn Vfs, dir: &Path, read_only: bool) -> Result<Vec<u64>> {
    let names = vfs.list(dir).map_err(io_err("list", dir))?;
    let mut removed = false;
    for name in names.iter().filter(|n| !read_only && (n.ends_with(TMP_SUFFIX) || n.ends_with(DELETED_SUFFIX))) {
        let path = dir.join(name);
        vfs.remove(&path).map_err(io_err("remove", &path))?;
        removed = true;
    }
    if removed {
        vfs.sync_dir(dir).map_err(io_err("sync directory", dir))?;
    }
    let mut indices: Vec<u64> = names.iter().filter_map(|n| segment::parse_name(n)).collect();
    indices.sort_unstable();
    Ok(indices)
}

/// Recovers the log in `dir`; `checkpoint` is the owner's last checkpoint.
pub(crate) fn recover(vfs: &dyn Vfs, dir: &Path, options: &Options, checkpoint: u64) -> Result<Recovered> {
    let read_only = options.recovery == Recovery::ReadOnly;
    let indices = list_segments(vfs, dir, read_only)?;
    let mut segments = Vec::with_capacity(indices.len());
    for &index in &indices {
        segments.push(Segment::open(vfs, dir, index)?);
    }
    let mut stats = RecoveryStats { segments: segments.len(), ..RecoveryStats::default() };
    let mut indexed: Vec<IndexedSegment> = Vec::new();
    let mut expected: Option<u64> = None;
    // Position (in `segments`) and offset just past the last record.
    let mut log_end: Option<(usize, usize)> = None;
    let mut ended = false;
    let mut bad: Option<BadPoint> = None;
    let mut checked = check_segments(&segments);
    for (pos, opened) in segments.iter().enumerate() {
        let seg = match opened {
            Ok(seg) => seg,
            Err(reason) => {
                bad = Some(BadPoint { pos, offset: 0, reason });
                break;
            }
        };
        stats.scanned_bytes += seg.len() as u64;
        if pos > 0 && indices[pos] != indices[pos - 1] + 1 {
            bad = Some(BadPoint { pos, offset: 0, reason: "a segment file is missing before this one" });
            break;
        }
        let Some(check) = checked[pos].take() else {
            bad = Some(BadPoint { pos, offset: 0, reason: "the segment could not be checked" });
            break;
        };
        if ended {
            // After an empty segment every segment must be empty too.
            if !check.empty() {
                bad = Some(BadPoint { pos, offset: SEGMENT_HEADER_BYTES, reason: "records after an empty segment" });
                break;
            }
            continue;
        }
        // The segment's first record must follow the last one before it.
        let follows = match (expected, check.first_seq()) {
            (Some(e), Some(first)) => e == first,
            _ => true,
        };
        let tail_zero = check.tail_zero;
        let scan = if follows {
            expected = check.next_seq.or(expected);
            check.scan
        } else {
            Scan {
                indexed: None,
                record_bytes: 0,
                stop: SEGMENT_HEADER_BYTES,
                bad: Some("sequence number out of order"),
            }
        };
        if let Some(mut entry) = scan.indexed {
            stats.records += entry.len();
            stats.record_bytes += scan.record_bytes;
            entry.shrink();
            indexed.push(entry);
            log_end = Some((pos, scan.stop));
        } else {
            ended = true;
        }
        if let Some(reason) = scan.bad {
            bad = Some(BadPoint { pos, offset: scan.stop, reason });
            break;
        }
        if !tail_zero {
            bad = Some(BadPoint { pos, offset: scan.stop, reason: "unexpected bytes after the last record" });
            break;
        }
    }
    let floor = checkpoint.max(1);
    if let Some(first) = indexed.first().filter(|f| f.first_seq > floor && options.recovery == Recovery::Strict) {
        return Err(Error::Corrupt {
            segment: first.segment.path.clone(),
            offset: SEGMENT_HEADER_BYTES as u64,
            seq: floor,
            reason: "records below the checkpoint are missing",
        });
    }
    let next_seq = expected.unwrap_or(floor);
    let survivors = match &bad {
        Some(bad) => {
            truncate(vfs, dir, options, &indices, &segments, bad, next_seq, &mut stats)?;
            bad.pos + usize::from(bad.offset > 0)
        }
        None => segments.len(),
    };
    // Every surviving segment has a valid header: a bad one is a bad point.
    let alive: Vec<Arc<Segment>> = segments[..survivors].iter().filter_map(|s| s.as_ref().ok().cloned()).collect();
    let (tail, spares) = match log_end {
        Some((pos, offset)) => (Some((alive[pos].clone(), offset)), alive[pos + 1..].to_vec()),
        None => (alive.first().map(|s| (s.clone(), SEGMENT_HEADER_BYTES)), alive.iter().skip(1).cloned().collect()),
    };
    for entry in indexed.iter().filter(|_| !read_only) {
        // Records read back may have come from the page cache of a process
        // that died before syncing them: make them durable before anything
        // is stamped as synced after them.
        entry.segment.file.sync().map_err(io_err("sync", &entry.segment.path))?;
    }
    let next_index = alive.last().map_or_else(|| indices.first().copied().unwrap_or(1), |s| s.index + 1);
    Ok(Recovered { indexed, tail, spares, next_seq, next_index, stats })
}

/// Searches the bytes after `bad` for valid records. Returns how many there
/// are and the first that vouches for the record expected at `bad`.
fn search_after(segments: &[Result<Arc<Segment>, &'static str>], bad: &BadPoint, expected: u64) -> (u64, Option<u64>) {
    let mut found = 0;
    let mut proof = None;
    for (pos, seg) in segments.iter().enumerate().skip(bad.pos) {
        let Ok(seg) = seg else { continue };
        let buf = seg.map.all();
        let mut off = if pos == bad.pos && bad.offset >= SEGMENT_HEADER_BYTES {
            bad.offset + RECORD_ALIGN
        } else {
            SEGMENT_HEADER_BYTES
        };
        while off < buf.len() {
            // A record's first 16 bytes hold its non-zero sequence number.
            if buf.get(off..off + RECORD_ALIGN).is_none_or(is_zero) {
                off += RECORD_ALIGN;
                continue;
            }
            match decode_record(buf, off, seg.salt) {
                Slot::Record(header, _) => {
                    found += 1;
                    if header.synced_through >= expected && proof.is_none() {
                        proof = Some(header.seq);
                    }
                    off += record_bytes(header.payload_len as usize);
                }
                _ => off += RECORD_ALIGN,
            }
        }
    }
    (found, proof)
}

/// Handles a bad point: refuses with the place of the damage, or cuts the
/// log there (a torn tail always, damage only when repair was asked for).
#[allow(clippy::too_many_arguments)]
fn truncate(
    vfs: &dyn Vfs,
    dir: &Path,
    options: &Options,
    indices: &[u64],
    segments: &[Result<Arc<Segment>, &'static str>],
    bad: &BadPoint,
    expected: u64,
    stats: &mut RecoveryStats,
) -> Result<()> {
    let name = segment::file_name(indices[bad.pos]);
    let (found, proof) = search_after(segments, bad, expected);
    // A crash cannot damage a segment header (segments are complete before
    // they are named) nor remove a segment from the middle of the log.
    let damage = proof.is_some() || bad.offset == 0;
    if damage && options.recovery != Recovery::Repair {
        return Err(Error::Corrupt {
            segment: dir.join(&name),
            offset: bad.offset as u64,
            seq: expected,
            reason: bad.reason,
        });
    }
    if options.recovery == Recovery::ReadOnly {
        stats.torn_at = Some((name, bad.offset as u64));
        return Ok(());
    }
    let mut dropped = 0u64;
    if let (Ok(seg), true) = (&segments[bad.pos], bad.offset > 0)
        && let Some(end) = last_nonzero_end(seg.map.all(), bad.offset)
    {
        zero(seg, bad.offset, end)?;
        dropped += (end - bad.offset) as u64;
    }
    let first_deleted = bad.pos + usize::from(bad.offset > 0);
    for (pos, seg) in segments.iter().enumerate().skip(first_deleted) {
        if let Ok(seg) = seg {
            dropped +=
                last_nonzero_end(seg.map.all(), SEGMENT_HEADER_BYTES).map_or(0, |e| e - SEGMENT_HEADER_BYTES) as u64;
        }
        let path = dir.join(segment::file_name(indices[pos]));
        let doomed = dir.join(format!("{}{DELETED_SUFFIX}", segment::file_name(indices[pos])));
        vfs.rename(&path, &doomed).map_err(io_err("rename", &path))?;
        vfs.remove(&doomed).map_err(io_err("remove", &doomed))?;
    }
    vfs.sync_dir(dir).map_err(io_err("sync directory", dir))?;
    stats.torn_bytes_dropped += dropped;
    if damage {
        stats.repaired =
            Some(format!("{name} at offset {}: {} (expected sequence {expected})", bad.offset, bad.reason));
        stats.records_discarded = found;
    } else {
        stats.torn_at = Some((name, bad.offset as u64));
    }
    Ok(())
}

/// Zeroes `start..end` of a segment (rounded out to whole records) and syncs it.
fn zero(seg: &Segment, start: usize, end: usize) -> Result<()> {
    const CHUNK: usize = 1 << 20;
    let end = end.div_ceil(RECORD_ALIGN) * RECORD_ALIGN;
    let zeros = vec![0u8; CHUNK.min(end - start)];
    let mut at = start;
    while at < end {
        let n = CHUNK.min(end - at);
        seg.file.write_at(at as u64, &zeros[..n]).map_err(io_err("zero torn tail of", &seg.path))?;
        at += n;
    }
    seg.file.sync().map_err(io_err("sync", &seg.path))
}
