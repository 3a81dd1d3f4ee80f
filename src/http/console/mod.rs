//! The operator console at `/ui` (SPEC §15): server-rendered pages, one
//! stable address a view, for the operators of §12.
//!
//! Every page reads through the operator API's own views
//! (`admin::logs_page`, `log_detail`, `queue_view`, `alerts_page`,
//! `audit_page`), so the console shows what the API shows, redacted the
//! same way. Buttons call the operator API itself from the console's
//! script, with the session's CSRF token, so every action is authorized,
//! journaled and audited exactly as through the API. The stylesheet and
//! the script are compiled into the binary; the pages allow nothing else
//! (`Content-Security-Policy`).

mod assets;
mod destinations;
mod logs;
mod render;
mod session;
mod sign_in;
mod trail;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode};
use maud::Markup;

pub use self::session::{COOKIE, CSRF_HEADER, SessionStore, Sessions};
use super::{AppCtx, operator_by_hash, routes::Routes};
use crate::{error::ApiError, operators::Operator};

/// The console's pages: HTML, left out of the API document.
pub fn routes(r: &mut Routes<'_>) {
    r.get("/ui", destinations::list)
        .get("/ui/", || async { see_other("/ui") })
        .get("/ui/destinations/{id}", destinations::one)
        .get("/ui/logs", logs::search)
        .get("/ui/logs/{id}", logs::one)
        .get("/ui/alerts", trail::alerts)
        .get("/ui/audit", trail::audit)
        .get("/ui/sign-in", sign_in::form)
        .post("/ui/sign-in", sign_in::sign_in)
        .post("/ui/sign-out", sign_in::sign_out)
        .get("/ui/assets/{name}", assets::asset);
}

/// The operator looking at a page, and their session's CSRF token.
#[derive(Debug)]
pub struct Viewer {
    pub operator: Operator,
    pub csrf: String,
}

impl Viewer {
    /// May use the queue and log buttons.
    fn may_act(&self) -> bool {
        self.operator.role >= crate::operators::Role::Operator
    }
}

/// The signed-in operator of a console request, or the answer that sends
/// the browser to sign in first (and back here after).
fn viewer(ctx: &AppCtx, req: &HttpRequest) -> Result<Viewer, SignInFirst> {
    let cookie = req.cookie(COOKIE);
    let session = cookie.as_ref().and_then(|c| ctx.sessions.find(c.value(), ctx.clock.now_ms()));
    let found = session.and_then(|s| match operator_by_hash(ctx, &s.token_hash) {
        Some(operator) => Some(Viewer { operator, csrf: s.csrf }),
        None => {
            // The token was removed: its sessions end with it.
            ctx.sessions.close_for(&s.token_hash);
            None
        }
    });
    found.ok_or_else(|| {
        let here = req.uri().path_and_query().map_or("/ui", |p| p.as_str());
        let query: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("next", here).finish();
        SignInFirst(format!("/ui/sign-in?{query}"))
    })
}

/// The sign-in page's address, with the page to come back to.
#[derive(Debug)]
struct SignInFirst(String);

impl SignInFirst {
    fn answer(&self) -> HttpResponse {
        see_other(&self.0)
    }
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("location", location)).insert_header(("cache-control", "no-store")).finish()
}

/// A page's answer, with the headers every console page carries: nothing
/// but the console's own assets may load, no other site may frame it, and
/// nothing is cached (pages may show patient data).
fn html(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("cache-control", "no-store"))
        .body(markup.into_string())
}

/// A page for an error of the API's views: its status, its text.
fn failed(viewer: &Viewer, error: &ApiError) -> HttpResponse {
    html(error.status(), render::error_page(viewer, error.status(), &error.text))
}
