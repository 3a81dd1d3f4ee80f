//! REQUEST/RESPOND: `POST /query` (SPEC §7). The request goes to exactly
//! one destination, through the subscription's `transform`; its JSON reply
//! comes back through `response_transform`. Nothing is queued or retried,
//! but a `Query` log records the request, the reply and the outcome, and is
//! durable before the answer is sent. Queries never wait behind a
//! destination's queue.

use std::{sync::Arc, time::Duration};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use super::{
    AppCtx, authenticate_source,
    openapi::schemas::{DataModelMessage, RedoxErrors},
    read_body, require_json,
};
use crate::{
    delivery::request::{self, AttemptIds},
    egress::Egress,
    error::{ApiError, ErrorKind},
    inbound::{self, Endpoint, InboundError},
    jq::{Transform, TransformPool},
    limits,
    model::{Attempt, Destination, Id, LogStatus, LogType},
    router::{self, QueryOutcome, Routing, Submit},
    tls,
    traces::TraceSpan,
};

/// The HTTP clients of one HTTP worker, in its app data: awc clients stay
/// on their thread, and queries through a worker reuse its connections.
/// The timeout is set per request, from the destination.
pub struct QueryClient(std::cell::RefCell<tls::Clients>);

impl std::fmt::Debug for QueryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryClient").finish_non_exhaustive()
    }
}

impl QueryClient {
    pub fn new(tls: Arc<tls::ClientTls>, egress: Egress) -> Self {
        Self(std::cell::RefCell::new(tls::Clients::new(tls, egress)))
    }
}

#[utoipa::path(
    post,
    path = "/query",
    tag = "Query",
    security(("source" = [])),
    request_body = DataModelMessage,
    responses(
        (status = 200, description = "The destination's JSON reply (after the subscription's response_transform)", body = Object),
        (status = 400, description = "Not JSON, Meta missing or wrong, an asynchronous event type, not exactly one destination", body = RedoxErrors),
        (status = 401, description = "Missing, expired or forged access token", body = RedoxErrors),
        (status = 408, description = "The body did not arrive in time", body = RedoxErrors),
        (status = 413, description = "Body over max_body_bytes", body = RedoxErrors),
        (status = 415, description = "Content-Type not JSON", body = RedoxErrors),
        (status = 502, description = "The destination failed or answered no JSON", body = RedoxErrors),
        (status = 503, description = "The write-ahead log takes no writes", body = RedoxErrors),
        (status = 504, description = "The destination did not answer within its timeout_ms", body = RedoxErrors),
    ),
)]
pub async fn query(ctx: web::Data<AppCtx>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let mut span = ctx.traces.span("query");
    let answer = match run(&ctx, &req, payload, &mut span).await {
        Ok(reply) => HttpResponse::Ok().json(reply),
        Err(e) => {
            span.fail(e.error.text.clone());
            e.error.redox_response("Query", e.data_model.as_deref(), e.event_type.as_deref())
        }
    };
    span.set_i64("http.response.status_code", answer.status().as_u16().into());
    answer
}

fn plain(error: ApiError) -> InboundError {
    InboundError { error, data_model: None, event_type: None }
}

/// The destination and the programs of the one subscription a query uses.
struct Target {
    destination: Destination,
    transform: Option<String>,
    response_transform: Option<String>,
}

fn target(ctx: &AppCtx, source: Id, routing: &Routing) -> Result<Target, ApiError> {
    let state = ctx.state.read();
    let destinations = router::route(&state, source, routing)?;
    let [destination] = destinations.as_slice() else {
        return Err(ApiError::invalid(format!(
            "A query goes to exactly one destination, and {} match: name one in Meta.Destinations",
            destinations.len()
        )));
    };
    let subscription = state
        .matching_subscriptions(source, &routing.data_model, &routing.event_type)
        .find(|s| s.destination_id == *destination)
        .ok_or_else(|| ApiError::invalid("No Subscriptions found for message."))?;
    let destination =
        state.destinations.get(destination).cloned().ok_or_else(|| ApiError::invalid("Destination not found"))?;
    Ok(Target {
        destination,
        transform: subscription.transform.clone(),
        response_transform: subscription.response_transform.clone(),
    })
}

