//! Arbitrary bytes as a journal record of every kind, as replay would read
//! them from the write-ahead log (16-byte aligned, as the log places them).
//! The decoder must never panic; a record it reads as an event must write
//! back to a record that reads as the same event; a record of a kind it
//! does not know must be refused, never skipped.

#![no_main]

use ferrox::journal::{DecodeError, decode, decode_event, encode, known_kinds, message_payload};
use libfuzzer_sys::fuzz_target;
use rkyv::util::AlignedVec;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let mut bytes = AlignedVec::<16>::new();
    bytes.extend_from_slice(rest);
    let kinds = known_kinds();
    // Mostly known kinds; now and then any kind at all.
    let kind = match usize::from(pick) {
        p if p < 200 => kinds[p % kinds.len()],
        p => u16::from_le_bytes([p as u8, rest.first().copied().unwrap_or(0)]),
    };
    let _ = decode(kind, &bytes);
    let _ = message_payload(kind, &bytes);
    match decode_event(kind, &bytes) {
        Ok(event) => {
            let (again, written) = encode(&event).expect("a decoded event encodes");
            assert_eq!(decode_event(again, &written).as_ref(), Ok(&event), "the event did not survive a round trip");
        }
        Err(DecodeError::Unknown(text)) => {
            assert!(!kinds.contains(&kind), "a known kind {kind:#x} was called unknown: {text}");
        }
        Err(DecodeError::Invalid(_)) => {}
    }
});
