//! Resend and replay (SPEC §13): `POST /logs/{id}/resend` sends one ended
//! log's message again as a new log at the tail of its destination's queue;
//! `POST /destinations/{id}/replay` does so for every ended log of a
//! destination that a time range and filters match, oldest message first,
//! as one journaled action.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{json_body, logs::log_json, path_id};
use crate::{
    clock::parse_rfc3339,
    error::{ApiError, ErrorKind},
    http::{
        AppCtx, authorize,
        openapi::{
            schemas::RedoxErrors,
            views::{Log, Replayed},
        },
        routes::Routes,
    },
    journal::{RESENT_LOG_BYTES, Resent, ResentLog},
    limits,
    model::{Id, LogStatus, LogType},
    operators::{AuditDraft, Role},
    router::Resend,
    state::{LogFilter, LogRecord, MAX_PAGE},
};

pub fn routes(r: &mut Routes<'_>) {
    r.post("/logs/{id}/resend", resend).post("/destinations/{id}/replay", replay);
}

type Reply = Result<HttpResponse, ApiError>;

fn unreadable(e: crate::history::HistoryError) -> ApiError {
    ApiError::internal(format!("reading the history: {e}"))
}

/// The new log that sends `log`'s message again.
fn resent_log(ctx: &AppCtx, log: &LogRecord) -> Result<ResentLog, ApiError> {
    let missing = || ApiError::conflict(format!("log {} has no message to send again", log.id));
    Ok(ResentLog {
        id: ctx.ids.id(),
        attempt_id: ctx.ids.id(),
        resent_from: log.id,
        message_id: log.message_id,
        message_position: log.position,
        log_type: log.log_type.ok_or_else(missing)?,
        source_id: log.source_id.ok_or_else(missing)?,
        data_model: log.data_model.clone().ok_or_else(missing)?,
        event_type: log.event_type.clone().ok_or_else(missing)?,
        received_at_ms: log.received_at_ms.ok_or_else(missing)?,
    })
}

async fn run(ctx: &AppCtx, resend: Resend) -> Result<Value, ApiError> {
    match ctx.router.send(resend).await {
        Ok(result) => result,
        Err(e) => Err(ApiError::new(ErrorKind::Unavailable, format!("The router is not running: {e}"))),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/logs/{id}/resend",
    tag = "Logs",
    security(("operator" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "The new log, at the tail of the queue", body = Log),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
        (status = 403, description = "The operator's role is viewer", body = RedoxErrors),
        (status = 404, description = "No such object", body = RedoxErrors),
        (status = 409, description = "The log is not Succeeded, Failed or Filtered, or answered a query", body = RedoxErrors),
        (status = 503, description = "The write-ahead log takes no writes", body = RedoxErrors),
    ),
)]
pub(super) async fn resend(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
    let operator = authorize(&ctx, &req, Role::Operator)?;
    let id = path_id(&id)?;
    let durable = ctx.journal.durable_through();
    let log = ctx.state.read().find_log(id, durable).map_err(unreadable)?;
    let log = log.ok_or_else(|| ApiError::not_found(format!("log {id} not found")))?;
    if !log.status.is_terminal() {
        return Err(ApiError::conflict(format!(
            "log {id} is {}: only Succeeded, Failed or Filtered logs can be resent",
            log.status.as_str()
        )));
    }
    if log.log_type != Some(LogType::Async) {
        return Err(ApiError::conflict(format!("log {id} answered a query: only Async logs can be resent")));
    }
    let new = resent_log(&ctx, &log)?;
    let new_id = new.id;
    let resent = Resent { destination_id: log.destination_id, at_ms: ctx.clock.now_ms(), logs: vec![new] };
    let audit = AuditDraft::new(&operator, "log.resend", Some(id.to_string())).detail(format!("as log {new_id}"));
    run(&ctx, Resend { resent, audit, answer: json!({ "id": new_id.to_string() }) }).await?;
    let durable = ctx.journal.durable_through();
    let log = ctx.state.read().find_log(new_id, durable).map_err(unreadable)?;
    let log = log.ok_or_else(|| ApiError::internal(format!("the resent log {new_id} is not found")))?;
    Ok(HttpResponse::Ok().json(log_json(&log)))
}

/// Which ended logs of the destination to send again; all optional but `since`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplaySpec {
    since: Option<String>,
    until: Option<String>,
    #[serde(default)]
    status: Vec<String>,
    data_model: Option<String>,
    event_type: Option<String>,
}

