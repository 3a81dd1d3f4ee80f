//! The journal's records on disk: each event's versioned wire form, and
//! the conversions to and from the engine's events.
//!
//! # Record kinds
//!
//! A record's kind (the WAL's 16-bit kind field) names its type and the
//! version of that type: `kind = type << 8 | version`. Each type has its
//! own version, so one record type can change without the others.
//!
//! | type | record | versions |
//! |---|---|---|
//! | 0 | format 0: kind 1 any event but a snapshot, kind 2 a snapshot (one rkyv enum, before versioning) | read only |
//! | 1 | `SourceUpserted` | 1, 2 (2 adds `alert_emails`) |
//! | 2 | `SourceDeleted` | 1 |
//! | 3 | `DestinationUpserted` | 1, 2 (2 adds `alert_emails`, `alert_depth`, `alert_age_ms`), 3 (3 adds the client certificate) |
//! | 4 | `DestinationDeleted` | 1 |
//! | 5 | `SubscriptionUpserted` | 1 |
//! | 6 | `SubscriptionDeleted` | 1 |
//! | 7 | `ConfigurationApplied` | 1, 2 (2 holds sources and destinations of version 2), 3 (3 holds destinations of version 3) |
//! | 8 | `TokenKeyCreated` | 1 |
//! | 9 | `MessageAccepted` | 1 |
//! | 10 | `AttemptRecorded` | 1 |
//! | 11 | `LogStatusChanged` | 1 |
//! | 12 | `QueuePaused` | 1 |
//! | 13 | `QueueResumed` | 1 |
//! | 14 | `AlertRaised` | 1, 2 (2 may be `QueueBacklog`) |
//! | 15 | `AlertChannelOpened` | 1 |
//! | 16 | `AlertSent` | 1 |
//! | 17 | `Snapshot` | 1, 2 (2 adds the audit trail), 3 (3 adds alert settings, operators, backlogged queues), 4 (4 adds destinations' client certificates) |
//! | 18 | `AlertChannelClosed` | 1 |
//! | 19 | `AuditRecorded` | 1 |
//! | 20 | `OperatorUpserted` | 1 |
//! | 21 | `OperatorDeleted` | 1 |
//! | 22 | `LogsResent` | 1 |
//! | 23 | `DeliveryTaken` | 1 (written by cluster nodes only) |
//!
//! Format 1 is every type's version 1; format 2 added snapshot version 2
//! and type 19 (`v2`); format 3 operators, resent logs and alert settings
//! (`v3`); format 4 destinations' client certificates (`v4`); format 5
//! destinations' ordered lanes (`v5`); format 6 the takeover records that
//! fence cluster nodes (`v6`).
//!
//! # How the format evolves
//!
//! - The wire types are not the engine's types. Each version of a record
//!   type is a frozen rkyv type in the module of its version (`v0`, `v1`,
//!   ...), with explicit conversions: identifiers are `u128`, enums are
//!   one-byte codes chosen here, never a Rust discriminant.
//! - A change to a record's fields makes a new version of that type, in a
//!   new module; the old version's types stay, unchanged, to read what was
//!   written with them, and convert to the current events. Writers write
//!   only the newest version of each type.
//! - A new kind of record is a new type code.
//! - Reading never skips: a record whose type or version this build does
//!   not know stops the start with a message naming it (it was written by a
//!   newer ferrox), and a record that does not decode is an error naming
//!   its position. An event that cannot be encoded is an error, never an
//!   empty record.
//! - Every release that changes the format checks a data directory written
//!   with it into `tests/golden/` (made by `examples/make_golden/`), and
//!   the current build must start on every one of them with everything
//!   intact.

mod v0;
mod v1;
mod v2;
mod v3;
mod v4;
mod v5;
mod v6;

pub use self::v3::RESENT_LOG_BYTES;

use rkyv::util::AlignedVec;

