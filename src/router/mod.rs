//! The router actor: the only writer of the journal for the front half. It
//! routes a validated SEND, assigns the message and log IDs, appends one
//! event, applies it to the state in log order, and answers once the event
//! is durable. Configuration changes take the same path, so validation,
//! append and apply are serialized.

mod batch;

use std::collections::BTreeSet;

use actix::prelude::*;
use serde_json::Value;

use crate::{
    clock::SharedClock,
    delivery::Deliveries,
    error::{ApiError, ErrorKind},
    ids::{IdSource, SharedIds},
    inbound::{DestinationRef, Inbound},
    journal::{Accepted, CommitFuture, Event, Keyed, NewLog, Resent},
    ledger::JournalReader,
    ledger::Ledger,
    limits,
    model::{Attempt, Id, LogStatus, LogType},
    operators::AuditDraft,
    state::State,
};

pub struct Router {
    ledger: Ledger,
    clock: SharedClock,
    ids: SharedIds,
    /// Hints for the destination actors, once an event is durable.
    deliveries: Option<Deliveries>,
    /// In cluster mode, where SENDs go to be decided and appended in
    /// batches (`batch`).
    batcher: Option<batch::Batcher>,
}

impl Router {
    pub fn new(ledger: Ledger, clock: SharedClock, ids: SharedIds) -> Self {
        Self { ledger, clock, ids, deliveries: None, batcher: None }
    }

    pub fn with_deliveries(mut self, deliveries: Deliveries) -> Self {
        self.deliveries = Some(deliveries);
        self
    }

    /// Appends `event` and applies it; returns its position. Nothing is
    /// applied if the append fails.
    fn append(&mut self, event: &Event) -> Result<u64, ApiError> {
        Ok(self.ledger.record(event)?)
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").finish_non_exhaustive()
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(limits::ROUTER_MAILBOX);
        if self.ledger.shared() {
            self.batcher = Some(batch::Batcher::start(self.ledger.clone(), self.ids.clone(), self.deliveries.clone()));
        }
    }
}

/// What routing needs of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    pub data_model: String,
    pub event_type: String,
    /// Explicit destinations; empty routes by subscriptions.
    pub destinations: Vec<DestinationRef>,
}

impl Routing {
    pub fn of(inbound: &Inbound) -> Self {
        Self {
            data_model: inbound.data_model.clone(),
            event_type: inbound.event_type.clone(),
            destinations: inbound.destinations.clone(),
        }
    }
}

/// A validated SEND (or a query to record) from an authenticated source.
#[derive(Debug)]
pub struct Submit {
    pub source_id: Id,
    pub routing: Routing,
    pub payload: Vec<u8>,
    /// The `Idempotency-Key` and the digest of the body.
    pub idempotency: Option<Keyed>,
    pub log_type: LogType,
}

/// What the 200 reports.
#[derive(Debug, Clone, PartialEq)]
pub struct SendOutcome {
    pub message_id: u64,
    pub position: u64,
    pub logs: Vec<NewLog>,
    /// The answer repeats an earlier request with the same idempotency key.
    pub repeated: bool,
}

/// The router's answer to a `Submit`: the outcome and a future that
/// resolves once it is durable. The caller awaits durability on its own
/// thread, so the router goes on routing meanwhile.
pub struct Submitted {
    pub outcome: SendOutcome,
    pub durable: CommitFuture,
}

impl std::fmt::Debug for Submitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitted").field("outcome", &self.outcome).finish_non_exhaustive()
    }
}

impl Message for Submit {
    type Result = Result<Submitted, ApiError>;
}

impl Handler<Submit> for Router {
    type Result = ResponseFuture<Result<Submitted, ApiError>>;

    fn handle(&mut self, mut msg: Submit, _ctx: &mut Self::Context) -> Self::Result {
        let now = self.clock.now_ms();
        if let Some(batcher) = &self.batcher {
            return batcher.submit(msg, now);
        }
        let submitted = (|| {
            let state = self.ledger.state().read();
            if let Some(keyed) = &msg.idempotency
                && let Some(outcome) = repeat(&state, &self.ledger.reader(), msg.source_id, keyed, now)?
            {
                drop(state);
                let durable = self.ledger.commit(outcome.position);
                return Ok(Submitted { outcome, durable });
            }
            let payload = std::mem::take(&mut msg.payload);
            let message_id = state.next_message_id.max(1);
            let accepted = accept(&state, &msg, payload, now, self.ids.as_ref(), message_id)?;
            drop(state);
            let (message_id, logs) = (accepted.message_id, accepted.logs.clone());
            let position = self.append(&Event::MessageAccepted(accepted))?;
            Ok(self.submitted(message_id, logs, position))
        })();
        Box::pin(async move { submitted })
    }
}

