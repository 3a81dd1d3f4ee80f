//! Operators and roles (SPEC §12): every operator endpoint against every
//! role, a refusal in the API's shape that changes nothing, and message
//! bodies shown only to operators with PHI access.

use serde_json::{Value, json};

use crate::{
    client::patient_admin,
    harness::{ADMIN_TOKEN, LAB, Options, Server},
};

pub(crate) const VIEWER: &str = "viewer-token-0123456789abcdef";
pub(crate) const OPERATOR: &str = "operator-token-0123456789abcdef";
pub(crate) const ADMIN2: &str = "second-admin-token-0123456789ab";
const OPERATOR_PHI: &str = "operator-phi-token-0123456789ab";

pub(crate) fn operators_toml() -> String {
    [
        ("vera", VIEWER, "viewer", false),
        ("otto", OPERATOR, "operator", false),
        ("ada", ADMIN2, "admin", false),
        ("phil", OPERATOR_PHI, "operator", true),
    ]
    .iter()
    .map(|(name, token, role, phi)| {
        format!("[[operators]]\nname = \"{name}\"\ntoken = \"{token}\"\nrole = \"{role}\"\nphi_access = {phi}\n")
    })
    .collect()
}

pub(crate) fn start() -> Server {
    Server::start_with(&Options { top_level: Some(operators_toml()), ..Options::default() })
}

#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Needs {
    Viewer,
    Operator,
    Admin,
}

/// Everything the operator API shows, to compare before and after.
fn everything(server: &Server) -> Vec<Value> {
    ["/sources", "/destinations", "/subscriptions", "/logs?limit=100", "/alerts", "/operators"]
        .iter()
        .chain(&[&*format!("/destinations/{LAB}/queue")])
        .map(|path| {
            let mut reply = server.admin_get(path);
            assert_eq!(reply.status, 200, "GET {path}: {}", reply.text);
            // The one thing that changes on its own: the queue's age.
            if let Some(queue) = reply.json.as_object_mut() {
                queue.remove("oldest_pending_age_ms");
            }
            reply.json
        })
        .collect()
}

