//! Alert email (SPEC §14) against a real SMTP server on 127.0.0.1: one
//! email per episode with the destination, the log, the receiver's answer
//! and a link to the console; a failing SMTP server holds up neither the
//! webhook nor any delivery; and an alert raised while it fails is emailed
//! after a crash, once it works. Alerts also go to the `alert_emails` of
//! the destination or source they concern, and a queue past `alert_depth`
//! is emailed once as a `QueueBacklog`.

use serde_json::json;

use crate::{
    delivery::{Dest, PATIENCE, Setup, alerts, eventually, send, wait_status},
    receiver::{Behavior, Receiver},
    smtp::Sink,
};

fn setup(sink: &Sink, hook: &Receiver, destinations: Vec<Dest>) -> Setup {
    Setup {
        destinations,
        retry_schedule_ms: Some(vec![0, 3_600_000]),
        alerts: Some(format!(
            "smtp_url = \"{}\"\nemail_from = \"ferrox@hospital.test\"\nemail_to = [\"oncall@hospital.test\", \"Lead <lead@hospital.test>\"]\npublic_url = \"https://ferrox.hospital.test/\"\nwebhook_url = \"{}\"\n",
            sink.url(),
            hook.url("/alerts")
        )),
        ..Setup::default()
    }
}

#[test]
fn a_paused_queue_is_emailed_once_with_what_the_receiver_said_and_a_link() {
    let sink = Sink::start();
    let hook = Receiver::start();
    let receiver = Receiver::start();
    // Three failures, then the receiver is back.
    receiver.script((0..3).map(|_| Behavior::Status(500, "{\"error\":\"lab system down\"}".to_owned())));
    let dest = Dest::new(1, "production", receiver.url("/lab"));
    let mut setup = setup(&sink, &hook, vec![dest.clone()]);
    setup.retry_schedule_ms = Some(vec![0, 30, 30, 30]);
    let server = setup.start();
    let token = server.token();
    let head = send(&server, &token, "email-1").log(&dest);
    wait_status(&server, &head, "Succeeded");
    let mails = sink.wait_for("the QueuePaused and QueueRecovered emails", PATIENCE, |m| m.len() >= 2);
    let subjects: Vec<String> = mails.iter().filter_map(|m| m.header("Subject")).collect();
    assert_eq!(subjects, ["[ferrox] QueuePaused: dest-1", "[ferrox] QueueRecovered: dest-1"], "{mails:#?}");
    let paused = &mails[0];
    assert_eq!(paused.from, "ferrox@hospital.test");
    assert_eq!(paused.to, ["oncall@hospital.test", "lead@hospital.test"]);
    let body = paused.body();
    for expected in [
        format!("Destination: dest-1 ({})", dest.id),
        format!("Log: {head}"),
        "500".to_owned(),
        "lab system down".to_owned(),
        format!("https://ferrox.hospital.test/ui/logs/{head}"),
    ] {
        assert!(body.contains(&expected), "the email lacks '{expected}':\n{body}");
    }
    // Three failed attempts made one episode: no third email comes.
    let listed = eventually("both alerts emailed", || {
        let listed = alerts(&server, &dest);
        listed.iter().all(|a| a["sent"]["email"] == true && a["sent"]["webhook"] == true).then_some(listed)
    });
    assert_eq!(listed.len(), 2);
    assert_eq!(sink.mails().len(), 2, "an episode was emailed more than once");
}

