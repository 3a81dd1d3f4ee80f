//! Configuration from the environment (SPEC §16): `FERROX_<KEY>` over the
//! file, the command line over both; host names for `listen`; running
//! with no file at all; and the example configuration's walk-through.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    client::{Client, patient_admin},
    delivery::eventually,
    harness::{ADMIN_TOKEN, Options, Server, ferrox_command},
};

/// How long a server may take to print its listening line or to exit.
const DEADLINE: Duration = Duration::from_secs(30);

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A `ferrox serve` started with `args` and `env` only (no harness
/// configuration), its stderr kept in `dir`.
struct Bare {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::path::PathBuf,
}

impl Bare {
    fn spawn(dir: &Path, args: &[&str], vars: &[(String, String)]) -> Self {
        let stderr = dir.join("stderr.log");
        let log = std::fs::File::create(&stderr).expect("creating the stderr file");
        let mut child = ferrox_command(vars)
            .current_dir(dir)
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawning ferrox");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self { child, lines, stderr }
    }

    /// The base URL once it listens, or its stderr if it exits first.
    fn listening(&mut self) -> Result<String, String> {
        match self.lines.recv_timeout(DEADLINE) {
            Ok(line) => Ok(line.strip_prefix("ferrox listening on ").expect("the listening line").to_owned()),
            Err(_) => {
                let _ = self.child.kill();
                let status = self.child.wait().expect("waiting for ferrox");
                Err(format!("({status}) {}", self.stderr_text()))
            }
        }
    }

    /// Waits for the process to exit by itself; its stderr.
    fn refused(&mut self) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for ferrox") {
                assert!(!status.success(), "ferrox exited successfully: {}", self.stderr_text());
                return self.stderr_text();
            }
            assert!(Instant::now() < end, "ferrox did not stop; stderr:\n{}", self.stderr_text());
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PatientAdmin body of about `bytes` bytes.
fn body_of(bytes: usize) -> Value {
    let mut body = patient_admin("NewPatient", "0000012345");
    body["Note"] = json!("x".repeat(bytes));
    body
}

#[test]
fn the_environment_overrides_the_file_and_the_command_line_overrides_both() {
    let elsewhere = tempfile::tempdir().expect("a temp dir");
    let server = Server::start_with(&Options {
        max_body_bytes: Some(1 << 20),
        env: env(&[
            ("FERROX_MAX_BODY_BYTES", "4096"),
            ("FERROX_AUTH__TOKEN_LIFETIME_S", "120"),
            // The harness passes --listen 127.0.0.1:0 and --data-dir: they win.
            ("FERROX_LISTEN", "127.0.0.1:1"),
            ("FERROX_DATA_DIR", elsewhere.path().to_str().expect("a UTF-8 path")),
        ]),
        ..Options::default()
    });
    let token = server.token();
    let big = server.send(&token, &body_of(8000));
    assert_eq!(big.status, 413, "the variable's 4096 bytes, not the file's 1 MiB: {}", big.text);
    let small = server.send(&token, &body_of(1000));
    assert_eq!(small.status, 200, "{}", small.text);
    let signed_in = server.authenticate(crate::harness::EHR.api_key, crate::harness::EHR.secret);
    let expires = signed_in.json["expires"].as_str().expect("expires").to_owned();
    let expires_ms = ferrox::clock::parse_rfc3339(&expires).expect("an RFC 3339 time");
    let now_ms = i64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis(),
    )
    .expect("fits");
    let lifetime_s = (expires_ms - now_ms) / 1000;
    assert!((100..=130).contains(&lifetime_s), "a nested key from the environment: expires in {lifetime_s} s");
    assert!(!server.base_url().ends_with(":1"), "--listen wins: {}", server.base_url());
    assert!(server.data_dir().join("wal").is_dir(), "--data-dir wins");
    assert!(!elsewhere.path().join("wal").exists(), "FERROX_DATA_DIR lost to --data-dir");
}

#[test]
fn a_variable_naming_no_key_stops_the_start_and_is_named() {
    let dir = tempfile::tempdir().expect("a temp dir");
    for (name, value, said) in [
        ("FERROX_LISTEN_PORT", "8080", "has no key 'listen_port'"),
        ("FERROX_DELIVERY__TIMEOUT", "10", "[delivery] has no key 'timeout'"),
        ("FERROX_MAX_BODY_BYTES", "lots", "lots"),
    ] {
        let vars = env(&[(name, value), ("FERROX_DATA_DIR", "data"), ("FERROX_LISTEN", "127.0.0.1:0")]);
        let stderr = Bare::spawn(dir.path(), &[], &vars).refused();
        assert!(stderr.contains(name) && stderr.contains(said), "{name}: {stderr}");
        assert!(!dir.path().join("data").exists(), "{name}: nothing was written");
    }
}

