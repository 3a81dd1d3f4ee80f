//! Processing look-ahead (SPEC §4 processing): while a destination's head
//! is delivered, the logs after it are transformed ahead, within bounds,
//! and delivered in order. A result prepared ahead is not used once the
//! subscription's transform has changed, and a transform error ahead of the
//! head halts the queue only when that log's turn comes.
//!
//! Each test holds the head at the receiver until `/metrics` shows that the
//! logs after it were prepared: a look-ahead that did not happen fails them.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    delivery::{
        Dest, PATIENCE, Sent, Setup, alerts, eventually, log, logs_in_order, queue, send, set_transform,
        wait_first_seen, wait_status, webhook_ids,
    },
    harness::{ADMIN_TOKEN, Server},
    receiver::{Behavior, Receiver},
};

/// `limits::PROCESSING_READ_AHEAD`: logs prepared ahead of the head.
const READ_AHEAD: u64 = 32;

/// A transform that costs some milliseconds per message, then marks it.
const SLOW_TRANSFORM: &str = "(reduce range(0; 20000) as $i (0; . + 1)) as $n | .Counted = $n";

/// A value of the look-ahead's counters in `/metrics`: `started`,
/// `prepared`, `used` or `discarded`.
fn ahead(server: &Server, counter: &str) -> u64 {
    let name = format!("ferrox_processing_ahead_{counter}_total");
    let value = server.metric(&name).unwrap_or_else(|| panic!("no {name} in /metrics"));
    value as u64
}

/// Waits until at least `count` logs were prepared ahead.
fn wait_prepared_ahead(server: &Server, count: u64) {
    eventually(&format!("{count} logs to be prepared ahead"), || (ahead(server, "prepared") >= count).then_some(()));
}

/// A destination whose receiver holds the first request until released,
/// and answers the others at once. Its timeout outlasts any test.
fn held_destination(transform: &str) -> (Receiver, Dest) {
    let receiver = Receiver::start();
    receiver.script([Behavior::Held(200, "{}".to_owned())]);
    let mut dest = Dest::new(1, "production", receiver.url("/ahead"));
    dest.transform = Some(transform.to_owned());
    dest.timeout_ms = Some(10 * PATIENCE.as_millis() as u64);
    (receiver, dest)
}

fn bodies(received: &[crate::receiver::Received]) -> Vec<Value> {
    received.iter().map(|r| r.json()).collect()
}

#[test]
fn logs_are_transformed_ahead_of_their_turn_and_delivered_in_order() {
    let (receiver, dest) = held_destination(SLOW_TRANSFORM);
    receiver.set_default(Behavior::Slow(Duration::from_millis(5), 200, "{}".to_owned()));
    let server = Setup { destinations: vec![dest.clone()], ..Setup::default() }.start();
    let token = server.token();
    let count = READ_AHEAD + 8;
    let mut sent: Vec<Sent> = (0..count).map(|n| send(&server, &token, &format!("ahead-{n}"))).collect();
    sent.sort_by_key(|s| s.message_id);
    let expected = logs_in_order(&sent, &dest);

    // The head is held: the look-ahead fills its window, and stops there.
    // A look-ahead past the bound would have started the next log by the
    // time the last of the window was done, as two run at once.
    receiver.wait_for(|r| !r.is_empty(), PATIENCE);
    wait_prepared_ahead(&server, READ_AHEAD);
    assert_eq!(ahead(&server, "started"), READ_AHEAD, "more logs were prepared ahead than the bound");
    assert_eq!(ahead(&server, "prepared"), READ_AHEAD);
    for l in &expected[1..] {
        assert_eq!(log(&server, l)["status"], "Pending", "log {l} moved while the head was held");
    }
    assert_eq!(webhook_ids(&receiver.received()), expected[..1], "a log overtook the held head");

    receiver.release();
    let received = wait_first_seen(&receiver, &expected);
    for (body, s) in bodies(&received).iter().zip(&sent) {
        assert_eq!(body["Counted"], 20000, "the transform ran: {body}");
        let meta = &body["Meta"];
        assert_eq!(meta["Message"]["ID"], s.message_id, "{body}");
        assert_eq!(meta["Transmission"]["ID"], s.message_id << 16, "a first attempt's number: {body}");
    }
    for l in &expected {
        wait_status(&server, l, "Succeeded");
    }
    // Every log the held head let the window take was delivered from its
    // result; the later ones may have caught up with the look-ahead.
    let used = ahead(&server, "used");
    assert!((READ_AHEAD..count).contains(&used), "{used} deliveries used results prepared ahead");
    assert_eq!(ahead(&server, "discarded"), 0);
}

