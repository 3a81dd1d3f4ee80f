//! Certificates with their private keys, read from PEM files: the one
//! ferrox serves HTTPS with (`[tls]`) and those it presents to receivers
//! that ask for a client certificate (a destination's `client_cert_file`).
//! Every error names the file and the setting it came from.

use std::{path::Path, sync::Arc};

use rustls::{
    crypto::ring,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    sign::CertifiedKey,
};

/// Where a pair of files came from, for messages: e.g. `tls.cert_file`
/// and `tls.key_file`.
#[derive(Debug, Clone, Copy)]
pub struct Named {
    pub cert: &'static str,
    pub key: &'static str,
}

/// `[tls]`'s keys.
pub const SERVING: Named = Named { cert: "tls.cert_file", key: "tls.key_file" };
/// A destination's keys.
pub const CLIENT: Named = Named { cert: "client_cert_file", key: "client_key_file" };

fn pem_error(setting: &str, path: &Path, e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => format!("{setting} {}: cannot be read: {e}", path.display()),
        rustls::pki_types::pem::Error::NoItemsFound => {
            format!("{setting} {}: holds no PEM private key (PKCS#8, RSA or EC)", path.display())
        }
        e => format!("{setting} {}: is not valid PEM: {e}", path.display()),
    }
}

/// The certificate chain of `path`: the certificate first, then the CAs
/// that issued it, if any.
fn read_chain(setting: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(setting, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(setting, path, e))?;
    if chain.is_empty() {
        return Err(format!("{setting} {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display()));
    }
    Ok(chain)
}

/// The first private key of `path`: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
fn read_key(setting: &str, path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(setting, path, e))
}

/// Reads `cert_file` and `key_file` and checks that they belong together:
/// the key is one the TLS stack can sign with, and it is the key of the
/// chain's first certificate.
pub fn load(named: Named, cert_file: &Path, key_file: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain = read_chain(named.cert, cert_file)?;
    let key = read_key(named.key, key_file)?;
    let provider = ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "{} {} is not the key of the certificate in {} {}",
            named.key,
            key_file.display(),
            named.cert,
            cert_file.display()
        ),
        rustls::Error::General(_) => format!("{} {}: the key is not usable: {e}", named.key, key_file.display()),
        e => format!("{} {}: the certificate is not usable: {e}", named.cert, cert_file.display()),
    })?;
    Ok(Arc::new(certified))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed certificate for `name` and its key, as PEM files in `dir`.
    pub fn write_pair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap().self_signed(&key).unwrap();
        let (cert_file, key_file) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    #[test]
    fn a_matching_pair_loads_and_every_fault_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "one");
        let (_, other_key) = write_pair(dir.path(), "two");
        assert_eq!(load(SERVING, &cert, &key).unwrap().cert.len(), 1);

        let missing = dir.path().join("missing.pem");
        let err = load(SERVING, &missing, &key).unwrap_err();
        assert!(err.starts_with("tls.cert_file") && err.contains("missing.pem") && err.contains("cannot be read"));
        let err = load(CLIENT, &cert, &missing).unwrap_err();
        assert!(err.starts_with("client_key_file") && err.contains("missing.pem"), "{err}");
        // A certificate where the key should be, and the reverse.
        let err = load(SERVING, &cert, &cert).unwrap_err();
        assert!(err.starts_with("tls.key_file") && err.contains("no PEM private key"), "{err}");
        let err = load(SERVING, &key, &key).unwrap_err();
        assert!(err.starts_with("tls.cert_file") && err.contains("no PEM certificate"), "{err}");
        let err = load(CLIENT, &cert, &other_key).unwrap_err();
        assert!(err.contains("is not the key of the certificate") && err.contains("two.key"), "{err}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let err = load(SERVING, &garbage, &key).unwrap_err();
        assert!(err.starts_with("tls.cert_file") && err.contains("garbage.pem"), "{err}");
    }
}
