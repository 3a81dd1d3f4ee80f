//! Backups (SPEC §16): `ferrox backup` copies a running engine's data
//! consistently; every message acknowledged before the command started is
//! in the copy, and the copy starts as a normal data directory.

use std::{
    collections::BTreeMap,
    ffi::OsStr,
    path::Path,
    process::Output,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

use crate::{
    client::{Accepted, Client, patient_admin},
    harness::{Options, Server, ferrox},
};

/// Segments small enough that the copy spans several, with a live one.
fn options() -> Options {
    Options { segment_bytes: Some(131072), max_body_bytes: Some(4096), ..Options::default() }
}

fn backup(data_dir: &Path, target: &Path) -> Output {
    ferrox(&[OsStr::new("backup"), target.as_os_str(), OsStr::new("--data-dir"), data_dir.as_os_str()])
}

fn check_backed_up(output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "backup failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("; verified"), "backup did not say it verified the copy: {stdout}");
}

/// The copy holds the log alone: no `LOCK` file of the engine or of the
/// backup's own check.
fn check_no_lock(target: &Path) {
    assert!(!target.join("wal/LOCK").exists(), "the copy holds a LOCK file");
}

/// Starts an engine on the copy in `target` and checks that every message
/// of `acknowledged` is there with its logs, and that it takes new SENDs.
fn check_copy_serves(target: &Path, acknowledged: &[Accepted]) {
    let server = Server::start_on_copy(&options(), Some(target));
    let logs: BTreeMap<String, u64> = server
        .all_logs("", 1000)
        .iter()
        .map(|l| (l["id"].as_str().expect("id").to_owned(), l["message_id"].as_u64().expect("message_id")))
        .collect();
    for a in acknowledged {
        for (log_id, _) in &a.logs {
            assert_eq!(logs.get(log_id), Some(&a.message_id), "acknowledged log {log_id} is not in the copy");
        }
    }
    let last = acknowledged.iter().map(|a| a.message_id).max().unwrap_or(0);
    let next = server.send(&server.token(), &patient_admin("NewPatient", "after-restore")).accepted();
    assert!(next.message_id > last, "message ID {} on the copy is not above {last}", next.message_id);
}

#[test]
fn backup_of_a_running_engine_holds_every_message_acknowledged_before_it() {
    let mut server = Server::start_with(&options());
    let token = server.token();
    let mut acknowledged: Vec<Accepted> = (0..300)
        .map(|i| server.send(&token, &patient_admin("NewPatient", &format!("before-{i}"))).accepted())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let background = Arc::new(Mutex::new(Vec::new()));
    let sender = {
        let (client, token, stop, background) =
            (Client::new(server.base_url().to_owned()), token.clone(), stop.clone(), background.clone());
        thread::spawn(move || {
            for i in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let reply = client.send(&token, &patient_admin("Arrival", &format!("during-{i}")));
                background.lock().expect("the sender's list").push(reply.accepted());
            }
        })
    };
    crate::harness::wait_for("SENDs in the background", std::time::Duration::from_secs(30), || {
        background.lock().expect("the sender's list").len() >= 20
    });
    // Everything answered 200 up to now must be in the copy.
    acknowledged.extend(background.lock().expect("the sender's list").iter().cloned());
    let target = tempfile::tempdir().expect("a directory for the backup");
    let target = target.path().join("backup");
    let output = backup(server.data_dir(), &target);
    stop.store(true, Ordering::SeqCst);
    sender.join().expect("the background sender");
    check_backed_up(&output);
    check_no_lock(&target);
    let sent_during = background.lock().expect("the sender's list").len();
    assert!(sent_during > 20, "the sender did not send while the backup ran");
    assert!(server.stop().success(), "the engine did not stop cleanly: {}", server.server_log());
    let names: Vec<String> = std::fs::read_dir(target.join("wal"))
        .expect("the copy's wal")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    let segments = names.iter().filter(|n| n.ends_with(".seg")).count();
    assert!(segments >= 2, "the copy holds {names:?}, not sealed segments and the active one");
    check_copy_serves(&target, &acknowledged);
}

#[test]
fn backup_of_a_stopped_engine_restores_it_whole() {
    let mut server = Server::start_with(&options());
    let token = server.token();
    let acknowledged: Vec<Accepted> =
        (0..25).map(|i| server.send(&token, &patient_admin("Discharge", &format!("stopped-{i}"))).accepted()).collect();
    assert!(server.stop().success(), "the engine did not stop cleanly: {}", server.server_log());
    let target = tempfile::tempdir().expect("an empty directory for the backup");
    check_backed_up(&backup(server.data_dir(), target.path()));
    check_no_lock(target.path());
    let verify = ferrox(&[OsStr::new("wal"), OsStr::new("verify"), target.path().as_os_str()]);
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success() && stdout.contains("\nok: "), "wal verify of the copy: {stdout}");
    check_copy_serves(target.path(), &acknowledged);
}

#[test]
fn backup_refuses_a_target_that_is_not_empty() {
    let mut server = Server::start_with(&options());
    server.send(&server.token(), &patient_admin("NewPatient", "one")).accepted();
    let target = tempfile::tempdir().expect("a directory for the backup");
    std::fs::write(target.path().join("notes.txt"), "keep me").expect("writing a file");
    let output = backup(server.data_dir(), target.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a backup went into a directory that was not empty");
    assert!(stderr.contains("is not empty"), "the refusal does not say why: {stderr}");
    let names: Vec<_> =
        std::fs::read_dir(target.path()).expect("listing").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names, ["notes.txt"], "the refused backup wrote to the directory");
    assert!(server.stop().success());
}
