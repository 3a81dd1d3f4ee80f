//! Offline inspection: recovery's checks without any change to the files.

use std::{path::Path, sync::Arc, time::Instant};

use crate::{
    checkpoint,
    error::{Result, io_err},
    index::{Cursor, Index, Record},
    options::{Options, Recovery},
    recovery::{self, RecoveryStats},
    vfs::{StdFs, Vfs},
};

/// What [`inspect`] found: the recovery report and the records.
#[derive(Debug)]
pub struct Inspection {
    pub stats: RecoveryStats,
    pub checkpoint: u64,
    index: Index,
}

impl Inspection {
    /// Every valid record, in order, read in place.
    pub fn records(&self) -> impl Iterator<Item = Result<Record>> + '_ {
        let mut cursor = Cursor::new(self.index.first_seq().unwrap_or(1));
        std::iter::from_fn(move || {
            let located = cursor.locate(&self.index)?;
            Some(cursor.read(located))
        })
    }
}

/// Verifies every segment header and record of the log in `dir` as
/// recovery would, changing nothing: a torn tail is reported in
/// `stats.torn_at` but left in place, and damage is an error naming the
/// segment and offset. Takes the directory's lock, so the log must not be
/// open elsewhere.
pub fn inspect(dir: &Path) -> Result<Inspection> {
    let started = Instant::now();
    let vfs: Arc<dyn Vfs> = Arc::new(StdFs);
    let _lock = vfs.lock(dir).map_err(io_err("lock", dir))?;
    let checkpoint = checkpoint::read(vfs.as_ref(), dir)?;
    let options = Options { recovery: Recovery::ReadOnly, ..Options::default() };
    let recovered = recovery::recover(vfs.as_ref(), dir, &options, checkpoint)?;
    let mut stats = recovered.stats;
    stats.duration = started.elapsed();
    Ok(Inspection { stats, checkpoint, index: Index::new(recovered.indexed) })
}
