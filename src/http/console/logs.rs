//! `/ui/logs`, the log search with every filter of `GET /logs` (SPEC §6),
//! and `/ui/logs/{id}`, one log with its attempts, its payload when the
//! operator may read it, and the `Retry`, `Skip` and `Resend` buttons.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use maud::{Markup, html};
use serde_json::Value;

use super::{
    Viewer, failed, html,
    render::{Nav, action, badge, page, pager, short_id, text, time},
    viewer,
};
use crate::{
    clock::{parse_rfc3339, rfc3339},
    error::ApiError,
    http::{
        AppCtx,
        admin::{log_detail, logs_page},
    },
    limits,
    model::{Id, LogStatus},
};

/// The filters of the search form, in the order shown.
const FILTERS: [&str; 8] = ["destination", "source", "status", "type", "data_model", "event_type", "since", "until"];

pub async fn search(
    ctx: web::Data<AppCtx>,
    req: HttpRequest,
    query: web::Query<Vec<(String, String)>>,
) -> HttpResponse {
    let viewer = match viewer(&ctx, &req) {
        Ok(v) => v,
        Err(sign_in) => return sign_in.answer(),
    };
    // A form sends its empty fields too: they filter nothing.
    let query: Vec<(String, String)> = query.into_inner().into_iter().filter(|(_, v)| !v.trim().is_empty()).collect();
    let mut filter: HashMap<String, String> = query.iter().cloned().collect();
    filter.entry("limit".to_owned()).or_insert_with(|| limits::CONSOLE_PAGE.to_string());
    for key in ["since", "until"] {
        if let Some(value) = filter.get_mut(key) {
            *value = as_rfc3339(value);
        }
    }
    let found = logs_page(&ctx, &filter);
    let form = search_form(&ctx, &filter);
    let body = match &found {
        Ok(page) => html! {
            h1 { "Logs" }
            (form)
            (logs_table(&ctx, page["logs"].as_array().map_or(&[][..], Vec::as_slice), true))
            (pager("/ui/logs", &query, &page["next_cursor"]))
        },
        Err(e) => html! {
            h1 { "Logs" }
            (form)
            p.error role="alert" { (e.text) }
        },
    };
    let status = found.as_ref().err().map_or(StatusCode::OK, ApiError::status);
    html(status, page(&viewer, Nav::Logs, "Logs", body))
}

/// A time from the form: RFC 3339 as the script sends it, or a form's
/// `YYYY-MM-DDTHH:MM[:SS]` without a zone, read as UTC.
fn as_rfc3339(value: &str) -> String {
    if parse_rfc3339(value).is_some() {
        return value.to_owned();
    }
    let seconds = if value.len() == 16 { ":00" } else { "" };
    let utc = format!("{value}{seconds}Z");
    parse_rfc3339(&utc).map_or_else(|| value.to_owned(), rfc3339)
}

fn search_form(ctx: &AppCtx, filter: &HashMap<String, String>) -> Markup {
    let (destinations, sources) = {
        let state = ctx.state.read();
        let mut d: Vec<(String, String)> =
            state.destinations.values().map(|d| (d.name.clone(), d.id.to_string())).collect();
        let mut s: Vec<(String, String)> = state.sources.values().map(|s| (s.name.clone(), s.id.to_string())).collect();
        d.sort();
        s.sort();
        (d, s)
    };
    let value = |key: &str| filter.get(key).cloned().unwrap_or_default();
    let statuses = ["Pending", "Retrying", "ProcessingFailed", "Succeeded", "Failed", "Filtered"];
    let select = |name: &str, label: &str, options: &[(String, String)]| {
        let chosen = value(name);
        html! {
            div.field {
                label for={ "f-" (name) } { (label) }
                select id={ "f-" (name) } name=(name) {
                    option value="" { "Any" }
                    @for (text, v) in options { option value=(v) selected[*v == chosen] { (text) } }
                }
            }
        }
    };
    let same = |items: &[&str]| items.iter().map(|s| ((*s).to_owned(), (*s).to_owned())).collect::<Vec<_>>();
    html! {
        form.filters method="get" action="/ui/logs" role="search" aria-label="Search logs" {
            (select("destination", "Destination", &destinations))
            (select("source", "Source", &sources))
            (select("status", "Status", &same(&statuses)))
            (select("type", "Type", &same(&["Async", "Query"])))
            div.field { label for="f-data_model" { "Data model" } input id="f-data_model" name="data_model" value=(value("data_model")); }
            div.field { label for="f-event_type" { "Event type" } input id="f-event_type" name="event_type" value=(value("event_type")); }
            @for (name, label) in [("since", "Received since"), ("until", "Received until")] {
                div.field {
                    label for={ "f-" (name) } { (label) }
                    input id={ "f-" (name) } name=(name) type="datetime-local" step="1" data-utc=(value(name));
                }
            }
            div.field {
                label for="f-limit" { "Per page" }
                select id="f-limit" name="limit" {
                    @for n in [25, 50, 100, 500] { option value=(n) selected[value("limit") == n.to_string()] { (n) } }
                }
            }
            div.field.submit { button type="submit" { "Search" } a href="/ui/logs" { "Clear" } }
        }
        p.hint { "Times are in your time zone. Filters: " (FILTERS.join(", ")) "." }
    }
}

