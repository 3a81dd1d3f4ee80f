//! Mutual TLS to destinations (SPEC §16): a receiver that demands a client
//! certificate issued by its CA gets deliveries from a destination with
//! `client_cert_file` and `client_key_file`, and refuses one without; the
//! files are checked when the destination is written, through the
//! configuration file or the operator API, and survive a restart.

use std::{path::PathBuf, sync::Arc};

use rustls::{ServerConfig, crypto::ring, server::WebPkiClientVerifier};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{
    delivery::{Dest, PATIENCE, Setup, queue, send, wait_status},
    harness::{EHR, Options, Server, serve_refuses},
    pki::Ca,
    receiver::Receiver,
};

/// The certificates of one test: the receiver's, issued by a CA the
/// engine trusts through `ca_file`, and a client certificate issued by the
/// CA the receiver demands.
struct Pki {
    dir: TempDir,
    ca_file: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    receiver: Arc<ServerConfig>,
}

impl Pki {
    fn new() -> Self {
        let (server_ca, client_ca) = (Ca::new("receiver CA"), Ca::new("client CA"));
        let dir = tempfile::tempdir().expect("a temp dir");
        let ca_file = server_ca.write(&dir.path().join("receiver-ca.pem"));
        let (client_cert, client_key) = client_ca.client("ferrox").write(dir.path(), "client");
        let provider = Arc::new(ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(client_ca.roots(), provider.clone())
            .build()
            .expect("a client certificate verifier");
        let leaf = server_ca.server();
        let receiver = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(leaf.chain.clone(), leaf.key_der())
            .expect("the receiver's TLS configuration");
        Self { dir, ca_file, client_cert, client_key, receiver: Arc::new(receiver) }
    }

    fn path(path: &std::path::Path) -> &str {
        path.to_str().expect("a UTF-8 temp path")
    }

    /// `destination` with the client certificate, as operator API JSON.
    fn with_cert(&self, mut destination: Value) -> Value {
        destination["client_cert_file"] = json!(Self::path(&self.client_cert));
        destination["client_key_file"] = json!(Self::path(&self.client_key));
        destination
    }
}

/// `setup`'s configuration file, `dest` given the client certificate.
fn toml_with_cert(setup: &Setup, dest: &Dest, pki: &Pki) -> String {
    let id_line = format!("\nid = {}\n", json!(dest.id));
    let toml = setup.toml();
    assert!(toml.contains(&id_line), "{toml}");
    let cert_lines = format!(
        "{id_line}client_cert_file = {}\nclient_key_file = {}\n",
        json!(Pki::path(&pki.client_cert)),
        json!(Pki::path(&pki.client_key))
    );
    toml.replacen(&id_line, &cert_lines, 1)
}

#[test]
fn a_destination_with_its_client_certificate_delivers_and_one_without_is_refused() {
    let pki = Pki::new();
    let receiver = Receiver::start_tls(pki.receiver.clone());
    let (with, without) =
        (Dest::new(1, "production", receiver.url("/with")), Dest::new(2, "production", receiver.url("/without")));
    let setup = Setup {
        destinations: vec![with.clone(), without.clone()],
        ca_file: Some(pki.ca_file.clone()),
        ..Setup::default()
    };
    let server =
        Server::start_with(&Options { config_text: Some(toml_with_cert(&setup, &with, &pki)), ..Options::default() });
    let shown = server.admin_get(&format!("/destinations/{}", with.id));
    assert_eq!(shown.json["client_cert_file"], Pki::path(&pki.client_cert), "{}", shown.text);
    assert_eq!(shown.json["client_key_file"], Pki::path(&pki.client_key), "{}", shown.text);

    let sent = send(&server, &server.token(), "mtls-1");
    let detail = wait_status(&server, &sent.log(&with), "Succeeded");
    assert_eq!(detail["attempts"][0]["http_status"], 200, "{detail}");
    let detail = wait_status(&server, &sent.log(&without), "Retrying");
    let attempt = &detail["attempts"][0];
    assert!(attempt["http_status"].is_null(), "{detail}");
    let error = attempt["error"].as_str().unwrap_or_default().to_ascii_lowercase();
    assert!(error.contains("transport error") && error.contains("certificate"), "{detail}");
    assert_eq!(queue(&server, &without)["state"], "paused");
    let received = receiver.wait_for(|r| !r.is_empty(), PATIENCE);
    let paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/with"], "only the destination with the certificate got through");
}

#[test]
fn a_configuration_file_with_half_a_client_certificate_is_refused() {
    let pki = Pki::new();
    let dest = Dest::new(1, "staging", "https://127.0.0.1:9/x".to_owned());
    let setup = Setup { destinations: vec![dest.clone()], ..Setup::default() };
    let id_line = format!("\nid = {}\n", json!(dest.id));
    let half = format!("{id_line}client_cert_file = {}\n", json!(Pki::path(&pki.client_cert)));
    let stderr = serve_refuses(&setup.toml().replacen(&id_line, &half, 1));
    assert!(stderr.contains("client_cert_file needs client_key_file") && stderr.contains("dest-1"), "{stderr}");
    let missing = pki.dir.path().join("missing.key");
    let wrong = format!("{half}client_key_file = {}\n", json!(Pki::path(&missing)));
    let stderr = serve_refuses(&setup.toml().replacen(&id_line, &wrong, 1));
    assert!(stderr.contains("client_key_file") && stderr.contains("missing.key"), "{stderr}");
}

#[test]
fn client_certificates_through_the_operator_api_are_checked_journaled_and_used() {
    let pki = Pki::new();
    let receiver = Receiver::start_tls(pki.receiver.clone());
    let mut server = Setup { ca_file: Some(pki.ca_file.clone()), ..Setup::default() }.start();
    let dest = Dest::new(3, "staging", receiver.url("/api"));
    let body = json!({ "id": dest.id, "name": dest.name, "url": dest.url, "environment": "staging" });

    let mut half = body.clone();
    half["client_cert_file"] = json!(Pki::path(&pki.client_cert));
    let text = server.admin_post("/destinations", &half).redox_error(400);
    assert!(text.contains("client_cert_file needs client_key_file"), "{text}");
    let mut missing = pki.with_cert(body.clone());
    missing["client_cert_file"] = json!(Pki::path(&pki.dir.path().join("missing.crt")));
    let text = server.admin_post("/destinations", &missing).redox_error(400);
    assert!(text.contains("client_cert_file") && text.contains("missing.crt"), "{text}");
    let mut swapped = pki.with_cert(body.clone());
    swapped["client_key_file"] = json!(Pki::path(&pki.client_cert));
    let text = server.admin_post("/destinations", &swapped).redox_error(400);
    assert!(text.contains("client_key_file") && text.contains("no PEM private key"), "{text}");
    assert_eq!(server.admin_get("/destinations").json["destinations"], json!([]), "a refused body changed nothing");

    let made = server.admin_post("/destinations", &pki.with_cert(body.clone()));
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!(made.json["client_cert_file"], Pki::path(&pki.client_cert), "{}", made.text);
    let subscription = json!({ "source_id": EHR.id, "destination_id": dest.id, "data_model": "PatientAdmin" });
    assert_eq!(server.admin_post("/subscriptions", &subscription).status, 201);
    let sent = send(&server, &server.token(), "api-1");
    wait_status(&server, &sent.log(&dest), "Succeeded");

    // Journaled: after a restart the destination still presents it.
    server.stop();
    server.restart();
    let shown = server.admin_get(&format!("/destinations/{}", dest.id));
    assert_eq!(shown.json["client_key_file"], Pki::path(&pki.client_key), "{}", shown.text);
    let sent = send(&server, &server.token(), "api-2");
    wait_status(&server, &sent.log(&dest), "Succeeded");

    // Without it, the receiver refuses the handshake: a staging log fails.
    let changed = server.admin_put(&format!("/destinations/{}", dest.id), &body);
    assert_eq!((changed.status, &changed.json["client_cert_file"]), (200, &Value::Null), "{}", changed.text);
    let sent = send(&server, &server.token(), "api-3");
    let detail = wait_status(&server, &sent.log(&dest), "Failed");
    assert!(detail["attempts"][0]["error"].as_str().is_some_and(|e| e.contains("transport error")), "{detail}");
    let ids: Vec<String> =
        receiver.received().iter().map(|r| r.json()["Patient"]["Identifiers"][0]["ID"].to_string()).collect();
    assert_eq!(ids, ["\"api-1\"", "\"api-2\""]);
}
