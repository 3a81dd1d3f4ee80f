//! A fault-injecting, in-memory file system for tests: the "lazy disk".
//!
//! Every file keeps two images: what is durable (made so by `sync`) and the
//! live bytes the page cache would show. Writes since the last sync are kept
//! as a list. [`LazyDisk::crash`] models a power cut: it returns a new disk
//! holding the durable image of every file plus a random subset of the
//! unsynced writes, each kept whole, dropped, torn at a 512-byte sector
//! boundary (a prefix reaches the disk), or scattered (a random subset of
//! its sectors reaches the disk, as a disk that reorders sectors within a
//! write would leave it). Directory changes (create, rename, remove) are durable after
//! `sync_dir`; at a crash a random prefix of the unsynced ones survives, as
//! on a journaling file system. The directory model is flat: `sync_dir` makes
//! every pending directory change durable, whichever directory is named.
//!
//! Handles opened before a crash keep pointing at the old, pre-crash files,
//! so a test drops the log, crashes the disk, and opens the log again on the
//! disk `crash` returned.

use std::{
    any::Any,
    collections::BTreeMap,
    fmt, io,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use parking_lot::Mutex;

use crate::{
    mmap::Region,
    rng::SplitMix64,
    vfs::{Vfs, VfsFile},
};

/// The sector size at which writes may tear.
pub const SECTOR_BYTES: u64 = 512;

/// An in-memory disk that loses unsynced writes when crashed.
#[derive(Clone, Default)]
pub struct LazyDisk {
    state: Arc<Mutex<DiskState>>,
    faults: Arc<Faults>,
}

/// Faults a test can switch on.
#[derive(Debug)]
struct Faults {
    /// `sync` fails (nothing becomes durable) while this is set.
    fail_sync: AtomicBool,
    /// `create` fails as if the disk were full while this is set.
    fail_create: AtomicBool,
    /// Bytes the live files may take in all (`u64::MAX`: no limit). A
    /// creation past it fails as on a full disk, leaving the part written.
    capacity: AtomicU64,
    /// Counts calls to `VfsFile::sync`.
    syncs: AtomicU64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            fail_sync: AtomicBool::new(false),
            fail_create: AtomicBool::new(false),
            capacity: AtomicU64::new(u64::MAX),
            syncs: AtomicU64::new(0),
        }
    }
}

#[derive(Default)]
struct DiskState {
    live: BTreeMap<PathBuf, Arc<MemFile>>,
    durable: BTreeMap<PathBuf, Arc<MemFile>>,
    dir_ops: Vec<DirOp>,
}

enum DirOp {
    Create(PathBuf, Arc<MemFile>),
    Rename(PathBuf, PathBuf),
    Remove(PathBuf),
}

/// One in-memory file.
struct MemFile {
    len: u64,
    live: Region,
    images: Mutex<Images>,
    faults: Arc<Faults>,
}

#[derive(Default)]
struct Images {
    durable: Vec<u8>,
    pending: Vec<Pending>,
}

enum Pending {
    /// The file was created with this length (zero-filled).
    SetLen(u64),
    Write {
        offset: u64,
        data: Vec<u8>,
    },
}

/// What happens to one unsynced write at a crash.
enum Fate {
    Kept,
    Dropped,
    /// Only the sectors before this absolute offset reach the disk.
    TornAt(u64),
    /// Each sector reaches the disk or not, by the bits of this mask
    /// (repeating every 64 sectors).
    Scattered(u64),
}

impl fmt::Debug for LazyDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("LazyDisk").field("files", &state.live.keys().collect::<Vec<_>>()).finish()
    }
}

impl fmt::Debug for MemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemFile").field("len", &self.len).finish()
    }
}

impl LazyDisk {
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a power cut; `seed` picks which unsynced writes survive.
    /// Returns the disk as a restarted machine would find it.
    pub fn crash(&self, seed: u64) -> LazyDisk {
        let mut rng = SplitMix64::new(seed);
        let state = self.state.lock();
        let mut names = state.durable.clone();
        let surviving_ops = rng.below(state.dir_ops.len() as u64 + 1) as usize;
        for op in &state.dir_ops[..surviving_ops] {
            apply_dir_op(&mut names, op);
        }
        let faults = Arc::new(Faults::default());
        let mut rebuilt: Vec<(*const MemFile, Arc<MemFile>)> = Vec::new();
        let mut durable = BTreeMap::new();
        for (name, file) in names {
            let key = Arc::as_ptr(&file);
            let copy = match rebuilt.iter().find(|(k, _)| *k == key) {
                Some((_, copy)) => copy.clone(),
                None => {
                    let image = file.image_after_crash(&mut rng);
                    let copy = Arc::new(MemFile::with_image(image, faults.clone()));
                    rebuilt.push((key, copy.clone()));
                    copy
                }
            };
            durable.insert(name, copy);
        }
        let state = DiskState { live: durable.clone(), durable, dir_ops: Vec::new() };
        LazyDisk { state: Arc::new(Mutex::new(state)), faults }
    }

