//! One delivery attempt (SPEC §4): the request to the destination, and
//! what its answer or failure was.

use std::time::Duration;

use actix_web::web::Bytes;

use super::{
    Shared,
    outcome::Outcome,
    request::{self, AttemptIds},
};
use crate::{
    metrics::AttemptOutcome,
    model::{Attempt, Destination},
    state::Log,
};

/// Makes one delivery attempt of `head` with `body`, through `client`, or
/// fails it with the reason there is none (a client certificate that does
/// not load).
pub(super) async fn send(
    shared: &Shared,
    client: Result<awc::Client, String>,
    dest: &Destination,
    head: &Log,
    received_at_ms: i64,
    body: Bytes,
) -> Outcome {
    let attempt_id = if head.attempts().is_empty() { head.first_attempt_id } else { shared.ids.id() };
    let mut span = shared.traces.span("delivery_attempt");
    span.set("ferrox.destination_id", dest.id);
    span.set("ferrox.log_id", head.id);
    span.set("ferrox.attempt_id", attempt_id);
    span.set("ferrox.message_id", head.message_id);
    span.set_i64("ferrox.attempt", i64::try_from(head.attempts().len() + 1).unwrap_or(i64::MAX));
    let started_at_ms = shared.clock.now_ms();
    let ids = AttemptIds {
        log_id: head.id.to_string(),
        attempt_id: attempt_id.to_string(),
        message_id: head.message_id,
        received_at_ms,
        now_s: started_at_ms.div_euclid(1000),
    };
    let (http_status, error, response) =
        match shared.egress.check(&dest.url).and_then(|()| Ok((request::headers(dest, &ids, &body)?, client?))) {
            Err(e) => (None, Some(e), None),
            Ok((headers, client)) => {
                let mut req = client.post(&dest.url).timeout(Duration::from_millis(dest.timeout_ms));
                for (name, value) in headers {
                    req = req.insert_header((name, value));
                }
                exchange(req, body).await
            }
        };
    let success = http_status.is_some_and(|s| (200..300).contains(&s));
    let duration_ms = u64::try_from(shared.clock.now_ms().saturating_sub(started_at_ms)).unwrap_or(0);
    let outcome = match (success, http_status) {
        (true, _) => AttemptOutcome::Success,
        (false, Some(_)) => AttemptOutcome::HttpError,
        (false, None) => AttemptOutcome::TransportError,
    };
    shared.metrics.attempt(dest.id, outcome, duration_ms);
    if let Some(status) = http_status {
        span.set_i64("http.response.status_code", status.into());
    }
    if let Some(error) = &error {
        span.fail(error.clone());
    }
    if success {
        shared.metrics.delivered(dest.id, shared.clock.now_ms().saturating_sub(received_at_ms));
    }
    let attempt = Attempt { id: attempt_id, started_at_ms, duration_ms, http_status, error, response };
    Outcome::Attempted { attempt, success, environment: dest.environment }
}

/// Sends the request; returns the status, the error text and the kept answer.
async fn exchange(req: awc::ClientRequest, body: Bytes) -> (Option<u16>, Option<String>, Option<String>) {
    let mut resp = match req.send_body(body).await {
        Ok(resp) => resp,
        Err(awc::error::SendRequestError::Timeout) => return (None, Some("timed out".to_owned()), None),
        Err(e) => return (None, Some(format!("transport error: {e}")), None),
    };
    let status = resp.status().as_u16();
    let answer = resp.body().limit(request::RESPONSE_BYTES_KEPT * 16).await.map(|b| b.to_vec()).unwrap_or_default();
    let kept = (!answer.is_empty()).then(|| request::kept_response(&answer));
    let error = if (200..300).contains(&status) {
        None
    } else {
        let text = request::receiver_error_text(&answer[..answer.len().min(request::RESPONSE_BYTES_KEPT)]);
        Some(text.map_or_else(|| format!("HTTP {status}"), |t| format!("HTTP {status}: {t}")))
    };
    (Some(status), error, kept)
}
