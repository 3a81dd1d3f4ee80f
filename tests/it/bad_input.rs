//! SPEC §11 and §3, row by row: every bad request gets the right status and
//! a Redox error body, and nothing is written (the journal's durable
//! position does not move).

use serde_json::{Value, json};

use crate::{
    client::{Reply, patient_admin, redox, to_destinations},
    harness::{ADMIN_TOKEN, ANALYTICS, BILLING, LAB, Options, Server},
};

/// A destination ID that no destination has.
const UNKNOWN: &str = "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f";
/// The body limit of the server these tests run against.
const MAX_BODY_BYTES: usize = 2048;

/// The bearer token a row sends.
#[derive(Debug, Clone, Copy)]
enum Token {
    Valid,
    Missing,
    Garbage,
    /// A real token with one payload character changed.
    Tampered,
    /// A real payload with a made-up signature.
    Forged,
    /// The operator's token, which is not a source's.
    Admin,
}

/// What the error text must be.
#[derive(Debug, Clone, Copy)]
pub enum Text {
    Exact(&'static str),
    Contains(&'static [&'static str]),
}

#[derive(Debug)]
struct Row {
    name: &'static str,
    token: Token,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    text: Text,
}

fn row(name: &'static str, body: impl Into<Vec<u8>>, status: u16, text: Text) -> Row {
    Row { name, token: Token::Valid, content_type: Some("application/json"), body: body.into(), status, text }
}

fn json_row(name: &'static str, body: &Value, status: u16, text: Text) -> Row {
    row(name, body.to_string(), status, text)
}

fn bearer(token: Token, valid: &str) -> Option<String> {
    let (payload, mac) = valid.rsplit_once('.').expect("a token has a MAC part");
    match token {
        Token::Valid => Some(valid.to_owned()),
        Token::Missing => None,
        Token::Garbage => Some("nonsense".to_owned()),
        Token::Tampered => {
            // The fifth character is the first of the payload: its top bits
            // are the token kind.
            let mut chars: Vec<char> = valid.chars().collect();
            chars[5] = if chars[5] == 'B' { 'C' } else { 'B' };
            Some(chars.into_iter().collect())
        }
        Token::Forged => Some(format!("{payload}.{}", "A".repeat(mac.len()))),
        Token::Admin => Some(ADMIN_TOKEN.to_owned()),
    }
}

fn meta_rows() -> Vec<Row> {
    use Text::{Contains, Exact};
    let no_event = json!({ "Meta": { "DataModel": "PatientAdmin" }, "Patient": {} });
    let no_model = json!({ "Meta": { "EventType": "NewPatient" }, "Patient": {} });
    let deep = format!("{}{}", "[".repeat(900), "]".repeat(900));
    #[rustfmt::skip]
    let rows = vec![
        row("body not JSON", "{\"Meta\": {\"DataModel\": \"PatientAdmin\",", 400, Contains(&["line", "column"])),
        row("body an array", "[1, 2]", 400, Contains(&["object"])),
        row("body a string", "\"NewPatient\"", 400, Contains(&["object"])),
        row("body empty", "", 400, Contains(&["JSON"])),
        row("body nested too deeply", deep, 400, Contains(&["line", "column"])),
        row("body not UTF-8", b"{\"Meta\": \"\xff\xfe\"}".to_vec(), 400, Contains(&["line", "column"])),
        json_row("Meta missing", &json!({ "Patient": {} }), 400, Contains(&["Meta"])),
        json_row("Meta not an object", &json!({ "Meta": 3 }), 400, Contains(&["Meta"])),
        json_row("DataModel missing", &no_model, 400, Contains(&["DataModel"])),
        json_row("EventType missing", &no_event, 400, Contains(&["EventType"])),
        json_row("DataModel unknown", &patient_admin_as("Foo", "NewPatient"), 400, Contains(&["DataModel", "Foo"])),
        json_row("EventType unknown", &patient_admin("Bogus", "m"), 400, Contains(&["EventType", "Bogus"])),
        json_row("Response event type", &patient_admin("NewPatientResponse", "m"), 400, Contains(&["Response"])),
        json_row("sync event type on /endpoint", &redox("PatientAdmin", "VisitQuery", json!({})), 400, Contains(&["POST /query"])),
        json_row("FHIR data model on /endpoint", &redox("FHIR", "admit", json!({})), 400, Contains(&["/fhir/R4/$process-message"])),
        json_row("required field missing", &redox("PatientAdmin", "NewPatient", json!({ "Visit": {} })), 400,
            Exact("Required field missing - Patient in PatientAdmin:NewPatient")),
        json_row("second required field missing", &redox("PatientAdmin", "VisitMerge", json!({ "Patient": {} })), 400,
            Exact("Required field missing - Visit in PatientAdmin:VisitMerge")),
        json_row("Meta.Test not a boolean", &with_meta("Test", json!("yes")), 400, Contains(&["Meta.Test"])),
    ];
    rows
}

