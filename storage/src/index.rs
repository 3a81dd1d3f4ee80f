//! The in-memory index from sequence number to record position, and the
//! zero-copy [`Record`] handle readers get.
//!
//! The index is sparse: per segment it keeps the number of published records
//! and the offset of every [`INDEX_STRIDE`]th one. Records lie back to back
//! in a segment, so a record between two kept offsets is found by walking
//! forward from the kept one before it, each header's payload length giving
//! the next record's offset. A lookup finds the kept offset under the index
//! lock and walks without it ([`Located`]); readers of consecutive records
//! carry each record's end to the next ([`Cursor`]) and walk nothing.

use std::{collections::VecDeque, fmt, sync::Arc};

use crate::{
    error::{Error, Result},
    layout::{RECORD_HEADER_BYTES, Slot, align_up, decode_record, peek_header, record_bytes},
    segment::Segment,
};

/// One record in this many has its offset kept in memory. The index then
/// costs 4 bytes per 32 records, an eighth of a byte a record (30 million
/// records take 3.75 MB, where an offset for every record would take
/// 120 MB), while a lookup steps over at most 31 headers; records lie back
/// to back, so for messages of a few hundred bytes those sit in a few
/// consecutive pages. Iteration steps over none.
pub(crate) const INDEX_STRIDE: u64 = 32;

const _: () = assert!(INDEX_STRIDE > 0);

/// The records of one segment that are durable and readable.
#[derive(Debug)]
pub(crate) struct IndexedSegment {
    pub(crate) segment: Arc<Segment>,
    pub(crate) first_seq: u64,
    /// How many records of the segment are published.
    len: u64,
    /// Offset of record `first_seq + i * INDEX_STRIDE` in the segment.
    kept: Vec<u32>,
}

impl IndexedSegment {
    /// An index of `segment` whose first record will be `first_seq`.
    pub(crate) fn new(segment: Arc<Segment>, first_seq: u64) -> Self {
        Self { segment, first_seq, len: 0, kept: Vec::new() }
    }

    /// Adds the segment's next record, which lies at `offset`.
    pub(crate) fn push(&mut self, offset: u32) {
        if self.len.is_multiple_of(INDEX_STRIDE) {
            self.kept.push(offset);
        }
        self.len += 1;
    }

    /// Gives back the spare capacity of the kept offsets: for a segment the
    /// log has rolled past, or one recovery has just scanned.
    pub(crate) fn shrink(&mut self) {
        self.kept.shrink_to_fit();
    }

    /// How many records are indexed.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    fn end_seq(&self) -> u64 {
        self.first_seq + self.len
    }

    /// Where record `seq` is, if this segment holds it. `start` is where a
    /// reader found that `seq` lies, if it knows.
    fn locate(&self, seq: u64, start: Option<&Successor>) -> Option<Located> {
        let i = seq.checked_sub(self.first_seq).filter(|&i| i < self.len)?;
        let (from_seq, from_offset) = match start {
            Some(s) if s.seq == seq && s.segment == self.segment.index => (seq, s.offset),
            _ => {
                let k = i / INDEX_STRIDE;
                (self.first_seq + k * INDEX_STRIDE, *self.kept.get(usize::try_from(k).ok()?)? as usize)
            }
        };
        Some(Located { segment: self.segment.clone(), seq, from_seq, from_offset })
    }
}

/// Every retained, durable record, in order.
#[derive(Debug, Default)]
pub(crate) struct Index {
    segments: VecDeque<IndexedSegment>,
}

impl Index {
    pub(crate) fn new(segments: Vec<IndexedSegment>) -> Self {
        Self { segments: segments.into() }
    }

    /// The first retained sequence number, if any record is retained.
    pub(crate) fn first_seq(&self) -> Option<u64> {
        self.segments.front().map(|s| s.first_seq)
    }

    /// Where record `seq` is, if it is retained and published. Cheap: the
    /// walk to the record is left to [`Located::read`], which the caller
    /// runs after releasing the index lock.
    pub(crate) fn locate(&self, seq: u64) -> Option<Located> {
        self.locate_from(seq, None)
    }

