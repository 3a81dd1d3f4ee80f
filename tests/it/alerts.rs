//! Alerts are durable (SPEC §14): journaled before the webhook sees them,
//! posted at least once across a crash, refused ones do not block later
//! ones, and a webhook that hangs holds up no delivery. `GET /alerts`
//! shows per channel whether each was sent.

use serde_json::Value;

use crate::{
    delivery::{Dest, PATIENCE, Setup, alerts, eventually, kinds, logs_in_order, send, wait_first_seen, wait_status},
    receiver::{Behavior, Receiver},
};

fn refusing(code: u16) -> Behavior {
    Behavior::Status(code, "{}".to_owned())
}

/// The alert posts `hook` received, by alert ID, in order.
fn posted_ids(hook: &Receiver) -> Vec<String> {
    hook.received().iter().map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned()).collect()
}

#[test]
fn an_alert_raised_before_a_crash_is_posted_after_the_restart() {
    let receiver = Receiver::start();
    receiver.set_rule(|_, _| refusing(500));
    // The webhook is down until after the crash.
    let hook = Receiver::start();
    hook.set_rule(|_, _| refusing(503));
    let dest = Dest::new(1, "production", receiver.url("/down"));
    let setup = Setup {
        destinations: vec![dest.clone()],
        retry_schedule_ms: Some(vec![0, 3_600_000]),
        alert_webhook_url: Some(hook.url("/alerts")),
        ..Setup::default()
    };
    let mut server = setup.start();
    let token = server.token();
    let head = send(&server, &token, "before-the-crash").log(&dest);
    wait_status(&server, &head, "Retrying");
    let raised = eventually("the QueuePaused alert", || Some(alerts(&server, &dest)).filter(|a| !a.is_empty()));
    let id = raised[0]["id"].as_str().expect("an alert ID").to_owned();
    assert_eq!(raised[0]["sent"]["webhook"], false, "{}", raised[0]);
    hook.wait_for(|r| !r.is_empty(), PATIENCE);
    server.kill9();

    hook.set_rule(|_, _| Behavior::Status(200, "{}".to_owned()));
    server.restart();
    hook.wait_for(|r| r.iter().any(|r| r.json()["id"] == id.as_str() && r.json()["kind"] == "QueuePaused"), PATIENCE);
    let sent = eventually("the alert marked sent", || {
        let listed = alerts(&server, &dest);
        (listed[0]["sent"]["webhook"] == true).then_some(listed)
    });
    assert_eq!(sent.len(), 1, "the crash raised the alert again: {sent:?}");
}

#[test]
fn an_alert_refused_for_good_is_recorded_and_the_next_one_goes() {
    let receiver = Receiver::start();
    receiver.script([refusing(500)]);
    let hook = Receiver::start();
    // The first alert is refused for good; every later one is taken.
    hook.script([refusing(400)]);
    let dest = Dest::new(1, "production", receiver.url("/once"));
    let setup = Setup {
        destinations: vec![dest.clone()],
        retry_schedule_ms: Some(vec![10]),
        alert_webhook_url: Some(hook.url("/alerts")),
        ..Setup::default()
    };
    let server = setup.start();
    let token = server.token();
    let head = send(&server, &token, "episode").log(&dest);
    wait_status(&server, &head, "Succeeded");
    let listed = eventually("both alerts sent or refused", || {
        let listed = alerts(&server, &dest);
        let done = listed.len() == 2 && listed.iter().all(|a| a["sent"]["webhook"].is_boolean());
        let settled = listed.iter().all(|a| a["sent"]["webhook"] == true || a["refused"]["webhook"].is_string());
        (done && settled).then_some(listed)
    });
    assert_eq!(kinds(&listed), ["QueueRecovered", "QueuePaused"]);
    let (recovered, paused) = (&listed[0], &listed[1]);
    assert_eq!(paused["sent"]["webhook"], false, "{paused}");
    assert!(paused["refused"]["webhook"].as_str().is_some_and(|r| r.contains("400")), "{paused}");
    assert_eq!(recovered["sent"]["webhook"], true, "{recovered}");
    let posted = posted_ids(&hook);
    assert_eq!(posted.len(), 2, "the refused alert was posted again: {posted:?}");
    assert_eq!(posted, [paused["id"].as_str().unwrap_or_default(), recovered["id"].as_str().unwrap_or_default()]);
}

#[test]
fn a_hanging_webhook_holds_up_no_delivery() {
    let failing_receiver = Receiver::start();
    failing_receiver.set_rule(|_, _| refusing(500));
    let flowing_receiver = Receiver::start();
    let hook = Receiver::start();
    hook.set_rule(|_, _| Behavior::Hang);
    let failing = Dest::new(1, "production", failing_receiver.url("/failing"));
    let flowing = Dest::new(2, "production", flowing_receiver.url("/flowing"));
    let setup = Setup {
        destinations: vec![failing.clone(), flowing.clone()],
        retry_schedule_ms: Some(vec![0, 3_600_000]),
        alert_webhook_url: Some(hook.url("/alerts")),
        ..Setup::default()
    };
    let server = setup.start();
    let token = server.token();
    let first = send(&server, &token, "first");
    wait_status(&server, &first.log(&failing), "Retrying");
    hook.wait_for(|r| !r.is_empty(), PATIENCE);
    // The webhook holds the alert's post; deliveries go on regardless.
    let sent: Vec<_> = (0..20).map(|n| send(&server, &token, &format!("flowing-{n}"))).collect();
    let all = [vec![first], sent].concat();
    wait_first_seen(&flowing_receiver, &logs_in_order(&all, &flowing));
    let listed: Vec<Value> = alerts(&server, &failing);
    assert_eq!(listed[0]["sent"]["webhook"], false, "{}", listed[0]);
}
