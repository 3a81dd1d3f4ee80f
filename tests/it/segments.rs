//! Storage through the server (SPEC §9, §10): messages that fill several
//! write-ahead log segments come back intact after a restart, and the
//! `[storage] segment_bytes` setting is usable.

use std::ffi::OsStr;

use serde_json::{Value, json};

use crate::{
    client::patient_admin,
    harness::{Options, Rng, Server, ferrox, seed},
};

/// A NewPatient message carrying about `bytes` of seeded random text.
fn big_message(rng: &mut Rng, n: usize, bytes: usize) -> Value {
    let chunk: String = (0..4096).map(|_| char::from(b'a' + rng.below(26) as u8)).collect();
    let mut blob = format!("message {n}: ");
    while blob.len() + chunk.len() < bytes {
        blob.push_str(&chunk);
    }
    let mut body = patient_admin("NewPatient", &format!("big-{n}"));
    body["Patient"]["Notes"] = json!(blob);
    body
}

fn segment_files(server: &Server) -> usize {
    let dir = server.data_dir().join("wal");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    entries.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "seg")).count()
}

/// Sends `count` messages of about `bytes` each, restarts, and checks that
/// every payload is intact and the log spans at least `min_segments`.
fn fill_restart_and_check(options: &Options, count: usize, bytes: usize, min_segments: usize, test: &str) {
    let mut rng = Rng::new(seed(test));
    let mut server = Server::start_with(options);
    let token = server.token();
    let mut sent = Vec::new();
    for n in 0..count {
        let body = big_message(&mut rng, n, bytes);
        let accepted = server.send(&token, &body).accepted();
        sent.push((accepted.logs[0].0.clone(), body));
    }
    let status = server.stop();
    assert!(status.success(), "ferrox exited with {status}; stderr:\n{}", server.server_log());
    let segments = segment_files(&server);
    assert!(segments >= min_segments, "{count} messages of {bytes} bytes fill only {segments} segment(s)");
    let verify = ferrox(&[OsStr::new("wal"), OsStr::new("verify"), server.data_dir().as_os_str()]);
    assert!(verify.status.success(), "wal verify: {}", String::from_utf8_lossy(&verify.stderr));
    server.restart();
    for (log_id, body) in &sent {
        let log = server.admin_get(&format!("/logs/{log_id}"));
        assert_eq!(log.status, 200, "{}", log.text);
        assert!(log.json["payload"] == *body, "the payload of log {log_id} changed across segments and a restart");
    }
}

#[test]
fn messages_spanning_segments_survive_a_restart() {
    // The smallest segment that holds the largest record the server asks
    // the log for (16 MiB plus headers), rounded to 4 KiB pages.
    let options = Options { segment_bytes: Some(17 << 20), max_body_bytes: Some(4 << 20), ..Options::default() };
    fill_restart_and_check(&options, 6, 4_000_000, 2, "messages_spanning_segments_survive_a_restart");
}

#[test]
fn a_one_mebibyte_segment_size_is_usable() {
    // A 64 KiB body limit fits a 1 MiB segment many times over.
    let options = Options { segment_bytes: Some(1 << 20), max_body_bytes: Some(64 << 10), ..Options::default() };
    fill_restart_and_check(&options, 40, 60_000, 3, "a_one_mebibyte_segment_size_is_usable");
}
