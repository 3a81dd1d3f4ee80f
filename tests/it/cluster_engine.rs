//! Cluster mode end to end (SPEC §17): three `ferrox serve` nodes on three
//! NATS servers, every process ended by its PID. The same cases run on one
//! node on its embedded log, where "the owner" is that node.

use std::{
    fmt::Write as _,
    time::{Duration, Instant},
};

use ferrox::cluster::{self, ClusterSettings, Leases};

use crate::{
    client::patient_admin,
    delivery::{Dest, Sent, Setup, first_seen, logs_in_order, wait_first_seen},
    harness::{ADMIN_TOKEN, Options, Server},
    nats::NatsCluster,
    receiver::Receiver,
};

const LEASE_MS: u64 = 2_000;

/// The engine under test: three cluster nodes, or one embedded node.
struct Fleet {
    nats: Option<NatsCluster>,
    nodes: Vec<Server>,
}

impl Fleet {
    fn cluster(setup: &Setup) -> Self {
        let nats = NatsCluster::start(3);
        let nodes = (0..3).map(|i| Server::start_with(&node_options(setup, &nats, i))).collect();
        Self { nats: Some(nats), nodes }
    }

    fn embedded(setup: &Setup) -> Self {
        let options = Options { config_text: Some(setup.toml()), ..Options::default() };
        Self { nats: None, nodes: vec![Server::start_with(&options)] }
    }

    /// The node that delivers `dest` now: the holder of its lease.
    fn owner(&self, dest: &Dest) -> usize {
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
    fn others(&self, not: usize) -> Vec<usize> {
        let others: Vec<usize> = (0..self.nodes.len()).filter(|i| *i != not).collect();
        if others.is_empty() { vec![not] } else { others }
    }
}

fn node_options(setup: &Setup, nats: &NatsCluster, i: usize) -> Options {
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
fn send_round(fleet: &Fleet, through: &[usize], count: usize, tag: &str) -> Vec<Sent> {
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
