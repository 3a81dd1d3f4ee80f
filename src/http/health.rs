//! `GET /healthz` (liveness), `GET /readyz` (readiness) and
//! `GET /metrics` (the OpenMetrics text format, which Prometheus reads).

use std::{
    fmt::Write,
    sync::{Arc, atomic::Ordering},
};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::{
    AppCtx,
    openapi::schemas::{Liveness, Readiness},
};
use crate::{
    journal::Health,
    jq::AheadCounts,
    ledger::{JournalReader, StateReader},
    metrics::{Levels, counter, gauge_header},
    model::LogStatus,
    operators::token_hash,
};

/// Liveness: the process runs and answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "Health",
    responses((status = 200, description = "The process runs", body = Liveness)),
)]
pub async fn healthz(ctx: web::Data<AppCtx>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "durable_through": ctx.journal.durable_through(),
    }))
}

/// Readiness: 200 once the journal is replayed (this handler is served only
/// then) and takes writes; 503 with the reason otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "Health",
    responses(
        (status = 200, description = "Replayed, and the write-ahead log takes writes", body = Readiness),
        (status = 503, description = "Not ready, and why", body = Readiness, headers(("retry-after" = u64))),
    ),
)]
pub async fn readyz(ctx: web::Data<AppCtx>) -> HttpResponse {
    let (ready, body) = readiness(ctx.journal.health());
    match ready {
        true => HttpResponse::Ok().json(body),
        false => HttpResponse::ServiceUnavailable().insert_header(("retry-after", "1")).json(body),
    }
}

/// Whether the journal's health makes the engine ready, and what to say.
fn readiness(health: Health) -> (bool, serde_json::Value) {
    match health {
        Health::Writable => (true, json!({ "status": "ready" })),
        Health::Degraded(reason) => {
            (true, json!({ "status": "ready", "warning": format!("the write-ahead log cannot grow: {reason}") }))
        }
        Health::Unwritable(reason) => (
            false,
            json!({ "status": "unavailable", "reason": format!("the write-ahead log takes no writes for now: {reason}") }),
        ),
        Health::Failed(reason) => (
            false,
            json!({
                "status": "failed",
                "reason": format!("the write-ahead log failed and takes no writes until ferrox restarts: {reason}"),
            }),
        ),
    }
}

/// The metrics, in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "Health",
    security((), ("metrics" = [])),
    responses(
        (status = 200, description = "Counters, gauges and histograms", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 401, description = "metrics_token is set and was not given", body = String,
            content_type = "text/plain; charset=utf-8"),
    ),
)]
pub async fn metrics(ctx: web::Data<AppCtx>, req: HttpRequest) -> HttpResponse {
    if let Some(expected) = ctx.config.metrics_token.as_deref() {
        let given =
            req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if given.is_none_or(|g| token_hash(g.trim()) != token_hash(expected)) {
            return HttpResponse::Unauthorized()
                .insert_header(("www-authenticate", "Bearer realm=\"metrics\""))
                .content_type("text/plain; charset=utf-8")
                .body("GET /metrics needs the metrics token: Authorization: Bearer <metrics_token>\n");
        }
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(ctx.metrics.exposition())
}

/// The engine's levels, read from its state and journal at each scrape.
pub struct EngineLevels {
    pub state: StateReader,
    pub journal: JournalReader,
    pub ahead: Arc<AheadCounts>,
}

impl Levels for EngineLevels {
    fn write(&self, out: &mut String) {
        let state = self.state.read();
        counter(out, "ferrox_messages_accepted", "Messages accepted.", state.next_message_id.saturating_sub(1));
        gauge_header(out, "ferrox_logs", "Logs by status.");
        let statuses = [
            LogStatus::Pending,
            LogStatus::Retrying,
            LogStatus::ProcessingFailed,
            LogStatus::Succeeded,
            LogStatus::Failed,
            LogStatus::Filtered,
        ];
        for status in statuses {
            let _ = writeln!(out, "ferrox_logs{{status=\"{}\"}} {}", status.as_str(), state.log_count(status));
        }
        gauge_header(out, "ferrox_queue_depth", "Logs waiting per destination.");
        for (id, queue) in &state.queues {
            let _ = writeln!(out, "ferrox_queue_depth{{destination=\"{id}\"}} {}", queue.pending.len());
        }
        let (first, segments) = self.journal.retained();
        let kept: u64 = statuses.iter().map(|&s| state.log_count(s)).sum();
        let gauges = [
            ("ferrox_wal_durable_position", "Highest durable journal position.", self.journal.durable_through()),
            ("ferrox_wal_first_position", "First journal position retained.", first),
            ("ferrox_wal_segments", "Journal segment files.", segments as u64),
            ("ferrox_logs_kept", "Logs kept (within retention or not terminal), in memory or in the history.", kept),
            (
                "ferrox_logs_in_memory",
                "Logs in memory: not ended, or ended moments ago.",
                state.logs_in_memory() as u64,
            ),
            ("ferrox_start_replayed_records", "Journal records the last start replayed.", state.replayed_at_start),
        ];
        for (name, help, value) in gauges {
            gauge_header(out, name, help);
            let _ = writeln!(out, "{name} {value}");
        }
        let counters = [
            ("started", "Logs whose processing started ahead of their turn in their queue.", &self.ahead.started),
            ("prepared", "Logs processed ahead of their turn in their queue.", &self.ahead.prepared),
            ("used", "Deliveries whose processing was started ahead of their turn.", &self.ahead.used),
            ("discarded", "Results processed ahead and thrown away unused.", &self.ahead.discarded),
        ];
        for (name, help, count) in counters {
            counter(out, &format!("ferrox_processing_ahead_{name}"), help, count.load(Ordering::Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_the_journal_takes_writes() {
        let cases = [
            (Health::Writable, true, "ready", None),
            (Health::Degraded("no space".into()), true, "ready", Some("cannot grow: no space")),
            (Health::Unwritable("no space".into()), false, "unavailable", Some("no writes for now: no space")),
            (Health::Failed("fdatasync: EIO".into()), false, "failed", Some("until ferrox restarts: fdatasync: EIO")),
        ];
        for (health, ready, status, text) in cases {
            let (got, body) = readiness(health.clone());
            assert_eq!((got, body["status"].as_str()), (ready, Some(status)), "{health:?}");
            if let Some(text) = text {
                assert!(body.to_string().contains(text), "{health:?}: {body}");
            }
        }
    }
}
