//! SENDs in cluster mode, decided and appended in batches.
//!
//! An append to the cluster's stream waits for a quorum, a round trip of
//! a millisecond or more. One SEND per round trip would bound a node by
//! it, so the SENDs that arrive meanwhile wait here and go together: the
//! [`Batcher`]'s thread takes every SEND waiting, decides them all on the
//! state as it follows the last record folded (routing, idempotency keys,
//! message numbers in order, as if one by one), and appends their records
//! as one atomic batch right after that record. When another node appended
//! first, it folds those records and decides the whole batch again. Each
//! SEND is still one record; the batch is all stored or none.

use std::{collections::HashMap, sync::Arc};

use actix::prelude::ResponseFuture;
use parking_lot::{Condvar, Mutex};

use super::{SendOutcome, Submit, Submitted, accept, repeat};
use crate::{
    delivery::Deliveries,
    error::{ApiError, ErrorKind},
    ids::SharedIds,
    journal::Event,
    ledger::Ledger,
    limits::{SEND_BATCH_BYTES_MAX, SEND_BATCH_MAX},
    model::Id,
    state::State,
};

type Answer = tokio::sync::oneshot::Sender<Result<Submitted, ApiError>>;

struct Waiting {
    msg: Submit,
    now_ms: i64,
    answer: Answer,
}

#[derive(Default)]
struct Queue {
    waiting: Mutex<Vec<Waiting>>,
    arrived: Condvar,
}

/// Where SENDs wait to be batched; its thread ends with the router.
pub struct Batcher {
    queue: Arc<Queue>,
}

impl Drop for Batcher {
    fn drop(&mut self) {
        // Wakes the thread to see that it is alone.
        self.queue.arrived.notify_all();
    }
}

impl Batcher {
    pub fn start(ledger: Ledger, ids: SharedIds, deliveries: Option<Deliveries>) -> Self {
        let queue = Arc::new(Queue::default());
        let worker = queue.clone();
        let started = std::thread::Builder::new()
            .name("ferrox-batcher".into())
            .spawn(move || run(&worker, &ledger, &ids, deliveries.as_ref()));
        if let Err(e) = started {
            tracing::error!(error = %e, "the SEND batcher could not start");
        }
        Self { queue }
    }

    /// Queues a SEND; the answer comes once its batch is stored.
    pub fn submit(&self, msg: Submit, now_ms: i64) -> ResponseFuture<Result<Submitted, ApiError>> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.queue.waiting.lock().push(Waiting { msg, now_ms, answer });
        self.queue.arrived.notify_one();
        Box::pin(async move { answered.await.unwrap_or_else(|_| Err(ApiError::internal("the SEND batcher stopped"))) })
    }
}

fn run(queue: &Arc<Queue>, ledger: &Ledger, ids: &SharedIds, deliveries: Option<&Deliveries>) {
    loop {
        let batch = {
            let mut waiting = queue.waiting.lock();
            while waiting.is_empty() {
                if Arc::strong_count(queue) == 1 {
                    return;
                }
                queue.arrived.wait_for(&mut waiting, std::time::Duration::from_millis(500));
            }
            take(&mut waiting)
        };
        propose(batch, ledger, ids, deliveries);
    }
}

/// The SENDs that go in the next batch, oldest first.
fn take(waiting: &mut Vec<Waiting>) -> Vec<Waiting> {
    let (mut count, mut bytes) = (0, 0);
    for w in waiting.iter() {
        if count == SEND_BATCH_MAX || (count > 0 && bytes + w.msg.payload.len() > SEND_BATCH_BYTES_MAX) {
            break;
        }
        count += 1;
        bytes += w.msg.payload.len();
    }
    waiting.drain(..count).collect()
}

/// What one SEND of a batch comes to.
enum Decided {
    /// A new message: the batch's record at this index.
    New(usize),
    /// The same key and body as the batch's record at this index.
    Again(usize),
    /// A repeat of a message stored before.
    Earlier(SendOutcome),
    Refused(ApiError),
}

