//! Alert email (SPEC §14) against a real SMTP server on 127.0.0.1: one
//! email per episode with the destination, the log, the receiver's answer
//! and a link to the console; a failing SMTP server holds up neither the
//! webhook nor any delivery; and an alert raised while it fails is emailed
//! after a crash, once it works.

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
