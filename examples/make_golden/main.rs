//! Writes a golden data directory: a small engine state with every kind of
//! journal record, made by the `ferrox` build given, and the answers its
//! operator API gave at the end. `tests/it/golden.rs` starts the current
//! build on a copy of each checked-in directory and checks that everything
//! comes through. Run it once per release whose journal format changed:
//!
//! ```sh
//! cargo build --release
//! cargo run --example make_golden -- target/release/ferrox tests/golden/format-N
//! ```
//!
//! The directory holds `ferrox.toml` (the configuration the test starts
//! with), `data/` (the data directory), `expected.json` and, from format 4,
//! `tls/` (a client certificate of a destination, a test's own, named by
//! paths relative to the repository's root: run this from there). Phase one runs
//! with a retention of zero so that a compaction writes a snapshot and
//! deletes segments; phase two makes every status, pause, halt, alert,
//! operator action and configuration change the engine knows.
//!
//! With `--cluster <nats url>` the same scenario runs on a cluster node
//! alone on that NATS server, and the folder holds the journal stream's
//! records (`stream.txt`) instead of a data directory (see
//! `tests/golden/README.md`).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::{Value, json};

mod engine;
mod stream;

use engine::{Engine, start_receiver, wait_for};

const ADMIN_TOKEN: &str = "golden-admin-token-0123456789";
const EHR: &str = "5e1f0000-0000-4000-8000-000000000001";
const CLINIC: &str = "5e1f0000-0000-4000-8000-000000000002";
const LAB: &str = "de570000-0000-4000-8000-000000000001";
const ANALYTICS: &str = "de570000-0000-4000-8000-000000000002";
const BILLING: &str = "de570000-0000-4000-8000-000000000003";
const PHARMACY: &str = "de570000-0000-4000-8000-000000000004";
const ARCHIVE: &str = "de570000-0000-4000-8000-000000000005";
const FHIR_SINK: &str = "de570000-0000-4000-8000-000000000006";
const SEARCH: &str = "de570000-0000-4000-8000-000000000007";
const DESTINATIONS: [&str; 7] = [LAB, ANALYTICS, BILLING, PHARMACY, ARCHIVE, FHIR_SINK, SEARCH];
const WAIT: Duration = Duration::from_secs(60);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (bin, out, nats) = match args.as_slice() {
        [_, bin, out] => (bin, out, None),
        [_, bin, out, flag, url] if flag == "--cluster" => (bin, out, Some(url.as_str())),
        _ => {
            eprintln!("usage: make_golden <ferrox binary> <out dir> [--cluster <nats url>]");
            std::process::exit(2);
        }
    };
    let (bin, out) = (PathBuf::from(bin), PathBuf::from(out));
    assert!(!out.join("data").exists(), "{} already holds a data directory", out.display());
    std::fs::create_dir_all(&out).expect("creating the out dir");
    let port = start_receiver();
    let data = out.join("data");
    let client_cert = write_client_cert(&out.join("tls"));
    // In cluster mode the node joins the NATS server given, alone; the
    // configuration kept leaves `[cluster]` out, for the test to add its own.
    let joined = |text: String| match nats {
        Some(url) => text + &cluster_section(url),
        None => text,
    };

    let phase_one = out.join("phase-one.toml");
    std::fs::write(&phase_one, joined(config(port, 0, 100, false, &client_cert)))
        .expect("writing the phase-one config");
    let engine = Engine::start(&bin, &phase_one, &data);
    compacted(&engine);
    engine.stop();
    std::fs::remove_file(&phase_one).expect("removing the phase-one config");

    let config_text = config(port, 876_000, 60_000, true, &client_cert);
    let config_path = out.join("ferrox.toml");
    std::fs::write(&config_path, &config_text).expect("writing the config");
    let running = out.join("phase-two.toml");
    std::fs::write(&running, joined(config_text)).expect("writing the phase-two config");
    let engine = Engine::start(&bin, &running, &data);
    let tokens = scenario(&engine, &client_cert);
    let mut expected = capture(&engine);
    expected["tokens"] = tokens;
    expected["written_by"] = json!(version(&bin));
    engine.stop();
    std::fs::remove_file(&running).expect("removing the phase-two config");
    match nats {
        // A cluster node's data directory holds only its history: the
        // journal is the stream.
        Some(url) => {
            stream::dump(url, &out.join("stream.txt"));
            std::fs::remove_dir_all(&data).expect("removing the data directory");
        }
        // The history is derived data, rebuilt from the journal at start:
        // the golden directory holds the journal only.
        None => std::fs::remove_dir_all(data.join("history")).expect("removing the history"),
    }
    let text = serde_json::to_string_pretty(&expected).expect("encoding expected.json");
    std::fs::write(out.join("expected.json"), text + "\n").expect("writing expected.json");
    eprintln!("wrote {}", out.display());
}

