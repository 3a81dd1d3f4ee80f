//! The engine under torture: a child process, started, signed in to,
//! asked for metrics, killed or stopped, and its log verified offline.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// How long the engine may take to start (replaying its journal).
const START: Duration = Duration::from_secs(60);

pub struct Engine {
    child: Child,
    base: String,
    token: String,
    client: awc::Client,
}

impl Engine {
    /// Starts `binary serve` and signs in as the torture's source.
    pub async fn start(binary: &Path, config: &Path, data: &Path) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(config.with_file_name("engine.log"))
            .context("opening the engine's log")?;
        let mut command = Command::new(binary);
        // The engine's configuration is the torture's file alone.
        for name in crate::config::env_variables_set() {
            command.env_remove(name);
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("the engine's stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = match rx.recv_timeout(START) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                bail!("the engine did not start ({status}); see engine.log beside the configuration");
            }
        };
        let base = line.strip_prefix("ferrox listening on ").context("the engine's listening line")?.trim().to_owned();
        let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
        let mut engine = Self { child, base, token: String::new(), client };
        engine.token = engine.sign_in().await?;
        Ok(engine)
    }

    async fn sign_in(&self) -> anyhow::Result<String> {
        let body = json!({ "apiKey": "torture-key", "secret": "torture-secret-0123456789" });
        let request = self.client.post(format!("{}/auth/authenticate", self.base));
        let mut resp = request.send_json(&body).await.map_err(|e| anyhow::anyhow!("signing in: {e}"))?;
        let value: Value = resp.json().await.map_err(|e| anyhow::anyhow!("signing in: {e}"))?;
        value["accessToken"].as_str().map(str::to_owned).context("no access token")
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// A gauge of `/metrics`; 0 when it cannot be read.
    pub async fn metric(&self, name: &str) -> f64 {
        let Ok(mut resp) = self.client.get(format!("{}/metrics", self.base)).send().await else { return 0.0 };
        let Ok(body) = resp.body().await else { return 0.0 };
        let text = String::from_utf8_lossy(&body);
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().context("killing the engine")?;
        self.child.wait().context("waiting for the killed engine")?;
        Ok(())
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let sent = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        if !sent.is_ok_and(|s| s.success()) {
            bail!("could not signal the engine");
        }
        let status = self.child.wait().context("waiting for the engine")?;
        if !status.success() {
            bail!("the engine exited with {status} on SIGTERM");
        }
        Ok(())
    }
}

/// `ferrox wal verify` on `data`: the log must hold no damage.
pub fn verify(binary: &Path, data: &Path) -> anyhow::Result<()> {
    let out = Command::new(binary).args(["wal", "verify"]).arg(data).output().context("running wal verify")?;
    if !out.status.success() {
        bail!("wal verify failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
