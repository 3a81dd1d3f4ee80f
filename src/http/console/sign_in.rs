//! Signing in to the console with an operator token, and out again.

use actix_web::{
    HttpRequest, HttpResponse,
    cookie::{Cookie, SameSite},
    http::StatusCode,
    web,
};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::{COOKIE, html, see_other};
use crate::{
    http::{AppCtx, client_ip, operator_by_hash},
    operators::token_hash,
};

#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignIn {
    token: String,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignOut {
    csrf: String,
}

/// Where to go after signing in: a console address, never elsewhere.
fn next_page(next: Option<&str>) -> &str {
    next.filter(|n| (*n == "/ui" || n.starts_with("/ui/") || n.starts_with("/ui?")) && !n.contains('\\'))
        .unwrap_or("/ui")
}

pub async fn form(query: web::Query<Next>) -> HttpResponse {
    html(StatusCode::OK, sign_in_page(next_page(query.next.as_deref()), None))
}

pub async fn sign_in(ctx: web::Data<AppCtx>, req: HttpRequest, body: web::Form<SignIn>) -> HttpResponse {
    let next = next_page(body.next.as_deref()).to_owned();
    let ip = client_ip(&req);
    if let Err(e) = ctx.throttles.operator_failures.check(ip) {
        return html(e.status(), sign_in_page(&next, Some(&e.text)));
    }
    let hash = token_hash(body.token.trim());
    let Some(operator) = operator_by_hash(&ctx, &hash) else {
        let text = match ctx.throttles.operator_failures.take(ip) {
            Ok(()) => "That token is not an operator's.".to_owned(),
            Err(e) => e.text,
        };
        return html(StatusCode::UNAUTHORIZED, sign_in_page(&next, Some(&text)));
    };
    let session = ctx.sessions.open(ctx.ids.as_ref(), hash, ctx.clock.now_ms());
    tracing::info!(operator = %operator.name, "signed in to the console");
    let secure = req.connection_info().scheme() == "https";
    let cookie =
        Cookie::build(COOKIE, session).path("/").http_only(true).secure(secure).same_site(SameSite::Strict).finish();
    let mut answer = see_other(&next);
    let _ = answer.add_cookie(&cookie);
    answer
}

pub async fn sign_out(ctx: web::Data<AppCtx>, req: HttpRequest, body: web::Form<SignOut>) -> HttpResponse {
    if let Some(cookie) = req.cookie(COOKIE)
        && let Some(session) = ctx.sessions.find(cookie.value(), ctx.clock.now_ms())
        && session.csrf == body.csrf
    {
        ctx.sessions.close(cookie.value());
    }
    let mut answer = see_other("/ui/sign-in");
    let _ = answer.add_removal_cookie(&Cookie::build(COOKIE, "").path("/").finish());
    answer
}

fn sign_in_page(next: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (super::render::head_common("Sign in")) }
            body.sign-in {
                main id="content" {
                    h1 { "ferrox" }
                    p { "Sign in with your operator token." }
                    @if let Some(error) = error { p.error role="alert" { (error) } }
                    form method="post" action="/ui/sign-in" {
                        input type="hidden" name="next" value=(next);
                        label for="token" { "Operator token" }
                        input id="token" type="password" name="token" autocomplete="current-password" required autofocus;
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}
