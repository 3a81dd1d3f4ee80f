//! Certificates made at test time: certificate authorities, the server
//! and client certificates they issue, as DER for rustls and as PEM files
//! for ferrox's configuration.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};

/// A certificate authority of one test.
pub struct Ca {
    cert: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate an authority issued, with its key.
pub struct Leaf {
    /// The certificate, then the authority's.
    pub chain: Vec<CertificateDer<'static>>,
    key: KeyPair,
    chain_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("the CA certificate");
        Self { cert, issuer: Issuer::new(params, key) }
    }

    /// Its certificate alone, as a root to trust.
    pub fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone()).expect("a usable CA certificate");
        Arc::new(roots)
    }

    /// Writes its certificate to `path`, for `[delivery] ca_file`.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.cert.pem()).expect("writing a CA certificate");
        path.to_owned()
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self) -> Leaf {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        self.issue(names, "localhost", ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate for `name`.
    pub fn client(&self, name: &str) -> Leaf {
        self.issue(Vec::new(), name, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, names: Vec<String>, common_name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params = CertificateParams::new(names).expect("certificate parameters");
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.issuer).expect("issuing a certificate");
        let chain_pem = format!("{}{}", cert.pem(), self.cert.pem());
        Leaf { chain: vec![cert.der().clone(), self.cert.der().clone()], key, chain_pem }
    }
}

impl Leaf {
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    /// Writes the chain and the key (PKCS#8) as `<stem>.crt` and
    /// `<stem>.key` in `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join(format!("{stem}.crt")), dir.join(format!("{stem}.key")));
        self.write_to(&cert, &key);
        (cert, key)
    }

    /// Writes the chain and the key over the files `cert` and `key`.
    pub fn write_to(&self, cert: &Path, key: &Path) {
        std::fs::write(cert, &self.chain_pem).expect("writing a certificate");
        std::fs::write(key, self.key.serialize_pem()).expect("writing a key");
    }
}
