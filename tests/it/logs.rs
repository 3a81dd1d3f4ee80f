//! Log queries (SPEC §6): every filter of `GET /logs` against a model
//! built from what the 200s reported, and cursor paging.

use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    client::{patient_admin, redox},
    harness::{ANALYTICS, BILLING, CLINIC, EHR, LAB, Rng, Server, SourceFixture, seed},
};

/// What the test knows of one log from the SEND that made it.
#[derive(Debug, Clone)]
struct Expected {
    log_id: String,
    message_id: u64,
    destination: String,
    source: &'static str,
    data_model: &'static str,
    event_type: &'static str,
    status: &'static str,
    payload: Value,
}

/// One kind of message the test sends: from whom, what, and how many.
type Kind = (SourceFixture, &'static str, &'static str, usize);

fn body_of(model: &str, event: &str, n: usize) -> Value {
    let mrn = format!("mrn-{n}");
    match model {
        "PatientAdmin" => patient_admin(event, &mrn),
        "Scheduling" => redox(model, event, json!({ "Visit": { "VisitNumber": mrn } })),
        _ => redox(model, event, json!({ "Patient": { "Identifiers": [{ "ID": mrn }] }, "Orders": [] })),
    }
}

/// Creates a destination for Results and its subscription; returns its ID.
fn create_results_destination(server: &Server) -> String {
    let d = server.admin_post(
        "/destinations",
        &json!({ "name": "Doomed", "url": "http://127.0.0.1:9/doomed", "environment": "staging", "enabled": false }),
    );
    assert_eq!(d.status, 201, "{}", d.text);
    let id = d.json["id"].as_str().expect("id").to_owned();
    let s = server
        .admin_post("/subscriptions", &json!({ "source_id": EHR.id, "destination_id": id, "data_model": "Results" }));
    assert_eq!(s.status, 201, "{}", s.text);
    id
}

/// Sends the kinds in a seeded random interleaving; returns the model.
fn populate(server: &Server, rng: &mut Rng) -> Vec<Expected> {
    let mut pending: Vec<Kind> = vec![
        (EHR, "PatientAdmin", "NewPatient", 3),
        (EHR, "PatientAdmin", "Discharge", 2),
        (EHR, "Scheduling", "New", 2),
        (EHR, "Results", "New", 2),
        (CLINIC, "PatientAdmin", "NewPatient", 2),
    ];
    let tokens = [(EHR.id, server.token_of(EHR)), (CLINIC.id, server.token_of(CLINIC))];
    let mut model = Vec::new();
    let mut n = 0;
    while !pending.is_empty() {
        let i = rng.below(pending.len() as u64) as usize;
        let (source, data_model, event_type, left) = &mut pending[i];
        let token = &tokens.iter().find(|(id, _)| *id == source.id).expect("token").1;
        let payload = body_of(data_model, event_type, n);
        let accepted = server.send(token, &payload).accepted();
        for (log_id, destination) in accepted.logs {
            let (source, data_model, event_type, status) = (source.id, *data_model, *event_type, "Pending");
            let (message_id, payload) = (accepted.message_id, payload.clone());
            model.push(Expected { log_id, message_id, destination, source, data_model, event_type, status, payload });
        }
        n += 1;
        *left -= 1;
        if *left == 0 {
            pending.swap_remove(i);
        }
    }
    model
}

fn ids(logs: &[Value]) -> Vec<String> {
    logs.iter().map(|l| l["id"].as_str().expect("log id").to_owned()).collect()
}

/// The model's log IDs that `keep` selects, newest first.
fn expected_ids(model: &[Expected], keep: impl Fn(&Expected) -> bool) -> Vec<String> {
    model.iter().rev().filter(|e| keep(e)).map(|e| e.log_id.clone()).collect()
}

fn check_listing(listed: &[Value], model: &[Expected]) {
    assert_eq!(ids(listed), expected_ids(model, |_| true), "GET /logs is not every log, newest first");
    for (log, e) in listed.iter().zip(model.iter().rev()) {
        assert_eq!(log["message_id"], json!(e.message_id), "{log}");
        assert_eq!(log["destination_id"], *e.destination, "{log}");
        assert_eq!(log["source_id"], e.source, "{log}");
        assert_eq!((&log["data_model"], &log["event_type"]), (&json!(e.data_model), &json!(e.event_type)), "{log}");
        assert_eq!((&log["status"], &log["type"]), (&json!(e.status), &json!("Async")), "{log}");
        assert_eq!(log["attempts"], json!([]), "{log}");
        assert_eq!(rfc3339_ms(&log["updated_at"]), received_ms(log), "a new log's updated_at: {log}");
        assert!(log.get("payload").is_none(), "lists carry no payload: {log}");
    }
}

fn check_payloads(server: &Server, model: &[Expected]) {
    for e in model {
        let log = server.admin_get(&format!("/logs/{}", e.log_id));
        assert_eq!(log.json["payload"], e.payload, "the payload of log {}", e.log_id);
        assert_eq!(log.json["status"], e.status, "{}", log.text);
    }
}

