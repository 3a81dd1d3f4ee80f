//! Group commit for asynchronous callers: one committer thread syncs the log
//! whenever someone waits, and wakes the futures whose records became
//! durable. A task awaiting durability costs no thread of its own, so many
//! concurrent appenders share each `fdatasync` without a context switch per
//! record.
//!
//! Plain `std::future`: no runtime is assumed.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    thread::JoinHandle,
};

use parking_lot::{Condvar, Mutex};

use crate::{
    error::{Error, Result},
    wal::Wal,
};

/// Runs the committer thread of a log. Dropping it stops the thread after
/// its current sync.
pub struct Committer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    wal: Arc<Wal>,
    state: Mutex<State>,
    work: Condvar,
}

#[derive(Default)]
struct State {
    /// Waiting futures: the sequence number each waits for, its slot (one
    /// per future: several may wait for the same record), and its waker.
    waiters: Vec<(u64, u64, Waker)>,
    next_slot: u64,
    /// Set once a sync failed; every later commit fails with it.
    failed: Option<String>,
    stop: bool,
}

impl fmt::Debug for Committer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Committer").field("wal", &self.shared.wal).finish()
    }
}

impl Committer {
    /// Starts the committer thread for `wal`.
    pub fn start(wal: Arc<Wal>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared { wal, state: Mutex::new(State::default()), work: Condvar::new() });
        let worker = shared.clone();
        let thread = std::thread::Builder::new().name("wal-commit".into()).spawn(move || worker.run())?;
        Ok(Self { shared, thread: Some(thread) })
    }

    /// A future that resolves once record `seq` is durable.
    pub fn commit(&self, seq: u64) -> Commit {
        Commit { shared: self.shared.clone(), seq, slot: None }
    }

    pub fn wal(&self) -> &Arc<Wal> {
        &self.shared.wal
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.work.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn run(&self) {
        loop {
            {
                let mut state = self.state.lock();
                while state.waiters.is_empty() && !state.stop {
                    self.work.wait(&mut state);
                }
                if state.stop {
                    // Wake everyone: their futures see the log still
                    // unsynced and fail rather than hang.
                    state.failed.get_or_insert_with(|| "the committer stopped".to_owned());
                    state.waiters.drain(..).for_each(|(_, _, w)| w.wake());
                    return;
                }
            }
            // Sync everything appended so far, not only what is awaited:
            // appenders whose futures are not yet polled ride along.
            let result = self.wal.sync();
            let mut state = self.state.lock();
            match result {
                Ok(()) => {
                    let synced = self.wal.synced_through();
                    state.waiters.retain(|(seq, _, waker)| {
                        let done = *seq <= synced;
                        if done {
                            waker.wake_by_ref();
                        }
                        !done
                    });
                }
                Err(e) => {
                    state.failed = Some(e.to_string());
                    state.waiters.drain(..).for_each(|(_, _, w)| w.wake());
                    state.stop = true;
                }
            }
        }
    }
}

/// Resolves once its record is durable; see [`Committer::commit`].
#[must_use = "a commit does nothing unless awaited"]
pub struct Commit {
    shared: Arc<Shared>,
    seq: u64,
    /// Where this future's waker is registered, once it is.
    slot: Option<u64>,
}

impl fmt::Debug for Commit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Commit").field("seq", &self.seq).finish()
    }
}

impl Future for Commit {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        // The committer publishes the synced point before taking this lock
        // to wake waiters, so checking under the lock loses no wake-up.
        let mut state = shared.state.lock();
        if shared.wal.synced_through() >= this.seq {
            return Poll::Ready(Ok(()));
        }
        if let Some(reason) = &state.failed {
            return Poll::Ready(Err(Error::Poisoned(reason.clone())));
        }
        if this.seq >= shared.wal.next_seq() {
            return Poll::Ready(Err(Error::NotAppended { seq: this.seq }));
        }
        let registered = this.slot.and_then(|slot| state.waiters.iter_mut().find(|(_, s, _)| *s == slot));
        match registered {
            Some((_, _, waker)) => waker.clone_from(cx.waker()),
            None => {
                let slot = state.next_slot;
                state.next_slot += 1;
                state.waiters.push((this.seq, slot, cx.waker().clone()));
                this.slot = Some(slot);
            }
        }
        drop(state);
        shared.work.notify_one();
        Poll::Pending
    }
}

impl Drop for Commit {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.shared.state.lock().waiters.retain(|(_, s, _)| *s != slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{path::Path, task::Wake};

    use super::*;
    use crate::{Options, sim::LazyDisk};

    struct Flag(Mutex<bool>, Condvar);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            *self.0.lock() = true;
            self.1.notify_all();
        }
    }

    /// Polls `fut` to completion on this thread.
    fn block_on<F: Future>(fut: F) -> F::Output {
        let flag = Arc::new(Flag(Mutex::new(false), Condvar::new()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            let mut woken = flag.0.lock();
            while !*woken {
                flag.1.wait(&mut woken);
            }
            *woken = false;
        }
    }

    fn wal(disk: &LazyDisk) -> Arc<Wal> {
        let options = Options { segment_bytes: 8192, max_record_bytes: 512, seed: Some(1), ..Options::default() };
        Arc::new(Wal::open_on(Arc::new(disk.clone()), Path::new("/wal"), options).unwrap())
    }

    #[test]
    fn commit_resolves_once_durable() {
        let disk = LazyDisk::new();
        let committer = Committer::start(wal(&disk)).unwrap();
        let seqs: Vec<u64> = (0..50).map(|i| committer.wal().append(1, &[i; 40]).unwrap()).collect();
        block_on(committer.commit(seqs[49])).unwrap();
        assert_eq!(committer.wal().synced_through(), 50);
        block_on(committer.commit(3)).unwrap();
        assert!(matches!(block_on(committer.commit(51)), Err(Error::NotAppended { seq: 51 })));
    }

    #[test]
    fn several_futures_may_wait_for_the_same_record() {
        let disk = LazyDisk::new();
        let committer = Arc::new(Committer::start(wal(&disk)).unwrap());
        let seq = committer.wal().append(1, b"shared").unwrap();
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let committer = committer.clone();
                std::thread::spawn(move || block_on(committer.commit(seq)))
            })
            .collect();
        for waiter in waiters {
            waiter.join().unwrap().unwrap();
        }
        assert!(committer.shared.state.lock().waiters.is_empty(), "no waker is left behind");
    }

    #[test]
    fn a_failed_sync_fails_every_waiting_commit() {
        let disk = LazyDisk::new();
        let committer = Committer::start(wal(&disk)).unwrap();
        disk.fail_syncs(true);
        let seq = committer.wal().append(1, b"x").unwrap();
        assert!(matches!(block_on(committer.commit(seq)), Err(Error::Poisoned(_))));
        assert!(matches!(block_on(committer.commit(seq)), Err(Error::Poisoned(_))));
    }
}
