//! Authentication (SPEC §8): source tokens, refresh, expiry, and the
//! operator's static token.

use std::time::Duration;

use serde_json::json;

use crate::{
    client::patient_admin,
    harness::{ADMIN_TOKEN, CLINIC, EHR, Options, Server, wait_for},
};

#[test]
fn wrong_credentials_are_refused() {
    let server = Server::start();
    for (api_key, secret) in
        [(EHR.api_key, "wrong-secret"), ("no-such-key", EHR.secret), (EHR.api_key, CLINIC.secret), ("", "")]
    {
        let reply = server.authenticate(api_key, secret);
        reply.redox_error(401);
        assert!(reply.json.get("accessToken").is_none(), "{}", reply.text);
    }
    let reply = server.post_raw("/auth/authenticate", None, Some("application/json"), b"{\"apiKey\": \"x\"}");
    reply.redox_error(400);
    let reply = server.authenticate(EHR.api_key, EHR.secret);
    assert_eq!(reply.status, 200, "{}", reply.text);
    for field in ["accessToken", "expires", "refreshToken"] {
        assert!(reply.json[field].is_string(), "no {field}: {}", reply.text);
    }
    assert_ne!(reply.json["accessToken"], reply.json["refreshToken"]);
}

#[test]
fn refresh_tokens_renew_and_are_not_access_tokens() {
    let server = Server::start();
    let first = server.authenticate(EHR.api_key, EHR.secret);
    let access = first.json["accessToken"].as_str().expect("accessToken");
    let refresh = first.json["refreshToken"].as_str().expect("refreshToken");
    let durable = server.durable_through();
    let body = patient_admin("NewPatient", "auth");
    let text = server.send(refresh, &body).redox_error(401);
    assert!(text.contains("kind"), "a refresh token used as an access token: {text}");
    assert_eq!(server.durable_through(), durable);
    // An access token does not refresh, and a refresh token belongs to its source.
    server.refresh(EHR.api_key, access).redox_error(401);
    server.refresh(CLINIC.api_key, refresh).redox_error(401);
    server.refresh(EHR.api_key, "frx1.nonsense").redox_error(401);
    let renewed = server.refresh(EHR.api_key, refresh);
    assert_eq!(renewed.status, 200, "{}", renewed.text);
    let new_access = renewed.json["accessToken"].as_str().expect("accessToken");
    assert!(renewed.json["refreshToken"].is_string(), "{}", renewed.text);
    assert_ne!(new_access, access, "the renewed token is a new one");
    let accepted = server.send(new_access, &body).accepted();
    assert_eq!(accepted.logs.len(), 2);
    // The token carries its source: the clinic's token routes as the clinic.
    let clinic = server.send(&server.token_of(CLINIC), &body).accepted();
    let log = server.admin_get(&format!("/logs/{}", clinic.logs[0].0));
    assert_eq!(log.json["source_id"], CLINIC.id, "{}", log.text);
}

#[test]
fn expired_tokens_are_refused() {
    let server = Server::start_with(&Options { token_lifetime_s: Some(1), ..Options::default() });
    let token = server.token();
    let durable = server.durable_through();
    // While the token is valid an empty body is a 400; once it expires the
    // same request is a 401. Nothing is written either way.
    wait_for("the access token to expire", Duration::from_secs(10), || {
        let reply = server.post_raw("/endpoint", Some(&token), Some("application/json"), b"{}");
        match reply.status {
            400 => false,
            401 => {
                let text = reply.redox_error(401);
                assert!(text.contains("expired"), "{text}");
                true
            }
            other => panic!("unexpected {other}: {}", reply.text),
        }
    });
    assert_eq!(server.durable_through(), durable);
    // A fresh token works again.
    server.send(&server.token(), &patient_admin("NewPatient", "fresh")).accepted();
}

#[test]
fn the_operator_api_needs_the_admin_token() {
    let server = Server::start();
    let source_token = server.token();
    // One wrong token per path: more from one address would be throttled.
    let paths = ["/sources", "/destinations", "/subscriptions", "/logs"];
    let tokens = [None, Some("wrong-admin-token-0123456789"), Some(source_token.as_str()), Some("")];
    for (path, token) in paths.into_iter().zip(tokens) {
        let reply = server.admin_as(token, "GET", path, None);
        reply.redox_error(401);
    }
    let durable = server.durable_through();
    let body = json!({ "name": "Sneaky", "url": "http://127.0.0.1:9/s", "environment": "staging" });
    server.admin_as(Some("wrong-admin-token-0123456789"), "POST", "/destinations", Some(&body)).redox_error(401);
    server.admin_as(None, "DELETE", &format!("/destinations/{}", crate::harness::LAB), None).redox_error(401);
    assert_eq!(server.durable_through(), durable);
    for path in ["/sources", "/destinations", "/subscriptions", "/logs"] {
        let reply = server.admin_as(Some(ADMIN_TOKEN), "GET", path, None);
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.text);
    }
}

#[test]
fn too_many_failed_operator_tokens_from_one_address_get_429_with_retry_after() {
    let server = Server::start();
    let durable = server.durable_through();
    for n in 0..10 {
        server.admin_as(Some(&format!("guess-{n:024}")), "GET", "/sources", None).redox_error(401);
    }
    let refused = server.admin_as(Some("guess-one-more-0123456789"), "GET", "/sources", None);
    let text = refused.redox_error(429);
    assert!(text.contains("failed operator tokens"), "{text}");
    let wait: u64 = refused.header("retry-after").and_then(|s| s.parse().ok()).expect("a Retry-After in seconds");
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    // The address is held off whatever it sends, the right token included.
    server.admin_as(Some(ADMIN_TOKEN), "GET", "/sources", None).redox_error(429);
    let body = json!({ "name": "Sneaky", "url": "http://127.0.0.1:9/s", "environment": "staging" });
    server.admin_as(Some(ADMIN_TOKEN), "POST", "/destinations", Some(&body)).redox_error(429);
    assert_eq!(server.durable_through(), durable, "a throttled request was written");
    // Sources sign in on a limit of their own.
    server.token();
}

#[test]
fn too_many_sign_ins_from_one_address_get_429_with_retry_after() {
    let server = Server::start();
    // 20 at once, then one a second: each PBKDF2 check takes a while, so
    // the limit is met a little after the 20th.
    let mut tries = 0;
    let refused = loop {
        let reply = server.authenticate(EHR.api_key, "a-wrong-secret");
        if reply.status == 429 {
            break reply;
        }
        reply.redox_error(401);
        tries += 1;
        assert!(tries < 40, "no 429 after {tries} sign-ins");
    };
    assert!(tries >= 20, "throttled after only {tries} sign-ins");
    let text = refused.redox_error(429);
    assert!(text.contains("sign-in"), "{text}");
    assert!(refused.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok()), "no Retry-After");
    assert_eq!(refused.json["Meta"]["Errors"][0]["Module"], "Authentication");
    server.authenticate(EHR.api_key, EHR.secret).redox_error(429);
    server.refresh(EHR.api_key, "a-refresh-token").redox_error(429);
}
