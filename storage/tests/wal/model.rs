//! Model-based test: random append / sync / checkpoint / crash / reopen
//! sequences on the lazy disk, checked against a `Vec` of what was appended.

use ferrox_storage::{Options, Wal, sim::LazyDisk};
use proptest::{
    prelude::*,
    test_runner::{Config, RngSeed, TestCaseError, TestRunner},
};

use crate::common::{contents, open_lazy, seed};

#[derive(Debug, Clone)]
enum Op {
    Append {
        len: usize,
        kind: u16,
        fill: u8,
    },
    Sync,
    /// Checkpoint at this fraction (of 256) of the durable records.
    Checkpoint(u8),
    /// Power cut: unsynced writes survive at random, picked by the seed.
    Crash(u64),
    /// Process crash: unwritten buffers are lost, the page cache is not.
    Reopen,
    /// Power cut between the write of a batch and its `fdatasync`.
    CrashMidSync(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0usize..700, 1u16..4, any::<u8>()).prop_map(|(len, kind, fill)| Op::Append { len, kind, fill }),
        3 => Just(Op::Sync),
        1 => any::<u8>().prop_map(Op::Checkpoint),
        2 => any::<u64>().prop_map(Op::Crash),
        1 => Just(Op::Reopen),
        2 => any::<u64>().prop_map(Op::CrashMidSync),
    ]
}

struct Model {
    disk: LazyDisk,
    options: Options,
    wal: Option<Wal>,
    /// Every record appended and not lost, by sequence number - 1.
    appended: Vec<(u16, Vec<u8>)>,
    /// Records known durable: a sync covering them returned.
    durable: u64,
    checkpoint: u64,
}

impl Model {
    fn wal(&self) -> &Wal {
        self.wal.as_ref().expect("open")
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Append { len, kind, fill } => {
                let payload = vec![fill; len];
                let seq = self.wal().append(kind, &payload).map_err(fail)?;
                prop_assert_eq!(seq, self.appended.len() as u64 + 1);
                self.appended.push((kind, payload));
            }
            Op::Sync => {
                self.wal().sync().map_err(fail)?;
                self.durable = self.appended.len() as u64;
                prop_assert_eq!(self.wal().synced_through(), self.durable);
                if self.durable > 0 {
                    let last = self.wal().get(self.durable).map_err(fail)?.expect("synced record is readable");
                    prop_assert_eq!(last.payload(), &self.appended[self.durable as usize - 1].1[..]);
                }
            }
            Op::Checkpoint(frac) => {
                let seq = (self.durable + 1) * u64::from(frac) / 255;
                self.wal().checkpoint(seq).map_err(fail)?;
                self.checkpoint = self.checkpoint.max(seq);
            }
            Op::Crash(seed) => {
                self.wal = None;
                self.disk = self.disk.crash(seed);
                self.recover(seed)?;
            }
            Op::Reopen => {
                self.wal = None;
                self.recover(1)?;
            }
            Op::CrashMidSync(seed) => {
                self.disk.fail_syncs(true);
                let result = self.wal().sync();
                self.disk.fail_syncs(false);
                prop_assert!(result.is_err() || self.wal().synced_through() == self.appended.len() as u64);
                self.wal = None;
                self.disk = self.disk.crash(seed);
                self.recover(seed)?;
            }
        }
        Ok(())
    }

    /// Reopens and checks the recovered log against the model, then checks
    /// that recovering a second time (after another crash) changes nothing.
    fn recover(&mut self, seed: u64) -> Result<(), TestCaseError> {
        let wal = open_lazy(&self.disk, self.options.clone());
        let got = contents(&wal);
        let last = wal.synced_through();
        prop_assert!(last >= self.durable, "lost synced records: {} recovered, {} synced", last, self.durable);
        prop_assert!(
            last <= self.appended.len() as u64,
            "phantom records: {} recovered, {} appended",
            last,
            self.appended.len()
        );
        prop_assert!(wal.first_seq() <= self.checkpoint.max(1), "retained records start after the checkpoint");
        prop_assert_eq!(got.first().map_or(last + 1, |r| r.0), wal.first_seq());
        for (i, (seq, kind, payload)) in got.iter().enumerate() {
            prop_assert_eq!(*seq, wal.first_seq() + i as u64, "records are consecutive");
            let (want_kind, want) = &self.appended[*seq as usize - 1];
            prop_assert!(kind == want_kind && payload == want, "record {} differs", seq);
        }
        prop_assert_eq!(got.last().map_or(wal.first_seq() - 1, |r| r.0), last);
        drop(wal);
        self.disk = self.disk.crash(seed.rotate_left(17) ^ 0x5eed);
        let again = open_lazy(&self.disk, self.options.clone());
        prop_assert_eq!(contents(&again), got, "recovering twice differs from recovering once");
        self.appended.truncate(last as usize);
        self.durable = last;
        self.wal = Some(again);
        Ok(())
    }
}

fn fail(e: ferrox_storage::Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn run(ops: &[Op], prepare_ahead: bool) -> Result<(), TestCaseError> {
    let disk = LazyDisk::new();
    let options =
        Options { segment_bytes: 4096, max_record_bytes: 1024, prepare_ahead, seed: Some(3), ..Options::default() };
    let wal = Some(open_lazy(&disk, options.clone()));
    let mut model = Model { disk, options, wal, appended: Vec::new(), durable: 0, checkpoint: 0 };
    for op in ops {
        model.apply(op)?;
    }
    model.apply(&Op::Crash(99))
}

#[test]
fn random_crashes_keep_every_synced_record_and_only_a_prefix() {
    let seed = seed("model");
    let config = Config { cases: 96, rng_seed: RngSeed::Fixed(seed), failure_persistence: None, ..Config::default() };
    let strategy = (proptest::collection::vec(op(), 1..120), any::<bool>());
    TestRunner::new(config)
        .run(&strategy, |(ops, prepare_ahead)| run(&ops, prepare_ahead))
        .unwrap_or_else(|e| panic!("{e}\nseed {seed}"));
}
