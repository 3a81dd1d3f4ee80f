//! Start-up refusals (SPEC §9, §10): a configuration with unknown keys or
//! an unreadable `ca_file`, and damage inside acknowledged data, stop the
//! server with a message that says what and where; secrets never reach the
//! log in clear.

use std::{ffi::OsStr, io::Read, os::unix::fs::FileExt, path::PathBuf};

use serde_json::json;

use crate::{
    client::patient_admin,
    harness::{EHR, Server, ferrox, serve_refuses},
};

#[test]
fn unknown_config_keys_are_named() {
    let cases = [
        ("listen_port = 3\n", "listen_port"),
        ("[storage]\nsegment_size = 1048576\n", "segment_size"),
        ("[auth]\ntoken_lifetime = 60\n", "token_lifetime"),
        (
            "[[destinations]]\nname = \"a\"\nurl = \"http://127.0.0.1:9/\"\nenvironment = \"staging\"\ncolour = \"red\"\n",
            "colour",
        ),
        ("admin_token = \"short\"\n", "admin_token"),
    ];
    for (text, named) in cases {
        let stderr = serve_refuses(text);
        assert!(stderr.contains(named), "the error does not name {named}:\n{stderr}");
    }
}

#[test]
fn an_unreadable_ca_file_is_named() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let missing = dir.path().join("no-such-ca.pem");
    let empty = dir.path().join("empty-ca.pem");
    std::fs::write(&empty, "not a certificate\n").expect("writing empty-ca.pem");
    for path in [missing, empty] {
        let text = format!("[delivery]\nca_file = {}\n", serde_json::to_string(&path).expect("a path"));
        let stderr = serve_refuses(&text);
        let named = path.to_str().expect("a UTF-8 temp path");
        assert!(
            stderr.contains("delivery.ca_file") && stderr.contains(named),
            "the error does not name {named}:\n{stderr}"
        );
    }
}

/// The segment files of the server's log, in name order.
fn segments(server: &Server) -> Vec<PathBuf> {
    let dir = server.data_dir().join("wal");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    files.sort();
    files
}

/// Records are written from the start of a segment and these tests write
/// little, so only this much of each (zero-filled) segment is searched.
const SEARCHED_BYTES: u64 = 1 << 20;

/// Where `needle` occurs in the segments: the file and offset.
fn find(server: &Server, needle: &[u8]) -> Option<(PathBuf, usize)> {
    segments(server).into_iter().find_map(|path| {
        let mut bytes = Vec::new();
        let file = std::fs::File::open(&path).expect("opening a segment");
        file.take(SEARCHED_BYTES).read_to_end(&mut bytes).expect("reading a segment");
        bytes.windows(needle.len()).position(|w| w == needle).map(|at| (path, at))
    })
}

#[test]
fn damage_inside_acknowledged_data_stops_start_up() {
    let mut server = Server::start();
    let token = server.token();
    let marker = "DAMAGE-MARKER-0123456789";
    let mut damaged = patient_admin("NewPatient", "damaged");
    damaged["Patient"]["Notes"] = json!(marker);
    server.send(&token, &damaged).accepted();
    for i in 0..5 {
        server.send(&token, &patient_admin("Discharge", &format!("after-{i}"))).accepted();
    }
    assert!(server.stop().success());
    let (segment, at) = find(&server, marker.as_bytes()).expect("the message is in a segment");
    let file = std::fs::OpenOptions::new().write(true).open(&segment).expect("opening the segment");
    file.write_all_at(b"E", at as u64).expect("damaging the segment");
    let name = segment.file_name().expect("file name").to_string_lossy().into_owned();
    let verify = ferrox(&[OsStr::new("wal"), OsStr::new("verify"), server.data_dir().as_os_str()]);
    let report = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(!verify.status.success(), "wal verify passed a damaged log:\n{report}");
    assert!(report.contains(&name) && report.contains("offset"), "wal verify does not say where:\n{report}");
    let stderr = server.restart_refused();
    assert!(stderr.contains(&name) && stderr.contains("offset"), "start-up does not say where:\n{stderr}");
}

#[test]
fn secrets_never_reach_the_log_in_clear() {
    let mut server = Server::start();
    let created = server.admin_post("/sources", &json!({ "name": "Portal" }));
    let generated = created.json["secret"].as_str().expect("a generated secret").to_owned();
    let given = "a-secret-the-operator-chose";
    assert_eq!(server.admin_post("/sources", &json!({ "name": "Kiosk", "secret": given })).status, 201);
    assert!(server.stop().success());
    for secret in [EHR.secret, generated.as_str(), given] {
        assert_eq!(find(&server, secret.as_bytes()), None, "the secret {secret:?} is stored in clear");
    }
}

/// Appends a record of `kind` to a stopped server's journal, as a newer
/// build would.
fn append_record(server: &Server, kind: u16, payload: &[u8]) {
    let options = ferrox_storage::Options { segment_bytes: 67_108_864, ..ferrox_storage::Options::default() };
    let wal = ferrox_storage::Wal::open(server.data_dir().join("wal"), options).expect("opening the journal");
    wal.append_sync(kind, payload).expect("appending");
}

#[test]
fn a_record_of_an_unknown_kind_or_version_stops_start_up_and_is_named() {
    let cases = [(0x0902, "MessageAccepted version 2"), (0x5001, "record type 80 version 1")];
    for (kind, named) in cases {
        let mut server = Server::start();
        server.send(&server.token(), &patient_admin("NewPatient", "before")).accepted();
        assert!(server.stop().success());
        append_record(&server, kind, &[0u8; 64]);
        let stderr = server.restart_refused();
        assert!(stderr.contains(named) && stderr.contains("newer"), "start-up does not name {named}:\n{stderr}");
        let verify = ferrox(&[OsStr::new("wal"), OsStr::new("verify"), server.data_dir().as_os_str()]);
        let report = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
        assert!(!verify.status.success() && report.contains(named), "wal verify passed it:\n{report}");
    }
}
