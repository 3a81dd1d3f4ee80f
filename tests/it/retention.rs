//! Retention (SPEC §10): once every log in a journal segment is terminal and
//! past `retention_hours`, the segment is deleted; what a paused queue still
//! holds stays, and everything survives a restart from the snapshot. Runs
//! an engine in this process on a virtual clock, to move time by hours.

use std::sync::Arc;

use ferrox::{clock::ManualClock, wal_tool};
use serde_json::{Value, json};

use crate::{
    client::{Client, patient_admin, to_destinations},
    delivery::{Dest, Sent, Setup, eventually, log, logs_in_order, wait_first_seen, wait_status},
    harness::ADMIN_TOKEN,
    in_process::Engine,
    receiver::Receiver,
};

const T0_MS: i64 = 1_763_846_400_000;
const HOUR_MS: i64 = 3_600_000;

fn metric(client: &Client, name: &str) -> u64 {
    client.metric(name).unwrap_or_else(|| panic!("no metric {name}")) as u64
}

/// A NewPatient for `mrn` to `dest` only, padded to about 1.5 KB.
fn message(mrn: &str, dest: &Dest) -> Value {
    let mut body = to_destinations(patient_admin("NewPatient", mrn), json!([{ "ID": dest.id }]));
    body["Patient"]["Notes"] = json!("x".repeat(1500));
    body
}

fn operate(client: &Client, path: &str) {
    let r = client.admin_as(Some(ADMIN_TOKEN), "POST", path, None);
    assert_eq!(r.status, 200, "POST {path}: {}", r.text);
}

#[test]
fn delivered_messages_past_retention_leave_the_journal_and_the_rest_survives_a_restart() {
    let clock = Arc::new(ManualClock::new(T0_MS));
    let receiver = Receiver::start();
    let fast = Dest::new(1, "production", receiver.url("/fast"));
    let held = Dest::new(2, "production", receiver.url("/held"));
    let setup = Setup { destinations: vec![fast.clone(), held.clone()], ..Setup::default() };
    // Small segments, so a few hundred messages fill several.
    let toml = format!(
        "max_body_bytes = 4096\n{}[storage]\nsegment_bytes = 131072\nretention_hours = 1\ncompaction_interval_ms = 20\n",
        setup.toml()
    );
    let data_dir = tempfile::tempdir().expect("a data dir");
    let engine = Engine::start_in(&toml, data_dir.path(), clock.clone());
    let client = &engine.client;
    let token = client.token();
    operate(client, &format!("/destinations/{}/pause", held.id));

    let early: Vec<Sent> =
        (0..300).map(|i| Sent::of(&client.send(&token, &message(&format!("early-{i}"), &fast)))).collect();
    let waiting = Sent::of(&client.send(&token, &message("waiting", &held)));
    let late: Vec<Sent> =
        (0..20).map(|i| Sent::of(&client.send(&token, &message(&format!("late-{i}"), &fast)))).collect();
    let mut all_fast = early.iter().map(|s| s.log(&fast)).collect::<Vec<_>>();
    all_fast.extend(logs_in_order(&late, &fast));
    wait_first_seen(&receiver, &all_fast);
    wait_status(client, &late[19].log(&fast), "Succeeded");
    let segments_before = metric(client, "ferrox_wal_segments");
    assert!(segments_before >= 5, "{segments_before} segments: too few to show deletion");
    // Within retention nothing goes, however often compaction runs.
    let first_before = metric(client, "ferrox_wal_first_position");
    assert_eq!(first_before, 1);

    clock.advance_ms(HOUR_MS + 1);
    let segments_after = eventually("old segments to be deleted", || {
        let n = metric(client, "ferrox_wal_segments");
        (n <= 2).then_some(n)
    });
    let first_after = metric(client, "ferrox_wal_first_position");
    assert!(first_after > 1, "the journal still starts at {first_after}");
    // The delivered, expired messages are gone; the held one and those
    // after it stay, as does the held queue's pause.
    let gone = client.admin_get(&format!("/logs/{}", early[0].log(&fast)));
    assert_eq!(gone.status, 404, "an expired log is still served: {}", gone.text);
    assert_eq!(log(client, &waiting.log(&held))["status"], "Pending");
    assert_eq!(log(client, &late[0].log(&fast))["status"], "Succeeded");
    let listed = client.all_logs("", 1000);
    assert_eq!(listed.len(), 21, "logs listed after retention: {}", listed.len());
    drop(engine);

    // The restart replays from the snapshot: the token key, the pause and
    // the configuration were only in deleted segments.
    // The stopped engine's threads let go of the journal's lock as they end.
    let verified = eventually("the stopped engine to release the journal", || {
        let mut out = Vec::new();
        match wal_tool::verify(data_dir.path(), &mut out) {
            Err(e) if format!("{e:#}").contains("in use by another process") => None,
            result => Some(result),
        }
    });
    verified.expect("the journal verifies");
    let engine = Engine::start_in(&toml, data_dir.path(), clock.clone());
    let client = &engine.client;
    assert_eq!(metric(client, "ferrox_wal_segments"), segments_after);
    assert_eq!(client.admin_get(&format!("/logs/{}", early[299].log(&fast))).status, 404);
    assert_eq!(client.all_logs("", 1000).len(), 21);
    let q = client.admin_get(&format!("/destinations/{}/queue", held.id));
    assert_eq!(q.json["state"], "paused", "{}", q.text);
    assert_eq!(q.json["depth"], 1, "{}", q.text);
    // A token issued before the restart still works: same token key.
    let again = Sent::of(&client.send(&token, &message("after-restart", &fast)));
    operate(client, &format!("/destinations/{}/resume", held.id));
    wait_status(client, &waiting.log(&held), "Succeeded");
    wait_status(client, &again.log(&fast), "Succeeded");
    let delivered = receiver.received();
    let held_ids: Vec<&str> =
        delivered.iter().filter(|r| r.path == "/held").filter_map(|r| r.header("webhook-id")).collect();
    assert_eq!(held_ids, [waiting.log(&held)], "the held queue delivered exactly its message");
    assert!(segments_before > segments_after, "{segments_before} segments before, {segments_after} after");
}
