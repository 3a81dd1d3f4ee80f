//! Data directories written by earlier releases (`tests/golden/`, each made
//! by `examples/make_golden/` with the build of its day) start on the
//! current build with everything in them: configuration, logs with their
//! attempts and payloads, statuses, pauses and halts, alerts, the audit
//! trail, operators, resent logs, and the tokens the old build issued. Old data directories are a promise.
//!
//! Cluster mode keeps its journal on a JetStream stream, so its golden
//! folders (`stream-N`) hold the stream's records (`stream.txt`) instead of
//! a data directory: they are copied into a new stream on a real NATS
//! server, and a node started on it must answer the same.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
};

use bytes::Bytes;
use ferrox::cluster::{self, ClusterLog, ClusterSettings, Expect};
use serde_json::{Value, json};

use crate::{
    client::Reply,
    harness::{Options, Server, ferrox},
    nats::NatsCluster,
};

/// The operator token of every golden configuration.
const ADMIN: &str = "golden-admin-token-0123456789";
/// Fields that depend on when they are read, not on what was stored.
const TIME_RELATIVE: [&str; 1] = ["oldest_pending_age_ms"];

fn golden_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.join("expected.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Every field of `expected` is in `actual` with the same value; `actual`
/// may have more (later releases add fields).
fn assert_contains(path: &str, expected: &Value, actual: &Value) {
    match expected {
        Value::Object(fields) => {
            let actual = actual.as_object().unwrap_or_else(|| panic!("{path}: expected an object, got {actual}"));
            for (key, value) in fields.iter().filter(|(k, _)| !TIME_RELATIVE.contains(&k.as_str())) {
                assert_contains(&format!("{path}.{key}"), value, actual.get(key).unwrap_or(&Value::Null));
            }
        }
        Value::Array(items) => {
            let actual = actual.as_array().unwrap_or_else(|| panic!("{path}: expected a list, got {actual}"));
            assert_eq!(items.len(), actual.len(), "{path}: list length");
            for (i, (e, a)) in items.iter().zip(actual).enumerate() {
                assert_contains(&format!("{path}[{i}]"), e, a);
            }
        }
        _ => assert_eq!(expected, actual, "{path}"),
    }
}

fn admin(server: &Server, path: &str) -> Value {
    let reply = server.admin_as(Some(ADMIN), "GET", path, None);
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.text);
    reply.json
}

#[test]
fn every_golden_data_directory_starts_with_everything_in_it() {
    let dirs = golden_dirs();
    assert!(!dirs.is_empty(), "no golden data directory under tests/golden");
    for dir in dirs {
        check(&dir);
    }
}

fn check(dir: &Path) {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).expect("expected"))
        .expect("expected.json is JSON");
    let config = std::fs::read_to_string(dir.join("ferrox.toml")).expect("the golden configuration");
    if dir.join("stream.txt").is_file() {
        let nats = NatsCluster::start(1);
        copy_stream(&nats.url(0), &dir.join("stream.txt"));
        let config = format!(
            "{config}\n[cluster]\nnats_urls = [{:?}]\nnode_name = \"golden\"\nreplicas = 1\nlease_ms = 2000\n",
            nats.url(0)
        );
        let server = Server::start_with(&Options { config_text: Some(config), ..Options::default() });
        return check_answers(&name, &expected, &server);
    }
    let verify = ferrox(&[OsStr::new("wal"), OsStr::new("verify"), dir.join("data").as_os_str()]);
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{name}: wal verify: {stdout}{}", String::from_utf8_lossy(&verify.stderr));

    let options = Options { config_text: Some(config), ..Options::default() };
    let server = Server::start_on_copy(&options, Some(&dir.join("data")));
    check_answers(&name, &expected, &server);
}