fn patient_admin_as(model: &str, event: &str) -> Value {
    redox(model, event, json!({ "Patient": {} }))
}

fn with_meta(key: &str, value: Value) -> Value {
    let mut body = patient_admin("NewPatient", "m");
    body["Meta"][key] = value;
    body
}

fn routing_rows() -> Vec<Row> {
    use Text::{Contains, Exact};
    let to = |destinations: Value| to_destinations(patient_admin("NewPatient", "m"), destinations);
    let discharge = to_destinations(patient_admin("Discharge", "m"), json!([{ "ID": ANALYTICS }]));
    let order = redox("Order", "New", json!({ "Patient": {}, "Order": {} }));
    #[rustfmt::skip]
    let rows = vec![
        json_row("unknown destination ID", &to(json!([{ "ID": UNKNOWN }])), 400, Contains(&[UNKNOWN])),
        json_row("unknown destination name", &to(json!([{ "Name": "Nowhere" }])), 400, Contains(&["Nowhere"])),
        json_row("destination ID not a UUID", &to(json!([{ "ID": "not-a-uuid" }])), 400, Contains(&["not-a-uuid"])),
        json_row("destination without ID or Name", &to(json!([{}])), 400, Contains(&["Destinations"])),
        json_row("destination exists, not subscribed", &to(json!([{ "ID": BILLING }])), 400, Contains(&[BILLING])),
        json_row("destination by name, not subscribed", &to(json!([{ "Name": "Billing" }])), 400, Contains(&["Billing"])),
        json_row("one known and one unknown destination", &to(json!([{ "ID": LAB }, { "ID": UNKNOWN }])), 400, Contains(&[UNKNOWN])),
        json_row("destination subscribed to other event types", &discharge, 400, Contains(&[ANALYTICS])),
        json_row("no matching subscription", &order, 400, Exact("No Subscriptions found for message.")),
    ];
    rows
}

fn transport_rows() -> Vec<Row> {
    use Text::Contains;
    let mut large = patient_admin("NewPatient", "m");
    large["Patient"]["Notes"] = json!("x".repeat(2 * MAX_BODY_BYTES));
    let valid = patient_admin("NewPatient", "m").to_string();
    let mut rows = vec![json_row("body over max_body_bytes", &large, 413, Contains(&["2048"]))];
    for (name, content_type) in [("Content-Type text/plain", Some("text/plain")), ("Content-Type missing", None)] {
        rows.push(Row { content_type, ..row(name, valid.clone(), 415, Contains(&["Content-Type"])) });
    }
    let form = Some("application/x-www-form-urlencoded");
    rows.push(Row { content_type: form, ..row("Content-Type form", valid.clone(), 415, Contains(&["Content-Type"])) });
    let tokens = [
        ("token missing", Token::Missing),
        ("token garbage", Token::Garbage),
        ("token tampered", Token::Tampered),
        ("token forged", Token::Forged),
        ("admin token as a source token", Token::Admin),
    ];
    for (name, token) in tokens {
        rows.push(Row { token, ..row(name, valid.clone(), 401, Contains(&[])) });
    }
    rows
}

