//! `GET /logs` with filters and cursor paging, `GET /logs/{id}` with the
//! payload, and `GET /destinations/{id}/queue`.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::path_id;
use crate::{
    clock::{parse_rfc3339, rfc3339},
    delivery::schedule::next_attempt_at,
    error::ApiError,
    http::{
        AppCtx, authorize,
        openapi::{
            params::LogQuery,
            schemas::RedoxErrors,
            views::{LogDetail, LogList, Queue},
        },
        routes::Routes,
    },
    limits,
    model::{Id, LogStatus, LogType},
    operators::{Operator, Role},
    state::{LogFilter, LogRecord},
};

pub fn routes(r: &mut Routes<'_>) {
    r.get("/logs", list_logs).get("/logs/{id}", get_log).get("/destinations/{id}/queue", queue);
}

type Reply = Result<HttpResponse, ApiError>;

const CURSOR_PREFIX: &str = "l";

fn parse_filter(query: &HashMap<String, String>) -> Result<LogFilter, ApiError> {
    let mut f = LogFilter { limit: limits::DEFAULT_LOG_PAGE, ..LogFilter::default() };
    for (key, value) in query {
        let bad = || ApiError::invalid(format!("Invalid value '{value}' for '{key}'"));
        match key.as_str() {
            "destination" => f.destination = Some(Id::parse(value).ok_or_else(bad)?),
            "source" => f.source = Some(Id::parse(value).ok_or_else(bad)?),
            "status" => f.status = Some(LogStatus::parse(value).ok_or_else(bad)?),
            "type" => {
                f.log_type = Some(match value.as_str() {
                    "Async" => LogType::Async,
                    "Query" => LogType::Query,
                    _ => return Err(bad()),
                })
            }
            "data_model" => f.data_model = Some(value.clone()),
            "event_type" => f.event_type = Some(value.clone()),
            "since" => f.since_ms = Some(parse_rfc3339(value).ok_or_else(bad)?),
            "until" => f.until_ms = Some(parse_rfc3339(value).ok_or_else(bad)?),
            "limit" => f.limit = value.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?,
            "cursor" => {
                let index = value.strip_prefix(CURSOR_PREFIX).and_then(|n| usize::from_str_radix(n, 16).ok());
                f.before = Some(index.ok_or_else(bad)?);
            }
            _ => return Err(ApiError::invalid(format!("Unknown query parameter '{key}'"))),
        }
    }
    Ok(f)
}

fn attempt_json(a: &crate::model::Attempt) -> Value {
    json!({
        "id": a.id.to_string(),
        "started_at": rfc3339(a.started_at_ms),
        "duration_ms": a.duration_ms,
        "http_status": a.http_status,
        "error": a.error,
        "response": a.response,
    })
}

pub(super) fn log_json(log: &LogRecord) -> Value {
    json!({
        "id": log.id.to_string(),
        "message_id": log.message_id,
        "type": log.log_type.map(|t| t.as_str()),
        "source_id": log.source_id.map(|s| s.to_string()),
        "destination_id": log.destination_id.to_string(),
        "data_model": log.data_model,
        "event_type": log.event_type,
        "status": log.status.as_str(),
        "reason": log.reason,
        "received_at": log.received_at_ms.map(rfc3339),
        "updated_at": rfc3339(log.updated_at_ms),
        "attempts": log.attempts.iter().map(attempt_json).collect::<Vec<_>>(),
        "resent_from": log.resent_from.map(|id| id.to_string()),
    })
}

fn unreadable(e: crate::history::HistoryError) -> ApiError {
    ApiError::internal(format!("reading the history: {e}"))
}

#[utoipa::path(
    get,
    path = "/api/v1/logs",
    tag = "Logs",
    security(("operator" = [])),
    params(LogQuery),
    responses(
        (status = 200, description = "A page of logs, newest first", body = LogList),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
        (status = 400, description = "Invalid query parameter", body = RedoxErrors),
    ),
)]
pub(super) async fn list_logs(
    ctx: web::Data<AppCtx>,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
) -> Reply {
    authorize(&ctx, &req, Role::Viewer)?;
    Ok(HttpResponse::Ok().json(logs_page(&ctx, &query)?))
}

/// A page of logs, newest first, as `GET /logs` answers it.
pub(in crate::http) fn logs_page(ctx: &AppCtx, query: &HashMap<String, String>) -> Result<Value, ApiError> {
    let filter = parse_filter(query)?;
    let durable = ctx.journal.durable_through();
    let page = ctx.state.read().query_logs(&filter, durable).map_err(unreadable)?;
    let logs: Vec<Value> = page.logs.iter().map(log_json).collect();
    let next = page.next.map(|i| format!("{CURSOR_PREFIX}{i:x}"));
    Ok(json!({ "logs": logs, "next_cursor": next }))
}