    fn locate_from(&self, seq: u64, start: Option<&Successor>) -> Option<Located> {
        let pos = self.segments.partition_point(|s| s.end_seq() <= seq);
        self.segments.get(pos)?.locate(seq, start)
    }

    /// Publishes record `seq` at `offset` of `segment`; records arrive in order.
    pub(crate) fn push(&mut self, segment: &Arc<Segment>, seq: u64, offset: u32) {
        match self.segments.back_mut() {
            Some(last) if Arc::ptr_eq(&last.segment, segment) => {
                assert_eq!(last.end_seq(), seq, "records are published in order");
                last.push(offset);
            }
            last => {
                assert!(last.as_ref().is_none_or(|l| l.end_seq() == seq), "records are published in order");
                // The log rolled: the previous segment is complete.
                if let Some(last) = last {
                    last.shrink();
                }
                let mut entry = IndexedSegment::new(segment.clone(), seq);
                entry.push(offset);
                self.segments.push_back(entry);
            }
        }
    }

    /// Removes the segments whose records all lie below `seq`, never the last
    /// one, and returns them.
    pub(crate) fn drain_below(&mut self, seq: u64) -> Vec<Arc<Segment>> {
        let mut removed = Vec::new();
        while self.segments.len() > 1 && self.segments[1].first_seq <= seq {
            if let Some(entry) = self.segments.pop_front() {
                removed.push(entry.segment);
            }
        }
        removed
    }

    /// How many segments `drain_below(seq)` would remove.
    pub(crate) fn count_below(&self, seq: u64) -> usize {
        self.segments.iter().skip(1).take_while(|s| s.first_seq <= seq).count()
    }

    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

/// One durable record, read in place from the segment's memory map.
///
/// Holding it keeps the segment mapped, even if retention deletes the file.
/// The payload starts 16-byte aligned, so archived data can be accessed
/// without copying.
pub struct Record {
    segment: Arc<Segment>,
    seq: u64,
    kind: u16,
    payload_start: usize,
    payload_len: usize,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("seq", &self.seq)
            .field("kind", &self.kind)
            .field("len", &self.payload_len)
            .finish()
    }
}

/// Record `seq` and a published record at or before it, in the same
/// segment, to walk from. Only the index makes one, so every record the
/// walk steps over was published before `seq`: written and unchanging.
#[derive(Debug)]
pub(crate) struct Located {
    segment: Arc<Segment>,
    seq: u64,
    from_seq: u64,
    from_offset: usize,
}

impl Located {
    /// Walks to the record and reads it, checking its CRC.
    pub(crate) fn read(self) -> Result<Record> {
        let offset = self.walk()?;
        Record::read(self.segment, self.seq, offset)
    }

    /// The offset of record `seq`, stepping over the headers of the records
    /// before it. Each header's sequence number is checked, not its CRC: a
    /// damaged length then shows one step later at the latest, and the
    /// record returned has its CRC checked by `Record::read`.
    fn walk(&self) -> Result<usize> {
        let mut offset = self.from_offset;
        for seq in self.from_seq..self.seq {
            let Some(head) = header_at(&self.segment, offset) else {
                return Err(damaged(&self.segment, offset, seq, "record runs past the end of the segment"));
            };
            let (found, payload_len) = peek_header(head);
            if found != seq {
                return Err(damaged(&self.segment, offset, seq, "record holds another sequence number"));
            }
            offset = offset.saturating_add(record_bytes(payload_len as usize));
        }
        Ok(offset)
    }
}

/// Where record `seq` lies if it is in the segment with index `segment`:
/// right after the record before it, which a reader has read. The segment
/// is named by index, not held, so an idle reader keeps no deleted segment
/// mapped; indices are never reused while a log is open.
#[derive(Debug, Clone)]
struct Successor {
    segment: u64,
    seq: u64,
    offset: usize,
}

/// Reads consecutive records, carrying each record's end to the next, so
/// that no lookup walks.
#[derive(Debug)]
pub(crate) struct Cursor {
    next: u64,
    successor: Option<Successor>,
}

impl Cursor {
    /// A cursor whose next record is `seq`.
    pub(crate) fn new(seq: u64) -> Self {
        Self { next: seq, successor: None }
    }

    /// Where the next record is, if `index` holds it yet.
    pub(crate) fn locate(&self, index: &Index) -> Option<Located> {
        index.locate_from(self.next, self.successor.as_ref())
    }

