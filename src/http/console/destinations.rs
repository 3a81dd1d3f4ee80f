//! `/ui`, the destinations and their queues, and `/ui/destinations/{id}`,
//! one queue with its head and its newest logs.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use maud::{Markup, html};
use serde_json::Value;

use super::{
    failed, html,
    render::{Nav, action, age, badge, page, pager, text, time},
    viewer,
};
use crate::{
    error::ApiError,
    http::{
        AppCtx,
        admin::{logs_page, queue_view},
    },
    model::Id,
};

/// Destinations a page of `/ui` shows.
const PAGE: usize = 100;
/// Newest logs a destination's page shows.
const RECENT_LOGS: usize = 20;

pub async fn list(
    ctx: web::Data<AppCtx>,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let viewer = match viewer(&ctx, &req) {
        Ok(v) => v,
        Err(sign_in) => return sign_in.answer(),
    };
    let start: usize = query.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    // By name, then ID: a stable order, paged by offset (destinations are
    // a configuration, not a stream).
    let mut all: Vec<(String, Id, &'static str)> = {
        let state = ctx.state.read();
        state.destinations.values().map(|d| (d.name.clone(), d.id, d.environment.as_str())).collect()
    };
    all.sort();
    let total = all.len();
    let rows: Vec<(String, Id, &str, Value)> = all
        .into_iter()
        .skip(start)
        .take(PAGE)
        .filter_map(|(name, id, env)| queue_view(&ctx, id).ok().map(|q| (name, id, env, q)))
        .collect();
    let next = (start + PAGE < total).then(|| Value::String((start + PAGE).to_string()));
    let query: Vec<(String, String)> = query.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let body = html! {
        h1 { "Destinations" }
        @if total == 0 {
            p { "No destinations yet: add them to the configuration file or through the operator API." }
        } @else {
            table {
                caption { (total) " destinations, by name" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Environment" } th scope="col" { "Queue" }
                    th scope="col".num { "Depth" } th scope="col" { "Oldest pending" } th scope="col" { "Next retry" }
                } }
                tbody {
                    @for (name, id, env, q) in &rows {
                        tr {
                            td { a href={ "/ui/destinations/" (id) } { (name) } }
                            td { (env) }
                            td { (badge(q["state"].as_str().unwrap_or("flowing"))) }
                            td.num { (text(&q["depth"])) }
                            td { (age(&q["oldest_pending_age_ms"])) }
                            td { (time(&q["next_retry_at"])) }
                        }
                    }
                }
            }
            (pager("/ui", &query, &next.unwrap_or(Value::Null)))
        }
    };
    html(StatusCode::OK, page(&viewer, Nav::Destinations, "Destinations", body))
}

pub async fn one(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let viewer = match viewer(&ctx, &req) {
        Ok(v) => v,
        Err(sign_in) => return sign_in.answer(),
    };
    match destination(&ctx, &id, viewer.may_act()) {
        Ok((name, body)) => html(StatusCode::OK, page(&viewer, Nav::Destinations, &name, body)),
        Err(e) => failed(&viewer, &e),
    }
}

fn destination(ctx: &AppCtx, id: &str, may_act: bool) -> Result<(String, Markup), ApiError> {
    let id = Id::parse(id).ok_or_else(|| ApiError::not_found(format!("'{id}' is not an ID")))?;
    let queue = queue_view(ctx, id)?;
    let Some(d) = ctx.state.read().destinations.get(&id).cloned() else {
        return Err(ApiError::not_found(format!("destination {id} not found")));
    };
    let filter =
        HashMap::from([("destination".to_owned(), id.to_string()), ("limit".to_owned(), RECENT_LOGS.to_string())]);
    let recent = logs_page(ctx, &filter)?;
    let state = queue["state"].as_str().unwrap_or("flowing");
    let retrying = !queue["next_retry_at"].is_null();
    let body = html! {
        h1 { (d.name) " " (badge(state)) }
        @if may_act {
            div.actions {
                @if state == "flowing" {
                    (action("Pause", &format!("/api/v1/destinations/{id}/pause"), "Stop delivering to this destination"))
                } @else {
                    (action("Resume", &format!("/api/v1/destinations/{id}/resume"), "Deliver again, from the head"))
                }
            }
        }
        // While the queue retries, the page refreshes after an action until
        // the retry's outcome shows.
        dl.facts data-live=[retrying.then_some("queue")] {
            dt { "Environment" } dd { (d.environment.as_str()) }
            dt { "URL" } dd { code { (d.url) } }
            dt { "Enabled" } dd { (if d.enabled { "yes" } else { "no" }) }
            dt { "Queue" } dd { (badge(state)) }
            dt { "Why" } dd { (text(&queue["paused_reason"])) }
            dt { "Depth" } dd { (text(&queue["depth"])) " pending" }
            @if let Some(key) = d.fifo_key.as_ref() {
                dt { "Lanes" } dd {
                    "by " code { (key.as_str()) } ", " (d.max_in_flight) " in flight at most; "
                    (text(&queue["lanes_blocked"])) " blocked"
                }
            }
            dt { "Oldest pending" } dd { (age(&queue["oldest_pending_age_ms"])) }
            dt { "Head log" } dd {
                @if let Some(head) = queue["head_log_id"].as_str() { a href={ "/ui/logs/" (head) } { code { (head) } } }
                @else { "—" }
            }
            dt { "Next retry" } dd { (time(&queue["next_retry_at"])) }
        }
        @if let Some(attempts) = queue["head_attempts"].as_array().filter(|a| !a.is_empty()) {
            h2 { "Attempts of the head log" }
            (super::logs::attempts_table(attempts))
        }
        h2 { "Newest logs" }
        (super::logs::logs_table(ctx, recent["logs"].as_array().map_or(&[][..], Vec::as_slice), false))
        p { a href={ "/ui/logs?destination=" (id) } { "All logs of " (d.name) } }
    };
    Ok((d.name.clone(), body))
}
