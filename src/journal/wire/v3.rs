//! Format 3: operators made through the API, resent logs, and the alert
//! settings of sources and destinations (SPEC §12–§14). Frozen once
//! released, like `v1` and `v2`.
//!
//! - Types 20 `OperatorUpserted`, 21 `OperatorDeleted` and 22 `LogsResent`,
//!   version 1.
//! - `SourceUpserted`, `DestinationUpserted` and `ConfigurationApplied`
//!   version 2: version 1's objects with their alert settings beside them.
//! - `AlertRaised` version 2: version 1's layout, whose kind may also be
//!   4, `QueueBacklog` (a build that knows only version 1 stops at it
//!   instead of misreading it).
//! - `Snapshot` version 3: version 2's, with the alert settings, the
//!   operators and the backlogged queues.

use rkyv::{Archive, Serialize, rancor, util::AlignedVec};

use super::{v1, v2};
use crate::{
    journal::{ConfigBatch, Event, Replayed, Resent, ResentLog, Snapshot as DomainSnapshot},
    model::{self, Id, LogType, Role},
};

type Decoded<T> = Result<T, String>;

/// Bytes a resent log takes in a `LogsResent` record.
pub const RESENT_LOG_BYTES: usize = std::mem::size_of::<ArchivedResentRecord>();

pub mod types {
    pub const OPERATOR_UPSERTED: u8 = 20;
    pub const OPERATOR_DELETED: u8 = 21;
    pub const LOGS_RESENT: u8 = 22;
}

#[derive(Archive, Serialize)]
pub struct Source {
    pub base: v1::Source,
    pub alert_emails: Vec<String>,
}

#[derive(Archive, Serialize)]
pub struct Destination {
    pub base: v1::Destination,
    pub alert_emails: Vec<String>,
    pub alert_depth: Option<u64>,
    pub alert_age_ms: Option<u64>,
}

#[derive(Archive, Serialize)]
pub struct ConfigurationApplied {
    pub origin: String,
    pub sources: Vec<Source>,
    pub destinations: Vec<Destination>,
    pub subscriptions: Vec<v1::Subscription>,
}

#[derive(Archive, Serialize)]
pub struct Operator {
    pub name: String,
    pub token_hash: [u8; 32],
    /// 1 viewer, 2 operator, 3 admin.
    pub role: u8,
    pub phi_access: bool,
    pub created_at_ms: i64,
}

#[derive(Archive, Serialize)]
pub struct OperatorDeleted {
    pub name: String,
}

/// Names and sources are written once per record and referred to by
/// index: a replay of many logs repeats few of them. A log takes 96 bytes.
#[derive(Archive, Serialize)]
pub struct LogsResent {
    pub destination_id: u128,
    pub at_ms: i64,
    pub names: Vec<String>,
    pub sources: Vec<u128>,
    pub logs: Vec<ResentRecord>,
}

#[derive(Archive, Serialize)]
pub struct ResentRecord {
    pub id: u128,
    pub attempt_id: u128,
    pub resent_from: u128,
    /// Index in `sources`.
    pub source: u32,
    pub message_id: u64,
    pub message_position: u64,
    pub received_at_ms: i64,
    pub data_model: u32,
    pub event_type: u32,
    /// 1 async, 2 query.
    pub log_type: u8,
}

#[derive(Archive, Serialize)]
pub struct Snapshot {
    pub base: v2::Snapshot,
    /// Sources' alert settings, by ID (the sources are in `base`).
    pub source_alerting: Vec<SourceAlerting>,
    pub destination_alerting: Vec<DestinationAlerting>,
    pub operators: Vec<Operator>,
    pub backlogged: Vec<u128>,
}

#[derive(Archive, Serialize)]
pub struct SourceAlerting {
    pub id: u128,
    pub alert_emails: Vec<String>,
}

#[derive(Archive, Serialize)]
pub struct DestinationAlerting {
    pub id: u128,
    pub alert_emails: Vec<String>,
    pub alert_depth: Option<u64>,
    pub alert_age_ms: Option<u64>,
}

fn role_code(r: Role) -> u8 {
    match r {
        Role::Viewer => 1,
        Role::Operator => 2,
        Role::Admin => 3,
    }
}

fn role_of(code: u8) -> Decoded<Role> {
    match code {
        1 => Ok(Role::Viewer),
        2 => Ok(Role::Operator),
        3 => Ok(Role::Admin),
        _ => Err(format!("unknown role code {code}")),
    }
}

pub fn source(s: &model::Source) -> Source {
    Source { base: v1::source(s), alert_emails: s.alert_emails.clone() }
}

pub fn destination(d: &model::Destination) -> Destination {
    Destination {
        base: v1::destination(d),
        alert_emails: d.alert_emails.clone(),
        alert_depth: d.alert_depth,
        alert_age_ms: d.alert_age_ms,
    }
}

fn operator(o: &model::OperatorRecord) -> Operator {
    Operator {
        name: o.name.clone(),
        token_hash: o.token_hash,
        role: role_code(o.role),
        phi_access: o.phi_access,
        created_at_ms: o.created_at_ms,
    }
}

