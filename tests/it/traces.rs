//! Traces (SPEC §16): with `otlp_endpoint` set, the real binary exports a
//! span per SEND, per delivery attempt and per query over OTLP/HTTP (JSON),
//! carrying the message and log IDs. The collector is the tests' receiver,
//! which keeps every export it is sent.

use std::time::Duration;

use serde_json::Value;

use crate::{
    client::patient_admin,
    delivery::{Dest, PATIENCE, Sent, Setup, wait_status},
    harness::{EHR, Options, Server, serve_refuses},
    query::{patient_query, query, query_logs},
    receiver::{Behavior, Receiver},
};

const RECORDS: &str = "0e0e0001-0000-4000-8000-000000000000";

/// One exported span: its name, attributes as text, and status code.
#[derive(Debug, Clone)]
struct Exported {
    name: String,
    attributes: Vec<(String, String)>,
    /// OTLP's `Status.code`: 0 unset, 1 ok, 2 error.
    status: u64,
    status_message: String,
}

impl Exported {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// An attribute's value as text, whatever its OTLP JSON type (64-bit
/// integers are strings in the protobuf JSON mapping, but may be numbers).
fn text_of(value: &Value) -> String {
    match value.as_object().and_then(|o| o.iter().next()) {
        Some((_, Value::String(s))) => s.clone(),
        Some((_, other)) => other.to_string(),
        None => value.to_string(),
    }
}

/// Every span in one OTLP/HTTP JSON export request, and its service name.
fn spans_of(export: &Value) -> Vec<(String, Exported)> {
    let mut spans = Vec::new();
    for resource in export["resourceSpans"].as_array().into_iter().flatten() {
        let service = resource["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .map(|a| text_of(&a["value"]))
            .unwrap_or_default();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let attributes = span["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| (a["key"].as_str().unwrap_or_default().to_owned(), text_of(&a["value"])))
                    .collect();
                let exported = Exported {
                    name: span["name"].as_str().unwrap_or_default().to_owned(),
                    attributes,
                    status: span["status"]["code"].as_u64().unwrap_or(0),
                    status_message: span["status"]["message"].as_str().unwrap_or_default().to_owned(),
                };
                spans.push((service.clone(), exported));
            }
        }
    }
    spans
}

/// Waits until the collector has a span that `wanted` accepts; returns it.
fn wait_span(collector: &Receiver, what: &str, wanted: impl Fn(&Exported) -> bool) -> Exported {
    let find = |received: &[crate::receiver::Received]| {
        received
            .iter()
            .filter(|r| r.path == "/otlp/v1/traces")
            .flat_map(|r| spans_of(&r.json()))
            .find(|(_, s)| wanted(s))
    };
    let received = collector.wait_for(|r| find(r).is_some(), PATIENCE);
    let (service, span) = find(&received).unwrap_or_else(|| panic!("no {what} span was exported"));
    assert_eq!(service, "ferrox", "the exporting service of {span:?}");
    span
}

#[test]
fn sends_deliveries_and_queries_are_traced_to_an_otlp_collector() {
    let collector = Receiver::start();
    let receiver = Receiver::start();
    receiver.set_rule(|r, _| match r.path.as_str() {
        "/bad" => Behavior::Status(503, "{}".into()),
        "/records" => Behavior::Status(200, "{\"Meta\":{\"DataModel\":\"ClinicalSummary\"},\"Found\":true}".into()),
        _ => Behavior::Status(200, "{}".into()),
    });
    let good = Dest::new(1, "staging", receiver.url("/good"));
    let bad = Dest::new(2, "staging", receiver.url("/bad"));
    let setup = Setup { destinations: vec![good.clone(), bad.clone()], ..Setup::default() };
    let q = |t: &str| serde_json::to_string(t).expect("a string encodes");
    let config = format!(
        "otlp_endpoint = {}\n{}[[destinations]]\nid = {}\nname = \"records\"\nurl = {}\nenvironment = \"production\"\n\
         [[subscriptions]]\nsource_id = {}\ndestination_id = {}\ndata_model = \"ClinicalSummary\"\n",
        q(&collector.url("/otlp")),
        setup.toml(),
        q(RECORDS),
        q(&receiver.url("/records")),
        q(EHR.id),
        q(RECORDS),
    );
    let server = Server::start_with(&Options { config_text: Some(config), ..Options::default() });
    let token = server.token();

    let sent = Sent::of(&server.send(&token, &patient_admin("NewPatient", "mrn-traced")));
    wait_status(&server, &sent.log(&good), "Succeeded");
    wait_status(&server, &sent.log(&bad), "Failed");
    let message_id = sent.message_id.to_string();
    let send = wait_span(&collector, "send", |s| s.name == "send" && s.attr("ferrox.message_id") == Some(&message_id));
    assert_eq!(send.attr("ferrox.api"), Some("redox"));
    assert_eq!(send.attr("ferrox.source_id"), Some(EHR.id));
    assert_eq!(send.attr("ferrox.data_model"), Some("PatientAdmin"));
    assert_eq!(send.attr("ferrox.event_type"), Some("NewPatient"));
    assert_eq!(send.attr("http.response.status_code"), Some("200"));
    let logs: Vec<&str> = send.attr("ferrox.log_ids").unwrap_or_default().split(',').collect();
    assert!(logs.contains(&sent.log(&good).as_str()) && logs.contains(&sent.log(&bad).as_str()), "{send:?}");
    assert_ne!(send.status, 2, "an accepted SEND is no error: {send:?}");

    let delivered = wait_span(&collector, "delivered attempt", |s| {
        s.name == "delivery_attempt" && s.attr("ferrox.log_id") == Some(&sent.log(&good))
    });
    assert_eq!(delivered.attr("ferrox.message_id"), Some(message_id.as_str()));
    assert_eq!(delivered.attr("ferrox.destination_id"), Some(good.id.as_str()));
    assert_eq!(delivered.attr("http.response.status_code"), Some("200"));
    assert_ne!(delivered.status, 2, "{delivered:?}");
    let failed = wait_span(&collector, "failed attempt", |s| {
        s.name == "delivery_attempt" && s.attr("ferrox.log_id") == Some(&sent.log(&bad))
    });
    assert_eq!(failed.attr("http.response.status_code"), Some("503"));
    assert_eq!(failed.status, 2, "a failed attempt is an error: {failed:?}");
    assert!(failed.status_message.starts_with("HTTP 503"), "the span says why: {failed:?}");

    let refused = server.post_raw("/endpoint", Some(&token), Some("application/json"), b"{\"Meta\":");
    assert_eq!(refused.status, 400, "{}", refused.text);
    let bad_send = wait_span(&collector, "refused send", |s| {
        s.name == "send" && s.attr("http.response.status_code") == Some("400")
    });
    assert_eq!(bad_send.status, 2, "{bad_send:?}");
    assert!(bad_send.attr("ferrox.message_id").is_none(), "a refused SEND has no message: {bad_send:?}");

    let (status, reply) = query(&server, &patient_query(None));
    assert_eq!(status, 200, "{reply}");
    let logs = query_logs(&server);
    let query_log = logs[0]["id"].as_str().expect("the query log's id").to_owned();
    let traced = wait_span(&collector, "query", |s| s.name == "query" && s.attr("ferrox.log_id") == Some(&query_log));
    assert_eq!(traced.attr("ferrox.destination_id"), Some(RECORDS));
    assert_eq!(traced.attr("ferrox.data_model"), Some("ClinicalSummary"));
    assert_eq!(traced.attr("ferrox.destination_status"), Some("200"));
    assert_eq!(traced.attr("http.response.status_code"), Some("200"));
    assert!(traced.attr("ferrox.message_id").is_some(), "{traced:?}");
}

#[test]
fn a_collector_that_is_down_costs_no_send() {
    // Nothing listens on the collector's port: exports fail on the
    // exporter's own thread while SENDs are accepted and delivered.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let receiver = Receiver::start();
    let good = Dest::new(1, "staging", receiver.url("/good"));
    let setup = Setup { destinations: vec![good.clone()], ..Setup::default() };
    let config = format!("otlp_endpoint = \"http://127.0.0.1:{port}\"\n{}", setup.toml());
    let server = Server::start_with(&Options { config_text: Some(config), ..Options::default() });
    let token = server.token();
    let sent: Vec<Sent> =
        (0..20).map(|i| Sent::of(&server.send(&token, &patient_admin("NewPatient", &format!("m-{i}"))))).collect();
    for s in &sent {
        wait_status(&server, &s.log(&good), "Succeeded");
    }
    assert_eq!(receiver.wait_for(|r| r.len() >= 20, Duration::from_secs(20)).len(), 20);
}

#[test]
fn an_otlp_endpoint_that_is_no_url_stops_the_start() {
    for endpoint in ["collector:4318", "ftp://collector:4318", "http://"] {
        let output = serve_refuses(&format!("otlp_endpoint = {endpoint:?}\n"));
        assert!(output.contains("otlp_endpoint"), "{endpoint}: {output}");
    }
}
