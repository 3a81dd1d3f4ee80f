//! The audit trail (SPEC §12): `GET /api/v1/audit`, newest first, paged
//! like `/logs` (`limit`, `cursor`; the answer's `next_cursor`).

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::{
    clock::rfc3339,
    error::ApiError,
    http::{
        AppCtx, authorize,
        openapi::{params::PageQuery, schemas::RedoxErrors, views::AuditList},
        routes::Routes,
    },
    limits,
    operators::Role,
    state::MAX_PAGE,
};

pub fn routes(r: &mut Routes<'_>) {
    r.get("/audit", audit);
}

const CURSOR_PREFIX: &str = "a";

#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "Operators",
    security(("operator" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the audit trail, newest first", body = AuditList),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
        (status = 400, description = "Invalid query parameter", body = RedoxErrors),
    ),
)]
pub(super) async fn audit(
    ctx: web::Data<AppCtx>,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    authorize(&ctx, &req, Role::Viewer)?;
    Ok(HttpResponse::Ok().json(audit_page(&ctx, &query)?))
}

/// A page of the audit trail, newest first, as `GET /audit` answers it.
pub(in crate::http) fn audit_page(ctx: &AppCtx, query: &HashMap<String, String>) -> Result<Value, ApiError> {
    let (limit, before) = page_query(query, CURSOR_PREFIX)?;
    let durable = ctx.journal.durable_through();
    let state = ctx.state.read();
    let mut entries = state.audit.iter().rev().filter(|(p, _)| *p <= durable && *p < before);
    let page: Vec<&(u64, crate::model::AuditEntry)> = entries.by_ref().take(limit).collect();
    let more = entries.next().is_some();
    let next = page.last().filter(|_| more).map(|(p, _)| format!("{CURSOR_PREFIX}{p:x}"));
    let audit: Vec<Value> = page
        .iter()
        .map(|(_, e)| {
            json!({
                "id": e.id.to_string(),
                "at": rfc3339(e.at_ms),
                "operator": e.operator,
                "action": e.action,
                "target": e.target,
                "detail": e.detail,
            })
        })
        .collect();
    Ok(json!({ "audit": audit, "next_cursor": next }))
}

/// `limit` and `cursor` of a list kept in journal order: the cursor is the
/// position of the last entry shown, after `prefix`. Anything else is a 400.
pub(super) fn page_query(query: &HashMap<String, String>, prefix: &str) -> Result<(usize, u64), ApiError> {
    let (mut limit, mut before) = (limits::DEFAULT_LOG_PAGE, u64::MAX);
    for (key, value) in query {
        let bad = || ApiError::invalid(format!("Invalid value '{value}' for '{key}'"));
        match key.as_str() {
            "limit" => limit = value.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?,
            "cursor" => {
                let position = value.strip_prefix(prefix).and_then(|n| u64::from_str_radix(n, 16).ok());
                before = position.ok_or_else(bad)?;
            }
            _ => return Err(ApiError::invalid(format!("Unknown query parameter '{key}'"))),
        }
    }
    Ok((limit.min(MAX_PAGE), before))
}
