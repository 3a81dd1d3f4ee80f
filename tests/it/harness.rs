//! Runs the real `ferrox` binary as a child process on a temporary data
//! directory, with a configuration whose objects the tests know by ID.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader},
    ops::Deref,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::client::Client;

/// The operator's bearer token.
pub const ADMIN_TOKEN: &str = "it-admin-token-0123456789abcdef";

/// A configured source: ID, name, api_key and secret.
#[derive(Debug, Clone, Copy)]
pub struct SourceFixture {
    pub id: &'static str,
    pub name: &'static str,
    pub api_key: &'static str,
    pub secret: &'static str,
}

/// The EHR: subscribed to everything the tests route.
pub const EHR: SourceFixture = SourceFixture {
    id: "11111111-1111-4111-8111-111111111111",
    name: "EHR",
    api_key: "it-ehr-key",
    secret: "it-ehr-secret-0123456789",
};

/// A second source, subscribed only to PatientAdmin for the lab.
pub const CLINIC: SourceFixture = SourceFixture {
    id: "22222222-2222-4222-8222-222222222222",
    name: "Clinic",
    api_key: "it-clinic-key",
    secret: "it-clinic-secret-0123456789",
};

/// Gets every PatientAdmin event from both sources.
pub const LAB: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
/// Gets PatientAdmin NewPatient and Arrival from the EHR.
pub const ANALYTICS: &str = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
/// Gets Scheduling from the EHR only: it exists but takes no PatientAdmin.
pub const BILLING: &str = "cccccccc-cccc-4ccc-8ccc-cccccccccccc";
/// Gets FHIR messages from the EHR.
pub const FHIR_SINK: &str = "dddddddd-dddd-4ddd-8ddd-dddddddddddd";

/// How long the server may take to print its listening line.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long the server may take to exit after a signal.
const EXIT_DEADLINE: Duration = Duration::from_secs(20);
const READY_PREFIX: &str = "ferrox listening on ";

/// Settings a test may change in the configuration file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub max_body_bytes: Option<usize>,
    pub token_lifetime_s: Option<u64>,
    pub segment_bytes: Option<u64>,
    /// Top-level settings, as TOML lines.
    pub top_level: Option<String>,
    /// Where to make the data directory (a file system of the test's).
    pub data_parent: Option<PathBuf>,
    /// The whole configuration file, replacing the default one and the
    /// settings above (the delivery tests bring their own destinations).
    pub config_text: Option<String>,
    /// Environment variables for the server (`FERROX_<KEY>` among them);
    /// no other `FERROX_` variable reaches it.
    pub env: Vec<(String, String)>,
}

fn config_toml(options: &Options) -> String {
    if let Some(text) = &options.config_text {
        return text.clone();
    }
    let mut toml = format!("admin_token = \"{ADMIN_TOKEN}\"\n");
    if let Some(lines) = &options.top_level {
        let _ = writeln!(toml, "{lines}");
    }
    if let Some(bytes) = options.max_body_bytes {
        let _ = writeln!(toml, "max_body_bytes = {bytes}");
    }
    if let Some(seconds) = options.token_lifetime_s {
        let _ = writeln!(toml, "[auth]\ntoken_lifetime_s = {seconds}");
    }
    if let Some(bytes) = options.segment_bytes {
        let _ = writeln!(toml, "[storage]\nsegment_bytes = {bytes}");
    }
    for s in [EHR, CLINIC] {
        let _ = writeln!(
            toml,
            "[[sources]]\nid = \"{}\"\nname = \"{}\"\napi_key = \"{}\"\nsecret = \"{}\"",
            s.id, s.name, s.api_key, s.secret
        );
    }
    let destinations = [(LAB, "Lab", "production"), (ANALYTICS, "Analytics", "staging")];
    let more = [(BILLING, "Billing", "development"), (FHIR_SINK, "FhirSink", "production")];
    // These tests look at the front half: destinations are disabled, so logs
    // wait in their queues, undelivered.
    let enabled = "enabled = false";
    for (id, name, environment) in destinations.into_iter().chain(more) {
        let _ = writeln!(
            toml,
            "[[destinations]]\nid = \"{id}\"\nname = \"{name}\"\nurl = \"http://127.0.0.1:9/{name}\"\nenvironment = \"{environment}\"\n{enabled}"
        );
    }
    let subscriptions = [
        (EHR.id, LAB, "PatientAdmin", "[]"),
        (EHR.id, ANALYTICS, "PatientAdmin", "[\"NewPatient\", \"Arrival\"]"),
        (EHR.id, BILLING, "Scheduling", "[]"),
        (EHR.id, FHIR_SINK, "FHIR", "[]"),
        (CLINIC.id, LAB, "PatientAdmin", "[]"),
    ];
    for (source, destination, model, events) in subscriptions {
        let _ = writeln!(
            toml,
            "[[subscriptions]]\nsource_id = \"{source}\"\ndestination_id = \"{destination}\"\ndata_model = \"{model}\"\nevent_types = {events}"
        );
    }
    toml
}

