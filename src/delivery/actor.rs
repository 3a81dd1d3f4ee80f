//! One actor per destination: the only owner of its FIFO cursor, pause
//! state and retry timer, and the only writer of its logs' status.
//!
//! The actor reads its queue from the state (the log is the truth) and
//! delivers the head, one log at a time. Meanwhile it prepares the logs
//! after the head, within bounds (`process`, `ahead`), so that their
//! transforms run in parallel with the head's delivery. Hints (`Wake`)
//! only say "look again"; every handler re-reads the state, so a lost or
//! repeated hint changes nothing.

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use actix_web::web::Bytes;

use super::{
    Shared,
    request::{self, AttemptIds},
    schedule::next_attempt_at,
};
use crate::{
    journal::Event,
    jq::Processing,
    limits,
    model::{Alert, AlertKind, Attempt, Destination, Environment, Id, LogStatus},
    state::Log,
    tls,
};

pub struct DestinationActor {
    id: Id,
    shared: Arc<Shared>,
    client: awc::Client,
    /// The log being processed or delivered.
    in_flight: Option<Id>,
    /// The retry timer: the log it is for and its handle.
    retry: Option<(Id, SpawnHandle)>,
    /// A pause or halt alert was raised and no recovery yet.
    episode_open: bool,
    /// Bodies for the head and, ahead of it, for the logs after it.
    processing: Processing,
}

impl DestinationActor {
    pub fn new(id: Id, shared: Arc<Shared>) -> Self {
        let durable = shared.ledger.durable_through();
        let episode_open = shared
            .ledger
            .state()
            .read()
            .queue_head(id, durable)
            .is_some_and(|h| matches!(h.status, LogStatus::Retrying | LogStatus::ProcessingFailed));
        // The timeout is set per request, from the destination.
        let client = tls::http_client(&shared.tls, None);
        let processing = Processing::new(
            id,
            shared.ledger.state().clone(),
            shared.ledger.reader(),
            shared.pool.clone(),
            shared.ahead_counts.clone(),
        );
        Self { id, shared, client, in_flight: None, retry: None, episode_open, processing }
    }

    /// Looks at the queue: starts the head's delivery if it is due, and
    /// prepares the logs after it.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        self.pump_head(ctx);
        self.look_ahead(ctx);
    }

    /// Starts the head's delivery or its retry timer, if due.
    fn pump_head(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_some() {
            return;
        }
        let durable = self.shared.ledger.durable_through();
        let (dest, head, paused) = {
            let state = self.shared.ledger.state().read();
            let dest = state.destinations.get(&self.id).cloned();
            let paused = state.queues.get(&self.id).is_some_and(|q| q.paused.is_some());
            (dest, state.queue_head(self.id, durable).cloned(), paused)
        };
        let Some(dest) = dest else { return ctx.stop() };
        let Some(head) = head else { return };
        if paused || !dest.enabled {
            return;
        }
        match head.status {
            LogStatus::Pending => self.deliver(dest, head, ctx),
            LogStatus::Retrying => self.wait_to_retry(dest, head, ctx),
            // Halted: waits for an operator.
            _ => {}
        }
    }

    /// Schedules the head's next attempt, or makes it now if it is due.
    fn wait_to_retry(&mut self, dest: Destination, head: Log, ctx: &mut Context<Self>) {
        if self.retry.as_ref().is_some_and(|(log, _)| *log == head.id) {
            return;
        }
        let due = next_attempt_at(&head, &self.shared.retry_schedule_ms);
        if due <= self.shared.clock.now_ms() {
            return self.deliver(dest, head, ctx);
        }
        let sleep = self.shared.clock.sleep_until(due);
        let handle = ctx.spawn(sleep.into_actor(self).map(|(), act, ctx| {
            act.retry = None;
            act.pump_due(ctx);
        }));
        self.retry = Some((head.id, handle));
    }

    /// After a retry timer: deliver the head if it is still waiting.
    fn pump_due(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_some() {
            return;
        }
        let durable = self.shared.ledger.durable_through();
        let (dest, head) = {
            let state = self.shared.ledger.state().read();
            let paused = state.queues.get(&self.id).is_some_and(|q| q.paused.is_some());
            let head = state.queue_head(self.id, durable).filter(|h| h.status == LogStatus::Retrying && !paused);
            (state.destinations.get(&self.id).cloned(), head.cloned())
        };
        match (dest, head) {
            (Some(dest), Some(head)) if dest.enabled => {
                self.deliver(dest, head, ctx);
                self.look_ahead(ctx);
            }
            _ => self.pump(ctx),
        }
    }

    fn cancel_retry(&mut self, ctx: &mut Context<Self>) {
        if let Some((_, handle)) = self.retry.take() {
            ctx.cancel_future(handle);
        }
    }

    /// Processes and delivers `head`, then records the outcome.
    fn deliver(&mut self, dest: Destination, head: Log, ctx: &mut Context<Self>) {
        self.cancel_retry(ctx);
        self.in_flight = Some(head.id);
        let (preparation, received_at_ms) = self.processing.for_head(&head);
        let shared = self.shared.clone();
        let client = self.client.clone();
        let log_id = head.id;
        let work = async move {
            let Some(body) = preparation.await? else { return Ok(Outcome::Filtered) };
            Ok(send(&shared, &client, &dest, &head, received_at_ms, body).await)
        };
        ctx.spawn(work.into_actor(self).map(move |result: Result<Outcome, String>, act, ctx| {
            act.in_flight = None;
            act.record(log_id, result, ctx);
            act.pump(ctx);
        }));
    }

    /// Starts preparing logs after the head (`Processing::start_ahead`);
    /// each preparation, once done, makes room for another.
    fn look_ahead(&mut self, ctx: &mut Context<Self>) {
        for (log, seq, preparation) in self.processing.start_ahead() {
            ctx.spawn(preparation.into_actor(self).map(move |prepared, act, ctx| {
                act.processing.finished(log, seq, &prepared);
                act.look_ahead(ctx);
            }));
        }
    }
}

