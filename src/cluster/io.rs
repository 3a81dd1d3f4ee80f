//! The runtime the NATS client runs on: [`Io`], a thread of its own that
//! the engine's synchronous code hands work to and waits on.

use std::{future::Future, sync::Arc};

use crate::journal::JournalError;

/// The runtime the NATS client runs on, on a thread of its own.
#[derive(Debug, Clone)]
pub struct Io {
    handle: tokio::runtime::Handle,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl Io {
    pub fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name("ferrox-nats".into()).spawn(move || {
            runtime.block_on(async move {
                let _ = stopped.await;
            })
        })?;
        Ok(Self { handle, _stop: Arc::new(stop) })
    }

    /// Runs `work` on the runtime and waits for its result on this thread
    /// (which must not be the runtime's).
    pub fn call<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> Result<T, JournalError> {
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = answer.send(work.await);
        });
        answered.recv().map_err(|_| JournalError::Cluster("the NATS client's runtime has stopped".into()))
    }

    /// Runs `work` on the runtime in the background.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(work);
    }
}
