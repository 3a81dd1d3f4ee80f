//! Version 2 of the snapshot (type 17): version 1's snapshot and the audit
//! trail within retention (SPEC §12). Frozen once released, like `v1`.

use rkyv::{Archive, Serialize, rancor, util::AlignedVec};

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

pub fn encode_snapshot(s: &DomainSnapshot) -> Result<AlignedVec, rancor::Error> {
    let audit = s.audit.iter().map(|(position, e)| AuditKept { position: *position, entry: v1::audit(e) }).collect();
    v1::to_bytes(&Snapshot { base: v1::snapshot(s), audit })
}

pub fn decode_snapshot(bytes: &[u8]) -> Decoded<Event> {
    let a = v1::decode_access::<ArchivedSnapshot>(bytes)?;
    let mut snapshot = v1::from_snapshot(&a.base)?;
    snapshot.audit = a.audit.iter().map(|k| (k.position.to_native(), v1::from_audit(&k.entry))).collect();
    Ok(Event::Snapshot(snapshot))
}
