//! The processing stage's worker pool: jq transforms and body preparation
//! run here, off the actors' threads, on threads with the large stacks jq
//! programs may need.

use std::{
    sync::{Arc, mpsc},
    thread,
};

use tokio::sync::oneshot;

use super::request::prepare_body;
use crate::{limits, transform::Transform};

/// One body to prepare.
pub struct Job {
    pub payload: Vec<u8>,
    pub transform: Option<Arc<Transform>>,
    pub ids: Option<(u64, u64)>,
    pub reply: oneshot::Sender<Result<Option<Vec<u8>>, String>>,
}

/// A fixed set of worker threads fed through a bounded queue: a full queue
/// makes the submitter wait, it never drops a job.
#[derive(Debug, Clone)]
pub struct TransformPool {
    jobs: mpsc::SyncSender<Job>,
}

impl TransformPool {
    pub fn start(workers: usize) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(limits::PROCESSING_QUEUE);
        let queue = Arc::new(parking_lot::Mutex::new(queue));
        for n in 0..workers.max(1) {
            let queue = queue.clone();
            thread::Builder::new().name(format!("transform-{n}")).stack_size(crate::transform::STACK_BYTES).spawn(
                move || {
                    loop {
                        let job = queue.lock().recv();
                        let Ok(job) = job else { return };
                        let result = prepare_body(&job.payload, job.transform.as_deref(), job.ids);
                        let _ = job.reply.send(result);
                    }
                },
            )?;
        }
        Ok(Self { jobs })
    }

    /// Prepares a body on the pool.
    pub async fn prepare(
        &self,
        payload: Vec<u8>,
        transform: Option<Arc<Transform>>,
        ids: Option<(u64, u64)>,
    ) -> Result<Option<Vec<u8>>, String> {
        let (reply, answer) = oneshot::channel();
        let job = Job { payload, transform, ids, reply };
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
