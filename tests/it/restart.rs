//! Durability (SPEC §3, §10): what was acknowledged is there after a
//! graceful restart and after `kill -9` in the middle of sends, with the
//! same IDs; message IDs keep growing; the offline WAL tools read the log.

use std::{
    collections::BTreeMap,
    ffi::OsStr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::{
    client::{Accepted, Client, patient_admin},
    harness::{CLINIC, Rng, Server, ferrox, seed, wait_for},
};

/// The log → message map of every log the server lists.
fn log_messages(server: &Server) -> BTreeMap<String, u64> {
    let logs = server.all_logs("", 1000);
    let map: BTreeMap<String, u64> = logs
        .iter()
        .map(|l| (l["id"].as_str().expect("id").to_owned(), l["message_id"].as_u64().expect("message_id")))
        .collect();
    assert_eq!(map.len(), logs.len(), "a log is listed twice");
    map
}

fn check_present(logs: &BTreeMap<String, u64>, acknowledged: &[Accepted]) {
    for a in acknowledged {
        for (log_id, _) in &a.logs {
            assert_eq!(
                logs.get(log_id),
                Some(&a.message_id),
                "acknowledged log {log_id} of message {} is lost",
                a.message_id
            );
        }
    }
}

/// `wal verify` says ok; `wal dump` lists exactly the acknowledged
/// messages, in order.
fn check_wal_tools(server: &Server, acknowledged: &[Accepted]) {
    let dir = server.data_dir().as_os_str();
    let verify = ferrox(&[OsStr::new("wal"), OsStr::new("verify"), dir]);
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "wal verify failed: {stdout}{}", String::from_utf8_lossy(&verify.stderr));
    assert!(stdout.lines().any(|l| l.starts_with("ok")), "wal verify did not say ok: {stdout}");
    let dump = ferrox(&[OsStr::new("wal"), OsStr::new("dump"), dir]);
    assert!(dump.status.success(), "wal dump failed: {}", String::from_utf8_lossy(&dump.stderr));
    let stdout = String::from_utf8_lossy(&dump.stdout);
    let accepted: Vec<&str> = stdout.lines().filter(|l| l.contains("MessageAccepted")).collect();
    assert_eq!(accepted.len(), acknowledged.len(), "wal dump:\n{stdout}");
    for (line, a) in accepted.iter().zip(acknowledged) {
        assert!(
            line.contains(&format!("MessageAccepted id={} ", a.message_id)),
            "message {} out of place: {line}",
            a.message_id
        );
        assert!(
            a.logs.iter().all(|(log, _)| line.contains(log.as_str())),
            "message {} without its logs: {line}",
            a.message_id
        );
    }
}

#[test]
fn acknowledged_messages_survive_a_graceful_restart() {
    let mut rng = Rng::new(seed("acknowledged_messages_survive_a_graceful_restart"));
    let mut server = Server::start();
    let tokens = [server.token(), server.token_of(CLINIC)];
    let events = ["NewPatient", "Discharge", "Arrival", "Transfer"];
    let mut acknowledged = Vec::new();
    for i in 0..40 {
        let event = events[rng.below(events.len() as u64) as usize];
        let token = &tokens[rng.below(2) as usize];
        acknowledged.push(server.send(token, &patient_admin(event, &format!("graceful-{i}"))).accepted());
    }
    let before = server.all_logs("", 1000);
    let durable = server.durable_through();
    let sample = server.admin_get(&format!("/logs/{}", acknowledged[7].logs[0].0)).json;
    let status = server.stop();
    assert!(status.success(), "ferrox exited with {status} on SIGTERM; stderr:\n{}", server.server_log());
    check_wal_tools(&server, &acknowledged);
    server.restart();
    // The clean stop wrote one snapshot; upserting the unchanged configured
    // objects writes nothing, and a second stop has no snapshot to add.
    let durable = durable + 1;
    assert_eq!(server.durable_through(), durable, "a stop or a restart wrote to the log");
    assert!(server.stop().success());
    server.restart();
    assert_eq!(server.durable_through(), durable, "a stop or a restart wrote to the log");
    assert_eq!(server.all_logs("", 1000), before, "GET /logs changed across a restart");
    check_present(&log_messages(&server), &acknowledged);
    assert_eq!(server.admin_get(&format!("/logs/{}", acknowledged[7].logs[0].0)).json, sample);
    let next = server.send(&tokens[0], &patient_admin("NewPatient", "after")).accepted();
    let last = acknowledged.last().expect("sent").message_id;
    assert!(next.message_id > last, "message ID {} after a restart is not above {last}", next.message_id);
}

