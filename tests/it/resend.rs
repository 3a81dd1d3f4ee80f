//! Resend and replay (SPEC §13) against the real binary and a real
//! receiver: a resent log is a new log at the tail of the queue, delivered
//! with its own `webhook-id` and its message's body; a replay resends every
//! matching ended log in acceptance order, each message once, as one
//! journaled action; both survive a clean restart and a crash.

use serde_json::{Value, json};

use crate::{
    client::patient_admin,
    delivery::{Dest, Sent, Setup, log, queue, wait_first_seen, wait_status},
    harness::{ADMIN_TOKEN, Server},
    receiver::{Received, Receiver},
};

fn post(server: &Server, path: &str, body: Option<&Value>) -> crate::client::Reply {
    server.admin_as(Some(ADMIN_TOKEN), "POST", path, body)
}

fn body_of(received: &[Received], webhook_id: &str) -> Value {
    received
        .iter()
        .find(|r| r.header("webhook-id") == Some(webhook_id))
        .unwrap_or_else(|| panic!("{webhook_id} was not received"))
        .json()
}

fn audit_actions(server: &Server) -> Vec<(String, String)> {
    let reply = server.admin_get("/audit?limit=100");
    assert_eq!(reply.status, 200, "{}", reply.text);
    let entries = reply.json["audit"].as_array().expect("an audit list").clone();
    entries
        .iter()
        .map(|e| (e["action"].as_str().unwrap_or("").to_owned(), e["target"].as_str().unwrap_or("").to_owned()))
        .collect()
}

#[test]
fn a_resent_log_goes_to_the_tail_with_its_own_webhook_id_and_survives_restarts() {
    let receiver = Receiver::start();
    let dest = Dest::new(1, "production", receiver.url("/resend"));
    let mut server = Setup { destinations: vec![dest.clone()], ..Setup::default() }.start();
    let token = server.token();
    let sent: Vec<Sent> =
        ["r1", "r2"].iter().map(|mrn| Sent::of(&server.send(&token, &patient_admin("NewPatient", mrn)))).collect();
    let first = sent[0].log(&dest);
    wait_first_seen(&receiver, &[first.clone(), sent[1].log(&dest)]);
    wait_status(&server, &first, "Succeeded");

    // Only ended logs are resent; nothing changes on a refusal.
    assert_eq!(post(&server, &format!("/destinations/{}/pause", dest.id), None).status, 200);
    let third = Sent::of(&server.send(&token, &patient_admin("NewPatient", "r3")));
    let pending = third.log(&dest);
    let refused = post(&server, &format!("/logs/{pending}/resend"), None);
    assert!(refused.redox_error(409).contains("only Succeeded, Failed or Filtered"), "{}", refused.text);
    let unknown = post(&server, "/logs/00000000-0000-4000-8000-000000000000/resend", None);
    assert_eq!(unknown.status, 404, "{}", unknown.text);

    let reply = post(&server, &format!("/logs/{first}/resend"), None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let resent = reply.json["id"].as_str().expect("the new log's id").to_owned();
    assert_ne!(resent, first);
    assert_eq!(reply.json["resent_from"], first.as_str());
    assert_eq!(reply.json["status"], "Pending");
    assert_eq!(reply.json["message_id"], sent[0].message_id);
    assert_eq!(reply.json["destination_id"], dest.id.as_str());
    assert_eq!(reply.json["attempts"], json!([]));
    // At the tail: behind the log accepted while paused.
    let q = queue(&server, &dest);
    assert_eq!((q["depth"].as_u64(), q["head_log_id"].as_str()), (Some(2), Some(pending.as_str())), "{q}");
    // The old log is untouched.
    assert_eq!(log(&server, &first)["status"], "Succeeded");
    assert_eq!(log(&server, &first)["resent_from"], Value::Null);

    assert_eq!(post(&server, &format!("/destinations/{}/resume", dest.id), None).status, 200);
    let received = wait_first_seen(&receiver, &[first.clone(), sent[1].log(&dest), pending.clone(), resent.clone()]);
    // The same message, under its own webhook-id.
    assert_eq!(body_of(&received, &resent), body_of(&received, &first));
    let delivered = wait_status(&server, &resent, "Succeeded");
    assert_eq!(delivered["resent_from"], first.as_str());
    assert!(audit_actions(&server).contains(&("log.resend".to_owned(), first.clone())));

    // The same after a clean restart (from the history) and a crash (from
    // the journal).
    server.stop();
    server.restart();
    assert_eq!(log(&server, &resent), delivered);
    let listed = server.all_logs(&format!("destination={}", dest.id), 2);
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[0]["id"], resent.as_str(), "the resent log is the newest: {listed:?}");
    let again = post(&server, &format!("/logs/{resent}/resend"), None);
    assert_eq!(again.status, 200, "{}", again.text);
    let again = again.json["id"].as_str().expect("an id").to_owned();
    server.kill9();
    server.restart();
    let back = log(&server, &again);
    assert_eq!(back["resent_from"], resent.as_str());
    wait_status(&server, &again, "Succeeded");
}

