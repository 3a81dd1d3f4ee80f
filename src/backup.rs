//! `ferrox backup`: a consistent copy of a data directory, taken while the
//! engine runs on it (or not).
//!
//! The journal is the whole truth of a data directory: configuration,
//! messages, logs and the token key are all events in it. The history
//! beside it is derived, and a start rebuilds it from the journal when it
//! is missing, so a backup is the journal alone. The copy is taken by
//! `ferrox_storage::capture` without the log's lock: every record synced
//! before the command started (so every message answered 200 before it) is
//! in it, cut at a clean end; then every record is decoded as `wal verify`
//! does before the copy is declared good.

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use crate::wal_tool;

/// Copies the journal of `data_dir` into `target`, a directory that must
/// be absent or empty, and verifies the copy. On failure nothing this
/// command wrote is left in `target`.
pub fn backup(data_dir: &Path, target: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let wal = data_dir.join("wal");
    anyhow::ensure!(wal.is_dir(), "{} holds no write-ahead log (no wal/ directory)", data_dir.display());
    let created = prepare_target(target)?;
    let copied = target.join("wal");
    let result = copy(&wal, &copied, target, out);
    if result.is_err() {
        // Best effort: the error that made it fail is the one to report.
        let _ = if created { std::fs::remove_dir_all(target) } else { std::fs::remove_dir_all(&copied) };
    }
    result
}

fn copy(wal: &Path, copied: &Path, target: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let captured = ferrox_storage::capture(wal, copied).with_context(|| format!("copying {}", wal.display()))?;
    sync_dir(target)?;
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    let inspection = ferrox_storage::inspect(copied).with_context(|| format!("verifying {}", copied.display()))?;
    wal_tool::report(&inspection, &mut std::io::sink()).context("verifying the copy's events")?;
    drop(inspection);
    // The check took the copy's lock: its LOCK file goes, so the copy
    // holds the log alone.
    let lock = copied.join("LOCK");
    std::fs::remove_file(&lock).with_context(|| format!("removing {}", lock.display()))?;
    sync_dir(copied)?;
    let range = match (captured.first_seq, captured.last_seq) {
        (Some(first), Some(last)) => format!("records {first}..={last}"),
        _ => "no records".to_owned(),
    };
    writeln!(
        out,
        "backup of {} in {}: {} records ({range}, {} bytes) in {} segments, checkpoint {}; verified",
        wal.display(),
        target.display(),
        captured.records,
        captured.record_bytes,
        captured.segments,
        captured.checkpoint,
    )?;
    Ok(())
}

/// Makes `target` if it is absent (returns `true` then); refuses it if it
/// holds anything, so a backup never mixes with other files.
fn prepare_target(target: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            anyhow::ensure!(
                entries.next().is_none(),
                "{} is not empty: a backup goes into a new or empty directory",
                target.display()
            );
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(target).with_context(|| format!("creating {}", target.display()))?;
            Ok(true)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", target.display())),
    }
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))
}

/// The data directory a backup reads: `--data-dir`, else the one the
/// configuration names (file and `FERROX_` variables), else the default.
pub fn data_dir_of(data_dir: Option<PathBuf>, config: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = data_dir {
        return Ok(dir);
    }
    // As `serve` reads it: the file, with the `FERROX_` variables over it.
    let config = crate::config::Config::load(config, std::env::vars_os()).map_err(anyhow::Error::msg)?;
    Ok(config.data_dir)
}
