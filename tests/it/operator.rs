//! The operator API's configuration objects (SPEC §6): create, read, list,
//! update and delete sources, destinations and subscriptions; their effect
//! on routing; and their survival across a restart.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::{
    client::{Reply, patient_admin, redox},
    harness::{ANALYTICS, CLINIC, EHR, LAB, Server},
};

fn created(reply: &Reply) -> (String, Value) {
    assert_eq!(reply.status, 201, "{}", reply.text);
    let id = reply.json["id"].as_str().unwrap_or_else(|| panic!("no id: {}", reply.text)).to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "id {id} is not a UUID");
    (id, reply.json.clone())
}

fn listed_ids(server: &Server, plural: &str) -> BTreeSet<String> {
    let reply = server.admin_get(&format!("/{plural}"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["next_cursor"], Value::Null, "{}", reply.text);
    let items = reply.json[plural].as_array().unwrap_or_else(|| panic!("no {plural} list: {}", reply.text));
    items.iter().map(|i| i["id"].as_str().expect("id").to_owned()).collect()
}

/// The destinations a SEND from `token` of `body` got logs for.
fn routed(server: &Server, token: &str, body: &Value) -> BTreeSet<String> {
    server.send(token, body).accepted().logs.into_iter().map(|(_, d)| d).collect()
}

/// Creates a source with a generated key and secret: `(id, api_key, secret)`.
fn create_source(server: &Server) -> (String, String, String) {
    let (id, source) = created(&server.admin_post("/sources", &json!({ "name": "Portal" })));
    let text = |key: &str| source[key].as_str().unwrap_or_else(|| panic!("no {key} in {source}")).to_owned();
    (id, text("api_key"), text("secret"))
}

#[test]
fn sources_are_created_and_read_without_their_secret() {
    let server = Server::start();
    let (id, api_key, secret) = create_source(&server);
    let got = server.admin_get(&format!("/sources/{id}"));
    assert_eq!(got.status, 200, "{}", got.text);
    assert!(got.json.get("secret").is_none(), "GET shows the secret: {}", got.text);
    assert_eq!((&got.json["name"], &got.json["api_key"]), (&json!("Portal"), &json!(api_key)));
    let all = BTreeSet::from([EHR.id.to_owned(), CLINIC.id.to_owned(), id.clone()]);
    assert_eq!(listed_ids(&server, "sources"), all);
    assert!(!server.admin_get("/sources").text.contains("secret"), "the list shows a secret");
    assert_eq!(server.authenticate(&api_key, &secret).status, 200, "the generated secret does not authenticate");
    // Conflicts: another source's api_key, or an existing ID.
    let same_key = json!({ "name": "Dup", "api_key": EHR.api_key });
    assert_eq!(server.admin_post("/sources", &same_key).status, 409);
    assert_eq!(server.admin_post("/sources", &json!({ "id": id, "name": "Dup" })).status, 409);
    assert_eq!(server.admin_get("/sources/not-a-uuid").status, 404);
    assert_eq!(server.admin_get("/sources/0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f").status, 404);
}

#[test]
fn sources_are_updated_and_deleted() {
    let server = Server::start();
    let (id, api_key, secret) = create_source(&server);
    let path = format!("/sources/{id}");
    let renamed = server.admin_put(&path, &json!({ "name": "Portal 2" }));
    assert_eq!((renamed.status, &renamed.json["api_key"]), (200, &json!(api_key)), "{}", renamed.text);
    assert_eq!(server.admin_get(&path).json["name"], "Portal 2");
    assert_eq!(server.authenticate(&api_key, &secret).status, 200, "a rename changed the secret");
    let new_secret = "a-new-secret-for-the-portal";
    assert_eq!(server.admin_put(&path, &json!({ "name": "Portal 2", "secret": new_secret })).status, 200);
    assert_eq!(server.authenticate(&api_key, &secret).status, 401, "the old secret still works");
    let auth = server.authenticate(&api_key, new_secret);
    let token = auth.json["accessToken"].as_str().unwrap_or_else(|| panic!("{}", auth.text)).to_owned();
    let subscription = json!({ "source_id": id, "destination_id": LAB, "data_model": "PatientAdmin" });
    let (subscription_id, _) = created(&server.admin_post("/subscriptions", &subscription));
    assert_eq!(server.admin_delete(&path).status, 204);
    // Its tokens, credentials and subscriptions go with it.
    server.send(&token, &patient_admin("NewPatient", "deleted")).redox_error(401);
    assert_eq!(server.authenticate(&api_key, new_secret).status, 401, "a deleted source authenticates");
    let subscription = server.admin_get(&format!("/subscriptions/{subscription_id}"));
    assert_eq!(subscription.status, 404, "its subscription outlived it");
    assert_eq!(server.admin_get(&path).status, 404);
    assert_eq!(server.admin_delete(&path).status, 404);
}

fn create_destination(server: &Server, name: &str) -> (String, Value) {
    created(&server.admin_post(
        "/destinations",
        &json!({ "name": name, "url": "http://127.0.0.1:9/d", "environment": "production" }),
    ))
}

#[test]
fn destinations_are_created_read_updated_and_deleted() {
    let server = Server::start();
    let (id, d) = create_destination(&server, "Pharmacy");
    let secret = d["signing_secret"].as_str().expect("signing_secret");
    assert!(secret.starts_with("whsec_") && secret.len() > "whsec_".len() + 16, "signing_secret {secret}");
    assert!(d["verification_token"].as_str().is_some_and(|t| !t.is_empty()), "{d}");
    assert_eq!(
        (&d["timeout_ms"], &d["enabled"], &d["environment"]),
        (&json!(30000), &json!(true), &json!("production"))
    );
    assert_eq!(server.admin_get(&format!("/destinations/{id}")).json, d);
    let (_, other) = create_destination(&server, "Radiology");
    assert_ne!(other["signing_secret"], d["signing_secret"]);
    assert_ne!(other["verification_token"], d["verification_token"]);
    assert_eq!(listed_ids(&server, "destinations").len(), 6);
    let change = json!({ "name": "Pharmacy", "url": "https://pharmacy.example/in", "environment": "staging", "timeout_ms": 5000 });
    let put = server.admin_put(&format!("/destinations/{id}"), &change);
    assert_eq!(put.status, 200, "{}", put.text);
    let got = server.admin_get(&format!("/destinations/{id}")).json;
    assert_eq!(
        (&got["url"], &got["environment"], &got["timeout_ms"]),
        (&json!("https://pharmacy.example/in"), &json!("staging"), &json!(5000))
    );
    assert_eq!(
        (&got["signing_secret"], &got["verification_token"]),
        (&d["signing_secret"], &d["verification_token"]),
        "PUT lost generated fields"
    );
    let bad = json!({ "name": "Pharmacy", "url": "http://x/", "environment": "staging", "signing_secret": "nope" });
    assert_eq!(server.admin_put(&format!("/destinations/{id}"), &bad).status, 400);
    assert_eq!(server.admin_delete(&format!("/destinations/{id}")).status, 204, "an empty destination is deleted");
    assert_eq!(server.admin_get(&format!("/destinations/{id}")).status, 404);
}

#[test]
fn deleting_a_destination_with_queued_logs_needs_force() {
    let server = Server::start();
    let token = server.token();
    // Disabled, so its logs wait in the queue and no delivery attempt is
    // written while the test watches the journal.
    let (id, _) = created(&server.admin_post(
        "/destinations",
        &json!({ "name": "Lab 2", "url": "http://127.0.0.1:9/d", "environment": "production", "enabled": false }),
    ));
    let subscription = json!({ "source_id": EHR.id, "destination_id": id, "data_model": "Results" });
    let (subscription_id, _) = created(&server.admin_post("/subscriptions", &subscription));
    let results = redox("Results", "New", json!({ "Patient": {}, "Orders": [] }));
    let logs: Vec<String> = (0..2).map(|_| server.send(&token, &results).accepted().logs[0].0.clone()).collect();
    let durable = server.durable_through();
    let text = server.admin_delete(&format!("/destinations/{id}")).redox_error(409);
    assert!(text.contains("force"), "{text}");
    assert_eq!(server.durable_through(), durable, "a refused delete was written");
    assert_eq!(server.admin_get(&format!("/destinations/{id}/queue")).json["depth"], 2);
    assert_eq!(server.admin_delete(&format!("/destinations/{id}?force=maybe")).status, 400);
    assert_eq!(server.admin_delete(&format!("/destinations/{id}?force=true")).status, 204);
    assert_eq!(server.admin_get(&format!("/destinations/{id}")).status, 404);
    assert_eq!(
        server.admin_get(&format!("/subscriptions/{subscription_id}")).status,
        404,
        "its subscription outlived it"
    );
    for log in logs {
        assert_eq!(
            server.admin_get(&format!("/logs/{log}")).json["status"],
            "Failed",
            "a queued log of a deleted destination"
        );
    }
    server.send(&token, &results).redox_error(400);
}

#[test]
fn subscriptions_are_created_read_updated_and_deleted() {
    let server = Server::start();
    let clinic = server.token_of(CLINIC);
    let mut body = json!({ "source_id": CLINIC.id, "destination_id": ANALYTICS, "data_model": "PatientAdmin", "event_types": ["Discharge"], "transform": "del(.Patient" });
    let text = server.admin_post("/subscriptions", &body).redox_error(400);
    assert!(text.contains("transform"), "{text}");
    body["transform"] = json!("del(.Patient.SSN)");
    let (id, s) = created(&server.admin_post("/subscriptions", &body));
    assert_eq!(
        (&s["transform"], &s["response_transform"], &s["event_types"]),
        (&body["transform"], &Value::Null, &json!(["Discharge"]))
    );
    assert_eq!(server.admin_get(&format!("/subscriptions/{id}")).json, s);
    assert!(listed_ids(&server, "subscriptions").contains(&id));
    let both = BTreeSet::from([LAB.to_owned(), ANALYTICS.to_owned()]);
    assert_eq!(routed(&server, &clinic, &patient_admin("Discharge", "s")), both);
    body["event_types"] = json!(["Arrival"]);
    assert_eq!(server.admin_put(&format!("/subscriptions/{id}"), &body).status, 200);
    assert_eq!(routed(&server, &clinic, &patient_admin("Discharge", "s")), BTreeSet::from([LAB.to_owned()]));
    assert_eq!(routed(&server, &clinic, &patient_admin("Arrival", "s")), both);
    let mut broken = body.clone();
    broken["transform"] = json!(".[");
    assert_eq!(server.admin_put(&format!("/subscriptions/{id}"), &broken).status, 400);
    assert_eq!(server.admin_get(&format!("/subscriptions/{id}")).json["transform"], body["transform"]);
    assert_eq!(server.admin_delete(&format!("/subscriptions/{id}")).status, 204);
    assert_eq!(routed(&server, &clinic, &patient_admin("Arrival", "s")), BTreeSet::from([LAB.to_owned()]));
    body["destination_id"] = json!("0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f");
    assert_eq!(server.admin_post("/subscriptions", &body).status, 400);
}

#[test]
fn operator_changes_survive_a_restart() {
    let mut server = Server::start();
    let (source_id, source) = created(&server.admin_post("/sources", &json!({ "name": "Portal" })));
    let (destination_id, _) = create_destination(&server, "Pharmacy");
    let change = json!({ "name": "Pharmacy", "url": "https://pharmacy.example/in", "environment": "development" });
    assert_eq!(server.admin_put(&format!("/destinations/{destination_id}"), &change).status, 200);
    let subscription = json!({ "source_id": source_id, "destination_id": destination_id, "data_model": "Medications" });
    created(&server.admin_post("/subscriptions", &subscription));
    let (gone, _) = create_destination(&server, "Short-lived");
    assert_eq!(server.admin_delete(&format!("/destinations/{gone}")).status, 204);
    let lists: Vec<Value> =
        ["/sources", "/destinations", "/subscriptions"].iter().map(|p| server.admin_get(p).json).collect();
    let status = server.stop();
    assert!(status.success(), "ferrox exited with {status}; stderr:\n{}", server.server_log());
    server.restart();
    for (path, before) in ["/sources", "/destinations", "/subscriptions"].iter().zip(&lists) {
        assert_eq!(server.admin_get(path).json, *before, "GET {path} changed across a restart");
    }
    assert_eq!(server.admin_get(&format!("/destinations/{gone}")).status, 404);
    let secret = source["secret"].as_str().expect("secret");
    let r = server.authenticate(source["api_key"].as_str().expect("api_key"), secret);
    let token = r.json["accessToken"].as_str().unwrap_or_else(|| panic!("the new source lost its secret: {}", r.text));
    let body = redox("Medications", "New", json!({ "Patient": {}, "Order": {} }));
    assert_eq!(routed(&server, token, &body), BTreeSet::from([destination_id]));
}
