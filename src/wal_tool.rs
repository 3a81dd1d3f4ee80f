//! `ferrox wal verify` and `ferrox wal dump`: offline views of the
//! write-ahead log of a data directory.

use std::{io::Write, path::Path};

use anyhow::Context as _;

use crate::{
    clock::rfc3339,
    journal::{Event, decode, decode_event, describe_kind},
};

fn wal_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("wal")
}

/// Checks every record, and that each is an event this build can read;
/// reports the first damage as an error.
pub fn verify(data_dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = wal_dir(data_dir);
    let inspection = ferrox_storage::inspect(&dir).with_context(|| format!("verifying {}", dir.display()))?;
    let s = &inspection.stats;
    let mut events = 0u64;
    for record in inspection.records() {
        let record = record?;
        decode(record.kind(), record.payload()).map_err(|e| anyhow::anyhow!("record {}: {e}", record.seq()))?;
        events += 1;
    }
    writeln!(out, "segments: {}", s.segments)?;
    writeln!(out, "records: {} ({} bytes), events: {events}", s.records, s.record_bytes)?;
    writeln!(out, "checkpoint: {}", inspection.checkpoint)?;
    match &s.torn_at {
        Some((segment, offset)) => {
            writeln!(out, "torn tail: {segment} at offset {offset} (never acknowledged; dropped at next start)")?
        }
        None => writeln!(out, "torn tail: none")?,
    }
    writeln!(out, "ok: every record verified in {} ms", s.duration.as_millis())?;
    Ok(())
}

/// Prints one line per record from `from`, at most `limit`.
pub fn dump(data_dir: &Path, from: u64, limit: Option<u64>, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = wal_dir(data_dir);
    let inspection = ferrox_storage::inspect(&dir).with_context(|| format!("reading {}", dir.display()))?;
    let records = inspection.records().filter(|r| r.as_ref().map_or(true, |r| r.seq() >= from));
    for record in records.take(usize::try_from(limit.unwrap_or(u64::MAX)).unwrap_or(usize::MAX)) {
        let record = record?;
        let text = match decode_event(record.kind(), record.payload()) {
            Ok(event) => describe(&event),
            Err(e) => format!("{}: {e}", describe_kind(record.kind())),
        };
        writeln!(out, "{:>10} {:>8}B {text}", record.seq(), record.payload().len())?;
    }
    Ok(())
}

/// One line about an event; secrets and bodies stay out of it.
fn describe(event: &Event) -> String {
    match event {
        Event::MessageAccepted(a) => {
            let logs: Vec<String> = a.logs.iter().map(|l| l.id.to_string()).collect();
            format!(
                "MessageAccepted id={} {}:{} received_at={} payload={}B logs=[{}]",
                a.message_id,
                a.data_model,
                a.event_type,
                rfc3339(a.received_at_ms),
                a.payload.len(),
                logs.join(",")
            )
        }
        Event::TokenKeyCreated { .. } => "TokenKeyCreated".to_owned(),
        Event::SourceUpserted(s) => format!("SourceUpserted id={} name={:?}", s.id, s.name),
        Event::DestinationUpserted(d) => {
            format!("DestinationUpserted id={} name={:?} url={:?} enabled={}", d.id, d.name, d.url, d.enabled)
        }
        Event::SubscriptionUpserted(s) => format!(
            "SubscriptionUpserted id={} source={} destination={} {}",
            s.id, s.source_id, s.destination_id, s.data_model
        ),
        Event::ConfigurationApplied(b) => format!(
            "ConfigurationApplied origin={:?} sources={} destinations={} subscriptions={}",
            b.origin,
            b.sources.len(),
            b.destinations.len(),
            b.subscriptions.len()
        ),
        Event::Snapshot(s) => format!(
            "Snapshot from={} sources={} destinations={} subscriptions={} paused={} alerts={} audit={} next_message_id={}",
            s.from,
            s.sources.len(),
            s.destinations.len(),
            s.subscriptions.len(),
            s.paused.len(),
            s.alerts.len(),
            s.audit.len(),
            s.next_message_id
        ),
        other => format!("{other:?}"),
    }
}
