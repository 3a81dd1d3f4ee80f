//! HTTPS served by ferrox itself (`[tls]`, SPEC §16). The certificate sits
//! behind a resolver that hands each new handshake the current one, so a
//! reload swaps it without touching connections already open: they keep
//! the session they made. SIGHUP reloads it; files that do not load leave
//! the old certificate in place.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use parking_lot::RwLock;
use rustls::{
    ServerConfig,
    crypto::ring,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use super::identity::{self, SERVING};

/// The certificate ferrox serves with, reloadable from its files.
#[derive(Debug)]
pub struct ServingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServingCert {
    /// Reads the files; an error names the one at fault.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<Self>, String> {
        let current = identity::load(SERVING, cert_file, key_file)?;
        Ok(Arc::new(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: RwLock::new(current),
        }))
    }

    /// Reads the files again and, if they load, serves new handshakes
    /// with them. On error the certificate in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let loaded = identity::load(SERVING, &self.cert_file, &self.key_file)?;
        *self.current.write() = loaded;
        Ok(())
    }

    /// The server configuration for the HTTP server: TLS 1.2 and 1.3 with
    /// the ring provider, no client certificates, this resolver.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, String> {
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("setting up TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(config)
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::identity::tests::write_pair;

    #[test]
    fn a_reload_swaps_the_certificate_and_a_bad_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a");
        let (cert_b, key_b) = write_pair(dir.path(), "b");
        let serving = ServingCert::load(&cert, &key).unwrap();
        let first = serving.current.read().cert[0].clone();
        std::fs::copy(&cert_b, &cert).unwrap();
        std::fs::copy(&key_b, &key).unwrap();
        serving.reload().unwrap();
        let second = serving.current.read().cert[0].clone();
        assert_ne!(first, second);
        std::fs::write(&key, "not a key").unwrap();
        let err = serving.reload().unwrap_err();
        assert!(err.contains("tls.key_file") && err.contains("a.key"), "{err}");
        assert_eq!(serving.current.read().cert[0], second);
        serving.server_config().unwrap();
    }
}