#[utoipa::path(
    get,
    path = "/api/v1/logs/{id}",
    tag = "Logs",
    security(("operator" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "The log, its attempts and its payload (null without PHI access)", body = LogDetail),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
        (status = 404, description = "No such object", body = RedoxErrors),
    ),
)]
pub(super) async fn get_log(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
    let operator = authorize(&ctx, &req, Role::Viewer)?;
    Ok(HttpResponse::Ok().json(log_detail(&ctx, &operator, path_id(&id)?)?))
}

/// A log with its payload, as `GET /logs/{id}` answers it to `operator`.
pub(in crate::http) fn log_detail(ctx: &AppCtx, operator: &Operator, id: Id) -> Result<Value, ApiError> {
    let durable = ctx.journal.durable_through();
    let log = ctx.state.read().find_log(id, durable).map_err(unreadable)?;
    let log = log.ok_or_else(|| ApiError::not_found(format!("log {id} not found")))?;
    let (mut value, position) = (log_json(&log), log.position);
    // Message bodies hold patient data: only operators with PHI access
    // read them (SPEC §12); the rest see everything else about the log.
    if operator.phi_access {
        let payload = ctx
            .journal
            .message_payload(position)
            .map_err(|e| ApiError::internal(format!("reading the payload: {e}")))?;
        value["payload"] = serde_json::from_slice(&payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&payload).into_owned()));
        value["payload_redacted"] = Value::Bool(false);
    } else {
        value["payload"] = Value::Null;
        value["payload_redacted"] = Value::Bool(true);
    }
    Ok(value)
}

#[utoipa::path(
    get,
    path = "/api/v1/destinations/{id}/queue",
    tag = "Logs",
    security(("operator" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "The destination's queue", body = Queue),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
        (status = 404, description = "No such object", body = RedoxErrors),
    ),
)]
pub(super) async fn queue(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
    authorize(&ctx, &req, Role::Viewer)?;
    Ok(HttpResponse::Ok().json(queue_view(&ctx, path_id(&id)?)?))
}

/// A destination's queue, as `GET /destinations/{id}/queue` answers it.
pub(in crate::http) fn queue_view(ctx: &AppCtx, id: Id) -> Result<Value, ApiError> {
    let durable = ctx.journal.durable_through();
    let now = ctx.clock.now_ms();
    let state = ctx.state.read();
    if !state.destinations.contains_key(&id) {
        return Err(ApiError::not_found(format!("destination {id} not found")));
    }
    // Logs join a queue at its tail as they are made, so those not yet
    // durable are the last ones: counted from the tail, not over the whole
    // queue, which may hold a million.
    let pending = state.queues.get(&id).map(|q| &q.pending);
    let durable_log = |&i: &usize| state.log_at(i).filter(|l| l.created_at() <= durable);
    let fresh = pending.map_or(0, |p| p.iter().rev().take_while(|i| durable_log(i).is_none()).count());
    let depth = pending.map_or(0, |p| p.len() - fresh);
    let head = pending.and_then(|p| p.front()).and_then(durable_log);
    let disabled = state.destinations.get(&id).is_some_and(|d| !d.enabled);
    let paused = state.queues.get(&id).and_then(|q| q.paused.clone());
    let paused = paused.or_else(|| disabled.then(|| (now, "destination disabled".to_owned())));
    // A queue is in the order its logs joined it: its head waited longest.
    let oldest = head.and_then(|l| state.queued_at(l)).map(|at| (now - at).max(0));
    // With lanes a blocked head blocks its lane only: the queue flows
    // unless paused, and `lanes_blocked` tells how many lanes wait.
    let laned = state.destinations.get(&id).is_some_and(|d| d.fifo_key.is_some());
    let lanes_blocked = state.lanes_blocked(id);
    let halted = !laned && head.is_some_and(|l| l.status == LogStatus::ProcessingFailed);
    let retrying = !laned && head.is_some_and(|l| l.status == LogStatus::Retrying);
    let queue_state = if halted {
        "halted"
    } else if paused.is_some() || retrying {
        "paused"
    } else {
        "flowing"
    };
    let reason = paused
        .map(|(_, r)| r)
        .or_else(|| head.filter(|_| halted || retrying).and_then(|l| l.reason().map(str::to_owned)));
    Ok(json!({
        "destination_id": id.to_string(),
        "depth": depth,
        "oldest_pending_age_ms": oldest,
        "state": queue_state,
        "paused_reason": reason,
        "head_log_id": head.map(|l| l.id.to_string()),
        "next_retry_at": head.filter(|_| retrying).map(|h| rfc3339(next_attempt_at(h, &ctx.config.delivery.retry_schedule_ms))),
        "head_attempts": head.map(|l| l.attempts().iter().map(attempt_json).collect::<Vec<_>>()).unwrap_or_default(),
        "lanes_blocked": lanes_blocked,
    }))
}
