//! Segment files: creation (preallocated, synced, atomically named), opening
//! and header checks.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::{
    error::{Result, io_err},
    layout::{SEGMENT_HEADER_BYTES, SegmentHeader},
    mmap::Region,
    vfs::{Vfs, VfsFile},
};

const SUFFIX: &str = ".seg";
const DIGITS: usize = 20;
/// Suffix of a segment being prepared; such files are removed at open.
pub(crate) const TMP_SUFFIX: &str = ".tmp";
/// Suffix of a segment being deleted; such files are removed at open.
pub(crate) const DELETED_SUFFIX: &str = ".deleted";

/// The file name of segment `index`: zero-padded so names sort in log order.
pub(crate) fn file_name(index: u64) -> String {
    format!("{index:0DIGITS$}{SUFFIX}")
}

/// The index in a segment file name, if `name` is one.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One open, mapped segment file.
pub(crate) struct Segment {
    pub(crate) index: u64,
    pub(crate) salt: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<dyn VfsFile>,
    pub(crate) map: Region,
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment").field("index", &self.index).field("path", &self.path).finish()
    }
}

impl Segment {
    /// Creates segment `index`: a zero-filled file of `segment_bytes` with its
    /// header, synced, then renamed into place and the directory synced, so
    /// a segment file with its final name is always complete.
    /// On failure, the partial file is removed, so a later try starts clean.
    pub(crate) fn create(vfs: &dyn Vfs, dir: &Path, index: u64, segment_bytes: u64, salt: u64) -> Result<Arc<Self>> {
        let path = dir.join(file_name(index));
        let tmp = dir.join(format!("{}{TMP_SUFFIX}", file_name(index)));
        // Left by an earlier try whose clean-up failed too.
        let _ = vfs.remove(&tmp);
        let created = (|| {
            let file = vfs.create(&tmp, segment_bytes).map_err(io_err("create", &tmp))?;
            let header = SegmentHeader { index, segment_bytes, salt };
            file.write_at(0, &header.encode()).map_err(io_err("write header of", &tmp))?;
            file.sync().map_err(io_err("sync", &tmp))?;
            vfs.rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
            Ok(file)
        })();
        let file = match created {
            Ok(file) => file,
            Err(e) => {
                let _ = vfs.remove(&tmp);
                return Err(e);
            }
        };
        vfs.sync_dir(dir).map_err(io_err("sync directory", dir))?;
        let map = file.map().map_err(io_err("map", &path))?;
        Ok(Arc::new(Self { index, salt, path, file, map }))
    }

    /// Opens segment `index`. The inner error says why its header is invalid.
    pub(crate) fn open(vfs: &dyn Vfs, dir: &Path, index: u64) -> Result<Result<Arc<Self>, &'static str>> {
        let path = dir.join(file_name(index));
        let file = vfs.open(&path).map_err(io_err("open", &path))?;
        let map = file.map().map_err(io_err("map", &path))?;
        let header = match SegmentHeader::decode(map.bytes(0, map.len().min(SEGMENT_HEADER_BYTES))) {
            Ok(header) => header,
            Err(reason) => return Ok(Err(reason)),
        };
        if header.index != index {
            return Ok(Err("segment header names another segment"));
        }
        if header.segment_bytes != file.len() {
            return Ok(Err("segment file length differs from its header"));
        }
        Ok(Ok(Arc::new(Self { index, salt: header.salt, path, file, map })))
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_log_order_and_parse_back() {
        let names: Vec<String> = [1u64, 2, 10, 999, u64::MAX].iter().map(|&i| file_name(i)).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for (i, name) in [1u64, 2, 10, 999, u64::MAX].iter().zip(&names) {
            assert_eq!(parse_name(name), Some(*i));
        }
        for junk in ["1.seg", "0000000000000000000a.seg", "00000000000000000001.seg.tmp", "LOCK", "checkpoint"] {
            assert_eq!(parse_name(junk), None, "{junk}");
        }
    }
}
