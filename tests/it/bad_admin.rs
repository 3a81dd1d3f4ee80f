//! SPEC §11, the operator API's rows: bodies with unknown fields, bad URLs
//! and other invalid values are a 400 in the Redox shape, and nothing is
//! written.

use serde_json::{Value, json};

use crate::{
    bad_input::{Text, check},
    client::merged,
    harness::{ADMIN_TOKEN, EHR, LAB, Server},
};

type AdminRow = (&'static str, &'static str, Value, &'static [&'static str]);

fn admin_rows() -> Vec<AdminRow> {
    let destination = json!({ "name": "New", "url": "http://127.0.0.1:9/new", "environment": "staging" });
    let subscription = json!({ "source_id": EHR.id, "destination_id": LAB, "data_model": "Results" });
    let d = |extra: Value| merged(&destination, extra);
    let s = |extra: Value| merged(&subscription, extra);
    #[rustfmt::skip]
    let rows: Vec<AdminRow> = vec![
        ("/destinations", "destination with an unknown field", d(json!({ "colour": "red" })), &["colour"]),
        ("/destinations", "destination with a bad URL", d(json!({ "url": "not a url" })), &["url"]),
        ("/destinations", "destination with an ftp URL", d(json!({ "url": "ftp://example.org/x" })), &["url"]),
        ("/destinations", "destination with a bad environment", d(json!({ "environment": "prod" })), &["environment"]),
        ("/destinations", "destination without a url", json!({ "name": "x", "environment": "staging" }), &["url"]),
        ("/sources", "source with an unknown field", json!({ "name": "x", "password": "p" }), &["password"]),
        ("/subscriptions", "subscription with an unknown field", s(json!({ "filter": "." })), &["filter"]),
        ("/subscriptions", "subscription with a bad transform", s(json!({ "transform": "del(.Patient" })), &["transform"]),
        ("/subscriptions", "subscription of an unknown data model", s(json!({ "data_model": "Foo" })), &["Foo"]),
        ("/subscriptions", "subscription of an unknown event type", s(json!({ "event_types": ["Nope"] })), &["Nope"]),
    ];
    rows
}

#[test]
fn every_bad_admin_body_is_rejected_and_nothing_is_written() {
    let server = Server::start();
    let start = server.durable_through();
    for (path, name, body, parts) in admin_rows() {
        let reply = server.admin_post(path, &body);
        check(&server, name, &reply, 400, Text::Contains(parts), start);
    }
    // The configuration file's objects are the file's: no change, even a
    // valid one, through the API.
    let lab = json!({ "name": "Lab", "url": "http://127.0.0.1:9/Lab2", "environment": "production" });
    let reply = server.admin_as(Some(ADMIN_TOKEN), "PUT", &format!("/destinations/{LAB}"), Some(&lab));
    check(
        &server,
        "PUT a destination of the file",
        &reply,
        409,
        Text::Contains(&["destination 'Lab'", "ferrox.toml"]),
        start,
    );
    let reply = server.admin_as(Some(ADMIN_TOKEN), "DELETE", &format!("/destinations/{LAB}?force=true"), None);
    check(&server, "DELETE a destination of the file", &reply, 409, Text::Contains(&["configuration file"]), start);
    let scratch = json!({ "name": "Scratch", "url": "http://127.0.0.1:9/s", "environment": "staging" });
    let made = server.admin_post("/destinations", &scratch);
    assert_eq!(made.status, 201, "{}", made.text);
    let id = made.json["id"].as_str().expect("an ID").to_owned();
    let start = server.durable_through();
    let reply = server.admin_as(
        Some(ADMIN_TOKEN),
        "PUT",
        &format!("/destinations/{id}"),
        Some(&json!({ "name": "Scratch", "url": "nope", "environment": "production" })),
    );
    check(&server, "PUT destination with a bad URL", &reply, 400, Text::Contains(&["url"]), start);
    for url in ["http://user:pass@127.0.0.1:9/s", "https://token@lab.example/in"] {
        let body = json!({ "name": "Scratch", "url": url, "environment": "staging" });
        let reply = server.admin_as(Some(ADMIN_TOKEN), "PUT", &format!("/destinations/{id}"), Some(&body));
        check(
            &server,
            "PUT destination with credentials in its URL",
            &reply,
            400,
            Text::Contains(&["credentials"]),
            start,
        );
        let reply =
            server.admin_post("/destinations", &json!({ "name": "Creds", "url": url, "environment": "staging" }));
        check(
            &server,
            "POST destination with credentials in its URL",
            &reply,
            400,
            Text::Contains(&["credentials"]),
            start,
        );
    }
    let reply = server.post_raw("/api/v1/sources", Some(ADMIN_TOKEN), Some("text/plain"), b"{\"name\": \"x\"}");
    check(&server, "admin body not JSON content", &reply, 415, Text::Contains(&[]), start);
    assert_eq!(server.admin_get("/destinations").json["destinations"].as_array().map(Vec::len), Some(5));
    assert_eq!(server.admin_get(&format!("/destinations/{LAB}")).json["url"], "http://127.0.0.1:9/Lab");
}