#[test]
fn every_endpoint_refuses_a_role_below_its_own_and_changes_nothing() {
    let server = start();
    let token = server.token();
    let accepted = server.send(&token, &patient_admin("NewPatient", "roles-1")).accepted();
    let log = accepted.logs.iter().find(|(_, d)| d == LAB).map(|(l, _)| l.clone()).expect("a log for the lab");
    let made = server.admin_post("/sources", &json!({ "name": "Portal" }));
    assert_eq!(made.status, 201, "{}", made.text);
    let source = made.json["id"].as_str().expect("an id").to_owned();
    let subscription =
        server.admin_get("/subscriptions").json["subscriptions"][0]["id"].as_str().expect("a subscription").to_owned();
    let source_body = json!({ "name": "Portal 2" });
    let endpoints: Vec<(&str, String, Option<Value>, Needs)> = vec![
        ("GET", "/sources".into(), None, Needs::Viewer),
        ("GET", format!("/sources/{source}"), None, Needs::Viewer),
        ("GET", "/destinations".into(), None, Needs::Viewer),
        ("GET", format!("/destinations/{LAB}"), None, Needs::Viewer),
        ("GET", "/subscriptions".into(), None, Needs::Viewer),
        ("GET", format!("/subscriptions/{subscription}"), None, Needs::Viewer),
        ("GET", "/logs".into(), None, Needs::Viewer),
        ("GET", format!("/logs/{log}"), None, Needs::Viewer),
        ("GET", format!("/destinations/{LAB}/queue"), None, Needs::Viewer),
        ("GET", "/alerts".into(), None, Needs::Viewer),
        ("GET", "/audit".into(), None, Needs::Viewer),
        ("POST", format!("/destinations/{LAB}/pause"), None, Needs::Operator),
        ("POST", format!("/destinations/{LAB}/resume"), None, Needs::Operator),
        ("POST", format!("/logs/{log}/retry"), None, Needs::Operator),
        ("POST", format!("/logs/{log}/skip"), None, Needs::Operator),
        ("POST", "/sources".into(), Some(json!({ "name": "Another" })), Needs::Admin),
        ("PUT", format!("/sources/{source}"), Some(source_body.clone()), Needs::Admin),
        ("DELETE", format!("/sources/{source}"), None, Needs::Admin),
        ("POST", "/destinations".into(), Some(json!({ "name": "D", "url": "http://127.0.0.1:9/d" })), Needs::Admin),
        (
            "PUT",
            format!("/destinations/{LAB}"),
            Some(json!({ "name": "L", "url": "http://127.0.0.1:9/l" })),
            Needs::Admin,
        ),
        ("DELETE", format!("/destinations/{LAB}"), None, Needs::Admin),
        ("POST", "/subscriptions".into(), Some(json!({})), Needs::Admin),
        ("PUT", format!("/subscriptions/{subscription}"), Some(json!({})), Needs::Admin),
        ("DELETE", format!("/subscriptions/{subscription}"), None, Needs::Admin),
        ("POST", format!("/logs/{log}/resend"), None, Needs::Operator),
        (
            "POST",
            format!("/destinations/{LAB}/replay"),
            Some(json!({ "since": "2020-01-01T00:00:00Z" })),
            Needs::Operator,
        ),
        ("GET", "/operators".into(), None, Needs::Admin),
        ("POST", "/operators".into(), Some(json!({ "name": "zed", "role": "viewer" })), Needs::Admin),
        ("GET", "/operators/vera".into(), None, Needs::Admin),
        ("PUT", "/operators/zed".into(), Some(json!({ "role": "operator" })), Needs::Admin),
        ("DELETE", "/operators/zed".into(), None, Needs::Admin),
    ];
    let roles = [(VIEWER, Needs::Viewer, "vera"), (OPERATOR, Needs::Operator, "otto")];

    // Every refusal first: a 403 naming the role needed, in Meta.Errors,
    // and nothing shown changes.
    let before = everything(&server);
    for (method, path, body, needs) in &endpoints {
        for (token, role, name) in roles {
            if role >= *needs {
                continue;
            }
            let reply = server.admin_as(Some(token), method, path, body.as_ref());
            let text = reply.redox_error(403);
            assert!(text.contains(name) && text.contains("this needs role"), "{method} {path}: {text}");
            assert_eq!(reply.json["Meta"]["Errors"][0]["Type"], "Authorization", "{}", reply.text);
        }
    }
    // No token, and a token nobody has, are 401 whatever the endpoint
    // needs (a few of each: wrong tokens soon meet the rate limit).
    let first_of = |needs: Needs| endpoints.iter().find(|e| e.3 == needs).expect("an endpoint of each role");
    for (method, path, body, _) in [first_of(Needs::Viewer), first_of(Needs::Operator), first_of(Needs::Admin)] {
        assert_eq!(server.admin_as(None, method, path, body.as_ref()).status, 401, "{method} {path}");
        let unknown = server.admin_as(Some("nobody-token-0123456789abcd"), method, path, body.as_ref());
        assert_eq!(unknown.status, 401, "{method} {path}");
    }
    assert_eq!(everything(&server), before, "a refused request changed something");

    // Then what each role may do, it can: never 401 or 403. (The answers
    // themselves are the subject of the other tests; a change to an object
    // of the configuration file, say, is a 409 for every role.)
    for (method, path, body, needs) in &endpoints {
        let token = match needs {
            Needs::Viewer => VIEWER,
            Needs::Operator => OPERATOR,
            Needs::Admin => ADMIN2,
        };
        let reply = server.admin_as(Some(token), method, path, body.as_ref());
        assert!(![401, 403].contains(&reply.status), "{method} {path} as its role: {} {}", reply.status, reply.text);
    }
    // The created source was changed and deleted by the second admin.
    assert_eq!(server.admin_get(&format!("/sources/{source}")).status, 404);
}

#[test]
fn message_bodies_are_shown_only_with_phi_access() {
    let server = start();
    let token = server.token();
    let body = patient_admin("NewPatient", "phi-1");
    let accepted = server.send(&token, &body).accepted();
    let log = accepted.logs.iter().find(|(_, d)| d == LAB).map(|(l, _)| l.clone()).expect("a log for the lab");
    let path = format!("/logs/{log}");
    let shown = |t: &str| {
        let reply = server.admin_as(Some(t), "GET", &path, None);
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json
    };
    for t in [ADMIN_TOKEN, OPERATOR_PHI] {
        let log = shown(t);
        assert_eq!(log["payload"], body, "with PHI access the body is shown");
        assert_eq!(log["payload_redacted"], false);
    }
    for t in [VIEWER, OPERATOR, ADMIN2] {
        let log = shown(t);
        assert_eq!(log["payload"], Value::Null, "without PHI access: {log}");
        assert_eq!(log["payload_redacted"], true);
        // Everything else about the log stays visible.
        assert_eq!(log["id"], shown(ADMIN_TOKEN)["id"]);
        assert_eq!(log["status"], "Pending");
        assert_eq!(log["destination_id"], LAB);
    }
}

#[test]
fn a_bad_list_of_operators_stops_the_start_with_its_reason() {
    for (toml, expected) in [
        ("[[operators]]\nname = \"x\"\ntoken = \"short\"\nrole = \"viewer\"\n", "at least 16"),
        ("[[operators]]\nname = \"admin\"\ntoken = \"another-token-0123456789\"\nrole = \"viewer\"\n", "admin_token"),
        ("[[operators]]\nname = \"x\"\ntoken = \"another-token-0123456789\"\nrole = \"root\"\n", "root"),
    ] {
        let text = crate::harness::serve_refuses(&format!("admin_token = \"{ADMIN_TOKEN}\"\n{toml}"));
        assert!(text.contains(expected), "expected '{expected}' in: {text}");
    }
}
