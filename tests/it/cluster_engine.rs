//! Cluster mode end to end (SPEC §17): three `ferrox serve` nodes on three
//! NATS servers, every process ended by its PID. The same cases run on one
//! node on its embedded log, where "the owner" is that node. Retention and
//! the console across nodes are in `cluster_upkeep.rs`.

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use ferrox::cluster::{self, ClusterSettings, Leases};

use crate::{
    client::patient_admin,
    delivery::{
        Dest, PATIENCE, Sent, Setup, alerts, eventually, first_seen, kinds, logs_in_order, wait_first_seen, wait_status,
    },
    harness::{ADMIN_TOKEN, Options, Server},
    nats::NatsCluster,
    receiver::{Behavior, Receiver},
};

/// Long enough that a lease round (a few key-value operations) fits in
/// an eighth of it on a loaded machine.
const LEASE_MS: u64 = 4_000;

/// The engine under test: three cluster nodes, or one embedded node.
pub(crate) struct Fleet {
    pub(crate) nats: Option<NatsCluster>,
    pub(crate) nodes: Vec<Server>,
}

impl Fleet {
    pub(crate) fn cluster(setup: &Setup) -> Self {
        let nats = NatsCluster::start(3);
        let nodes = (0..3).map(|i| Server::start_with(&node_options(setup, &nats, i))).collect();
        Self { nats: Some(nats), nodes }
    }

    fn embedded(setup: &Setup) -> Self {
        let options = Options { config_text: Some(setup.toml()), ..Options::default() };
        Self { nats: None, nodes: vec![Server::start_with(&options)] }
    }

