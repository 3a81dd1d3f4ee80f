//! Preparing the next segment in the background, and healing from a disk
//! that cannot take one.
//!
//! One thread per log creates the segment the writer will roll into next,
//! before it is needed. Creation can fail for a while: the disk is full
//! (ENOSPC while the zeros are written) or failing (EIO). Nothing was
//! written to a segment that never got its name, so such a failure is not
//! fatal to the log the way a failed `fdatasync` is: the thread removes the
//! partial file and tries again after a backoff, and the writer, meanwhile,
//! fails the appends that need the segment at once, with the reason, rather
//! than trying a creation of its own per append. Once the disk takes a
//! segment again, the next append rolls into it.

use std::{
    path::PathBuf,
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use parking_lot::{Condvar, Mutex};

use crate::{error::Result, segment::Segment, vfs::Vfs};

/// First wait after a failed creation: short, since space often comes back
/// quickly (a log rotated, a file deleted).
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest wait between two tries: appends come back within this long of
/// space coming back.
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The background preparation of segments for one log.
pub(crate) struct Preparer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    segment_bytes: u64,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The segment asked for: its index and salt.
    wanted: Option<(u64, u64)>,
    ready: Option<Arc<Segment>>,
    /// Why the last try failed, until one succeeds.
    failure: Option<String>,
    stop: bool,
}

/// What the writer finds when it needs the next segment.
pub(crate) enum Next {
    Ready(Arc<Segment>),
    /// The last try failed, and the thread is trying again.
    Failing(String),
    /// Nothing was asked for: the writer creates the segment itself.
    NotAsked,
}

impl Preparer {
    pub(crate) fn start(vfs: Arc<dyn Vfs>, dir: PathBuf, segment_bytes: u64) -> std::io::Result<Self> {
        let shared = Arc::new(Shared { vfs, dir, segment_bytes, state: Mutex::default(), changed: Condvar::new() });
        let worker = shared.clone();
        let thread = std::thread::Builder::new().name("wal-prepare".into()).spawn(move || worker.run())?;
        Ok(Self { shared, thread: Some(thread) })
    }

    /// Asks for segment `index`, unless one is ready or being prepared.
    pub(crate) fn ask(&self, index: u64, salt: u64) {
        let mut state = self.shared.state.lock();
        if state.ready.is_none() && state.wanted.is_none() {
            state.wanted = Some((index, salt));
            self.shared.changed.notify_all();
        }
    }

    /// The segment asked for: waits while a first try is under way, and
    /// fails at once while tries are failing.
    pub(crate) fn take(&self) -> Next {
        let mut state = self.shared.state.lock();
        loop {
            if let Some(segment) = state.ready.take() {
                return Next::Ready(segment);
            }
            if let Some(reason) = &state.failure {
                return Next::Failing(reason.clone());
            }
            if state.wanted.is_none() {
                return Next::NotAsked;
            }
            self.shared.changed.wait(&mut state);
        }
    }

    /// Why segments cannot be created now, if they cannot.
    pub(crate) fn failure(&self) -> Option<String> {
        let state = self.shared.state.lock();
        if state.ready.is_some() { None } else { state.failure.clone() }
    }

    /// Whether a segment is ready to roll into.
    pub(crate) fn has_ready(&self) -> bool {
        self.shared.state.lock().ready.is_some()
    }
}

impl Shared {
    fn run(&self) {
        let mut wait = RETRY_MIN;
        loop {
            let (index, salt) = {
                let mut state = self.state.lock();
                loop {
                    if state.stop {
                        return;
                    }
                    match (state.wanted, &state.ready) {
                        (Some(wanted), None) => break wanted,
                        _ => self.changed.wait(&mut state),
                    }
                }
            };
            let created: Result<Arc<Segment>> =
                Segment::create(self.vfs.as_ref(), &self.dir, index, self.segment_bytes, salt);
            let mut state = self.state.lock();
            match created {
                Ok(segment) => {
                    state.ready = Some(segment);
                    state.wanted = None;
                    state.failure = None;
                    wait = RETRY_MIN;
                    self.changed.notify_all();
                }
                Err(e) => {
                    state.failure = Some(e.to_string());
                    self.changed.notify_all();
                    let until = Instant::now() + wait;
                    while !state.stop && Instant::now() < until {
                        self.changed.wait_until(&mut state, until);
                    }
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

impl Drop for Preparer {
    fn drop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.changed.notify_all();
        // Let a segment being created finish, so the directory is settled.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
