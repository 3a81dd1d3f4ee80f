use super::*;
use crate::{
    journal::{
        Accepted, AlertSend, ConfigBatch, KeptAlert, Keyed, NewLog, PausedQueue, Resent, ResentLog, Snapshot, body_hash,
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
        delivery_taken(),
    ]);
    // Format 3 writes AlertRaised version 2, which may be a backlog.
    for event in &mut events {
        if let Event::AlertRaised(alert) = event {
            (alert.kind, alert.log_id) = (AlertKind::QueueBacklog, None);
        }
    }
    events
}

/// Format 6's record, as `v6-samples.txt` was written from it.
fn delivery_taken() -> Event {
    Event::DeliveryTaken { destination_id: id(2), node: "node-2".into(), epoch: 4_711 }
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

type Encoder = fn(&Event) -> Option<Result<(u8, u8, AlignedVec), rkyv::rancor::Error>>;
/// An older format: its name, its encoder, and what it lacked set back to
/// the defaults a read gives.
type Older = (&'static str, Encoder, fn(&mut Destination));

/// Destinations written by an older format read with what it lacked at its
/// defaults: no client certificate before format 4, one lane before 5.
#[test]
fn destinations_of_older_formats_read_with_what_they_lack_at_its_defaults() {
    let formats: [Older; 2] = [
        ("format 3, no client certificate", v3::encode, |d| {
            (d.client_cert, d.fifo_key, d.max_in_flight) = (None, None, 1)
        }),
        ("format 4, one lane", v4::encode, |d| (d.fifo_key, d.max_in_flight) = (None, 1)),
    ];
    let events = samples();
    let with_destinations = events
        .iter()
        .filter(|e| matches!(e, Event::DestinationUpserted(_) | Event::ConfigurationApplied(_)))
        .collect::<Vec<_>>();
    assert_eq!(with_destinations.len(), 2);
    for (format, encode_older, forget) in formats {
        for event in &with_destinations {
            let (type_code, version, bytes) = encode_older(event).expect(format).expect("encodes");
            let mut older = (*event).clone();
            match &mut older {
                Event::DestinationUpserted(d) => forget(d),
                Event::ConfigurationApplied(batch) => batch.destinations.iter_mut().for_each(forget),
                _ => unreachable!("filtered above"),
            }
            assert_ne!(&older, *event, "{format}: the sample has what the format lacks");
            assert_eq!(decode_event(kind_of(type_code, version), &bytes), Ok(older), "{format}");
        }
    }
}

#[test]
fn format_0_records_read_as_the_events_they_were_written_from() {
    let lines: Vec<&str> = include_str!("v0-samples.txt").lines().collect();
    let expected = format_0_samples();
    assert_eq!(lines.len(), expected.len());
    for (line, expected) in lines.iter().zip(expected) {
        let (kind, aligned) = sample_line(line);
        assert_eq!(decode_event(kind, &aligned), Ok(expected.clone()), "{}", describe_kind(kind));
        if let Event::MessageAccepted(a) = &expected {
            assert_eq!(message_payload(kind, &aligned), Ok(&a.payload[..]));
            assert!(matches!(decode(kind, &aligned), Ok(Replayed::Message(view)) if view == a.view()));
        }
        assert_eq!(is_snapshot(kind), matches!(expected, Event::Snapshot(_)));
    }
}

/// Reads a samples file's line: a record kind and its bytes in hex.
fn sample_line(line: &str) -> (u16, AlignedVec<16>) {
    let (kind, hex) = line.split_once(' ').expect("kind and bytes");
    let bytes: Vec<u8> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect();
    let mut aligned = AlignedVec::<16>::new();
    aligned.extend_from_slice(&bytes);
    (kind.parse().expect("a kind"), aligned)
}

#[test]
fn format_6_records_are_frozen_and_read_as_written() {
    let line = include_str!("v6-samples.txt").trim_end();
    let (kind, bytes) = sample_line(line);
    assert_eq!(decode_event(kind, &bytes), Ok(delivery_taken()));
    let (written_kind, written) = encode(&delivery_taken()).expect("encodes");
    assert_eq!((written_kind, &written[..]), (kind, &bytes[..]), "DeliveryTaken version 1 changed its bytes");
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
    // snapshot, and what formats 3 to 6 added.
    let added = v3::KINDS.len() + v4::KINDS.len() + v5::KINDS.len() + v6::KINDS.len();
    assert_eq!(known_kinds().len(), 2 + 19 + 1 + added);
    assert_eq!(describe_kind(0x1701), "DeliveryTaken version 1 (kind 0x1701)");
    assert_eq!(describe_kind(0x0303), "DestinationUpserted version 3 (kind 0x0303)");
    assert_eq!(describe_kind(0x1601), "LogsResent version 1 (kind 0x1601)");
    assert_eq!(describe_kind(0x1102), "Snapshot version 2 (kind 0x1102)");
}

#[test]
fn an_unknown_type_or_version_is_named_and_never_skipped() {
    let (_, bytes) = encode(&Event::SourceDeleted { id: id(1) }).expect("encodes");
    for (kind, named) in [(0x0902, "MessageAccepted version 2"), (0x4001, "record type 64 version 1"), (3, "type 0")] {
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
