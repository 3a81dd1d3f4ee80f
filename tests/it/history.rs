//! The history on disk (`src/history`): ended logs leave memory, and every
//! operator answer stays the same across the memory/disk boundary, a
//! restart, and a history that was deleted or damaged and is rebuilt from
//! the journal. Runs the real binary.

use std::path::Path;

use serde_json::{Value, json};

use crate::{
    client::{patient_admin, to_destinations},
    delivery::{Dest, Sent, Setup, eventually},
    harness::Server,
    receiver::{Behavior, Receiver},
};

/// Everything an operator can read about the logs: every listing (with
/// small pages, so cursors cross memory and disk), filtered listings, and
/// each log with its payload.
fn answers(server: &Server, dests: &[&Dest], sent: &[Sent]) -> Vec<Value> {
    let mut out = vec![json!(server.all_logs("", 7))];
    for d in dests {
        for status in ["Pending", "Succeeded", "Failed", "Retrying"] {
            out.push(json!(server.all_logs(&format!("destination={}&status={status}", d.id), 5)));
        }
        out.push(json!(server.all_logs(&format!("destination={}&event_type=NewPatient", d.id), 9)));
    }
    out.push(json!(server.all_logs("data_model=PatientAdmin&event_type=Arrival", 4)));
    for s in sent {
        for d in dests {
            let log = server.admin_get(&format!("/logs/{}", s.log(d)));
            assert_eq!(log.status, 200, "{}", log.text);
            out.push(log.json);
        }
    }
    out
}

fn metric(server: &Server, name: &str) -> u64 {
    server.metric(name).unwrap_or_else(|| panic!("no metric {name}")) as u64
}

fn corrupt_first_entry(history: &Path) {
    let table = history.join("table");
    let chunk = std::fs::read_dir(&table).expect("the history's table").next().expect("a table chunk");
    let path = chunk.expect("a directory entry").path();
    let mut bytes = std::fs::read(&path).expect("reading a chunk");
    // The first entry: the table's entries start 8 KiB into a chunk.
    bytes[8192 + 20] ^= 0xff;
    std::fs::write(&path, &bytes).expect("writing a chunk");
}

#[test]
fn ended_logs_leave_memory_and_every_answer_survives_restarts_and_rebuilds() {
    let receiver = Receiver::start();
    let fast = Dest::new(1, "production", receiver.url("/fast"));
    let failing = Dest::new(2, "staging", receiver.url("/failing"));
    let held = Dest::new(3, "production", receiver.url("/held"));
    receiver.set_rule(|r, _| match r.path.as_str() {
        "/failing" => Behavior::Status(500, "{}".into()),
        _ => Behavior::Status(200, "{\"ok\":true}".into()),
    });
    let setup = Setup { destinations: vec![fast.clone(), failing.clone(), held.clone()], ..Setup::default() };
    let mut server = setup.start();
    let paused = server.admin_post(&format!("/destinations/{}/pause", held.id), &json!({}));
    assert_eq!(paused.status, 200, "{}", paused.text);
    let token = server.token();
    let sent: Vec<Sent> = (0..40)
        .map(|i| {
            let event = if i % 3 == 0 { "Arrival" } else { "NewPatient" };
            let body = to_destinations(
                patient_admin(event, &format!("mrn-{i}")),
                json!([{ "ID": fast.id }, { "ID": failing.id }, { "ID": held.id }]),
            );
            Sent::of(&server.send(&token, &body))
        })
        .collect();
    // The delivered and failed logs end and leave memory; the held ones wait.
    eventually("the ended logs to leave memory", || (metric(&server, "ferrox_logs_in_memory") == 40).then_some(()));
    assert_eq!(metric(&server, "ferrox_logs_kept"), 120);
    assert_eq!(server.metric("ferrox_logs{status=\"Succeeded\"}"), Some(40.0));
    assert_eq!(server.metric("ferrox_logs{status=\"Failed\"}"), Some(40.0));
    assert_eq!(server.metric("ferrox_logs{status=\"Pending\"}"), Some(40.0));
    let dests = [&fast, &failing, &held];
    let before = answers(&server, &dests, &sent);
    let listed = before[0].as_array().expect("a list").len();
    assert_eq!(listed, 120, "every log is listed, from memory and from disk");

    server.stop();
    server.restart();
    assert_eq!(answers(&server, &dests, &sent), before, "the answers changed across a restart");

    // A retry brings an ended log back to memory; it fails and ends again.
    let retried = sent[5].log(&failing);
    let retry = server.admin_post(&format!("/logs/{retried}/retry"), &json!({}));
    assert_eq!(retry.status, 200, "{}", retry.text);
    let attempts =
        |server: &Server| server.admin_get(&format!("/logs/{retried}")).json["attempts"].as_array().map_or(0, Vec::len);
    eventually("the retried log to fail again", || (attempts(&server) == 2).then_some(()));
    eventually("the retried log to leave memory", || (metric(&server, "ferrox_logs_in_memory") == 40).then_some(()));
    let before = answers(&server, &dests, &sent);

    // The history deleted: rebuilt from the journal at start.
    server.stop();
    std::fs::remove_dir_all(server.data_dir().join("history")).expect("deleting the history");
    server.restart();
    assert_eq!(answers(&server, &dests, &sent), before, "the answers changed after the history was rebuilt");

    // A damaged entry: the start finds it and rebuilds.
    server.stop();
    corrupt_first_entry(&server.data_dir().join("history"));
    server.restart();
    let log = server.server_log();
    assert!(log.contains("rebuilding the history") && log.contains("entry checksum mismatch"), "{log}");
    assert_eq!(answers(&server, &dests, &sent), before, "the answers changed after a damaged history");
    assert_eq!(metric(&server, "ferrox_logs_in_memory"), 40);
}
