//! Fencing in cluster mode (SPEC §17): a node frozen past its lease (a
//! long pause, a stopped VM) wakes believing it still delivers its
//! destinations. Nothing it decided before the freeze may land after the
//! node that took over: its attempt's outcome is refused, and it sends
//! nothing more until it holds the destination again.

use std::{path::Path, sync::Arc};

use ferrox::{
    cluster::{ClusterSettings, StreamJournal},
    history::History,
    journal::{Event, Journal as _},
    ledger::Ledger,
    model::{Id, LogStatus},
    state::State,
};

use crate::{
    cluster_engine::{Fleet, send_round},
    delivery::{Dest, PATIENCE, Setup, eventually, log, logs_in_order, wait_first_seen, wait_status, webhook_ids},
    harness::Server,
    nats::NatsCluster,
    receiver::{Behavior, Receiver},
};

/// A process stopped with SIGSTOP, continued when dropped.
struct Frozen<'a>(&'a Server);

impl<'a> Frozen<'a> {
    fn stop(node: &'a Server) -> Self {
        node.signal(libc::SIGSTOP);
        Self(node)
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.0.signal(libc::SIGCONT);
    }
}

/// What a woken node logs once it knows it lost the destination: its
/// outcome was refused, or its lease round found the lease gone.
fn knows_it_lost(node: &Server, dest: &Dest) -> bool {
    let said = node.server_log();
    said.contains("another node took this destination over")
        || said.lines().any(|l| l.contains("destination leases lost") && l.contains(&dest.id))
}

#[test]
fn cluster_a_frozen_owner_wakes_fenced_off() {
    let receiver = Receiver::start();
    // The owner's first attempt is held until the owner is frozen.
    receiver.script([Behavior::Held(200, "{}".to_owned())]);
    let dest = Dest::new(1, "production", receiver.url("/orders"));
    let setup = Setup { destinations: vec![dest.clone()], retry_schedule_ms: Some(vec![100]), ..Setup::default() };
    let fleet = Fleet::cluster(&setup);
    let mut sent = send_round(&fleet, &[0], 1, "before");
    receiver.wait_for(|r| !r.is_empty(), PATIENCE);
    let owner = fleet.owner(&dest);
    let others = fleet.others(owner);

    let frozen = Frozen::stop(&fleet.nodes[owner]);
    sent.extend(send_round(&fleet, &others, 2, "while-frozen"));
    let logs = logs_in_order(&sent, &dest);
    // Another node takes the destination over and delivers from the last
    // recorded outcome: the held log again, then the rest.
    let received = receiver.wait_for(|r| r.len() >= 4, PATIENCE);
    assert_eq!(webhook_ids(&received), [logs[0].clone(), logs[0].clone(), logs[1].clone(), logs[2].clone()]);
    // The frozen owner's attempt is answered 200 while it is stopped, so
    // the answer is there the moment it wakes.
    receiver.release();
    drop(frozen);
    eventually("the woken node to know it lost the destination", || {
        knows_it_lost(&fleet.nodes[owner], &dest).then_some(())
    });

    // The cluster goes on, with the woken node taking SENDs (and perhaps
    // the destination again, under a new lease).
    sent.extend(send_round(&fleet, &[owner], 1, "after-wake"));
    let logs = logs_in_order(&sent, &dest);
    wait_first_seen(&receiver, &logs);
    let received = receiver.received();
    assert_eq!(
        webhook_ids(&received),
        [logs[0].clone(), logs[0].clone(), logs[1].clone(), logs[2].clone(), logs[3].clone()],
        "the woken node sent nothing of its own"
    );
    for (i, node) in fleet.nodes.iter().enumerate() {
        wait_status(node, &logs[3], "Succeeded");
        let first = log(node, &logs[0]);
        assert_eq!(first["status"], "Succeeded", "node {i}: {first}");
        let attempts = first["attempts"].as_array().map_or(0, Vec::len);
        assert_eq!(attempts, 1, "node {i}: only the new holder's attempt is recorded: {first}");
    }
    let said = fleet.nodes[owner].server_log();
    let how = if said.contains("another node took this destination over") {
        "its outcome was refused"
    } else {
        "its lease round found the lease gone"
    };
    eprintln!("the woken node stood down: {how}");
}

/// A ledger on the cluster's journal stream, as a node opens it.
fn node_ledger(nats: &NatsCluster, i: usize, dir: &Path) -> Ledger {
    let settings = ClusterSettings {
        nats_urls: vec![nats.url(i)],
        node_name: format!("node-{i}"),
        replicas: 3,
        lease: ClusterSettings::DEFAULT_LEASE,
    };
    let journal = StreamJournal::open(&settings).expect("opening the journal stream");
    let history =
        History::open(&dir.join(format!("history-{i}")), journal.released_below()).expect("opening the history");
    let state = ferrox::server::rebuild(&journal, history).expect("replaying the stream");
    Ledger::new(Arc::new(journal), state)
}

/// The check behind the fence, on real servers: an outcome decided by the
/// holder of an older takeover is refused once a newer takeover is in the
/// stream, even when its node had not folded it yet; the newer holder's
/// is taken.
#[test]
fn cluster_an_outcome_under_an_older_takeover_is_refused() {
    let nats = NatsCluster::start(3);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (old, new) = (node_ledger(&nats, 0, dir.path()), node_ledger(&nats, 1, dir.path()));
    let destination = Id(0xde57);
    let taken = |node: &str, epoch| Event::DeliveryTaken { destination_id: destination, node: node.into(), epoch };
    let outcome = [Event::LogStatusChanged { log_id: Id(7), status: LogStatus::Succeeded, at_ms: 1, reason: None }];
    let holds = |node: &'static str, epoch: u64| {
        move |state: &State| state.takers.get(&destination).is_some_and(|t| t.node == node && t.epoch == epoch)
    };

    old.record(&taken("node-0", 5)).expect("the first takeover");
    let before = old.state().read().position;
    let later = new.record(&taken("node-1", 9)).expect("the later takeover");
    assert!(later > before);

    let refused = old.record_batch_if(&outcome, &holds("node-0", 5)).expect("the stream answers");
    assert_eq!(refused, None, "an outcome under the older takeover was appended");
    assert_eq!(old.state().read().position, later, "the old holder folded the later takeover and wrote nothing");
    let taker = old.state().read().takers.get(&destination).cloned().expect("a taker");
    assert_eq!((taker.node.as_str(), taker.epoch), ("node-1", 9));

    let recorded = new.record_batch_if(&outcome, &holds("node-1", 9)).expect("the stream answers");
    assert_eq!(recorded, Some(later + 1), "the new holder's outcome follows its takeover");
}