/// Copies the records of a golden `stream.txt` into a new journal stream
/// on the NATS server at `url`, each at the sequence it had.
fn copy_stream(url: &str, path: &Path) {
    let text = std::fs::read_to_string(path).expect("reading the golden stream");
    let records: Vec<(u64, &str, u16, Bytes)> = text
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let [sequence, key, kind, hex] = fields[..] else { panic!("a stream line of 4 fields: {line}") };
            let bytes: Vec<u8> =
                (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect();
            (sequence.parse().expect("a sequence"), key, kind.parse().expect("a kind"), Bytes::from(bytes))
        })
        .collect();
    let first = records.first().expect("a record").0;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let settings = ClusterSettings {
            nats_urls: vec![url.to_owned()],
            node_name: "golden-copy".into(),
            replicas: 1,
            lease: ClusterSettings::DEFAULT_LEASE,
        };
        let context = cluster::connect(&settings).await.expect("connecting");
        let log = ClusterLog::create_from(context, 1, first).await.expect("creating the journal stream");
        for (sequence, key, kind, payload) in records {
            let id = format!("golden-{sequence}");
            let stored = log.append(key, kind, payload, &id, Expect::Nothing).await.expect("copying a record");
            assert_eq!(stored, sequence, "the copy keeps every record's sequence");
        }
    });
}

/// The node's operator API answers what `expected` holds, and a SEND with
/// the tokens it issued is taken after the old messages.
fn check_answers(name: &str, expected: &Value, server: &Server) {
    for kind in ["sources", "destinations", "subscriptions"] {
        assert_contains(&format!("{name}: {kind}"), &expected[kind], &admin(server, &format!("/{kind}"))[kind]);
    }
    let listed = admin(server, "/logs?limit=1000");
    let expected_logs = expected["logs"].as_array().expect("expected logs");
    let ids: Vec<&Value> = listed["logs"].as_array().expect("logs").iter().map(|l| &l["id"]).collect();
    let expected_ids: Vec<&Value> = expected_logs.iter().map(|l| &l["id"]).collect();
    assert_eq!(ids, expected_ids, "{name}: the logs, newest first");
    for log in expected_logs {
        let id = log["id"].as_str().expect("a log ID");
        assert_contains(&format!("{name}: log {id}"), log, &admin(server, &format!("/logs/{id}")));
    }
    for queue in expected["queues"].as_array().expect("expected queues") {
        let id = queue["destination_id"].as_str().expect("a destination ID");
        assert_contains(&format!("{name}: queue {id}"), queue, &admin(server, &format!("/destinations/{id}/queue")));
    }
    assert_contains(&format!("{name}: alerts"), &expected["alerts"], &admin(server, "/alerts")["alerts"]);
    // Directories from before the audit trail (format 2) have none.
    if let Some(audit) = expected.get("audit") {
        assert_contains(&format!("{name}: audit"), audit, &admin(server, "/audit?limit=1000")["audit"]);
    }
    // Nor operators of the API's before format 3; theirs still sign in.
    if let Some(operators) = expected.get("operators") {
        assert_contains(&format!("{name}: operators"), operators, &admin(server, "/operators")["operators"]);
        let night = server.admin_as(
            Some("golden-night-token-0123456789"),
            "POST",
            "/destinations/de570000-0000-4000-8000-000000000001/pause",
            None,
        );
        assert_eq!(night.status, 200, "{name}: an operator made through the API: {}", night.text);
    }

    // Tokens the old build issued still work: the key that signs them came
    // through.
    let tokens = &expected["tokens"]["ehr"];
    let access = tokens["accessToken"].as_str().expect("an access token");
    let body = json!({ "Meta": { "DataModel": "PatientAdmin", "EventType": "NewPatient" },
                       "Patient": { "Identifiers": [{ "ID": "golden", "IDType": "MR" }] } });
    let sent: Reply = server.send(access, &body);
    let highest = expected_logs.iter().filter_map(|l| l["message_id"].as_u64()).max().unwrap_or(0);
    assert!(sent.accepted().message_id > highest, "{name}: a new message after the old ones: {}", sent.text);
    let refresh = tokens["refreshToken"].as_str().expect("a refresh token");
    let renewed = server.refresh("golden-ehr-key", refresh);
    assert_eq!(renewed.status, 200, "{name}: the old refresh token: {}", renewed.text);
}
