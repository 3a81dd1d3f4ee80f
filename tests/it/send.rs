//! SEND (SPEC §3): 1:N fan-out, explicit destinations, idempotency keys,
//! and acceptance order under concurrent senders.

use std::{collections::BTreeSet, thread};

use serde_json::{Value, json};

use crate::{
    client::{Accepted, patient_admin, to_destinations},
    harness::{ANALYTICS, LAB, Server, seed},
};

fn destinations_of(accepted: &Accepted) -> BTreeSet<&str> {
    accepted.logs.iter().map(|(_, d)| d.as_str()).collect()
}

fn log_ids(accepted: &Accepted) -> BTreeSet<&str> {
    accepted.logs.iter().map(|(l, _)| l.as_str()).collect()
}

#[test]
fn a_message_matching_two_subscriptions_makes_two_logs() {
    let server = Server::start();
    let token = server.token();
    let body = patient_admin("NewPatient", "fan-out");
    let reply = server.send(&token, &body);
    let accepted = reply.accepted();
    assert_eq!(reply.json["Meta"]["DataModel"], "PatientAdmin", "the Meta is echoed: {}", reply.text);
    assert_eq!(reply.json["Meta"]["EventType"], "NewPatient", "the Meta is echoed: {}", reply.text);
    assert_eq!(reply.header("ferrox-message-id"), Some(accepted.message_id.to_string().as_str()));
    assert_eq!(accepted.logs.len(), 2, "{}", reply.text);
    assert_eq!(log_ids(&accepted).len(), 2, "log IDs are distinct: {}", reply.text);
    assert_eq!(destinations_of(&accepted), BTreeSet::from([LAB, ANALYTICS]));
    for log in reply.json["Meta"]["Logs"].as_array().expect("Logs") {
        assert!(log["AttemptID"].as_str().is_some_and(|a| a.len() == 36), "AttemptID is a UUID: {log}");
    }
    let durable = server.durable_through();
    assert_eq!(server.metric("ferrox_wal_durable_position"), Some(durable as f64));
    let depth = format!("ferrox_queue_depth{{destination=\"{ANALYTICS}\"}}");
    assert_eq!(server.metric(&depth), Some(1.0), "{depth}");
    let listed = server.all_logs("", 100);
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (log_id, destination) in &accepted.logs {
        let log =
            listed.iter().find(|l| l["id"] == *log_id.as_str()).unwrap_or_else(|| panic!("log {log_id} not listed"));
        assert_eq!(log["message_id"], json!(accepted.message_id));
        assert_eq!(log["destination_id"], *destination.as_str());
        assert_eq!((&log["status"], &log["type"]), (&json!("Pending"), &json!("Async")));
    }
    // Discharge matches the lab's subscription only.
    let single = server.send(&token, &patient_admin("Discharge", "fan-out")).accepted();
    assert_eq!(destinations_of(&single), BTreeSet::from([LAB]));
    assert!(single.message_id > accepted.message_id);
}

#[test]
fn explicit_destinations_get_the_only_logs() {
    let server = Server::start();
    let token = server.token();
    let cases: [(Value, &[&str]); 5] = [
        (json!([{ "ID": ANALYTICS }]), &[ANALYTICS]),
        (json!([{ "Name": "Lab" }]), &[LAB]),
        (json!([{ "ID": LAB }, { "Name": "Analytics" }]), &[LAB, ANALYTICS]),
        (json!([{ "ID": LAB.to_uppercase() }, { "Name": "Lab" }]), &[LAB]),
        (json!([]), &[LAB, ANALYTICS]),
    ];
    let mut expected_per_destination = [(LAB, 0), (ANALYTICS, 0)];
    for (destinations, expected) in cases {
        let body = to_destinations(patient_admin("NewPatient", "explicit"), destinations.clone());
        let accepted = server.send(&token, &body).accepted();
        let got: Vec<&str> = accepted.logs.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(got.iter().collect::<BTreeSet<_>>(), expected.iter().collect(), "Destinations {destinations}");
        assert_eq!(got.len(), expected.len(), "one log per destination for {destinations}");
        for (d, n) in &mut expected_per_destination {
            *n += usize::from(expected.contains(d));
        }
    }
    for (destination, n) in expected_per_destination {
        assert_eq!(server.all_logs(&format!("destination={destination}"), 100).len(), n, "logs of {destination}");
    }
}