/// A node alone on one NATS server.
fn cluster_section(url: &str) -> String {
    format!("\n[cluster]\nnats_urls = [{url:?}]\nnode_name = \"golden\"\nreplicas = 1\nlease_ms = 2000\n")
}

fn version(bin: &Path) -> String {
    let out = Command::new(bin).arg("--version").output().expect("running ferrox --version");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The configuration: `retention_hours` and `compaction_interval_ms` differ
/// between the phases, and phase two adds the alert webhook and the Search
/// destination, so its start applies configuration and opens a channel.
/// Segments are small so that a few messages roll them.
fn config(
    port: u16,
    retention_hours: u64,
    compaction_interval_ms: u64,
    phase_two: bool,
    (cert, key): &(String, String),
) -> String {
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let text = format!(
        r#"admin_token = "{ADMIN_TOKEN}"
max_body_bytes = 65536
alert_webhook_url = "{alerts}"

[auth]
token_lifetime_s = 3153600000

[delivery]
retry_schedule_ms = [0, 3600000]
timeout_ms = 5000

[storage]
segment_bytes = 139264
retention_hours = {retention_hours}
compaction_interval_ms = {compaction_interval_ms}

[[sources]]
id = "{EHR}"
name = "EHR"
api_key = "golden-ehr-key"
secret = "golden-ehr-secret-0123456789"

[[sources]]
id = "{CLINIC}"
name = "Clinic"
api_key = "golden-clinic-key"
secret = "golden-clinic-secret-0123456789"

[[destinations]]
id = "{LAB}"
name = "Lab"
url = "{lab}"
environment = "production"
verification_token = "golden-lab-token"
signing_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

[[destinations]]
id = "{ANALYTICS}"
name = "Analytics"
url = "{analytics}"
environment = "staging"

[[destinations]]
id = "{BILLING}"
name = "Billing"
url = "{billing}"
environment = "production"
timeout_ms = 2000

[[destinations]]
id = "{PHARMACY}"
name = "Pharmacy"
url = "{pharmacy}"
environment = "production"

[[destinations]]
id = "{ARCHIVE}"
name = "Archive"
url = "{archive}"
environment = "development"
enabled = false
alert_emails = ["archive-team@hospital.test"]
alert_depth = 1
alert_age_ms = 86400000
client_cert_file = "{cert}"
client_key_file = "{key}"

[[destinations]]
id = "{FHIR_SINK}"
name = "FhirSink"
url = "{fhir}"
environment = "production"
fifo_key = ".entry[1].resource.identifier[0].value"
max_in_flight = 4

[[destinations]]
id = "{SEARCH}"
name = "Search"
url = "{search}"
environment = "production"

[[subscriptions]]
id = "5ab50000-0000-4000-8000-000000000001"
source_id = "{EHR}"
destination_id = "{LAB}"
data_model = "PatientAdmin"
transform = 'if .Meta.EventType == "Arrival" then empty else . end'

[[subscriptions]]
id = "5ab50000-0000-4000-8000-000000000002"
source_id = "{EHR}"
destination_id = "{ANALYTICS}"
data_model = "PatientAdmin"
event_types = ["NewPatient", "Arrival"]

[[subscriptions]]
id = "5ab50000-0000-4000-8000-000000000003"
source_id = "{EHR}"
destination_id = "{BILLING}"
data_model = "PatientAdmin"
event_types = ["NewPatient"]

[[subscriptions]]
id = "5ab50000-0000-4000-8000-000000000004"
source_id = "{EHR}"
destination_id = "{PHARMACY}"
data_model = "PatientAdmin"
event_types = ["NewPatient"]
transform = 'error("pharmacy refuses \(.Patient.Identifiers[0].ID)")'

[[subscriptions]]
id = "5ab50000-0000-4000-8000-000000000005"
source_id = "{EHR}"
destination_id = "{ARCHIVE}"
data_model = "PatientAdmin"

[[subscriptions]]
id = "5ab50000-0000-4000-8000-000000000006"
source_id = "{EHR}"
destination_id = "{FHIR_SINK}"
data_model = "FHIR"

[[subscriptions]]
id = "5ab50000-0000-4000-8000-000000000007"
source_id = "{EHR}"
destination_id = "{SEARCH}"
data_model = "PatientSearch"
event_types = ["Query"]
response_transform = '.Patients |= map(.Identifiers)'

[[subscriptions]]
id = "5ab50000-0000-4000-8000-000000000008"
source_id = "{CLINIC}"
destination_id = "{LAB}"
data_model = "PatientAdmin"
"#,
        lab = url("/ok/lab"),
        analytics = url("/fail/analytics"),
        billing = url("/fail/billing"),
        pharmacy = url("/ok/pharmacy"),
        archive = url("/ok/archive"),
        fhir = url("/ok/fhir"),
        search = url("/query"),
        alerts = url("/ok/alerts"),
    );
    if phase_two {
        return text;
    }
    strip_phase_two(&text)
}

/// A client certificate and its key, made for the golden directory and
/// written to `dir`; returns their paths as the configuration names them.
fn write_client_cert(dir: &Path) -> (String, String) {
    std::fs::create_dir_all(dir).expect("creating the tls dir");
    let key = rcgen::KeyPair::generate().expect("a client key");
    let mut params = rcgen::CertificateParams::new(Vec::new()).expect("client certificate parameters");
    params.distinguished_name.push(rcgen::DnType::CommonName, "ferrox golden client");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key).expect("the client certificate");
    let (cert_file, key_file) = (dir.join("client.crt"), dir.join("client.key"));
    std::fs::write(&cert_file, cert.pem()).expect("writing the client certificate");
    std::fs::write(&key_file, key.serialize_pem()).expect("writing the client key");
    let text = |p: PathBuf| p.to_str().expect("a UTF-8 path").to_owned();
    (text(cert_file), text(key_file))
}

