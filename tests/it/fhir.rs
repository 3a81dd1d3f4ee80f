//! FHIR R4 messaging (SPEC §3): `POST /fhir/R4/$process-message` answers
//! `OperationOutcome`s, routes by the subscriptions of data model `FHIR`,
//! and writes nothing for a bad bundle.

use serde_json::{Value, json};

use crate::{
    client::{Reply, fhir_bundle},
    harness::{CLINIC, FHIR_SINK, LAB, Server},
};

const PATH: &str = "/fhir/R4/$process-message";

/// Checks a 200: one informational issue per log; returns the log IDs and
/// the message ID.
fn accepted(reply: &Reply) -> (Vec<String>, u64) {
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("content-type"), Some("application/fhir+json"));
    assert_eq!(reply.json["resourceType"], "OperationOutcome", "{}", reply.text);
    let issues = reply.json["issue"].as_array().unwrap_or_else(|| panic!("no issues: {}", reply.text));
    let logs = issues
        .iter()
        .map(|issue| {
            assert_eq!(
                (&issue["severity"], &issue["code"]),
                (&json!("information"), &json!("informational")),
                "{issue}"
            );
            assert!(
                issue["details"]["text"].as_str().is_some_and(|t| t.contains("FhirSink")),
                "details.text names the destination: {issue}"
            );
            issue["diagnostics"].as_str().unwrap_or_else(|| panic!("no diagnostics: {issue}")).to_owned()
        })
        .collect();
    let message_id = reply.header("ferrox-message-id").and_then(|v| v.parse().ok());
    (logs, message_id.unwrap_or_else(|| panic!("no numeric ferrox-message-id header: {:?}", reply.headers)))
}

#[test]
fn a_valid_bundle_is_accepted_with_one_issue_per_log() {
    let server = Server::start();
    let token = server.token();
    let bundle = fhir_bundle(json!({ "eventUri": "http://example.org/fhir/message-events/admit" }));
    let (logs, message_id) = accepted(&server.send_fhir(&token, &bundle));
    assert_eq!(logs.len(), 1, "only the FHIR subscription matches");
    let log = server.admin_get(&format!("/logs/{}", logs[0]));
    assert_eq!(log.status, 200, "{}", log.text);
    assert_eq!((&log.json["data_model"], &log.json["event_type"]), (&json!("FHIR"), &json!("admit")), "{}", log.text);
    assert_eq!((&log.json["destination_id"], &log.json["message_id"]), (&json!(FHIR_SINK), &json!(message_id)));
    assert_eq!(log.json["payload"], bundle);
    // Plain application/json is accepted too, and eventCoding names the event.
    let coded =
        fhir_bundle(json!({ "eventCoding": { "system": "http://example.org/events", "code": "admin-notify" } }));
    let reply = server.post_raw(PATH, Some(&token), Some("application/json"), coded.to_string().as_bytes());
    let (coded_logs, coded_id) = accepted(&reply);
    assert!(coded_id > message_id);
    let log = server.admin_get(&format!("/logs/{}", coded_logs[0]));
    assert_eq!(log.json["event_type"], "admin-notify", "{}", log.text);
    // A destination named by endpoint urn:uuid.
    let endpoint = format!("urn:uuid:{FHIR_SINK}");
    let named = fhir_bundle(json!({ "eventUri": "http://x/admit", "destination": [{ "endpoint": endpoint }] }));
    assert_eq!(accepted(&server.send_fhir(&token, &named)).0.len(), 1);
    assert_eq!(server.all_logs(&format!("destination={FHIR_SINK}"), 100).len(), 3);
}

fn bad_bundles() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let bundle = |v: Value| v.to_string().into_bytes();
    let header_only = |header: Value| {
        bundle(json!({ "resourceType": "Bundle", "type": "message", "entry": [{ "resource": header }] }))
    };
    vec![
        ("not JSON", b"{\"resourceType\": ".to_vec(), "invalid"),
        ("an array", b"[]".to_vec(), "invalid"),
        ("not a Bundle", bundle(json!({ "resourceType": "Patient" })), "invalid"),
        ("no resourceType", bundle(json!({ "type": "message" })), "required"),
        ("not a message Bundle", bundle(json!({ "resourceType": "Bundle", "type": "collection" })), "invalid"),
        ("no entry", bundle(json!({ "resourceType": "Bundle", "type": "message" })), "required"),
        ("empty entry", bundle(json!({ "resourceType": "Bundle", "type": "message", "entry": [] })), "required"),
        ("first entry not a MessageHeader", header_only(json!({ "resourceType": "Patient" })), "invalid"),
        ("no event", header_only(json!({ "resourceType": "MessageHeader" })), "required"),
        ("a Response event", bundle(fhir_bundle(json!({ "eventUri": "http://x/admitResponse" }))), "invalid"),
        (
            "destination not subscribed to FHIR",
            bundle(fhir_bundle(
                json!({ "eventUri": "http://x/admit", "destination": [{ "endpoint": format!("urn:uuid:{LAB}") }] }),
            )),
            "invalid",
        ),
    ]
}

#[test]
fn bad_bundles_get_operation_outcome_errors_and_write_nothing() {
    let server = Server::start();
    let token = server.token();
    let durable = server.durable_through();
    for (name, body, code) in bad_bundles() {
        let reply = server.post_raw(PATH, Some(&token), Some("application/fhir+json"), &body);
        let (got, text) = reply.fhir_error(400);
        assert_eq!(got, code, "{name}: {text}");
        assert_eq!(server.durable_through(), durable, "{name}: a rejected bundle was written");
    }
    let valid = fhir_bundle(json!({ "eventUri": "http://x/admit" })).to_string().into_bytes();
    let clinic = server.token_of(CLINIC);
    let (code, text) = server.post_raw(PATH, Some(&clinic), Some("application/fhir+json"), &valid).fhir_error(400);
    assert_eq!((code.as_str(), text.as_str()), ("invalid", "No Subscriptions found for message."));
    let (code, _) = server.post_raw(PATH, None, Some("application/fhir+json"), &valid).fhir_error(401);
    assert_eq!(code, "security");
    let (code, _) = server.post_raw(PATH, Some(&token), Some("text/plain"), &valid).fhir_error(415);
    assert_eq!(code, "not-supported");
    // A Bundle posted to /endpoint is pointed to the FHIR path.
    let text = server.post_raw("/endpoint", Some(&token), Some("application/json"), &valid).redox_error(400);
    assert!(text.contains(PATH), "{text}");
    assert_eq!(server.durable_through(), durable, "a rejected bundle was written");
    assert!(server.all_logs("", 100).is_empty());
}
