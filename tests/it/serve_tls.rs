//! HTTPS served by ferrox itself (`[tls]`, SPEC §16): the real binary
//! serves with a certificate from PEM files, swaps it on SIGHUP for new
//! handshakes while open connections go on, keeps it when the new files do
//! not load, and refuses to start on files that are missing or wrong.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned, crypto::ring, pki_types::CertificateDer};

use crate::{
    harness::{ADMIN_TOKEN, Options, Server, serve_refuses, wait_for},
    pki::{Ca, Leaf},
};

/// How long a reload may take to show.
const RELOAD_DEADLINE: Duration = Duration::from_secs(20);

/// One HTTPS connection, kept alive between requests (HTTP/1.1).
struct Conn {
    stream: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl Conn {
    /// Connects to `server` trusting `roots` only, and completes the
    /// handshake.
    fn open(server: &Server, roots: Arc<RootCertStore>) -> Result<Self, String> {
        let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = "localhost".try_into().expect("a server name");
        let mut tls = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        let mut socket = TcpStream::connect(addr(server)).map_err(|e| e.to_string())?;
        socket.set_read_timeout(Some(Duration::from_secs(10))).expect("a read timeout");
        while tls.is_handshaking() {
            tls.complete_io(&mut socket).map_err(|e| e.to_string())?;
        }
        Ok(Self { stream: BufReader::new(StreamOwned::new(tls, socket)) })
    }

    /// The certificate the server presented.
    fn server_cert(&self) -> CertificateDer<'static> {
        let certs = self.stream.get_ref().conn.peer_certificates().expect("the server's certificates");
        certs[0].clone().into_owned()
    }

    /// `GET path` on this connection: the status and the body.
    fn get(&mut self, path: &str) -> Result<(u16, String), String> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n");
        let stream = self.stream.get_mut();
        stream.write_all(request.as_bytes()).and_then(|()| stream.flush()).map_err(|e| e.to_string())?;
        let mut status_line = String::new();
        self.stream.read_line(&mut status_line).map_err(|e| e.to_string())?;
        let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok());
        let status = status.ok_or_else(|| format!("not an HTTP status line: {status_line:?}"))?;
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).map_err(|e| e.to_string())?;
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().map_err(|e| format!("content-length {value:?}: {e}"))?;
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).map_err(|e| e.to_string())?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

fn addr(server: &Server) -> String {
    let base = server.base_url();
    base.strip_prefix("https://").unwrap_or_else(|| panic!("ferrox does not serve HTTPS: {base}")).to_owned()
}

/// `[tls]` with `cert` and `key`, and an operator token.
fn config(cert: &Path, key: &Path) -> String {
    let quoted = |p: &Path| serde_json::to_string(p.to_str().expect("a UTF-8 path")).expect("a string");
    format!("admin_token = \"{ADMIN_TOKEN}\"\n[tls]\ncert_file = {}\nkey_file = {}\n", quoted(cert), quoted(key))
}

/// A server on `leaf`'s certificate, from files in `dir`.
fn serve(dir: &Path, leaf: &Leaf) -> (Server, PathBuf, PathBuf) {
    let (cert, key) = leaf.write(dir, "server");
    let server = Server::start_with(&Options { config_text: Some(config(&cert, &key)), ..Options::default() });
    (server, cert, key)
}

fn hang_up(server: &Server) {
    let pid = server.pid();
    // SAFETY: kill(2) only sends a signal; `pid` is the server's own child
    // process, not yet reaped (the harness holds its `Child`).
    let rc = unsafe { libc::kill(pid, libc::SIGHUP) };
    assert_eq!(rc, 0, "kill({pid}, SIGHUP): {}", std::io::Error::last_os_error());
}

