//! Operators made through `/api/v1/operators` (SPEC §12): role `admin`
//! only; a token shown once and never again; roles that take effect at
//! once; the configuration file's operators read-only; every change
//! journaled, audited without secrets, and kept across a clean restart
//! (from the snapshot) and a crash (from the journal).

use serde_json::{Value, json};

use crate::{
    harness::LAB,
    roles::{ADMIN2, OPERATOR, VIEWER, start},
};

#[test]
fn operators_made_through_the_api_act_by_their_role_until_deleted() {
    let mut server = start();
    let pause = format!("/destinations/{LAB}/pause");
    let pause = pause.as_str();
    let made =
        server.admin_as(Some(ADMIN2), "POST", "/operators", Some(&json!({ "name": "nina", "role": "operator" })));
    assert_eq!(made.status, 201, "{}", made.text);
    let token = made.json["token"].as_str().expect("a generated token, shown once").to_owned();
    assert!(token.len() >= 16);
    assert_eq!((made.json["origin"].as_str(), made.json["phi_access"].as_bool()), (Some("api"), Some(false)));

    let listed = server.admin_as(Some(ADMIN2), "GET", "/operators", None);
    assert_eq!(listed.status, 200, "{}", listed.text);
    let names: Vec<(&str, &str)> = listed.json["operators"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|o| (o["name"].as_str().unwrap_or(""), o["origin"].as_str().unwrap_or("")))
        .collect();
    for expected in [("admin", "configuration"), ("vera", "configuration"), ("nina", "api")] {
        assert!(names.contains(&expected), "{expected:?} in {names:?}");
    }
    assert!(!listed.text.contains(&token) && !listed.text.contains("token"), "{}", listed.text);
    let one = server.admin_as(Some(ADMIN2), "GET", "/operators/nina", None);
    assert_eq!((one.status, one.json.get("token")), (200, None), "{}", one.text);

    // Her role takes effect at once.
    assert_eq!(server.admin_as(Some(&token), "POST", pause, None).status, 200);
    let refused = server.admin_as(Some(&token), "POST", "/sources", Some(&json!({ "name": "X" })));
    assert!(refused.redox_error(403).contains("nina"), "{}", refused.text);
    let down = json!({ "role": "viewer" });
    assert_eq!(server.admin_as(Some(ADMIN2), "PUT", "/operators/nina", Some(&down)).status, 200);
    assert_eq!(server.admin_as(Some(&token), "POST", pause, None).status, 403);
    assert_eq!(server.admin_as(Some(&token), "GET", "/logs", None).status, 200);
    // A new token replaces the old one.
    let fresh = "nina-fresh-token-0123456789";
    let rekey = json!({ "role": "operator", "phi_access": true, "token": fresh });
    assert_eq!(server.admin_as(Some(ADMIN2), "PUT", "/operators/nina", Some(&rekey)).status, 200);
    assert_eq!(server.admin_as(Some(&token), "GET", "/logs", None).status, 401);
    assert_eq!(server.admin_as(Some(fresh), "POST", pause, None).status, 200);

    // Bad requests and conflicts change nothing.
    for (method, path, body, status, expected) in [
        ("POST", "/operators", json!({ "name": "vera", "role": "viewer" }), 409, "configuration file"),
        ("POST", "/operators", json!({ "name": "nina", "role": "viewer" }), 409, "already"),
        ("POST", "/operators", json!({ "name": "x", "role": "viewer", "token": "short" }), 400, "at least 16"),
        ("POST", "/operators", json!({ "name": "x", "role": "viewer", "token": VIEWER }), 409, "same token"),
        ("POST", "/operators", json!({ "name": "x", "role": "root" }), 400, "role 'root'"),
        ("POST", "/operators", json!({ "role": "viewer" }), 400, "name is required"),
        ("POST", "/operators", json!({ "name": "x", "role": "viewer", "colour": 1 }), 400, "unknown field"),
        ("PUT", "/operators/vera", json!({ "role": "admin" }), 409, "configuration file"),
        ("PUT", "/operators/nobody", json!({ "role": "admin" }), 404, "not found"),
        ("PUT", "/operators/nina", json!({ "name": "other", "role": "admin" }), 400, "differs"),
        ("DELETE", "/operators/admin", Value::Null, 409, "configuration file"),
        ("DELETE", "/operators/nobody", Value::Null, 404, "not found"),
    ] {
        let body = (!body.is_null()).then_some(&body);
        let reply = server.admin_as(Some(ADMIN2), method, path, body);
        let text = reply.redox_error(status);
        assert!(text.contains(expected), "{method} {path}: {text}");
    }

    // Kept across a clean restart and a crash.
    server.stop();
    server.restart();
    assert_eq!(server.admin_as(Some(fresh), "POST", pause, None).status, 200);
    let second = json!({ "name": "omar", "role": "viewer", "token": "omar-token-0123456789abcd" });
    assert_eq!(server.admin_as(Some(ADMIN2), "POST", "/operators", Some(&second)).status, 201);
    server.kill9();
    server.restart();
    assert_eq!(server.admin_as(Some("omar-token-0123456789abcd"), "GET", "/logs", None).status, 200);

    let deleted = server.admin_as(Some(ADMIN2), "DELETE", "/operators/nina", None);
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(server.admin_as(Some(fresh), "GET", "/logs", None).status, 401);

    // Audited, without any token.
    let audit = server.admin_as(Some(VIEWER), "GET", "/audit?limit=100", None);
    let actions: Vec<(&str, &str)> = audit.json["audit"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|e| e["action"].as_str().is_some_and(|a| a.starts_with("operator.")))
        .map(|e| (e["action"].as_str().unwrap_or(""), e["target"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        actions,
        [
            ("operator.delete", "nina"),
            ("operator.create", "omar"),
            ("operator.update", "nina"),
            ("operator.update", "nina"),
            ("operator.create", "nina"),
        ]
    );
    for secret in [token.as_str(), fresh, "omar-token-0123456789abcd"] {
        assert!(!audit.text.contains(secret), "a token in the audit trail: {}", audit.text);
    }
    // Only admins manage operators.
    for t in [VIEWER, OPERATOR] {
        assert_eq!(server.admin_as(Some(t), "GET", "/operators", None).status, 403);
    }
}