fn strings(list: &rkyv::vec::ArchivedVec<rkyv::string::ArchivedString>) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

pub fn from_source(a: &ArchivedSource) -> model::Source {
    model::Source { alert_emails: strings(&a.alert_emails), ..v1::from_source(&a.base) }
}

pub fn from_destination(a: &ArchivedDestination) -> Decoded<model::Destination> {
    Ok(model::Destination {
        alert_emails: strings(&a.alert_emails),
        alert_depth: a.alert_depth.as_ref().map(|v| v.to_native()),
        alert_age_ms: a.alert_age_ms.as_ref().map(|v| v.to_native()),
        ..v1::from_destination(&a.base)?
    })
}

fn from_operator(a: &ArchivedOperator) -> Decoded<model::OperatorRecord> {
    Ok(model::OperatorRecord {
        name: a.name.to_string(),
        token_hash: a.token_hash,
        role: role_of(a.role)?,
        phi_access: a.phi_access,
        created_at_ms: a.created_at_ms.to_native(),
    })
}

fn resent(r: &Resent) -> LogsResent {
    let mut names: Vec<String> = Vec::new();
    let mut index = |name: &str| match names.iter().position(|n| n == name) {
        Some(i) => i as u32,
        None => {
            names.push(name.to_owned());
            (names.len() - 1) as u32
        }
    };
    let mut sources: Vec<u128> = Vec::new();
    let logs = r
        .logs
        .iter()
        .map(|l| ResentRecord {
            id: l.id.0,
            attempt_id: l.attempt_id.0,
            resent_from: l.resent_from.0,
            source: match sources.iter().position(|s| *s == l.source_id.0) {
                Some(i) => i as u32,
                None => {
                    sources.push(l.source_id.0);
                    (sources.len() - 1) as u32
                }
            },
            message_id: l.message_id,
            message_position: l.message_position,
            received_at_ms: l.received_at_ms,
            data_model: index(&l.data_model),
            event_type: index(&l.event_type),
            log_type: match l.log_type {
                LogType::Async => 1,
                LogType::Query => 2,
            },
        })
        .collect();
    LogsResent { destination_id: r.destination_id.0, at_ms: r.at_ms, names, sources, logs }
}

fn from_resent(a: &ArchivedLogsResent) -> Decoded<Resent> {
    let name = |i: u32| {
        a.names.get(i as usize).map(|n| n.to_string()).ok_or_else(|| format!("name index {i} is out of range"))
    };
    let logs = a
        .logs
        .iter()
        .map(|l| {
            Ok(ResentLog {
                id: Id(l.id.to_native()),
                attempt_id: Id(l.attempt_id.to_native()),
                resent_from: Id(l.resent_from.to_native()),
                message_id: l.message_id.to_native(),
                message_position: l.message_position.to_native(),
                log_type: match l.log_type {
                    1 => LogType::Async,
                    2 => LogType::Query,
                    code => return Err(format!("unknown log type code {code}")),
                },
                source_id: a
                    .sources
                    .get(l.source.to_native() as usize)
                    .map(|s| Id(s.to_native()))
                    .ok_or_else(|| format!("source index {} is out of range", l.source))?,
                data_model: name(l.data_model.to_native())?,
                event_type: name(l.event_type.to_native())?,
                received_at_ms: l.received_at_ms.to_native(),
            })
        })
        .collect::<Decoded<_>>()?;
    Ok(Resent { destination_id: Id(a.destination_id.to_native()), at_ms: a.at_ms.to_native(), logs })
}

pub fn snapshot(s: &DomainSnapshot) -> Result<Snapshot, rancor::Error> {
    Ok(Snapshot {
        base: v2::snapshot(s),
        source_alerting: s
            .sources
            .iter()
            .map(|s| SourceAlerting { id: s.id.0, alert_emails: s.alert_emails.clone() })
            .collect(),
        destination_alerting: s
            .destinations
            .iter()
            .map(|d| DestinationAlerting {
                id: d.id.0,
                alert_emails: d.alert_emails.clone(),
                alert_depth: d.alert_depth,
                alert_age_ms: d.alert_age_ms,
            })
            .collect(),
        operators: s.operators.iter().map(operator).collect(),
        backlogged: s.backlogged.iter().map(|d| d.0).collect(),
    })
}

pub fn from_snapshot(a: &ArchivedSnapshot) -> Decoded<DomainSnapshot> {
    let mut s = v2::from_snapshot(&a.base)?;
    for alerting in a.source_alerting.iter() {
        let id = Id(alerting.id.to_native());
        if let Some(source) = s.sources.iter_mut().find(|s| s.id == id) {
            source.alert_emails = strings(&alerting.alert_emails);
        }
    }
    for alerting in a.destination_alerting.iter() {
        let id = Id(alerting.id.to_native());
        if let Some(d) = s.destinations.iter_mut().find(|d| d.id == id) {
            d.alert_emails = strings(&alerting.alert_emails);
            d.alert_depth = alerting.alert_depth.as_ref().map(|v| v.to_native());
            d.alert_age_ms = alerting.alert_age_ms.as_ref().map(|v| v.to_native());
        }
    }
    s.operators = a.operators.iter().map(from_operator).collect::<Decoded<_>>()?;
    s.backlogged = a.backlogged.iter().map(|d| Id(d.to_native())).collect();
    Ok(s)
}