#[test]
fn a_replay_resends_matching_logs_in_acceptance_order_once_each() {
    let receiver = Receiver::start();
    let dest = Dest::new(2, "production", receiver.url("/replay"));
    let mut server = Setup { destinations: vec![dest.clone()], ..Setup::default() }.start();
    let token = server.token();
    let events = ["NewPatient", "Arrival", "NewPatient", "Arrival", "Arrival", "NewPatient"];
    let sent: Vec<Sent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| Sent::of(&server.send(&token, &patient_admin(e, &format!("p{i}")))))
        .collect();
    let originals: Vec<String> = sent.iter().map(|s| s.log(&dest)).collect();
    let start = log(&server, &originals[0])["received_at"].as_str().expect("a time").to_owned();
    wait_first_seen(&receiver, &originals);
    for l in &originals {
        wait_status(&server, l, "Succeeded");
    }
    let path = format!("/destinations/{}/replay", dest.id);

    // Bad bodies: a 400 in Meta.Errors, nothing resent.
    for (body, expected) in [
        (json!({}), "since is required"),
        (json!({ "since": "yesterday" }), "RFC 3339"),
        (json!({ "since": start, "status": ["Pending"] }), "cannot be replayed"),
        (json!({ "since": start, "colour": "red" }), "unknown field"),
        (json!({ "since": start, "until": start }), "later than since"),
    ] {
        let reply = post(&server, &path, Some(&body));
        let text = reply.redox_error(400);
        assert!(text.contains(expected), "{body}: {text}");
    }
    assert_eq!(server.all_logs(&format!("destination={}", dest.id), 100).len(), 6);

    let reply =
        post(&server, &path, Some(&json!({ "since": start, "event_type": "Arrival", "status": ["Succeeded"] })));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["resent"], 3, "{}", reply.text);
    let arrivals: Vec<&String> =
        originals.iter().zip(events).filter(|(_, e)| *e == "Arrival").map(|(l, _)| l).collect();
    let listed = server.all_logs(&format!("destination={}", dest.id), 100);
    // Newest first: the three resent logs, each naming its original, in
    // acceptance order from the oldest.
    let resent: Vec<&Value> = listed.iter().take(3).rev().collect();
    let from: Vec<&str> = resent.iter().map(|l| l["resent_from"].as_str().unwrap_or("")).collect();
    assert_eq!(from, arrivals.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert_eq!(reply.json["first_log_id"], resent[0]["id"]);
    assert_eq!(reply.json["last_log_id"], resent[2]["id"]);
    let resent_ids: Vec<String> = resent.iter().map(|l| l["id"].as_str().unwrap_or("").to_owned()).collect();
    let mut everything = originals.clone();
    everything.extend(resent_ids.iter().cloned());
    let received = wait_first_seen(&receiver, &everything);
    for (new, old) in resent_ids.iter().zip(&arrivals) {
        assert_eq!(body_of(&received, new), body_of(&received, old));
        wait_status(&server, new, "Succeeded");
    }
    assert!(audit_actions(&server).contains(&("destination.replay".to_owned(), dest.id.clone())));

    // A second replay of everything: each message once, though three of
    // them now have two ended logs.
    let reply = post(&server, &path, Some(&json!({ "since": start })));
    assert_eq!(reply.json["resent"], 6, "{}", reply.text);
    // Nothing matches: nothing is journaled.
    let later = post(&server, &path, Some(&json!({ "since": "2999-01-01T00:00:00Z" })));
    assert_eq!(later.json, json!({ "resent": 0, "first_log_id": null, "last_log_id": null }));
    server.kill9();
    server.restart();
    assert_eq!(server.all_logs(&format!("destination={}", dest.id), 100).len(), 15);
}
