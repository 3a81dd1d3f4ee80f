//! `ferrox wal verify` and `ferrox wal dump`: offline views of the
//! write-ahead log of a data directory.
//!
//! On the data directory of a running engine, which holds the log's lock,
//! both say so on stderr in one line and then read the durable part only:
//! they capture it (as `ferrox backup` does, without the lock) into a
//! temporary directory and read the copy, which needs that much free space
//! in the temporary directory.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use ferrox_storage::Inspection;
use tempfile::TempDir;

use crate::{journal::decode, wal_dump::Line};

fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("wal")
}

/// The log of `data_dir`, inspected in place, or through a captured copy
/// when a running engine holds it. The copy, if any, lives as long as the
/// returned directory.
fn open(data_dir: &Path, tool: &str) -> anyhow::Result<(Inspection, Option<TempDir>)> {
    let dir = wal_dir(data_dir);
    match ferrox_storage::inspect(&dir) {
        Ok(inspection) => Ok((inspection, None)),
        Err(e) if e.is_locked() => {
            let pid = ferrox_storage::lock_holder(&dir).map_or_else(|| "unknown".to_owned(), |p| p.to_string());
            eprintln!("the engine (pid {pid}) is running on this data directory; {tool} reads the durable part only");
            let copy = tempfile::tempdir().context("making a temporary directory for the copy")?;
            let copied = copy.path().join("wal");
            ferrox_storage::capture(&dir, &copied)
                .with_context(|| format!("copying the durable part of {}", dir.display()))?;
            let inspection =
                ferrox_storage::inspect(&copied).with_context(|| format!("verifying the copy of {}", dir.display()))?;
            Ok((inspection, Some(copy)))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

/// Checks every record, and that each is an event this build can read;
/// reports the first damage as an error.
pub fn verify(data_dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let (inspection, _copy) = open(data_dir, "verify")?;
    report(&inspection, out)
}

/// Decodes every record of an inspected log and prints what it found.
pub(crate) fn report(inspection: &Inspection, out: &mut dyn Write) -> anyhow::Result<()> {
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

/// How `dump` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpFormat {
    Text,
    /// One JSON object per line.
    Json,
}

/// Prints one line per record from `from`, at most `limit`.
pub fn dump(
    data_dir: &Path,
    from: u64,
    limit: Option<u64>,
    format: DumpFormat,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (inspection, _copy) = open(data_dir, "dump")?;
    let records = inspection.records().filter(|r| r.as_ref().map_or(true, |r| r.seq() >= from));
    for record in records.take(usize::try_from(limit.unwrap_or(u64::MAX)).unwrap_or(usize::MAX)) {
        let record = record?;
        let line = Line::of(record.seq(), record.kind(), record.payload());
        match format {
            DumpFormat::Text => writeln!(out, "{}", line.text())?,
            DumpFormat::Json => writeln!(out, "{}", line.json())?,
        }
    }
    Ok(())
}