#[test]
fn sighup_swaps_the_certificate_for_new_connections_while_open_ones_go_on() {
    let (ca_a, ca_b) = (Ca::new("ferrox test CA A"), Ca::new("ferrox test CA B"));
    let (leaf_a, leaf_b) = (ca_a.server(), ca_b.server());
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, cert, key) = serve(dir.path(), &leaf_a);

    let mut kept = Conn::open(&server, ca_a.roots()).expect("a connection trusting CA A");
    assert_eq!(kept.server_cert(), leaf_a.chain[0]);
    let (status, body) = kept.get("/healthz").expect("GET /healthz over HTTPS");
    assert_eq!(status, 200, "{body}");
    assert!(Conn::open(&server, ca_b.roots()).is_err(), "CA B trusted the certificate of CA A");

    leaf_b.write_to(&cert, &key);
    hang_up(&server);
    // The kept connection answers throughout, which also keeps it alive.
    wait_for("a new handshake with certificate B", RELOAD_DEADLINE, || {
        let (status, body) = kept.get("/healthz").expect("the open connection after SIGHUP");
        assert_eq!(status, 200, "{body}");
        Conn::open(&server, ca_b.roots()).is_ok_and(|c| c.server_cert() == leaf_b.chain[0])
    });
    let (status, body) = kept.get("/healthz").expect("the open connection, still");
    assert_eq!(status, 200, "{body}");
    assert_eq!(kept.server_cert(), leaf_a.chain[0], "the open connection keeps its session");
    let err = Conn::open(&server, ca_a.roots()).err().expect("CA A no longer verifies new handshakes");
    assert!(err.to_ascii_lowercase().contains("certificate"), "{err}");
    let mut fresh = Conn::open(&server, ca_b.roots()).expect("a connection trusting CA B");
    assert_eq!(fresh.get("/readyz").expect("GET /readyz").0, 200);
}

#[test]
fn a_replacement_that_does_not_load_keeps_the_certificate_in_use() {
    let (ca_a, ca_b) = (Ca::new("ferrox test CA A"), Ca::new("ferrox test CA B"));
    let (leaf_a, leaf_b) = (ca_a.server(), ca_b.server());
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, cert, key) = serve(dir.path(), &leaf_a);

    // B's certificate with A's key: the pair does not belong together.
    let (b_cert, _) = leaf_b.write(dir.path(), "b");
    std::fs::copy(&b_cert, &cert).expect("replacing the certificate only");
    hang_up(&server);
    wait_for("the reload's warning", RELOAD_DEADLINE, || server.server_log().contains("could not be reloaded"));
    let log = server.server_log();
    assert!(log.contains("tls.key_file") && log.contains("is not the key of the certificate"), "{log}");
    let mut conn = Conn::open(&server, ca_a.roots()).expect("certificate A, still");
    assert_eq!(conn.server_cert(), leaf_a.chain[0]);
    assert_eq!(conn.get("/healthz").expect("GET /healthz").0, 200);

    // A key file that is not PEM at all, then a good pair again.
    std::fs::write(&key, "not a key\n").expect("breaking the key");
    hang_up(&server);
    wait_for("the second warning", RELOAD_DEADLINE, || {
        server.server_log().matches("could not be reloaded").count() == 2
    });
    assert_eq!(Conn::open(&server, ca_a.roots()).expect("certificate A, still").server_cert(), leaf_a.chain[0]);
    leaf_b.write_to(&cert, &key);
    hang_up(&server);
    wait_for("certificate B", RELOAD_DEADLINE, || {
        Conn::open(&server, ca_b.roots()).is_ok_and(|c| c.server_cert() == leaf_b.chain[0])
    });
}

#[test]
fn start_up_refuses_tls_files_that_are_missing_wrong_or_alone() {
    let ca = Ca::new("ferrox test CA");
    let dir = tempfile::tempdir().expect("a temp dir");
    let (cert, key) = ca.server().write(dir.path(), "server");
    let (_, other_key) = ca.server().write(dir.path(), "other");
    let missing = dir.path().join("missing.crt");

    let stderr = serve_refuses(&config(&missing, &key));
    assert!(stderr.contains("tls.cert_file") && stderr.contains("missing.crt"), "{stderr}");
    let stderr = serve_refuses(&config(&cert, &other_key));
    assert!(stderr.contains("other.key") && stderr.contains("is not the key of the certificate"), "{stderr}");
    let stderr = serve_refuses(&config(&key, &key));
    assert!(stderr.contains("tls.cert_file") && stderr.contains("no PEM certificate"), "{stderr}");
    let only_cert = format!("[tls]\ncert_file = {}\n", serde_json::to_string(&cert).expect("a path"));
    let stderr = serve_refuses(&only_cert);
    assert!(stderr.contains("tls.cert_file is set without tls.key_file"), "{stderr}");
}