    /// Reads the record `locate` found and moves past it, even if it is
    /// damaged.
    pub(crate) fn read(&mut self, located: Located) -> Result<Record> {
        assert_eq!(located.seq, self.next, "a cursor reads the record it located");
        let record = located.read();
        self.successor = record.as_ref().ok().map(Record::successor);
        self.next += 1;
        record
    }
}

/// The header of the record at `offset`, if a header fits there.
fn header_at(segment: &Segment, offset: usize) -> Option<&[u8; RECORD_HEADER_BYTES]> {
    let end = offset.checked_add(RECORD_HEADER_BYTES).filter(|&end| end <= segment.len())?;
    segment.map.bytes(offset, end).try_into().ok()
}

fn damaged(segment: &Segment, offset: usize, seq: u64, reason: &'static str) -> Error {
    Error::Corrupt { segment: segment.path.clone(), offset: offset as u64, seq, reason }
}

impl Record {
    /// Reads and verifies the record at `offset` of `segment`, which must be
    /// published (see `mmap`). A mismatch is reported as damage.
    pub(crate) fn read(segment: Arc<Segment>, seq: u64, offset: usize) -> Result<Self> {
        let Some(head) = header_at(&segment, offset) else {
            return Err(damaged(&segment, offset, seq, "record runs past the end of the segment"));
        };
        let payload_len = peek_header(head).1 as usize;
        let end = offset.saturating_add(record_bytes(payload_len));
        if end > segment.len() {
            return Err(damaged(&segment, offset, seq, "record runs past the end of the segment"));
        }
        let kind = match decode_record(segment.map.bytes(offset, end), 0, segment.salt) {
            Slot::Record(h, _) if h.seq == seq => h.kind,
            Slot::Record(..) => return Err(damaged(&segment, offset, seq, "record holds another sequence number")),
            Slot::Empty => return Err(damaged(&segment, offset, seq, "record slot is empty")),
            Slot::Invalid(reason) => return Err(damaged(&segment, offset, seq, reason)),
        };
        Ok(Self { segment, seq, kind, payload_start: offset + RECORD_HEADER_BYTES, payload_len })
    }

