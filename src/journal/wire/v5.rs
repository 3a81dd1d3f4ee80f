//! Format 5: destinations' ordered lanes (SPEC §18). Frozen once released,
//! like the formats before it.
//!
//! - `DestinationUpserted` version 4: version 3's destination, its
//!   `fifo_key` (the path as written) and `max_in_flight`.
//! - `ConfigurationApplied` version 4: version 3's, with destinations of
//!   version 4.
//! - `Snapshot` version 5: version 4's, with the lanes of the destinations
//!   that have them beside it, by destination ID.

use rkyv::{Archive, Serialize, rancor, util::AlignedVec};

use super::{v1, v3, v4};
use crate::{
    journal::{ConfigBatch, Event, Replayed, Snapshot as DomainSnapshot},
    lanes::FifoKey,
    model::{self, Id},
};

type Decoded<T> = Result<T, String>;

#[derive(Archive, Serialize)]
pub struct Lanes {
    /// The path as written; parsed again when read.
    pub fifo_key: Option<String>,
    pub max_in_flight: u8,
}

#[derive(Archive, Serialize)]
pub struct Destination {
    pub base: v4::Destination,
    pub lanes: Lanes,
}

#[derive(Archive, Serialize)]
pub struct ConfigurationApplied {
    pub origin: String,
    pub sources: Vec<v3::Source>,
    pub destinations: Vec<Destination>,
    pub subscriptions: Vec<v1::Subscription>,
}

#[derive(Archive, Serialize)]
pub struct Snapshot {
    pub base: v4::Snapshot,
    /// Only the destinations with a key or more than one log in flight.
    pub lanes: Vec<DestinationLanes>,
}

#[derive(Archive, Serialize)]
pub struct DestinationLanes {
    pub id: u128,
    pub lanes: Lanes,
}

fn lanes(d: &model::Destination) -> Lanes {
    Lanes { fifo_key: d.fifo_key.as_ref().map(|k| k.as_str().to_owned()), max_in_flight: d.max_in_flight }
}

/// Sets `d`'s lanes from their record. A key that no longer parses (it
/// was accepted when written, so only damage makes it fail) is an error.
fn set_lanes(d: &mut model::Destination, a: &ArchivedLanes) -> Decoded<()> {
    d.fifo_key = a
        .fifo_key
        .as_ref()
        .map(|k| FifoKey::parse(k.as_str()))
        .transpose()
        .map_err(|e| format!("destination {}: {e}", d.id))?;
    d.max_in_flight = a.max_in_flight.max(1);
    Ok(())
}

fn destination(d: &model::Destination) -> Destination {
    Destination { base: v4::destination(d), lanes: lanes(d) }
}

fn from_destination(a: &ArchivedDestination) -> Decoded<model::Destination> {
    let mut d = v4::from_destination(&a.base)?;
    set_lanes(&mut d, &a.lanes)?;
    Ok(d)
}

fn snapshot(s: &DomainSnapshot) -> Result<Snapshot, rancor::Error> {
    let kept = s
        .destinations
        .iter()
        .filter(|d| d.fifo_key.is_some() || d.max_in_flight != 1)
        .map(|d| DestinationLanes { id: d.id.0, lanes: lanes(d) })
        .collect();
    Ok(Snapshot { base: v4::snapshot(s)?, lanes: kept })
}

fn from_snapshot(a: &ArchivedSnapshot) -> Decoded<DomainSnapshot> {
    let mut s = v4::from_snapshot(&a.base)?;
    for kept in a.lanes.iter() {
        let id = Id(kept.id.to_native());
        let destination = s.destinations.iter_mut().find(|d| d.id == id);
        let destination = destination.ok_or_else(|| format!("lanes for destination {id}, which the snapshot lacks"))?;
        set_lanes(destination, &kept.lanes)?;
    }
    Ok(s)
}

/// The type, version and bytes of `event` if format 5 writes it.
pub fn encode(event: &Event) -> Option<Result<(u8, u8, AlignedVec), rancor::Error>> {
    use v1::types::*;
    let written = |type_code: u8, version: u8, bytes: Result<AlignedVec, rancor::Error>| {
        Some(bytes.map(|b| (type_code, version, b)))
    };
    match event {
        Event::DestinationUpserted(d) => written(DESTINATION_UPSERTED, 4, v1::to_bytes(&destination(d))),
        Event::ConfigurationApplied(batch) => {
            let record = ConfigurationApplied {
                origin: batch.origin.clone(),
                sources: batch.sources.iter().map(v3::source).collect(),
                destinations: batch.destinations.iter().map(destination).collect(),
                subscriptions: batch.subscriptions.iter().map(v1::subscription).collect(),
            };
            written(CONFIGURATION_APPLIED, 4, v1::to_bytes(&record))
        }
        Event::Snapshot(s) => written(SNAPSHOT, 5, snapshot(s).and_then(|s| v1::to_bytes(&s))),
        _ => None,
    }
}

/// Reads a record of format 5's: `None` if it is not one.
pub fn decode(type_code: u8, version: u8, bytes: &[u8]) -> Option<Decoded<Replayed<'static>>> {
    use v1::types::*;
    let access = |f: fn(&[u8]) -> Decoded<Event>| Some(f(bytes).map(Replayed::Event));
    match (type_code, version) {
        (DESTINATION_UPSERTED, 4) => access(|b| {
            v1::decode_access::<ArchivedDestination>(b).and_then(from_destination).map(Event::DestinationUpserted)
        }),
        (CONFIGURATION_APPLIED, 4) => access(|b| {
            let c = v1::decode_access::<ArchivedConfigurationApplied>(b)?;
            Ok(Event::ConfigurationApplied(ConfigBatch {
                origin: c.origin.to_string(),
                sources: c.sources.iter().map(v3::from_source).collect(),
                destinations: c.destinations.iter().map(from_destination).collect::<Decoded<_>>()?,
                subscriptions: c.subscriptions.iter().map(v1::from_subscription).collect(),
            }))
        }),
        (SNAPSHOT, 5) => {
            access(|b| v1::decode_access::<ArchivedSnapshot>(b).and_then(from_snapshot).map(Event::Snapshot))
        }
        _ => None,
    }
}

/// Every kind format 5 added: (type, version).
pub const KINDS: [(u8, u8); 3] =
    [(v1::types::DESTINATION_UPSERTED, 4), (v1::types::CONFIGURATION_APPLIED, 4), (v1::types::SNAPSHOT, 5)];

/// Writes version 4 of the snapshot, for tests that read it back: the
/// current build writes version 5.
#[cfg(test)]
pub fn encode_v4_snapshot(s: &DomainSnapshot) -> Result<AlignedVec, rancor::Error> {
    v4::snapshot(s).and_then(|s| v1::to_bytes(&s))
}
