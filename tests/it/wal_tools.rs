//! The WAL tools (SPEC §9, §16): `wal dump` prints one line per record
//! (position, event, time, IDs) as text or JSON; on a running engine's
//! data directory, `wal verify` and `wal dump` name the engine and read the
//! durable part.

use std::ffi::OsStr;

use serde_json::Value;

use crate::{
    client::{Accepted, patient_admin},
    harness::{Server, ferrox},
};

fn run(args: &[&str], data_dir: &std::path::Path) -> (String, String) {
    let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    all.push(data_dir.as_os_str());
    let output = ferrox(&all);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned());
    assert!(output.status.success(), "ferrox {args:?} failed: {stdout}{stderr}");
    (stdout, stderr)
}

fn send(server: &Server, n: usize) -> Vec<Accepted> {
    let token = server.token();
    (0..n).map(|i| server.send(&token, &patient_admin("NewPatient", &format!("tools-{i}"))).accepted()).collect()
}

/// The dump's JSON lines: every field present, positions increasing, and
/// one `MessageAccepted` per message, in order, naming its ID and logs.
fn check_json_dump(stdout: &str, acknowledged: &[Accepted]) {
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON object per line")).collect();
    let positions: Vec<u64> = lines.iter().map(|l| l["position"].as_u64().expect("position")).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "positions do not increase: {positions:?}");
    assert!(lines.iter().all(|l| l["kind"].is_string() && l["summary"].is_string() && l["bytes"].is_u64()));
    let accepted: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "MessageAccepted").collect();
    assert_eq!(accepted.len(), acknowledged.len(), "{stdout}");
    for (line, a) in accepted.iter().zip(acknowledged) {
        let summary = line["summary"].as_str().expect("summary");
        assert!(summary.starts_with(&format!("id={} ", a.message_id)), "message {} out of place: {line}", a.message_id);
        assert!(a.logs.iter().all(|(log, _)| summary.contains(log.as_str())), "logs missing: {line}");
        let time = line["time"].as_str().expect("a MessageAccepted has a time");
        assert!(time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).is_ok(), "{time}");
    }
}

#[test]
fn wal_dump_prints_each_record_with_its_event_time_and_ids() {
    let mut server = Server::start();
    let acknowledged = send(&server, 5);
    assert!(server.stop().success());
    let (text, _) = run(&["wal", "dump"], server.data_dir());
    let (json, _) = run(&["wal", "dump", "--json"], server.data_dir());
    assert_eq!(text.lines().count(), json.lines().count(), "text and JSON dumps differ:\n{text}\n{json}");
    check_json_dump(&json, &acknowledged);
    for (text_line, json_line) in text.lines().zip(json.lines()) {
        let json_line: Value = serde_json::from_str(json_line).expect("JSON");
        let fields = [&json_line["position"].to_string(), json_line["kind"].as_str().expect("kind")];
        assert!(fields.iter().all(|f| text_line.contains(*f)), "{text_line} is not {json_line}");
        assert!(text_line.contains(json_line["time"].as_str().unwrap_or(" - ")), "{text_line} lacks the time");
    }
    let (limited, _) = run(&["wal", "dump", "--json", "--limit", "2"], server.data_dir());
    assert_eq!(limited.lines().count(), 2);
}

#[test]
fn wal_tools_on_a_running_engine_name_it_and_read_the_durable_part() {
    let server = Server::start();
    let acknowledged = send(&server, 8);
    let said = format!("the engine (pid {}) is running on this data directory;", server.pid());
    let (stdout, stderr) = run(&["wal", "verify"], server.data_dir());
    assert!(stderr.contains(&said) && stderr.contains("verify reads the durable part only"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "more than one line about the running engine: {stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("ok: ")), "verify did not say ok: {stdout}");
    let (json, stderr) = run(&["wal", "dump", "--json"], server.data_dir());
    assert!(stderr.contains(&said), "{stderr}");
    check_json_dump(&json, &acknowledged);
    // The engine still runs and takes SENDs: the tools took no lock from it.
    send(&server, 1);
}
