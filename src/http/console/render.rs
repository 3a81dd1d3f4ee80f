//! The console's page shell and the pieces every view uses: times (shown
//! in the viewer's time zone by the script), ages, status badges, pagers
//! and action buttons.

use actix_web::http::StatusCode;
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use super::Viewer;

/// The views of the main navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Destinations,
    Logs,
    Alerts,
    Audit,
    None,
}

const NAV: [(Nav, &str, &str); 4] = [
    (Nav::Destinations, "/ui", "Destinations"),
    (Nav::Logs, "/ui/logs", "Logs"),
    (Nav::Alerts, "/ui/alerts", "Alerts"),
    (Nav::Audit, "/ui/audit", "Audit"),
];

/// A whole page: header, navigation, the view in `main#content` (which the
/// script swaps for a fresh copy after an action), and a status region
/// that screen readers announce.
pub fn page(viewer: &Viewer, nav: Nav, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (head_common(title))
                meta name="ferrox-csrf" content=(viewer.csrf);
                script src="/ui/assets/console.js" defer {}
            }
            body {
                a.skip href="#content" { "Skip to content" }
                header.top {
                    a.brand href="/ui" { "ferrox" }
                    nav aria-label="Main" {
                        ul {
                            @for (item, href, label) in NAV {
                                li { a href=(href) aria-current=[(item == nav).then_some("page")] { (label) } }
                            }
                        }
                    }
                    div.who {
                        span { (viewer.operator.name) " · " (viewer.operator.role.as_str()) }
                        form method="post" action="/ui/sign-out" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                div id="status" class="status" role="status" aria-live="polite" {}
                main id="content" tabindex="-1" { (body) }
            }
        }
    }
}

/// What every console page's `head` holds: encoding, viewport, title and
/// the stylesheet.
pub fn head_common(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · ferrox" }
        link rel="stylesheet" href="/ui/assets/console.css";
    }
}

/// A page for an error, inside the shell.
pub fn error_page(viewer: &Viewer, status: StatusCode, text: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    page(
        viewer,
        Nav::None,
        title,
        html! {
            h1 { (title) }
            p.error role="alert" { (text) }
            p { a href="/ui" { "Back to the destinations" } }
        },
    )
}

/// An RFC 3339 time from the API, shown in UTC until the script shows it
/// in the viewer's time zone.
pub fn time(value: &Value) -> Markup {
    match value.as_str() {
        Some(at) => html! { time datetime=(at) { (at) } },
        None => html! { "—" },
    }
}

/// A duration in milliseconds, as a person says it: "4 min 12 s".
pub fn age(ms: &Value) -> Markup {
    let Some(ms) = ms.as_i64() else { return html! { "—" } };
    let s = ms / 1000;
    let text = match s {
        _ if ms < 1000 => format!("{ms} ms"),
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    };
    html! { (text) }
}

/// A log status or queue state as a badge: coloured, and named in words.
pub fn badge(value: &str) -> Markup {
    html! { span class={ "badge b-" (value.to_ascii_lowercase()) } { (value) } }
}

/// A string field of an API object, or a dash.
pub fn text(value: &Value) -> Markup {
    match value {
        Value::String(s) if !s.is_empty() => html! { (s) },
        Value::Number(n) => html! { (n) },
        Value::Bool(b) => html! { (if *b { "yes" } else { "no" }) },
        _ => html! { "—" },
    }
}

/// A button that calls the operator API (`POST path`) from the script,
/// then shows the page again without a reload.
pub fn action(label: &str, path: &str, help: &str) -> Markup {
    html! {
        button.action type="button" data-post=(path) data-label=(label) title=(help) { (label) }
    }
}

/// The links to the first page and to the next, older one: the list's
/// query, with `cursor` set.
pub fn pager(base: &str, query: &[(String, String)], next: &Value) -> Markup {
    let with = |cursor: Option<&str>| {
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in query.iter().filter(|(k, _)| k != "cursor") {
            url.append_pair(k, v);
        }
        if let Some(cursor) = cursor {
            url.append_pair("cursor", cursor);
        }
        let query = url.finish();
        if query.is_empty() { base.to_owned() } else { format!("{base}?{query}") }
    };
    let first = query.iter().any(|(k, _)| k == "cursor");
    html! {
        nav.pager aria-label="Pages" {
            @if first { a href=(with(None)) { "← Newest" } }
            @if let Some(cursor) = next.as_str() { a href=(with(Some(cursor))) rel="next" { "Older →" } }
        }
    }
}

/// An ID shortened for a table cell; the whole ID is its title.
pub fn short_id(id: &str) -> Markup {
    let short = id.get(..8).unwrap_or(id);
    html! { code title=(id) { (short) "…" } }
}
