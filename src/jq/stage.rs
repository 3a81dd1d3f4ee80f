//! A destination's processing stage (SPEC §4): the body to deliver for its
//! head, and, ahead of the head, the bodies of the logs after it (see
//! `ahead` for the look-ahead's rules and bounds). Its destination's actor
//! owns it, and drives the preparations it starts.

use std::{collections::HashMap, sync::Arc};

use actix_web::web::Bytes;
use futures_util::{FutureExt as _, future};

use super::{
    ahead::{AheadCounts, Basis, LookAhead, Preparation, Prepared},
    body::prepare_body,
    pool::TransformPool,
    program::Transform,
};
use crate::{
    ledger::{JournalReader, StateReader},
    limits,
    model::{Id, LogStatus, Subscription},
    state::{Log, Message, State},
};

#[derive(Debug)]
pub struct Processing {
    destination: Id,
    state: StateReader,
    journal: JournalReader,
    pool: TransformPool,
    /// Compiled transforms, by program.
    transforms: HashMap<String, Arc<Transform>>,
    ahead: LookAhead,
}

impl Processing {
    pub fn new(
        destination: Id,
        state: StateReader,
        journal: JournalReader,
        pool: TransformPool,
        counts: Arc<AheadCounts>,
    ) -> Self {
        Self { destination, state, journal, pool, transforms: HashMap::new(), ahead: LookAhead::new(counts) }
    }

    /// The head's body, prepared ahead if that still holds, else started
    /// now; and when its message was received.
    pub fn for_head(&mut self, head: &Log) -> (Preparation, i64) {
        let job = {
            let state = self.state.read();
            let subscriptions = subscriptions_of(&state, self.destination);
            let message = state.messages.get(&head.message_id).ok_or("the log's message is missing");
            message.map(|m| Job::new(&state, head, m, program_for(&state, &subscriptions, m)))
        };
        let job = match job {
            Ok(job) => job,
            Err(e) => return (future::ready(Err(e.to_owned())).boxed_local().shared(), 0),
        };
        if let Some(preparation) = self.ahead.take(job.log, &job.basis) {
            return (preparation, job.received_at_ms);
        }
        let payload = self.journal.message_payload(job.position).map_err(|e| e.to_string());
        (self.prepare(&job, payload), job.received_at_ms)
    }

    /// Starts preparing logs after the head, within the look-ahead's
    /// bounds, while the queue flows or its head waits for a retry; only
    /// durable logs are touched. Returns each preparation started, with its
    /// log and the number for `finished`: the caller drives them.
    pub fn start_ahead(&mut self) -> Vec<(Id, u64, Preparation)> {
        let mut started = Vec::new();
        if !self.ahead.has_room() {
            return started;
        }
        for job in self.jobs_ahead() {
            if !self.ahead.has_room() || self.ahead.known_too_big(job.log) {
                break;
            }
            // A payload that cannot be read now is read again in its turn,
            // which reports the failure.
            let Ok(payload) = self.journal.message_payload(job.position) else { break };
            let bytes = payload.len();
            if !self.ahead.fits(bytes) {
                self.ahead.too_big(job.log, bytes);
                break;
            }
            let preparation = self.prepare(&job, Ok(payload));
            let seq = self.ahead.insert(job.log, job.basis, bytes, preparation.clone());
            started.push((job.log, seq, preparation));
        }
        started
    }

    /// Records the end of a preparation `start_ahead` started.
    pub fn finished(&mut self, log: Id, seq: u64, prepared: &Prepared) {
        self.ahead.finished(log, seq, prepared);
    }

    /// Throws away every preparation made ahead.
    pub fn forget_ahead(&mut self) {
        self.ahead.clear();
    }

