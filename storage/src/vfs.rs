//! The file-system seam: all file I/O of the log goes through [`Vfs`] and
//! [`VfsFile`], so tests can run the same code on the in-memory
//! [`LazyDisk`](crate::sim::LazyDisk) and crash it at will.

use std::{
    any::Any,
    fmt,
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::Path,
    sync::Arc,
};

pub use crate::mmap::Region;

/// Zeros are written in chunks of this size when a file is created, so that
/// its blocks are really allocated and later `fdatasync`s flush data only,
/// with no metadata to journal.
const ZERO_CHUNK_BYTES: usize = 1 << 20;

/// A directory of files, as the log needs it.
pub trait Vfs: Send + Sync + fmt::Debug {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates `path`, which must not exist, holding `len` zero bytes. Its
    /// length and contents are durable once [`VfsFile::sync`] returns and its
    /// name once [`Vfs::sync_dir`] returns.
    fn create(&self, path: &Path, len: u64) -> io::Result<Arc<dyn VfsFile>>;
    fn open(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the creations, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `dir` for as long as the guard lives.
    fn lock(&self, dir: &Path) -> io::Result<Box<dyn Any + Send + Sync>>;
}

/// One open file of fixed length.
pub trait VfsFile: Send + Sync + fmt::Debug {
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes all of `data` at `offset`; the range must lie inside the file.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// `fdatasync`: every write so far is durable when this returns `Ok`.
    fn sync(&self) -> io::Result<()>;
    /// A read view of the whole file that sees later writes.
    fn map(&self) -> io::Result<Region>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

#[derive(Debug)]
struct StdFile {
    file: File,
    len: u64,
}

impl Vfs for StdFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }

    fn create(&self, path: &Path, len: u64) -> io::Result<Arc<dyn VfsFile>> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        write_zeros(&file, len)?;
        Ok(Arc::new(StdFile { file, len }))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(Arc::new(StdFile { file, len }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock(&self, dir: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(dir.join("LOCK"))?;
        match file.try_lock() {
            Ok(()) => {
                // The holder's process ID, for tools to name the process
                // that has the log open (`lock_holder`).
                file.set_len(0)?;
                file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)?;
                Ok(Box::new(file))
            }
            Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another process", dir.display()),
            )),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// The process ID the holder of the lock on `dir` wrote into the `LOCK`
/// file, if it wrote one. Reading it takes no lock; whether the lock is held
/// is what [`Error::is_locked`](crate::Error::is_locked) tells of a failed open.
pub fn lock_holder(dir: &Path) -> Option<u32> {
    fs::read_to_string(dir.join("LOCK")).ok()?.trim().parse().ok()
}

/// Writes `len` zero bytes to `file` from offset 0, so that its blocks are
/// allocated (a sparse file would allocate them at a later write, which
/// could then meet a full disk).
pub(crate) fn write_zeros(file: &File, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; ZERO_CHUNK_BYTES];
    let mut offset = 0u64;
    while offset < len {
        let n = usize::try_from((len - offset).min(ZERO_CHUNK_BYTES as u64)).unwrap_or(ZERO_CHUNK_BYTES);
        file.write_all_at(&zeros[..n], offset)?;
        offset += n as u64;
    }
    Ok(())
}

impl VfsFile for StdFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if offset.checked_add(data.len() as u64).is_none_or(|end| end > self.len) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "write past the end of a preallocated file"));
        }
        self.file.write_all_at(data, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn map(&self) -> io::Result<Region> {
        Region::map_read_only(&self.file, self.len)
    }
}
