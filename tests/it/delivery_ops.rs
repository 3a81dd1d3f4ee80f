//! Delivery under an operator's hand (SPEC §4 processing, §6): transforms
//! that rewrite, filter or fail; pause and resume; skip and manual retry;
//! alerts once per episode, posted to a webhook; and a crash in the middle
//! of deliveries with a paused destination.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    client::{Reply, patient_admin},
    delivery::{
        Dest, PATIENCE, Sent, Setup, alerts, eventually, kinds, log, logs_in_order, queue, send, set_transform,
        wait_first_seen, wait_status, webhook_ids,
    },
    harness::{ADMIN_TOKEN, Server},
    receiver::{Behavior, Receiver},
};

/// An operator action without a body (`pause`, `resume`, `retry`, `skip`);
/// checks the 200.
fn operate(server: &Server, path: &str) -> Reply {
    let r = server.admin_as(Some(ADMIN_TOKEN), "POST", path, None);
    assert_eq!(r.status, 200, "POST {path}: {}", r.text);
    r
}

fn failing(code: u16) -> Behavior {
    Behavior::Status(code, format!("{{\"Meta\":{{\"Errors\":[{{\"Text\":\"answered {code}\"}}]}}}}"))
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_else(|| panic!("not a string: {value}"))
}

#[test]
fn transforms_rewrite_and_filter_messages() {
    let receiver = Receiver::start();
    let mut dest = Dest::new(1, "production", receiver.url("/rewritten"));
    dest.transform = Some(
        "if .Meta.EventType == \"Discharge\" then empty \
         elif .Meta.EventType == \"Cancel\" then null \
         else {Meta: .Meta, MRN: .Patient.Identifiers[0].ID, Rewritten: true} end"
            .to_owned(),
    );
    let server = Setup { destinations: vec![dest.clone()], ..Setup::default() }.start();
    let token = server.token();
    let events = [("NewPatient", "t1"), ("Discharge", "t2"), ("Cancel", "t3"), ("Arrival", "t4")];
    let sent: Vec<Sent> =
        events.iter().map(|(e, mrn)| Sent::of(&server.send(&token, &patient_admin(e, mrn)))).collect();
    let delivered = [sent[0].log(&dest), sent[3].log(&dest)];
    let received = wait_first_seen(&receiver, &delivered);
    assert_eq!(webhook_ids(&received), delivered, "filtered messages were sent");
    for (request, (s, mrn)) in received.iter().zip([(&sent[0], "t1"), (&sent[3], "t4")]) {
        let body = request.json();
        let meta = body["Meta"].as_object().unwrap_or_else(|| panic!("no Meta: {body}"));
        assert_eq!(meta["Message"]["ID"], s.message_id, "{body}");
        assert!(meta["Transmission"]["ID"].is_u64(), "{body}");
        assert_eq!(meta["DataModel"], "PatientAdmin", "{body}");
        assert_eq!((&body["MRN"], &body["Rewritten"]), (&json!(mrn), &json!(true)), "{body}");
        assert!(body.get("Patient").is_none(), "the transform dropped Patient: {body}");
    }
    for filtered in [&sent[1], &sent[2]] {
        let l = wait_status(&server, &filtered.log(&dest), "Filtered");
        assert_eq!(l["attempts"], json!([]), "a filtered log was attempted: {l}");
    }
    for s in [&sent[0], &sent[3]] {
        wait_status(&server, &s.log(&dest), "Succeeded");
    }
}