#[test]
fn a_transform_changed_while_logs_wait_applies_to_every_log_not_yet_sent() {
    let (receiver, dest) = held_destination(".Version = \"old\"");
    let server = Setup { destinations: vec![dest.clone()], ..Setup::default() }.start();
    let token = server.token();
    let sent: Vec<Sent> = (0..5).map(|n| send(&server, &token, &format!("change-{n}"))).collect();
    let expected = logs_in_order(&sent, &dest);
    receiver.wait_for(|r| !r.is_empty(), PATIENCE);
    // The logs after the held head were transformed by the old program.
    wait_prepared_ahead(&server, 4);

    set_transform(&server, &dest, ".Version = \"new\"");
    receiver.release();
    let received = wait_first_seen(&receiver, &expected);
    let versions: Vec<Value> = bodies(&received).iter().map(|b| b["Version"].clone()).collect();
    // The head was sent before the change; every later log, after it.
    assert_eq!(versions, ["old", "new", "new", "new", "new"], "a result of the old transform was used");
    for l in &expected {
        wait_status(&server, l, "Succeeded");
    }
    assert!(ahead(&server, "discarded") >= 4, "the stale results were thrown away");
}

#[test]
fn a_transform_error_ahead_of_the_head_halts_the_queue_only_in_its_turn() {
    let transform = "if .Patient.Identifiers[0].ID == \"bad\" then error(\"bad message\") else .Checked = true end";
    let (receiver, dest) = held_destination(transform);
    let server = Setup { destinations: vec![dest.clone()], ..Setup::default() }.start();
    let token = server.token();
    let sent: Vec<Sent> = ["good-0", "good-1", "bad", "good-3"].iter().map(|mrn| send(&server, &token, mrn)).collect();
    let expected = logs_in_order(&sent, &dest);
    receiver.wait_for(|r| !r.is_empty(), PATIENCE);
    wait_prepared_ahead(&server, 3);

    // The error is known, but its log is not the head: nothing halts yet.
    for l in &expected[1..] {
        assert_eq!(log(&server, l)["status"], "Pending", "log {l} changed ahead of its turn");
    }
    assert_eq!(queue(&server, &dest)["state"], "flowing");
    assert!(alerts(&server, &dest).is_empty(), "an alert ahead of the head's turn");

    receiver.release();
    wait_first_seen(&receiver, &expected[..2]);
    let halted = wait_status(&server, &expected[2], "ProcessingFailed");
    assert!(halted["reason"].as_str().is_some_and(|r| r.contains("bad message")), "{halted}");
    assert_eq!(log(&server, &expected[3])["status"], "Pending");
    let q = queue(&server, &dest);
    assert_eq!((&q["state"], &q["head_log_id"]), (&json!("halted"), &json!(expected[2])), "{q}");
    assert_eq!(webhook_ids(&receiver.received()), expected[..2], "a log passed the halted one");

    // Fixed and retried: the halted log and the one after it are processed
    // again, by the fixed program.
    set_transform(&server, &dest, ".Checked = \"fixed\"");
    let retry = server.admin_as(Some(ADMIN_TOKEN), "POST", &format!("/logs/{}/retry", expected[2]), None);
    assert_eq!(retry.status, 200, "{}", retry.text);
    let received = wait_first_seen(&receiver, &expected);
    let checked: Vec<Value> = bodies(&received).iter().map(|b| b["Checked"].clone()).collect();
    assert_eq!(checked, [json!(true), json!(true), json!("fixed"), json!("fixed")]);
    for l in &expected {
        wait_status(&server, l, "Succeeded");
    }
}

#[test]
fn a_destination_without_a_transform_prepares_nothing_ahead() {
    let receiver = Receiver::start();
    receiver.script([Behavior::Held(200, "{}".to_owned())]);
    let mut dest = Dest::new(1, "production", receiver.url("/plain"));
    dest.timeout_ms = Some(10 * PATIENCE.as_millis() as u64);
    let server = Setup { destinations: vec![dest.clone()], ..Setup::default() }.start();
    let token = server.token();
    let mut sent: Vec<Sent> = (0..10).map(|n| send(&server, &token, &format!("plain-{n}"))).collect();
    sent.sort_by_key(|s| s.message_id);
    let expected = logs_in_order(&sent, &dest);
    receiver.wait_for(|r| !r.is_empty(), PATIENCE);
    receiver.release();
    let received = wait_first_seen(&receiver, &expected);
    for (body, s) in bodies(&received).iter().zip(&sent) {
        assert_eq!(body["Meta"]["Message"]["ID"], s.message_id, "{body}");
    }
    for l in &expected {
        wait_status(&server, l, "Succeeded");
    }
    // The bodies were made at each log's turn: a look-ahead would have
    // started on the logs behind the held head, and again after it.
    assert_eq!(ahead(&server, "started"), 0, "logs were prepared ahead with no transform to run");
}