    /// Where the record after this one lies, if it is in the same segment.
    fn successor(&self) -> Successor {
        let offset = self.payload_start + align_up(self.payload_len);
        Successor { segment: self.segment.index, seq: self.seq + 1, offset }
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn kind(&self) -> u16 {
        self.kind
    }

    pub fn payload(&self) -> &[u8] {
        self.segment.map.bytes(self.payload_start, self.payload_start + self.payload_len)
    }
}

impl AsRef<[u8]> for Record {
    fn as_ref(&self) -> &[u8] {
        self.payload()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{
        layout::{RecordHeader, SEGMENT_HEADER_BYTES, encode_record},
        sim::LazyDisk,
    };

    const S: u64 = INDEX_STRIDE;

    /// The payload of record `seq`: its length varies, so records differ in
    /// size and a walk must read each one's length.
    fn payload(seq: u64) -> Vec<u8> {
        vec![seq as u8 | 1; (seq * 7 % 45) as usize]
    }

    /// Segments on a lazy disk, their records published in an index as the
    /// log's writer would.
    struct Log {
        disk: LazyDisk,
        index: Index,
        /// The segment records go to, and where the next one goes in it.
        active: Option<(Arc<Segment>, usize)>,
        next_seq: u64,
        next_segment: u64,
        /// Segment index and offset of every record written, by sequence.
        places: Vec<(u64, usize)>,
    }

    impl Log {
        fn new(first_seq: u64) -> Self {
            let index = Index::default();
            Self {
                disk: LazyDisk::new(),
                index,
                active: None,
                next_seq: first_seq,
                next_segment: 1,
                places: Vec::new(),
            }
        }

        fn roll(&mut self) {
            let index = self.next_segment;
            let segment = Segment::create(&self.disk, Path::new("/wal"), index, 1 << 16, index * 2 + 1).unwrap();
            self.active = Some((segment, SEGMENT_HEADER_BYTES));
            self.next_segment += 1;
        }

        /// Writes `n` records to the active segment, then publishes them.
        fn append(&mut self, n: u64) {
            let Some((segment, offset)) = &mut self.active else { panic!("no segment yet") };
            let (start, first_seq) = (*offset, self.next_seq);
            let mut bytes = Vec::new();
            let mut offsets = Vec::new();
            for seq in first_seq..first_seq + n {
                offsets.push(start + bytes.len());
                let p = payload(seq);
                let header = RecordHeader { payload_len: p.len() as u32, seq, synced_through: seq - 1, kind: 1 };
                encode_record(&mut bytes, &header, segment.salt, &p);
            }
            segment.file.write_at(start as u64, &bytes).unwrap();
            *offset += bytes.len();
            for (seq, offset) in (first_seq..).zip(offsets) {
                self.index.push(segment, seq, offset as u32);
                self.places.push((segment.index, offset));
            }
            self.next_seq += n;
        }

        /// A new segment holding `n` records.
        fn segment_of(&mut self, n: u64) {
            self.roll();
            self.append(n);
        }

        fn first_written(&self) -> u64 {
            self.next_seq - self.places.len() as u64
        }

        fn offset(&self, seq: u64) -> usize {
            self.places[(seq - self.first_written()) as usize].1
        }

        fn read(&self, seq: u64) -> Option<Result<Record>> {
            self.index.locate(seq).map(Located::read)
        }

        /// Checks that every record of `seqs` is found, in its segment, and
        /// reads back whole.
        fn assert_reads_back(&self, seqs: std::ops::Range<u64>) {
            for seq in seqs {
                let located = self.index.locate(seq).unwrap_or_else(|| panic!("record {seq} is not located"));
                assert_eq!(located.segment.index, self.places[(seq - self.first_written()) as usize].0);
                let record = located.read().unwrap_or_else(|e| panic!("record {seq}: {e}"));
                assert_eq!((record.seq(), record.payload()), (seq, &payload(seq)[..]));
            }
        }

        /// Overwrites bytes of record `seq`'s header, as a failing disk might.
        fn damage(&self, seq: u64, at: usize, bytes: &[u8]) {
            let (segment_index, offset) = self.places[(seq - self.first_written()) as usize];
            let entry = self.index.segments.iter().find(|s| s.segment.index == segment_index).unwrap();
            entry.segment.file.write_at((offset + at) as u64, bytes).unwrap();
        }
    }

    #[test]
    fn locate_finds_every_record_across_stride_boundaries() {
        let mut log = Log::new(10);
        log.segment_of(3 * S + 5);
        log.assert_reads_back(10..10 + 3 * S + 5);
        // A kept record is read from its own offset; the one before the
        // next kept one walks the whole stride.
        for (seq, from_seq) in [(10, 10), (10 + S - 1, 10), (10 + S, 10 + S), (10 + 3 * S + 4, 10 + 3 * S)] {
            assert_eq!(log.index.locate(seq).unwrap().from_seq, from_seq, "record {seq}");
        }
        for absent in [0, 9, 10 + 3 * S + 5, u64::MAX] {
            assert!(log.index.locate(absent).is_none(), "record {absent} is not there");
        }
    }

    #[test]
    fn a_partial_last_stride_keeps_one_offset_and_reads_back() {
        for n in [1, 2, S - 1, S, S + 1, 2 * S, 2 * S + 7] {
            let mut log = Log::new(1);
            log.segment_of(n);
            let entry = &log.index.segments[0];
            assert_eq!(entry.len(), n);
            assert_eq!(entry.kept.len() as u64, n.div_ceil(S), "{n} records");
            log.assert_reads_back(1..n + 1);
            assert!(log.index.locate(n + 1).is_none());
        }
    }

    #[test]
    fn locate_crosses_segment_boundaries() {
        let mut log = Log::new(1);
        let counts = [S + 3, 1, 2 * S, S - 1];
        for n in counts {
            log.segment_of(n);
        }
        let end = 1 + counts.iter().sum::<u64>();
        log.assert_reads_back(1..end);
        // The first record of every segment is kept: nothing is walked there.
        let mut first = 1;
        for n in counts {
            assert_eq!(log.index.locate(first).unwrap().from_seq, first);
            first += n;
        }
        assert!(log.index.locate(end).is_none());
    }

    #[test]
    fn a_segment_filled_over_several_batches_is_indexed_like_one() {
        let mut log = Log::new(1);
        log.roll();
        for n in [1, S - 2, 3, S, 5] {
            log.append(n);
        }
        let n = 1 + (S - 2) + 3 + S + 5;
        assert_eq!(log.index.segments[0].kept.len() as u64, n.div_ceil(S));
        log.assert_reads_back(1..n + 1);
    }

    #[test]
    fn drain_below_removes_whole_segments_and_the_rest_stays_locatable() {
        let mut log = Log::new(1);
        let counts = [S + 3, 1, 2 * S, S - 1];
        for n in counts {
            log.segment_of(n);
        }
        let end = 1 + counts.iter().sum::<u64>();
        let second = 1 + counts[0];
        // Only the first segment lies wholly below the start of the second.
        assert_eq!(log.index.count_below(second), 1);
        let removed = log.index.drain_below(second);
        assert_eq!(removed.iter().map(|s| s.index).collect::<Vec<_>>(), [1]);
        assert_eq!(log.index.first_seq(), Some(second));
        assert!((1..second).all(|seq| log.index.locate(seq).is_none()));
        log.assert_reads_back(second..end);
        // A record in the middle of a segment keeps that segment.
        let third = second + counts[1];
        assert_eq!(log.index.drain_below(third + S + 1).len(), 1);
        log.assert_reads_back(third..end);
        // The last segment always stays, even below the checkpoint.
        assert_eq!(log.index.drain_below(u64::MAX).len(), 1);
        assert_eq!(log.index.segment_count(), 1);
        log.assert_reads_back(third + counts[2]..end);
    }

    #[test]
    fn a_cursor_carries_offsets_and_walks_nothing() {
        let mut log = Log::new(5);
        for n in [S + 3, 1, 2 * S] {
            log.segment_of(n);
        }
        let mut cursor = Cursor::new(5 + S / 2);
        let mut seq = cursor.next;
        while let Some(located) = cursor.locate(&log.index) {
            if seq > 5 + S / 2 {
                assert_eq!(located.from_seq, seq, "record {seq} is read where the one before ended");
            }
            let record = cursor.read(located).unwrap();
            assert_eq!((record.seq(), record.payload()), (seq, &payload(seq)[..]));
            seq += 1;
        }
        assert_eq!(seq, log.next_seq);
        // Records published later, in the same segment, follow on.
        log.append(S);
        let located = cursor.locate(&log.index).unwrap();
        assert_eq!(located.from_seq, seq);
        assert_eq!(cursor.read(located).unwrap().seq(), seq);
    }

    #[test]
    fn a_damaged_header_on_the_walk_is_reported_not_followed() {
        let mut log = Log::new(1);
        log.segment_of(2 * S);
        // Record 6's sequence number is changed: reading anything the walk
        // reaches through it names record 6.
        log.damage(6, 8, &99u64.to_le_bytes());
        for seq in [7, 12, S] {
            match log.read(seq) {
                Some(Err(Error::Corrupt { seq: 6, offset, .. })) => assert_eq!(offset as usize, log.offset(6)),
                other => panic!("record {seq}: expected damage at record 6, got {other:?}"),
            }
        }
        assert!(matches!(log.read(6), Some(Err(Error::Corrupt { seq: 6, .. }))));
        log.assert_reads_back(1..6);
        log.assert_reads_back(S + 1..2 * S + 1);
    }

    #[test]
    fn a_damaged_length_on_the_walk_is_damage_not_a_panic() {
        let mut log = Log::new(1);
        log.segment_of(S);
        log.damage(3, 4, &u32::MAX.to_le_bytes());
        for seq in [4, 5, S] {
            assert!(matches!(log.read(seq), Some(Err(Error::Corrupt { .. }))), "record {seq}");
        }
        // A length that stays inside the segment is caught by the next
        // header's sequence number.
        let mut log = Log::new(1);
        log.segment_of(S);
        log.damage(3, 4, &(payload(3).len() as u32 + 16).to_le_bytes());
        assert!(matches!(log.read(5), Some(Err(Error::Corrupt { seq: 4, .. }))));
    }
}