/// How a delivery ended.
enum Outcome {
    Filtered,
    Attempted { attempt: Attempt, success: bool, environment: Environment },
}

async fn send(
    shared: &Shared,
    client: &awc::Client,
    dest: &Destination,
    head: &Log,
    received_at_ms: i64,
    body: Bytes,
) -> Outcome {
    let attempt_id = if head.attempts().is_empty() { head.first_attempt_id } else { shared.ids.id() };
    let started_at_ms = shared.clock.now_ms();
    let ids = AttemptIds {
        log_id: head.id.to_string(),
        attempt_id: attempt_id.to_string(),
        message_id: head.message_id,
        received_at_ms,
        now_s: started_at_ms.div_euclid(1000),
    };
    let (http_status, error, response) = match request::headers(dest, &ids, &body) {
        Err(e) => (None, Some(e), None),
        Ok(headers) => {
            let mut req = client.post(&dest.url).timeout(Duration::from_millis(dest.timeout_ms));
            for (name, value) in headers {
                req = req.insert_header((name, value));
            }
            exchange(req, body).await
        }
    };
    let success = http_status.is_some_and(|s| (200..300).contains(&s));
    let duration_ms = u64::try_from(shared.clock.now_ms().saturating_sub(started_at_ms)).unwrap_or(0);
    let attempt = Attempt { id: attempt_id, started_at_ms, duration_ms, http_status, error, response };
    Outcome::Attempted { attempt, success, environment: dest.environment }
}

/// Sends the request; returns the status, the error text and the kept answer.
async fn exchange(req: awc::ClientRequest, body: Bytes) -> (Option<u16>, Option<String>, Option<String>) {
    let mut resp = match req.send_body(body).await {
        Ok(resp) => resp,
        Err(awc::error::SendRequestError::Timeout) => return (None, Some("timed out".to_owned()), None),
        Err(e) => return (None, Some(format!("transport error: {e}")), None),
    };
    let status = resp.status().as_u16();
    let answer = resp.body().limit(request::RESPONSE_BYTES_KEPT * 16).await.map(|b| b.to_vec()).unwrap_or_default();
    let kept = (!answer.is_empty()).then(|| request::kept_response(&answer));
    let error = if (200..300).contains(&status) {
        None
    } else {
        let text = request::receiver_error_text(&answer[..answer.len().min(request::RESPONSE_BYTES_KEPT)]);
        Some(text.map_or_else(|| format!("HTTP {status}"), |t| format!("HTTP {status}: {t}")))
    };
    (Some(status), error, kept)
}

