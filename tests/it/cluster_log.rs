//! Cluster mode's footing against a real 3-server NATS JetStream cluster:
//! the journal stream and the destination leases (`src/cluster/`).

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use bytes::Bytes;
use ferrox::cluster::{self, ClusterError, ClusterLog, ClusterSettings, Expect, Leases};

use crate::nats::NatsCluster;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

fn settings(urls: Vec<String>, node: &str, lease: Duration) -> ClusterSettings {
    ClusterSettings { nats_urls: urls, node_name: node.into(), replicas: 3, lease }
}

async fn log_on(urls: Vec<String>, node: &str) -> ClusterLog {
    let context = cluster::connect(&settings(urls, node, ClusterSettings::DEFAULT_LEASE)).await.expect("connecting");
    ClusterLog::open(context, 3).await.expect("opening the journal stream")
}

/// Appends `id` until a quorum acknowledges it, as a node does for a SEND
/// it has not yet answered: the same ID each time, so it is stored once.
async fn append_until_acknowledged(log: &ClusterLog, key: &str, payload: Bytes, id: &str) -> u64 {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        match log.append(key, 1, payload.clone(), id, Expect::Nothing).await {
            Ok(sequence) => return sequence,
            Err(e) => assert!(Instant::now() < end, "append {id} was never acknowledged: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stream's leader, asked again while one is being elected.
async fn leader_of(log: &ClusterLog) -> String {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        match log.leader().await {
            Ok(leader) => return leader,
            Err(e) => assert!(Instant::now() < end, "the stream has no leader: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn records_appended_through_every_server_read_back_in_one_order() {
    let nats = NatsCluster::start(3);
    let runtime = runtime();
    runtime.block_on(async {
        let logs = [
            log_on(vec![nats.url(0)], "node-1").await,
            log_on(vec![nats.url(1)], "node-2").await,
            log_on(vec![nats.url(2)], "node-3").await,
        ];
        // Three writers at once, one on each server.
        let writers = logs.iter().enumerate().map(|(w, log)| async move {
            let mut acknowledged = Vec::new();
            for n in 0..100 {
                let payload = Bytes::from(format!("writer {w} record {n}"));
                let sequence = log.append("engine", 3, payload, &format!("w{w}-{n}"), Expect::Nothing).await;
                acknowledged.push(sequence.expect("appended"));
            }
            acknowledged
        });
        let acknowledged = futures_util::future::join_all(writers).await;
        for (w, sequences) in acknowledged.iter().enumerate() {
            assert!(sequences.windows(2).all(|p| p[0] < p[1]), "writer {w}'s records out of order: {sequences:?}");
        }
        let all: HashSet<u64> = acknowledged.iter().flatten().copied().collect();
        assert_eq!(all.len(), 300, "every append has its own sequence");

        let first = logs[0].read(1).await.expect("reading through server 1");
        assert_eq!(first.len(), 300);
        assert_eq!(first.iter().map(|r| r.sequence).collect::<HashSet<_>>(), all);
        for record in &first {
            assert_eq!((record.key.as_str(), record.kind), ("engine", 3));
            let text = std::str::from_utf8(&record.payload).expect("text");
            let (w, n) = text.strip_prefix("writer ").and_then(|t| t.split_once(" record ")).expect("a record's text");
            let (w, n): (usize, usize) = (w.parse().expect("w"), n.parse().expect("n"));
            assert_eq!(acknowledged[w][n], record.sequence, "{text} read at the sequence it was acknowledged at");
        }
        for (i, log) in logs.iter().enumerate().skip(1) {
            assert_eq!(log.read(1).await.expect("reading"), first, "server {} reads the same records", i + 1);
        }
        let tail = logs[2].read(first[250].sequence).await.expect("reading the tail");
        assert_eq!(tail, first[250..], "a read from a sequence starts there");
        assert_eq!(logs[1].read(10_000).await.expect("reading past the end"), Vec::new());
    });
}

#[test]
fn killing_the_stream_leader_during_ingest_loses_no_acknowledged_record() {
    let mut nats = NatsCluster::start(3);
    let runtime = runtime();
    runtime.block_on(async {
        let log = log_on(nats.urls(), "node-1").await;
        let mut acknowledged: BTreeMap<u64, String> = BTreeMap::new();
        let mut killed = None;
        for n in 0..400 {
            if n == 150 {
                let leader = leader_of(&log).await;
                let i = nats.index_of(&leader);
                nats.kill(i);
                killed = Some(i);
            }
            let id = format!("send-{n}");
            let sequence = append_until_acknowledged(&log, "engine", Bytes::from(id.clone()), &id).await;
            assert!(acknowledged.insert(sequence, id).is_none(), "two appends acknowledged at {sequence}");
        }
        let survivor_leader = leader_of(&log).await;
        let killed = killed.expect("a server was killed");
        assert_ne!(nats.index_of(&survivor_leader), killed, "the killed server no longer leads");

        let records = log.read(1).await.expect("reading");
        let read: BTreeMap<u64, String> =
            records.iter().map(|r| (r.sequence, String::from_utf8(r.payload.to_vec()).expect("text"))).collect();
        assert_eq!(read, acknowledged, "every acknowledged record, once, at its sequence, and nothing else");

        // The killed server comes back and catches up.
        nats.restart(killed);
        let only_it = log_on(vec![nats.url(killed)], "node-2").await;
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            match only_it.read(1).await {
                Ok(again) if again == records => break,
                _ => assert!(Instant::now() < end, "the restarted server never caught up"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn an_append_expecting_an_older_sequence_is_refused() {
    let nats = NatsCluster::start(3);
    let runtime = runtime();
    runtime.block_on(async {
        let old_owner = log_on(vec![nats.url(0)], "node-1").await;
        let new_owner = log_on(vec![nats.url(1)], "node-2").await;
        let payload = || Bytes::from_static(b"outcome");

        let first = old_owner.append("lab-1", 9, payload(), "a", Expect::LastOnSubject(0)).await.expect("first");
        // Another destination's records do not count against this one.
        old_owner.append("lab-2", 9, payload(), "b", Expect::Nothing).await.expect("another destination");
        // The new owner takes the destination over, after the record it saw.
        let takeover =
            new_owner.append("lab-1", 10, payload(), "c", Expect::LastOnSubject(first)).await.expect("takeover");
        // The old owner, still believing `first` is the last, is fenced off.
        match old_owner.append("lab-1", 9, payload(), "d", Expect::LastOnSubject(first)).await {
            Err(ClusterError::Conflict { expected }) => assert_eq!(expected, first),
            other => panic!("the stale owner's append should be refused, got {other:?}"),
        }
        new_owner.append("lab-1", 9, payload(), "e", Expect::LastOnSubject(takeover)).await.expect("the owner");

        let last = new_owner.last_sequence().await.expect("last");
        match old_owner.append("engine", 1, payload(), "f", Expect::LastSequence(last - 1)).await {
            Err(ClusterError::Conflict { .. }) => {}
            other => panic!("an append after a stale last sequence should be refused, got {other:?}"),
        }
        old_owner.append("engine", 1, payload(), "g", Expect::LastSequence(last)).await.expect("at the last");

        // A batch expecting a stale last sequence is refused whole.
        let batch = [(2, payload()), (3, payload())];
        match old_owner.append_batch_after("engine", &batch, "stale-batch", last).await {
            Err(ClusterError::Conflict { expected }) => assert_eq!(expected, last),
            other => panic!("a batch after a stale last sequence should be refused, got {other:?}"),
        }
        let stored = old_owner.append_batch_after("engine", &batch, "batch", last + 1).await.expect("at the last");
        assert_eq!(stored, vec![last + 2, last + 3]);

        let keys: Vec<(String, u16)> =
            new_owner.read(1).await.expect("reading").into_iter().map(|r| (r.key, r.kind)).collect();
        let expected =
            [("lab-1", 9), ("lab-2", 9), ("lab-1", 10), ("lab-1", 9), ("engine", 1), ("engine", 2), ("engine", 3)];
        assert_eq!(keys, expected.map(|(k, n)| (k.to_owned(), n)), "the refused appends left nothing");
    });
}

#[test]
fn a_lease_has_one_holder_and_passes_on_when_not_kept() {
    let nats = NatsCluster::start(3);
    let lease = Duration::from_millis(1_500);
    let runtime = runtime();
    runtime.block_on(async {
        let open = |i: usize, node: &'static str| {
            let urls = vec![nats.url(i)];
            async move {
                let context = cluster::connect(&settings(urls, node, lease)).await.expect("connecting");
                Leases::open(&context, node, 3, lease).await.expect("opening the leases")
            }
        };
        let a = open(0, "node-a").await;
        let b = open(1, "node-b").await;
        assert_eq!((a.duration(), b.duration()), (lease, lease));

        let mut held = a.acquire("lab-1").await.expect("acquiring").expect("a free lease is taken");
        assert_eq!(b.acquire("lab-1").await.expect("acquiring"), None, "a held lease is not taken");
        assert_eq!(b.holder("lab-1").await.expect("holder"), Some(("node-a".into(), held.revision)));
        let other = b.acquire("lab-2").await.expect("acquiring").expect("another destination's lease");

        // Kept for three lease periods, it stays with its holder.
        let kept_until = Instant::now() + lease * 3;
        let epoch = held.epoch;
        while Instant::now() < kept_until {
            assert!(a.keep(&mut held).await.expect("keeping"), "a kept lease stays");
            assert_eq!(b.acquire("lab-1").await.expect("acquiring"), None);
            tokio::time::sleep(lease / 4).await;
        }
        assert_eq!(held.epoch, epoch, "keeping a lease keeps its fencing token");
        assert!(held.revision > epoch);

        // Not kept, it passes to the next node that asks, within the lease.
        let last_kept = Instant::now();
        assert!(a.keep(&mut held).await.expect("keeping"));
        let taken = loop {
            if let Some(taken) = b.acquire("lab-1").await.expect("acquiring") {
                break taken;
            }
            assert!(last_kept.elapsed() < lease * 4, "the lease never passed on");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let waited = last_kept.elapsed();
        assert!(waited >= lease / 2, "the lease passed on after {waited:?}, before it ran out");
        assert!(taken.epoch > held.revision, "the new holder's fencing token is newer");
        assert!(!a.keep(&mut held).await.expect("keeping"), "the old holder learns it lost the lease");

        // Released, it is free well before it would have run out. Taking
        // it reads the key from any server (direct reads), which may not
        // have applied the release yet: a few tries may be needed.
        b.release(taken).await.expect("releasing");
        let released = Instant::now();
        while a.acquire("lab-1").await.expect("acquiring").is_none() {
            assert!(released.elapsed() < lease / 2, "a released lease was not free within half a lease");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        b.release(other).await.expect("releasing");
        assert_eq!(a.holder("lab-2").await.expect("holder"), None);
        assert!(matches!(a.acquire("lab.1").await, Err(ClusterError::BadName(_))));
    });
}

#[test]
fn a_batch_is_stored_whole_and_in_one_piece() {
    let nats = NatsCluster::start(3);
    let runtime = runtime();
    runtime.block_on(async {
        let batcher = log_on(vec![nats.url(0)], "node-1").await;
        let single = log_on(vec![nats.url(1)], "node-2").await;
        // Batches of 1–12 records, while another node appends one at a time.
        let singles = async {
            for n in 0..60 {
                single
                    .append("engine", 2, Bytes::from(format!("single {n}")), &format!("s{n}"), Expect::Nothing)
                    .await
                    .expect("a single append");
            }
        };
        let batches = async {
            let mut committed = Vec::new();
            for b in 1..=12usize {
                let records: Vec<(u16, Bytes)> =
                    (0..b).map(|r| (7, Bytes::from(format!("batch {b} record {r}")))).collect();
                let sequences = batcher.append_batch("lab-1", &records, &format!("batch-{b}")).await.expect("a batch");
                assert_eq!(sequences.len(), b);
                assert!(sequences.windows(2).all(|p| p[1] == p[0] + 1), "batch {b} in one piece: {sequences:?}");
                committed.push((b, sequences));
            }
            committed
        };
        let ((), committed) = futures_util::join!(singles, batches);
        let read: BTreeMap<u64, (String, u16, String, Option<String>)> = single
            .read(1)
            .await
            .expect("reading")
            .into_iter()
            .map(|r| (r.sequence, (r.key, r.kind, String::from_utf8(r.payload.to_vec()).expect("text"), r.id)))
            .collect();
        assert_eq!(read.len(), 60 + (1..=12).sum::<usize>());
        for (b, sequences) in committed {
            for (r, sequence) in sequences.iter().enumerate() {
                // Each record keeps its batch's ID: a node knows its own batch.
                let expected = ("lab-1".to_owned(), 7, format!("batch {b} record {r}"), Some(format!("batch-{b}")));
                assert_eq!(read[sequence], expected);
            }
        }
        assert_eq!(batcher.append_batch("lab-1", &[], "empty").await.expect("nothing to append"), Vec::<u64>::new());
        let bad_id = batcher.append_batch("lab-1", &[(7, Bytes::from_static(b"x"))], "no.dots").await;
        assert!(matches!(bad_id, Err(ClusterError::BadName(_))), "{bad_id:?}");
        assert_eq!(single.read(1).await.expect("reading").len(), read.len(), "refused batches left nothing");
    });
}