impl Router {
    /// The answer to a message recorded at `position`: its outcome, and a
    /// future that wakes its destinations once it is durable.
    fn submitted(&self, message_id: u64, logs: Vec<NewLog>, position: u64) -> Submitted {
        let commit = self.ledger.commit(position);
        let deliveries = self.deliveries.clone();
        let destinations: Vec<Id> = logs.iter().map(|l| l.destination_id).collect();
        let durable: CommitFuture = Box::pin(async move {
            commit.await?;
            if let Some(deliveries) = deliveries {
                destinations.into_iter().for_each(|d| deliveries.wake(d));
            }
            Ok(())
        });
        Submitted { outcome: SendOutcome { message_id, position, logs, repeated: false }, durable }
    }
}

/// The outcome of an earlier message with this idempotency key, if
/// any; a 422 if that message had another body (SPEC §3).
pub(crate) fn repeat(
    state: &State,
    journal: &JournalReader,
    source: Id,
    keyed: &Keyed,
    now_ms: i64,
) -> Result<Option<SendOutcome>, ApiError> {
    let Some(earlier) = state.idempotent(source, &keyed.key, now_ms) else { return Ok(None) };
    if earlier.body_hash != keyed.body_hash {
        return Err(ApiError::new(
            ErrorKind::Unprocessable,
            format!(
                "Idempotency-Key '{}' was used for message {} with a different body within the last 24 hours: \
                 send a new message with a new key",
                keyed.key, earlier.message_id
            ),
        ));
    }
    // A durable message's logs are read back from the journal; a
    // message accepted moments ago is among the newest logs in memory.
    let journaled = journal.message_logs(earlier.position).map_err(|e| {
        ApiError::internal(format!("reading message {} back from the journal: {e}", earlier.message_id))
    })?;
    let logs = journaled.unwrap_or_else(|| {
        let mut logs: Vec<NewLog> = state
            .memory_logs()
            .rev()
            .map(|(_, l)| l)
            .take_while(|l| l.position >= earlier.position)
            .filter(|l| l.message_id == earlier.message_id)
            .map(|l| NewLog { id: l.id, attempt_id: l.first_attempt_id, destination_id: l.destination_id })
            .collect();
        logs.reverse();
        logs
    });
    Ok(Some(SendOutcome { message_id: earlier.message_id, position: earlier.position, logs, repeated: true }))
}

/// The record of a new message: routed, its logs named, numbered
/// `message_id`.
pub(crate) fn accept(
    state: &State,
    msg: &Submit,
    payload: Vec<u8>,
    now: i64,
    ids: &dyn IdSource,
    message_id: u64,
) -> Result<Accepted, ApiError> {
    let destinations = route(state, msg.source_id, &msg.routing)?;
    let logs: Vec<NewLog> = destinations
        .into_iter()
        .map(|destination_id| NewLog { id: ids.id(), attempt_id: ids.id(), destination_id })
        .collect();
    Ok(Accepted {
        message_id,
        log_type: msg.log_type,
        source_id: msg.source_id,
        data_model: msg.routing.data_model.clone(),
        event_type: msg.routing.event_type.clone(),
        received_at_ms: now,
        idempotency: msg.idempotency.clone(),
        logs,
        payload,
    })
}

/// The destinations a message goes to (SPEC §3 routing), in a stable order.
pub fn route(state: &State, source: Id, inbound: &Routing) -> Result<Vec<Id>, ApiError> {
    let (model, event) = (inbound.data_model.as_str(), inbound.event_type.as_str());
    // A disabled destination still gets its logs: they wait in its queue
    // until it is enabled again, so nothing is lost while it is off.
    let subscribed: BTreeSet<Id> = state
        .matching_subscriptions(source, model, event)
        .map(|s| s.destination_id)
        .filter(|d| state.destinations.contains_key(d))
        .collect();
    let mut chosen = Vec::new();
    if inbound.destinations.is_empty() {
        chosen.extend(subscribed.iter().copied());
        if chosen.is_empty() {
            return Err(ApiError::invalid("No Subscriptions found for message."));
        }
    }
    for wanted in &inbound.destinations {
        let id = resolve(state, wanted)?;
        if !subscribed.contains(&id) {
            return Err(ApiError::invalid(format!(
                "Destination {} has no active subscription from this source for {model}:{event}",
                describe(wanted)
            )));
        }
        if !chosen.contains(&id) {
            chosen.push(id);
        }
    }
    if chosen.len() > limits::MAX_LOGS_PER_MESSAGE {
        return Err(ApiError::invalid(format!(
            "A message may go to at most {} destinations",
            limits::MAX_LOGS_PER_MESSAGE
        )));
    }
    Ok(chosen)
}

fn describe(d: &DestinationRef) -> String {
    d.id.clone().or_else(|| d.name.clone()).unwrap_or_default()
}