#[test]
fn a_failing_transform_halts_the_queue_until_fixed_and_retried() {
    let witness_receiver = Receiver::start();
    let witness = Dest::new(9, "production", witness_receiver.url("/witness"));
    // A processing failure halts the queue whatever the environment.
    let receivers = [Receiver::start(), Receiver::start()];
    let halting: Vec<Dest> = ["production", "development"]
        .iter()
        .zip(&receivers)
        .zip(1..)
        .map(|((environment, r), n)| {
            let mut d = Dest::new(n, environment, r.url("/halting"));
            d.transform = Some("error(\"boom\")".to_owned());
            d
        })
        .collect();
    let destinations = [halting.clone(), vec![witness.clone()]].concat();
    let server = Setup { destinations, ..Setup::default() }.start();
    let token = server.token();
    let sent: Vec<Sent> = (0..3).map(|n| send(&server, &token, &format!("halt-{n}"))).collect();
    // The witness got all three: the halted queues had time to deliver.
    wait_first_seen(&witness_receiver, &logs_in_order(&sent, &witness));
    for (dest, receiver) in halting.iter().zip(&receivers) {
        let expected = logs_in_order(&sent, dest);
        let head = wait_status(&server, &expected[0], "ProcessingFailed");
        assert!(text(&head["reason"]).contains("boom"), "the transform's error is kept: {head}");
        for later in &expected[1..] {
            assert_eq!(log(&server, later)["status"], "Pending", "{}: a log passed a halted head", dest.name);
        }
        assert!(receiver.received().is_empty(), "{}: a halted queue delivered", dest.name);
        let q = queue(&server, dest);
        assert_eq!(
            (&q["state"], &q["head_log_id"], &q["depth"]),
            (&json!("halted"), &json!(expected[0]), &json!(3)),
            "{}: {q}",
            dest.name
        );
        // A log's status shows before the alert recorded with it is durable.
        let raised = eventually("the ProcessingFailed alert", || Some(alerts(&server, dest)).filter(|a| !a.is_empty()));
        assert_eq!(kinds(&raised), ["ProcessingFailed"], "{}: {raised:?}", dest.name);
        assert_eq!(raised[0]["log_id"], expected[0].as_str());

        // A retry before the fix fails again, in the same episode: no new alert.
        let before = text(&head["updated_at"]).to_owned();
        operate(&server, &format!("/logs/{}/retry", expected[0]));
        eventually("the retried log to fail again", || {
            let l = log(&server, &expected[0]);
            (l["status"] == "ProcessingFailed" && l["updated_at"] != before.as_str()).then_some(())
        });

        set_transform(&server, dest, ".Fixed = true");
        // The change was synced, and with it everything recorded before.
        assert_eq!(alerts(&server, dest).len(), 1, "{}: a second alert in one episode", dest.name);
        operate(&server, &format!("/logs/{}/retry", expected[0]));
        let received = wait_first_seen(receiver, &expected);
        assert_eq!(webhook_ids(&received), expected, "{}", dest.name);
        assert!(received.iter().all(|r| r.json()["Fixed"] == true), "{}: the fixed transform ran", dest.name);
        for l in &expected {
            wait_status(&server, l, "Succeeded");
        }
        let raised = eventually("the recovery alert", || {
            let raised = alerts(&server, dest);
            (raised.len() == 2).then_some(raised)
        });
        assert_eq!(kinds(&raised), ["QueueRecovered", "ProcessingFailed"], "{}: {raised:?}", dest.name);
        assert_eq!(raised[0]["log_id"], expected[0].as_str());
        assert_eq!(queue(&server, dest)["state"], "flowing");
    }
}

