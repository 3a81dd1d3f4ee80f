//! The HTTP API (actix-web): routes, shared context and request helpers.

mod admin;
mod console;
pub(crate) mod health;
pub mod openapi;
mod query;
pub mod routes;
mod send;
pub mod starting;
mod throttle;
mod tokens;

use std::{sync::Arc, time::Duration};

use std::net::IpAddr;

use actix::Addr;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

pub use self::{
    console::{SessionStore, Sessions},
    query::QueryClient,
    throttle::Throttles,
};
use crate::{
    auth::{self, TokenKey, TokenKind},
    clock::SharedClock,
    config::Config,
    delivery::Deliveries,
    error::{ApiError, ErrorKind},
    ids::SharedIds,
    ledger::{JournalReader, StateReader},
    model::Id,
    objects::file::FileObjects,
    operators::{self, Operator, Operators, Role, token_hash},
    router::Router,
};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppCtx {
    pub state: StateReader,
    pub journal: JournalReader,
    /// Every change goes through the router (or a destination's actor, for
    /// queue actions): handlers only read.
    pub router: Addr<Router>,
    pub deliveries: Deliveries,
    pub config: Arc<Config>,
    /// The objects the configuration file owns.
    pub file: Arc<FileObjects>,
    pub throttles: Arc<Throttles>,
    pub clock: SharedClock,
    pub ids: SharedIds,
    pub token_key: Arc<TokenKey>,
    /// TLS for `https://` destinations, with their client certificates.
    pub tls: Arc<crate::tls::ClientTls>,
    /// Who may use the operator API, and for what.
    pub operators: Arc<Operators>,
    /// Operators signed in to the console.
    pub sessions: Arc<console::Sessions>,
    /// What `/metrics` serves.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where the spans of SENDs and queries go.
    pub traces: Arc<crate::traces::Traces>,
}

impl std::fmt::Debug for AppCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCtx").finish_non_exhaustive()
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    register(&mut routes::Routes::new(cfg, &mut Vec::new()));
}

/// Every route the server serves, through the recording [`routes::Routes`].
pub fn register(r: &mut routes::Routes<'_>) {
    r.post("/endpoint", send::endpoint)
        .post("/fhir/R4/$process-message", send::fhir)
        .post("/query", query::query)
        .post("/auth/authenticate", tokens::authenticate)
        .post("/auth/refreshToken", tokens::refresh)
        .get("/healthz", health::healthz)
        .get("/readyz", health::readyz)
        .get("/metrics", health::metrics)
        .scope("/api/v1", |r| {
            r.get("/openapi.json", openapi::document);
            admin::routes(r);
        });
    console::routes(r);
}

/// The bearer token of a request, if it has one.
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// Authenticates a source's access token; returns the source's ID.
pub fn authenticate_source(ctx: &AppCtx, req: &HttpRequest) -> Result<Id, ApiError> {
    let token = bearer(req).ok_or_else(|| ApiError::unauthorized("Missing bearer token"))?;
    let claims = auth::verify(&ctx.token_key, token, TokenKind::Access, ctx.clock.now_ms())
        .map_err(|e| ApiError::unauthorized(format!("Invalid access token: {e}")))?;
    if !ctx.state.read().sources.contains_key(&claims.source_id) {
        return Err(ApiError::unauthorized("The token's source no longer exists"));
    }
    Ok(claims.source_id)
}

/// The client's address, for rate limits; the unspecified address when the
/// connection has none (a test request).
pub fn client_ip(req: &HttpRequest) -> IpAddr {
    req.peer_addr().map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip())
}

