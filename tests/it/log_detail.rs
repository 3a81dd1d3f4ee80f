//! One log and one queue (SPEC §6): `GET /logs/{id}` with the payload that
//! was sent, `GET /destinations/{id}/queue` with its depth and head, and
//! the query parameters `GET /logs` refuses.

use serde_json::{Value, json};

use crate::{
    client::{Accepted, patient_admin},
    harness::{ANALYTICS, BILLING, LAB, Server},
};

/// An ID that no object has.
const NO_SUCH_ID: &str = "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f";

#[test]
fn bad_log_queries_are_rejected() {
    let server = Server::start();
    let cases = [
        "colour=red",
        "status=Bogus",
        "type=Sync",
        "limit=0",
        "limit=ten",
        "cursor=zzz",
        "since=yesterday",
        "until=2024-13-01T00:00:00Z",
        "destination=not-a-uuid",
        "source=42",
    ];
    for query in cases {
        let text = server.admin_get(&format!("/logs?{query}")).redox_error(400);
        let key = query.split('=').next().expect("key");
        assert!(text.contains(key), "GET /logs?{query}: {text}");
    }
}

/// Sends five messages (three NewPatient, two Discharge) with nested,
/// non-ASCII content; returns each answer with its body.
fn send_five(server: &Server) -> Vec<(Accepted, Value)> {
    let token = server.token();
    (0..5)
        .map(|i| {
            let event = if i % 2 == 0 { "NewPatient" } else { "Discharge" };
            let mut body = patient_admin(event, &format!("payload-{i}"));
            body["Patient"]["Demographics"] =
                json!({ "FirstName": "Timothée", "Notes": ["é", i, null, { "nested": true }] });
            (server.send(&token, &body).accepted(), body)
        })
        .collect()
}

#[test]
fn a_log_has_the_payload_that_was_sent() {
    let server = Server::start();
    for (accepted, body) in &send_five(&server) {
        for (log_id, destination) in &accepted.logs {
            let log = server.admin_get(&format!("/logs/{log_id}"));
            assert_eq!(log.status, 200, "{}", log.text);
            assert_eq!(log.json["payload"], *body, "the payload of log {log_id}");
            assert_eq!(log.json["destination_id"], *destination.as_str());
            assert_eq!(log.json["message_id"], json!(accepted.message_id));
        }
    }
    assert_eq!(server.admin_get(&format!("/logs/{NO_SUCH_ID}")).status, 404);
    assert_eq!(server.admin_get("/logs/not-a-uuid").status, 404);
}

#[test]
fn a_queue_shows_its_depth_and_oldest_log() {
    let server = Server::start();
    let sent = send_five(&server);
    let lab_logs: Vec<&String> =
        sent.iter().flat_map(|(a, _)| a.logs.iter().filter(|(_, d)| d == LAB).map(|(l, _)| l)).collect();
    let queue = server.admin_get(&format!("/destinations/{LAB}/queue"));
    let q = &queue.json;
    assert_eq!(queue.status, 200, "{}", queue.text);
    assert_eq!((&q["depth"], &q["head_log_id"]), (&json!(lab_logs.len()), &json!(lab_logs[0])), "{}", queue.text);
    // The test configuration disables destinations, so their queues hold.
    assert_eq!((&q["destination_id"], &q["state"]), (&json!(LAB), &json!("paused")), "{}", queue.text);
    assert!(q["oldest_pending_age_ms"].as_u64().is_some(), "{}", queue.text);
    assert_eq!(
        (&q["paused_reason"], &q["head_attempts"]),
        (&json!("destination disabled"), &json!([])),
        "{}",
        queue.text
    );
    let analytics = server.admin_get(&format!("/destinations/{ANALYTICS}/queue"));
    assert_eq!(analytics.json["depth"], json!(3), "{}", analytics.text);
    let billing = server.admin_get(&format!("/destinations/{BILLING}/queue")).json;
    assert_eq!((&billing["depth"], &billing["head_log_id"]), (&json!(0), &Value::Null), "{billing}");
    assert_eq!(server.admin_get(&format!("/destinations/{NO_SUCH_ID}/queue")).status, 404);
}
