//! `GET /api/v1/openapi.json` (SPEC §16): an OpenAPI 3.1 document of every
//! route the server registers, which the server's real answers conform to.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::{
    client::{Reply, fhir_bundle, patient_admin},
    harness::{ADMIN_TOKEN, EHR, LAB, Server},
};

/// The document, as the server serves it.
fn document(server: &Server) -> Value {
    let r = server.get("/api/v1/openapi.json");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json
}

/// (method, path) of every operation the document describes.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("the document has paths");
    paths
        .iter()
        .flat_map(|(path, item)| item.as_object().into_iter().flatten().map(|(m, _)| (m.clone(), path.clone())))
        .collect()
}

/// Checks `reply` against the schema the document gives for `method`
/// `path` and the reply's status and content type.
fn conforms(doc: &Value, method: &str, path: &str, reply: &Reply) {
    let responses = &doc["paths"][path][method]["responses"];
    let status = reply.status.to_string();
    let response = &responses[status.as_str()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which the document does not list: {}",
        reply.text
    );
    let content_type = reply.header("content-type").unwrap_or("").split(';').next().unwrap_or("").trim();
    let Some(content) = response["content"].as_object() else {
        assert!(reply.text.is_empty(), "{method} {path} {status}: a body the document does not describe");
        return;
    };
    let media = content.iter().find(|(ct, _)| ct.split(';').next() == Some(content_type));
    let (_, media) =
        media.unwrap_or_else(|| panic!("{method} {path} {status}: content type {content_type} not in {content:?}"));
    let mut schema = media["schema"].clone();
    schema["components"] = doc["components"].clone();
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{method} {path} {status}: {e}"));
    let errors: Vec<String> =
        validator.iter_errors(&reply.json).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {path} {status} does not conform: {errors:?}\n{}", reply.text);
}

#[test]
fn the_document_is_openapi_3_1_and_describes_every_registered_route() {
    let server = Server::start();
    let doc = document(&server);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", doc["openapi"]);
    let registered: BTreeSet<(String, String)> = ferrox::http::routes::table(ferrox::http::register)
        .into_iter()
        .filter(|r| !r.path.starts_with(ferrox::http::openapi::CONSOLE_PREFIX))
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(operations(&doc), registered, "the document and the server's routes differ");
    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    for name in ["source", "operator"] {
        assert_eq!(schemes[name]["scheme"], "bearer", "{name}");
    }
}

/// A request of any method with the operator's token and no body.
fn probe(server: &Server, method: &str, path: &str) -> (u16, String) {
    let url = format!("{}{path}", server.base_url());
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let sent = match method {
        "get" => agent.get(&url).header("authorization", &auth).call(),
        "delete" => agent.delete(&url).header("authorization", &auth).call(),
        "post" => agent.post(&url).header("authorization", &auth).send_empty(),
        "put" => agent.put(&url).header("authorization", &auth).send_empty(),
        other => panic!("the document has a {other} operation"),
    };
    let mut answer = sent.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let text = answer.body_mut().read_to_string().unwrap_or_default();
    (answer.status().as_u16(), text)
}

#[test]
fn every_described_operation_is_served() {
    let server = Server::start();
    let doc = document(&server);
    for (method, path) in operations(&doc) {
        let concrete = path.replace("{id}", "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f").replace("{name}", "nobody");
        let (status, text) = probe(&server, &method, &concrete);
        assert_ne!(status, 405, "{method} {path} is not served");
        assert!(!text.contains("No such endpoint"), "{method} {path} is not served: {status} {text}");
        assert!(
            doc["paths"][&path][&method]["responses"][status.to_string()].is_object(),
            "{method} {path}: {status} is not described: {text}"
        );
    }
}

#[test]
fn sends_and_their_errors_conform_to_the_document() {
    let server = Server::start();
    let doc = document(&server);
    let auth = server.authenticate(EHR.api_key, EHR.secret);
    conforms(&doc, "post", "/auth/authenticate", &auth);
    let token = server.token();
    let accepted = server.send(&token, &patient_admin("NewPatient", "mrn-1"));
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    conforms(&doc, "post", "/endpoint", &accepted);
    let refused = server.send(&token, &json!({ "Patient": {} }));
    assert_eq!(refused.status, 400, "{}", refused.text);
    conforms(&doc, "post", "/endpoint", &refused);
    let unauthorized = server.send("forged", &patient_admin("NewPatient", "mrn-2"));
    conforms(&doc, "post", "/endpoint", &unauthorized);
    let event = json!({ "eventCoding": { "system": "urn:it", "code": "admit" } });
    let fhir = server.send_fhir(&token, &fhir_bundle(event));
    assert_eq!(fhir.status, 200, "{}", fhir.text);
    conforms(&doc, "post", "/fhir/R4/$process-message", &fhir);
    let fhir_refused = server.send_fhir(&token, &json!({ "resourceType": "Patient" }));
    assert_eq!(fhir_refused.status, 400, "{}", fhir_refused.text);
    conforms(&doc, "post", "/fhir/R4/$process-message", &fhir_refused);
    for path in ["/healthz", "/readyz"] {
        conforms(&doc, "get", path, &server.get(path));
    }
}