    /// Makes every later `sync` fail (and persist nothing) while `on`.
    pub fn fail_syncs(&self, on: bool) {
        self.faults.fail_sync.store(on, Ordering::SeqCst);
    }

    /// Makes every later file creation fail as if the disk were full while `on`.
    pub fn fail_creates(&self, on: bool) {
        self.faults.fail_create.store(on, Ordering::SeqCst);
    }

    /// Limits the bytes all live files may take (`None`: no limit). A file
    /// created past the limit fails with `StorageFull` and leaves a partial
    /// file of the bytes that fitted, as a real file system does when the
    /// zeros run out of space.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.faults.capacity.store(bytes.unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// Bytes the live files take.
    pub fn used_bytes(&self) -> u64 {
        self.state.lock().live.values().map(|f| f.len).sum()
    }

    /// The names of the live files, for tests to look for leftovers.
    pub fn files(&self) -> Vec<PathBuf> {
        self.state.lock().live.keys().cloned().collect()
    }

    /// How many file syncs have been issued on this disk.
    pub fn sync_count(&self) -> u64 {
        self.faults.syncs.load(Ordering::SeqCst)
    }

    /// The live bytes of a file, as a read would see them.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        self.state.lock().live.get(path).map(|f| f.live.all().to_vec())
    }

    /// Overwrites bytes of a file and makes them durable at once, as damage
    /// from outside the log would. For corruption tests.
    pub fn corrupt(&self, path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
        let file = self.state.lock().live.get(path).cloned().ok_or(io::ErrorKind::NotFound)?;
        file.write_at(offset, data)?;
        file.apply_pending();
        Ok(())
    }
}

fn apply_dir_op(names: &mut BTreeMap<PathBuf, Arc<MemFile>>, op: &DirOp) {
    match op {
        DirOp::Create(path, file) => {
            names.insert(path.clone(), file.clone());
        }
        DirOp::Rename(from, to) => {
            if let Some(file) = names.remove(from) {
                names.insert(to.clone(), file);
            }
        }
        DirOp::Remove(path) => {
            names.remove(path);
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", path.display()))
}

impl Vfs for LazyDisk {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state.lock();
        Ok(state
            .live
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn create(&self, path: &Path, len: u64) -> io::Result<Arc<dyn VfsFile>> {
        if self.faults.fail_create.load(Ordering::SeqCst) {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "injected: no space left on device"));
        }
        let mut state = self.state.lock();
        if state.live.contains_key(path) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", path.display())));
        }
        let used: u64 = state.live.values().map(|f| f.len).sum();
        let free = self.faults.capacity.load(Ordering::SeqCst).saturating_sub(used);
        let (len, full) = if len > free { (free, true) } else { (len, false) };
        let len_usize = usize::try_from(len).map_err(|_| io::Error::other("file too large"))?;
        let file = Arc::new(MemFile {
            len,
            live: Region::anonymous(len_usize)?,
            images: Mutex::new(Images { durable: Vec::new(), pending: vec![Pending::SetLen(len)] }),
            faults: self.faults.clone(),
        });
        state.live.insert(path.to_path_buf(), file.clone());
        state.dir_ops.push(DirOp::Create(path.to_path_buf(), file.clone()));
        if full {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on device (capacity reached)"));
        }
        Ok(file)
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let state = self.state.lock();
        let file: Arc<dyn VfsFile> = state.live.get(path).ok_or_else(|| not_found(path))?.clone();
        Ok(file)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        let file = state.live.remove(from).ok_or_else(|| not_found(from))?;
        state.live.insert(to.to_path_buf(), file);
        state.dir_ops.push(DirOp::Rename(from.to_path_buf(), to.to_path_buf()));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.live.remove(path).ok_or_else(|| not_found(path))?;
        state.dir_ops.push(DirOp::Remove(path.to_path_buf()));
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        let ops = std::mem::take(&mut state.dir_ops);
        for op in &ops {
            apply_dir_op(&mut state.durable, op);
        }
        Ok(())
    }

    fn lock(&self, _dir: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        Ok(Box::new(()))
    }
}

impl MemFile {
    fn with_image(image: Vec<u8>, faults: Arc<Faults>) -> Self {
        let live = Region::anonymous(image.len()).unwrap_or_else(|e| panic!("test disk out of memory: {e}"));
        if !image.is_empty() {
            live.write(0, &image).unwrap_or_else(|e| panic!("copying a test image: {e}"));
        }
        MemFile {
            len: image.len() as u64,
            live,
            images: Mutex::new(Images { durable: image, pending: Vec::new() }),
            faults,
        }
    }

    fn apply_pending(&self) {
        let mut images = self.images.lock();
        let pending = std::mem::take(&mut images.pending);
        for p in &pending {
            apply(&mut images.durable, p, Fate::Kept);
        }
    }

