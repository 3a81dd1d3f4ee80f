//! Which node delivers which destination, against a real 3-server NATS
//! JetStream cluster: heartbeats, rendezvous hashing and leases
//! (`src/cluster/owners.rs`).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use ferrox::cluster::{self, ClusterSettings, Leases, Owner, preferred};
use tokio::{sync::watch, task::JoinHandle};

use crate::nats::NatsCluster;

const LEASE: Duration = Duration::from_millis(4_000);
const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];

/// One node's owner, running as a task.
struct Running {
    held: watch::Receiver<BTreeMap<String, u64>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn start(url: String, node: &str, destinations: &[String]) -> Running {
    let settings = ClusterSettings { nats_urls: vec![url], node_name: node.into(), replicas: 3, lease: LEASE };
    let context = cluster::connect(&settings).await.expect("connecting");
    let owner = Owner::open(&context, &settings).await.expect("joining");
    let held = owner.held();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(owner.run(destinations.to_vec(), stop_rx));
    Running { held, stop, task }
}

/// Each running node's held destinations; panics if two hold one.
fn shares(nodes: &BTreeMap<&'static str, Running>) -> BTreeMap<String, &'static str> {
    let mut holder = BTreeMap::new();
    for (node, running) in nodes {
        for destination in running.held.borrow().keys() {
            if let Some(other) = holder.insert(destination.clone(), *node) {
                panic!("{destination} held by {other} and {node} at once");
            }
        }
    }
    holder
}

/// Waits, checking shares every 20 ms, until every destination is held by
/// the node it prefers among `live`; returns how long that took.
async fn settle(nodes: &BTreeMap<&'static str, Running>, destinations: &[String], live: &[&str]) -> Duration {
    let began = Instant::now();
    let expected: BTreeMap<String, &str> =
        destinations.iter().map(|d| (d.clone(), preferred(d, live.iter().copied()).expect("a live node"))).collect();
    loop {
        if shares(nodes) == expected {
            return began.elapsed();
        }
        assert!(began.elapsed() < LEASE * 5, "never settled on {expected:?}; shares {:?}", shares(nodes));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn every_destination_has_one_owner_and_a_dead_owners_pass_on_within_the_lease() {
    let nats = NatsCluster::start(3);
    let destinations: Vec<String> = (0..24).map(|i| format!("dest-{i}")).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let mut nodes = BTreeMap::new();
        for (i, node) in NODES.into_iter().enumerate() {
            nodes.insert(node, start(nats.url(i), node, &destinations).await);
        }
        settle(&nodes, &destinations, &NODES).await;
        let share = |node: &str| shares(&nodes).values().filter(|n| **n == node).count();
        assert!(NODES.iter().all(|n| share(n) > 0), "every node delivers some destinations");

        // The shares are the leases in the bucket, with their tokens.
        let settings =
            ClusterSettings { nats_urls: vec![nats.url(2)], node_name: "observer".into(), replicas: 3, lease: LEASE };
        let context = cluster::connect(&settings).await.expect("connecting");
        let leases = Leases::open(&context, "observer", 3, LEASE / 2).await.expect("the lease bucket");
        for (node, running) in &nodes {
            let held = running.held.borrow().clone();
            for (destination, epoch) in held {
                let (holder, revision) = leases.holder(&destination).await.expect("reading").expect("held");
                assert_eq!(holder, *node);
                assert!(revision >= epoch);
            }
        }

        // node-2 dies: no leases given up, no heartbeat removed.
        let dead = nodes.remove("node-2").expect("node-2");
        let dead_share: BTreeSet<String> = dead.held.borrow().keys().cloned().collect();
        assert!(!dead_share.is_empty());
        dead.task.abort();
        let taken_after = settle(&nodes, &destinations, &["node-1", "node-3"]).await;
        eprintln!("a dead owner's {} destinations passed on after {taken_after:?}", dead_share.len());
        assert!(taken_after <= LEASE, "a dead owner's destinations passed on after {taken_after:?}");

        // node-2 comes back and takes its own destinations back.
        nodes.insert("node-2", start(nats.url(1), "node-2", &destinations).await);
        settle(&nodes, &destinations, &NODES).await;
        let back: BTreeSet<String> = nodes["node-2"].held.borrow().keys().cloned().collect();
        assert_eq!(back, dead_share, "node-2 holds what it held before");

        // node-3 leaves cleanly: its destinations pass on at once.
        let leaving = nodes.remove("node-3").expect("node-3");
        let began = Instant::now();
        leaving.stop.send_replace(true);
        leaving.task.await.expect("node-3 left");
        assert!(leaving.held.borrow().is_empty());
        settle(&nodes, &destinations, &["node-1", "node-2"]).await;
        let taken_after = began.elapsed();
        eprintln!("a departing owner's destinations passed on after {taken_after:?}");
        assert!(taken_after < LEASE / 2, "a departing owner's destinations passed on after {taken_after:?}");
        for running in nodes.values() {
            running.stop.send_replace(true);
        }
    });
}

/// A node cut off from every NATS server stops holding its destinations
/// before its leases can run out (half a lease after the last keep), so
/// it never delivers beside a node that took them over.
#[test]
fn a_node_cut_off_from_the_cluster_stops_holding_before_its_leases_run_out() {
    let mut nats = NatsCluster::start(3);
    let destinations: Vec<String> = (0..4).map(|i| format!("dest-{i}")).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let node = start(nats.url(0), "node-1", &destinations).await;
        let began = Instant::now();
        while node.held.borrow().len() < destinations.len() {
            assert!(began.elapsed() < LEASE * 5, "the only node never took every destination");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for i in 0..3 {
            nats.kill(i);
        }
        let cut = Instant::now();
        while !node.held.borrow().is_empty() {
            assert!(cut.elapsed() < LEASE / 2, "still holding {:?} after {:?}", node.held.borrow(), cut.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!("a cut-off node stopped holding {:?} after it was cut off", cut.elapsed());
        node.task.abort();
        drop(node.stop);
    });
}

/// Waits until the live nodes' lowest folded position reads `expected`:
/// a heartbeat is read from any server, which may not have applied the
/// latest one yet.
async fn folded_becomes(members: &cluster::Members, expected: u64, what: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let folded = members.folded_by_all().await.expect("reading the heartbeats");
        if folded == expected {
            return;
        }
        assert!(Instant::now() < end, "{what}: the nodes have folded through {folded}, not {expected}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A heartbeat tells how far its node folded the journal stream, and
/// retention reads the lowest among the live nodes: a node that has told
/// nothing (an empty heartbeat, as an earlier version writes) holds the
/// purge back entirely, and a node gone no longer does.
#[test]
fn heartbeats_tell_how_far_every_live_node_has_folded() {
    let nats = NatsCluster::start(3);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let open = |i: usize, node: &'static str| {
            let url = nats.url(i);
            async move {
                let settings =
                    ClusterSettings { nats_urls: vec![url], node_name: node.into(), replicas: 3, lease: LEASE };
                let context = cluster::connect(&settings).await.expect("connecting");
                (Owner::open(&context, &settings).await.expect("joining"), context)
            }
        };
        let (mut a, _) = open(0, "node-1").await;
        let (mut b, context) = open(1, "node-2").await;
        let members = a.members();
        folded_becomes(&members, 0, "no heartbeat yet").await;
        a.folded().store(120, std::sync::atomic::Ordering::SeqCst);
        b.folded().store(95, std::sync::atomic::Ordering::SeqCst);
        a.round(&[]).await.expect("a round");
        b.round(&[]).await.expect("a round");
        folded_becomes(&members, 95, "the slower node's position").await;
        b.folded().store(130, std::sync::atomic::Ordering::SeqCst);
        b.round(&[]).await.expect("a round");
        folded_becomes(&members, 120, "the lower position").await;

        // A node of an earlier version beats with an empty value.
        let bucket = context.get_key_value(cluster::NODES).await.expect("the node bucket");
        bucket.put("node-old", bytes::Bytes::new()).await.expect("an empty heartbeat");
        folded_becomes(&members, 0, "an old node holds the purge back").await;
        bucket.delete("node-old").await.expect("the old node leaves");
        b.leave().await;
        folded_becomes(&members, 120, "a node gone holds nothing back").await;
    });
}