#[test]
fn a_paused_destination_holds_its_messages_until_resumed() {
    let held_receiver = Receiver::start();
    let witness_receiver = Receiver::start();
    let held = Dest::new(1, "production", held_receiver.url("/held"));
    let witness = Dest::new(2, "production", witness_receiver.url("/witness"));
    let server = Setup { destinations: vec![held.clone(), witness.clone()], ..Setup::default() }.start();
    operate(&server, &format!("/destinations/{}/pause", held.id));
    let token = server.token();
    let sent: Vec<Sent> = (0..5).map(|n| send(&server, &token, &format!("pause-{n}"))).collect();
    wait_first_seen(&witness_receiver, &logs_in_order(&sent, &witness));
    assert!(held_receiver.received().is_empty(), "a paused destination got a delivery");
    let q = queue(&server, &held);
    assert_eq!((&q["state"], &q["depth"]), (&json!("paused"), &json!(5)), "{q}");
    assert!(text(&q["paused_reason"]).contains("operator"), "{q}");
    let expected = logs_in_order(&sent, &held);
    assert!(expected.iter().all(|l| log(&server, l)["status"] == "Pending"));
    operate(&server, &format!("/destinations/{}/resume", held.id));
    let received = wait_first_seen(&held_receiver, &expected);
    assert_eq!(webhook_ids(&received), expected);
    for l in &expected {
        wait_status(&server, l, "Succeeded");
    }
    let q = queue(&server, &held);
    assert_eq!((&q["state"], &q["depth"]), (&json!("flowing"), &json!(0)), "{q}");
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn ms(value: &Value) -> i64 {
    let t = time::OffsetDateTime::parse(text(value), &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{value} is not RFC 3339: {e}"));
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).expect("fits")
}

#[test]
fn skip_lets_the_rest_flow_and_a_manual_retry_goes_next() {
    let receiver = Receiver::start();
    // The default schedule: a failure, an immediate retry, then 10 s to skip in.
    receiver.script([failing(500), failing(500)]);
    let dest = Dest::new(1, "production", receiver.url("/skip"));
    let server = Setup { destinations: vec![dest.clone()], ..Setup::default() }.start();
    let token = server.token();
    let first: Vec<Sent> = (0..3).map(|n| send(&server, &token, &format!("skip-{n}"))).collect();
    let first = logs_in_order(&first, &dest);
    let q = eventually("the head to wait for its third attempt", || {
        let q = queue(&server, &dest);
        (q["head_attempts"].as_array().map(Vec::len) == Some(2) && q["next_retry_at"].is_string()).then_some(q)
    });
    assert_eq!((&q["state"], &q["head_log_id"], &q["depth"]), (&json!("paused"), &json!(first[0]), &json!(3)), "{q}");
    assert!(text(&q["paused_reason"]).contains("500"), "{q}");
    let last = &q["head_attempts"][1];
    let last_end = ms(&last["started_at"]) + last["duration_ms"].as_i64().expect("duration_ms");
    assert_eq!(ms(&q["next_retry_at"]), last_end + 10_000, "the third attempt is due 10 s after the second: {q}");
    assert_eq!(log(&server, &first[0])["status"], "Retrying");
    assert_eq!(webhook_ids(&receiver.received()), [first[0].clone(), first[0].clone()]);

    operate(&server, &format!("/logs/{}/skip", first[0]));
    let skipped = wait_status(&server, &first[0], "Failed");
    assert!(text(&skipped["reason"]).contains("skipped"), "the reason is recorded: {skipped}");
    wait_first_seen(&receiver, &first);
    for l in &first[1..] {
        wait_status(&server, l, "Succeeded");
    }

    // Retried, the skipped log goes ahead of everything not yet delivered.
    operate(&server, &format!("/destinations/{}/pause", dest.id));
    let later: Vec<Sent> = (3..5).map(|n| send(&server, &token, &format!("skip-{n}"))).collect();
    let later = logs_in_order(&later, &dest);
    operate(&server, &format!("/logs/{}/retry", first[0]));
    let q = queue(&server, &dest);
    assert_eq!((&q["head_log_id"], &q["depth"]), (&json!(first[0]), &json!(3)), "{q}");
    operate(&server, &format!("/destinations/{}/resume", dest.id));
    let all: Vec<String> = [&first[..1], &first[..], &first[..1], &later[..]].concat();
    let received = receiver.wait_for(|r| r.len() >= all.len(), PATIENCE);
    assert_eq!(webhook_ids(&received), all);
    for l in first.iter().chain(&later) {
        wait_status(&server, l, "Succeeded");
    }
    let raised = alerts(&server, &dest);
    assert_eq!(kinds(&raised), ["QueueRecovered", "QueuePaused"], "{raised:?}");
}

#[test]
fn alerts_come_once_per_episode_and_are_posted_to_the_webhook() {
    let receiver = Receiver::start();
    let hook = Receiver::start();
    // The webhook refuses its first post: alerts are posted at least once.
    hook.script([failing(503)]);
    let dest = Dest::new(1, "production", receiver.url("/episodes"));
    let setup = Setup {
        destinations: vec![dest.clone()],
        retry_schedule_ms: Some(vec![0, 10, 20]),
        alert_webhook_url: Some(hook.url("/alerts")),
        ..Setup::default()
    };
    let server = setup.start();
    let token = server.token();
    let mut heads = Vec::new();
    for (episode, failures) in [4, 3].into_iter().enumerate() {
        receiver.script((0..failures).map(|_| failing(500)));
        let head = send(&server, &token, &format!("episode-{episode}")).log(&dest);
        let done = wait_status(&server, &head, "Succeeded");
        assert_eq!(done["attempts"].as_array().map(Vec::len), Some(failures + 1), "{done}");
        heads.push(head);
    }
    let raised = eventually("four alerts", || {
        let raised = alerts(&server, &dest);
        (raised.len() >= 4).then_some(raised)
    });
    assert_eq!(kinds(&raised), ["QueueRecovered", "QueuePaused", "QueueRecovered", "QueuePaused"], "{raised:?}");
    let alert_logs: Vec<&str> = raised.iter().map(|a| text(&a["log_id"])).collect();
    assert_eq!(alert_logs, [&heads[1], &heads[1], &heads[0], &heads[0]]);
    let ids: Vec<&str> = raised.iter().rev().map(|a| text(&a["id"])).collect();
    let posted = hook.wait_for(
        |r| {
            let seen: Vec<String> = r.iter().map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned()).collect();
            ids.iter().all(|id| seen.iter().any(|s| s == id))
        },
        PATIENCE,
    );
    let posted: Vec<Value> = posted.iter().map(|r| r.json()).collect();
    assert_eq!(posted[0]["id"], posted[1]["id"], "the refused alert is posted again");
    let mut first_seen: Vec<&Value> = Vec::new();
    for p in &posted {
        if !first_seen.iter().any(|f| f["id"] == p["id"]) {
            first_seen.push(p);
        }
    }
    let mut expected: Vec<&Value> = raised.iter().collect();
    expected.reverse();
    assert_eq!(first_seen.len(), 4, "posted: {posted:?}");
    for (p, a) in first_seen.iter().zip(&expected) {
        for field in ["id", "kind", "destination_id", "log_id", "at", "text"] {
            assert_eq!(p[field], a[field], "posted {p} vs listed {a}");
        }
    }
    assert_eq!(alerts(&server, &dest).len(), 4, "an alert per attempt");
}

