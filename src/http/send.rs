//! SEND: `POST /endpoint` (Redox Data Model) and
//! `POST /fhir/R4/$process-message` (FHIR R4 messaging).

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::{
    AppCtx, authenticate_source,
    openapi::schemas::{DataModelMessage, FhirBundle, OperationOutcome, RedoxErrors, SendReply},
    read_body, require_json,
};
use crate::{
    error::{ApiError, ErrorKind},
    inbound::{self, Endpoint, Inbound, InboundError},
    journal::{Keyed, body_hash},
    limits,
    model::{Id, LogType},
    router::{self, SendOutcome},
    traces::TraceSpan,
};

/// Which API shape a request speaks, and so its error shape.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Redox,
    Fhir,
}

#[utoipa::path(
    post,
    path = "/endpoint",
    tag = "Send",
    security(("source" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeat within 24 h answers the first response and stores nothing new")),
    request_body = DataModelMessage,
    responses(
        (status = 200, description = "Accepted: the message and its logs are on disk (not yet delivered)", body = SendReply,
            headers(("ferrox-message-id" = u64, description = "The message's ID"))),
        (status = 400, description = "Not JSON, Meta missing or wrong, unknown or unsubscribed destination, a synchronous event type", body = RedoxErrors),
        (status = 401, description = "Missing, expired or forged access token", body = RedoxErrors),
        (status = 408, description = "The body did not arrive in time", body = RedoxErrors),
        (status = 413, description = "Body over max_body_bytes", body = RedoxErrors),
        (status = 415, description = "Content-Type not JSON", body = RedoxErrors),
        (status = 422, description = "The Idempotency-Key came before with another body", body = RedoxErrors),
        (status = 503, description = "The write-ahead log takes no writes: not acknowledged, send again", body = RedoxErrors),
    ),
)]
pub async fn endpoint(ctx: web::Data<AppCtx>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let started = Instant::now();
    let mut span = ctx.traces.span("send");
    span.set("ferrox.api", "redox");
    let answer = match accept(&ctx, &req, payload, Shape::Redox, &mut span).await {
        Ok((inbound, outcome)) => redox_reply(&ctx, inbound, &outcome),
        Err(e) => {
            span.fail(e.error.text.clone());
            e.error.redox_response("Send", e.data_model.as_deref(), e.event_type.as_deref())
        }
    };
    span.set_i64("http.response.status_code", answer.status().as_u16().into());
    ctx.metrics.send(false, answer.status().as_u16(), started.elapsed());
    answer
}

#[utoipa::path(
    post,
    path = "/fhir/R4/$process-message",
    tag = "Send",
    security(("source" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeat within 24 h answers the first response and stores nothing new")),
    request_body(content((FhirBundle = "application/fhir+json"), (FhirBundle = "application/json"))),
    responses(
        (status = 200, description = "Accepted: an information issue per log, the log ID in diagnostics", body = OperationOutcome,
            content_type = "application/fhir+json", headers(("ferrox-message-id" = u64, description = "The message's ID"))),
        (status = 400, description = "Not a message Bundle, unknown event, no subscription", body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 401, description = "Missing, expired or forged access token", body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 408, description = "The body did not arrive in time", body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 413, description = "Body over max_body_bytes", body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 415, description = "Content-Type not JSON", body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 422, description = "The Idempotency-Key came before with another body", body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 503, description = "The write-ahead log takes no writes: not acknowledged, send again", body = OperationOutcome, content_type = "application/fhir+json"),
    ),
)]
pub async fn fhir(ctx: web::Data<AppCtx>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let started = Instant::now();
    let mut span = ctx.traces.span("send");
    span.set("ferrox.api", "fhir");
    let answer = match accept(&ctx, &req, payload, Shape::Fhir, &mut span).await {
        Ok((_, outcome)) => fhir_reply(&ctx, &outcome),
        Err(e) => {
            span.fail(e.error.text.clone());
            e.error.fhir_response()
        }
    };
    span.set_i64("http.response.status_code", answer.status().as_u16().into());
    ctx.metrics.send(true, answer.status().as_u16(), started.elapsed());
    answer
}

fn plain(error: ApiError) -> InboundError {
    InboundError { error, data_model: None, event_type: None }
}