fn propose(batch: Vec<Waiting>, ledger: &Ledger, ids: &SharedIds, deliveries: Option<&Deliveries>) {
    let mut decided = Vec::with_capacity(batch.len());
    let journal = ledger.reader();
    let recorded = ledger.record_batch_with(&mut |state| {
        decided.clear();
        decide(state, &batch, &journal, ids, &mut decided)
    });
    let stored: Option<(u64, Vec<Event>)> = match recorded {
        Ok(stored) => stored,
        Err(e) => {
            let error = ApiError::from(e);
            for (waiting, decision) in batch.into_iter().zip(decided) {
                let answer = match decision {
                    Decided::Earlier(outcome) => Ok(outcome),
                    Decided::Refused(e) => Err(e),
                    Decided::New(_) | Decided::Again(_) => Err(error.clone()),
                };
                let _ = waiting.answer.send(answer.map(done));
            }
            return;
        }
    };
    let records = stored.as_ref().map_or(&[][..], |(_, events)| events.as_slice());
    let first = stored.as_ref().map_or(0, |(first, _)| *first);
    let outcome = |i: usize, repeated: bool| match &records[i] {
        Event::MessageAccepted(a) => {
            Ok(SendOutcome { message_id: a.message_id, position: first + i as u64, logs: a.logs.clone(), repeated })
        }
        _ => Err(ApiError::internal("a SEND's record is not a message")),
    };
    if let Some(deliveries) = deliveries {
        let mut woken: Vec<Id> = records
            .iter()
            .filter_map(|r| if let Event::MessageAccepted(a) = r { Some(a) } else { None })
            .flat_map(|a| a.logs.iter().map(|l| l.destination_id))
            .collect();
        woken.sort_unstable();
        woken.dedup();
        woken.into_iter().for_each(|d| deliveries.wake(d));
    }
    for (waiting, decision) in batch.into_iter().zip(decided) {
        let answer = match decision {
            Decided::New(i) => outcome(i, false),
            Decided::Again(i) => outcome(i, true),
            Decided::Earlier(outcome) => Ok(outcome),
            Decided::Refused(e) => Err(e),
        };
        let _ = waiting.answer.send(answer.map(done));
    }
}

/// The answer to a SEND whose record is stored: durable already.
fn done(outcome: SendOutcome) -> Submitted {
    Submitted { outcome, durable: Box::pin(async { Ok(()) }) }
}

/// Decides every SEND of `batch` on `state`, in order, as if each came
/// after the ones before it: returns the records to append, and says in
/// `decided` what each SEND comes to.
fn decide(
    state: &State,
    batch: &[Waiting],
    journal: &crate::ledger::JournalReader,
    ids: &SharedIds,
    decided: &mut Vec<Decided>,
) -> Vec<Event> {
    let mut records = Vec::new();
    let mut keys: HashMap<(Id, &str), (usize, &crate::journal::BodyHash, u64)> = HashMap::new();
    let mut next_id = state.next_message_id.max(1);
    for w in batch {
        let msg = &w.msg;
        if let Some(keyed) = &msg.idempotency {
            if let Some((i, hash, message_id)) = keys.get(&(msg.source_id, keyed.key.as_str())) {
                decided.push(if *hash == &keyed.body_hash {
                    Decided::Again(*i)
                } else {
                    Decided::Refused(ApiError::new(
                        ErrorKind::Unprocessable,
                        format!(
                            "Idempotency-Key '{}' was used for message {message_id} with a different body within \
                             the last 24 hours: send a new message with a new key",
                            keyed.key
                        ),
                    ))
                });
                continue;
            }
            match repeat(state, journal, msg.source_id, keyed, w.now_ms) {
                Ok(Some(outcome)) => {
                    decided.push(Decided::Earlier(outcome));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    decided.push(Decided::Refused(e));
                    continue;
                }
            }
        }
        match accept(state, msg, msg.payload.clone(), w.now_ms, ids.as_ref(), next_id) {
            Ok(accepted) => {
                if let Some(keyed) = &msg.idempotency {
                    keys.insert((msg.source_id, keyed.key.as_str()), (records.len(), &keyed.body_hash, next_id));
                }
                next_id += 1;
                decided.push(Decided::New(records.len()));
                records.push(Event::MessageAccepted(accepted));
            }
            Err(e) => decided.push(Decided::Refused(e)),
        }
    }
    records
}
