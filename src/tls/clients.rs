//! Client certificates for mutual TLS to destinations (SPEC §16). A
//! destination with `client_cert_file` and `client_key_file` is reached
//! with a client configuration of its own: the engine's roots, and that
//! certificate for receivers that ask for one. Configurations are built
//! once per pair of files and kept until SIGHUP, which reads the files
//! again on the next delivery; HTTP clients, which stay on their thread,
//! are kept per thread (`Clients`).

use std::{collections::HashMap, path::Path, sync::Arc};

use parking_lot::Mutex;
use rustls::{ClientConfig, client::Resumption, sign::SingleCertAndKey};

use super::identity::{self, CLIENT};
use crate::{egress::Egress, limits, model::ClientCert};

/// The engine's TLS for outgoing HTTP: the one configuration without a
/// client certificate, and those with one, by certificate.
#[derive(Debug)]
pub struct ClientTls {
    base: Arc<ClientConfig>,
    /// The configurations built since the last reload, and its count.
    with_identity: Mutex<(u64, HashMap<ClientCert, Arc<ClientConfig>>)>,
}

impl ClientTls {
    pub fn new(base: Arc<ClientConfig>) -> Self {
        Self { base, with_identity: Mutex::default() }
    }

    /// The configuration of every client that presents no certificate.
    pub fn base(&self) -> &Arc<ClientConfig> {
        &self.base
    }

    /// How many reloads there have been: a client built before the last
    /// one is built again.
    pub fn generation(&self) -> u64 {
        self.with_identity.lock().0
    }

    /// Forgets every configuration with a certificate, so the next use
    /// reads the files again.
    pub fn reload(&self) {
        let mut with_identity = self.with_identity.lock();
        with_identity.0 += 1;
        with_identity.1.clear();
    }

    /// The configuration presenting `cert`, built on first use; an error
    /// names the file that does not load.
    pub fn with_cert(&self, cert: &ClientCert) -> Result<Arc<ClientConfig>, String> {
        if let Some(config) = self.with_identity.lock().1.get(cert) {
            return Ok(config.clone());
        }
        let certified = identity::load(CLIENT, Path::new(&cert.cert_file), Path::new(&cert.key_file))?;
        let mut config = (*self.base).clone();
        config.client_auth_cert_resolver = Arc::new(SingleCertAndKey::from(certified));
        // Sessions are not shared with clients of another identity: a
        // session resumed is one made with this certificate.
        config.resumption = Resumption::default();
        let config = Arc::new(config);
        let mut with_identity = self.with_identity.lock();
        if with_identity.1.len() >= limits::CLIENT_CERTS_KEPT {
            with_identity.1.clear();
        }
        with_identity.1.insert(cert.clone(), config.clone());
        Ok(config)
    }

    /// Checks that `cert`'s files load and belong together, without
    /// keeping anything.
    pub fn check(cert: &ClientCert) -> Result<(), String> {
        identity::load(CLIENT, Path::new(&cert.cert_file), Path::new(&cert.key_file)).map(drop)
    }
}

/// The HTTP clients of one thread: one without a client certificate and
/// one per certificate, each kept while no reload has happened since it
/// was built, so deliveries reuse connections.
pub struct Clients {
    tls: Arc<ClientTls>,
    egress: Egress,
    plain: awc::Client,
    with_cert: HashMap<ClientCert, (u64, awc::Client)>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").field("with_cert", &self.with_cert.len()).finish_non_exhaustive()
    }
}

impl Clients {
    /// Clients with no default timeout: deliveries and queries set theirs
    /// per request, from the destination.
    pub fn new(tls: Arc<ClientTls>, egress: Egress) -> Self {
        let plain = super::http_client(tls.base(), None, egress);
        Self { tls, egress, plain, with_cert: HashMap::new() }
    }

    /// The client to reach a destination presenting `cert`, if any.
    pub fn get(&mut self, cert: Option<&ClientCert>) -> Result<awc::Client, String> {
        let Some(cert) = cert else { return Ok(self.plain.clone()) };
        let generation = self.tls.generation();
        if let Some((built, client)) = self.with_cert.get(cert)
            && *built == generation
        {
            return Ok(client.clone());
        }
        let config = self.tls.with_cert(cert)?;
        let client = super::http_client(&config, None, self.egress);
        if self.with_cert.len() >= limits::CLIENT_CERTS_KEPT {
            self.with_cert.clear();
        }
        self.with_cert.insert(cert.clone(), (generation, client.clone()));
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::identity::tests::write_pair;

    #[test]
    fn a_configuration_per_certificate_is_kept_until_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_file, key_file) = write_pair(dir.path(), "client");
        let cert = ClientCert { cert_file: cert_file.display().to_string(), key_file: key_file.display().to_string() };
        let tls = ClientTls::new(crate::tls::client_config(None).unwrap());
        let first = tls.with_cert(&cert).unwrap();
        assert!(first.client_auth_cert_resolver.has_certs());
        assert!(!tls.base().client_auth_cert_resolver.has_certs());
        assert!(Arc::ptr_eq(&first, &tls.with_cert(&cert).unwrap()));
        tls.reload();
        assert_eq!(tls.generation(), 1);
        assert!(!Arc::ptr_eq(&first, &tls.with_cert(&cert).unwrap()));
        // Files that no longer load are an error at the next use after a reload.
        std::fs::write(&key_file, "gone").unwrap();
        tls.reload();
        let err = tls.with_cert(&cert).unwrap_err();
        assert!(err.starts_with("client_key_file") && err.contains("client.key"), "{err}");
        assert!(ClientTls::check(&cert).is_err());
    }
}
