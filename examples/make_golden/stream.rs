//! A cluster's journal stream, written out as a golden directory's
//! `stream.txt`: one record per line, `sequence key kind payload-hex`,
//! from the stream's first record (those below it were purged).

use std::{fmt::Write as _, path::Path, time::Duration};

use ferrox::cluster::{self, ClusterLog, ClusterSettings};

/// Writes every record of the stream behind `nats_url` to `path`.
pub fn dump(nats_url: &str, path: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let records = runtime.block_on(async {
        let settings = ClusterSettings {
            nats_urls: vec![nats_url.to_owned()],
            node_name: "golden-dump".into(),
            replicas: 1,
            lease: Duration::from_millis(2_000),
        };
        let context = cluster::connect(&settings).await.expect("connecting to NATS");
        let log = ClusterLog::open(context, 1).await.expect("opening the journal stream");
        let first = log.first_sequence().await.expect("the stream's first sequence");
        log.read(first).await.expect("reading the journal stream")
    });
    let mut text = String::new();
    for r in &records {
        let hex: String = r.payload.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(text, "{} {} {} {hex}", r.sequence, r.key, r.kind);
    }
    std::fs::write(path, text).expect("writing the stream");
    eprintln!("{} records of the journal stream, from {}", records.len(), records.first().map_or(0, |r| r.sequence));
}
