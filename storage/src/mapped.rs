//! [`MappedFile`]: a fixed-size file memory-mapped read-write, for the
//! derived files the engine indexes its history in.
//!
//! It is not a log: it has no framing and no CRC of its own, and nothing
//! written through the map is durable until synced. Callers frame and check
//! their bytes and decide when to sync.
//!
//! A file with its final name is always complete: `create` writes it as
//! `<path>.tmp`, full of zeros, syncs it, renames it into place and syncs
//! the directory. A `.tmp` left by a crash is removed by the next `create`
//! of the same path.
//!
//! # What the caller guarantees
//!
//! - **One owner per file.** A `MappedFile` holds an exclusive `flock` on its
//!   file while it lives, so a second `MappedFile` of the same file, in this
//!   process or another, fails with `WouldBlock`; the engine also holds its
//!   data directory's lock. `flock` is advisory: no other program may write
//!   to the file or change its length while it is open. A truncation makes
//!   access through the map fault with SIGBUS, and a write by other means
//!   changes bytes under the slices this type hands out.
//! - **Torn writes.** Until [`MappedFile::sync`] (or `sync_data` on a
//!   [`MappedFile::sync_handle`]) returns `Ok`, the kernel may have written
//!   back any subset of the dirty pages, in any order, and a crash keeps
//!   that subset. The caller's framing must detect a unit of its data that
//!   is torn or missing.
//! - **A failed sync is not retried.** After a failed sync the kernel may
//!   have dropped the pages it could not write and marked them clean, so a
//!   later sync can return `Ok` without them. What the file holds is then
//!   unknown, as for the log (see the crate docs): treat the file as
//!   damaged and rebuild it.
//! - **Space.** `create` writes the whole file, so its blocks are allocated
//!   and a write through the map allocates none. That holds on file systems
//!   that overwrite in place (ext4, XFS); on copy-on-write ones (btrfs, ZFS)
//!   every write takes new blocks, and a write through the map on a full
//!   disk faults with SIGBUS.

use std::{
    fmt,
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use memmap2::MmapMut;

use crate::{mmap::map_read_write, vfs::write_zeros};

/// Suffix of a file being created; the next `create` of its path removes it.
const TMP_SUFFIX: &str = ".tmp";

/// A fixed-size file of `len` bytes, memory-mapped read-write.
pub struct MappedFile {
    // Declared before `file`, so it is unmapped before the file is closed
    // and its lock released.
    /// `None` for a zero-length file, which cannot be mapped.
    map: Option<MmapMut>,
    file: File,
    path: PathBuf,
}

impl fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedFile").field("path", &self.path).field("len", &self.len()).finish()
    }
}

