//! Queue actions and alerts: pause, resume, manual retry, skip (through the
//! destination's actor) and `GET /alerts`. An action answers, once durable,
//! with the object it changed as its `GET` shows it: the destination's queue
//! for pause and resume, the log for retry and skip.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use std::collections::HashMap;

use super::{
    audit::page_query,
    logs::{log_detail, queue_view},
    path_id,
};
use crate::{
    clock::rfc3339,
    delivery::Action,
    error::ApiError,
    http::{
        AppCtx, authorize,
        openapi::{
            params::PageQuery,
            schemas::RedoxErrors,
            views::{AlertList, LogDetail, Queue},
        },
        routes::Routes,
    },
    journal::KeptAlert,
    operators::{AuditDraft, Role},
    state::State,
};

pub fn routes(r: &mut Routes<'_>) {
    r.post("/destinations/{id}/pause", pause)
        .post("/destinations/{id}/resume", resume)
        .post("/logs/{id}/retry", retry)
        .post("/logs/{id}/skip", skip)
        .get("/alerts", alerts);
}

type Reply = Result<HttpResponse, ApiError>;

async fn on_destination(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>, action: Action) -> Reply {
    let operator = authorize(&ctx, &req, Role::Operator)?;
    let id = path_id(&id)?;
    let name = if action == Action::Pause { "destination.pause" } else { "destination.resume" };
    let audit = AuditDraft::new(&operator, name, Some(id.to_string()));
    ctx.deliveries.operate(id, action, Some(audit)).await?;
    Ok(HttpResponse::Ok().json(queue_view(&ctx, id)?))
}

#[utoipa::path(
    post,
    path = "/api/v1/destinations/{id}/pause",
    tag = "Logs",
    security(("operator" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "Paused (or already paused): the queue", body = Queue),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 403, description = "The operator's role is viewer", body = RedoxErrors),
        (status = 404, description = "No such object", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
        (status = 503, description = "The write-ahead log takes no writes", body = RedoxErrors),
    ),
)]
pub(super) async fn pause(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
    on_destination(ctx, req, id, Action::Pause).await
}

#[utoipa::path(
    post,
    path = "/api/v1/destinations/{id}/resume",
    tag = "Logs",
    security(("operator" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "Resumed (or already flowing): the queue", body = Queue),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 403, description = "The operator's role is viewer", body = RedoxErrors),
        (status = 404, description = "No such object", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
        (status = 503, description = "The write-ahead log takes no writes", body = RedoxErrors),
    ),
)]
pub(super) async fn resume(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
    on_destination(ctx, req, id, Action::Resume).await
}

async fn on_log(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>, retry: bool) -> Reply {
    let operator = authorize(&ctx, &req, Role::Operator)?;
    let id = path_id(&id)?;
    let found = ctx.state.read().log_status(id);
    let destination = found.map_err(|e| ApiError::internal(format!("reading the history: {e}")))?.map(|(d, _)| d);
    let destination = destination.ok_or_else(|| ApiError::not_found(format!("log {id} not found")))?;
    let action = if retry { Action::Retry(id) } else { Action::Skip(id) };
    let name = if retry { "log.retry" } else { "log.skip" };
    let audit = AuditDraft::new(&operator, name, Some(id.to_string())).detail(format!("destination {destination}"));
    ctx.deliveries.operate(destination, action, Some(audit)).await?;
    Ok(HttpResponse::Ok().json(log_detail(&ctx, &operator, id)?))
}

#[utoipa::path(
    post,
    path = "/api/v1/logs/{id}/retry",
    tag = "Logs",
    security(("operator" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "The log, Pending again and next in its queue", body = LogDetail),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 403, description = "The operator's role is viewer", body = RedoxErrors),
        (status = 404, description = "No such object", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
        (status = 503, description = "The write-ahead log takes no writes", body = RedoxErrors),
        (status = 409, description = "The log is not ProcessingFailed, Failed or Retrying, or is being delivered", body = RedoxErrors),
    ),
)]
pub(super) async fn retry(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
    on_log(ctx, req, id, true).await
}

#[utoipa::path(
    post,
    path = "/api/v1/logs/{id}/skip",
    tag = "Logs",
    security(("operator" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "The log, Failed, skipped by an operator", body = LogDetail),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 403, description = "The operator's role is viewer", body = RedoxErrors),
        (status = 404, description = "No such object", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
        (status = 503, description = "The write-ahead log takes no writes", body = RedoxErrors),
        (status = 409, description = "The log is not the head of a paused or halted queue, or is being delivered", body = RedoxErrors),
    ),
)]
pub(super) async fn skip(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
    on_log(ctx, req, id, false).await
}

#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "Alerts",
    security(("operator" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of alerts, newest first", body = AlertList),
        (status = 400, description = "Invalid query parameter", body = RedoxErrors),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
    ),
)]
pub(super) async fn alerts(
    ctx: web::Data<AppCtx>,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
) -> Reply {
    authorize(&ctx, &req, Role::Viewer)?;
    Ok(HttpResponse::Ok().json(alerts_page(&ctx, &query)?))
}

/// A page of alerts, newest first, as `GET /alerts` answers it (`limit`,
/// `cursor`, like `/audit`).
pub(in crate::http) fn alerts_page(ctx: &AppCtx, query: &HashMap<String, String>) -> Result<Value, ApiError> {
    let (limit, before) = page_query(query, CURSOR_PREFIX)?;
    let durable = ctx.journal.durable_through();
    let state = ctx.state.read();
    let mut kept = state.alerts.iter().rev().filter(|k| k.position <= durable && k.position < before);
    let page: Vec<&KeptAlert> = kept.by_ref().take(limit).collect();
    let more = kept.next().is_some();
    let next = page.last().filter(|_| more).map(|k| format!("{CURSOR_PREFIX}{:x}", k.position));
    let alerts: Vec<Value> = page.iter().map(|k| alert_json(&state, k)).collect();
    Ok(json!({ "alerts": alerts, "next_cursor": next }))
}

const CURSOR_PREFIX: &str = "r";

/// An alert, with `sent` telling per channel whether it went out (`true`)
/// or is still to go (`false`), and `refused` the reason of a channel that
/// refused it for good.
fn alert_json(state: &State, kept: &KeptAlert) -> Value {
    let a = &kept.alert;
    let mut sent = Map::new();
    let mut refused = Map::new();
    for (channel, &done_through) in &state.alert_channels {
        match kept.sent.iter().find(|s| &s.channel == channel) {
            Some(send) => {
                sent.insert(channel.clone(), Value::Bool(send.refused.is_none()));
                if let Some(reason) = &send.refused {
                    refused.insert(channel.clone(), Value::String(reason.clone()));
                }
            }
            // Opened after the alert was raised: the channel never had it.
            None if done_through >= kept.position => {}
            None => drop(sent.insert(channel.clone(), Value::Bool(false))),
        }
    }
    json!({
        "id": a.id.to_string(),
        "kind": a.kind.as_str(),
        "destination_id": a.destination_id.to_string(),
        "log_id": a.log_id.map(|l| l.to_string()),
        "at": rfc3339(a.at_ms),
        "text": a.text,
        "sent": sent,
        "refused": refused,
    })
}
