//! Memory mappings: the only `unsafe` code in the crate.
//!
//! A [`Region`] is a mapping of a whole segment file (read-only, shared with
//! the page cache, so bytes written with `pwrite` appear in it) or an
//! anonymous mapping that backs an in-memory file of the lazy disk.
//!
//! Soundness rests on one invariant that the write-ahead log upholds: the log
//! is append-only, and a byte range is only handed out as a slice once it has
//! been written and published. Writes go only to ranges that are not yet
//! published, so no slice ever overlaps a concurrent write. Recovery, which
//! may zero a torn tail, runs before any slice of the segment exists and
//! drops its scanning slices before it writes. The data directory is locked
//! against other processes of this crate (see `vfs::Vfs::lock`); other
//! programs must not modify or truncate segment files while they are open.
//!
//! [`map_read_write`] maps the files of [`MappedFile`](crate::MappedFile)
//! read-write. Their bytes are borrowed through `memmap2::MmapMut`, so the
//! borrow checker keeps every slice from living across a write through the
//! map; the mapping itself needs that nothing else writes to or resizes the
//! file while it is mapped, which `MappedFile` ensures.

use std::{fmt, fs::File, io, sync::Arc};

use memmap2::{MmapMut, MmapOptions, MmapRaw};

/// A shared, cloneable view of a mapped file.
#[derive(Clone)]
pub struct Region {
    raw: Option<Arc<MmapRaw>>,
    writable: bool,
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region").field("len", &self.len()).field("writable", &self.writable).finish()
    }
}

impl Region {
    /// Maps all of `file` read-only. A zero-length file maps to an empty region.
    pub(crate) fn map_read_only(file: &File, len: u64) -> io::Result<Self> {
        if len == 0 {
            return Ok(Self { raw: None, writable: false });
        }
        let len = usize::try_from(len).map_err(|_| io::Error::other("file too large to map"))?;
        let raw = MmapOptions::new().len(len).map_raw_read_only(file)?;
        Ok(Self { raw: Some(Arc::new(raw)), writable: false })
    }

    /// An anonymous, zero-filled, writable region of `len` bytes.
    pub(crate) fn anonymous(len: usize) -> io::Result<Self> {
        if len == 0 {
            return Ok(Self { raw: None, writable: true });
        }
        let raw = MmapRaw::from(MmapOptions::new().len(len).map_anon()?);
        Ok(Self { raw: Some(Arc::new(raw)), writable: true })
    }

    pub(crate) fn len(&self) -> usize {
        self.raw.as_ref().map_or(0, |raw| raw.len())
    }

    /// The bytes of `start..end`, which must lie inside the region.
    ///
    /// Callers only ask for ranges that are written and published (records
    /// at or below the log's synced-through point, or any range while
    /// recovery has the log to itself); see the module docs.
    pub(crate) fn bytes(&self, start: usize, end: usize) -> &[u8] {
        assert!(start <= end && end <= self.len(), "range {start}..{end} outside a region of {}", self.len());
        match &self.raw {
            None => &[],
            // SAFETY: the range is in bounds (asserted above) of a live
            // mapping kept alive by the `Arc` for as long as `self` is
            // borrowed. The mapping is never unmapped or resized while a
            // `Region` exists, and by the module invariant nothing writes to
            // a range while a slice of it is alive.
            Some(raw) => unsafe { std::slice::from_raw_parts(raw.as_ptr().add(start), end - start) },
        }
    }

    /// The whole region. Only for recovery, which owns the log while it runs.
    pub(crate) fn all(&self) -> &[u8] {
        self.bytes(0, self.len())
    }

    /// Copies `data` into the region at `offset` (anonymous regions only).
    pub(crate) fn write(&self, offset: usize, data: &[u8]) -> io::Result<()> {
        let end = offset.checked_add(data.len()).filter(|&end| end <= self.len());
        if !self.writable || end.is_none() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "write outside a writable region"));
        }
        if let Some(raw) = &self.raw {
            // SAFETY: `offset..offset + data.len()` is in bounds (checked
            // above) of a live, writable anonymous mapping. `data` cannot
            // overlap it: it is a shared borrow, and the log never hands out
            // slices of a range before writing it (module invariant), so no
            // reference to the destination bytes exists during the copy.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), raw.as_mut_ptr().add(offset), data.len()) };
        }
        Ok(())
    }
}

/// Maps the first `len` bytes of `file`, its whole length, read-write and
/// shared: writes through the map go to the file's pages in the page cache.
/// Only for [`MappedFile`](crate::MappedFile), which upholds what the
/// mapping needs.
pub(crate) fn map_read_write(file: &File, len: usize) -> io::Result<MmapMut> {
    // SAFETY: memmap2 leaves it to the caller that, while the map lives, the
    // file is neither changed by other means (that would change memory
    // behind the references `MmapMut` hands out) nor truncated (accesses
    // past the new end would fault with SIGBUS). The one caller,
    // `MappedFile`, maps its file at the length it just read, after taking
    // an exclusive `flock` on it that it holds until the map is dropped, so
    // no second `MappedFile`, in this process or another, maps or writes the
    // file meanwhile. Once it is mapped, `MappedFile` writes to the file
    // only through this map and never changes its length, and the sync
    // handles it gives out are opened read-only. Programs other than ferrox
    // must not modify the file (module docs of `mapped`).
    unsafe { MmapOptions::new().len(len).map_mut(file) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_region_reads_back_writes() {
        let region = Region::anonymous(4096).unwrap();
        assert!(region.all().iter().all(|&b| b == 0));
        region.write(100, b"abc").unwrap();
        assert_eq!(region.bytes(100, 103), b"abc");
        assert!(region.write(4095, b"ab").is_err());
        assert!(region.write(usize::MAX, b"a").is_err());
    }

    #[test]
    fn file_region_sees_later_pwrites() {
        use std::os::unix::fs::FileExt;
        let file = tempfile::tempfile().unwrap();
        file.set_len(8192).unwrap();
        let region = Region::map_read_only(&file, 8192).unwrap();
        file.write_all_at(b"hello", 4096).unwrap();
        assert_eq!(region.bytes(4096, 4101), b"hello");
        assert!(region.write(0, b"x").is_err());
    }
}