impl MappedFile {
    /// Creates `path` full of zeros (written, not sparse, so that its blocks
    /// are allocated and a later write through the map cannot meet a full
    /// disk and fault with SIGBUS), via `<path>.tmp`, synced, renamed into
    /// place, directory synced. Fails with `AlreadyExists` if `path` exists
    /// and with `InvalidInput` if `len` is 0 (an empty file cannot be
    /// mapped). On failure nothing is left at `path`, unless only the final
    /// directory sync failed.
    pub fn create(path: &Path, len: u64) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a mapped file cannot be empty"));
        }
        if usize::try_from(len).is_err() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "file too large to map"));
        }
        // The owner is alone in the directory, so `path` cannot appear
        // between this check and the rename.
        if path.try_exists()? {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", path.display())));
        }
        let tmp = tmp_path(path);
        // Left by a creation that crashed, or whose clean-up failed.
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let file = match create_tmp(&tmp, path, len) {
            Ok(file) => file,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()?;
        Self::map(path, file)
    }

    /// Opens an existing file at its current length. A zero-length file
    /// opens as empty: it cannot be mapped, and its bytes are `&[]`.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        lock(&file, path)?;
        Self::map(path, file)
    }

    /// Maps `file`, which the caller has locked, at its current length.
    fn map(path: &Path, file: File) -> io::Result<Self> {
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large to map"))?;
        let map = match len {
            0 => None,
            len => Some(map_read_write(&file, len)?),
        };
        Ok(Self { map, file, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, |map| map.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.map.as_deref_mut().unwrap_or(&mut [])
    }

    /// A handle on the same file whose `sync_data` makes durable what was
    /// written through the map before it is called (on Linux, `fsync` and
    /// `fdatasync` write back the dirty pages of shared mappings, which are
    /// the file's page cache), so a caller can sync without holding the
    /// map. The handle is opened read-only, so it cannot write to the file
    /// or change its length; it does not share the lock.
    pub fn sync_handle(&self) -> io::Result<File> {
        let handle = File::open(&self.path)?;
        let (ours, theirs) = (self.file.metadata()?, handle.metadata()?);
        if (ours.dev(), ours.ino()) != (theirs.dev(), theirs.ino()) {
            let msg = format!("{} was replaced while open", self.path.display());
            return Err(io::Error::new(io::ErrorKind::NotFound, msg));
        }
        Ok(handle)
    }

    /// Syncs what was written through the map: `msync(MS_SYNC)`, which
    /// writes the dirty pages back and waits for the disk.
    pub fn sync(&self) -> io::Result<()> {
        match &self.map {
            Some(map) => map.flush(),
            None => Ok(()),
        }
    }
}

/// `<path>.tmp`: the name `path` is created under.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// Creates `tmp` holding `len` zero bytes, locked, synced, and renamed to
/// `path`. The lock is on the file, so it moves with it.
fn create_tmp(tmp: &Path, path: &Path, len: u64) -> io::Result<File> {
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(tmp)?;
    lock(&file, tmp)?;
    write_zeros(&file, len)?;
    file.sync_data()?;
    fs::rename(tmp, path)?;
    Ok(file)
}

/// Takes the exclusive lock that makes `file` this `MappedFile`'s alone.
fn lock(file: &File, path: &Path) -> io::Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{} is already open as a mapped file", path.display()),
        )),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    /// Not a multiple of the page size, so the last page is partly the file's.
    const LEN: u64 = 3 * 4096 + 100;

    #[test]
    fn what_is_written_through_the_map_reads_back_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let mut file = MappedFile::create(&path, LEN).unwrap();
        assert_eq!((file.path(), file.len(), file.is_empty()), (path.as_path(), LEN as usize, false));
        assert!(file.bytes().iter().all(|&b| b == 0));
        let last = file.len() - 5;
        file.bytes_mut()[..5].copy_from_slice(b"first");
        file.bytes_mut()[4096..4102].copy_from_slice(b"middle");
        file.bytes_mut()[last..].copy_from_slice(b"last!");
        file.sync().unwrap();
        let written = file.bytes().to_vec();
        drop(file);
        assert!(!tmp_path(&path).exists(), "no temporary file is left");
        let file = MappedFile::open(&path).unwrap();
        assert_eq!(file.bytes(), written);
        assert_eq!(fs::read(&path).unwrap(), written, "the map writes the file itself");
    }

    #[test]
    fn create_refuses_an_existing_path_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        fs::write(&path, b"someone else's").unwrap();
        let err = MappedFile::create(&path, LEN).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"someone else's");
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn a_leftover_tmp_from_a_crashed_create_does_not_block_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        fs::write(tmp_path(&path), vec![0xa5; 2 * LEN as usize]).unwrap();
        let file = MappedFile::create(&path, LEN).unwrap();
        assert_eq!(file.len(), LEN as usize);
        assert!(file.bytes().iter().all(|&b| b == 0), "nothing of the leftover remains");
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn a_created_file_is_written_not_sparse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let _file = MappedFile::create(&path, 1 << 20).unwrap();
        let allocated_bytes = fs::metadata(&path).unwrap().blocks() * 512;
        assert!(allocated_bytes >= 1 << 20, "only {allocated_bytes} bytes are allocated");
    }

    #[test]
    fn a_sync_handle_syncs_the_map_and_cannot_change_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let mut file = MappedFile::create(&path, LEN).unwrap();
        file.bytes_mut()[100..105].copy_from_slice(b"hello");
        let handle = file.sync_handle().unwrap();
        handle.sync_data().unwrap();
        handle.sync_all().unwrap();
        assert_eq!(&fs::read(&path).unwrap()[100..105], b"hello");
        assert!(handle.write_at(b"x", 0).is_err());
        assert!(handle.set_len(0).is_err());
        assert_eq!(fs::metadata(&path).unwrap().len(), LEN);
        // The handle outlives the map without keeping the file locked.
        drop(file);
        handle.sync_data().unwrap();
        assert_eq!(&MappedFile::open(&path).unwrap().bytes()[100..105], b"hello");
    }

    #[test]
    fn a_file_has_one_mapped_owner_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let file = MappedFile::create(&path, LEN).unwrap();
        assert_eq!(MappedFile::open(&path).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        drop(file);
        let file = MappedFile::open(&path).unwrap();
        assert_eq!(MappedFile::open(&path).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        drop(file);
        MappedFile::open(&path).unwrap();
    }

    #[test]
    fn a_replaced_file_gives_no_sync_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let file = MappedFile::create(&path, LEN).unwrap();
        fs::rename(&path, dir.path().join("moved")).unwrap();
        fs::write(&path, b"another file").unwrap();
        assert!(file.sync_handle().is_err());
    }

    #[test]
    fn zero_lengths_are_refused_at_create_and_empty_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        assert_eq!(MappedFile::create(&path, 0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert!(!path.exists() && !tmp_path(&path).exists());
        File::create(&path).unwrap();
        let mut file = MappedFile::open(&path).unwrap();
        assert!(file.is_empty());
        assert_eq!(file.len(), 0);
        assert!(file.bytes().is_empty() && file.bytes_mut().is_empty());
        file.sync().unwrap();
        file.sync_handle().unwrap().sync_data().unwrap();
    }

    #[test]
    fn a_missing_file_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let err = MappedFile::open(&dir.path().join("none")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