/// Authenticates, validates, and hands the message to the router; returns
/// once it is durable.
async fn accept(
    ctx: &AppCtx,
    req: &HttpRequest,
    payload: web::Payload,
    shape: Shape,
    span: &mut TraceSpan,
) -> Result<(Inbound, SendOutcome), InboundError> {
    let source_id = authenticate_source(ctx, req).map_err(plain)?;
    span.set("ferrox.source_id", source_id);
    require_json(req, &["application/fhir+json"]).map_err(plain)?;
    let body = read_body(ctx, req, payload, ctx.config.max_body_bytes).await.map_err(plain)?;
    let inbound = match shape {
        Shape::Redox => inbound::parse_redox(&body, Endpoint::Send)?,
        Shape::Fhir => inbound::parse_fhir(&body)?,
    };
    span.set("ferrox.data_model", &inbound.data_model);
    span.set("ferrox.event_type", &inbound.event_type);
    let known = |error: ApiError| InboundError {
        error,
        data_model: Some(inbound.data_model.clone()),
        event_type: Some(inbound.event_type.clone()),
    };
    let idempotency = idempotency_key(req).map_err(known)?.map(|key| Keyed { key, body_hash: body_hash(&body) });
    let send = router::Submit {
        source_id,
        routing: router::Routing::of(&inbound),
        payload: body,
        idempotency,
        log_type: LogType::Async,
    };
    let submitted = match ctx.router.send(send).await {
        Ok(result) => result.map_err(known)?,
        Err(e) => return Err(known(ApiError::new(ErrorKind::Unavailable, format!("The router is not running: {e}")))),
    };
    submitted.durable.await.map_err(|e| known(e.into()))?;
    let outcome = submitted.outcome;
    span.set("ferrox.message_id", outcome.message_id);
    span.set_with("ferrox.log_ids", || outcome.logs.iter().map(|l| l.id.to_string()).collect::<Vec<_>>().join(","));
    span.set("ferrox.repeated", if outcome.repeated { "true" } else { "false" });
    Ok((inbound, outcome))
}

/// The `Idempotency-Key` header, if present and well formed.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else { return Ok(None) };
    let key = value.to_str().map_err(|_| ApiError::invalid("Idempotency-Key must be visible ASCII"))?.trim();
    if key.is_empty() || key.len() > limits::MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(ApiError::invalid(format!(
            "Idempotency-Key must be 1 to {} characters",
            limits::MAX_IDEMPOTENCY_KEY_BYTES
        )));
    }
    Ok(Some(key.to_owned()))
}

/// The request's Meta with `Message.ID` and `Logs` set (SPEC §3). A repeated
/// request gets the Meta of the first one.
fn redox_reply(ctx: &AppCtx, inbound: Inbound, outcome: &SendOutcome) -> HttpResponse {
    let mut meta = if outcome.repeated {
        ctx.journal
            .message_payload(outcome.position)
            .ok()
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
            .map(|mut v| v["Meta"].take())
            .filter(Value::is_object)
            .unwrap_or(inbound.meta)
    } else {
        inbound.meta
    };
    meta["Message"] = json!({ "ID": outcome.message_id });
    meta["Logs"] = outcome
        .logs
        .iter()
        .map(|l| json!({ "ID": l.id.to_string(), "AttemptID": l.attempt_id.to_string(), "DestinationID": l.destination_id.to_string() }))
        .collect();
    HttpResponse::Ok()
        .insert_header(("ferrox-message-id", outcome.message_id.to_string()))
        .json(json!({ "Meta": meta }))
}

/// An `OperationOutcome` with one informational issue per log (SPEC §3).
fn fhir_reply(ctx: &AppCtx, outcome: &SendOutcome) -> HttpResponse {
    let state = ctx.state.read();
    let name = |id: Id| state.destinations.get(&id).map_or_else(|| id.to_string(), |d| d.name.clone());
    let issues: Vec<Value> = outcome
        .logs
        .iter()
        .map(|l| {
            json!({
                "severity": "information",
                "code": "informational",
                "details": { "text": format!("Queued for destination {}", name(l.destination_id)) },
                "diagnostics": l.id.to_string(),
            })
        })
        .collect();
    HttpResponse::Ok()
        .content_type("application/fhir+json")
        .insert_header(("ferrox-message-id", outcome.message_id.to_string()))
        .json(json!({ "resourceType": "OperationOutcome", "issue": issues }))
}