fn resolve(state: &State, wanted: &DestinationRef) -> Result<Id, ApiError> {
    let by_id = wanted.id.as_deref().map(|t| Id::parse(t).filter(|id| state.destinations.contains_key(id)));
    let found = match (by_id, wanted.name.as_deref()) {
        (Some(found), _) => found,
        (None, Some(name)) => {
            let mut named = state.destinations.values().filter(|d| d.name == name);
            match (named.next(), named.next()) {
                (Some(d), None) => Some(d.id),
                (Some(_), Some(_)) => {
                    return Err(ApiError::invalid(format!("Destination name '{name}' is ambiguous: give its ID")));
                }
                _ => None,
            }
        }
        (None, None) => None,
    };
    found.ok_or_else(|| ApiError::invalid(format!("Destination {} not found", describe(wanted))))
}

/// The outcome of a query (`POST /query`): its attempt and final status,
/// journaled on its `Query` log. The answer resolves once they are durable.
#[derive(Debug)]
pub struct QueryOutcome {
    pub log_id: Id,
    pub attempt: Attempt,
    pub status: LogStatus,
    pub reason: Option<String>,
}

impl Message for QueryOutcome {
    type Result = Result<CommitFuture, ApiError>;
}

impl Handler<QueryOutcome> for Router {
    type Result = Result<CommitFuture, ApiError>;

    fn handle(&mut self, msg: QueryOutcome, _ctx: &mut Self::Context) -> Self::Result {
        let at_ms = self.clock.now_ms();
        let QueryOutcome { log_id, attempt, status, reason } = msg;
        self.append(&Event::AttemptRecorded { log_id, attempt })?;
        let position = self.append(&Event::LogStatusChanged { log_id, status, at_ms, reason })?;
        Ok(self.ledger.commit(position))
    }
}

/// The result of a configuration change: the JSON to answer with.
pub type ChangeResult = Result<Value, ApiError>;

/// Decides a configuration change from the current state: the event to
/// append (if any) and the JSON to answer with.
pub type Decide = dyn FnOnce(&State, &dyn IdSource) -> Result<(Option<Event>, Value), ApiError> + Send;

/// A configuration change, decided against the current state inside the
/// router so that concurrent changes cannot interleave.
pub struct Change {
    pub decide: Box<Decide>,
    /// Who asks, for the audit trail: journaled with the change, if there
    /// is one.
    pub audit: Option<AuditDraft>,
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Change")
    }
}

impl Message for Change {
    type Result = ChangeResult;
}

impl Handler<Change> for Router {
    type Result = ResponseFuture<ChangeResult>;