impl DestinationActor {
    /// Journals what happened to `log_id` and the alerts it calls for.
    fn record(&mut self, log_id: Id, result: Result<Outcome, String>, ctx: &mut Context<Self>) {
        let now = self.shared.clock.now_ms();
        let status = |status, reason: Option<String>| Event::LogStatusChanged { log_id, status, at_ms: now, reason };
        let mut events = Vec::new();
        match result {
            // The head leaving the queue, however it leaves, ends a pause or
            // halt episode.
            Ok(Outcome::Filtered) => {
                events.push(status(LogStatus::Filtered, None));
                events.extend(self.recovered(log_id));
            }
            Err(reason) => {
                events.push(status(LogStatus::ProcessingFailed, Some(reason.clone())));
                events.extend(self.alert(
                    AlertKind::ProcessingFailed,
                    Some(log_id),
                    format!("processing failed: {reason}"),
                ));
            }
            Ok(Outcome::Attempted { attempt, success, environment }) => {
                let error = attempt.error.clone();
                events.push(Event::AttemptRecorded { log_id, attempt });
                if success {
                    events.push(status(LogStatus::Succeeded, None));
                    events.extend(self.recovered(log_id));
                } else if environment == Environment::Production {
                    events.push(status(LogStatus::Retrying, error.clone()));
                    let text = format!("delivery failed, queue paused for retries: {}", error.unwrap_or_default());
                    events.extend(self.alert(AlertKind::QueuePaused, Some(log_id), text));
                } else {
                    events.push(status(LogStatus::Failed, error));
                    events.extend(self.recovered(log_id));
                }
            }
        }
        // The ledger's flusher makes these durable within its interval: the
        // next delivery need not wait, and should a crash come first,
        // at-least-once delivery covers an outcome that was not durable.
        for event in &events {
            if let Err(e) = self.shared.ledger.record(event) {
                tracing::error!(destination = %self.id, error = %e, "journal write failed: delivery stops");
                return ctx.stop();
            }
        }
    }

    /// An alert for a new pause or halt episode; none while one is open.
    fn alert(&mut self, kind: AlertKind, log_id: Option<Id>, text: String) -> Option<Event> {
        if self.episode_open {
            return None;
        }
        self.episode_open = true;
        let alert = Alert {
            id: self.shared.ids.id(),
            kind,
            destination_id: self.id,
            log_id,
            at_ms: self.shared.clock.now_ms(),
            text,
        };
        self.shared.alerts.notify(&alert);
        Some(Event::AlertRaised(alert))
    }

    /// The recovery alert, when an episode was open.
    fn recovered(&mut self, log_id: Id) -> Option<Event> {
        if !self.episode_open {
            return None;
        }
        self.episode_open = false;
        let alert = Alert {
            id: self.shared.ids.id(),
            kind: AlertKind::QueueRecovered,
            destination_id: self.id,
            log_id: Some(log_id),
            at_ms: self.shared.clock.now_ms(),
            text: "queue recovered".to_owned(),
        };
        self.shared.alerts.notify(&alert);
        Some(Event::AlertRaised(alert))
    }
}

impl Actor for DestinationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(limits::DESTINATION_MAILBOX);
        ctx.run_interval(Duration::from_millis(limits::DELIVERY_IDLE_CHECK_MS), |act, ctx| act.pump(ctx));
        self.pump(ctx);
    }
}

/// A hint: the queue may have something new.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

impl Handler<Wake> for DestinationActor {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.pump(ctx);
    }
}

impl DestinationActor {
    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(super) fn id(&self) -> Id {
        self.id
    }

    pub(super) fn in_flight(&self) -> Option<Id> {
        self.in_flight
    }

    pub(super) fn after_operator(&mut self, ctx: &mut Context<Self>, recovered_log: Option<Id>) -> Option<Event> {
        self.cancel_retry(ctx);
        recovered_log.and_then(|log| self.recovered(log))
    }

    pub(super) fn wake(&mut self, ctx: &mut Context<Self>) {
        self.pump(ctx);
    }

    /// Throws away every preparation made ahead: after an operator action
    /// none is trusted (a manual retry re-runs processing).
    pub(super) fn forget_prepared(&mut self) {
        self.processing.forget_ahead();
    }
}