/// A queue view without its age, which grows between two reads.
fn timeless(queue: &Value) -> Value {
    let mut queue = queue.clone();
    queue["oldest_pending_age_ms"] = Value::Null;
    queue
}

#[test]
fn operator_answers_conform_and_actions_answer_the_object_they_changed() {
    let server = Server::start();
    let doc = document(&server);
    let token = server.token();
    let sent: Vec<String> = (0..2)
        .map(|i| {
            let accepted = server.send(&token, &patient_admin("NewPatient", &format!("mrn-{i}"))).accepted();
            accepted.logs.iter().find(|(_, d)| d == LAB).map(|(l, _)| l.clone()).expect("a log for the lab")
        })
        .collect();
    let queue = format!("/destinations/{LAB}/queue");
    for (path, documented) in [
        ("/logs".to_owned(), "/api/v1/logs"),
        (format!("/logs/{}", sent[0]), "/api/v1/logs/{id}"),
        (queue.clone(), "/api/v1/destinations/{id}/queue"),
        ("/sources".to_owned(), "/api/v1/sources"),
        ("/destinations".to_owned(), "/api/v1/destinations"),
        ("/subscriptions".to_owned(), "/api/v1/subscriptions"),
        ("/alerts".to_owned(), "/api/v1/alerts"),
        ("/audit".to_owned(), "/api/v1/audit"),
        ("/operators".to_owned(), "/api/v1/operators"),
        ("/logs/0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f".to_owned(), "/api/v1/logs/{id}"),
        ("/logs?bogus=1".to_owned(), "/api/v1/logs"),
    ] {
        conforms(&doc, "get", documented, &server.admin_get(&path));
    }
    conforms(&doc, "get", "/api/v1/logs", &server.admin_as(None, "GET", "/logs", None));

    let paused = server.admin_post(&format!("/destinations/{LAB}/pause"), &json!({}));
    conforms(&doc, "post", "/api/v1/destinations/{id}/pause", &paused);
    assert_eq!(paused.json["state"], "paused", "{}", paused.text);
    assert_eq!(paused.json["head_log_id"].as_str(), Some(sent[0].as_str()), "{}", paused.text);
    assert_eq!(
        timeless(&paused.json),
        timeless(&server.admin_get(&queue).json),
        "pause answers the queue as GET shows it"
    );

    let skipped = server.admin_post(&format!("/logs/{}/skip", sent[0]), &json!({}));
    conforms(&doc, "post", "/api/v1/logs/{id}/skip", &skipped);
    assert_eq!(
        (skipped.json["id"].as_str(), skipped.json["status"].as_str()),
        (Some(sent[0].as_str()), Some("Failed"))
    );
    assert_eq!(skipped.json, server.admin_get(&format!("/logs/{}", sent[0])).json, "skip answers the log");

    let retried = server.admin_post(&format!("/logs/{}/retry", sent[0]), &json!({}));
    conforms(&doc, "post", "/api/v1/logs/{id}/retry", &retried);
    assert_eq!(retried.json["status"], "Pending", "{}", retried.text);
    assert_eq!(retried.json, server.admin_get(&format!("/logs/{}", sent[0])).json, "retry answers the log");

    let refused = server.admin_post(&format!("/logs/{}/skip", sent[1]), &json!({}));
    assert_eq!(refused.status, 409, "{}", refused.text);
    conforms(&doc, "post", "/api/v1/logs/{id}/skip", &refused);

    let resumed = server.admin_post(&format!("/destinations/{LAB}/resume"), &json!({}));
    conforms(&doc, "post", "/api/v1/destinations/{id}/resume", &resumed);
    assert_eq!(
        timeless(&resumed.json),
        timeless(&server.admin_get(&queue).json),
        "resume answers the queue as GET shows it"
    );
    assert_eq!(resumed.json["paused_reason"], "destination disabled", "{}", resumed.text);
}
