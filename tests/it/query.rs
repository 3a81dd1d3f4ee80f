//! `POST /query` (SPEC §7) against a real mock destination.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    harness::{ADMIN_TOKEN, EHR, Options, Server},
    receiver::{Behavior, Receiver},
};

const RECORDS: &str = "0e0e0001-0000-4000-8000-000000000000";
const ARCHIVE: &str = "0e0e0002-0000-4000-8000-000000000000";

/// A query destination: id, url, transform, response_transform, timeout_ms.
pub type QueryDest<'a> = (&'a str, String, Option<&'a str>, Option<&'a str>, u64);

/// The EHR, and destinations subscribed to ClinicalSummary queries.
fn start(destinations: &[QueryDest<'_>]) -> Server {
    start_with(destinations, "")
}

/// As `start`, with `more` (TOML tables, such as `[delivery]`) at the end
/// of the configuration.
pub fn start_with(destinations: &[QueryDest<'_>], more: &str) -> Server {
    let q = |t: &str| serde_json::to_string(t).expect("string");
    let mut toml = format!(
        "admin_token = {}\n[[sources]]\nid = {}\nname = {}\napi_key = {}\nsecret = {}\n",
        q(ADMIN_TOKEN),
        q(EHR.id),
        q(EHR.name),
        q(EHR.api_key),
        q(EHR.secret)
    );
    for (n, (id, url, transform, response_transform, timeout_ms)) in destinations.iter().enumerate() {
        toml += &format!(
            "[[destinations]]\nid = {}\nname = \"q{n}\"\nurl = {}\nenvironment = \"production\"\ntimeout_ms = {timeout_ms}\n",
            q(id),
            q(url)
        );
        toml += &format!(
            "[[subscriptions]]\nsource_id = {}\ndestination_id = {}\ndata_model = \"ClinicalSummary\"\n",
            q(EHR.id),
            q(id)
        );
        if let Some(t) = transform {
            toml += &format!("transform = {}\n", q(t));
        }
        if let Some(t) = response_transform {
            toml += &format!("response_transform = {}\n", q(t));
        }
    }
    toml += more;
    Server::start_with(&Options { config_text: Some(toml), ..Options::default() })
}

pub fn patient_query(destination: Option<&str>) -> Value {
    let mut body = json!({
        "Meta": { "DataModel": "ClinicalSummary", "EventType": "PatientQuery" },
        "Patient": { "Identifiers": [{ "ID": "0000012345", "IDType": "MR" }] }
    });
    if let Some(id) = destination {
        body["Meta"]["Destinations"] = json!([{ "ID": id }]);
    }
    body
}

pub fn query(server: &Server, body: &Value) -> (u16, Value) {
    let token = server.token();
    let reply = server.post_raw("/query", Some(&token), Some("application/json"), body.to_string().as_bytes());
    (reply.status, reply.json)
}

pub fn query_logs(server: &Server) -> Vec<Value> {
    server.admin_get("/logs?type=Query").json["logs"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_query_round_trips_and_is_logged_before_the_answer() {
    let receiver = Receiver::start();
    let reply = r#"{"Meta":{"DataModel":"ClinicalSummary","EventType":"PatientQueryResponse"},"Header":{"Document":{"ID":"d1"}}}"#;
    receiver.set_default(Behavior::Status(200, reply.to_owned()));
    let server = start(&[(RECORDS, receiver.url("/records"), None, None, 5000)]);
    let (status, answer) = query(&server, &patient_query(None));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, serde_json::from_str::<Value>(reply).unwrap(), "the reply is returned unchanged");
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].json()["Patient"]["Identifiers"][0]["ID"], "0000012345");
    assert!(received[0].header("webhook-signature").is_some_and(|s| s.starts_with("v1,")));
    let logs = query_logs(&server);
    assert_eq!(logs.len(), 1, "{logs:?}");
    let log = &logs[0];
    assert_eq!(
        (&log["type"], &log["status"], &log["event_type"]),
        (&json!("Query"), &json!("Succeeded"), &json!("PatientQuery"))
    );
    assert_eq!(log["attempts"][0]["http_status"], 200);
    assert!(log["attempts"][0]["response"].as_str().is_some_and(|r| r.contains("d1")), "{log}");
    let detail = server.admin_get(&format!("/logs/{}", log["id"].as_str().unwrap())).json;
    assert_eq!(detail["payload"], patient_query(None), "the request is stored");
    assert_eq!(
        server.admin_get(&format!("/destinations/{RECORDS}/queue")).json["depth"],
        0,
        "queries are never queued"
    );
}

#[test]
fn the_query_log_keeps_a_whole_reply_of_several_kilobytes() {
    let receiver = Receiver::start();
    let reply = json!({ "Notes": "n".repeat(20_000) });
    receiver.set_default(Behavior::Status(200, reply.to_string()));
    let server = start(&[(RECORDS, receiver.url("/records"), None, None, 5000)]);
    assert_eq!(query(&server, &patient_query(None)), (200, reply.clone()));
    let kept = &query_logs(&server)[0]["attempts"][0]["response"];
    assert_eq!(serde_json::from_str::<Value>(kept.as_str().unwrap()).unwrap(), reply);
}

#[test]
fn transforms_apply_both_ways() {
    let receiver = Receiver::start();
    receiver.set_default(Behavior::Status(200, r#"{"Found":3}"#.to_owned()));
    let out = Some(".Meta.Test = true");
    let back = Some("{Wrapped: .}");
    let server = start(&[(RECORDS, receiver.url("/records"), out, back, 5000)]);
    let (status, answer) = query(&server, &patient_query(None));
    assert_eq!((status, answer), (200, json!({ "Wrapped": { "Found": 3 } })));
    assert_eq!(receiver.received()[0].json()["Meta"]["Test"], true, "the request went through the transform");
}

#[test]
fn destination_failures_are_502_or_504_and_logged_failed() {
    let receiver = Receiver::start();
    receiver.script([
        Behavior::Status(500, r#"{"Meta":{"Errors":[{"Text":"patient index offline"}]}}"#.to_owned()),
        Behavior::Status(200, "not json".to_owned()),
        Behavior::Hang,
    ]);
    let server = start(&[(RECORDS, receiver.url("/records"), None, None, 400)]);
    let text = |v: &Value| v["Meta"]["Errors"][0]["Text"].as_str().unwrap_or_default().to_owned();
    let (status, body) = query(&server, &patient_query(None));
    assert_eq!(status, 502, "{body}");
    assert!(text(&body).contains("HTTP 500") && text(&body).contains("patient index offline"), "{body}");
    let (status, body) = query(&server, &patient_query(None));
    assert_eq!(status, 502, "{body}");
    assert!(text(&body).contains("not JSON"), "{body}");
    let (status, body) = query(&server, &patient_query(None));
    assert_eq!(status, 504, "{body}");
    assert!(text(&body).contains("400 ms"), "{body}");
    let logs = query_logs(&server);
    assert_eq!(logs.len(), 3);
    assert!(logs.iter().all(|l| l["status"] == "Failed"), "{logs:?}");
    assert_eq!(receiver.received().len(), 3, "never retried");
}

#[test]
fn a_query_needs_exactly_one_destination_and_the_right_path() {
    let (a, b) = (Receiver::start(), Receiver::start());
    let server = start(&[(RECORDS, a.url("/a"), None, None, 5000), (ARCHIVE, b.url("/b"), None, None, 5000)]);
    let (status, body) = query(&server, &patient_query(None));
    assert_eq!(status, 400, "{body}");
    assert!(body["Meta"]["Errors"][0]["Text"].as_str().unwrap().contains("exactly one"), "{body}");
    let (status, _) = query(&server, &patient_query(Some(ARCHIVE)));
    assert_eq!(status, 200);
    assert_eq!((a.received().len(), b.received().len()), (0, 1));
    let token = server.token();
    let on_endpoint = server.send(&token, &patient_query(Some(ARCHIVE)));
    assert_eq!(on_endpoint.status, 400);
    assert!(on_endpoint.text.contains("POST /query"), "{}", on_endpoint.text);
    let admission = json!({ "Meta": { "DataModel": "PatientAdmin", "EventType": "NewPatient" }, "Patient": {} });
    let (status, body) = query(&server, &admission);
    assert_eq!(status, 400);
    assert!(body.to_string().contains("POST /endpoint"), "{body}");
    assert_eq!(query_logs(&server).len(), 1, "rejected queries leave no log");
}

#[test]
fn a_query_does_not_wait_behind_a_paused_queue() {
    let receiver = Receiver::start();
    let server = start(&[(RECORDS, receiver.url("/records"), None, None, 5000)]);
    assert_eq!(server.admin_post(&format!("/destinations/{RECORDS}/pause"), &json!({})).status, 200);
    let started = std::time::Instant::now();
    let (status, body) = query(&server, &patient_query(None));
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.admin_get(&format!("/destinations/{RECORDS}/queue")).json["state"], "paused");
}
