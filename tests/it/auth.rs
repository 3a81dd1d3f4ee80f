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
    let paths = ["/sources", "/destinations", "/subscriptions", "/logs"];
    for path in paths {
        for token in [None, Some("wrong-admin-token-0123456789"), Some(source_token.as_str()), Some("")] {
            let reply = server.admin_as(token, "GET", path, None);
            reply.redox_error(401);
        }
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