    /// The next logs to prepare ahead, at most as many as may run at once.
    /// Drops the preparations of logs no longer in the window, or stale.
    fn jobs_ahead(&mut self) -> Vec<Job> {
        let durable = self.journal.durable_through();
        let state = self.state.read();
        let (Some(queue), Some(dest)) =
            (state.queues.get(&self.destination), state.destinations.get(&self.destination))
        else {
            return Vec::new();
        };
        let subscriptions = subscriptions_of(&state, self.destination);
        // Without a transform a body is ready in microseconds at the head's
        // turn: there is nothing worth preparing ahead.
        if subscriptions.iter().all(|s| s.transform.is_none()) {
            self.ahead.clear();
            return Vec::new();
        }
        let mut logs = queue.pending.iter().filter_map(|&i| state.log_at(i)).filter(|l| l.created_at() <= durable);
        let Some(head) = logs.next() else { return Vec::new() };
        let waiting = matches!(head.status, LogStatus::Pending | LogStatus::Retrying);
        if queue.paused.is_some() || !dest.enabled || !waiting {
            return Vec::new();
        }
        let window: Vec<&Log> = logs.take(limits::PROCESSING_READ_AHEAD).collect();
        let mut jobs = Vec::new();
        // Preparations found for the head and the window: any other is of
        // a log that left the window.
        let mut found = usize::from(self.ahead.contains(head.id));
        for log in window.iter().filter(|l| l.status == LogStatus::Pending) {
            // The head reports a missing message in its turn.
            let Some(message) = state.messages.get(&log.message_id) else { break };
            let program = program_for(&state, &subscriptions, message);
            if self.ahead.holds(log.id, program, attempts_of(log)) {
                found += 1;
            } else if jobs.len() < limits::PROCESSING_AHEAD_JOBS {
                jobs.push(Job::new(&state, log, message, program));
            }
        }
        if found < self.ahead.len() {
            self.ahead.retain(|log| log == head.id || window.iter().any(|l| l.id == log));
        }
        jobs
    }

    /// Starts preparing a body from `payload`: the transform runs on the
    /// pool (CPU work, deep stacks); setting the Meta IDs alone is cheap
    /// enough to do on the actor's thread, when the preparation is polled.
    fn prepare(&mut self, job: &Job, payload: Result<Vec<u8>, String>) -> Preparation {
        let transform = self.transform_for(job.basis.program.as_deref());
        let (pool, ids) = (self.pool.clone(), job.ids);
        async move {
            let transform = transform?;
            let payload = payload?;
            let body = match transform {
                Some(transform) => pool.prepare(payload, Some(transform), ids).await?,
                None => prepare_body(&payload, None, ids)?,
            };
            Ok(body.map(Bytes::from))
        }
        .boxed_local()
        .shared()
    }

    /// The compiled transform of `program`, from the cache or compiled now.
    fn transform_for(&mut self, program: Option<&str>) -> Result<Option<Arc<Transform>>, String> {
        let Some(program) = program else { return Ok(None) };
        if let Some(t) = self.transforms.get(program) {
            return Ok(Some(t.clone()));
        }
        let compiled = Arc::new(Transform::compile(program).map_err(|e| format!("transform does not compile: {e}"))?);
        if self.transforms.len() >= limits::TRANSFORM_CACHE {
            self.transforms.clear();
        }
        self.transforms.insert(program.to_owned(), compiled.clone());
        Ok(Some(compiled))
    }
}

/// What processing a log takes from the state.
struct Job {
    log: Id,
    /// Where its message sits in the journal.
    position: u64,
    basis: Basis,
    /// `Meta.Message.ID` and `Meta.Transmission.ID`, for Data Model bodies.
    ids: Option<(u64, u64)>,
    received_at_ms: i64,
}

impl Job {
    fn new(state: &State, log: &Log, message: &Message, program: Option<&str>) -> Self {
        let attempts = attempts_of(log);
        let ids = (&**state.name(message.data_model) != "FHIR")
            .then_some((message.id, message.id << 16 | (attempts & 0xffff)));
        Self {
            log: log.id,
            position: log.position,
            basis: Basis { program: program.map(str::to_owned), attempts },
            ids,
            received_at_ms: message.received_at_ms,
        }
    }
}

fn attempts_of(log: &Log) -> u64 {
    u64::try_from(log.attempts().len()).unwrap_or(u64::MAX)
}

/// The subscriptions to `destination`.
fn subscriptions_of(state: &State, destination: Id) -> Vec<&Subscription> {
    state.subscriptions.values().filter(|s| s.destination_id == destination).collect()
}

/// The transform program of the first of `subscriptions` that routes
/// `message`, in the order of `State::matching_subscriptions`.
fn program_for<'a>(state: &State, subscriptions: &[&'a Subscription], message: &Message) -> Option<&'a str> {
    let (model, event) = (state.name(message.data_model), state.name(message.event_type));
    let subscription = subscriptions.iter().find(|s| s.source_id == message.source_id && s.matches(model, event));
    subscription.and_then(|s| s.transform.as_deref())
}