#[test]
fn the_environment_alone_runs_the_engine_and_says_how_to_configure_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let vars = env(&[
        ("FERROX_ADMIN_TOKEN", ADMIN_TOKEN),
        ("FERROX_LISTEN", "localhost:0"),
        ("FERROX_DATA_DIR", "from-env"),
        ("FERROX_DELIVERY__RETRY_SCHEDULE_MS", "[0, 5000]"),
        ("RUST_LOG", "info"),
    ]);
    let mut bare = Bare::spawn(dir.path(), &[], &vars);
    let url = bare.listening().expect("ferrox started");
    assert!(url.starts_with("http://127.0.0.1:") || url.starts_with("http://[::1]:"), "localhost resolved: {url}");
    let client = Client::new(url);
    let destinations = client.admin_get("/destinations");
    assert_eq!(destinations.status, 200, "the admin token from the environment: {}", destinations.text);
    assert!(dir.path().join("from-env/wal").is_dir(), "the data directory from the environment");
    let stderr = eventually("the hint for a missing file", || {
        let text = bare.stderr_text();
        text.contains("no configuration file").then_some(text)
    });
    assert!(stderr.contains("--config examples/ferrox.toml") && stderr.contains("FERROX_"), "{stderr}");
}

#[test]
fn listen_takes_a_host_name_and_one_that_does_not_resolve_is_named() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("a UTF-8 path");
    let config = dir.path().join("ferrox.toml");
    std::fs::write(&config, "listen = \"localhost:0\"\n").expect("writing the config");
    let config = config.to_str().expect("a UTF-8 path");
    let mut named = Bare::spawn(dir.path(), &["--config", config, "--data-dir", data], &[]);
    let url = named.listening().expect("ferrox started on localhost");
    let health = Client::new(url.clone()).get("/healthz");
    assert_eq!(health.status, 200, "{url}: {}", health.text);
    drop(named);
    let args = ["--config", config, "--data-dir", data, "--listen", "no-such-host.invalid:8080"];
    let stderr = Bare::spawn(dir.path(), &args, &[]).refused();
    assert!(stderr.contains("no-such-host.invalid") && stderr.contains("does not resolve"), "{stderr}");
    std::fs::write(dir.path().join("ferrox.toml"), "listen = \"nowhere.invalid:1\"\n").expect("writing the config");
    let stderr = Bare::spawn(dir.path(), &["--config", config, "--data-dir", data], &[]).refused();
    assert!(stderr.contains("ferrox.toml") && stderr.contains("nowhere.invalid"), "{stderr}");
}

/// The example receiver (`examples/receiver.py`) on a free port.
struct ExampleReceiver(Child);

impl ExampleReceiver {
    fn start() -> (Self, String) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the example receiver");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("the receiver's first line");
        // Keep draining, so the receiver never blocks on a full pipe.
        thread::spawn(move || stdout.lines().map_while(Result::ok).for_each(drop));
        let addr = first.trim().strip_prefix("receiver listening on http://").expect("the receiver's address");
        (Self(child), addr.to_owned())
    }
}

impl Drop for ExampleReceiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_example_configuration_runs_the_fhir_and_query_walk_through() {
    let (_receiver, addr) = ExampleReceiver::start();
    let example = include_str!("../../examples/ferrox.toml").replace("127.0.0.1:9100", &addr);
    let server = Server::start_with(&Options { config_text: Some(example), ..Options::default() });
    let admin = Some("change-me-operator-token");
    let signed_in = server.authenticate("ehr-api-key", "ehr-secret-change-me");
    let token = signed_in.json["accessToken"].as_str().expect("an access token").to_owned();

    let bundle = json!({"resourceType": "Bundle", "type": "message", "entry": [
        {"resource": {"resourceType": "MessageHeader",
                      "eventUri": "http://hl7.org/fhir/message-events/admit-notification"}},
        {"resource": {"resourceType": "Patient", "identifier": [{"value": "0000012345"}]}}]});
    let fhir = server.send_fhir(&token, &bundle);
    assert_eq!(fhir.status, 200, "{}", fhir.text);
    assert!(fhir.header("ferrox-message-id").is_some(), "{}", fhir.text);
    let issues = fhir.json["issue"].as_array().expect("an OperationOutcome").clone();
    assert_eq!(issues.len(), 1, "{}", fhir.text);
    assert!(issues[0]["details"]["text"].as_str().is_some_and(|t| t.contains("FHIR Receiver")), "{}", fhir.text);
    let log_id = issues[0]["diagnostics"].as_str().expect("the log ID").to_owned();
    eventually("the FHIR message delivered to the example receiver", || {
        let log = server.admin_as(admin, "GET", &format!("/logs/{log_id}"), None);
        (log.json["status"] == "Succeeded").then_some(())
    });

    let query = json!({"Meta": {"DataModel": "ClinicalSummary", "EventType": "PatientQuery"},
                       "Patient": {"Identifiers": [{"ID": "0000012345", "IDType": "MR"}]}});
    let answer = server.post_raw("/query", Some(&token), Some("application/json"), query.to_string().as_bytes());
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["Meta"]["EventType"], "PatientQueryResponse", "{}", answer.text);
    assert_eq!(answer.json["Patient"]["Identifiers"][0]["ID"], "0000012345", "{}", answer.text);
    let logs = server.admin_as(admin, "GET", "/logs?type=Query", None);
    let logs = logs.json["logs"].as_array().expect("logs").clone();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0]["status"], "Succeeded", "{logs:?}");
}
