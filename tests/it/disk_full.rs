//! A full disk heals without a restart (SPEC §11): on a real tmpfs the test
//! mounts (which needs root; CI runs as root), SENDs get 503 in
//! `Meta.Errors` and `/readyz` 503 while no segment can be created; once
//! space returns, SENDs are taken again within seconds, the destination
//! whose outcomes could not be journaled carries on, and every message
//! answered 200 is delivered, in order.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{
    client::{Reply, patient_admin},
    delivery::{Dest, PATIENCE, eventually},
    harness::{ADMIN_TOKEN, EHR, Options, Server, ferrox},
    receiver::{Behavior, Receiver},
};

/// A tmpfs of a fixed size, mounted for the test and unmounted after.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Self {
        let dir = tempfile::tempdir().expect("a mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs, which needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Fills the file system at `dir` with a ballast file until it is full.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("ballast");
    let mut file = std::fs::File::create(&path).expect("creating the ballast");
    let chunk = vec![0xb5u8; 16 << 10];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    path
}

fn config(receiver: &Receiver, lab: &Dest) -> String {
    format!(
        r#"admin_token = "{ADMIN_TOKEN}"
max_body_bytes = 65536
[storage]
segment_bytes = 262144
[[sources]]
id = "{}"
name = "EHR"
api_key = "{}"
secret = "{}"
[[destinations]]
id = "{}"
name = "Lab"
url = "{}"
environment = "production"
[[subscriptions]]
source = "EHR"
destination = "Lab"
data_model = "PatientAdmin"
"#,
        EHR.id,
        EHR.api_key,
        EHR.secret,
        lab.id,
        receiver.url("/lab")
    )
}

fn admission(n: usize) -> serde_json::Value {
    let mut body = patient_admin("NewPatient", &format!("full-{n}"));
    body["Patient"]["Notes"] = json!("n".repeat(4000));
    body
}

fn readyz(server: &Server) -> Reply {
    server.get("/readyz")
}

#[test]
fn a_full_disk_answers_503_and_heals_once_space_returns_without_a_restart() {
    let tmpfs = Tmpfs::mount(4 << 20);
    let receiver = Receiver::start();
    // The receiver holds its answers until the disk is full, so that the
    // destination's outcomes meet the full disk too.
    receiver.set_rule(|_, _| Behavior::Held(200, "{}".to_owned()));
    let lab = Dest::new(1, "production", receiver.url("/lab"));
    let options = Options {
        config_text: Some(config(&receiver, &lab)),
        data_parent: Some(tmpfs.path().to_owned()),
        ..Options::default()
    };
    let mut server = Server::start_with(&options);
    let token = server.token();
    assert_eq!(readyz(&server).status, 200, "{}", readyz(&server).text);
    let ballast = fill(tmpfs.path());

    // Until the segments there are full, messages are taken; then 503.
    let mut acked = Vec::new();
    let refused = loop {
        let reply = server.send(&token, &admission(acked.len()));
        if reply.status != 200 {
            break reply;
        }
        acked.push(reply.accepted().message_id);
        assert!(acked.len() < 1000, "the disk never filled");
    };
    let text = refused.redox_error(503);
    assert!(text.contains("No space left on device"), "{text}");
    assert!(refused.header("retry-after").is_some(), "a 503 without Retry-After");
    let not_ready = readyz(&server);
    assert_eq!(not_ready.status, 503, "{}", not_ready.text);
    assert!(not_ready.text.contains("No space left on device"), "{}", not_ready.text);
    assert_eq!(server.get("/healthz").status, 200, "liveness while full");
    for n in 0..3 {
        server.send(&token, &admission(10_000 + n)).redox_error(503);
    }
    // The destination gets its answers now; their outcomes cannot be
    // journaled, so it waits, and tries again.
    receiver.release();
    eventually("an outcome the journal refused", || {
        server.server_log().contains("a delivery outcome could not be journaled").then_some(())
    });
    assert_eq!(server.send(&token, &admission(20_000)).status, 503, "the disk is still full");

    // Space returns: no restart, and SENDs are taken again within seconds.
    std::fs::remove_file(&ballast).expect("removing the ballast");
    let freed = Instant::now();
    let taken = eventually("a SEND taken after space returned", || {
        let reply = server.send(&token, &admission(acked.len()));
        (reply.status == 200).then(|| reply.accepted().message_id)
    });
    let healed = freed.elapsed();
    assert!(healed < Duration::from_secs(10), "SENDs came back after {healed:?}");
    eprintln!("SENDs were taken again {healed:?} after space returned");
    acked.push(taken);
    eventually("/readyz to answer 200", || (readyz(&server).status == 200).then_some(()));

    // Every acknowledged message reaches the destination, first time in
    // acceptance order, though its outcomes could not be journaled a while.
    let seen = receiver.wait_for(
        |r| {
            let ids: Vec<u64> = r.iter().filter_map(|r| r.json()["Meta"]["Message"]["ID"].as_u64()).collect();
            acked.iter().all(|id| ids.contains(id))
        },
        PATIENCE,
    );
    let mut first: Vec<u64> = Vec::new();
    for id in seen.iter().filter_map(|r| r.json()["Meta"]["Message"]["ID"].as_u64()) {
        if !first.contains(&id) {
            first.push(id);
        }
    }
    assert_eq!(first, acked, "first deliveries out of acceptance order");
    eventually("every log Succeeded", || {
        let pending = server.admin_get("/logs?status=Pending&limit=10");
        let retrying = server.admin_get("/logs?status=Retrying&limit=10");
        (pending.json["logs"].as_array().is_some_and(Vec::is_empty)
            && retrying.json["logs"].as_array().is_some_and(Vec::is_empty))
        .then_some(())
    });
    assert!(server.stop().success(), "ferrox did not stop cleanly:\n{}", server.server_log());
    let wal = server.data_dir().join("wal");
    let left: Vec<_> = std::fs::read_dir(&wal)
        .expect("the WAL directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "partial segments left: {left:?}");
    let verify = ferrox(&[std::ffi::OsStr::new("wal"), std::ffi::OsStr::new("verify"), server.data_dir().as_os_str()]);
    assert!(verify.status.success(), "wal verify: {}", String::from_utf8_lossy(&verify.stdout));
}