    fn handle(&mut self, msg: Change, _ctx: &mut Self::Context) -> Self::Result {
        let decided = (msg.decide)(&self.ledger.state().read(), self.ids.as_ref());
        let (event, answer) = match decided {
            Ok(d) => d,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let Some(event) = event else { return Box::pin(async move { Ok(answer) }) };
        let audited = match msg.audit {
            Some(draft) => {
                let entry = draft.entry(self.ids.id(), self.clock.now_ms(), &answer);
                self.append(&event).and_then(|_| self.append(&Event::Audited(entry)))
            }
            None => self.append(&event),
        };
        match audited {
            Ok(position) => {
                let commit = self.ledger.commit(position);
                let deliveries = self.deliveries.clone();
                Box::pin(async move {
                    commit.await?;
                    if let Some(deliveries) = deliveries {
                        deliveries.reconcile();
                    }
                    Ok(answer)
                })
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

/// Logs an operator sends again to one destination (SPEC §13): one
/// journaled action, with its audit entry, answered once durable.
pub struct Resend {
    pub resent: Resent,
    pub audit: AuditDraft,
    pub answer: Value,
}

impl std::fmt::Debug for Resend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resend").field("logs", &self.resent.logs.len()).finish_non_exhaustive()
    }
}

impl Message for Resend {
    type Result = ChangeResult;
}

impl Handler<Resend> for Router {
    type Result = ResponseFuture<ChangeResult>;

    fn handle(&mut self, msg: Resend, _ctx: &mut Self::Context) -> Self::Result {
        let destination = msg.resent.destination_id;
        let mut refused = None;
        // Decided under the state lock, which releasing records also
        // takes: every message resent is still in the journal, and stays.
        let recorded = self.ledger.record_with(|state, _| {
            let released = self.ledger.released_below();
            if !state.destinations.contains_key(&destination) {
                refused = Some(ApiError::not_found(format!("destination {destination} not found")));
                return None;
            }
            if let Some(gone) = msg.resent.logs.iter().find(|l| l.message_position < released) {
                refused = Some(ApiError::conflict(format!(
                    "log {} is past retention: its message is no longer kept",
                    gone.resent_from
                )));
                return None;
            }
            Some(Event::LogsResent(msg.resent.clone()))
        });
        let audited = match (recorded, refused) {
            (_, Some(e)) => Err(e),
            (Ok(None), None) => Err(ApiError::internal("the resend was not recorded")),
            (Ok(Some(_)), None) => {
                let entry = msg.audit.entry(self.ids.id(), self.clock.now_ms(), &msg.answer);
                self.append(&Event::Audited(entry))
            }
            (Err(e), None) => Err(e.into()),
        };
        let answer = msg.answer;
        match audited {
            Ok(position) => {
                let commit = self.ledger.commit(position);
                let deliveries = self.deliveries.clone();
                Box::pin(async move {
                    commit.await?;
                    if let Some(deliveries) = deliveries {
                        deliveries.wake(destination);
                    }
                    Ok(answer)
                })
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        clock::ManualClock,
        ids::SeededIds,
        journal::{CommitFuture, Journal, JournalError, ReplayFn},
        model::{Destination, Environment, Source, Subscription},
    };

    /// A journal whose disk is full: every append fails.
    #[derive(Debug)]
    struct FullDisk;

    impl Journal for FullDisk {
        fn append(&self, _: &Event) -> Result<u64, JournalError> {
            let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device");
            Err(ferrox_storage::Error::Io { op: "create", path: "/wal/x.seg".into(), source: full }.into())
        }
        fn commit(&self, _: u64) -> CommitFuture {
            Box::pin(async { Ok(()) })
        }
        fn durable_through(&self) -> u64 {
            0
        }
        fn appended_through(&self) -> u64 {
            0
        }
        fn replay(&self, _: u64, _: &mut ReplayFn<'_>) -> Result<(), JournalError> {
            Ok(())
        }
        fn message_payload(&self, position: u64) -> Result<Vec<u8>, JournalError> {
            Err(JournalError::NotAMessage { position })
        }

        fn last_snapshot(&self) -> Result<Option<(u64, crate::journal::Snapshot)>, JournalError> {
            Ok(None)
        }

        fn release_below(&self, _: u64) -> Result<usize, JournalError> {
            Ok(0)
        }

        fn releasable(&self, _: u64) -> usize {
            0
        }

        fn released_below(&self) -> u64 {
            0
        }

        fn message_logs(&self, _: u64) -> Result<Option<Vec<crate::journal::NewLog>>, JournalError> {
            Ok(None)
        }

        fn retained(&self) -> (u64, usize) {
            (1, 1)
        }

        fn health(&self) -> crate::journal::Health {
            crate::journal::Health::Unwritable("no space left on device".into())
        }
    }

    fn subscribed_state() -> State {
        let mut state = State::default();
        let (source, dest) = (Id(1), Id(2));
        let events = [
            Event::SourceUpserted(Source {
                id: source,
                name: "s".into(),
                api_key: "k".into(),
                secret_hash: "h".into(),
                alert_emails: Vec::new(),
            }),
            Event::DestinationUpserted(Destination {
                id: dest,
                name: "d".into(),
                url: "http://127.0.0.1:9/".into(),
                environment: Environment::Production,
                verification_token: "t".into(),
                signing_secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                timeout_ms: 1000,
                enabled: true,
                alert_emails: Vec::new(),
                alert_depth: None,
                alert_age_ms: None,
                client_cert: None,
                fifo_key: None,
                max_in_flight: 1,
            }),
            Event::SubscriptionUpserted(Subscription {
                id: Id(3),
                source_id: source,
                destination_id: dest,
                data_model: "PatientAdmin".into(),
                event_types: Vec::new(),
                transform: None,
                response_transform: None,
            }),
        ];
        for (i, e) in events.iter().enumerate() {
            state.apply(i as u64 + 1, e);
        }
        state
    }

    #[actix::test]
    async fn a_write_error_is_a_503_and_changes_nothing() {
        let ledger = Ledger::new(Arc::new(FullDisk), subscribed_state());
        let state = ledger.state().clone();
        let router = Router::new(ledger, Arc::new(ManualClock::new(0)), Arc::new(SeededIds::new(1))).start();
        let routing =
            Routing { data_model: "PatientAdmin".into(), event_type: "NewPatient".into(), destinations: Vec::new() };
        let submit =
            Submit { source_id: Id(1), routing, payload: b"{}".to_vec(), idempotency: None, log_type: LogType::Async };
        let err = router.send(submit).await.expect("router runs").expect_err("a full disk refuses the message");
        assert_eq!(err.status().as_u16(), 503, "{err}");
        assert!(err.text.contains("no space left"), "{err}");
        let state = state.read();
        assert_eq!((state.logs_in_memory(), state.next_message_id), (0, 0), "nothing was applied");
    }
}