#[test]
fn a_failing_smtp_server_delays_nothing_else_and_its_alert_is_emailed_after_a_crash() {
    let sink = Sink::start();
    sink.set_failing(true);
    let hook = Receiver::start();
    let down = Receiver::start();
    down.set_rule(|_, _| Behavior::Status(503, "{}".to_owned()));
    let up = Receiver::start();
    let paused = Dest::new(1, "production", down.url("/down"));
    let flowing = Dest::new(2, "production", up.url("/up"));
    let mut server = setup(&sink, &hook, vec![paused.clone(), flowing.clone()]).start();
    let token = server.token();
    let sent = send(&server, &token, "while-smtp-fails");
    wait_status(&server, &sent.log(&paused), "Retrying");
    // The webhook has the alert and the other destination its message,
    // while the SMTP server answers every MAIL with 451.
    hook.wait_for(|r| r.iter().any(|r| r.json()["kind"] == "QueuePaused"), PATIENCE);
    wait_status(&server, &sent.log(&flowing), "Succeeded");
    let waiting = eventually("the alert sent to the webhook, not by email", || {
        let listed = alerts(&server, &paused);
        (listed.len() == 1 && listed[0]["sent"]["webhook"] == true).then_some(listed)
    });
    assert_eq!(waiting[0]["sent"]["email"], false, "{}", waiting[0]);
    assert!(sink.mails().is_empty());

    server.kill9();
    sink.set_failing(false);
    server.restart();
    let mails = sink.wait_for("the QueuePaused email after the restart", PATIENCE, |m| !m.is_empty());
    assert_eq!(mails[0].header("Subject").as_deref(), Some("[ferrox] QueuePaused: dest-1"));
    assert!(mails[0].body().contains(&sent.log(&paused)), "{}", mails[0].body());
    eventually("the alert marked emailed", || (alerts(&server, &paused)[0]["sent"]["email"] == true).then_some(()));
}

#[test]
fn an_email_setting_that_cannot_work_stops_the_start_with_its_reason() {
    let admin = format!("admin_token = \"{}\"\n", crate::harness::ADMIN_TOKEN);
    for (alerts, expected) in [
        ("email_to = [\"oncall@hospital.test\"]\n", "email_to needs smtp_url and email_from"),
        ("email_to = [\"not an address\"]\n", "not an email address"),
        ("smtp_url = \"http://127.0.0.1:25\"\n", "smtp:// or smtps://"),
        ("public_url = \"ftp://x\"\n", "public_url"),
    ] {
        let text = crate::harness::serve_refuses(&format!("{admin}[alerts]\n{alerts}"));
        assert!(text.contains(expected), "expected '{expected}' in: {text}");
    }
}

/// Makes an object through the operator API; its JSON.
fn made(server: &crate::harness::Server, path: &str, body: serde_json::Value) -> serde_json::Value {
    let reply = server.admin_post(path, &body);
    assert_eq!(reply.status, 201, "POST {path}: {}", reply.text);
    reply.json
}

/// The envelope recipients of the mails whose subject starts with `kind`.
fn recipients_of(mails: &[crate::smtp::Mail], subject: &str) -> Vec<Vec<String>> {
    mails.iter().filter(|m| m.header("Subject").as_deref() == Some(subject)).map(|m| m.to.clone()).collect()
}

