//! A real browser for the console's tests: Debian's `chromium`, headless,
//! driven over WebDriver (`chromedriver`, through `fantoccini`).
//!
//! `.ci/run` installs both (`apt-get install chromium chromium-driver`).
//! Each browser runs in a `chromedriver` of its own on a free port, with a
//! fresh profile, in the time zone the test asks for; dropping it ends the
//! process by its PID.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::{Value, json};

/// How long a page, an element or a condition may take to appear.
pub const PATIENCE: Duration = Duration::from_secs(30);
/// A laptop's screen.
const WINDOW: (u32, u32) = (1440, 900);

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser").field("driver", &self.driver.id()).finish_non_exhaustive()
    }
}

fn driver_binary() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned())
}

fn browser_binary() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

impl Browser {
    /// A headless Chromium whose clock reads in `time_zone` (an IANA name).
    pub async fn start(time_zone: &str) -> Self {
        let mut driver = Command::new(driver_binary())
            .arg("--port=0")
            .env("TZ", time_zone)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start {}: {e}. The console's tests need Chromium and its WebDriver: \
                     apt-get install chromium chromium-driver",
                    driver_binary()
                )
            });
        let port = driver_port(&mut driver);
        let profile = tempfile::tempdir().expect("a browser profile directory");
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_owned(), json!({ "binary": browser_binary(), "args": args }));
        // The WebDriver client's TLS goes unused (chromedriver speaks plain
        // HTTP on loopback), but it needs a provider chosen.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = ClientBuilder::rustls()
            .expect("the WebDriver client's TLS roots")
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session from chromedriver");
        Self { client, driver, _profile: profile }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current address");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn find(&self, css: &str) -> Element {
        match self.client.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("no element '{css}' on {}: {e}", self.path_now().await),
        }
    }

    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(css)).await.expect("finding elements")
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("an element's text")
    }

    /// Runs `script` in the page and returns what it returns.
    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("running {script}: {e}"))
    }

    /// Waits until `script` returns true in the page.
    pub async fn wait_until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if self.eval(script).await == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what} on {}", self.path_now().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a screenshot as `<dir>/<name>.png` when `FERROX_SCREENSHOTS`
    /// names a directory (the README's pictures are made this way).
    pub async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("FERROX_SCREENSHOTS") else { return };
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(format!("{dir}/{name}.png"), png).expect("writing a screenshot");
    }

    async fn path_now(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => format!("(no address: {e})"),
        }
    }

    /// Ends the browser session, then (on drop) chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The port chromedriver chose, from its first lines.
fn driver_port(driver: &mut Child) -> u16 {
    let stdout = driver.stdout.take().expect("chromedriver's output");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.split("started successfully on port ").nth(1) {
            let port = rest.trim_end_matches('.').trim().parse().expect("a port number");
            // Keep reading its output so chromedriver never blocks on it.
            std::thread::spawn(move || lines.for_each(drop));
            return port;
        }
    }
    panic!("chromedriver did not say which port it listens on");
}