/// Logs as a table, newest first; `with_destination` adds its column.
pub fn logs_table(ctx: &AppCtx, logs: &[Value], with_destination: bool) -> Markup {
    if logs.is_empty() {
        return html! { p { "No logs match." } };
    }
    let names = |key: &str| -> HashMap<String, String> {
        let state = ctx.state.read();
        match key {
            "destination_id" => state.destinations.values().map(|d| (d.id.to_string(), d.name.clone())).collect(),
            _ => state.sources.values().map(|s| (s.id.to_string(), s.name.clone())).collect(),
        }
    };
    let (destinations, sources) = (names("destination_id"), names("source_id"));
    let name_of = |map: &HashMap<String, String>, v: &Value| {
        v.as_str().map(|id| map.get(id).cloned().unwrap_or_else(|| id.to_owned())).unwrap_or_else(|| "—".to_owned())
    };
    html! {
        table.logs {
            thead { tr {
                th scope="col" { "Received" } th scope="col" { "Log" } th scope="col" { "Status" }
                @if with_destination { th scope="col" { "Destination" } }
                th scope="col" { "Source" } th scope="col" { "Data model" } th scope="col" { "Event type" }
                th scope="col".num { "Attempts" }
            } }
            tbody {
                @for log in logs {
                    @let id = log["id"].as_str().unwrap_or("");
                    tr {
                        td { (time(&log["received_at"])) }
                        td { a href={ "/ui/logs/" (id) } { (short_id(id)) } }
                        td { (badge(log["status"].as_str().unwrap_or(""))) }
                        @if with_destination {
                            td { a href={ "/ui/destinations/" (log["destination_id"].as_str().unwrap_or("")) } {
                                (name_of(&destinations, &log["destination_id"]))
                            } }
                        }
                        td { (name_of(&sources, &log["source_id"])) }
                        td { (text(&log["data_model"])) }
                        td { (text(&log["event_type"])) }
                        td.num { (log["attempts"].as_array().map_or(0, Vec::len)) }
                    }
                }
            }
        }
    }
}

