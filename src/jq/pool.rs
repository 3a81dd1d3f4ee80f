//! The processing pool: body preparation runs here, off the actors'
//! threads. Each worker thread hands jq programs to its own child process
//! (see `sandbox`), so a program that loops, hogs memory
//! or overflows its stack fails its job, within a time limit, instead of the
//! engine.

use std::{
    sync::{Arc, mpsc},
    thread,
    time::Duration,
};

use tokio::sync::oneshot;

use super::{
    body::prepare_body,
    program::Transform,
    protocol::Op,
    sandbox::{Sandbox, WorkerCommand},
};
use crate::limits;

/// One body to prepare, or one document to run a program on.
struct Job {
    op: Op,
    payload: Vec<u8>,
    transform: Option<Arc<Transform>>,
    ids: Option<(u64, u64)>,
    reply: oneshot::Sender<Result<Option<Vec<u8>>, String>>,
}

/// A fixed set of worker threads fed through a bounded queue: a full queue
/// makes the submitter wait, it never drops a job.
#[derive(Debug, Clone)]
pub struct TransformPool {
    jobs: mpsc::SyncSender<Job>,
}

impl TransformPool {
    /// Starts `workers` threads; each starts a child with `command` when it
    /// first gets a program, and gives each program at most `limit`.
    pub fn start(workers: usize, command: WorkerCommand, limit: Duration) -> std::io::Result<Self> {
        let command = Arc::new(command);
        let (jobs, queue) = mpsc::sync_channel::<Job>(limits::PROCESSING_QUEUE);
        let queue = Arc::new(parking_lot::Mutex::new(queue));
        for n in 0..workers.max(1) {
            let queue = queue.clone();
            thread::Builder::new().name(format!("transform-{n}")).spawn({
                let mut sandbox = Sandbox::new(command.clone(), limit);
                move || {
                    loop {
                        let job = queue.lock().recv();
                        let Ok(job) = job else { return };
                        let result = match (&job.transform, job.op) {
                            (Some(t), op) => sandbox.call(op, t.program(), job.ids, &job.payload),
                            (None, Op::Prepare) => prepare_body(&job.payload, None, job.ids),
                            (None, Op::Run) => Ok(Some(job.payload)),
                        };
                        let _ = job.reply.send(result);
                    }
                }
            })?;
        }
        Ok(Self { jobs })
    }

    /// Prepares a body on the pool: the transform, then the Meta IDs.
    pub async fn prepare(
        &self,
        payload: Vec<u8>,
        transform: Option<Arc<Transform>>,
        ids: Option<(u64, u64)>,
    ) -> Result<Option<Vec<u8>>, String> {
        self.submit(Op::Prepare, payload, transform, ids).await
    }

    /// Runs a program on a JSON document (a query's reply): its output, or
    /// `None` when it gave `null` or nothing.
    pub async fn run(&self, transform: Arc<Transform>, document: Vec<u8>) -> Result<Option<Vec<u8>>, String> {
        self.submit(Op::Run, document, Some(transform), None).await
    }

    async fn submit(
        &self,
        op: Op,
        payload: Vec<u8>,
        transform: Option<Arc<Transform>>,
        ids: Option<(u64, u64)>,
    ) -> Result<Option<Vec<u8>>, String> {
        let (reply, answer) = oneshot::channel();
        let job = Job { op, payload, transform, ids, reply };
        let jobs = self.jobs.clone();
        // A full queue blocks; do that on a blocking thread, not the actor's.
        let queued = match jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(mpsc::TrySendError::Full(job)) => actix_web::rt::task::spawn_blocking(move || jobs.send(job))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string()),
            Err(mpsc::TrySendError::Disconnected(_)) => Err("the processing pool stopped".to_owned()),
        };
        queued?;
        answer.await.map_err(|_| "the processing pool dropped a job".to_owned())?
    }
}