/// A running `ferrox serve`. Dropping it kills the process and removes its
/// data directory.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    data_dir: TempDir,
    /// Holds the configuration file and the server's stderr.
    work_dir: TempDir,
    client: Client,
    env: Vec<(String, String)>,
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&Options::default())
    }

    pub fn start_with(options: &Options) -> Self {
        Self::start_on_copy(options, None)
    }

    /// Starts on a copy of the data directory `data` (when given), which
    /// stays untouched.
    pub fn start_on_copy(options: &Options, data: Option<&Path>) -> Self {
        let data_dir = match &options.data_parent {
            Some(parent) => tempfile::tempdir_in(parent),
            None => tempfile::tempdir(),
        };
        let data_dir = data_dir.expect("creating the data dir");
        if let Some(data) = data {
            copy_tree(data, data_dir.path());
        }
        let work_dir = tempfile::tempdir().expect("creating the work dir");
        std::fs::write(work_dir.path().join("ferrox.toml"), config_toml(options)).expect("writing the config");
        let client = Client::new(String::new());
        let mut server = Self { child: None, data_dir, work_dir, client, env: options.env.clone() };
        server.spawn();
        server
    }

    pub fn base_url(&self) -> &str {
        self.client.base_url()
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.work_dir.path().join("server.log")
    }

    /// What the server wrote to stderr, for failure messages.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{e}");
        }
    }

    /// Starts the process and waits for its listening line; on failure,
    /// reaps it and says why.
    fn try_spawn(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "the server is already running");
        let config = self.work_dir.path().join("ferrox.toml");
        let (child, ready) = spawn_serve(&config, self.data_dir.path(), &self.log_path(), &self.env);
        self.child = Some(child);
        let Ok(line) = ready.recv_timeout(START_DEADLINE) else {
            let mut child = self.child.take().expect("spawned");
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            return Err(format!("ferrox did not start ({status}); stderr:\n{}", self.server_log()));
        };
        let url = line.strip_prefix(READY_PREFIX).unwrap_or_else(|| panic!("unexpected first stdout line: {line:?}"));
        self.client = Client::new(url.trim().to_owned());
        Ok(())
    }

    /// Starts again and expects the server to refuse; returns its stderr.
    pub fn restart_refused(&mut self) -> String {
        match self.try_spawn() {
            Ok(()) => panic!("ferrox started; stderr:\n{}", self.server_log()),
            Err(e) => e,
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        let child = self.child.as_ref().expect("the server is not running");
        libc::pid_t::try_from(child.id()).expect("pid fits pid_t")
    }

    /// Sends `signal` to the running process.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.pid();
        // SAFETY: kill(2) only sends a signal; `pid` is our own child, which
        // has not been reaped yet (we hold its `Child`), so the pid is not
        // reused by another process.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed: {}", std::io::Error::last_os_error());
    }

    /// Sends `signal` and waits for the process to exit.
    fn signal_and_wait(&mut self, signal: libc::c_int) -> ExitStatus {
        self.signal(signal);
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + EXIT_DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("waiting for ferrox") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ferrox did not exit within {EXIT_DEADLINE:?} of signal {signal}; stderr:\n{}",
                    self.server_log()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Graceful stop (SIGTERM); returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal_and_wait(libc::SIGTERM)
    }

    /// Crash (SIGKILL).
    pub fn kill9(&mut self) {
        self.signal_and_wait(libc::SIGKILL);
    }

    /// Replaces the configuration file, for the next start.
    pub fn rewrite_config(&self, text: &str) {
        std::fs::write(self.work_dir.path().join("ferrox.toml"), text).expect("rewriting the config");
    }

    /// Starts again on the same data directory and configuration, on a new
    /// port.
    pub fn restart(&mut self) {
        self.spawn();
    }
}

impl Deref for Server {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Copies the files under `from` into `to`, keeping the tree's shape.
fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display())) {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            std::fs::create_dir_all(&target).expect("creating a directory");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("copying {}: {e}", entry.path().display()));
        }
    }
}

/// `ferrox` with none of the test process's `FERROX_` variables (the
/// engine takes each as a configuration key) and `env` set.
pub fn ferrox_command(env: &[(String, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrox"));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("FERROX_")) {
            command.env_remove(name);
        }
    }
    command.env("RUST_LOG", "warn").envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// Spawns `ferrox serve`; the receiver yields its stdout lines.
fn spawn_serve(
    config: &Path,
    data_dir: &Path,
    log: &Path,
    env: &[(String, String)],
) -> (Child, mpsc::Receiver<String>) {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("opening the server log");
    let mut child = ferrox_command(env)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawning ferrox");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, ready) = mpsc::channel();
    thread::spawn(move || {
        // Keep draining stdout after the first line so the child never
        // blocks on a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    (child, ready)
}

/// Runs `ferrox serve` with the configuration `text`, expecting it to
/// refuse to start; returns its stderr.
pub fn serve_refuses(text: &str) -> String {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    serve_refuses_in(text, &dir.path().join("data"))
}

/// Like `serve_refuses`, on the data directory `data`.
pub fn serve_refuses_in(text: &str, data: &Path) -> String {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let (config, log) = (dir.path().join("ferrox.toml"), dir.path().join("server.log"));
    std::fs::write(&config, text).expect("writing the config");
    let (mut child, ready) = spawn_serve(&config, data, &log, &[]);
    let started = ready.recv_timeout(START_DEADLINE);
    let _ = child.kill();
    let status = child.wait().expect("waiting for ferrox");
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(started.is_err() && !status.success(), "ferrox started with the configuration:\n{text}\nstderr:\n{stderr}");
    stderr
}

/// Runs `ferrox <args>` to completion (the offline WAL tools).
pub fn ferrox(args: &[&std::ffi::OsStr]) -> Output {
    ferrox_command(&[]).args(args).output().expect("running ferrox")
}

/// Waits until `condition` holds, polling, or panics after `deadline`.
pub fn wait_for(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !condition() {
        assert!(Instant::now() < end, "timed out after {deadline:?} waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A seed for a test's randomness, printed so a failure can be replayed
/// with `IT_SEED=<seed>`.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("IT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        u64::from(nanos) ^ u64::from(std::process::id())
    });
    eprintln!("{test}: seed {seed} (IT_SEED={seed} to replay)");
    seed
}

/// A small deterministic generator (xorshift64*), enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}