/// Phase one's configuration: phase two's without the alert webhook and
/// the Search destination with its subscription.
fn strip_phase_two(text: &str) -> String {
    let mut out = String::new();
    for block in text.split("\n\n") {
        if block.contains(SEARCH) {
            continue;
        }
        let block: Vec<&str> = block.lines().filter(|l| !l.starts_with("alert_webhook_url")).collect();
        out.push_str(&block.join("\n"));
        out.push_str("\n\n");
    }
    out
}

fn admission(event: &str, mrn: &str) -> Value {
    json!({
        "Meta": { "DataModel": "PatientAdmin", "EventType": event },
        "Patient": {
            "Identifiers": [{ "ID": mrn, "IDType": "MR" }],
            "Demographics": { "FirstName": "Timothy", "LastName": "Bixby", "SSN": "101-01-0001" },
        },
    })
}

/// The ID of the log of message answer `sent` to `destination`.
fn log_to(sent: &Value, destination: &str) -> String {
    let logs = sent["Meta"]["Logs"].as_array().expect("Meta.Logs");
    let log = logs.iter().find(|l| l["DestinationID"] == destination).expect("a log to the destination");
    log["ID"].as_str().expect("a log ID").to_owned()
}

/// Phase one: delivered messages past a retention of zero, until a
/// compaction has written a snapshot and deleted segments.
fn compacted(engine: &Engine) {
    let token = engine.tokens("golden-ehr-key", "golden-ehr-secret-0123456789")["accessToken"]
        .as_str()
        .expect("an access token")
        .to_owned();
    let mut body = admission("NewPatient", "0000000001");
    body["Meta"]["Destinations"] = json!([{ "ID": LAB }]);
    body["Patient"]["Notes"] = json!("n".repeat(4000));
    for _ in 0..80 {
        engine.send(&token, None, &body);
    }
    wait_for("segments to be released", || engine.metric("ferrox_wal_first_position") > 1.0);
}

