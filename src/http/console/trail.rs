//! `/ui/alerts` and `/ui/audit`: what the engine raised, and who changed
//! what, newest first, a page at a time.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use maud::{Markup, html};
use serde_json::Value;

use super::{
    html,
    render::{Nav, page, pager, short_id, text, time},
    viewer,
};
use crate::{
    error::ApiError,
    http::{
        AppCtx,
        admin::{alerts_page, audit_page},
    },
    limits,
};

type Query = web::Query<Vec<(String, String)>>;

/// The list's query as the API reads it, with the console's page size.
fn api_query(query: &[(String, String)]) -> HashMap<String, String> {
    let mut api: HashMap<String, String> = query.iter().filter(|(_, v)| !v.is_empty()).cloned().collect();
    api.entry("limit".to_owned()).or_insert_with(|| limits::CONSOLE_PAGE.to_string());
    api
}

fn list_page(
    ctx: &AppCtx,
    req: &HttpRequest,
    (nav, title, base): (Nav, &str, &str),
    query: &[(String, String)],
    read: fn(&AppCtx, &HashMap<String, String>) -> Result<Value, ApiError>,
    table: fn(&AppCtx, &Value) -> Markup,
) -> HttpResponse {
    let viewer = match viewer(ctx, req) {
        Ok(v) => v,
        Err(sign_in) => return sign_in.answer(),
    };
    let (status, body) = match read(ctx, &api_query(query)) {
        Ok(list) => {
            (StatusCode::OK, html! { h1 { (title) } (table(ctx, &list)) (pager(base, query, &list["next_cursor"])) })
        }
        Err(e) => (e.status(), html! { h1 { (title) } p.error role="alert" { (e.text) } }),
    };
    html(status, page(&viewer, nav, title, body))
}

pub async fn alerts(ctx: web::Data<AppCtx>, req: HttpRequest, query: Query) -> HttpResponse {
    list_page(&ctx, &req, (Nav::Alerts, "Alerts", "/ui/alerts"), &query, alerts_page, alerts_table)
}

pub async fn audit(ctx: web::Data<AppCtx>, req: HttpRequest, query: Query) -> HttpResponse {
    list_page(&ctx, &req, (Nav::Audit, "Audit trail", "/ui/audit"), &query, audit_page, audit_table)
}

fn alerts_table(ctx: &AppCtx, list: &Value) -> Markup {
    let alerts = list["alerts"].as_array().map_or(&[][..], Vec::as_slice);
    if alerts.is_empty() {
        return html! { p { "No alerts." } };
    }
    let names: HashMap<String, String> =
        ctx.state.read().destinations.values().map(|d| (d.id.to_string(), d.name.clone())).collect();
    html! {
        table {
            thead { tr {
                th scope="col" { "At" } th scope="col" { "Kind" } th scope="col" { "Destination" }
                th scope="col" { "Log" } th scope="col" { "Text" } th scope="col" { "Sent" }
            } }
            tbody {
                @for a in alerts {
                    @let destination = a["destination_id"].as_str().unwrap_or("");
                    tr {
                        td { (time(&a["at"])) }
                        td { (text(&a["kind"])) }
                        td { a href={ "/ui/destinations/" (destination) } { (names.get(destination).map_or(destination, String::as_str)) } }
                        td { @if let Some(log) = a["log_id"].as_str() { a href={ "/ui/logs/" (log) } { (short_id(log)) } } @else { "—" } }
                        td { (text(&a["text"])) }
                        td { (sent(a)) }
                    }
                }
            }
        }
    }
}

/// Per channel: sent, still to send, or refused and why.
fn sent(alert: &Value) -> Markup {
    let Some(channels) = alert["sent"].as_object().filter(|c| !c.is_empty()) else { return html! { "no channel" } };
    html! {
        ul.channels {
            @for (channel, done) in channels {
                li {
                    (channel) ": "
                    @if let Some(why) = alert["refused"][channel].as_str() { "refused (" (why) ")" }
                    @else if done.as_bool() == Some(true) { "sent" }
                    @else { "to send" }
                }
            }
        }
    }
}

fn audit_table(_: &AppCtx, list: &Value) -> Markup {
    let entries = list["audit"].as_array().map_or(&[][..], Vec::as_slice);
    if entries.is_empty() {
        return html! { p { "Nothing changed through the operator API yet." } };
    }
    html! {
        table {
            thead { tr {
                th scope="col" { "At" } th scope="col" { "Operator" } th scope="col" { "Action" }
                th scope="col" { "Target" } th scope="col" { "Detail" }
            } }
            tbody {
                @for e in entries {
                    @let action = e["action"].as_str().unwrap_or("");
                    @let target = e["target"].as_str().unwrap_or("");
                    tr {
                        td { (time(&e["at"])) }
                        td { (text(&e["operator"])) }
                        td { code { (action) } }
                        td { (target_link(action, target)) }
                        td { (text(&e["detail"])) }
                    }
                }
            }
        }
    }
}

/// A log or destination named by an audit entry, linked to its page.
fn target_link(action: &str, target: &str) -> Markup {
    let view = match action.split('.').next() {
        Some("log") => "logs",
        Some("destination") => "destinations",
        _ => "",
    };
    match (view, target.is_empty()) {
        (_, true) => html! { "—" },
        ("", false) => html! { code { (target) } },
        (view, false) => html! { a href={ "/ui/" (view) "/" (target) } { code { (target) } } },
    }
}
