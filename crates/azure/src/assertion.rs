//! Client assertions for certificate credentials: a JWT signed with the app certificate's RSA
//! key, `aud` = the token endpoint, `iss` = `sub` = the client id, valid for ten minutes,
//! identified by the certificate's thumbprint (`x5t#S256` with PS256, `x5t` with RS256).
//!
//! We sign ourselves because the SDK's own certificate credential needs OpenSSL.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{self, KeyPair as _};
use azure_core::http::ClientMethodOptions;
use azure_identity::ClientAssertion;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// The signature algorithm of client assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssertionAlgorithm {
    /// RSASSA-PSS with SHA-256, certificate named by `x5t#S256`.
    #[default]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, certificate named by `x5t` (SHA-1).
    Rs256,
}

/// A certificate and key that cannot be used as a client credential.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The certificate is missing or malformed.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The key is missing, malformed or not RSA (Entra ID accepts RSA certificates only).
    #[error("private key: {0}")]
    Key(String),
    /// The key does not belong to the certificate.
    #[error("the private key does not match the certificate's public key")]
    Mismatch,
    /// The PKCS#12 file could not be opened.
    #[error("PKCS#12: {0}")]
    Pkcs12(String),
}

/// An app registration's certificate with its RSA private key.
pub struct ClientCertificate {
    leaf: Vec<u8>,
    key: RsaKeyPair,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("sha1_thumbprint", &self.sha1_thumbprint_hex())
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// From PEM: the certificate (the first CERTIFICATE block is the leaf) and its key
    /// (PKCS#8 or PKCS#1 RSA). Both may be in the same text.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, CertificateError> {
        let leaf = CertificateDer::from_pem_slice(cert_pem).map_err(|e| {
            CertificateError::Certificate(format!("no usable CERTIFICATE block ({e})"))
        })?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| {
            CertificateError::Key("no usable PRIVATE KEY or RSA PRIVATE KEY block".into())
        })?;
        let key = match &key {
            PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
            _ => return Err(CertificateError::Key("not an RSA key".into())),
        }
        .map_err(|e| CertificateError::Key(format!("not a usable RSA key ({e})")))?;
        Self::new(leaf.to_vec(), key)
    }

    /// From PEM files (they may be the same file).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, CertificateError> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map(Zeroizing::new)
                .map_err(|source| CertificateError::Read {
                    path: path.to_owned(),
                    source,
                })
        };
        Self::from_pem(&read(cert)?, &read(key)?)
    }

    /// From a PKCS#12 (PFX) archive; an empty password for Key Vault's password-less PFX.
    pub fn from_pkcs12(der: &[u8], password: &SecretString) -> Result<Self, CertificateError> {
        let (chain, key) =
            crate::pkcs12::open(der, password.expose_secret()).map_err(CertificateError::Pkcs12)?;
        let key = RsaKeyPair::from_pkcs8(&key)
            .map_err(|e| CertificateError::Key(format!("not a usable RSA key ({e})")))?;
        Self::new(chain.into_iter().next().expect("a chain has a leaf"), key)
    }

    fn new(leaf: Vec<u8>, key: RsaKeyPair) -> Result<Self, CertificateError> {
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf)
            .map_err(|e| CertificateError::Certificate(format!("not valid X.509 ({e})")))?;
        // The certificate's subjectPublicKey is the RSAPublicKey DER that aws-lc-rs gives.
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key().as_ref() {
            return Err(CertificateError::Mismatch);
        }
        Ok(Self { leaf, key })
    }

    /// The SHA-1 thumbprint in hex, upper case — how the Azure portal shows it.
    pub fn sha1_thumbprint_hex(&self) -> String {
        digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &self.leaf)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    /// A client assertion for `client_id` at `token_endpoint`, valid from `now` for ten minutes.
    pub fn sign_assertion(
        &self,
        client_id: &str,
        token_endpoint: &str,
        algorithm: AssertionAlgorithm,
        now: SystemTime,
    ) -> Result<String, CertificateError> {
        let (header, padding): (_, &'static dyn signature::RsaEncoding) = match algorithm {
            AssertionAlgorithm::Ps256 => (
                serde_json::json!({
                    "alg": "PS256",
                    "typ": "JWT",
                    "x5t#S256": URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, &self.leaf)),
                }),
                &signature::RSA_PSS_SHA256,
            ),
            AssertionAlgorithm::Rs256 => (
                serde_json::json!({
                    "alg": "RS256",
                    "typ": "JWT",
                    "x5t": URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &self.leaf)),
                }),
                &signature::RSA_PKCS1_SHA256,
            ),
        };
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti)
            .map_err(|_| CertificateError::Key("no randomness".into()))?;
        let claims = serde_json::json!({
            "aud": token_endpoint,
            "iss": client_id,
            "sub": client_id,
            "jti": custos_ids::fmt::guid(&jti),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                padding,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| CertificateError::Key("signing failed".into()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// Supplies a freshly signed assertion to the SDK's `ClientAssertionCredential` per token request.
#[derive(Debug)]
pub(crate) struct CertificateAssertion {
    certificate: ClientCertificate,
    client_id: String,
    token_endpoint: String,
    algorithm: AssertionAlgorithm,
}

impl CertificateAssertion {
    pub(crate) fn new(
        certificate: ClientCertificate,
        client_id: String,
        token_endpoint: String,
        algorithm: AssertionAlgorithm,
    ) -> Self {
        Self {
            certificate,
            client_id,
            token_endpoint,
            algorithm,
        }
    }
}

#[async_trait::async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        self.certificate
            .sign_assertion(
                &self.client_id,
                &self.token_endpoint,
                self.algorithm,
                SystemTime::now(),
            )
            .map_err(|e| {
                azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Credential,
                    e.to_string(),
                )
            })
    }
}
