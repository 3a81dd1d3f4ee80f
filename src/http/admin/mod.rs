//! The operator API, `/api/v1` (SPEC §6), behind `admin_token`. Errors
//! answer in the Redox shape with module `Admin`.

pub(super) mod audit;
mod config;
pub(super) mod config_routes;
pub(super) mod logs;
pub(super) mod operators;
pub(super) mod queues;
pub(super) mod resend;

use actix_web::{HttpRequest, web};

pub(super) use self::{
    audit::audit_page,
    logs::{log_detail, logs_page, queue_view},
    queues::alerts_page,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{AppCtx, read_body, require_json, routes::Routes};
use crate::{
    error::{ApiError, ErrorKind},
    model::Id,
    operators::AuditDraft,
    router::{Change, Decide},
};

/// Operator bodies are configuration objects; 1 MiB leaves room for long
/// jq programs.
const ADMIN_BODY_BYTES: usize = 1 << 20;

pub fn routes(r: &mut Routes<'_>) {
    audit::routes(r);
    config_routes::routes(r);
    logs::routes(r);
    operators::routes(r);
    queues::routes(r);
    resend::routes(r);
}

/// Parses a JSON body into `T`; unknown fields are a 400 naming them.
async fn json_body<T: DeserializeOwned>(ctx: &AppCtx, req: &HttpRequest, payload: web::Payload) -> Result<T, ApiError> {
    require_json(req, &[])?;
    let bytes = read_body(ctx, req, payload, ADMIN_BODY_BYTES).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("Invalid body: {e}")))
}

fn path_id(text: &str) -> Result<Id, ApiError> {
    Id::parse(text).ok_or_else(|| ApiError::not_found(format!("'{text}' is not an ID")))
}

/// Runs a configuration change through the router, journaled with its
/// audit entry; answers once durable.
async fn change(ctx: &AppCtx, decide: Box<Decide>, audit: AuditDraft) -> Result<Value, ApiError> {
    match ctx.router.send(Change { decide, audit: Some(audit) }).await {
        Ok(result) => result,
        Err(e) => Err(ApiError::new(ErrorKind::Unavailable, format!("The router is not running: {e}"))),
    }
}
