//! Ordered lanes (SPEC §18): with `fifo_key`, order holds per key, keys go
//! in parallel up to `max_in_flight`, never two logs of one key at once; a
//! failure blocks only its lane, an operator's pause stops them all, and a
//! `kill -9` keeps each lane's order.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{
    client::patient_admin,
    delivery::{Dest, Sent, Setup, alerts, eventually, kinds, logs_of, queue, wait_status},
    harness::{Rng, Server, seed},
    receiver::{Behavior, Received, Receiver},
};

const KEY: &str = ".Patient.Identifiers[0].ID";

fn ok() -> Behavior {
    Behavior::Status(200, "{}".to_owned())
}

fn refused(code: u16) -> Behavior {
    Behavior::Status(code, format!("{{\"Meta\":{{\"Errors\":[{{\"Text\":\"answered {code}\"}}]}}}}"))
}

/// The lane key of a request: the MRN of its body.
fn key_of(request: &Received) -> String {
    request.json()["Patient"]["Identifiers"][0]["ID"].as_str().unwrap_or_default().to_owned()
}

fn laned(number: u16, environment: &'static str, url: String, max_in_flight: u64) -> Dest {
    let mut dest = Dest::new(number, environment, url);
    dest.lanes = Some((KEY.to_owned(), max_in_flight));
    dest
}