/// Phase two; returns the tokens issued to the EHR.
fn scenario(engine: &Engine, (cert, key): &(String, String)) -> Value {
    let tokens = engine.tokens("golden-ehr-key", "golden-ehr-secret-0123456789");
    let token = tokens["accessToken"].as_str().expect("an access token").to_owned();
    let status = |log: &str| engine.log(log)["status"].as_str().unwrap_or_default().to_owned();
    let attempts = |log: &str| engine.log(log)["attempts"].as_array().map_or(0, Vec::len);

    // A new patient: delivered to the lab, failed in staging, retrying in
    // production, halted by its transform, waiting at a disabled archive.
    let first = engine.send(&token, Some("golden-admit-1"), &admission("NewPatient", "0000000001"));
    let (lab, analytics, billing, pharmacy) =
        (log_to(&first, LAB), log_to(&first, ANALYTICS), log_to(&first, BILLING), log_to(&first, PHARMACY));
    wait_for("the first deliveries", || {
        status(&lab) == "Succeeded"
            && status(&analytics) == "Failed"
            && status(&pharmacy) == "ProcessingFailed"
            && status(&billing) == "Retrying"
            && attempts(&billing) == 2
    });
    engine.admin("POST", &format!("/destinations/{BILLING}/pause"), None);

    // An arrival, filtered for the lab; the repeated admission changes nothing.
    let arrival = engine.send(&token, None, &admission("Arrival", "0000000001"));
    let again = engine.send(&token, Some("golden-admit-1"), &admission("NewPatient", "0000000001"));
    assert_eq!(again["Meta"]["Message"], first["Meta"]["Message"], "an idempotent repeat");
    let second = engine.send(&token, None, &admission("NewPatient", "0000000002"));
    wait_for("the arrival and the second admission", || {
        status(&log_to(&arrival, LAB)) == "Filtered"
            && status(&log_to(&arrival, ANALYTICS)) == "Failed"
            && status(&log_to(&second, LAB)) == "Succeeded"
            && status(&log_to(&second, ANALYTICS)) == "Failed"
    });

    // The pharmacy's halted head is skipped; the next message halts it again.
    engine.admin("POST", &format!("/logs/{pharmacy}/skip"), None);
    wait_for("the pharmacy to halt again", || status(&log_to(&second, PHARMACY)) == "ProcessingFailed");
    // A manual retry of a failed staging log fails again.
    engine.admin("POST", &format!("/logs/{analytics}/retry"), None);
    wait_for("the manual retry", || attempts(&analytics) == 2 && status(&analytics) == "Failed");

    let clinic = engine.tokens("golden-clinic-key", "golden-clinic-secret-0123456789");
    let clinic_sent =
        engine.send(clinic["accessToken"].as_str().expect("a token"), None, &admission("NewPatient", "7"));
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "message",
        "entry": [
            { "resource": { "resourceType": "MessageHeader", "eventCoding": { "code": "admit-notification" },
                            "source": { "endpoint": "urn:golden" } } },
            { "resource": { "resourceType": "Patient", "id": "p1" } },
        ],
    });
    let fhir = engine.agent.post(format!("{}/fhir/R4/$process-message", engine.base));
    let fhir = fhir.header("Authorization", format!("Bearer {token}")).header("Content-Type", "application/fhir+json");
    let mut fhir = fhir.send(bundle.to_string().as_bytes()).expect("a FHIR SEND");
    let fhir_log = fhir.body_mut().read_json::<Value>().expect("an OperationOutcome")["issue"][0]["diagnostics"]
        .as_str()
        .expect("the FHIR log")
        .to_owned();
    let query = engine.agent.post(format!("{}/query", engine.base)).header("Authorization", format!("Bearer {token}"));
    let mut query =
        query.send_json(json!({ "Meta": { "DataModel": "PatientSearch", "EventType": "Query" } })).expect("a query");
    assert_eq!(query.status().as_u16(), 200, "{}", query.body_mut().read_to_string().unwrap_or_default());
    wait_for("the clinic's admission and the FHIR message", || {
        status(&log_to(&clinic_sent, LAB)) == "Succeeded" && status(&fhir_log) == "Succeeded"
    });

    // Operator actions and configuration changes through the API.
    engine.admin("POST", &format!("/destinations/{LAB}/pause"), None);
    engine.admin("POST", &format!("/destinations/{LAB}/resume"), None);
    let portal = engine.admin("POST", "/sources", Some(&json!({ "name": "Portal", "api_key": "golden-portal-key" })));
    let temp = json!({ "name": "Temp", "url": "http://127.0.0.1:9/temp", "environment": "staging" });
    let temp = engine.admin("POST", "/destinations", Some(&temp));
    engine.admin("DELETE", &format!("/destinations/{}", temp["id"].as_str().expect("an ID")), None);
    let registry = json!({ "name": "Registry", "url": "http://127.0.0.1:9/registry", "environment": "staging",
                           "enabled": false });
    let registry = engine.admin("POST", "/destinations", Some(&registry));
    let registry_id = registry["id"].as_str().expect("an ID").to_owned();
    let changed = json!({ "name": "Registry", "url": "http://127.0.0.1:9/registry/v2", "environment": "staging",
                          "enabled": false, "timeout_ms": 1234 });
    engine.admin("PUT", &format!("/destinations/{registry_id}"), Some(&changed));
    let subscription = json!({ "source_id": portal["id"], "destination_id": registry_id, "data_model": "Results",
                               "event_types": ["New"] });
    let subscription = engine.admin("POST", "/subscriptions", Some(&subscription));
    let gone = json!({ "source_id": portal["id"], "destination_id": LAB, "data_model": "Order" });
    let gone = engine.admin("POST", "/subscriptions", Some(&gone));
    engine.admin("DELETE", &format!("/subscriptions/{}", gone["id"].as_str().expect("an ID")), None);
    assert!(subscription["id"].is_string());

    // Format 3: alert settings, operators, resend and replay.
    let portal_id = portal["id"].as_str().expect("an ID");
    let alerting =
        json!({ "name": "Portal", "api_key": "golden-portal-key", "alert_emails": ["portal@hospital.test"] });
    engine.admin("PUT", &format!("/sources/{portal_id}"), Some(&alerting));
    let registry_alerts = json!({ "name": "Registry", "url": "http://127.0.0.1:9/registry/v2", "environment": "staging",
                                  "enabled": false, "timeout_ms": 1234, "alert_emails": ["registry@hospital.test"],
                                  "alert_depth": 500, "alert_age_ms": 600000 });
    engine.admin("PUT", &format!("/destinations/{registry_id}"), Some(&registry_alerts));
    let night = json!({ "name": "night-shift", "role": "viewer", "token": "golden-night-token-0123456789" });
    engine.admin("POST", "/operators", Some(&night));
    let night = json!({ "role": "operator", "phi_access": true });
    engine.admin("PUT", "/operators/night-shift", Some(&night));
    engine.admin("POST", "/operators", Some(&json!({ "name": "temp", "role": "viewer" })));
    engine.admin("DELETE", "/operators/temp", None);
    let resent = engine.admin("POST", &format!("/logs/{lab}/resend"), None);
    let resent = resent["id"].as_str().expect("the resent log").to_owned();
    let since = engine.log(&lab)["received_at"].as_str().expect("a time").to_owned();
    let replayed = engine.admin(
        "POST",
        &format!("/destinations/{LAB}/replay"),
        Some(&json!({ "since": since, "status": ["Succeeded"] })),
    );
    assert!(replayed["resent"].as_u64().is_some_and(|n| n >= 2), "{replayed}");
    wait_for("the resent logs", || status(&resent) == "Succeeded");

    // Format 4: a client certificate set through the API.
    let registry_cert = json!({ "name": "Registry", "url": "https://127.0.0.1:9/registry/v2", "environment": "staging",
                                "enabled": false, "timeout_ms": 1234, "alert_emails": ["registry@hospital.test"],
                                "alert_depth": 500, "alert_age_ms": 600000,
                                "client_cert_file": cert, "client_key_file": key });
    engine.admin("PUT", &format!("/destinations/{registry_id}"), Some(&registry_cert));

    // Format 5: ordered lanes set through the API.
    let registry_lanes = json!({ "name": "Registry", "url": "https://127.0.0.1:9/registry/v2", "environment": "staging",
                                 "enabled": false, "timeout_ms": 1234, "alert_emails": ["registry@hospital.test"],
                                 "alert_depth": 500, "alert_age_ms": 600000,
                                 "client_cert_file": cert, "client_key_file": key,
                                 "fifo_key": ".Patient.Identifiers[0].ID", "max_in_flight": 8 });
    engine.admin("PUT", &format!("/destinations/{registry_id}"), Some(&registry_lanes));
    wait_for("the archive's backlog", || {
        let alerts = engine.admin("GET", "/alerts", None)["alerts"].clone();
        alerts.as_array().expect("alerts").iter().any(|a| a["kind"] == "QueueBacklog")
    });

    wait_for("every queue to settle", || {
        [LAB, ANALYTICS, FHIR_SINK].iter().all(|d| engine.queue(d)["depth"] == 0)
            && engine.admin("GET", &format!("/logs?destination={LAB}&status=Pending"), None)["logs"] == json!([])
            && engine.queue(PHARMACY)["state"] == "halted"
            && engine.queue(BILLING)["state"] == "paused"
    });
    // Builds that show how each alert was sent: until the webhook has all.
    wait_for("every alert to be sent", || {
        let alerts = engine.admin("GET", "/alerts", None)["alerts"].clone();
        alerts.as_array().expect("alerts").iter().all(|a| a.get("sent").is_none_or(|s| s["webhook"] == true))
    });
    json!({ "ehr": tokens })
}

/// What the operator API shows, for the test to compare.
fn capture(engine: &Engine) -> Value {
    let logs = engine.admin("GET", "/logs?limit=1000", None);
    assert!(logs["next_cursor"].is_null(), "more than one page of logs");
    let details: Vec<Value> =
        logs["logs"].as_array().expect("logs").iter().map(|l| engine.log(l["id"].as_str().expect("an ID"))).collect();
    let queues: Vec<Value> = DESTINATIONS.iter().map(|d| engine.queue(d)).collect();
    json!({
        "sources": engine.admin("GET", "/sources", None)["sources"],
        "destinations": engine.admin("GET", "/destinations", None)["destinations"],
        "subscriptions": engine.admin("GET", "/subscriptions", None)["subscriptions"],
        "logs": details,
        "queues": queues,
        "alerts": engine.admin("GET", "/alerts", None)["alerts"],
        "audit": engine.admin("GET", "/audit?limit=1000", None)["audit"],
        "operators": engine.admin("GET", "/operators", None)["operators"],
    })
}