use super::event::{Event, Replayed};

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A type or version this build does not know.
    #[error("{0}")]
    Unknown(String),
    /// A known kind whose bytes are not a valid record of it.
    #[error("not a valid record: {0}")]
    Invalid(String),
}

/// The record types' names, by type code.
const V1_NAMES: [&str; 23] = [
    "SourceUpserted",
    "SourceDeleted",
    "DestinationUpserted",
    "DestinationDeleted",
    "SubscriptionUpserted",
    "SubscriptionDeleted",
    "ConfigurationApplied",
    "TokenKeyCreated",
    "MessageAccepted",
    "AttemptRecorded",
    "LogStatusChanged",
    "QueuePaused",
    "QueueResumed",
    "AlertRaised",
    "AlertChannelOpened",
    "AlertSent",
    "Snapshot",
    "AlertChannelClosed",
    "AuditRecorded",
    "OperatorUpserted",
    "OperatorDeleted",
    "LogsResent",
    "DeliveryTaken",
];

fn kind_of(type_code: u8, version: u8) -> u16 {
    u16::from(type_code) << 8 | u16::from(version)
}

fn split(kind: u16) -> (u8, u8) {
    ((kind >> 8) as u8, (kind & 0xff) as u8)
}

/// A record kind in words: its type and version.
pub fn describe_kind(kind: u16) -> String {
    match (kind, split(kind)) {
        (v0::EVENT_KIND, _) => "format-0 event".to_owned(),
        (v0::SNAPSHOT_KIND, _) => "format-0 snapshot".to_owned(),
        (_, (type_code, version)) => {
            let name = usize::from(type_code).checked_sub(1).and_then(|i| V1_NAMES.get(i));
            match name {
                Some(name) => format!("{name} version {version} (kind {kind:#06x})"),
                None => format!("record type {type_code} version {version} (kind {kind:#06x})"),
            }
        }
    }
}

/// The newest wire form of `event`: its record kind and bytes.
pub fn encode(event: &Event) -> Result<(u16, AlignedVec), String> {
    let failed = |e: rkyv::rancor::Error| format!("encoding {}: {e}", event_name(event));
    if let Some(written) =
        v6::encode(event).or_else(|| v5::encode(event)).or_else(|| v4::encode(event)).or_else(|| v3::encode(event))
    {
        let (type_code, version, bytes) = written.map_err(failed)?;
        return Ok((kind_of(type_code, version), bytes));
    }
    match v1::encode(event) {
        Some(written) => {
            let (type_code, bytes) = written.map_err(failed)?;
            Ok((kind_of(type_code, 1), bytes))
        }
        None => Err(format!("no record type is written for {}", event_name(event))),
    }
}

/// The name of an event's type, as its record kind is named.
pub fn event_name(event: &Event) -> &'static str {
    match event {
        Event::SourceUpserted(_) => "SourceUpserted",
        Event::SourceDeleted { .. } => "SourceDeleted",
        Event::DestinationUpserted(_) => "DestinationUpserted",
        Event::DestinationDeleted { .. } => "DestinationDeleted",
        Event::SubscriptionUpserted(_) => "SubscriptionUpserted",
        Event::SubscriptionDeleted { .. } => "SubscriptionDeleted",
        Event::ConfigurationApplied(_) => "ConfigurationApplied",
        Event::TokenKeyCreated { .. } => "TokenKeyCreated",
        Event::MessageAccepted(_) => "MessageAccepted",
        Event::AttemptRecorded { .. } => "AttemptRecorded",
        Event::LogStatusChanged { .. } => "LogStatusChanged",
        Event::QueuePaused { .. } => "QueuePaused",
        Event::QueueResumed { .. } => "QueueResumed",
        Event::AlertRaised(_) => "AlertRaised",
        Event::AlertChannelOpened { .. } => "AlertChannelOpened",
        Event::AlertChannelClosed { .. } => "AlertChannelClosed",
        Event::AlertSent { .. } => "AlertSent",
        Event::Audited(_) => "AuditRecorded",
        Event::OperatorUpserted(_) => "OperatorUpserted",
        Event::OperatorDeleted { .. } => "OperatorDeleted",
        Event::LogsResent(_) => "LogsResent",
        Event::Snapshot(_) => "Snapshot",
        Event::DeliveryTaken { .. } => "DeliveryTaken",
    }
}