/// Sends until told to stop or the server goes away; returns what was
/// acknowledged. Counts acknowledgements in `acked`.
fn send_until_gone(
    client: Client,
    token: String,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    t: usize,
) -> Vec<Accepted> {
    let mut acknowledged = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0.. {
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            break;
        }
        let body = patient_admin("NewPatient", &format!("crash-{t}-{i}"));
        match client.try_send(&token, &body) {
            Some(reply) if reply.status == 200 => {
                acknowledged.push(reply.accepted());
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Some(reply) => panic!("SEND answered {}: {}", reply.status, reply.text),
            // The server was killed: the request may or may not be stored.
            None => break,
        }
    }
    acknowledged
}

#[test]
fn acknowledged_messages_survive_kill_9_during_sends() {
    let mut server = Server::start();
    let token = server.token();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..3)
        .map(|t| {
            let (client, token, stop, acked) = ((*server).clone(), token.clone(), stop.clone(), acked.clone());
            thread::spawn(move || send_until_gone(client, token, stop, acked, t))
        })
        .collect();
    wait_for("60 acknowledged sends", Duration::from_secs(30), || acked.load(Ordering::SeqCst) >= 60);
    server.kill9();
    stop.store(true, Ordering::SeqCst);
    let acknowledged: Vec<Accepted> = senders.into_iter().flat_map(|s| s.join().expect("a sender panicked")).collect();
    server.restart();
    eprintln!("kill -9 after {} acknowledged sends; restarted on {}", acknowledged.len(), server.base_url());
    let logs = log_messages(&server);
    check_present(&logs, &acknowledged);
    let mut ids: Vec<u64> = acknowledged.iter().map(|a| a.message_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), acknowledged.len(), "two acknowledged sends got the same message ID");
    let highest = logs.values().copied().max().expect("logs");
    let next = server.send(&token, &patient_admin("NewPatient", "after-crash")).accepted();
    assert!(next.message_id > highest, "message ID {} after the crash is not above {highest}", next.message_id);
    let status = server.stop();
    assert!(status.success(), "ferrox exited with {status}; stderr:\n{}", server.server_log());
    let verify = ferrox(&[OsStr::new("wal"), OsStr::new("verify"), server.data_dir().as_os_str()]);
    assert!(verify.status.success(), "wal verify after a crash: {}", String::from_utf8_lossy(&verify.stdout));
}

#[test]
fn a_clean_stop_leaves_a_snapshot_so_the_next_start_replays_only_the_work_in_hand() {
    use crate::delivery::{Dest, Setup, send, wait_status};
    let receiver = crate::receiver::Receiver::start();
    let dest = Dest::new(1, "production", receiver.url("/fast"));
    let setup = Setup { destinations: vec![dest.clone()], ..Setup::default() };
    let mut server = setup.start();
    let token = server.token();
    // Delivered messages: once their logs end, nothing of them stays in
    // memory, and a snapshot after them leaves nothing to replay.
    let delivered = |server: &Server, from: usize| {
        let sent: Vec<_> = (from..from + 150).map(|i| send(server, &token, &format!("stop-{i}"))).collect();
        for s in &sent {
            wait_status(server, &s.log(&dest), "Succeeded");
        }
    };
    let replayed = |server: &Server| server.metric("ferrox_start_replayed_records").expect("the metric") as u64;
    delivered(&server, 0);
    assert!(server.stop().success());
    server.restart();
    let after_stop = replayed(&server);
    assert!(after_stop < 10, "after a clean stop the start replayed {after_stop} records");
    // Without the clean stop, the start replays everything since the last
    // snapshot (three records a message): the metric tells.
    delivered(&server, 150);
    server.kill9();
    server.restart();
    let after_kill = replayed(&server);
    assert!(after_kill >= 450, "after kill -9 the start replayed only {after_kill} records");
}
