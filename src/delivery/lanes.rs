//! Ordered lanes (SPEC §18): with a `fifo_key`, a destination's queue is
//! delivered in order per key. The queue in the state stays one list in
//! acceptance order; a lane is the logs of one key in that list, and its
//! head the first of them. Every look at the queue walks its front (at
//! most `LANE_SCAN` logs), takes the first log of each key as that lane's
//! head, and starts the heads that may go: never a second log of a lane
//! in flight, at most `max_in_flight` logs in flight in all.
//!
//! Everything else is as for one lane: a failed head is `Retrying` (in
//! production) and blocks its lane only, a processing failure halts its
//! lane only, an operator's pause stops every lane. A crash loses nothing
//! of this: the queue's order is in the journal, and a log's lane is read
//! again from its message.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use actix::prelude::*;

use super::{actor::DestinationActor, schedule::next_attempt_at};
use crate::{
    lanes::FifoKey,
    ledger::JournalReader,
    limits,
    model::{Destination, Id, LogStatus},
    state::{Log, State},
};

/// The lanes of a queue's logs, read once from their messages.
#[derive(Default)]
pub struct LaneKeys {
    /// The key they were read with: another key reads them all again.
    key: Option<FifoKey>,
    lanes: HashMap<Id, Arc<str>>,
}

impl LaneKeys {
    /// The lane of `log` under `key`.
    fn lane(&mut self, key: &FifoKey, log: &Log, journal: &JournalReader) -> Arc<str> {
        if self.key.as_ref() != Some(key) {
            self.key = Some(key.clone());
            self.lanes.clear();
        }
        if let Some(lane) = self.lanes.get(&log.id) {
            return lane.clone();
        }
        // A body that cannot be read goes to the empty lane, for now: its
        // delivery reports why it cannot be read.
        let Ok(payload) = journal.message_payload(log.position) else { return Arc::from("") };
        let lane: Arc<str> = key.lane_of_bytes(&payload).into();
        if self.lanes.len() >= 2 * limits::LANE_SCAN {
            // Most are of logs that have left the queue: read again.
            self.lanes.clear();
        }
        self.lanes.insert(log.id, lane.clone());
        lane
    }
}

/// What a look at a laned queue found to do.
#[derive(Default)]
struct Plan {
    /// Heads to deliver now, with their lanes.
    start: Vec<(Log, Arc<str>)>,
    /// Heads waiting to retry without a timer: (log, when).
    arm: Vec<(Id, i64)>,
}

impl DestinationActor {
    /// Starts every lane head that may go, and the retry timers of blocked
    /// lanes.
    pub(super) fn pump_lanes(&mut self, dest: Destination, key: &FifoKey, ctx: &mut Context<Self>) {
        let max = usize::from(dest.max_in_flight.max(1));
        // Until the last outcome is journaled, the heads in the state are
        // not what they are: nothing more goes out.
        if self.flights.len() >= max || self.outcomes_waiting() || !self.window_open(ctx) || !dest.enabled {
            return;
        }
        let plan = self.plan(key, max);
        for (log, due) in plan.arm {
            self.arm_retry(log, due, ctx);
        }
        for (log, lane) in plan.start {
            self.deliver(dest.clone(), log, lane, ctx);
        }
    }

    /// Walks the front of the queue for lane heads that may go.
    fn plan(&mut self, key: &FifoKey, max: usize) -> Plan {
        let shared = self.shared().clone();
        let journal = shared.ledger.reader();
        let durable = shared.ledger.durable_through();
        let now = shared.clock.now_ms();
        let state = shared.ledger.state().read();
        let mut plan = Plan::default();
        let Some(queue) = state.queues.get(&self.id()).filter(|q| q.paused.is_none()) else { return plan };
        let busy: HashSet<Arc<str>> = self.flights.values().cloned().collect();
        let mut seen: HashSet<Arc<str>> = HashSet::new();
        let mut going = self.flights.len();
        for log in queue.pending.iter().take(limits::LANE_SCAN).filter_map(|&i| state.log_at(i)) {
            // Logs join the queue's tail as they are made: the first not
            // yet durable is followed by others, none of which may go.
            if log.created_at() > durable {
                break;
            }
            let lane = self.lane_keys.lane(key, log, &journal);
            // Only a lane's first log is its head.
            if !seen.insert(lane.clone()) || busy.contains(&lane) {
                continue;
            }
            match log.status {
                LogStatus::Pending => {
                    plan.start.push((log.clone(), lane));
                    going += 1;
                }
                LogStatus::Retrying => {
                    let due = next_attempt_at(log, &shared.retry_schedule_ms);
                    if due <= now || self.due.contains(&log.id) {
                        plan.start.push((log.clone(), lane));
                        going += 1;
                    } else if !self.retry_armed(log.id) {
                        plan.arm.push((log.id, due));
                    }
                }
                // Halted: waits for an operator.
                _ => {}
            }
            if going >= max {
                break;
            }
        }
        plan
    }

    /// Whether `log` is the head of its lane: no log of its key before it
    /// in the queue. Without a key, whether it is the queue's head.
    pub(super) fn is_lane_head(&mut self, log_id: Id) -> bool {
        let shared = self.shared().clone();
        let journal = shared.ledger.reader();
        let durable = shared.ledger.durable_through();
        let state = shared.ledger.state().read();
        let key = state.destinations.get(&self.id()).and_then(|d| d.fifo_key.clone());
        let Some(key) = key else { return state.queue_head(self.id(), durable).is_some_and(|h| h.id == log_id) };
        let Some(target) = queued(&state, self.id(), log_id) else { return false };
        let lane = self.lane_keys.lane(&key, target, &journal);
        let Some(queue) = state.queues.get(&self.id()) else { return false };
        for log in queue.pending.iter().filter_map(|&i| state.log_at(i)) {
            if log.id == log_id {
                return true;
            }
            if self.lane_keys.lane(&key, log, &journal) == lane {
                return false;
            }
        }
        false
    }
}

/// The log `log_id` if it is in `destination`'s queue.
fn queued(state: &State, destination: Id, log_id: Id) -> Option<&Log> {
    state.log(log_id).filter(|l| l.destination_id == destination && l.ended_at == 0)
}
