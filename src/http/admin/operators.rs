//! `/api/v1/operators` (SPEC §12), role `admin` only: the operators of the
//! configuration file, read-only here, and operators made through the API,
//! journaled (`OperatorUpserted`, `OperatorDeleted`) and audited like other
//! objects. A token is shown once, when made; only its digest is kept.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{change, json_body};
use crate::{
    auth,
    clock::{SharedClock, rfc3339},
    error::ApiError,
    http::{
        AppCtx, authorize,
        openapi::{
            schemas::RedoxErrors,
            views::{Operator as OperatorView, OperatorDeleted, OperatorList},
        },
        routes::Routes,
    },
    journal::Event,
    model::{OperatorRecord, Role},
    operators::{AuditDraft, Operator, Operators, check_name, check_token, token_hash},
    state::State,
};

pub fn routes(r: &mut Routes<'_>) {
    r.get("/operators", list)
        .post("/operators", create)
        .get("/operators/{name}", get)
        .put("/operators/{name}", put)
        .delete("/operators/{name}", delete);
}

type Reply = Result<HttpResponse, ApiError>;

/// An operator to make or change. `name` may be left out of a `PUT`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OperatorBody {
    name: Option<String>,
    /// At least 16 characters; generated (and shown once) if absent on create.
    token: Option<String>,
    role: String,
    #[serde(default)]
    phi_access: bool,
}

fn configured_json(o: &Operator) -> Value {
    json!({ "name": o.name, "role": o.role.as_str(), "phi_access": o.phi_access, "origin": "configuration", "created_at": null })
}

fn made_json(o: &OperatorRecord) -> Value {
    json!({
        "name": o.name,
        "role": o.role.as_str(),
        "phi_access": o.phi_access,
        "origin": "api",
        "created_at": rfc3339(o.created_at_ms),
    })
}

fn declared(name: &str) -> ApiError {
    ApiError::conflict(format!(
        "operator '{name}' is declared in the configuration file: change it there (admin_token or [[operators]])"
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/operators",
    tag = "Operators",
    operation_id = "list_operators",
    security(("operator" = [])),
    responses(
        (status = 200, description = "Every operator: the configuration's and those made here", body = OperatorList),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
        (status = 403, description = "The operator's role is not admin", body = RedoxErrors),
    ),
)]
pub(super) async fn list(ctx: web::Data<AppCtx>, req: HttpRequest) -> Reply {
    authorize(&ctx, &req, Role::Admin)?;
    let mut all: Vec<Value> = ctx.operators.all().into_iter().map(configured_json).collect();
    all.extend(ctx.state.read().operators.values().map(made_json));
    Ok(HttpResponse::Ok().json(json!({ "operators": all, "next_cursor": null })))
}

#[utoipa::path(
    get,
    path = "/api/v1/operators/{name}",
    tag = "Operators",
    operation_id = "get_operator",
    security(("operator" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The operator", body = OperatorView),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
        (status = 403, description = "The operator's role is not admin", body = RedoxErrors),
        (status = 404, description = "No such object", body = RedoxErrors),
    ),
)]
pub(super) async fn get(ctx: web::Data<AppCtx>, req: HttpRequest, name: web::Path<String>) -> Reply {
    authorize(&ctx, &req, Role::Admin)?;
    if let Some(o) = ctx.operators.named(&name) {
        return Ok(HttpResponse::Ok().json(configured_json(o)));
    }
    let found = ctx.state.read().operators.get(name.as_str()).map(made_json);
    Ok(HttpResponse::Ok().json(found.ok_or_else(|| ApiError::not_found(format!("operator '{name}' not found")))?))
}

/// The operator a create or update makes, checked against every other.
fn decide(
    body: OperatorBody,
    name: String,
    creating: bool,
    configured: &Operators,
    state: &State,
    clock: &SharedClock,
    ids: &dyn crate::ids::IdSource,
) -> Result<(Option<Event>, Value), ApiError> {
    check_name(&name).map_err(ApiError::invalid)?;
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::invalid(format!("role '{}' must be viewer, operator or admin", body.role)))?;
    if configured.named(&name).is_some() {
        return Err(declared(&name));
    }
    let existing = state.operators.get(&name);
    match (creating, existing) {
        (true, Some(_)) => return Err(ApiError::conflict(format!("an operator is named '{name}' already"))),
        (false, None) => return Err(ApiError::not_found(format!("operator '{name}' not found"))),
        _ => {}
    }
    let generated = match (&body.token, existing) {
        (Some(_), _) | (None, Some(_)) => None,
        (None, None) => Some(format!("fxo_{}", auth::generate_secret(ids))),
    };
    let token_hash = match (body.token.as_deref().or(generated.as_deref()), existing) {
        (Some(token), _) => {
            check_token(&name, token).map_err(ApiError::invalid)?;
            token_hash(token)
        }
        (None, Some(e)) => e.token_hash,
        (None, None) => return Err(ApiError::internal("no token")),
    };
    let taken = configured.find(&token_hash).is_some()
        || state.operators.values().any(|o| o.token_hash == token_hash && o.name != name);
    if taken {
        return Err(ApiError::conflict(format!("operator '{name}' would have the same token as another operator")));
    }
    let record = OperatorRecord {
        name,
        token_hash,
        role,
        phi_access: body.phi_access,
        created_at_ms: existing.map_or_else(|| clock.now_ms(), |e| e.created_at_ms),
    };
    let mut answer = made_json(&record);
    if let Some(token) = generated {
        answer["token"] = json!(token);
    }
    Ok((Some(Event::OperatorUpserted(record)), answer))
}