#[test]
fn a_crash_mid_delivery_loses_nothing_and_keeps_a_pause() {
    let flowing_receiver = Receiver::start();
    // Slow answers, then one that never comes: that delivery is in flight
    // when the server dies. After the restart, prompt answers.
    flowing_receiver.set_rule(|_, n| match n {
        0..3 => Behavior::Slow(Duration::from_millis(50), 200, "{}".to_owned()),
        3 => Behavior::Hang,
        _ => Behavior::Status(200, "{}".to_owned()),
    });
    let held_receiver = Receiver::start();
    let flowing = Dest::new(1, "production", flowing_receiver.url("/flowing"));
    let held = Dest::new(2, "production", held_receiver.url("/held"));
    let mut server = Setup { destinations: vec![flowing.clone(), held.clone()], ..Setup::default() }.start();
    operate(&server, &format!("/destinations/{}/pause", held.id));
    let token = server.token();
    let sent: Vec<Sent> = (0..12).map(|n| send(&server, &token, &format!("crash-{n}"))).collect();
    let before = flowing_receiver.wait_for(|r| r.len() == 4, PATIENCE);
    server.kill9();
    let in_flight = webhook_ids(&before)[3].clone();
    server.restart();

    let expected = logs_in_order(&sent, &flowing);
    let received = wait_first_seen(&flowing_receiver, &expected);
    let after: Vec<String> = webhook_ids(&received).split_off(4);
    assert!(after.contains(&in_flight), "the log in flight at the crash ({in_flight}) was not sent again");
    for l in &expected {
        wait_status(&server, l, "Succeeded");
    }
    // The pause survived the crash: nothing went to the paused destination.
    assert!(held_receiver.received().is_empty(), "the paused destination got a delivery");
    let q = queue(&server, &held);
    assert_eq!((&q["state"], &q["depth"]), (&json!("paused"), &json!(12)), "{q}");
    operate(&server, &format!("/destinations/{}/resume", held.id));
    let expected = logs_in_order(&sent, &held);
    let received = wait_first_seen(&held_receiver, &expected);
    assert_eq!(webhook_ids(&received), expected);
}

#[test]
fn a_halt_resolved_by_filtering_ends_its_episode() {
    let receiver = Receiver::start();
    let mut dest = Dest::new(1, "production", receiver.url("/episodes"));
    dest.transform = Some("error(\"boom\")".to_owned());
    let server = Setup { destinations: vec![dest.clone()], ..Setup::default() }.start();
    let token = server.token();
    let halted = Sent::of(&server.send(&token, &patient_admin("Discharge", "e1"))).log(&dest);
    wait_status(&server, &halted, "ProcessingFailed");
    let raised = eventually("the ProcessingFailed alert", || Some(alerts(&server, &dest)).filter(|a| !a.is_empty()));
    assert_eq!(kinds(&raised), ["ProcessingFailed"]);
    // The fix filters the halted message out: the queue flows again.
    set_transform(&server, &dest, "select(.Meta.EventType != \"Discharge\")");
    operate(&server, &format!("/logs/{halted}/retry"));
    wait_status(&server, &halted, "Filtered");
    assert_eq!(queue(&server, &dest)["state"], "flowing");
    // A new failure is a new episode: the operator must hear of it.
    receiver.set_default(failing(500));
    let failing_log = send(&server, &token, "e2").log(&dest);
    eventually("the new head to be retrying", || {
        let l = log(&server, &failing_log);
        (l["status"] == "Retrying").then_some(())
    });
    // A pause goes through the same actor and waits for a sync: what the
    // failure recorded (its alert included) is durable, and listed, after it.
    operate(&server, &format!("/destinations/{}/pause", dest.id));
    let raised = alerts(&server, &dest);
    assert!(
        raised.iter().any(|a| a["kind"] == "QueuePaused" && a["log_id"] == failing_log.as_str()),
        "no QueuePaused alert for the new failure episode of log {failing_log}; alerts: {:?}",
        kinds(&raised)
    );
    assert_eq!(kinds(&raised), ["QueuePaused", "QueueRecovered", "ProcessingFailed"], "{raised:?}");
}
