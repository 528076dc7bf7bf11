//! The CAS's TLS identity and its server configuration.
//!
//! The CAS certificate is generated on first start (self-signed, P-256) and kept in the
//! data directory — with a replicated store, sealed in the store, so every replica serves the
//! same one — or given by the operator. Clients do not trust it by name: `custos cas
//! attest` pins its key after verifying the CAS's evidence, which binds that key. The same
//! certificate serves the client API and the enclave API.
//!
//! Client certificates are optional at the client API's TLS layer (so `/v1/values`,
//! `/v1/attest` and `/healthz` work without one), required at the enclave API's, and never
//! checked against a CA: a client is its key. The handshake still proves the client holds the
//! certificate's private key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use custos_ids::{KeyHash, spki_of_certificate};
use rustls::ServerConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use zeroize::Zeroizing;

/// Why the CAS's TLS identity could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file is unusable.
    #[error(transparent)]
    Load(#[from] custos_tls::LoadError),
    /// Generating the certificate failed.
    #[error("cannot generate the CAS certificate: {0}")]
    Generate(String),
    /// Writing the generated certificate failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The CAS's certificate chain and key, and the SubjectPublicKeyInfo its evidence binds.
#[derive(Debug)]
pub struct CasIdentity {
    /// The certified key for rustls.
    pub certified: rustls::sign::CertifiedKey,
    /// The leaf certificate's SubjectPublicKeyInfo DER.
    pub spki: Vec<u8>,
    /// The leaf certificate, PEM.
    pub certificate_pem: String,
}

impl CasIdentity {
    /// SHA-256 of the certificate's public key: what clients pin.
    pub fn key_hash(&self) -> KeyHash {
        KeyHash::of_spki(&self.spki)
    }

    /// Loads `cert`/`key`.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let certified = custos_tls::load_certified_key(cert, key)?;
        Self::from_certified(cert, certified)
    }

    fn from_certified(
        cert_path: &Path,
        certified: rustls::sign::CertifiedKey,
    ) -> Result<Self, TlsError> {
        let leaf = certified.cert.first().ok_or_else(|| {
            TlsError::Load(custos_tls::LoadError::NoCertificate {
                path: cert_path.to_owned(),
            })
        })?;
        let spki = spki_of_certificate(leaf)
            .map_err(|e| {
                TlsError::Load(custos_tls::LoadError::BadCertificate {
                    path: cert_path.to_owned(),
                    reason: e.to_string(),
                })
            })?
            .to_vec();
        let certificate_pem = custos_ids::pem::encode("CERTIFICATE", leaf);
        Ok(Self {
            certified,
            spki,
            certificate_pem,
        })
    }

    /// The identity every replica sharing `store` serves: the one the first replica generated
    /// (with `names`) and stored sealed, as certificate and key PEM.
    pub fn shared(store: &crate::store::Store, names: &[String]) -> Result<Self, TlsError> {
        let label = Path::new("store:shared/tls-identity");
        let pem = store
            .shared_value(crate::store::copy::TLS_IDENTITY, || {
                let (cert, key) = generate_pem(names)
                    .map_err(|e| crate::store::StoreError::Seal(e.to_string()))?;
                let mut both = Zeroizing::new(cert.into_bytes());
                both.extend_from_slice(key.as_bytes());
                Ok(both)
            })
            .map_err(|e| TlsError::Generate(format!("the identity kept in the store: {e}")))?;
        let chain = custos_tls::parse_certificates(label, &pem)?;
        let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
            custos_tls::LoadError::BadPrivateKey {
                path: label.to_owned(),
                reason: e.to_string(),
            }
        })?;
        let certified = custos_tls::certified_key(label, chain, label, key)?;
        Self::from_certified(label, certified)
    }

    /// Loads `dir/cas.crt` and `dir/cas.key`, generating them first (with `names` as DNS
    /// names or IP addresses) when neither exists.
    pub fn load_or_generate(dir: &Path, names: &[String]) -> Result<Self, TlsError> {
        let cert = dir.join("cas.crt");
        let key = dir.join("cas.key");
        if !cert.exists() && !key.exists() {
            generate(&cert, &key, names)?;
        }
        Self::load(&cert, &key)
    }
}

fn generate(cert_path: &Path, key_path: &Path, names: &[String]) -> Result<(), TlsError> {
    let (cert, key) = generate_pem(names)?;
    write_file(key_path, key.as_bytes(), 0o600)?;
    write_file(cert_path, cert.as_bytes(), 0o644)
}

/// A new self-signed certificate for `names` and its key, as PEM.
fn generate_pem(names: &[String]) -> Result<(String, Zeroizing<String>), TlsError> {
    let error = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(error)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(error)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "custos-cas");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - std::time::Duration::from_secs(3600);
    params.not_after = now + std::time::Duration::from_secs(20 * 365 * 24 * 3600);
    let cert = params.self_signed(&key).map_err(error)?;
    Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
}

fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    let error = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(path).map_err(error)?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(error)?;
    if let Some(dir) = path.parent() {
        crate::seal::sync_dir(dir).map_err(error)?;
    }
    Ok(())
}

/// The TLS server configuration of the client API: the CAS certificate, HTTP/2 and
/// HTTP/1.1, and optional client certificates identified by their key.
pub fn server_config(identity: &CasIdentity) -> Arc<ServerConfig> {
    Arc::new(config_with(identity, false))
}

/// The TLS server configuration of the enclave API: as [`server_config`], but a client
/// certificate is required — its key is the one the runtime's evidence binds.
pub fn enclave_server_config(identity: &CasIdentity) -> Arc<ServerConfig> {
    let mut config = config_with(identity, true);
    // Each runtime attests on a fresh key and connection and never resumes: session tickets
    // would only cost every handshake their making and sending (and a resumed session would
    // carry a client key no handshake proved again).
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Arc::new(config)
}

fn config_with(identity: &CasIdentity, client_auth_mandatory: bool) -> ServerConfig {
    let mut config = ServerConfig::builder_with_provider(custos_tls::provider())
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports the default protocol versions")
        .with_client_cert_verifier(custos_tls::any_client_key_verifier(client_auth_mandatory))
        .with_cert_resolver(Arc::new(SingleCert(Arc::new(identity.certified.clone()))));
    config.alpn_protocols = custos_tls::ALPN_H2_HTTP11
        .iter()
        .map(|p| p.to_vec())
        .collect();
    config
}

#[derive(Debug)]
struct SingleCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for SingleCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}
