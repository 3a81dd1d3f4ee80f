//! The in-memory index from sequence number to record position, and the
//! zero-copy [`Record`] handle readers get.

use std::{collections::VecDeque, fmt, sync::Arc};

use crate::{
    error::{Error, Result},
    layout::{RECORD_HEADER_BYTES, Slot, decode_record, record_bytes},
    segment::Segment,
};

/// The records of one segment that are durable and readable.
#[derive(Debug)]
pub(crate) struct IndexedSegment {
    pub(crate) segment: Arc<Segment>,
    pub(crate) first_seq: u64,
    /// Offset of record `first_seq + i` in the segment. Four bytes a record
    /// buys O(1) lookup; retention bounds how many are kept.
    pub(crate) offsets: Vec<u32>,
}

impl IndexedSegment {
    fn end_seq(&self) -> u64 {
        self.first_seq + self.offsets.len() as u64
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

    pub(crate) fn locate(&self, seq: u64) -> Option<(Arc<Segment>, u32)> {
        let pos = self.segments.partition_point(|s| s.end_seq() <= seq);
        let entry = self.segments.get(pos)?;
        let i = usize::try_from(seq.checked_sub(entry.first_seq)?).ok()?;
        entry.offsets.get(i).map(|&offset| (entry.segment.clone(), offset))
    }

    /// Publishes record `seq` at `offset` of `segment`; records arrive in order.
    pub(crate) fn push(&mut self, segment: &Arc<Segment>, seq: u64, offset: u32) {
        match self.segments.back_mut() {
            Some(last) if Arc::ptr_eq(&last.segment, segment) => {
                assert_eq!(last.end_seq(), seq, "records are published in order");
                last.offsets.push(offset);
            }
            last => {
                assert!(last.is_none_or(|l| l.end_seq() == seq), "records are published in order");
                self.segments.push_back(IndexedSegment {
                    segment: segment.clone(),
                    first_seq: seq,
                    offsets: vec![offset],
                });
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

impl Record {
    /// Reads and verifies the record at `offset` of `segment`, which must be
    /// published (see `mmap`). A mismatch is reported as damage.
    pub(crate) fn read(segment: Arc<Segment>, seq: u64, offset: u32) -> Result<Self> {
        let start = offset as usize;
        let damaged = |reason| Error::Corrupt { segment: segment.path.clone(), offset: u64::from(offset), seq, reason };
        let header = segment.map.bytes(start, start + RECORD_HEADER_BYTES);
        let payload_len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let end = start.saturating_add(record_bytes(payload_len));
        if end > segment.len() {
            return Err(damaged("record runs past the end of the segment"));
        }
        let (kind, payload_start) = match decode_record(segment.map.bytes(start, end), 0, segment.salt) {
            Slot::Record(h, _) if h.seq == seq => (h.kind, start + RECORD_HEADER_BYTES),
            Slot::Record(..) => return Err(damaged("record holds another sequence number")),
            Slot::Empty => return Err(damaged("record slot is empty")),
            Slot::Invalid(reason) => return Err(damaged(reason)),
        };
        Ok(Self { segment, seq, kind, payload_start, payload_len })
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
