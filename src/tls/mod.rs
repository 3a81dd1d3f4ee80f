//! TLS, both ways. Outgoing HTTP (deliveries, queries and alerts): one
//! rustls client configuration (the ring provider) is built at start and
//! shared by every HTTP client the engine makes. It trusts the system's
//! root certificates and the CA certificates of `[delivery] ca_file`;
//! destinations with a client certificate get a copy of it that presents
//! theirs (`clients`). Incoming: HTTPS served with `[tls]`'s certificate
//! (`serving`), reloaded on SIGHUP (`reload`); both read PEM files through
//! `identity`.

mod clients;
mod identity;
mod reload;
mod serving;

pub use self::{
    clients::{ClientTls, Clients},
    reload::on_hangup,
    serving::ServingCert,
};

use std::{path::Path, sync::Arc, time::Duration};

use crate::egress::Egress;

use rustls::{
    ClientConfig, RootCertStore,
    crypto::ring,
    pki_types::{CertificateDer, pem::PemObject},
};

/// The CA certificates of the PEM file `path` (one or more), as roots to
/// trust; an error names the file.
pub fn read_ca_file(path: &Path) -> Result<RootCertStore, String> {
    let named = |what: String| format!("delivery.ca_file {}: {what}", path.display());
    let pem_error = |e| match e {
        rustls::pki_types::pem::Error::Io(e) => named(format!("cannot be read: {e}")),
        e => named(format!("is not valid PEM: {e}")),
    };
    let certs = CertificateDer::pem_file_iter(path).map_err(pem_error)?.collect::<Result<Vec<_>, _>>();
    let certs = certs.map_err(pem_error)?;
    if certs.is_empty() {
        return Err(named("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned()));
    }
    let mut roots = RootCertStore::empty();
    for (n, cert) in certs.into_iter().enumerate() {
        roots.add(cert).map_err(|e| named(format!("certificate {} is unusable: {e}", n + 1)))?;
    }
    Ok(roots)
}

/// The roots to trust: those of `ca_file` and the system's.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = match ca_file {
        Some(path) => read_ca_file(path)?,
        None => RootCertStore::empty(),
    };
    let system = rustls_native_certs::load_native_certs();
    for e in &system.errors {
        tracing::warn!(error = %e, "reading the system's root certificates");
    }
    let (system_roots, unusable) = roots.add_parsable_certificates(system.certs);
    if unusable > 0 {
        tracing::warn!(unusable, "some of the system's root certificates could not be parsed; they are not trusted");
    }
    match (system_roots, ca_file) {
        (0, Some(path)) => tracing::warn!(
            ca_file = %path.display(),
            "no system root certificates found: https destinations are trusted only through delivery.ca_file"
        ),
        (0, None) => tracing::warn!(
            "no root certificates: deliveries to https destinations will fail; install the system's CA \
             certificates or set delivery.ca_file"
        ),
        _ => {}
    }
    Ok(roots)
}

/// The client configuration every outgoing HTTP client uses.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let roots = roots(ca_file)?;
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("setting up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // HTTP/1.1, as over plain TCP: one request at a time per pooled
    // connection, which is what FIFO delivery wants.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An HTTP client that speaks TLS with `tls` to `https://` URLs. It pools
/// connections; `timeout` bounds a request that sets no timeout of its
/// own (`None`: no default bound). It does not follow redirections.
pub fn http_client(tls: &Arc<ClientConfig>, timeout: Option<Duration>, egress: Egress) -> awc::Client {
    let connector = awc::Connector::new().rustls_0_23(tls.clone());
    // With private networks denied, names are resolved by a resolver that
    // refuses denied addresses (`egress`).
    let connector = match egress.resolver() {
        Some(resolver) => connector.connector(actix_tls::connect::Connector::new(resolver).service()),
        None => connector.connector(actix_tls::connect::Connector::new(Default::default()).service()),
    };
    // A redirection is an answer like any other: only a 2xx is success
    // (SPEC §4), and a delivery goes only to the configured URL.
    let builder = awc::Client::builder().connector(connector).disable_redirects();
    match timeout {
        Some(timeout) => builder.timeout(timeout).finish(),
        None => builder.disable_timeout().finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOT_A_CERT: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = read_ca_file(&missing).unwrap_err();
        assert!(err.contains("missing.pem") && err.contains("cannot be read"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let err = read_ca_file(&empty).unwrap_err();
        assert!(err.contains("empty.pem") && err.contains("no PEM certificate"), "{err}");
        let cut = dir.path().join("cut.pem");
        std::fs::write(&cut, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        let err = read_ca_file(&cut).unwrap_err();
        assert!(err.contains("cut.pem") && err.contains("not valid PEM"), "{err}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, NOT_A_CERT).unwrap();
        let err = read_ca_file(&garbage).unwrap_err();
        assert!(err.contains("garbage.pem") && err.contains("certificate 1 is unusable"), "{err}");
        let err = client_config(Some(&garbage)).unwrap_err();
        assert!(err.contains("garbage.pem"), "{err}");
    }

    #[test]
    fn every_certificate_of_a_ca_file_is_trusted() {
        let pem = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.distinguished_name.push(rcgen::DnType::CommonName, name);
            params.self_signed(&key).unwrap().pem()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cas.pem");
        std::fs::write(&path, format!("# two CAs\n{}{}", pem("one"), pem("two"))).unwrap();
        assert_eq!(read_ca_file(&path).unwrap().len(), 2);
        client_config(Some(&path)).unwrap();
    }

    #[test]
    fn the_system_roots_alone_make_a_config() {
        let config = client_config(None).unwrap();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }
}
