//! The audit trail (SPEC §12): every change through the operator API is
//! journaled with the operator's name and listed newest first at
//! `GET /api/v1/audit`, paged like `/logs`; refusals and changes that change
//! nothing leave no entry; secrets never appear; the trail survives a clean
//! restart (from the snapshot) and a crash (from the journal).

use serde_json::{Value, json};

use crate::{
    client::patient_admin,
    harness::{LAB, Server},
    roles::{ADMIN2, OPERATOR, VIEWER, start},
};

/// The whole trail, following `next_cursor` with pages of `limit`.
fn trail(server: &Server, limit: usize) -> Vec<Value> {
    let mut all = Vec::new();
    let mut path = format!("/audit?limit={limit}");
    loop {
        let reply = server.admin_as(Some(VIEWER), "GET", &path, None);
        assert_eq!(reply.status, 200, "{}", reply.text);
        let page = reply.json["audit"].as_array().expect("an audit list").clone();
        assert!(page.len() <= limit);
        all.extend(page);
        match reply.json["next_cursor"].as_str() {
            Some(cursor) => path = format!("/audit?limit={limit}&cursor={cursor}"),
            None => return all,
        }
    }
}

fn ok(server: &Server, token: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let reply = server.admin_as(Some(token), method, path, body);
    assert!((200..300).contains(&reply.status), "{method} {path}: {} {}", reply.status, reply.text);
    reply.json
}

#[test]
fn every_change_is_listed_with_its_operator_newest_first_and_survives_restarts() {
    let mut server = start();
    let token = server.token();
    let accepted = server.send(&token, &patient_admin("NewPatient", "audit-1")).accepted();
    let log = accepted.logs.iter().find(|(_, d)| d == LAB).map(|(l, _)| l.clone()).expect("a log for the lab");

    let made = ok(&server, ADMIN2, "POST", "/sources", Some(&json!({ "name": "Portal" })));
    let source = made["id"].as_str().expect("an id").to_owned();
    let secrets = [made["api_key"].as_str().expect("a key"), made["secret"].as_str().expect("a secret")];
    ok(&server, ADMIN2, "PUT", &format!("/sources/{source}"), Some(&json!({ "name": "Portal 2" })));
    ok(&server, OPERATOR, "POST", &format!("/destinations/{LAB}/pause"), None);
    // Nothing changes: no entry.
    ok(&server, OPERATOR, "POST", &format!("/destinations/{LAB}/pause"), None);
    // Refused: no entry.
    let refused = server.admin_as(Some(VIEWER), "POST", &format!("/destinations/{LAB}/resume"), None);
    assert_eq!(refused.status, 403);
    ok(&server, OPERATOR, "POST", &format!("/logs/{log}/skip"), None);
    ok(&server, OPERATOR, "POST", &format!("/destinations/{LAB}/resume"), None);
    ok(&server, ADMIN2, "DELETE", &format!("/sources/{source}"), None);

    let expected = [
        ("ada", "source.delete", source.as_str()),
        ("otto", "destination.resume", LAB),
        ("otto", "log.skip", log.as_str()),
        ("otto", "destination.pause", LAB),
        ("ada", "source.update", source.as_str()),
        ("ada", "source.create", source.as_str()),
    ];
    let listed = trail(&server, 100);
    let seen: Vec<(&str, &str, &str)> = listed
        .iter()
        .map(|e| {
            (
                e["operator"].as_str().unwrap_or(""),
                e["action"].as_str().unwrap_or(""),
                e["target"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(seen, expected, "{listed:#?}");
    assert_eq!(listed[5]["detail"], "name 'Portal'");
    assert!(listed.iter().all(|e| e["id"].is_string() && e["at"].is_string()));
    let text = serde_json::to_string(&listed).expect("json");
    for secret in secrets.iter().chain(&[VIEWER, OPERATOR, ADMIN2]) {
        assert!(!text.contains(secret), "a secret is in the audit trail: {secret}");
    }
    assert_eq!(trail(&server, 2), listed, "pages of 2 give the same trail");

    // A clean stop leaves the trail in a snapshot; a crash in the journal.
    assert!(server.stop().success());
    server.restart();
    assert_eq!(trail(&server, 100), listed, "the trail changed across a clean restart");
    ok(&server, OPERATOR, "POST", &format!("/destinations/{LAB}/pause"), None);
    server.kill9();
    server.restart();
    let after = trail(&server, 100);
    assert_eq!(after.len(), listed.len() + 1);
    assert_eq!((after[0]["operator"].as_str(), after[0]["action"].as_str()), (Some("otto"), Some("destination.pause")));
    assert_eq!(after[1..], listed[..]);
}

#[test]
fn a_bad_cursor_or_limit_is_a_400_in_meta_errors() {
    let server = start();
    for query in ["limit=0", "limit=x", "cursor=zz", "what=1"] {
        let reply = server.admin_as(Some(VIEWER), "GET", &format!("/audit?{query}"), None);
        reply.redox_error(400);
    }
    assert_eq!(server.admin_as(None, "GET", "/audit", None).status, 401);
}