fn audit_of(operator: &Operator, action: &str, name: &str, body: &OperatorBody) -> AuditDraft {
    let phi = if body.phi_access { "with" } else { "without" };
    let token = if body.token.is_some() { ", token set" } else { "" };
    AuditDraft::new(operator, action, Some(name.to_owned()))
        .detail(format!("role {}, {phi} PHI access{token}", body.role))
}

#[utoipa::path(
    post,
    path = "/api/v1/operators",
    tag = "Operators",
    operation_id = "create_operator",
    security(("operator" = [])),
    request_body = OperatorBody,
    responses(
        (status = 201, description = "The operator made; a generated token is shown this once", body = OperatorView),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
        (status = 403, description = "The operator's role is not admin", body = RedoxErrors),
        (status = 400, description = "Invalid body: unknown fields, bad name, role or token", body = RedoxErrors),
        (status = 413, description = "Body over 1 MiB", body = RedoxErrors),
        (status = 415, description = "Content-Type not JSON", body = RedoxErrors),
        (status = 409, description = "Declared in the configuration file, the name or the token is taken", body = RedoxErrors),
        (status = 503, description = "The write-ahead log takes no writes", body = RedoxErrors),
    ),
)]
pub(super) async fn create(ctx: web::Data<AppCtx>, req: HttpRequest, payload: web::Payload) -> Reply {
    let operator = authorize(&ctx, &req, Role::Admin)?;
    let body: OperatorBody = json_body(&ctx, &req, payload).await?;
    let name = body.name.clone().ok_or_else(|| ApiError::invalid("name is required"))?;
    let audit = audit_of(&operator, "operator.create", &name, &body);
    let (configured, clock) = (Arc::clone(&ctx.operators), ctx.clock.clone());
    let decide = Box::new(move |state: &State, ids: &dyn crate::ids::IdSource| {
        decide(body, name, true, &configured, state, &clock, ids)
    });
    Ok(HttpResponse::Created().json(change(&ctx, decide, audit).await?))
}

#[utoipa::path(
    put,
    path = "/api/v1/operators/{name}",
    tag = "Operators",
    operation_id = "put_operator",
    security(("operator" = [])),
    params(("name" = String, Path)),
    request_body = OperatorBody,
    responses(
        (status = 200, description = "The operator as changed", body = OperatorView),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
        (status = 403, description = "The operator's role is not admin", body = RedoxErrors),
        (status = 400, description = "Invalid body: unknown fields, bad name, role or token", body = RedoxErrors),
        (status = 413, description = "Body over 1 MiB", body = RedoxErrors),
        (status = 415, description = "Content-Type not JSON", body = RedoxErrors),
        (status = 404, description = "No such object", body = RedoxErrors),
        (status = 409, description = "Declared in the configuration file, the name or the token is taken", body = RedoxErrors),
        (status = 503, description = "The write-ahead log takes no writes", body = RedoxErrors),
    ),
)]
pub(super) async fn put(
    ctx: web::Data<AppCtx>,
    req: HttpRequest,
    name: web::Path<String>,
    payload: web::Payload,
) -> Reply {
    let operator = authorize(&ctx, &req, Role::Admin)?;
    let body: OperatorBody = json_body(&ctx, &req, payload).await?;
    let name = name.into_inner();
    if body.name.as_deref().is_some_and(|n| n != name) {
        return Err(ApiError::invalid("name in the body differs from the name in the path"));
    }
    let audit = audit_of(&operator, "operator.update", &name, &body);
    let (configured, clock) = (Arc::clone(&ctx.operators), ctx.clock.clone());
    let decide = Box::new(move |state: &State, ids: &dyn crate::ids::IdSource| {
        decide(body, name, false, &configured, state, &clock, ids)
    });
    Ok(HttpResponse::Ok().json(change(&ctx, decide, audit).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/operators/{name}",
    tag = "Operators",
    operation_id = "delete_operator",
    security(("operator" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "Deleted", body = OperatorDeleted),
        (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
        (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
        (status = 403, description = "The operator's role is not admin", body = RedoxErrors),
        (status = 404, description = "No such object", body = RedoxErrors),
        (status = 409, description = "Declared in the configuration file", body = RedoxErrors),
        (status = 503, description = "The write-ahead log takes no writes", body = RedoxErrors),
    ),
)]
pub(super) async fn delete(ctx: web::Data<AppCtx>, req: HttpRequest, name: web::Path<String>) -> Reply {
    let operator = authorize(&ctx, &req, Role::Admin)?;
    let name = name.into_inner();
    let audit = AuditDraft::new(&operator, "operator.delete", Some(name.clone()));
    let configured = Arc::clone(&ctx.operators);
    let decide = Box::new(move |state: &State, _: &dyn crate::ids::IdSource| {
        if configured.named(&name).is_some() {
            return Err(declared(&name));
        }
        if !state.operators.contains_key(&name) {
            return Err(ApiError::not_found(format!("operator '{name}' not found")));
        }
        Ok((Some(Event::OperatorDeleted { name: name.clone() }), json!({ "name": name, "deleted": true })))
    });
    Ok(HttpResponse::Ok().json(change(&ctx, decide, audit).await?))
}
