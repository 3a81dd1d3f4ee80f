//! The example receivers of `docs/receiving.md` (`examples/receivers/`),
//! each as a real process behind the real engine: every message is
//! processed once, in acceptance order; a request with a bad or stale
//! signature is refused with 401 and not processed; a `webhook-id` seen
//! before is answered 200 and not processed again.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{OnceLock, mpsc},
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;
use tempfile::TempDir;

use crate::delivery::{Dest, Setup, eventually, logs_in_order, send};

/// The destination's signing secret, given to the receiver too.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYqr";
/// Messages sent through the engine per receiver.
const MESSAGES: usize = 12;
/// How long a receiver may take to listen (the Rust one is built first).
const START_DEADLINE: Duration = Duration::from_secs(30);
const LISTENING_PREFIX: &str = "receiver listening on ";

/// An example receiver running as a child process, keeping what it
/// processed in a file.
struct ReceiverProcess {
    child: Child,
    url: String,
    out: PathBuf,
    _dir: TempDir,
}

impl ReceiverProcess {
    fn python() -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/receivers/receiver.py");
        let mut command = Command::new("python3");
        command.arg(script);
        Self::spawn(command)
    }

    fn rust() -> Self {
        Self::spawn(Command::new(rust_receiver()))
    }

    fn spawn(mut command: Command) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let out = dir.path().join("processed.jsonl");
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--secret", SECRET, "--out"])
            .arg(&out)
            .env_remove("WEBHOOK_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines, listening) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let line = listening.recv_timeout(START_DEADLINE).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("{command:?} did not say it listens within {START_DEADLINE:?}: {:?}", child.wait())
        });
        let url = line.strip_prefix(LISTENING_PREFIX).unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Self { child, url: url.trim().to_owned(), out, _dir: dir }
    }

    /// What it processed, in order.
    fn processed(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"))).collect()
    }

    /// POSTs `body` with `headers` straight to the receiver.
    fn post(&self, headers: &[(&str, String)], body: &str) -> u16 {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).proxy(None).build().new_agent();
        let mut request = agent.post(format!("{}/ferrox", self.url)).header("Content-Type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send(body).unwrap_or_else(|e| panic!("POST to the receiver: {e}")).status().as_u16()
    }
}

impl Drop for ReceiverProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Rust receiver, built once by cargo in this test build's profile.
fn rust_receiver() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_rust_receiver).clone()
}

fn build_rust_receiver() -> PathBuf {
    // This test runs from <target dir>/<profile>/deps.
    let exe = std::env::current_exe().expect("the test's path");
    let profile = exe.parent().and_then(Path::parent).and_then(Path::file_name).and_then(|p| p.to_str());
    let profile = match profile {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args(["build", "--example", "receiver", "--message-format=json-render-diagnostics", "--profile", profile])
        .arg("--manifest-path")
        .arg(manifest)
        .stderr(Stdio::inherit())
        .output()
        .expect("running cargo build");
    assert!(output.status.success(), "cargo build --example receiver failed");
    let artifacts = String::from_utf8_lossy(&output.stdout);
    artifacts
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "receiver")
        .and_then(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the receiver's executable")
}

fn now_s() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970");
    i64::try_from(now.as_secs()).expect("seconds fit i64")
}

/// Standard Webhooks headers for `body`, signed with `secret`.
fn signed(secret: &str, id: &str, timestamp_s: i64, body: &str) -> Vec<(&'static str, String)> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").expect("a whsec_ secret")).expect("base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp_s}.{body}").as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp_s.to_string()),
        ("webhook-signature", format!("v1,{signature}")),
    ]
}

fn ids(processed: &[Value]) -> Vec<String> {
    processed.iter().map(|r| r["webhook_id"].as_str().unwrap_or("<none>").to_owned()).collect()
}

/// Sends `MESSAGES` through the engine to `receiver`, then talks to it
/// directly with bad signatures and a repeated `webhook-id`.
fn check_receiver(receiver: &ReceiverProcess) {
    let mut dest = Dest::new(1, "production", format!("{}/ferrox", receiver.url));
    dest.signing_secret = Some(SECRET.to_owned());
    let server = Setup { destinations: vec![dest.clone()], ..Setup::default() }.start();
    let token = server.token();
    let sent: Vec<_> = (0..MESSAGES).map(|i| send(&server, &token, &format!("mrn-{i}"))).collect();
    let expected = logs_in_order(&sent, &dest);

    let processed = eventually("the receiver to process every message", || {
        let processed = receiver.processed();
        (processed.len() >= MESSAGES).then_some(processed)
    });
    assert_eq!(ids(&processed), expected, "processed once each, in acceptance order");
    for (record, sent) in processed.iter().zip(&sent) {
        assert_eq!(record["message_id"], sent.message_id.to_string(), "{record}");
        assert_eq!(record["body"]["Meta"]["Message"]["ID"], sent.message_id, "{record}");
        assert!(record["received_at"].as_str().is_some_and(|t| !t.is_empty()), "{record}");
    }
    for log in &expected {
        eventually("each log to be Succeeded", || {
            (server.admin_get(&format!("/logs/{log}")).json["status"] == "Succeeded").then_some(())
        });
    }

    // Refused: not signed, signed with another secret, stale, tampered.
    let body = json!({ "Meta": { "DataModel": "PatientAdmin", "EventType": "NewPatient" } }).to_string();
    let other = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let mut tampered = signed(SECRET, "forged-1", now_s(), &body);
    tampered[1].1 = (now_s() + 1).to_string();
    let refused = [
        vec![],
        signed(other, "forged-2", now_s(), &body),
        signed(SECRET, "forged-3", now_s() - 600, &body),
        signed(SECRET, "forged-4", now_s() + 600, &body),
        tampered,
    ];
    for headers in &refused {
        assert_eq!(receiver.post(headers, &body), 401, "headers {headers:?}");
    }
    assert_eq!(ids(&receiver.processed()), expected, "a refused request is not processed");

    // A repeat of a processed webhook-id, well signed: 200, not processed.
    let first = &expected[0];
    assert_eq!(receiver.post(&signed(SECRET, first, now_s(), &body), &body), 200);
    assert_eq!(ids(&receiver.processed()), expected, "a repeated webhook-id is processed once");

    // A new one, signed by the test as ferrox signs: processed once.
    let fresh = signed(SECRET, "msg_from_the_test", now_s(), &body);
    assert_eq!(receiver.post(&fresh, &body), 200);
    assert_eq!(receiver.post(&fresh, &body), 200);
    let mut with_fresh = expected.clone();
    with_fresh.push("msg_from_the_test".to_owned());
    assert_eq!(ids(&receiver.processed()), with_fresh);
}

#[test]
fn the_python_receiver_processes_each_message_once_in_order_and_refuses_bad_signatures() {
    check_receiver(&ReceiverProcess::python());
}

#[test]
fn the_rust_receiver_processes_each_message_once_in_order_and_refuses_bad_signatures() {
    check_receiver(&ReceiverProcess::rust());
}
