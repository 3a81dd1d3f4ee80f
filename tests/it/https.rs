//! HTTPS destinations: deliveries and queries over TLS to the mock
//! receiver, whose certificate is signed by a CA made here and trusted
//! through `[delivery] ca_file`; without it, nothing is delivered.

use std::{path::PathBuf, sync::Arc};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::{
    ServerConfig,
    crypto::ring,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{
    delivery::{Dest, PATIENCE, Sent, Setup, log, queue, send, wait_status},
    delivery_headers::standard_webhooks_signature,
    query::{patient_query, query, query_logs, start_with},
    receiver::{Behavior, Receiver},
};

/// The certificates of one test: what the receiver presents and what the
/// engine is told to trust.
struct TestPki {
    /// Holds `ca.pem`, the certificate to trust.
    dir: TempDir,
    server: Arc<ServerConfig>,
}

/// The names the receiver's certificate is for.
fn server_params() -> CertificateParams {
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server certificate parameters");
    params.distinguished_name.push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

impl TestPki {
    /// A CA made for the test, and a server certificate it signed for
    /// `localhost` and `127.0.0.1`.
    fn ca_signed() -> Self {
        let mut ca = CertificateParams::new(Vec::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "ferrox test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_key = KeyPair::generate().expect("a CA key");
        let ca_cert = ca.self_signed(&ca_key).expect("the CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let mut leaf = server_params();
        leaf.use_authority_key_identifier_extension = true;
        let leaf_key = KeyPair::generate().expect("a server key");
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("the server certificate");
        Self::new(vec![leaf_cert.der().clone(), ca_cert.der().clone()], &leaf_key, &ca_cert.pem())
    }

    /// A self-signed server certificate (not a CA), trusted as it is.
    fn self_signed() -> Self {
        let key = KeyPair::generate().expect("a server key");
        let cert = server_params().self_signed(&key).expect("the server certificate");
        Self::new(vec![cert.der().clone()], &key, &cert.pem())
    }

    fn new(chain: Vec<CertificateDer<'static>>, key: &KeyPair, trusted_pem: &str) -> Self {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let server = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("the receiver's TLS configuration");
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("ca.pem"), trusted_pem).expect("writing ca.pem");
        Self { dir, server: Arc::new(server) }
    }

    /// The PEM file to name in `[delivery] ca_file`.
    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A receiver speaking HTTPS with the server certificate.
    fn receiver(&self) -> Receiver {
        Receiver::start_tls(self.server.clone())
    }
}

#[test]
fn deliveries_to_an_https_destination_arrive_signed_over_one_connection() {
    let pki = TestPki::ca_signed();
    let receiver = pki.receiver();
    let url = receiver.url("/secure");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let mut dest = Dest::new(1, "production", url);
    dest.signing_secret = Some(format!("whsec_{}", STANDARD.encode(b"ferrox-it-tls-signing-key-012345")));
    let setup = Setup { destinations: vec![dest.clone()], ca_file: Some(pki.ca_file()), ..Setup::default() };
    let server = setup.start();
    let token = server.token();
    let sent: Vec<Sent> = (0..3).map(|n| send(&server, &token, &format!("tls-{n}"))).collect();
    let received = receiver.wait_for(|r| r.len() == 3, PATIENCE);
    for (n, (request, sent)) in received.iter().zip(&sent).enumerate() {
        let log_id = sent.log(&dest);
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/secure"));
        assert_eq!(request.header("webhook-id"), Some(log_id.as_str()), "request {n}");
        assert_eq!(request.json()["Patient"]["Identifiers"][0]["ID"], format!("tls-{n}"));
        let timestamp = request.header("webhook-timestamp").expect("webhook-timestamp");
        let expected =
            standard_webhooks_signature(dest.signing_secret.as_deref().unwrap(), &log_id, timestamp, &request.body);
        assert_eq!(request.header("webhook-signature"), Some(expected.as_str()), "request {n}: bad signature");
        let detail = wait_status(&server, &log_id, "Succeeded");
        assert_eq!(detail["attempts"][0]["http_status"], 200, "{detail}");
    }
    assert_eq!(receiver.connections(), 1, "3 sequential deliveries opened {} TLS connections", receiver.connections());
}

#[test]
fn a_self_signed_receiver_certificate_can_be_trusted_as_it_is() {
    let pki = TestPki::self_signed();
    let receiver = pki.receiver();
    let dest = Dest::new(1, "staging", receiver.url("/self-signed"));
    let setup = Setup { destinations: vec![dest.clone()], ca_file: Some(pki.ca_file()), ..Setup::default() };
    let server = setup.start();
    let log_id = send(&server, &server.token(), "self-signed").log(&dest);
    let detail = wait_status(&server, &log_id, "Succeeded");
    assert_eq!(receiver.received().len(), 1, "{detail}");
}

#[test]
fn an_untrusted_certificate_gets_no_delivery_and_pauses_production() {
    let pki = TestPki::ca_signed();
    let receiver = pki.receiver();
    let dest = Dest::new(1, "production", receiver.url("/untrusted"));
    // No ca_file: the system's roots do not know the test CA.
    let server = Setup { destinations: vec![dest.clone()], ..Setup::default() }.start();
    let token = server.token();
    let log_id = send(&server, &token, "untrusted").log(&dest);
    let detail = wait_status(&server, &log_id, "Retrying");
    let attempt = &detail["attempts"][0];
    assert!(attempt["http_status"].is_null(), "{detail}");
    let error = attempt["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("transport error") && error.to_ascii_lowercase().contains("certificate"),
        "the attempt does not say the certificate was refused: {detail}"
    );
    let q = queue(&server, &dest);
    assert_eq!((&q["state"], &q["head_log_id"]), (&json!("paused"), &json!(log_id)), "{q}");
    assert!(receiver.connections() >= 1, "the engine never connected");
    assert!(receiver.received().is_empty(), "a request got through: {:?}", receiver.received());
    assert_eq!(log(&server, &log_id)["status"], "Retrying");
}

#[test]
fn alerts_reach_an_https_webhook() {
    let pki = TestPki::ca_signed();
    let hook = pki.receiver();
    let receiver = Receiver::start();
    receiver.script([Behavior::Status(503, "{}".to_owned())]);
    let dest = Dest::new(1, "production", receiver.url("/flaky"));
    let setup = Setup {
        destinations: vec![dest.clone()],
        retry_schedule_ms: Some(vec![0, 10]),
        alert_webhook_url: Some(hook.url("/alerts")),
        ca_file: Some(pki.ca_file()),
        ..Setup::default()
    };
    let server = setup.start();
    let token = server.token();
    let log_id = send(&server, &token, "alerted").log(&dest);
    wait_status(&server, &log_id, "Succeeded");
    let posted = hook.wait_for(|r| r.len() == 2, PATIENCE);
    let kinds: Vec<Value> = posted.iter().map(|r| r.json()["kind"].clone()).collect();
    assert_eq!(kinds, [json!("QueuePaused"), json!("QueueRecovered")], "{posted:?}");
    assert!(posted.iter().all(|r| r.json()["log_id"] == log_id.as_str()), "{posted:?}");
}

#[test]
fn a_query_through_an_https_destination_round_trips() {
    let pki = TestPki::ca_signed();
    let receiver = pki.receiver();
    let reply = json!({ "Meta": { "DataModel": "ClinicalSummary", "EventType": "PatientQueryResponse" }, "Found": 1 });
    receiver.set_default(Behavior::Status(200, reply.to_string()));
    let records = "0e0e7151-0000-4000-8000-000000000000";
    let ca_file = pki.ca_file();
    let more = format!("[delivery]\nca_file = {}\n", serde_json::to_string(&ca_file).expect("a path"));
    let server = start_with(&[(records, receiver.url("/records"), None, None, 5000)], &more);
    let (status, answer) = query(&server, &patient_query(None));
    assert_eq!((status, &answer), (200, &reply), "{answer}");
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].json()["Patient"]["Identifiers"][0]["ID"], "0000012345");
    let logs = query_logs(&server);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!((&logs[0]["status"], &logs[0]["attempts"][0]["http_status"]), (&json!("Succeeded"), &json!(200)));
    let stored: Value =
        serde_json::from_str(logs[0]["attempts"][0]["response"].as_str().expect("the reply is kept")).unwrap();
    assert_eq!(stored, reply);
}