/// Checks a rejection: status, error shape and text, and no write.
pub fn check(server: &Server, name: &str, reply: &Reply, status: u16, text: Text, durable_before: u64) {
    assert_eq!(reply.status, status, "{name}: expected {status}, got {}: {}", reply.status, reply.text);
    let got = reply.redox_error(status);
    match text {
        Text::Exact(expected) => assert_eq!(got, expected, "{name}"),
        Text::Contains(parts) => {
            for part in parts {
                assert!(got.contains(part), "{name}: error text {got:?} does not mention {part:?}");
            }
        }
    }
    assert_eq!(server.durable_through(), durable_before, "{name}: a rejected request was written");
}

/// Rejections that do not fit a row: a chunked body over the limit, an
/// over-long idempotency key, and the echo of what was known.
fn check_other_rejections(server: &Server, token: &str, start: u64) {
    let mut large = patient_admin("NewPatient", "chunked");
    large["Patient"]["Notes"] = json!("x".repeat(2 * MAX_BODY_BYTES));
    let reply = server.post_chunked("/endpoint", token, large.to_string().into_bytes());
    check(server, "chunked body over max_body_bytes", &reply, 413, Text::Contains(&[]), start);
    let long_key = "k".repeat(300);
    let reply = server.send_keyed(token, Some(&long_key), &patient_admin("NewPatient", "m"));
    check(server, "Idempotency-Key too long", &reply, 400, Text::Contains(&["Idempotency-Key"]), start);
    // The error names the DataModel and EventType once they are known.
    let reply = server.send(token, &redox("PatientAdmin", "NewPatient", json!({})));
    check(server, "required field (echo)", &reply, 400, Text::Contains(&["Patient"]), start);
    let meta = &reply.json["Meta"];
    let known = (&meta["DataModel"], &meta["EventType"]);
    assert_eq!(known, (&json!("PatientAdmin"), &json!("NewPatient")), "{}", reply.text);
}

#[test]
fn every_bad_send_is_rejected_and_nothing_is_written() {
    let options = Options { max_body_bytes: Some(MAX_BODY_BYTES), ..Options::default() };
    let server = Server::start_with(&options);
    let token = server.token();
    let start = server.durable_through();
    for r in meta_rows().into_iter().chain(routing_rows()).chain(transport_rows()) {
        let bearer = bearer(r.token, &token);
        let reply = server.post_raw("/endpoint", bearer.as_deref(), r.content_type, &r.body);
        check(&server, r.name, &reply, r.status, r.text, start);
        let module = &reply.json["Meta"]["Errors"][0]["Module"];
        assert_eq!(module, "Send", "{}: {}", r.name, reply.text);
    }
    check_other_rejections(&server, &token, start);
    assert!(server.all_logs("", 100).is_empty(), "a rejected request made a log");
    assert_eq!(server.metric("ferrox_messages_accepted_total"), Some(0.0));
    // The control: a valid message of the same server is accepted and written.
    let body = patient_admin("NewPatient", "control").to_string();
    let json_utf8 = Some("application/json; charset=utf-8");
    let reply = server.post_raw("/endpoint", Some(&token), json_utf8, body.as_bytes());
    assert_eq!(reply.accepted().logs.len(), 2);
    assert!(server.durable_through() > start, "an accepted message did not move the durable position");
}

#[test]
fn a_slowly_dripped_body_is_a_408_and_writes_nothing() {
    use std::io::{Read, Write};
    let options = Options { top_level: Some("body_read_timeout_ms = 1000".to_owned()), ..Options::default() };
    let server = Server::start_with(&options);
    let token = server.token();
    let start = server.durable_through();
    let addr = server.base_url().trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connecting");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).expect("a read timeout");
    let head = format!(
        "POST /endpoint HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"Meta\":"
    );
    let sent_at = std::time::Instant::now();
    stream.write_all(head.as_bytes()).expect("sending the start of the request");
    // Nothing more: the rest of the body never comes.
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let waited = sent_at.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 1000 ms") && answer.contains("\"Errors\""), "{answer}");
    assert!(waited < std::time::Duration::from_secs(10), "the answer took {waited:?}");
    assert_eq!(server.durable_through(), start, "a timed-out request was written");
}