/// SENDs one NewPatient per MRN of `mrns`, in order, from `threads`
/// clients at once; returns (MRN, what was accepted) in acceptance order.
fn send_all(server: &Server, mrns: &[String], threads: usize) -> Vec<(String, Sent)> {
    let token = server.token();
    let mut sent: Vec<(String, Sent)> = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (client, token) = ((**server).clone(), token.clone());
                scope.spawn(move || {
                    (t..mrns.len())
                        .step_by(threads)
                        .map(|n| {
                            let reply = client.send(&token, &patient_admin("NewPatient", &mrns[n]));
                            (mrns[n].clone(), Sent::of(&reply))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a sender panicked")).collect()
    });
    sent.sort_by_key(|(_, s)| s.message_id);
    sent
}

/// Per MRN, its logs for `dest` in acceptance order.
fn lanes_of(sent: &[(String, Sent)], dest: &Dest) -> HashMap<String, Vec<String>> {
    let mut lanes: HashMap<String, Vec<String>> = HashMap::new();
    for (mrn, s) in sent {
        lanes.entry(mrn.clone()).or_default().push(s.log(dest));
    }
    lanes
}

/// One request as the receiver answered it: its key, log, when it came
/// and when its answer went, and whether that answer was a 200.
#[derive(Clone, Debug)]
struct Answered {
    key: String,
    log: String,
    at: Instant,
    until: Instant,
    ok: bool,
}

/// A receiver that takes `delay` over each request and answers 200 to a
/// share `ok_percent` of them (by a seeded roll), 500 to the rest; every
/// answer is recorded.
fn flaky_receiver(seed: u64, delay: Duration, ok_percent: u64) -> (Receiver, Arc<Mutex<Vec<Answered>>>) {
    let receiver = Receiver::start();
    let answers = Arc::new(Mutex::new(Vec::new()));
    let (rng, recorded) = (Mutex::new(Rng::new(seed)), answers.clone());
    receiver.set_rule(move |r, _| {
        let ok = rng.lock().expect("rng").below(100) < ok_percent;
        let at = Instant::now();
        let log = r.header("webhook-id").unwrap_or_default().to_owned();
        recorded.lock().expect("answers").push(Answered { key: key_of(r), log, at, until: at + delay, ok });
        let (code, body) = if ok { (200, "{}".to_owned()) } else { (500, r#"{"Meta":{"Errors":[]}}"#.to_owned()) };
        Behavior::Slow(delay, code, body)
    });
    (receiver, answers)
}

/// Checks what the receiver saw against the lanes: each key's logs first
/// seen in acceptance order, a log sent again only after its own failure
/// or a restart, never two requests of one key at once; returns how many
/// requests of different keys overlapped.
fn check_lanes(answers: &[Answered], lanes: &HashMap<String, Vec<String>>, restarts: &[Instant]) -> usize {
    let mut by_key: HashMap<&str, Vec<&Answered>> = HashMap::new();
    for a in answers {
        by_key.entry(&a.key).or_default().push(a);
    }
    for (key, expected) in lanes {
        let requests = by_key.get(key.as_str()).unwrap_or_else(|| panic!("nothing of lane {key} arrived"));
        let mut seen = HashSet::new();
        let first_seen: Vec<&str> = requests.iter().map(|a| a.log.as_str()).filter(|log| seen.insert(*log)).collect();
        assert_eq!(first_seen, *expected, "lane {key}: logs first seen out of acceptance order");
        for pair in requests.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            let restarted = restarts.iter().any(|r| before.at < *r && *r < after.at);
            assert!(
                before.ok || before.log == after.log || restarted,
                "lane {key}: log {} was sent after a failure of {}",
                after.log,
                before.log
            );
            assert!(
                after.at >= before.until || restarted,
                "lane {key}: log {} arrived while {} was still in flight",
                after.log,
                before.log
            );
        }
    }
    let mut sorted: Vec<&Answered> = answers.iter().collect();
    sorted.sort_by_key(|a| a.at);
    sorted.windows(2).filter(|p| p[0].key != p[1].key && p[1].at < p[0].until).count()
}

#[test]
fn each_key_keeps_its_order_through_failures_and_kill_9_while_keys_go_in_parallel() {
    let (receiver, answers) = flaky_receiver(seed("lanes_through_kill_9"), Duration::from_millis(5), 75);
    let dest = laned(1, "production", receiver.url("/lanes"), 8);
    let setup =
        Setup { destinations: vec![dest.clone()], retry_schedule_ms: Some(vec![0, 10, 20]), ..Setup::default() };
    let mut server = setup.start();
    let mrns = |from: usize, count: usize| (from..from + count).map(|n| format!("mrn-{}", n % 12)).collect::<Vec<_>>();
    let mut sent = send_all(&server, &mrns(0, 300), 4);
    // Kill the engine while the lanes are delivering.
    let count = |a: &Arc<Mutex<Vec<Answered>>>| a.lock().expect("answers").len();
    eventually("deliveries under way", || (count(&answers) >= 60).then_some(()));
    server.kill9();
    let killed = Instant::now();
    server.restart();
    sent.extend(send_all(&server, &mrns(300, 120), 4));
    sent.sort_by_key(|(_, s)| s.message_id);
    let logs = eventually("every log to succeed", || {
        let logs = logs_of(&server, &dest);
        (logs.len() == sent.len() && logs.iter().all(|l| l["status"] == "Succeeded")).then_some(logs)
    });
    assert_eq!(logs.len(), 420);
    let answers = answers.lock().expect("answers").clone();
    let overlapping = check_lanes(&answers, &lanes_of(&sent, &dest), &[killed]);
    assert!(overlapping > 50, "requests of different keys overlapped only {overlapping} times: no parallel lanes");
    // Never more than max_in_flight at once.
    let most = answers.iter().map(|a| answers.iter().filter(|b| b.at <= a.at && a.at < b.until).count()).max();
    assert!(most.is_some_and(|m| m <= 8), "{most:?} requests in flight at once, max_in_flight 8");
    let view = queue(&server, &dest);
    assert_eq!((view["depth"].as_u64(), view["lanes_blocked"].as_u64()), (Some(0), Some(0)), "{view}");
}

#[test]
fn a_failing_lane_waits_alone_and_one_alert_episode_covers_the_destination() {
    let receiver = Receiver::start();
    // Lanes "bad-1" and "bad-2" are refused until the test says otherwise.
    let failing = Arc::new(Mutex::new(HashSet::from(["bad-1".to_owned(), "bad-2".to_owned()])));
    let refusing = failing.clone();
    receiver.set_rule(move |r, _| if refusing.lock().expect("set").contains(&key_of(r)) { refused(503) } else { ok() });
    let dest = laned(1, "production", receiver.url("/lanes"), 4);
    let setup = Setup { destinations: vec![dest.clone()], retry_schedule_ms: Some(vec![50]), ..Setup::default() };
    let server = setup.start();
    let order = ["bad-1", "good-1", "bad-1", "good-2", "bad-2", "good-1", "good-3", "bad-2", "good-2"];
    let sent = send_all(&server, &order.iter().map(|m| (*m).to_owned()).collect::<Vec<_>>(), 1);
    let lanes = lanes_of(&sent, &dest);
    for log in lanes.iter().filter(|(k, _)| k.starts_with("good")).flat_map(|(_, logs)| logs) {
        wait_status(&server, log, "Succeeded");
    }
    for bad in ["bad-1", "bad-2"] {
        let (head, behind) = (&lanes[bad][0], &lanes[bad][1]);
        wait_status(&server, head, "Retrying");
        let behind_log = server.admin_get(&format!("/logs/{behind}"));
        assert_eq!(behind_log.json["status"], "Pending", "a log behind a blocked head went: {}", behind_log.text);
        assert!(behind_log.json["attempts"].as_array().is_some_and(Vec::is_empty), "{}", behind_log.text);
    }
    let view = queue(&server, &dest);
    assert_eq!(view["lanes_blocked"], 2, "{view}");
    assert_eq!(view["state"], "flowing", "blocked lanes do not pause the queue: {view}");
    let paused = alerts(&server, &dest);
    assert_eq!(kinds(&paused), ["QueuePaused"], "one episode for both blocked lanes");
    let text = paused[0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("its lane paused for retries, the other lanes go on"), "{text}");
    assert!(!text.contains("bad-"), "the alert names no lane's key (a patient's ID): {text}");

    // One lane recovers: the episode goes on while the other is blocked.
    failing.lock().expect("set").remove("bad-1");
    for log in &lanes["bad-1"] {
        wait_status(&server, log, "Succeeded");
    }
    eventually("one lane blocked", || (queue(&server, &dest)["lanes_blocked"] == 1).then_some(()));
    assert_eq!(kinds(&alerts(&server, &dest)), ["QueuePaused"], "recovered while a lane is still blocked");
    failing.lock().expect("set").clear();
    for log in &lanes["bad-2"] {
        wait_status(&server, log, "Succeeded");
    }
    let kinds_now = eventually("the recovery alert", || {
        let all = alerts(&server, &dest);
        (all.len() == 2).then(|| kinds(&all).into_iter().map(str::to_owned).collect::<Vec<_>>())
    });
    assert_eq!(kinds_now, ["QueueRecovered", "QueuePaused"], "newest first");
    let view = queue(&server, &dest);
    assert_eq!((view["lanes_blocked"].as_u64(), view["depth"].as_u64()), (Some(0), Some(0)), "{view}");
}

#[test]
fn a_processing_failure_halts_its_lane_only_and_an_operator_pause_stops_every_lane() {
    let receiver = Receiver::start();
    let mut dest = laned(1, "production", receiver.url("/lanes"), 4);
    dest.transform =
        Some(r#"if .Patient.Identifiers[0].ID == "halt" then error("refused for the test") else . end"#.into());
    let setup = Setup { destinations: vec![dest.clone()], ..Setup::default() };
    let server = setup.start();
    let order = ["halt", "a", "halt", "b", "a"];
    let sent = send_all(&server, &order.iter().map(|m| (*m).to_owned()).collect::<Vec<_>>(), 1);
    let lanes = lanes_of(&sent, &dest);
    for log in lanes["a"].iter().chain(&lanes["b"]) {
        wait_status(&server, log, "Succeeded");
    }
    let halted = wait_status(&server, &lanes["halt"][0], "ProcessingFailed");
    assert!(halted["reason"].as_str().is_some_and(|r| r.contains("refused for the test")), "{halted}");
    assert_eq!(server.admin_get(&format!("/logs/{}", lanes["halt"][1])).json["status"], "Pending");
    assert_eq!(queue(&server, &dest)["lanes_blocked"], 1);
    // Only a lane's head can be skipped; the halted head can.
    let behind = server.admin_post(&format!("/logs/{}/skip", lanes["halt"][1]), &json!({}));
    assert_eq!(behind.status, 409, "{}", behind.text);
    assert!(behind.json["Meta"]["Errors"][0]["Text"].as_str().is_some_and(|t| t.contains("head")), "{}", behind.text);

    // A pause stops every lane: what is sent now waits.
    let paused = server.admin_post(&format!("/destinations/{}/pause", dest.id), &json!({}));
    assert_eq!(paused.status, 200, "{}", paused.text);
    assert_eq!(paused.json["state"], "paused", "{}", paused.text);
    let before = receiver.received().len();
    let held = send_all(&server, &["c".to_owned(), "d".to_owned()], 2);
    for (_, s) in &held {
        assert_eq!(server.admin_get(&format!("/logs/{}", s.log(&dest))).json["status"], "Pending");
    }
    assert_eq!(receiver.received().len(), before, "a paused destination delivered");
    let resumed = server.admin_post(&format!("/destinations/{}/resume", dest.id), &json!({}));
    assert_eq!(resumed.status, 200, "{}", resumed.text);
    for (_, s) in &held {
        wait_status(&server, &s.log(&dest), "Succeeded");
    }
    // Skipping the halted head lets its lane go on.
    let skipped = server.admin_post(&format!("/logs/{}/skip", lanes["halt"][0]), &json!({}));
    assert_eq!(skipped.status, 200, "{}", skipped.text);
    wait_status(&server, &lanes["halt"][1], "ProcessingFailed");
}

#[test]
fn lane_settings_are_checked_and_shown() {
    let receiver = Receiver::start();
    let dest = laned(1, "production", receiver.url("/lanes"), 16);
    let server = Setup { destinations: vec![dest.clone()], ..Setup::default() }.start();
    let shown = server.admin_get(&format!("/destinations/{}", dest.id));
    assert_eq!((shown.json["fifo_key"].as_str(), shown.json["max_in_flight"].as_u64()), (Some(KEY), Some(16)));
    let count = || server.admin_get("/destinations").json["destinations"].as_array().map(Vec::len);
    let before = count();
    let base = json!({"name": "other", "url": receiver.url("/x"), "environment": "production"});
    for (patch, words) in [
        (json!({"fifo_key": ".Patient | .ID"}), "fifo_key"),
        (json!({"fifo_key": "Patient.ID"}), "fifo_key"),
        (json!({"fifo_key": ".a", "max_in_flight": 65}), "between 1 and 64"),
        (json!({"fifo_key": ".a", "max_in_flight": 0}), "between 1 and 64"),
        (json!({"max_in_flight": 4}), "needs a fifo_key"),
    ] {
        let mut body = base.clone();
        body.as_object_mut().expect("an object").extend(patch.as_object().expect("an object").clone());
        let reply = server.admin_post("/destinations", &body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        let text = reply.json["Meta"]["Errors"][0]["Text"].as_str().unwrap_or_default();
        assert!(text.contains(words), "{body}: {}", reply.text);
    }
    assert_eq!(count(), before, "a refused destination was made");
}
