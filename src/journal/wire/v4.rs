//! Format 4: destinations' client certificates for mutual TLS (SPEC §16).
//! Frozen once released, like the formats before it.
//!
//! - `DestinationUpserted` version 3: version 2's destination and its
//!   client certificate, if any.
//! - `ConfigurationApplied` version 3: version 2's, with destinations of
//!   version 3.
//! - `Snapshot` version 4: version 3's, with the destinations' client
//!   certificates beside it, by destination ID.

use rkyv::{Archive, Serialize, rancor, util::AlignedVec};

use super::{v1, v3};
use crate::{
    journal::{ConfigBatch, Event, Replayed, Snapshot as DomainSnapshot},
    model::{self, Id},
};

type Decoded<T> = Result<T, String>;

/// The paths of a client certificate's PEM files: both, always.
#[derive(Archive, Serialize)]
pub struct ClientCert {
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Archive, Serialize)]
pub struct Destination {
    pub base: v3::Destination,
    pub client_cert: Option<ClientCert>,
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
    pub base: v3::Snapshot,
    /// Only the destinations that have one.
    pub client_certs: Vec<DestinationCert>,
}

#[derive(Archive, Serialize)]
pub struct DestinationCert {
    pub id: u128,
    pub cert: ClientCert,
}

fn client_cert(c: &model::ClientCert) -> ClientCert {
    ClientCert { cert_file: c.cert_file.clone(), key_file: c.key_file.clone() }
}

fn from_client_cert(a: &ArchivedClientCert) -> model::ClientCert {
    model::ClientCert { cert_file: a.cert_file.to_string(), key_file: a.key_file.to_string() }
}

pub(super) fn destination(d: &model::Destination) -> Destination {
    Destination { base: v3::destination(d), client_cert: d.client_cert.as_ref().map(client_cert) }
}

pub(super) fn from_destination(a: &ArchivedDestination) -> Decoded<model::Destination> {
    Ok(model::Destination {
        client_cert: a.client_cert.as_ref().map(from_client_cert),
        ..v3::from_destination(&a.base)?
    })
}

pub(super) fn snapshot(s: &DomainSnapshot) -> Result<Snapshot, rancor::Error> {
    let client_certs = s
        .destinations
        .iter()
        .filter_map(|d| d.client_cert.as_ref().map(|c| DestinationCert { id: d.id.0, cert: client_cert(c) }))
        .collect();
    Ok(Snapshot { base: v3::snapshot(s)?, client_certs })
}

pub(super) fn from_snapshot(a: &ArchivedSnapshot) -> Decoded<DomainSnapshot> {
    let mut s = v3::from_snapshot(&a.base)?;
    for kept in a.client_certs.iter() {
        let id = Id(kept.id.to_native());
        let destination = s.destinations.iter_mut().find(|d| d.id == id);
        let destination = destination
            .ok_or_else(|| format!("a client certificate for destination {id}, which the snapshot lacks"))?;
        destination.client_cert = Some(from_client_cert(&kept.cert));
    }
    Ok(s)
}

/// The type, version and bytes of `event` if format 4 writes it.
pub fn encode(event: &Event) -> Option<Result<(u8, u8, AlignedVec), rancor::Error>> {
    use v1::types::*;
    let written = |type_code: u8, version: u8, bytes: Result<AlignedVec, rancor::Error>| {
        Some(bytes.map(|b| (type_code, version, b)))
    };
    match event {
        Event::DestinationUpserted(d) => written(DESTINATION_UPSERTED, 3, v1::to_bytes(&destination(d))),
        Event::ConfigurationApplied(batch) => {
            let record = ConfigurationApplied {
                origin: batch.origin.clone(),
                sources: batch.sources.iter().map(v3::source).collect(),
                destinations: batch.destinations.iter().map(destination).collect(),
                subscriptions: batch.subscriptions.iter().map(v1::subscription).collect(),
            };
            written(CONFIGURATION_APPLIED, 3, v1::to_bytes(&record))
        }
        Event::Snapshot(s) => written(SNAPSHOT, 4, snapshot(s).and_then(|s| v1::to_bytes(&s))),
        _ => None,
    }
}

/// Reads a record of format 4's: `None` if it is not one.
pub fn decode(type_code: u8, version: u8, bytes: &[u8]) -> Option<Decoded<Replayed<'static>>> {
    use v1::types::*;
    let access = |f: fn(&[u8]) -> Decoded<Event>| Some(f(bytes).map(Replayed::Event));
    match (type_code, version) {
        (DESTINATION_UPSERTED, 3) => access(|b| {
            v1::decode_access::<ArchivedDestination>(b).and_then(from_destination).map(Event::DestinationUpserted)
        }),
        (CONFIGURATION_APPLIED, 3) => access(|b| {
            let c = v1::decode_access::<ArchivedConfigurationApplied>(b)?;
            Ok(Event::ConfigurationApplied(ConfigBatch {
                origin: c.origin.to_string(),
                sources: c.sources.iter().map(v3::from_source).collect(),
                destinations: c.destinations.iter().map(from_destination).collect::<Decoded<_>>()?,
                subscriptions: c.subscriptions.iter().map(v1::from_subscription).collect(),
            }))
        }),
        (SNAPSHOT, 4) => {
            access(|b| v1::decode_access::<ArchivedSnapshot>(b).and_then(from_snapshot).map(Event::Snapshot))
        }
        _ => None,
    }
}

/// Every kind format 4 added: (type, version).
pub const KINDS: [(u8, u8); 3] =
    [(v1::types::DESTINATION_UPSERTED, 3), (v1::types::CONFIGURATION_APPLIED, 3), (v1::types::SNAPSHOT, 4)];

/// Writes version 3 of the snapshot, for tests that read it back: the
/// current build writes version 4.
#[cfg(test)]
pub fn encode_v3_snapshot(s: &DomainSnapshot) -> Result<AlignedVec, rancor::Error> {
    v3::snapshot(s).and_then(|s| v1::to_bytes(&s))
}