fn unknown(kind: u16) -> DecodeError {
    DecodeError::Unknown(format!(
        "{} is not known to this build of ferrox (it was written by a newer one: run that version or later)",
        describe_kind(kind)
    ))
}

/// Reads a record of `kind`: a message borrowed in place, or an event.
pub fn decode(kind: u16, bytes: &[u8]) -> Result<Replayed<'_>, DecodeError> {
    match (kind, split(kind)) {
        (v0::EVENT_KIND | v0::SNAPSHOT_KIND, _) => v0::decode(kind, bytes).map_err(DecodeError::Invalid),
        (_, (type_code, 1)) if type_code < v3::types::OPERATOR_UPSERTED => {
            v1::decode(type_code, bytes).ok_or_else(|| unknown(kind))?.map_err(DecodeError::Invalid)
        }
        (_, (v1::types::SNAPSHOT, 2)) => v2::decode_snapshot(bytes).map(Replayed::Event).map_err(DecodeError::Invalid),
        (_, (type_code, version)) => v6::decode(type_code, version, bytes)
            .or_else(|| v5::decode(type_code, version, bytes))
            .or_else(|| v4::decode(type_code, version, bytes))
            .or_else(|| v3::decode(type_code, version, bytes))
            .ok_or_else(|| unknown(kind))?
            .map_err(DecodeError::Invalid),
    }
}

/// Reads a record of `kind` as an event, a message with its body.
pub fn decode_event(kind: u16, bytes: &[u8]) -> Result<Event, DecodeError> {
    match (kind, split(kind)) {
        (v0::EVENT_KIND | v0::SNAPSHOT_KIND, _) => v0::decode_owned(kind, bytes).map_err(DecodeError::Invalid),
        (_, (v1::types::MESSAGE_ACCEPTED, 1)) => {
            v1::accepted(bytes).map(Event::MessageAccepted).map_err(DecodeError::Invalid)
        }
        _ => match decode(kind, bytes)? {
            Replayed::Event(event) => Ok(event),
            Replayed::Message(_) => Err(DecodeError::Invalid("a message read as another event".to_owned())),
        },
    }
}

/// Whether records of `kind` are snapshots (told by the kind alone, so
/// start-up finds the last one by reading record headers).
pub fn is_snapshot(kind: u16) -> bool {
    kind == v0::SNAPSHOT_KIND || split(kind).0 == v1::types::SNAPSHOT
}

/// The request body of a message record, read in place.
pub fn message_payload(kind: u16, bytes: &[u8]) -> Result<&[u8], DecodeError> {
    match (kind, split(kind)) {
        (v0::EVENT_KIND, _) => v0::message_payload(bytes).map_err(DecodeError::Invalid),
        (_, (v1::types::MESSAGE_ACCEPTED, 1)) => v1::message_payload(bytes).map_err(DecodeError::Invalid),
        _ => Err(DecodeError::Invalid(format!("{} is not a message", describe_kind(kind)))),
    }
}

/// Every record kind this build reads, for tests and fuzzing.
pub fn known_kinds() -> Vec<u16> {
    let mut kinds = vec![v0::EVENT_KIND, v0::SNAPSHOT_KIND];
    kinds.extend((1..v3::types::OPERATOR_UPSERTED).map(|t| kind_of(t, 1)));
    kinds.push(kind_of(v1::types::SNAPSHOT, 2));
    kinds.extend(v3::KINDS.iter().chain(&v4::KINDS).chain(&v5::KINDS).chain(&v6::KINDS).map(|&(t, v)| kind_of(t, v)));
    kinds
}

#[cfg(test)]
mod tests;
