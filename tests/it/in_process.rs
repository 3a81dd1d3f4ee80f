//! An engine running in the test's own process, on an injected clock, so
//! that tests can move time (retry schedules, retention) without waiting.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, mpsc},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use actix_web::{dev::ServerHandle, rt::System};
use ferrox::{clock::SharedClock, config::Config, ids::OsIds, server};
use tempfile::TempDir;

use crate::client::Client;

/// An engine in this process, on its own actix system and thread.
pub struct Engine {
    pub client: Client,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
    _data_dir: Option<TempDir>,
}

impl Engine {
    /// Starts on a fresh data directory with the configuration `toml`.
    pub fn start(toml: &str, clock: SharedClock) -> Self {
        let data_dir = tempfile::tempdir().expect("creating the data dir");
        let mut engine = Self::start_in(toml, data_dir.path(), clock);
        engine._data_dir = Some(data_dir);
        engine
    }

    /// Starts on `data_dir`, which the caller keeps (to restart on it).
    pub fn start_in(toml: &str, data_dir: &Path, clock: SharedClock) -> Self {
        let mut config = Config::parse(toml).expect("the test configuration parses");
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.data_dir = data_dir.to_owned();
        let (started, ready) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("engine".to_owned())
            .spawn(move || {
                let system = System::new();
                system.block_on(async move {
                    match server::start(config, clock, Arc::new(OsIds::default())).await {
                        Err(e) => drop(started.send(Err(format!("{e:#}")))),
                        Ok(running) => {
                            let _ = started.send(Ok((running.addrs[0], running.server.handle())));
                            if let Err(e) = running.server.await {
                                eprintln!("engine: {e}");
                            }
                        }
                    }
                    System::current().stop();
                });
                // Runs until the stop above has stopped the arbiters.
                let _ = system.run();
            })
            .expect("spawning the engine's thread");
        let (addr, handle) = ready
            .recv_timeout(Duration::from_secs(30))
            .expect("the engine did not start in time")
            .unwrap_or_else(|e| panic!("the engine did not start: {e}"));
        Self { client: Client::new(format!("http://{addr}")), handle, thread: Some(thread), _data_dir: None }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // The stop command is sent at once; the future only waits for it.
        drop(self.handle.stop(false));
        let Some(thread) = self.thread.take() else { return };
        let end = Instant::now() + Duration::from_secs(10);
        while !thread.is_finished() && Instant::now() < end {
            thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            eprintln!("the in-process engine did not stop within 10 s; leaving its thread");
        }
    }
}