impl ReplaySpec {
    /// The filter of the logs to resend, and the statuses they may have.
    fn filter(&self, destination: Id) -> Result<(LogFilter, Vec<LogStatus>), ApiError> {
        let time = |field: &str, text: &str| {
            parse_rfc3339(text).ok_or_else(|| ApiError::invalid(format!("{field} '{text}' is not an RFC 3339 time")))
        };
        let since = self.since.as_deref().ok_or_else(|| ApiError::invalid("since is required"))?;
        let since_ms = time("since", since)?;
        let until_ms = self.until.as_deref().map(|u| time("until", u)).transpose()?;
        if until_ms.is_some_and(|u| u <= since_ms) {
            return Err(ApiError::invalid("until must be later than since"));
        }
        let mut statuses = Vec::new();
        for text in &self.status {
            match LogStatus::parse(text) {
                Some(s) if s.is_terminal() => statuses.push(s),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "status '{text}' cannot be replayed: use Succeeded, Failed or Filtered"
                    )));
                }
            }
        }
        if statuses.is_empty() {
            statuses = vec![LogStatus::Succeeded, LogStatus::Failed, LogStatus::Filtered];
        }
        let filter = LogFilter {
            destination: Some(destination),
            status: (statuses.len() == 1).then(|| statuses[0]),
            log_type: Some(LogType::Async),
            data_model: self.data_model.clone(),
            event_type: self.event_type.clone(),
            since_ms: Some(since_ms),
            until_ms,
            limit: MAX_PAGE,
            ..LogFilter::default()
        };
        Ok((filter, statuses))
    }
}

/// The logs a replay resends, oldest message first, each message once:
/// read a page at a time, so that SENDs wait for no long read.
fn replayed_logs(ctx: &AppCtx, mut filter: LogFilter, statuses: &[LogStatus]) -> Result<Vec<ResentLog>, ApiError> {
    let durable = ctx.journal.durable_through();
    // One journal record: its largest size bounds a replay below the limit
    // when `max_body_bytes` is set low.
    let fits = (ctx.config.max_record_bytes() as usize).saturating_sub(limits::EVENT_OVERHEAD_BYTES) / RESENT_LOG_BYTES;
    let most = limits::MAX_REPLAY_LOGS.min(fits);
    let mut found: Vec<(u64, usize, ResentLog)> = Vec::new();
    loop {
        let page = ctx.state.read().query_logs(&filter, durable).map_err(unreadable)?;
        for log in page.logs.iter().filter(|l| statuses.contains(&l.status)) {
            if found.len() == most {
                return Err(ApiError::invalid(format!(
                    "more than {most} logs match: a replay resends at most {most} logs{}; narrow since and until",
                    if most < limits::MAX_REPLAY_LOGS { " with this max_body_bytes" } else { "" }
                )));
            }
            found.push((log.position, log.number, resent_log(ctx, log)?));
        }
        match page.next {
            Some(next) => filter.before = Some(next),
            None => break,
        }
    }
    // In original acceptance order; a message resent before matches with
    // each of its logs, and goes once.
    found.sort_unstable_by_key(|(position, number, _)| (*position, *number));
    found.dedup_by_key(|(_, _, log)| log.message_id);
    Ok(found.into_iter().map(|(_, _, log)| log).collect())
}

#[utoipa::path(
    post,
    path = "/api/v1/destinations/{id}/replay",
    tag = "Logs",
    security(("operator" = [])),
    params(("id" = String, Path, format = Uuid)),
    request_body = ReplaySpec,
    responses(
        (status = 200, description = "What was resent, as one journaled action", body = Replayed),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
        (status = 403, description = "The operator's role is viewer", body = RedoxErrors),
        (status = 400, description = "Invalid body: since missing, bad times or statuses, too many logs", body = RedoxErrors),
        (status = 404, description = "No such object", body = RedoxErrors),
        (status = 413, description = "Body over 1 MiB", body = RedoxErrors),
        (status = 415, description = "Content-Type not JSON", body = RedoxErrors),
        (status = 503, description = "The write-ahead log takes no writes", body = RedoxErrors),
    ),
)]
pub(super) async fn replay(
    ctx: web::Data<AppCtx>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
) -> Reply {
    let operator = authorize(&ctx, &req, Role::Operator)?;
    let destination = path_id(&id)?;
    let spec: ReplaySpec = json_body(&ctx, &req, body).await?;
    let (filter, statuses) = spec.filter(destination)?;
    if !ctx.state.read().destinations.contains_key(&destination) {
        return Err(ApiError::not_found(format!("destination {destination} not found")));
    }
    let logs = web::block({
        let ctx = ctx.clone();
        move || replayed_logs(&ctx, filter, &statuses)
    })
    .await
    .map_err(|e| ApiError::internal(format!("collecting the logs to replay: {e}")))??;
    let answer = json!({
        "resent": logs.len(),
        "first_log_id": logs.first().map(|l| l.id.to_string()),
        "last_log_id": logs.last().map(|l| l.id.to_string()),
    });
    if logs.is_empty() {
        return Ok(HttpResponse::Ok().json(answer));
    }
    let detail = format!(
        "{} logs received from {}{}",
        logs.len(),
        spec.since.as_deref().unwrap_or_default(),
        spec.until.as_deref().map(|u| format!(" until {u}")).unwrap_or_default()
    );
    let audit = AuditDraft::new(&operator, "destination.replay", Some(destination.to_string())).detail(detail);
    let resent = Resent { destination_id: destination, at_ms: ctx.clock.now_ms(), logs };
    Ok(HttpResponse::Ok().json(run(&ctx, Resend { resent, audit, answer }).await?))
}
