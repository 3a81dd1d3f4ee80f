//! The record checksum: CRC-32 (IEEE, via crc32fast) over the header fields,
//! the segment salt and the payload.

/// CRC of a record: `fields` are header bytes 4..32 (length, sequence
/// number, synced-through, kind, marker, reserved), then the segment's salt,
/// then the payload. The salt makes an otherwise all-zero input hash to a
/// non-trivial value and ties the record to the segment it was written in.
pub(crate) fn record(fields: &[u8], salt: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(fields);
    hasher.update(&salt.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}