fn compile(program: Option<&String>, field: &str) -> Result<Option<Transform>, ApiError> {
    program
        .map(|p| {
            Transform::compile(p)
                .map_err(|e| ApiError::invalid(format!("the subscription's {field} does not compile: {e}")))
        })
        .transpose()
}

async fn run(
    ctx: &AppCtx,
    req: &HttpRequest,
    payload: web::Payload,
    span: &mut TraceSpan,
) -> Result<Value, InboundError> {
    let source_id = authenticate_source(ctx, req).map_err(plain)?;
    span.set("ferrox.source_id", source_id);
    let client = req.app_data::<QueryClient>().ok_or_else(|| plain(ApiError::internal("no query client")))?;
    require_json(req, &[]).map_err(plain)?;
    let body = read_body(ctx, req, payload, ctx.config.max_body_bytes).await.map_err(plain)?;
    let inbound = inbound::parse_redox(&body, Endpoint::Query)?;
    let known = |error: ApiError| InboundError {
        error,
        data_model: Some(inbound.data_model.clone()),
        event_type: Some(inbound.event_type.clone()),
    };
    span.set("ferrox.data_model", &inbound.data_model);
    span.set("ferrox.event_type", &inbound.event_type);
    let routing = Routing::of(&inbound);
    let target = target(ctx, source_id, &routing).map_err(known)?;
    span.set("ferrox.destination_id", target.destination.id);
    let transform = compile(target.transform.as_ref(), "transform").map_err(known)?;
    let response_transform = compile(target.response_transform.as_ref(), "response_transform").map_err(known)?;
    let submit = Submit { source_id, routing, payload: body.clone(), idempotency: None, log_type: LogType::Query };
    let submitted = match ctx.router.send(submit).await {
        Ok(result) => result.map_err(known)?,
        Err(e) => return Err(known(ApiError::new(ErrorKind::Unavailable, format!("The router is not running: {e}")))),
    };
    let log =
        submitted.outcome.logs.first().copied().ok_or_else(|| known(ApiError::internal("the query has no log")))?;
    let message_id = submitted.outcome.message_id;
    span.set("ferrox.message_id", message_id);
    span.set("ferrox.log_id", log.id);
    let pool = ctx.deliveries.pool();
    let outbound = pool
        .prepare(body.to_vec(), transform.map(Arc::new), Some((message_id, message_id << 16)))
        .await
        .map_err(|e| known(ApiError::invalid(format!("the query could not be processed: {e}"))))?
        .ok_or_else(|| known(ApiError::invalid("the subscription's transform filtered the query out")))?;
    let ids = AttemptIds {
        log_id: log.id.to_string(),
        attempt_id: log.attempt_id.to_string(),
        message_id,
        received_at_ms: ctx.clock.now_ms(),
        now_s: ctx.clock.now_ms().div_euclid(1000),
    };
    let started_at_ms = ctx.clock.now_ms();
    let response_transform = response_transform.map(Arc::new);
    let egress = ctx.config.egress();
    let client = client.0.borrow_mut().get(target.destination.client_cert.as_ref());
    let result = forward(client, &target.destination, &ids, outbound, response_transform, pool, egress).await;
    let duration_ms = u64::try_from(ctx.clock.now_ms().saturating_sub(started_at_ms)).unwrap_or(0);
    if let Some(status) = result.as_ref().map_or_else(|(s, _)| *s, |(s, _)| *s) {
        span.set_i64("ferrox.destination_status", status.into());
    }
    // One sync covers the accepted query and its outcome: the log syncs in
    // order, so waiting for the outcome waits for the acceptance too.
    drop(submitted.durable);
    record(ctx, log.id, log.attempt_id, started_at_ms, duration_ms, &result).await.map_err(known)?;
    result.map(|(_, reply)| reply).map_err(|(_, e)| known(e))
}