    fn image_after_crash(&self, rng: &mut SplitMix64) -> Vec<u8> {
        let images = self.images.lock();
        let mut image = images.durable.clone();
        for p in &images.pending {
            let fate = match (rng.below(4), p) {
                (0, _) => Fate::Kept,
                (1, _) | (_, Pending::SetLen(_)) => Fate::Dropped,
                (2, _) => Fate::Scattered(rng.next_u64()),
                (_, Pending::Write { offset, data }) => {
                    let first = offset / SECTOR_BYTES + 1;
                    let last = (offset + data.len() as u64).div_ceil(SECTOR_BYTES);
                    if first >= last {
                        Fate::Dropped
                    } else {
                        Fate::TornAt((first + rng.below(last - first)) * SECTOR_BYTES)
                    }
                }
            };
            apply(&mut image, p, fate);
        }
        image
    }
}

fn apply(image: &mut Vec<u8>, pending: &Pending, fate: Fate) {
    let (offset, data) = match pending {
        Pending::SetLen(len) => {
            if !matches!(fate, Fate::Dropped) {
                image.resize(usize::try_from(*len).unwrap_or(usize::MAX), 0);
            }
            return;
        }
        Pending::Write { offset, data } => (*offset as usize, data.as_slice()),
    };
    let keep = match fate {
        Fate::Kept => data.len(),
        Fate::Dropped => return,
        Fate::TornAt(at) => (at as usize).saturating_sub(offset).min(data.len()),
        Fate::Scattered(mask) => {
            let sector = SECTOR_BYTES as usize;
            let mut at = offset;
            while at < offset + data.len() {
                let end = ((at / sector + 1) * sector).min(offset + data.len());
                if mask >> ((at / sector) % 64) & 1 == 1 {
                    if image.len() < end {
                        image.resize(end, 0);
                    }
                    image[at..end].copy_from_slice(&data[at - offset..end - offset]);
                }
                at = end;
            }
            return;
        }
    };
    if image.len() < offset + keep {
        image.resize(offset + keep, 0);
    }
    image[offset..offset + keep].copy_from_slice(&data[..keep]);
}

impl VfsFile for MemFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::Error::other("offset too large"))?;
        let mut images = self.images.lock();
        self.live.write(start, data)?;
        images.pending.push(Pending::Write { offset, data: data.to_vec() });
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.faults.syncs.fetch_add(1, Ordering::SeqCst);
        if self.faults.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected: fdatasync failed"));
        }
        self.apply_pending();
        Ok(())
    }

    fn map(&self) -> io::Result<Region> {
        Ok(self.live.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str) -> PathBuf {
        Path::new("/wal").join(name)
    }

    #[test]
    fn synced_writes_survive_every_crash() {
        let disk = LazyDisk::new();
        let file = disk.create(&path("a"), 2048).unwrap();
        file.write_at(0, &[7; 1024]).unwrap();
        file.sync().unwrap();
        disk.sync_dir(Path::new("/wal")).unwrap();
        for seed in 0..50 {
            let after = disk.crash(seed);
            assert_eq!(&after.read(&path("a")).unwrap()[..1024], &[7; 1024]);
        }
    }

    #[test]
    fn unsynced_writes_are_kept_dropped_or_torn_at_sectors() {
        let disk = LazyDisk::new();
        let file = disk.create(&path("a"), 4096).unwrap();
        file.sync().unwrap();
        disk.sync_dir(Path::new("/wal")).unwrap();
        file.write_at(0, &[9; 2048]).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..400 {
            let image = disk.crash(seed).read(&path("a")).unwrap();
            let sectors: Vec<bool> = image[..2048].chunks(SECTOR_BYTES as usize).map(|s| s[0] == 9).collect();
            for (i, sector) in image[..2048].chunks(SECTOR_BYTES as usize).enumerate() {
                assert!(sector.iter().all(|&b| b == if sectors[i] { 9 } else { 0 }), "sectors survive whole");
            }
            assert!(image[2048..].iter().all(|&b| b == 0));
            seen.insert(sectors);
        }
        let prefix = |n: usize| (0..4).map(|i| i < n).collect::<Vec<bool>>();
        assert!((0..=4).all(|n| seen.contains(&prefix(n))), "whole, dropped and torn: {seen:?}");
        assert!(
            seen.contains(&vec![false, true, false, true]) || seen.contains(&vec![true, false, true, false]),
            "scattered"
        );
    }

    #[test]
    fn unsynced_creation_may_vanish_and_failed_sync_persists_nothing() {
        let disk = LazyDisk::new();
        let file = disk.create(&path("a"), 512).unwrap();
        file.write_at(0, &[1; 512]).unwrap();
        disk.fail_syncs(true);
        assert!(file.sync().is_err());
        let outcomes: Vec<bool> = (0..40).map(|s| disk.crash(s).read(&path("a")).is_some()).collect();
        assert!(outcomes.contains(&true) && outcomes.contains(&false));
    }
}
