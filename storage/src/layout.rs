//! Byte layout of segment headers and records, and their encoding.
//!
//! Everything on disk is little-endian and built from fixed-width integers;
//! no `usize` is ever written. See the crate docs for the tables.

use crate::crc;

/// Magic bytes at the start of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"FRXWAL\0\x01";
/// Version of the on-disk format written by this crate.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Bytes reserved at the start of every segment for its header.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Bytes of every record header.
pub const RECORD_HEADER_BYTES: usize = 32;
/// Records start at, and payloads are padded to, this alignment so archived
/// data can be read in place.
pub const RECORD_ALIGN: usize = 16;
/// Constant at bytes 26..28 of every record header, so that a header of zeros
/// (a never-written slot) can never parse as a record.
pub(crate) const RECORD_MARKER: u16 = 0x5752;

const _: () = assert!(SEGMENT_HEADER_BYTES.is_multiple_of(RECORD_ALIGN));
const _: () = assert!(RECORD_HEADER_BYTES.is_multiple_of(RECORD_ALIGN));
const _: () = assert!(RECORD_ALIGN.is_power_of_two());

/// Rounds `n` up to the record alignment.
pub(crate) const fn align_up(n: usize) -> usize {
    (n + RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1)
}

/// Bytes a record with a `payload_len`-byte payload occupies in a segment.
pub(crate) const fn record_bytes(payload_len: usize) -> usize {
    RECORD_HEADER_BYTES + align_up(payload_len)
}

/// The fixed header at offset 0 of every segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// Position of the segment in the log; also its file name.
    pub index: u64,
    /// Size of the segment file.
    pub segment_bytes: u64,
    /// Random per-segment value mixed into every record's CRC, so a record
    /// copied or left over from another segment never validates here.
    pub salt: u64,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut out = [0u8; SEGMENT_HEADER_BYTES];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&(SEGMENT_HEADER_BYTES as u32).to_le_bytes());
        out[16..24].copy_from_slice(&self.index.to_le_bytes());
        out[24..32].copy_from_slice(&self.segment_bytes.to_le_bytes());
        out[32..40].copy_from_slice(&self.salt.to_le_bytes());
        let crc = crc32fast::hash(&out[0..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(Self::decode(&out), Ok(*self));
        out
    }

    /// Parses and verifies a segment header; the error says what is wrong.
    pub(crate) fn decode(buf: &[u8]) -> Result<Self, &'static str> {
        let Some(buf) = buf.get(..SEGMENT_HEADER_BYTES) else {
            return Err("file shorter than a segment header");
        };
        if buf[0..8] != SEGMENT_MAGIC {
            return Err("bad segment magic");
        }
        if u32_at(buf, 60) != crc32fast::hash(&buf[0..60]) {
            return Err("segment header CRC mismatch");
        }
        if u32_at(buf, 8) != FORMAT_VERSION {
            return Err("unsupported segment format version");
        }
        if u32_at(buf, 12) as usize != SEGMENT_HEADER_BYTES {
            return Err("unexpected segment header size");
        }
        if buf[40..60].iter().any(|&b| b != 0) {
            return Err("reserved segment header bytes are not zero");
        }
        Ok(Self { index: u64_at(buf, 16), segment_bytes: u64_at(buf, 24), salt: u64_at(buf, 32) })
    }
}

/// The metadata of one record, as framed in its 32-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub payload_len: u32,
    pub seq: u64,
    /// The highest sequence number known durable when this record was
    /// written. A later record vouching for an earlier one is how recovery
    /// tells damage to acknowledged data from a torn tail.
    pub synced_through: u64,
    pub kind: u16,
}

/// What a slot in a segment holds.
#[derive(Debug)]
pub(crate) enum Slot<'a> {
    /// An all-zero header: nothing was ever written here.
    Empty,
    /// A complete record whose CRC matches.
    Record(RecordHeader, &'a [u8]),
    /// Bytes that are not a valid record; the text says why.
    Invalid(&'static str),
}

/// Writes the header and padded payload of a record to the end of `out`.
pub(crate) fn encode_record(out: &mut Vec<u8>, header: &RecordHeader, salt: u64, payload: &[u8]) {
    assert_eq!(header.payload_len as usize, payload.len());
    assert!(header.seq > 0 && header.kind > 0);
    let start = out.len();
    let mut head = [0u8; RECORD_HEADER_BYTES];
    head[4..8].copy_from_slice(&header.payload_len.to_le_bytes());
    head[8..16].copy_from_slice(&header.seq.to_le_bytes());
    head[16..24].copy_from_slice(&header.synced_through.to_le_bytes());
    head[24..26].copy_from_slice(&header.kind.to_le_bytes());
    head[26..28].copy_from_slice(&RECORD_MARKER.to_le_bytes());
    let crc = crc::record(&head[4..], salt, payload);
    head[0..4].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    out.resize(start + record_bytes(payload.len()), 0);
    debug_assert!(matches!(decode_record(&out[start..], 0, salt), Slot::Record(h, p) if h == *header && p == payload));
}

/// Decodes the slot at `offset` of a segment's bytes `buf`.
///
/// Never panics and never allocates, whatever `buf` holds: every length is
/// checked against the buffer before it is used.
pub(crate) fn decode_record(buf: &[u8], offset: usize, salt: u64) -> Slot<'_> {
    let Some(head) = offset.checked_add(RECORD_HEADER_BYTES).and_then(|end| buf.get(offset..end)) else {
        // Too little room left for a header: the writer never puts a record
        // there, so for the scan this is the end of the segment.
        return if buf.get(offset..).is_some_and(is_zero) {
            Slot::Empty
        } else {
            Slot::Invalid("bytes after the last record slot")
        };
    };
    if is_zero(head) {
        return Slot::Empty;
    }
    if u16_at(head, 26) != RECORD_MARKER {
        return Slot::Invalid("bad record marker");
    }
    if u32_at(head, 28) != 0 {
        return Slot::Invalid("reserved record bytes are not zero");
    }
    let header = RecordHeader {
        payload_len: u32_at(head, 4),
        seq: u64_at(head, 8),
        synced_through: u64_at(head, 16),
        kind: u16_at(head, 24),
    };
    if header.seq == 0 || header.kind == 0 {
        return Slot::Invalid("zero sequence number or kind");
    }
    let payload_start = offset + RECORD_HEADER_BYTES;
    let padded = align_up(header.payload_len as usize);
    let Some(body) = payload_start.checked_add(padded).and_then(|end| buf.get(payload_start..end)) else {
        return Slot::Invalid("record runs past the end of the segment");
    };
    let (payload, padding) = body.split_at(header.payload_len as usize);
    if crc::record(&head[4..], salt, payload) != u32_at(head, 0) {
        return Slot::Invalid("record CRC mismatch");
    }
    if !is_zero(padding) {
        return Slot::Invalid("record padding is not zero");
    }
    Slot::Record(header, payload)
}