    /// The node that delivers `dest` now: the holder of its lease.
    pub(crate) fn owner(&self, dest: &Dest) -> usize {
        let Some(nats) = &self.nats else { return 0 };
        let url = nats.url(0);
        let destination = dest.id.clone();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let holder = runtime.block_on(async move {
            let settings = ClusterSettings {
                nats_urls: vec![url],
                node_name: "observer".into(),
                replicas: 3,
                lease: Duration::from_millis(LEASE_MS),
            };
            let context = cluster::connect(&settings).await.expect("connecting");
            let leases = Leases::open(&context, "observer", 3, settings.lease / 2).await.expect("the lease bucket");
            let end = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some((holder, _)) = leases.holder(&destination).await.expect("reading the lease") {
                    return holder;
                }
                assert!(Instant::now() < end, "no node took the lease of {destination}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let number = holder.strip_prefix("node-").and_then(|n| n.parse::<usize>().ok()).expect("a node's name");
        number - 1
    }

    /// The nodes other than `not`, or the only one.
    pub(crate) fn others(&self, not: usize) -> Vec<usize> {
        let others: Vec<usize> = (0..self.nodes.len()).filter(|i| *i != not).collect();
        if others.is_empty() { vec![not] } else { others }
    }
}

impl Drop for Fleet {
    /// A failed case shows what each node said.
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (i, node) in self.nodes.iter().enumerate() {
                let log = node.server_log();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- node {i}, last lines:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
        }
    }
}

pub(crate) fn node_options(setup: &Setup, nats: &NatsCluster, i: usize) -> Options {
    let mut text = setup.toml();
    let _ = writeln!(
        text,
        "[cluster]\nnats_urls = [{:?}]\nnode_name = \"node-{}\"\nreplicas = 3\nlease_ms = {LEASE_MS}",
        nats.url(i),
        i + 1
    );
    Options { config_text: Some(text), ..Options::default() }
}

fn one_destination(receiver: &Receiver) -> (Setup, Dest) {
    let dest = Dest::new(1, "production", receiver.url("/orders"));
    (Setup { destinations: vec![dest.clone()], retry_schedule_ms: Some(vec![100]), ..Setup::default() }, dest)
}

/// SENDs `count` messages, in turn through each of `through`, one after
/// another: their acceptance order is the order they were sent.
pub(crate) fn send_round(fleet: &Fleet, through: &[usize], count: usize, tag: &str) -> Vec<Sent> {
    let tokens: Vec<String> = through.iter().map(|i| fleet.nodes[*i].token()).collect();
    (0..count)
        .map(|n| {
            let k = n % through.len();
            let reply = fleet.nodes[through[k]].send(&tokens[k], &patient_admin("NewPatient", &format!("{tag}-{n}")));
            assert_eq!(reply.status, 200, "node {}: {}", through[k], reply.text);
            Sent::of(&reply)
        })
        .collect()
}

/// SENDs spread over the nodes reach the destination in acceptance order;
/// killing the node that delivers it loses nothing and reorders nothing:
/// another takes over from the last recorded outcome.
fn fifo_across_nodes_and_the_owner_killed(mut fleet: Fleet, receiver: &Receiver, dest: &Dest) {
    let all: Vec<usize> = (0..fleet.nodes.len()).collect();
    let mut sent = send_round(&fleet, &all, 30, "spread");
    for pair in sent.windows(2) {
        assert!(pair[0].message_id < pair[1].message_id, "message IDs follow acceptance order");
    }
    let received = wait_first_seen(receiver, &logs_in_order(&sent, dest));
    assert_eq!(first_seen(&received), logs_in_order(&sent, dest), "delivered in acceptance order");

    let owner = fleet.owner(dest);
    let survivors = fleet.others(owner);
    fleet.nodes[owner].kill9();
    let killed = Instant::now();
    if fleet.nats.is_none() {
        fleet.nodes[owner].restart();
    }
    let after = send_round(&fleet, &survivors, 20, "after-kill");
    sent.extend(after);
    let received = wait_first_seen(receiver, &logs_in_order(&sent, dest));
    assert_eq!(first_seen(&received), logs_in_order(&sent, dest), "still in acceptance order after the kill");
    eprintln!("deliveries resumed {:?} after the owner was killed", killed.elapsed());

    // Every surviving node reads the same outcome for every log.
    for i in &survivors {
        let node = &fleet.nodes[*i];
        for log in logs_in_order(&sent, dest) {
            let end = Instant::now() + Duration::from_secs(30);
            loop {
                let r = node.admin_as(Some(ADMIN_TOKEN), "GET", &format!("/logs/{log}"), None);
                if r.status == 200 && r.json["status"] == "Succeeded" {
                    break;
                }
                assert!(Instant::now() < end, "node {i}: log {log} is not Succeeded: {}", r.text);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn cluster_fifo_across_nodes_and_the_owner_killed() {
    let receiver = Receiver::start();
    let (setup, dest) = one_destination(&receiver);
    fifo_across_nodes_and_the_owner_killed(Fleet::cluster(&setup), &receiver, &dest);
}

#[test]
fn embedded_fifo_and_the_node_killed() {
    let receiver = Receiver::start();
    let (setup, dest) = one_destination(&receiver);
    fifo_across_nodes_and_the_owner_killed(Fleet::embedded(&setup), &receiver, &dest);
}

pub(crate) fn operate(node: &Server, path: &str) {
    let r = node.admin_as(Some(ADMIN_TOKEN), "POST", path, None);
    assert_eq!(r.status, 200, "POST {path}: {}", r.text);
}

/// A destination paused through a node that does not deliver it stops
/// where it is delivered; resumed through another, it delivers in order.
fn pause_and_resume_on_other_nodes(fleet: Fleet, held_receiver: &Receiver, witness_receiver: &Receiver) {
    let (held, witness) = (two_destinations(held_receiver, witness_receiver).1, witness_of(witness_receiver));
    let owner = fleet.owner(&held);
    let others = fleet.others(owner);
    let (pauser, resumer) = (others[0], others[others.len() - 1]);
    operate(&fleet.nodes[pauser], &format!("/destinations/{}/pause", held.id));
    let all: Vec<usize> = (0..fleet.nodes.len()).collect();
    let sent = send_round(&fleet, &all, 6, "paused");
    wait_first_seen(witness_receiver, &logs_in_order(&sent, &witness));
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let r =
            fleet.nodes[owner].admin_as(Some(ADMIN_TOKEN), "GET", &format!("/destinations/{}/queue", held.id), None);
        if r.json["state"] == "paused" && r.json["depth"] == 6 {
            break;
        }
        assert!(Instant::now() < end, "the owner's queue is not paused with 6 logs: {}", r.text);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(held_receiver.received().is_empty(), "a paused destination got a delivery");
    operate(&fleet.nodes[resumer], &format!("/destinations/{}/resume", held.id));
    let received = wait_first_seen(held_receiver, &logs_in_order(&sent, &held));
    assert_eq!(first_seen(&received), logs_in_order(&sent, &held), "delivered in order once resumed");
}

fn witness_of(receiver: &Receiver) -> Dest {
    Dest::new(2, "production", receiver.url("/witness"))
}

fn two_destinations(held_receiver: &Receiver, witness_receiver: &Receiver) -> (Setup, Dest) {
    let held = Dest::new(1, "production", held_receiver.url("/held"));
    let destinations = vec![held.clone(), witness_of(witness_receiver)];
    (Setup { destinations, retry_schedule_ms: Some(vec![100]), ..Setup::default() }, held)
}

#[test]
fn cluster_operator_actions_apply_where_the_destination_is_delivered() {
    let (held, witness) = (Receiver::start(), Receiver::start());
    let setup = two_destinations(&held, &witness).0;
    pause_and_resume_on_other_nodes(Fleet::cluster(&setup), &held, &witness);
}

#[test]
fn embedded_operator_actions_pause_and_resume() {
    let (held, witness) = (Receiver::start(), Receiver::start());
    let setup = two_destinations(&held, &witness).0;
    pause_and_resume_on_other_nodes(Fleet::embedded(&setup), &held, &witness);
}

/// Killing a NATS server while SENDs arrive loses no acknowledged message
/// and reorders none; a SEND refused meanwhile was not acknowledged.
#[test]
fn cluster_a_nats_server_killed_during_ingest() {
    let receiver = Receiver::start();
    let (setup, dest) = one_destination(&receiver);
    let mut fleet = Fleet::cluster(&setup);
    let tokens: Vec<String> = fleet.nodes.iter().map(|n| n.token()).collect();
    let mut acknowledged = Vec::new();
    let (mut refused, mut why) = (0, Vec::new());
    for n in 0..90 {
        if n == 30 {
            fleet.nats.as_mut().expect("a cluster").kill(0);
        }
        let k = n % 3;
        let reply = fleet.nodes[k].send(&tokens[k], &patient_admin("NewPatient", &format!("ingest-{n}")));
        match reply.status {
            200 => acknowledged.push(Sent::of(&reply)),
            503 => {
                refused += 1;
                why.push(format!("node {k}: {}", reply.text));
            }
            other => panic!("node {k} answered {other}: {}", reply.text),
        }
    }
    assert!(acknowledged.len() >= 60, "the two other servers kept taking SENDs: {refused} refused: {why:#?}");
    let expected = logs_in_order(&acknowledged, &dest);
    let received = wait_first_seen(&receiver, &expected);
    let delivered: Vec<String> = first_seen(&received).into_iter().filter(|l| expected.contains(l)).collect();
    assert_eq!(delivered, expected, "every acknowledged message, in acceptance order");
    fleet.nats.as_mut().expect("a cluster").restart(0);
}

/// Stopping every node and every NATS server and starting them again
/// keeps every message and its outcome, and numbering goes on.
#[test]
fn cluster_a_full_restart() {
    let receiver = Receiver::start();
    let (setup, dest) = one_destination(&receiver);
    let mut fleet = Fleet::cluster(&setup);
    let all = [0, 1, 2];
    let mut sent = send_round(&fleet, &all, 12, "before");
    wait_first_seen(&receiver, &logs_in_order(&sent, &dest));
    for node in &mut fleet.nodes {
        assert!(node.stop().success(), "a node stopped cleanly");
    }
    let nats = fleet.nats.as_mut().expect("a cluster");
    for i in 0..3 {
        nats.kill(i);
    }
    nats.restart_stopped();
    for node in &mut fleet.nodes {
        node.restart();
    }
    let after = send_round(&fleet, &all, 12, "after");
    assert!(after[0].message_id > sent[sent.len() - 1].message_id, "numbering goes on after the restart");
    sent.extend(after);
    let received = wait_first_seen(&receiver, &logs_in_order(&sent, &dest));
    assert_eq!(first_seen(&received), logs_in_order(&sent, &dest), "in acceptance order across the restart");
    for (i, node) in fleet.nodes.iter().enumerate() {
        let log = logs_in_order(&sent, &dest)[0].clone();
        let r = node.admin_as(Some(ADMIN_TOKEN), "GET", &format!("/logs/{log}"), None);
        assert_eq!(r.json["status"], "Succeeded", "node {i} after the restart: {}", r.text);
    }
}

/// Alerts leave once per cluster: every node is configured with the
/// webhook, one holds the duty of sending.
#[test]
fn cluster_alerts_leave_once() {
    let receiver = Receiver::start();
    receiver.script([failing(500), failing(500)]);
    let hook = Receiver::start();
    let dest = Dest::new(1, "production", receiver.url("/flaky"));
    let setup = Setup {
        destinations: vec![dest.clone()],
        retry_schedule_ms: Some(vec![200]),
        alert_webhook_url: Some(hook.url("/alerts")),
        ..Setup::default()
    };
    let fleet = Fleet::cluster(&setup);
    let sent = send_round(&fleet, &[1], 1, "flaky");
    wait_first_seen(&receiver, &logs_in_order(&sent, &dest));
    let listed = eventually("both alerts sent", || {
        let listed = alerts(&fleet.nodes[2], &dest);
        (listed.len() == 2 && listed.iter().all(|a| a["sent"]["webhook"] == true)).then_some(listed)
    });
    assert_eq!(kinds(&listed), ["QueueRecovered", "QueuePaused"]);
    let mut posted: Vec<String> =
        hook.received().iter().map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned()).collect();
    posted.sort();
    let mut ids: Vec<String> = listed.iter().map(|a| a["id"].as_str().unwrap_or_default().to_owned()).collect();
    ids.sort();
    assert_eq!(posted, ids, "each alert posted once, by one node of three");
}

/// A destination retrying when its owner is killed goes on retrying on
/// the node that takes it over, and succeeds once its receiver is back.
#[test]
fn cluster_a_retrying_queue_survives_its_owner() {
    let receiver = Receiver::start();
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    receiver.set_rule(move |_, _| if flag.load(Ordering::SeqCst) { ok() } else { failing(500) });
    let (mut setup, dest) = one_destination(&receiver);
    setup.retry_schedule_ms = Some(vec![300]);
    let mut fleet = Fleet::cluster(&setup);
    let sent = send_round(&fleet, &[0, 1, 2], 3, "retrying");
    let head = logs_in_order(&sent, &dest)[0].clone();
    wait_status(&fleet.nodes[0], &head, "Retrying");
    let owner = fleet.owner(&dest);
    let tried = receiver.received().len();
    fleet.nodes[owner].kill9();
    let survivor = fleet.others(owner)[0];
    receiver.wait_for(|r| r.len() > tried, PATIENCE);
    up.store(true, Ordering::SeqCst);
    let received = wait_first_seen(&receiver, &logs_in_order(&sent, &dest));
    assert_eq!(first_seen(&received), logs_in_order(&sent, &dest));
    let log = wait_status(&fleet.nodes[survivor], &head, "Succeeded");
    let attempts = log["attempts"].as_array().map_or(0, Vec::len);
    assert!(attempts >= 2, "the failed attempts before the kill are kept: {log}");
}

fn ok() -> Behavior {
    Behavior::Status(200, "{}".to_owned())
}

fn failing(code: u16) -> Behavior {
    Behavior::Status(code, "{}".to_owned())
}

/// Ordered lanes on the node that holds the destination: SENDs spread
/// over the nodes keep each key's order.
#[test]
fn cluster_lanes_keep_each_keys_order() {
    let receiver = Receiver::start();
    let mut dest = Dest::new(1, "production", receiver.url("/laned"));
    dest.lanes = Some((".Patient.Identifiers[0].ID".to_owned(), 4));
    let setup = Setup { destinations: vec![dest.clone()], ..Setup::default() };
    let fleet = Fleet::cluster(&setup);
    let tokens: Vec<String> = fleet.nodes.iter().map(|n| n.token()).collect();
    let mut by_key: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut all = Vec::new();
    for n in 0..24 {
        let (k, key) = (n % 3, format!("mrn-{}", n % 4));
        let reply = fleet.nodes[k].send(&tokens[k], &patient_admin("NewPatient", &key));
        assert_eq!(reply.status, 200, "node {k}: {}", reply.text);
        let sent = Sent::of(&reply);
        by_key.entry(key).or_default().push(sent.log(&dest));
        all.push(sent);
    }
    let expected = logs_in_order(&all, &dest);
    let received = receiver.wait_for(|r| expected.iter().all(|l| first_seen(r).contains(l)), PATIENCE);
    let order = first_seen(&received);
    for (key, logs) in by_key {
        let seen: Vec<&String> = order.iter().filter(|l| logs.contains(l)).collect();
        assert_eq!(seen, logs.iter().collect::<Vec<_>>(), "key {key} in acceptance order");
    }
}

/// SENDs arriving at every node at once get one order: message IDs
/// unique and increasing in the order they are delivered, and a key sent
/// to two nodes at once makes one message.
#[test]
fn cluster_concurrent_sends_on_every_node_get_one_order() {
    let receiver = Receiver::start();
    let (setup, dest) = one_destination(&receiver);
    let fleet = Fleet::cluster(&setup);
    let tokens: Vec<String> = fleet.nodes.iter().map(|n| n.token()).collect();
    let (sent, keyed): (Vec<Vec<Sent>>, Vec<Sent>) = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..3)
            .map(|k| {
                let (node, token) = (&fleet.nodes[k], &tokens[k]);
                scope.spawn(move || {
                    (0..40)
                        .map(|n| {
                            let reply = node.send(token, &patient_admin("NewPatient", &format!("node{k}-{n}")));
                            assert_eq!(reply.status, 200, "node {k}: {}", reply.text);
                            Sent::of(&reply)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let keyed: Vec<_> = (0..3)
            .map(|k| {
                let (node, token) = (&fleet.nodes[k], &tokens[k]);
                scope.spawn(move || {
                    let reply = node.send_keyed(token, Some("one-admission"), &patient_admin("NewPatient", "keyed"));
                    assert_eq!(reply.status, 200, "node {k}: {}", reply.text);
                    Sent::of(&reply)
                })
            })
            .collect();
        let sent = senders.into_iter().map(|s| s.join().expect("a sender")).collect();
        (sent, keyed.into_iter().map(|s| s.join().expect("a keyed sender")).collect())
    });
    assert!(keyed.iter().all(|s| s.message_id == keyed[0].message_id), "one message for one key");
    let mut all: Vec<Sent> = sent.into_iter().flatten().collect();
    all.push(keyed.into_iter().next().expect("a keyed SEND"));
    let mut ids: Vec<u64> = all.iter().map(|s| s.message_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "every message has its own ID");
    let expected = logs_in_order(&all, &dest);
    let received = wait_first_seen(&receiver, &expected);
    assert_eq!(first_seen(&received), expected, "delivered in the order of their IDs");
}

/// A log resent through a node that does not deliver its destination is
/// delivered again, at the tail, by the node that does; the audit trail on
/// a third node shows who resent it.
#[test]
fn cluster_a_resend_on_another_node_is_delivered_and_audited() {
    let receiver = Receiver::start();
    let (setup, dest) = one_destination(&receiver);
    let fleet = Fleet::cluster(&setup);
    let sent = send_round(&fleet, &[0, 1, 2], 3, "resend");
    let logs = logs_in_order(&sent, &dest);
    wait_first_seen(&receiver, &logs);
    let owner = fleet.owner(&dest);
    let others = fleet.others(owner);
    let reply = fleet.nodes[others[0]].admin_as(Some(ADMIN_TOKEN), "POST", &format!("/logs/{}/resend", logs[0]), None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let resent = reply.json["id"].as_str().expect("the new log's id").to_owned();
    let received = receiver.wait_for(|r| r.iter().any(|r| r.header("webhook-id") == Some(resent.as_str())), PATIENCE);
    let again = received.iter().find(|r| r.header("webhook-id") == Some(resent.as_str())).expect("the resent log");
    let first = received.iter().find(|r| r.header("webhook-id") == Some(logs[0].as_str())).expect("the first log");
    assert_eq!(again.json(), first.json(), "the same message, sent again");
    // Another node reads it once it has folded the record: moments later.
    let auditor = &fleet.nodes[*others.last().expect("another node")];
    eventually("the resend in the audit trail of another node", || {
        let audit = auditor.admin_get("/audit?limit=100");
        let entries = audit.json["audit"].as_array().cloned().unwrap_or_default();
        entries.iter().any(|e| e["action"].as_str().is_some_and(|a| a.contains("resend"))).then_some(())
    });

    // A replay through the third node: the three messages' logs again, at
    // the tail, delivered in acceptance order by the node that delivers.
    let since = crate::delivery::log(&fleet.nodes[owner], &logs[0])["received_at"].as_str().expect("a time").to_owned();
    let replay = format!("/destinations/{}/replay", dest.id);
    let body = serde_json::json!({ "since": since, "status": ["Succeeded"] });
    let reply = auditor.admin_as(Some(ADMIN_TOKEN), "POST", &replay, Some(&body));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let (first, last) = (reply.json["first_log_id"].as_str(), reply.json["last_log_id"].as_str());
    let (first, last) = (first.expect("the first replayed log").to_owned(), last.expect("the last").to_owned());
    let received = receiver.wait_for(|r| r.iter().any(|r| r.header("webhook-id") == Some(last.as_str())), PATIENCE);
    let seen = first_seen(&received);
    let at = |id: &str| seen.iter().position(|s| s == id).unwrap_or_else(|| panic!("{id} was not delivered"));
    assert!(
        at(&resent) < at(&first) && at(&first) <= at(&last),
        "the replay came after the resend, in order: {seen:?}"
    );
    let replayed = reply.json["resent"].as_u64().unwrap_or(0);
    assert!(replayed >= 3, "the three messages' logs at least: {}", reply.text);
    assert_eq!(seen.len() as u64, 3 + 1 + replayed, "each log delivered, none twice: {seen:?}");
}
