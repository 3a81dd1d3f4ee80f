//! Files made ready before they are needed. Creating a table chunk or a
//! rows file writes its zeros and syncs it and its directory: tens of
//! milliseconds that would otherwise be spent under the state's write lock,
//! holding up every SEND behind it. So when file `n` comes into use, file
//! `n + 1` is created on a thread of its own, and taken when its turn comes.
//!
//! A file made ahead is at its final name, zero-filled but for its header,
//! which `Rows::open` and `History::open` read as a file with nothing in it
//! yet. A crash may leave one behind: it is used when its turn comes.

use std::{
    io,
    path::{Path, PathBuf},
    thread::JoinHandle,
};

use ferrox_storage::MappedFile;

/// At most one file in the making, by number.
#[derive(Debug, Default)]
pub struct Ahead {
    making: Option<(u64, JoinHandle<io::Result<MappedFile>>)>,
}

impl Ahead {
    /// Starts creating file `number` at `path`, `len` bytes long, beginning
    /// with `header`, unless it is already in the making. A file already
    /// being made under another number is waited for and dropped.
    pub fn prepare(&mut self, number: u64, path: PathBuf, len: u64, header: Vec<u8>) {
        if self.making.as_ref().is_some_and(|(n, _)| *n == number) {
            return;
        }
        self.settle();
        let made = std::thread::Builder::new().name("ferrox-ahead".into()).spawn(move || {
            let mut file = MappedFile::create(&path, len)?;
            file.bytes_mut()[..header.len()].copy_from_slice(&header);
            Ok(file)
        });
        match made {
            Ok(thread) => self.making = Some((number, thread)),
            // No thread to make it on: it is made when needed.
            Err(e) => tracing::warn!(error = %e, "a history file could not be prepared ahead"),
        }
    }

    /// File `number`, if it was made ahead (waiting for it if it is still
    /// in the making). `None` when it was not, or its making failed: the
    /// caller then makes it itself, and meets the error there if it lasts.
    pub fn take(&mut self, number: u64) -> Option<MappedFile> {
        if self.making.as_ref().is_none_or(|(n, _)| *n != number) {
            return None;
        }
        let (_, thread) = self.making.take()?;
        match thread.join() {
            Ok(Ok(file)) => Some(file),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "a history file made ahead failed; making it again");
                None
            }
            Err(_) => None,
        }
    }

    /// File `number` of a series (`path` and `header` name and begin each):
    /// the one made ahead if there is one, else made now; and the next one
    /// started.
    pub fn next_of(
        &mut self,
        number: u64,
        len: u64,
        path: impl Fn(u64) -> PathBuf,
        header: impl Fn(u64) -> Vec<u8>,
    ) -> Result<MappedFile, (PathBuf, io::Error)> {
        let file = match self.take(number) {
            Some(file) => file,
            None => {
                let at = path(number);
                make_now(&at, len, &header(number)).map_err(|e| (at, e))?
            }
        };
        self.prepare(number + 1, path(number + 1), len, header(number + 1));
        Ok(file)
    }

    /// Waits for the file in the making, if any, and drops it (it stays on
    /// disk). Called before the directory is emptied.
    pub fn settle(&mut self) {
        if let Some((_, thread)) = self.making.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.settle();
    }
}

/// Makes file `path` now, replacing whatever is there (a file a crash
/// left half made, or one from a history that was thrown away).
pub fn make_now(path: &Path, len: u64, header: &[u8]) -> io::Result<MappedFile> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let mut file = MappedFile::create(path, len)?;
    file.bytes_mut()[..header.len()].copy_from_slice(header);
    Ok(file)
}