/// The type, version and bytes of `event` if format 3 writes it.
pub fn encode(event: &Event) -> Option<Result<(u8, u8, AlignedVec), rancor::Error>> {
    use v1::types::*;
    let written = |type_code: u8, version: u8, bytes: Result<AlignedVec, rancor::Error>| {
        Some(bytes.map(|b| (type_code, version, b)))
    };
    match event {
        Event::SourceUpserted(s) => written(SOURCE_UPSERTED, 2, v1::to_bytes(&source(s))),
        Event::DestinationUpserted(d) => written(DESTINATION_UPSERTED, 2, v1::to_bytes(&destination(d))),
        Event::ConfigurationApplied(batch) => {
            let record = ConfigurationApplied {
                origin: batch.origin.clone(),
                sources: batch.sources.iter().map(source).collect(),
                destinations: batch.destinations.iter().map(destination).collect(),
                subscriptions: batch.subscriptions.iter().map(v1::subscription).collect(),
            };
            written(CONFIGURATION_APPLIED, 2, v1::to_bytes(&record))
        }
        Event::AlertRaised(a) => written(ALERT_RAISED, 2, v1::to_bytes(&v1::alert(a))),
        Event::Snapshot(s) => written(SNAPSHOT, 3, snapshot(s).and_then(|s| v1::to_bytes(&s))),
        Event::OperatorUpserted(o) => written(types::OPERATOR_UPSERTED, 1, v1::to_bytes(&operator(o))),
        Event::OperatorDeleted { name } => {
            written(types::OPERATOR_DELETED, 1, v1::to_bytes(&OperatorDeleted { name: name.clone() }))
        }
        Event::LogsResent(r) => written(types::LOGS_RESENT, 1, v1::to_bytes(&resent(r))),
        _ => None,
    }
}

/// Reads a record of format 3's: `None` if it is not one.
pub fn decode(type_code: u8, version: u8, bytes: &[u8]) -> Option<Decoded<Replayed<'static>>> {
    use v1::types::*;
    let access = |f: fn(&[u8]) -> Decoded<Event>| Some(f(bytes).map(Replayed::Event));
    match (type_code, version) {
        (SOURCE_UPSERTED, 2) => {
            access(|b| v1::decode_access::<ArchivedSource>(b).map(|s| Event::SourceUpserted(from_source(s))))
        }
        (DESTINATION_UPSERTED, 2) => access(|b| {
            v1::decode_access::<ArchivedDestination>(b).and_then(from_destination).map(Event::DestinationUpserted)
        }),
        (CONFIGURATION_APPLIED, 2) => access(|b| {
            let c = v1::decode_access::<ArchivedConfigurationApplied>(b)?;
            Ok(Event::ConfigurationApplied(ConfigBatch {
                origin: c.origin.to_string(),
                sources: c.sources.iter().map(from_source).collect(),
                destinations: c.destinations.iter().map(from_destination).collect::<Decoded<_>>()?,
                subscriptions: c.subscriptions.iter().map(v1::from_subscription).collect(),
            }))
        }),
        (ALERT_RAISED, 2) => {
            access(|b| v1::decode_access::<v1::ArchivedAlert>(b).and_then(v1::from_alert).map(Event::AlertRaised))
        }
        (SNAPSHOT, 3) => {
            access(|b| v1::decode_access::<ArchivedSnapshot>(b).and_then(from_snapshot).map(Event::Snapshot))
        }
        (types::OPERATOR_UPSERTED, 1) => {
            access(|b| v1::decode_access::<ArchivedOperator>(b).and_then(from_operator).map(Event::OperatorUpserted))
        }
        (types::OPERATOR_DELETED, 1) => access(|b| {
            v1::decode_access::<ArchivedOperatorDeleted>(b).map(|o| Event::OperatorDeleted { name: o.name.to_string() })
        }),
        (types::LOGS_RESENT, 1) => {
            access(|b| v1::decode_access::<ArchivedLogsResent>(b).and_then(from_resent).map(Event::LogsResent))
        }
        _ => None,
    }
}

/// Every kind format 3 added: (type, version).
pub const KINDS: [(u8, u8); 8] = [
    (v1::types::SOURCE_UPSERTED, 2),
    (v1::types::DESTINATION_UPSERTED, 2),
    (v1::types::CONFIGURATION_APPLIED, 2),
    (v1::types::ALERT_RAISED, 2),
    (v1::types::SNAPSHOT, 3),
    (types::OPERATOR_UPSERTED, 1),
    (types::OPERATOR_DELETED, 1),
    (types::LOGS_RESENT, 1),
];