/// The operator whose bearer token came with the request, or whose
/// console session did, if their role is at least `needed` (SPEC §12):
/// 401 for a missing or unknown token, 403 for a role that may not. An
/// address that sent too many wrong tokens is refused (429) until its
/// limit refills.
pub fn authorize(ctx: &AppCtx, req: &HttpRequest, needed: Role) -> Result<Operator, ApiError> {
    let ip = client_ip(req);
    ctx.throttles.operator_failures.check(ip)?;
    if ctx.operators.is_empty() && ctx.state.read().operators.is_empty() {
        return Err(ApiError::unauthorized("The operator API is disabled: set admin_token or add [[operators]]"));
    }
    let failure = match credential(ctx, req) {
        Ok(hash) => match operator_by_hash(ctx, &hash) {
            Some(operator) if operator.role >= needed => return Ok(operator),
            Some(operator) => {
                return Err(ApiError::new(
                    ErrorKind::Forbidden,
                    format!(
                        "Operator '{}' has role '{}'; this needs role '{}'",
                        operator.name,
                        operator.role.as_str(),
                        needed.as_str()
                    ),
                ));
            }
            None => {
                ctx.sessions.close_for(&hash);
                ApiError::unauthorized("Invalid operator token")
            }
        },
        Err(failure) => failure,
    };
    ctx.throttles.operator_failures.take(ip)?;
    Err(failure)
}

/// The digest of the operator token a request carries: its bearer token,
/// or the token that opened its console session, which counts only with
/// the session's CSRF token beside it.
fn credential(ctx: &AppCtx, req: &HttpRequest) -> Result<operators::TokenHash, ApiError> {
    if let Some(token) = bearer(req) {
        return Ok(token_hash(token));
    }
    let Some(cookie) = req.cookie(console::COOKIE) else {
        return Err(ApiError::unauthorized("Missing bearer token"));
    };
    let session = ctx
        .sessions
        .find(cookie.value(), ctx.clock.now_ms())
        .ok_or_else(|| ApiError::unauthorized("The console session has ended: sign in again"))?;
    let csrf = req.headers().get(console::CSRF_HEADER).and_then(|v| v.to_str().ok());
    if csrf != Some(session.csrf.as_str()) {
        return Err(ApiError::unauthorized(format!(
            "A console session counts only with its CSRF token in {}",
            console::CSRF_HEADER
        )));
    }
    Ok(session.token_hash)
}

/// The operator whose token has digest `hash`: one of the configuration's,
/// or one made through the operator API.
pub fn operator_by_hash(ctx: &AppCtx, hash: &operators::TokenHash) -> Option<Operator> {
    ctx.operators.find(hash).cloned().or_else(|| {
        let state = ctx.state.read();
        let made = state.operators.values().find(|o| &o.token_hash == hash)?;
        Some(Operator { name: made.name.clone(), role: made.role, phi_access: made.phi_access })
    })
}

/// Requires a JSON content type (415 otherwise).
pub fn require_json(req: &HttpRequest, also: &[&str]) -> Result<(), ApiError> {
    let mime = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match mime.as_deref() {
        Some("application/json") => Ok(()),
        Some(m) if also.contains(&m) => Ok(()),
        Some(m) => Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            format!("Content-Type '{m}' is not supported: send application/json"),
        )),
        None => Err(ApiError::new(ErrorKind::UnsupportedMediaType, "Content-Type is missing: send application/json")),
    }
}

/// Reads the body, refusing as soon as it exceeds `limit` bytes (413), or
/// once it has taken longer than `body_read_timeout_ms` to arrive (408).
pub async fn read_body(
    ctx: &AppCtx,
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let timeout_ms = ctx.config.body_read_timeout_ms;
    match actix_web::rt::time::timeout(Duration::from_millis(timeout_ms), read_within(req, payload, limit)).await {
        Ok(read) => read,
        Err(_) => Err(ApiError::new(
            ErrorKind::RequestTimeout,
            format!("The request body did not arrive within {timeout_ms} ms"),
        )),
    }
}

async fn read_within(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::new(ErrorKind::TooLarge, format!("Body exceeds the limit of {limit} bytes"));
    let declared =
        req.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("Could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
