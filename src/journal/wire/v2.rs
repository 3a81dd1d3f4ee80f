//! Version 2 of the snapshot (type 17): version 1's snapshot and the audit
//! trail within retention (SPEC §12). Frozen once released, like `v1`;
//! read, and nested in version 3 (`v3`).

use rkyv::{Archive, Serialize};

use super::v1;
use crate::journal::{Event, Snapshot as DomainSnapshot};

type Decoded<T> = Result<T, String>;

#[derive(Archive, Serialize)]
pub struct Snapshot {
    pub base: v1::Snapshot,
    pub audit: Vec<AuditKept>,
}

/// An audit entry and the position it was journaled at.
#[derive(Archive, Serialize)]
pub struct AuditKept {
    pub position: u64,
    pub entry: v1::AuditRecorded,
}

pub fn snapshot(s: &DomainSnapshot) -> Snapshot {
    let audit = s.audit.iter().map(|(position, e)| AuditKept { position: *position, entry: v1::audit(e) }).collect();
    Snapshot { base: v1::snapshot(s), audit }
}

/// Writes version 2, for tests that read it back: the current build writes version 3.
#[cfg(test)]
pub fn encode_snapshot(s: &DomainSnapshot) -> Result<rkyv::util::AlignedVec, rkyv::rancor::Error> {
    v1::to_bytes(&snapshot(s))
}

pub fn from_snapshot(a: &ArchivedSnapshot) -> Decoded<DomainSnapshot> {
    let mut snapshot = v1::from_snapshot(&a.base)?;
    snapshot.audit = a.audit.iter().map(|k| (k.position.to_native(), v1::from_audit(&k.entry))).collect();
    Ok(snapshot)
}

pub fn decode_snapshot(bytes: &[u8]) -> Decoded<Event> {
    v1::decode_access::<ArchivedSnapshot>(bytes).and_then(from_snapshot).map(Event::Snapshot)
}