#[test]
fn an_idempotency_key_repeats_the_first_answer_and_refuses_another_body_even_after_a_restart() {
    let mut server = Server::start();
    let token = server.token();
    let body = patient_admin("NewPatient", "idem");
    // A rejected request does not take its key.
    let invalid = patient_admin("NewPatientResponse", "idem");
    server.send_keyed(&token, Some("key-1"), &invalid).redox_error(400);
    let first = server.send_keyed(&token, Some("key-1"), &body);
    let accepted = first.accepted();
    let durable = server.durable_through();
    let again = server.send_keyed(&token, Some("key-1"), &body);
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json, first.json, "a repeat answers the first response");
    // The same key with another body is a 422 that names the key.
    let changed = server.send_keyed(&token, Some("key-1"), &patient_admin("Arrival", "other"));
    let text = changed.redox_error(422);
    assert!(text.contains("'key-1'") && text.contains("different body"), "{text}");
    assert_eq!(changed.json["Meta"]["Errors"][0]["Module"], "Send");
    assert_eq!(server.durable_through(), durable, "a repeat or a conflict wrote something");
    assert_eq!(server.all_logs("", 100).len(), 2, "a repeat made logs");
    let other = server.send_keyed(&token, Some("key-2"), &body).accepted();
    assert!(other.message_id > accepted.message_id);
    assert!(log_ids(&other).is_disjoint(&log_ids(&accepted)));
    // Keys are per source: the clinic's key-1 is its own.
    let clinic = server.send_keyed(&server.token_of(crate::harness::CLINIC), Some("key-1"), &body).accepted();
    assert!(clinic.message_id > other.message_id, "another source's key was taken for a repeat");
    assert_eq!(server.all_logs("", 100).len(), 5);
    let status = server.stop();
    assert!(status.success(), "ferrox exited with {status} on SIGTERM; stderr:\n{}", server.server_log());
    server.restart();
    let durable = server.durable_through();
    // The token was issued before the restart and is still valid (SPEC §8).
    let after = server.send_keyed(&token, Some("key-1"), &body);
    assert_eq!(after.json, first.json, "the key was forgotten by the restart");
    let changed = server.send_keyed(&token, Some("key-1"), &patient_admin("Arrival", "other"));
    assert!(changed.redox_error(422).contains("'key-1'"), "the body's digest was forgotten by the restart");
    assert_eq!(server.durable_through(), durable, "a repeat after restart wrote something");
    assert_eq!(server.all_logs("", 100).len(), 5);
}

/// Sends `per_thread` messages to the lab from each of `threads` threads;
/// returns each thread's acknowledged message IDs in sending order.
fn send_concurrently(server: &Server, threads: usize, per_thread: usize, rng_seed: u64) -> Vec<Vec<u64>> {
    let token = server.token();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let client = (**server).clone();
            let token = token.clone();
            thread::spawn(move || {
                let mut rng = crate::harness::Rng::new(rng_seed ^ t as u64);
                (0..per_thread)
                    .map(|i| {
                        // Vary the size a little so requests take different times.
                        let padding = "p".repeat(rng.below(512) as usize);
                        let mut body =
                            to_destinations(patient_admin("Discharge", &format!("t{t}-{i}")), json!([{ "ID": LAB }]));
                        body["Patient"]["Padding"] = json!(padding);
                        client.send(&token, &body).accepted().message_id
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("a sender thread panicked")).collect()
}

#[test]
fn concurrent_sends_queue_in_message_id_order() {
    let seed = seed("concurrent_sends_queue_in_message_id_order");
    let server = Server::start();
    let per_thread = send_concurrently(&server, 4, 30, seed);
    for ids in &per_thread {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "one client's messages got decreasing IDs: {ids:?}");
    }
    let mut acknowledged: Vec<u64> = per_thread.concat();
    acknowledged.sort_unstable();
    let logs = server.all_logs(&format!("destination={LAB}"), 17);
    let mut queue_order: Vec<u64> = logs.iter().map(|l| l["message_id"].as_u64().expect("message_id")).collect();
    queue_order.reverse();
    assert!(queue_order.windows(2).all(|w| w[0] < w[1]), "queue order is not message ID order: {queue_order:?}");
    assert_eq!(queue_order, acknowledged, "the queue holds exactly the acknowledged messages");
    let queue = server.admin_get(&format!("/destinations/{LAB}/queue"));
    assert_eq!(queue.json["depth"], json!(acknowledged.len()), "{}", queue.text);
    assert_eq!(queue.json["head_log_id"], logs.last().expect("logs")["id"], "{}", queue.text);
}