/// What a forward gave: the status and kept answer, and the reply or error.
type Forwarded = Result<(Option<u16>, Value), (Option<u16>, ApiError)>;

async fn forward(
    client: Result<awc::Client, String>,
    dest: &Destination,
    ids: &AttemptIds,
    body: Vec<u8>,
    response_transform: Option<Arc<Transform>>,
    pool: &TransformPool,
    egress: Egress,
) -> Forwarded {
    let bad_gateway = |status, text: String| (status, ApiError::new(ErrorKind::BadGateway, text));
    egress.check(&dest.url).map_err(|e| bad_gateway(None, format!("The destination is refused: {e}")))?;
    let headers = request::headers(dest, ids, &body).map_err(|e| (None, ApiError::internal(e)))?;
    let client = client.map_err(|e| bad_gateway(None, format!("The destination could not be reached: {e}")))?;
    let mut req = client.post(&dest.url).timeout(Duration::from_millis(dest.timeout_ms));
    for header in headers {
        req = req.insert_header(header);
    }
    let mut resp = match req.send_body(body).await {
        Ok(resp) => resp,
        Err(awc::error::SendRequestError::Timeout) => {
            let text = format!("The destination did not answer within {} ms", dest.timeout_ms);
            return Err((None, ApiError::new(ErrorKind::GatewayTimeout, text)));
        }
        Err(e) => return Err(bad_gateway(None, format!("The destination could not be reached: {e}"))),
    };
    let status = resp.status().as_u16();
    let answer = resp
        .body()
        .limit(16 << 20)
        .await
        .map_err(|e| bad_gateway(Some(status), format!("Reading the destination's reply failed: {e}")))?;
    if !(200..300).contains(&status) {
        let detail = request::receiver_error_text(&answer).unwrap_or_else(|| request::kept_response(&answer));
        return Err(bad_gateway(Some(status), format!("The destination answered HTTP {status}: {detail}")));
    }
    let reply: Value = serde_json::from_slice(&answer)
        .map_err(|e| bad_gateway(Some(status), format!("The destination's reply is not JSON: {e}")))?;
    let reply = match response_transform {
        None => reply,
        Some(t) => match pool.run(t, answer.to_vec()).await {
            Ok(Some(out)) => serde_json::from_slice(&out)
                .map_err(|e| bad_gateway(Some(status), format!("The response_transform's output is not JSON: {e}")))?,
            Ok(None) => return Err(bad_gateway(Some(status), "The response_transform filtered the reply out".into())),
            Err(e) => return Err(bad_gateway(Some(status), format!("The response_transform failed: {e}"))),
        },
    };
    Ok((Some(status), reply))
}

/// The reply as the `Query` log keeps it, cut at `QUERY_REPLY_KEPT_BYTES`.
fn kept_reply(reply: &Value) -> String {
    let mut text = reply.to_string();
    if text.len() > limits::QUERY_REPLY_KEPT_BYTES {
        let mut end = limits::QUERY_REPLY_KEPT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("… (truncated)");
    }
    text
}

/// Journals the query's attempt and outcome through the router; returns
/// once they are durable.
async fn record(
    ctx: &AppCtx,
    log_id: Id,
    attempt_id: Id,
    started_at_ms: i64,
    duration_ms: u64,
    result: &Forwarded,
) -> Result<(), ApiError> {
    let (http_status, error, response, status) = match result {
        Ok((code, reply)) => (*code, None, Some(kept_reply(reply)), LogStatus::Succeeded),
        Err((code, e)) => (*code, Some(e.text.clone()), None, LogStatus::Failed),
    };
    let attempt = Attempt { id: attempt_id, started_at_ms, duration_ms, http_status, error: error.clone(), response };
    let outcome = QueryOutcome { log_id, attempt, status, reason: error };
    let durable = match ctx.router.send(outcome).await {
        Ok(result) => result?,
        Err(e) => return Err(ApiError::new(ErrorKind::Unavailable, format!("The router is not running: {e}"))),
    };
    Ok(durable.await?)
}