fn rfc3339_ms(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a timestamp: {value}"));
    let t = OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).expect("ms fit i64")
}

fn received_ms(log: &Value) -> i64 {
    rfc3339_ms(&log["received_at"])
}

fn check_filter(server: &Server, query: &str, limit: usize, expected: &[String], total: usize) {
    assert!(!expected.is_empty() && expected.len() < total, "the filter {query} must select some but not all logs");
    assert_eq!(ids(&server.all_logs(query, limit)), expected, "GET /logs?{query}");
}

fn check_field_filters(server: &Server, model: &[Expected], doomed: &str) {
    let total = model.len();
    for destination in [LAB, ANALYTICS, BILLING, doomed] {
        let expected = expected_ids(model, |e| e.destination == destination);
        check_filter(server, &format!("destination={destination}"), 1000, &expected, total);
    }
    for source in [EHR.id, CLINIC.id] {
        check_filter(server, &format!("source={source}"), 1000, &expected_ids(model, |e| e.source == source), total);
    }
    for status in ["Pending", "Failed"] {
        check_filter(server, &format!("status={status}"), 1000, &expected_ids(model, |e| e.status == status), total);
    }
    assert!(server.all_logs("status=Succeeded", 1000).is_empty());
    assert_eq!(ids(&server.all_logs("type=Async", 1000)), expected_ids(model, |_| true));
    assert!(server.all_logs("type=Query", 1000).is_empty());
    for data_model in ["PatientAdmin", "Scheduling", "Results"] {
        let expected = expected_ids(model, |e| e.data_model == data_model);
        check_filter(server, &format!("data_model={data_model}"), 1000, &expected, total);
    }
    for event_type in ["NewPatient", "Discharge", "New"] {
        let expected = expected_ids(model, |e| e.event_type == event_type);
        check_filter(server, &format!("event_type={event_type}"), 2, &expected, total);
    }
    let both = expected_ids(model, |e| e.destination == LAB && e.source == CLINIC.id);
    check_filter(server, &format!("destination={LAB}&source={}", CLINIC.id), 1, &both, total);
}

fn check_time_filters(server: &Server, listed: &[Value], model: &[Expected]) {
    let times: Vec<(String, i64)> =
        listed.iter().map(|l| (l["id"].as_str().expect("id").to_owned(), received_ms(l))).collect();
    let at = |log_id: &str| times.iter().find(|(id, _)| id == log_id).expect("listed").1;
    let earliest = times.iter().map(|t| t.1).min().expect("logs");
    // The boundary: the first received_at after the earliest one.
    let (text, boundary) = listed
        .iter()
        .rev()
        .find(|l| received_ms(l) > earliest)
        .map(|l| (l["received_at"].as_str().expect("received_at").to_owned(), received_ms(l)))
        .expect("every message was received in the same millisecond");
    let total = model.len();
    let since = expected_ids(model, |e| at(&e.log_id) >= boundary);
    check_filter(server, &format!("since={text}"), 3, &since, total);
    let until = expected_ids(model, |e| at(&e.log_id) < boundary);
    check_filter(server, &format!("until={text}"), 3, &until, total);
    let newest = listed.iter().max_by_key(|l| received_ms(l)).expect("logs");
    let (last, last_text) = (received_ms(newest), newest["received_at"].as_str().expect("received_at"));
    let window = expected_ids(model, |e| (boundary..last).contains(&at(&e.log_id)));
    assert_eq!(ids(&server.all_logs(&format!("since={text}&until={last_text}"), 1000)), window);
}

#[test]
fn every_log_filter_filters_and_paging_walks_all_logs() {
    let mut rng = Rng::new(seed("every_log_filter_filters_and_paging_walks_all_logs"));
    let server = Server::start();
    let doomed = create_results_destination(&server);
    let mut model = populate(&server, &mut rng);
    // A forced delete ends the destination's queued logs as Failed.
    assert_eq!(server.admin_delete(&format!("/destinations/{doomed}?force=true")).status, 204);
    for e in model.iter_mut().filter(|e| e.destination == doomed) {
        e.status = "Failed";
    }
    assert_eq!(model.len(), 3 * 2 + 2 + 2 + 2 + 2);
    let listed = server.all_logs("", 1000);
    check_listing(&listed, &model);
    check_payloads(&server, &model);
    for limit in [1, 3, 5, 13, 14] {
        assert_eq!(ids(&server.all_logs("", limit)), ids(&listed), "paging with limit={limit}");
    }
    let no_limit = server.admin_get("/logs");
    assert_eq!(no_limit.json["logs"], json!(listed), "{}", no_limit.text);
    assert_eq!(no_limit.json["next_cursor"], Value::Null);
    check_field_filters(&server, &model, &doomed);
    check_time_filters(&server, &listed, &model);
}