/// A log's delivery attempts: when, the receiver's HTTP status, how long,
/// and the error: the engine's words and what the receiver answered.
pub fn attempts_table(attempts: &[Value]) -> Markup {
    html! {
        table.attempts {
            thead { tr {
                th scope="col" { "#" } th scope="col" { "Started" } th scope="col" { "HTTP status" }
                th scope="col".num { "Duration" } th scope="col" { "Error and the receiver's answer" }
            } }
            tbody {
                @for (n, a) in attempts.iter().enumerate() {
                    tr {
                        td { (n + 1) }
                        td { (time(&a["started_at"])) }
                        td { (text(&a["http_status"])) }
                        td.num { (text(&a["duration_ms"])) " ms" }
                        td.error-text {
                            (text(&a["error"]))
                            @if let Some(answer) = a["response"].as_str().filter(|r| !r.trim().is_empty()) {
                                @if answer.chars().count() <= SHOWN_ANSWER_CHARS {
                                    pre.response { (answer) }
                                } @else {
                                    pre.response { (answer.chars().take(SHOWN_ANSWER_CHARS).collect::<String>()) "…" }
                                    details { summary { "The whole answer" } pre.response { (answer) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Characters of a receiver's answer shown in an attempt's row; the rest
/// opens on demand.
const SHOWN_ANSWER_CHARS: usize = 400;

pub async fn one(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let viewer = match viewer(&ctx, &req) {
        Ok(v) => v,
        Err(sign_in) => return sign_in.answer(),
    };
    let found = Id::parse(&id)
        .ok_or_else(|| ApiError::not_found(format!("'{id}' is not an ID")))
        .and_then(|id| log_detail(&ctx, &viewer.operator, id));
    match found {
        Ok(log) => html(StatusCode::OK, page(&viewer, Nav::Logs, "Log", log_page(&ctx, &viewer, &log))),
        Err(e) => failed(&viewer, &e),
    }
}

fn log_page(ctx: &AppCtx, viewer: &Viewer, log: &Value) -> Markup {
    let id = log["id"].as_str().unwrap_or("");
    let status = LogStatus::parse(log["status"].as_str().unwrap_or("")).unwrap_or(LogStatus::Pending);
    let destination = log["destination_id"].as_str().unwrap_or("");
    let (destination_name, source_name) = {
        let state = ctx.state.read();
        let d = Id::parse(destination).and_then(|d| state.destinations.get(&d)).map(|d| d.name.clone());
        let s =
            log["source_id"].as_str().and_then(Id::parse).and_then(|s| state.sources.get(&s)).map(|s| s.name.clone());
        (d, s)
    };
    use LogStatus::*;
    let retry = matches!(status, ProcessingFailed | Failed | Retrying);
    let skip = matches!(status, ProcessingFailed | Retrying);
    let resend = matches!(status, Succeeded | Failed | Filtered);
    html! {
        h1 { "Log " code { (id) } }
        // Until the log ends, an action's outcome is still to come: the
        // page refreshes after an action until it shows.
        p.state data-live=[matches!(status, Pending | Retrying).then_some("log")] {
            "Status: " (badge(status.as_str()))
        }
        @if viewer.may_act() && (retry || skip || resend) {
            div.actions {
                @if retry { (action("Retry", &format!("/api/v1/logs/{id}/retry"), "Process and deliver it next, ahead of the queue")) }
                @if skip { (action("Skip", &format!("/api/v1/logs/{id}/skip"), "Give up on it (Failed) so the queue flows")) }
                @if resend { (action("Resend", &format!("/api/v1/logs/{id}/resend"), "Deliver it again as a new log at the queue's tail")) }
            }
        }
        dl.facts {
            dt { "Destination" } dd { a href={ "/ui/destinations/" (destination) } { (destination_name.unwrap_or_else(|| destination.to_owned())) } }
            dt { "Source" } dd { (source_name.map_or_else(|| text(&log["source_id"]), |n| html! { (n) })) }
            dt { "Message ID" } dd { (text(&log["message_id"])) }
            dt { "Type" } dd { (text(&log["type"])) }
            dt { "Data model" } dd { (text(&log["data_model"])) }
            dt { "Event type" } dd { (text(&log["event_type"])) }
            dt { "Received" } dd { (time(&log["received_at"])) }
            dt { "Updated" } dd { (time(&log["updated_at"])) }
            dt { "Reason" } dd { (text(&log["reason"])) }
            @if let Some(from) = log["resent_from"].as_str() {
                dt { "Resent from" } dd { a href={ "/ui/logs/" (from) } { code { (from) } } }
            }
        }
        h2 { "Attempts" }
        @match log["attempts"].as_array().filter(|a| !a.is_empty()) {
            Some(attempts) => (attempts_table(attempts)),
            None => p { "No delivery attempt yet." },
        }
        h2 { "Payload" }
        @if log["payload_redacted"].as_bool() == Some(true) {
            p.redacted { "Hidden: message bodies hold patient data, and operator '" (viewer.operator.name) "' has no PHI access." }
        } @else {
            pre.payload { code { (serde_json::to_string_pretty(&log["payload"]).unwrap_or_default()) } }
        }
    }
}
