//! `GET /healthz` (liveness), `GET /readyz` (readiness) and
//! `GET /metrics` (Prometheus text format).

use std::{fmt::Write, sync::atomic::Ordering};

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppCtx;
use crate::{journal::Health, model::LogStatus};

/// Liveness: the process runs and answers.
pub async fn healthz(ctx: web::Data<AppCtx>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "durable_through": ctx.journal.durable_through(),
    }))
}

/// Readiness: 200 once the journal is replayed (this handler is served only
/// then) and takes writes; 503 with the reason otherwise.
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

pub async fn metrics(ctx: web::Data<AppCtx>) -> HttpResponse {
    let state = ctx.state.read();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP ferrox_messages_accepted_total Messages accepted.\n# TYPE ferrox_messages_accepted_total counter"
    );
    let _ = writeln!(out, "ferrox_messages_accepted_total {}", state.next_message_id.saturating_sub(1));
    let _ = writeln!(out, "# HELP ferrox_logs Logs by status.\n# TYPE ferrox_logs gauge");
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
    let _ = writeln!(out, "# HELP ferrox_queue_depth Logs waiting per destination.\n# TYPE ferrox_queue_depth gauge");
    for (id, queue) in &state.queues {
        let _ = writeln!(out, "ferrox_queue_depth{{destination=\"{id}\"}} {}", queue.pending.len());
    }
    let _ = writeln!(
        out,
        "# HELP ferrox_wal_durable_position Highest durable journal position.\n# TYPE ferrox_wal_durable_position gauge"
    );
    let _ = writeln!(out, "ferrox_wal_durable_position {}", ctx.journal.durable_through());
    let (first, segments) = ctx.journal.retained();
    let _ = writeln!(
        out,
        "# HELP ferrox_wal_first_position First journal position retained.\n# TYPE ferrox_wal_first_position gauge"
    );
    let _ = writeln!(out, "ferrox_wal_first_position {first}");
    let _ = writeln!(out, "# HELP ferrox_wal_segments Journal segment files.\n# TYPE ferrox_wal_segments gauge");
    let _ = writeln!(out, "ferrox_wal_segments {segments}");
    let kept: u64 = statuses.iter().map(|&s| state.log_count(s)).sum();
    let _ = writeln!(
        out,
        "# HELP ferrox_logs_kept Logs kept (within retention or not terminal), in memory or in the history.\n# TYPE ferrox_logs_kept gauge"
    );
    let _ = writeln!(out, "ferrox_logs_kept {kept}");
    let _ = writeln!(
        out,
        "# HELP ferrox_logs_in_memory Logs in memory: not ended, or ended moments ago.\n# TYPE ferrox_logs_in_memory gauge"
    );
    let _ = writeln!(out, "ferrox_logs_in_memory {}", state.logs_in_memory());
    let _ = writeln!(
        out,
        "# HELP ferrox_start_replayed_records Journal records the last start replayed.\n# TYPE ferrox_start_replayed_records gauge"
    );
    let _ = writeln!(out, "ferrox_start_replayed_records {}", state.replayed_at_start);
    let ahead = ctx.deliveries.ahead_counts();
    let counters = [
        ("started", "Logs whose processing started ahead of their turn in their queue.", &ahead.started),
        ("prepared", "Logs processed ahead of their turn in their queue.", &ahead.prepared),
        ("used", "Deliveries whose processing was started ahead of their turn.", &ahead.used),
        ("discarded", "Results processed ahead and thrown away unused.", &ahead.discarded),
    ];
    for (name, help, count) in counters {
        let name = format!("ferrox_processing_ahead_{name}_total");
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let _ = writeln!(out, "{name} {}", count.load(Ordering::Relaxed));
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(out)
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
