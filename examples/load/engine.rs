//! The engine under load: its configuration, its start on a temporary
//! data directory, and the CPU time a process used.

use super::*;

pub(crate) fn config(args: &Args, port: u16, data: &Path) -> String {
    // The defaults hold 1 MiB payloads: max_body_bytes 10 MiB, WAL
    // segments of 64 MiB.
    let mut toml = format!(
        "admin_token = \"{ADMIN}\"\ndata_dir = \"{}\"\n[[sources]]\nid = \"{SOURCE}\"\nname = \"load\"\napi_key = \"{API_KEY}\"\nsecret = \"{SECRET}\"\n",
        data.display()
    );
    let lanes = if args.lanes > 1 {
        format!("fifo_key = \".Patient.Identifiers[0].ID\"\nmax_in_flight = {}\n", args.lanes)
    } else {
        String::new()
    };
    for i in 0..args.destinations {
        toml += &format!(
            "[[destinations]]\nid = \"00000000-0000-4000-9000-{i:012}\"\nname = \"d{i}\"\nurl = \"http://127.0.0.1:{port}/d{i}\"\nenvironment = \"production\"\n{lanes}[[subscriptions]]\nsource_id = \"{SOURCE}\"\ndestination_id = \"00000000-0000-4000-9000-{i:012}\"\ndata_model = \"PatientAdmin\"\n"
        );
    }
    toml
}

/// The engine process; killed when dropped.
pub(crate) struct Engine {
    pub(crate) child: Child,
    pub(crate) url: String,
    pub(crate) token: String,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn engine_binary(args: &Args) -> Result<PathBuf, String> {
    if let Some(bin) = &args.binary {
        return Ok(bin.clone());
    }
    if let Some(bin) = std::env::var_os("FERROX_BENCH_BIN") {
        return Ok(bin.into());
    }
    // target/release/examples/load → target/release/ferrox
    let exe = std::env::current_exe().map_err(|e| format!("this program's path: {e}"))?;
    let bin = exe.parent().and_then(Path::parent).map(|dir| dir.join("ferrox"));
    match bin {
        Some(bin) if bin.is_file() => Ok(bin),
        _ => Err(format!(
            "no engine binary next to {}: run `cargo build --release --bin ferrox` first, or give --binary",
            exe.display()
        )),
    }
}

/// A client whose every phase times out after `limit`. Not a global
/// timeout: with one, ureq resolves the address on a new thread for every
/// request, pooled connection or not.
pub(crate) fn agent_config(limit: Duration) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(limit))
        .timeout_send_request(Some(limit))
        .timeout_send_body(Some(limit))
        .timeout_recv_response(Some(limit))
        .timeout_recv_body(Some(limit))
}

pub(crate) fn agent(limit: Duration) -> ureq::Agent {
    agent_config(limit).build().into()
}

/// The last lines of a file, for an error message.
pub(crate) fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

pub(crate) fn start_engine(bin: &Path, dir: &Path, config_path: &Path) -> Result<Engine, String> {
    let (out_path, err_path) = (dir.join("engine.out"), dir.join("engine.err"));
    let stdout = File::create(&out_path).map_err(|e| format!("{}: {e}", out_path.display()))?;
    let stderr = File::create(&err_path).map_err(|e| format!("{}: {e}", err_path.display()))?;
    let mut command = Command::new(bin);
    // The engine takes every FERROX_ variable as a configuration key.
    for name in ferrox::config::env_variables_set() {
        command.env_remove(name);
    }
    let child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config_path)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", bin.display()))?;
    let mut engine = Engine { child, url: String::new(), token: String::new() };
    let started = Instant::now();
    let failed = |engine: &mut Engine, what: String| {
        let status = engine.child.try_wait().ok().flatten().map_or(String::new(), |s| format!(" ({s})"));
        format!("{what}{status}; the engine's stderr ends with:\n{}", tail(&err_path))
    };
    // Its address, once bound.
    loop {
        let out = std::fs::read_to_string(&out_path).unwrap_or_default();
        if let Some(line) = out.lines().find(|l| l.contains("listening on")) {
            engine.url = line.trim_start_matches("ferrox listening on ").trim().to_owned();
            break;
        }
        if matches!(engine.child.try_wait(), Ok(Some(_))) {
            return Err(failed(&mut engine, format!("the engine ({}) exited at start", bin.display())));
        }
        if started.elapsed() > START_LIMIT {
            return Err(failed(&mut engine, "the engine did not report its address".to_owned()));
        }
        thread::sleep(Duration::from_millis(20));
    }
    let agent = agent(Duration::from_secs(10));
    // Ready once the journal is replayed.
    loop {
        let ready = agent.get(format!("{}/readyz", engine.url)).call().map(|r| r.status() == 200);
        if matches!(ready, Ok(true)) {
            break;
        }
        if started.elapsed() > START_LIMIT {
            return Err(failed(&mut engine, "the engine did not become ready".to_owned()));
        }
        thread::sleep(Duration::from_millis(20));
    }
    let body = json!({ "apiKey": API_KEY, "secret": SECRET });
    let reply = agent
        .post(format!("{}/auth/authenticate", engine.url))
        .send_json(&body)
        .and_then(|mut r| r.body_mut().read_json::<Value>())
        .map_err(|e| failed(&mut engine, format!("authentication: {e}")))?;
    engine.token = match reply["accessToken"].as_str() {
        Some(token) => token.to_owned(),
        None => return Err(failed(&mut engine, format!("authentication answered {reply}"))),
    };
    Ok(engine)
}

/// CPU time (user and system) a process has used so far, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    // utime and stime are fields 14 and 15 of the whole line.
    (ticks(11) + ticks(12)) as f64 / per_second as f64
}
