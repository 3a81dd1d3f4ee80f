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
//!
//! Format 1 is every type's version 1; format 2 added snapshot version 2
//! and type 19 (`v2`); format 3 operators, resent logs and alert settings
//! (`v3`); format 4 destinations' client certificates (`v4`); format 5
//! destinations' ordered lanes (`v5`).
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
//!   with it into `tests/golden/` (made by `examples/make_golden.rs`), and
//!   the current build must start on every one of them with everything
//!   intact.

mod v0;
mod v1;
mod v2;
mod v3;
mod v4;
mod v5;

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
const V1_NAMES: [&str; 22] = [
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
    if let Some(written) = v5::encode(event).or_else(|| v4::encode(event)).or_else(|| v3::encode(event)) {
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
        (_, (type_code, version)) => v5::decode(type_code, version, bytes)
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
    kinds.extend(v3::KINDS.iter().chain(&v4::KINDS).chain(&v5::KINDS).map(|&(t, v)| kind_of(t, v)));
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        journal::{
            Accepted, AlertSend, ConfigBatch, KeptAlert, Keyed, NewLog, PausedQueue, Resent, ResentLog, Snapshot,
            body_hash,
        },
        model::{
            Alert, AlertKind, Attempt, AuditEntry, ClientCert, Destination, Environment, Id, LogStatus, LogType,
            OperatorRecord, Role, Source, Subscription,
        },
    };

    fn id(n: u128) -> Id {
        Id(0x0123_4567_89ab_cdef_0011_2233_4455_6600 | n)
    }

    /// One of every event format 0 knew, as `v0-samples.txt` was written
    /// from them by the build of that format.
    fn format_0_samples() -> Vec<Event> {
        let source = Source {
            id: id(1),
            name: "EHR".into(),
            api_key: "key".into(),
            secret_hash: "pbkdf2$1$aa$bb".into(),
            alert_emails: Vec::new(),
        };
        let destination = Destination {
            id: id(2),
            name: "Lab".into(),
            url: "http://127.0.0.1:9/lab".into(),
            environment: Environment::Staging,
            verification_token: "vt".into(),
            signing_secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            timeout_ms: 1234,
            enabled: false,
            alert_emails: Vec::new(),
            alert_depth: None,
            alert_age_ms: None,
            client_cert: None,
            fifo_key: None,
            max_in_flight: 1,
        };
        let subscription = Subscription {
            id: id(3),
            source_id: id(1),
            destination_id: id(2),
            data_model: "PatientAdmin".into(),
            event_types: vec!["NewPatient".into(), "Arrival".into()],
            transform: Some(".".into()),
            response_transform: None,
        };
        let attempt = Attempt {
            id: id(4),
            started_at_ms: 1_796_400_000_123,
            duration_ms: 17,
            http_status: Some(500),
            error: Some("HTTP 500".into()),
            response: None,
        };
        let alert = Alert {
            id: id(5),
            kind: AlertKind::ProcessingFailed,
            destination_id: id(2),
            log_id: Some(id(6)),
            at_ms: 1_796_400_000_456,
            text: "processing failed".into(),
        };
        let payload = br#"{"Meta":{}}"#.to_vec();
        vec![
            Event::SourceUpserted(source.clone()),
            Event::SourceDeleted { id: id(1) },
            Event::DestinationUpserted(destination.clone()),
            Event::DestinationDeleted { id: id(2) },
            Event::SubscriptionUpserted(subscription.clone()),
            Event::SubscriptionDeleted { id: id(3) },
            Event::TokenKeyCreated { key: [7; 32] },
            Event::MessageAccepted(Accepted {
                message_id: 42,
                log_type: LogType::Query,
                source_id: id(1),
                data_model: "PatientSearch".into(),
                event_type: "Query".into(),
                received_at_ms: 1_796_400_000_000,
                idempotency: Some(Keyed { key: "k-1".into(), body_hash: body_hash(&payload) }),
                logs: vec![NewLog { id: id(6), attempt_id: id(4), destination_id: id(2) }],
                payload,
            }),
            Event::AttemptRecorded { log_id: id(6), attempt },
            Event::LogStatusChanged {
                log_id: id(6),
                status: LogStatus::ProcessingFailed,
                at_ms: 1_796_400_000_789,
                reason: Some("why".into()),
            },
            Event::QueuePaused { destination_id: id(2), at_ms: 1_796_400_001_000, reason: "operator".into() },
            Event::QueueResumed { destination_id: id(2), at_ms: 1_796_400_002_000 },
            Event::AlertRaised(alert.clone()),
            Event::Snapshot(Snapshot {
                from: 9,
                first_log_index: 3,
                retain_after_ms: 1_796_000_000_000,
                sources: vec![source],
                destinations: vec![destination],
                subscriptions: vec![subscription],
                token_key: Some([9; 32]),
                next_message_id: 43,
                paused: vec![PausedQueue { destination_id: id(2), at_ms: 5, reason: "r".into() }],
                alerts: vec![KeptAlert { position: 8, alert, sent: Vec::new() }],
                alert_channels: Vec::new(),
                audit: Vec::new(),
                operators: Vec::new(),
                backlogged: Vec::new(),
            }),
        ]
    }

    /// Every event this build writes, with every optional part filled.
    fn samples() -> Vec<Event> {
        let mut events = format_0_samples();
        let Event::SourceUpserted(mut source) = events[0].clone() else { panic!("not a source") };
        source.alert_emails = vec!["ehr-team@example.org".into()];
        let Event::DestinationUpserted(mut destination) = events[2].clone() else { panic!("not a destination") };
        destination.alert_emails = vec!["lab@example.org".into(), "it@example.org".into()];
        (destination.alert_depth, destination.alert_age_ms) = (Some(500), Some(60_000));
        destination.client_cert = Some(ClientCert {
            cert_file: "/etc/ferrox/lab-client.crt".into(),
            key_file: "/etc/ferrox/lab-client.key".into(),
        });
        destination.fifo_key = Some(crate::lanes::FifoKey::parse(".Patient.Identifiers[0].ID").expect("a path"));
        destination.max_in_flight = 16;
        events[0] = Event::SourceUpserted(source.clone());
        events[2] = Event::DestinationUpserted(destination.clone());
        let Event::Snapshot(mut snapshot) = events.pop().expect("a snapshot") else { panic!("not a snapshot") };
        snapshot.alerts[0].sent.push(AlertSend { channel: "webhook".into(), at_ms: 11, refused: Some("400".into()) });
        snapshot.alert_channels.push(("webhook".into(), 8));
        snapshot.audit.push((14, audit_entry()));
        (snapshot.sources, snapshot.destinations) = (vec![source.clone()], vec![destination.clone()]);
        snapshot.operators.push(operator_record());
        snapshot.backlogged.push(id(2));
        events.push(Event::Snapshot(snapshot));
        let Event::SubscriptionUpserted(subscription) = events[4].clone() else { panic!("not a subscription") };
        events.extend([
            Event::ConfigurationApplied(ConfigBatch {
                origin: "/etc/ferrox.toml".into(),
                sources: vec![source],
                destinations: vec![destination],
                subscriptions: vec![subscription],
            }),
            Event::AlertChannelOpened { channel: "webhook".into(), after: 3 },
            Event::AlertChannelClosed { channel: "email:ops".into() },
            Event::AlertSent { channel: "webhook".into(), alert_position: 8, at_ms: 12, refused: None },
            Event::Audited(audit_entry()),
            Event::OperatorUpserted(operator_record()),
            Event::OperatorDeleted { name: "night-shift".into() },
            Event::LogsResent(Resent {
                destination_id: id(2),
                at_ms: 1_796_400_004_000,
                logs: (0..3)
                    .map(|n| ResentLog {
                        id: id(20 + n),
                        attempt_id: id(30 + n),
                        resent_from: id(6),
                        message_id: 42 + n as u64,
                        message_position: 9 + n as u64,
                        log_type: if n == 2 { LogType::Query } else { LogType::Async },
                        source_id: id(1),
                        data_model: "PatientAdmin".into(),
                        event_type: if n == 1 { "Arrival".into() } else { "NewPatient".into() },
                        received_at_ms: 1_796_400_000_000 + n as i64,
                    })
                    .collect(),
            }),
        ]);
        // Format 3 writes AlertRaised version 2, which may be a backlog.
        for event in &mut events {
            if let Event::AlertRaised(alert) = event {
                (alert.kind, alert.log_id) = (AlertKind::QueueBacklog, None);
            }
        }
        events
    }

    fn operator_record() -> OperatorRecord {
        OperatorRecord {
            name: "night-shift".into(),
            token_hash: [7; 32],
            role: Role::Operator,
            phi_access: true,
            created_at_ms: 1_796_400_003_500,
        }
    }

    fn audit_entry() -> AuditEntry {
        AuditEntry {
            id: id(7),
            at_ms: 1_796_400_003_000,
            operator: "night-shift".into(),
            action: "destination.pause".into(),
            target: id(2).to_string(),
            detail: "name 'Lab'".into(),
        }
    }

    #[test]
    fn older_snapshots_read_with_what_they_lack_empty() {
        let Some(Event::Snapshot(snapshot)) = samples().into_iter().find(|e| matches!(e, Event::Snapshot(_))) else {
            panic!("no snapshot sample")
        };
        let (type_code, bytes) = v1::encode(&Event::Snapshot(snapshot.clone())).expect("a type").expect("encodes");
        let kind = kind_of(type_code, 1);
        let mut older = snapshot.clone();
        older.audit.clear();
        older.operators.clear();
        older.backlogged.clear();
        for s in &mut older.sources {
            s.alert_emails.clear();
        }
        for d in &mut older.destinations {
            (d.alert_emails, d.alert_depth, d.alert_age_ms, d.client_cert) = (Vec::new(), None, None, None);
            (d.fifo_key, d.max_in_flight) = (None, 1);
        }
        assert_eq!(decode_event(kind, &bytes), Ok(Event::Snapshot(older.clone())));
        assert!(is_snapshot(kind));
        // Version 2 keeps the audit trail and nothing of format 3.
        let bytes = v2::encode_snapshot(&snapshot).expect("encodes");
        older.audit = snapshot.audit.clone();
        assert_eq!(decode_event(kind_of(17, 2), &bytes), Ok(Event::Snapshot(older)));
        // Version 3 keeps everything but the client certificates.
        let bytes = v4::encode_v3_snapshot(&snapshot).expect("encodes");
        let mut older = snapshot.clone();
        older.destinations.iter_mut().for_each(|d| (d.client_cert, d.fifo_key, d.max_in_flight) = (None, None, 1));
        assert_eq!(decode_event(kind_of(17, 3), &bytes), Ok(Event::Snapshot(older)));
        // Version 4 keeps everything but the lanes.
        let bytes = v5::encode_v4_snapshot(&snapshot).expect("encodes");
        let mut older = snapshot.clone();
        older.destinations.iter_mut().for_each(|d| (d.fifo_key, d.max_in_flight) = (None, 1));
        assert_eq!(decode_event(kind_of(17, 4), &bytes), Ok(Event::Snapshot(older)));
        assert_eq!(encode(&Event::Snapshot(Default::default())).map(|(k, _)| split(k)), Ok((17, 5)));
    }

    #[test]
    fn destinations_of_format_3_read_without_a_client_certificate() {
        let events = samples();
        let with_destinations = events
            .iter()
            .filter(|e| matches!(e, Event::DestinationUpserted(_) | Event::ConfigurationApplied(_)))
            .collect::<Vec<_>>();
        assert_eq!(with_destinations.len(), 2);
        for event in with_destinations {
            let (type_code, version, bytes) = v3::encode(event).expect("a format-3 type").expect("encodes");
            let mut older = event.clone();
            let forget = |d: &mut Destination| (d.client_cert, d.fifo_key, d.max_in_flight) = (None, None, 1);
            match &mut older {
                Event::DestinationUpserted(d) => forget(d),
                Event::ConfigurationApplied(batch) => batch.destinations.iter_mut().for_each(forget),
                _ => unreachable!("filtered above"),
            }
            assert_ne!(&older, event, "the sample has a client certificate");
            assert_eq!(decode_event(kind_of(type_code, version), &bytes), Ok(older));
        }
    }

    #[test]
    fn destinations_of_format_4_read_as_one_lane() {
        let events = samples();
        let with_destinations = events
            .iter()
            .filter(|e| matches!(e, Event::DestinationUpserted(_) | Event::ConfigurationApplied(_)))
            .collect::<Vec<_>>();
        assert_eq!(with_destinations.len(), 2);
        for event in with_destinations {
            let (type_code, version, bytes) = v4::encode(event).expect("a format-4 type").expect("encodes");
            let mut older = event.clone();
            let forget = |d: &mut Destination| (d.fifo_key, d.max_in_flight) = (None, 1);
            match &mut older {
                Event::DestinationUpserted(d) => forget(d),
                Event::ConfigurationApplied(batch) => batch.destinations.iter_mut().for_each(forget),
                _ => unreachable!("filtered above"),
            }
            assert_ne!(&older, event, "the sample has lanes");
            assert_eq!(decode_event(kind_of(type_code, version), &bytes), Ok(older));
        }
    }

    #[test]
    fn format_0_records_read_as_the_events_they_were_written_from() {
        let lines: Vec<&str> = include_str!("v0-samples.txt").lines().collect();
        let expected = format_0_samples();
        assert_eq!(lines.len(), expected.len());
        for (line, expected) in lines.iter().zip(expected) {
            let (kind, hex) = line.split_once(' ').expect("kind and bytes");
            let kind: u16 = kind.parse().expect("a kind");
            let bytes: Vec<u8> =
                (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect();
            let mut aligned = AlignedVec::<16>::new();
            aligned.extend_from_slice(&bytes);
            assert_eq!(decode_event(kind, &aligned), Ok(expected.clone()), "{}", describe_kind(kind));
            if let Event::MessageAccepted(a) = &expected {
                assert_eq!(message_payload(kind, &aligned), Ok(&a.payload[..]));
                assert!(matches!(decode(kind, &aligned), Ok(Replayed::Message(view)) if view == a.view()));
            }
            assert_eq!(is_snapshot(kind), matches!(expected, Event::Snapshot(_)));
        }
    }

    #[test]
    fn every_event_round_trips_through_its_record() {
        for event in samples() {
            let (kind, bytes) = encode(&event).expect("encodes");
            assert_eq!(decode_event(kind, &bytes), Ok(event.clone()), "{}", describe_kind(kind));
            assert_eq!(is_snapshot(kind), matches!(event, Event::Snapshot(_)));
            match (&event, decode(kind, &bytes)) {
                (Event::MessageAccepted(a), Ok(Replayed::Message(view))) => {
                    assert_eq!(view, a.view());
                    assert_eq!(message_payload(kind, &bytes), Ok(&a.payload[..]));
                }
                (_, Ok(Replayed::Event(decoded))) => assert_eq!(decoded, event),
                (_, other) => panic!("{}: {other:?}", describe_kind(kind)),
            }
        }
    }

    #[test]
    fn kinds_are_distinct_and_named() {
        let kinds: Vec<u16> = samples().iter().map(|e| encode(e).expect("encodes").0).collect();
        let mut unique = kinds.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), kinds.len(), "two events share a record kind");
        assert_eq!(describe_kind(0x0901), "MessageAccepted version 1 (kind 0x0901)");
        // Format 0, version 1 of the first 19 types, version 2 of the
        // snapshot, and what formats 3 and 4 added.
        assert_eq!(known_kinds().len(), 2 + 19 + 1 + v3::KINDS.len() + v4::KINDS.len() + v5::KINDS.len());
        assert_eq!(describe_kind(0x0303), "DestinationUpserted version 3 (kind 0x0303)");
        assert_eq!(describe_kind(0x1601), "LogsResent version 1 (kind 0x1601)");
        assert_eq!(describe_kind(0x1102), "Snapshot version 2 (kind 0x1102)");
    }

    #[test]
    fn an_unknown_type_or_version_is_named_and_never_skipped() {
        let (_, bytes) = encode(&Event::SourceDeleted { id: id(1) }).expect("encodes");
        for (kind, named) in
            [(0x0902, "MessageAccepted version 2"), (0x4001, "record type 64 version 1"), (3, "type 0")]
        {
            match decode(kind, &bytes) {
                Err(DecodeError::Unknown(text)) => {
                    assert!(text.contains(named) && text.contains("newer"), "{kind:#x}: {text}")
                }
                other => panic!("{kind:#x}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_record_that_does_not_decode_is_an_error_not_a_panic() {
        let (kind, bytes) =
            encode(&Event::LogStatusChanged { log_id: id(1), status: LogStatus::Failed, at_ms: 1, reason: None })
                .expect("encodes");
        let mut bad = AlignedVec::<16>::new();
        bad.extend_from_slice(&bytes);
        // The status code is the byte that reads as 5 (Failed) in place.
        let at = bad.iter().position(|&b| b == 5).expect("the status byte");
        bad[at] = 9;
        match decode(kind, &bad) {
            Err(DecodeError::Invalid(text)) => assert!(text.contains("log status code 9"), "{text}"),
            other => panic!("{other:?}"),
        }
        // Too short for any record: an error. Longer junk may happen to be
        // a valid fixed-size record (a token key is any 32 bytes); it must
        // never panic.
        for kind in known_kinds() {
            for len in [0, 1, 7, 16, 64, 300] {
                let mut junk = AlignedVec::<16>::new();
                junk.extend_from_slice(&vec![0xa5; len]);
                let decoded = decode(kind, &junk);
                assert!(len > 7 || decoded.is_err(), "{} read from {len} bytes of junk", describe_kind(kind));
            }
        }
    }
}