#[test]
fn alerts_go_to_the_lists_they_concern_and_a_backlog_is_emailed_once_per_episode() {
    let sink = Sink::start();
    let hook = Receiver::start();
    let receiver = Receiver::start();
    let mut server = setup(&sink, &hook, Vec::new()).start();
    let (oncall, lead) = ("oncall@hospital.test".to_owned(), "lead@hospital.test".to_owned());

    // A source and two destinations of the API's, with their own lists.
    let source = made(&server, "/sources", json!({ "name": "Portal", "alert_emails": ["portal-team@hospital.test"] }));
    let lab = made(
        &server,
        "/destinations",
        json!({
            "name": "Lab A", "url": receiver.url("/lab"), "environment": "production",
            "alert_emails": ["lab-team@hospital.test", "oncall@hospital.test"],
            "alert_depth": 3, "alert_age_ms": 3_600_000,
        }),
    );
    assert_eq!(lab["alert_depth"], 3);
    assert_eq!(lab["alert_emails"], json!(["lab-team@hospital.test", "oncall@hospital.test"]));
    let broken = made(
        &server,
        "/destinations",
        json!({ "name": "Broken", "url": receiver.url("/b"), "environment": "staging" }),
    );
    let (source_id, lab_id, broken_id) =
        (source["id"].as_str().unwrap_or(""), lab["id"].as_str().unwrap_or(""), broken["id"].as_str().unwrap_or(""));
    made(
        &server,
        "/subscriptions",
        json!({ "source_id": source_id, "destination_id": lab_id, "data_model": "PatientAdmin" }),
    );
    made(
        &server,
        "/subscriptions",
        json!({ "source_id": source_id, "destination_id": broken_id, "data_model": "PatientAdmin", "transform": "error(\"no MRN\")" }),
    );
    // A bad list is a 400, and changes nothing.
    let bad = server.admin_post(
        "/destinations",
        &json!({ "name": "X", "url": receiver.url("/x"), "environment": "staging", "alert_emails": ["not mail"] }),
    );
    assert!(bad.redox_error(400).contains("not an email address"), "{}", bad.text);
    let zero = server.admin_post(
        "/destinations",
        &json!({ "name": "X", "url": receiver.url("/x"), "environment": "staging", "alert_depth": 0 }),
    );
    assert!(zero.redox_error(400).contains("alert_depth"), "{}", zero.text);

    let auth = server.authenticate(source["api_key"].as_str().unwrap_or(""), source["secret"].as_str().unwrap_or(""));
    let token = auth.json["accessToken"].as_str().expect("a token").to_owned();
    assert_eq!(server.admin_post(&format!("/destinations/{lab_id}/pause"), &json!({})).status, 200);
    for n in 0..3 {
        let reply = server.send(&token, &crate::client::patient_admin("NewPatient", &format!("backlog-{n}")));
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let backlog = "[ferrox] QueueBacklog: Lab A";
    let mails = sink.wait_for("the backlog and processing emails", PATIENCE, |m| {
        recipients_of(m, backlog).len() == 1 && recipients_of(m, "[ferrox] ProcessingFailed: Broken").len() == 1
    });
    // The destination's list and email_to, each address once; a
    // processing failure halts its queue, one email for the three;
    // it goes to the source's list instead.
    assert_eq!(recipients_of(&mails, backlog), [vec![oncall.clone(), lead.clone(), "lab-team@hospital.test".into()]]);
    let processing = recipients_of(&mails, "[ferrox] ProcessingFailed: Broken");
    assert!(
        processing.iter().all(|to| *to == [oncall.clone(), lead.clone(), "portal-team@hospital.test".into()]),
        "{processing:?}"
    );
    let body =
        mails.iter().find(|m| m.header("Subject").as_deref() == Some(backlog)).map(|m| m.body()).unwrap_or_default();
    assert!(body.contains("3 logs pending") && body.contains("alert_depth 3"), "{body}");

    // A crash forgets no episode: the queue is still past its depth, and
    // the watcher's first look after the start raises nothing new. (Once
    // the email is recorded as sent: until then a crash sends it again.)
    eventually("the backlog recorded as emailed", || {
        let r = server.admin_get("/alerts");
        let alerts = r.json["alerts"].as_array()?.clone();
        alerts.iter().any(|a| a["kind"] == "QueueBacklog" && a["sent"]["email"] == true).then_some(())
    });
    // A SEND answered 200 is durable, and so is all journaled before it.
    let reply = server.send(&token, &crate::client::patient_admin("NewPatient", "backlog-3"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    server.kill9();
    server.restart();
    // Back under both thresholds: one QueueRecovered, then no more.
    assert_eq!(server.admin_post(&format!("/destinations/{lab_id}/resume"), &json!({})).status, 200);
    let recovered = "[ferrox] QueueRecovered: Lab A";
    sink.wait_for("the backlog's recovery", PATIENCE, |m| !recipients_of(m, recovered).is_empty());
    let lab_alerts = eventually("every Lab A alert emailed", || {
        let r = server.admin_get("/alerts");
        let listed: Vec<serde_json::Value> =
            r.json["alerts"].as_array()?.iter().filter(|a| a["destination_id"] == lab_id).cloned().collect();
        listed.iter().all(|a| a["sent"]["email"] == true).then_some(listed)
    });
    let kinds: Vec<&str> = lab_alerts.iter().map(|a| a["kind"].as_str().unwrap_or("")).collect();
    assert_eq!(kinds, ["QueueRecovered", "QueueBacklog"], "{lab_alerts:?}");
    assert_eq!(recipients_of(&sink.mails(), backlog).len(), 1, "a backlog was emailed more than once");
}
