//! Letting go of entries past retention: uncounting them, and deleting
//! the table chunks and rows files that hold only such entries.

use super::{CHUNK_LOGS, Chunk, History, HistoryError};

impl History {
    /// Entries of messages accepted before `position` are past retention
    /// from now on. Deletes the table chunks wholly below both the first
    /// visible entry and `keep_from` (the lowest log number in memory), and
    /// the rows files no remaining chunk points into.
    pub fn release_below(&mut self, position: u64, keep_from: u64) -> Result<(), HistoryError> {
        if position > self.visible_from {
            let before = std::mem::replace(&mut self.visible_from, position);
            self.advance_first_visible(before)?;
        }
        let limit = self.first_visible.min(keep_from) / CHUNK_LOGS;
        let doomed: Vec<u64> = self.chunks.range(..limit).map(|(n, _)| *n).collect();
        for number in doomed {
            if let Some(chunk) = self.chunks.remove(&number) {
                let path = chunk.path().to_path_buf();
                drop(chunk);
                std::fs::remove_file(&path).map_err(HistoryError::io(&path))?;
                self.dirty.remove(&number);
            }
        }
        if let Some(lowest) = self.chunks.values().filter_map(Chunk::min_row).min() {
            self.rows.delete_below(lowest)?;
        }
        Ok(())
    }

    /// Moves `first_visible` past entries now out of retention, uncounting
    /// those visible until now (from `before`): a resent log's entry past
    /// `first_visible` may have left already.
    fn advance_first_visible(&mut self, before: u64) -> Result<(), HistoryError> {
        let mut n = self.first_visible;
        let last = self.chunks.keys().next_back().map_or(0, |c| (c + 1) * CHUNK_LOGS);
        while n < last {
            let Some(chunk) = self.chunks.get(&(n / CHUNK_LOGS)) else {
                n = (n / CHUNK_LOGS + 1) * CHUNK_LOGS;
                continue;
            };
            if let Some(e) = chunk.get(n)? {
                if e.position >= self.visible_from {
                    break;
                }
                if e.position >= before {
                    self.counts[e.status as usize] -= 1;
                    self.resent.remove(&(e.position, n));
                }
            }
            n += 1;
        }
        self.first_visible = if n >= last { u64::MAX } else { n };
        // Resent logs of messages now past retention, further on.
        let kept = self.resent.split_off(&(self.visible_from, 0));
        for (_, n) in std::mem::replace(&mut self.resent, kept) {
            if let Some(e) = self.stored(n)? {
                self.counts[e.status as usize] -= 1;
            }
        }
        Ok(())
    }
}