/// The sequence number and payload length of the record header `head`,
/// unchecked: no CRC, marker or reserved bytes. Only for stepping over
/// records that recovery verified or this process wrote, and that are
/// published, to find the one after; the record finally returned is
/// checked in full by [`decode_record`].
pub(crate) fn peek_header(head: &[u8; RECORD_HEADER_BYTES]) -> (u64, u32) {
    (u64_at(head, 8), u32_at(head, 4))
}

/// Whether every byte of `buf` is zero. Written over 16-byte words so it
/// vectorizes: recovery runs it over the unused tail of every segment.
pub(crate) fn is_zero(buf: &[u8]) -> bool {
    let mut chunks = buf.chunks_exact(16);
    let words_zero =
        chunks.by_ref().fold(0u128, |acc, c| acc | u128::from_ne_bytes(c.try_into().unwrap_or([1; 16]))) == 0;
    words_zero && chunks.remainder().iter().all(|&b| b == 0)
}

/// The offset just past the last non-zero byte of `buf[from..]`, if any.
pub(crate) fn last_nonzero_end(buf: &[u8], from: usize) -> Option<usize> {
    let tail = buf.get(from..)?;
    tail.iter().rposition(|&b| b != 0).map(|p| from + p + 1)
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([buf[at], buf[at + 1]])
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(seq: u64, kind: u16, payload: &[u8], salt: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let header = RecordHeader { payload_len: payload.len() as u32, seq, synced_through: seq - 1, kind };
        encode_record(&mut out, &header, salt, payload);
        out
    }

    #[test]
    fn record_round_trips_and_is_aligned() {
        for len in [0usize, 1, 15, 16, 17, 255, 1024] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            let buf = encoded(9, 3, &payload, 42);
            assert_eq!(buf.len(), record_bytes(len));
            assert_eq!(buf.len() % RECORD_ALIGN, 0);
            match decode_record(&buf, 0, 42) {
                Slot::Record(h, p) => {
                    assert_eq!((h.seq, h.kind, h.synced_through, p), (9, 3, 8, &payload[..]));
                }
                other => panic!("expected a record, got {other:?}"),
            }
        }
    }

    #[test]
    fn zero_header_is_empty_never_a_record() {
        let zeros = [0u8; 64];
        assert!(matches!(decode_record(&zeros, 0, 0), Slot::Empty));
        assert!(matches!(decode_record(&zeros, 0, 7), Slot::Empty));
    }

    #[test]
    fn wrong_salt_fails_crc() {
        let buf = encoded(1, 1, b"hello", 1);
        assert!(matches!(decode_record(&buf, 0, 2), Slot::Invalid("record CRC mismatch")));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let buf = encoded(5, 2, b"an admission message", 99);
        for bit in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(!matches!(decode_record(&bad, 0, 99), Slot::Record(..)), "flip of bit {bit} went unnoticed");
        }
    }

    #[test]
    fn huge_length_is_invalid_not_a_panic() {
        let mut buf = encoded(1, 1, b"x", 5);
        buf[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_record(&buf, 0, 5), Slot::Invalid(_)));
        assert!(matches!(decode_record(&buf, usize::MAX - 3, 5), Slot::Empty | Slot::Invalid(_)));
    }

    #[test]
    fn segment_header_round_trips_and_detects_damage() {
        let header = SegmentHeader { index: 3, segment_bytes: 1 << 20, salt: 0xfeed };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        let mut bad = bytes;
        bad[20] ^= 1;
        assert!(SegmentHeader::decode(&bad).is_err());
        assert!(SegmentHeader::decode(&[0u8; 64]).is_err());
        assert!(SegmentHeader::decode(&bytes[..10]).is_err());
    }

    #[test]
    fn zero_checks() {
        assert!(is_zero(&[0u8; 100]));
        let mut b = [0u8; 100];
        b[99] = 1;
        assert!(!is_zero(&b));
        assert_eq!(last_nonzero_end(&b, 10), Some(100));
        assert_eq!(last_nonzero_end(&[0u8; 8], 0), None);
    }
}
