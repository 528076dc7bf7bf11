//! PEM certificate and key files to rustls configurations.
//!
//! Every Custos server (the sample app, the CAS, the emulator) starts by reading a certificate
//! chain and a private key from files an operator or the CAS wrote. This crate turns those files
//! into a rustls [`CertifiedKey`] and a [`ServerConfig`], and when it cannot, it says which file
//! and what is wrong with it in one line — the error a user sees when an app starts without
//! its injected certificates.
//!
//! It must never put key material into an error: PEM decoding details of a key file are
//! reduced to a fixed description.
//!
//! It also names TLS keys the Custos way — by the SHA-256 of their SubjectPublicKeyInfo
//! ([`custos_ids::KeyHash`]) — and verifies servers pinned by that hash
//! ([`pinned_server_verifier`]).
//!
//! The only crypto provider is aws-lc-rs ([`provider`]).

#![warn(missing_docs)]

mod pin;
mod replaceable;

pub use pin::any_client_key_verifier;
pub use pin::{PinMismatch, pinned_server_verifier, unauthenticated_server_verifier};
pub use replaceable::ReplaceableIdentity;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

/// ALPN identifiers for a server that speaks HTTP/2 and HTTP/1.1, HTTP/2 preferred.
pub const ALPN_H2_HTTP11: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The process-wide crypto provider: aws-lc-rs.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Why a certificate or key file could not be used. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read (missing, unreadable, a directory, ...).
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The file is not well-formed PEM.
    #[error("{}: malformed PEM: {problem}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong, without any of the file's content.
        problem: PemProblem,
    },
    /// The file holds no certificate.
    #[error("{}: no certificate found (expected a PEM \"CERTIFICATE\" block)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A certificate in the file is not a valid X.509 certificate.
    #[error("{}: certificate is not valid X.509: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// The parser's reason.
        reason: String,
    },
    /// The file holds no private key.
    #[error(
        "{}: no private key found (expected a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" block)",
        path.display()
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is of a type or encoding the crypto provider does not support, or is corrupt.
    #[error("{}: unusable private key: {reason}", path.display())]
    BadPrivateKey {
        /// The file.
        path: PathBuf,
        /// The provider's reason (it never includes key material).
        reason: String,
    },
    /// The private key is not the key of the first certificate in the chain.
    #[error("{}: private key does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

/// A PEM syntax problem, described without quoting the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemProblem {
    /// A `-----BEGIN` line without its `-----END` line.
    MissingEnd,
    /// A `-----BEGIN` line that is not well-formed.
    BadBegin,
    /// The base64 body does not decode.
    BadBase64,
    /// A section larger than the PEM parser accepts.
    TooLarge,
}

impl fmt::Display for PemProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingEnd => "a BEGIN line has no matching END line",
            Self::BadBegin => "a BEGIN line is not well-formed",
            Self::BadBase64 => "the base64 body does not decode",
            Self::TooLarge => "a section is too large",
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem_error(path: &Path, error: pem::Error) -> LoadError {
    let problem = match error {
        pem::Error::MissingSectionEnd { .. } => PemProblem::MissingEnd,
        pem::Error::IllegalSectionStart { .. } => PemProblem::BadBegin,
        pem::Error::SectionTooLarge => PemProblem::TooLarge,
        // Base64 errors, and anything newer, get the generic description.
        _ => PemProblem::BadBase64,
    };
    LoadError::Pem {
        path: path.to_owned(),
        problem,
    }
}

/// Reads every certificate from a PEM file, leaf first (the order of the file).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    parse_certificates(path, &read(path)?)
}

/// Parses every certificate from PEM text that came from `path` (named in errors).
pub fn parse_certificates(
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(LoadError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads the one private key (PKCS#8, PKCS#1 RSA or SEC1 EC) from a PEM file.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, LoadError> {
    let pem = Zeroizing::new(read(path)?);
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        pem::Error::NoItemsFound => LoadError::NoPrivateKey {
            path: path.to_owned(),
        },
        other => pem_error(path, other),
    })
}

/// Loads a certificate chain and its private key, and checks that they belong together.
pub fn load_certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, LoadError> {
    let chain = read_certificates(cert_path)?;
    let key = read_private_key(key_path)?;
    certified_key(cert_path, chain, key_path, key)
}

/// Builds a [`CertifiedKey`] from parsed parts, naming `cert_path`/`key_path` in errors.
pub fn certified_key(
    cert_path: &Path,
    chain: Vec<CertificateDer<'static>>,
    key_path: &Path,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, LoadError> {
    let signing_key =
        provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| LoadError::BadPrivateKey {
                path: key_path.to_owned(),
                reason: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(LoadError::KeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            })
        }
        // aws-lc-rs keys always know their public key, so "Unknown" cannot pass silently.
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {
            Err(LoadError::BadPrivateKey {
                path: key_path.to_owned(),
                reason: "its public key cannot be derived".into(),
            })
        }
        Err(e) => Err(LoadError::BadCertificate {
            path: cert_path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// A TLS server configuration (TLS 1.2 and 1.3, no client authentication) serving `key`
/// with the given ALPN protocols.
pub fn server_config(key: CertifiedKey, alpn: &[&[u8]]) -> ServerConfig {
    server_config_with_resolver(Arc::new(SingleKey(Arc::new(key))), alpn)
}

fn server_config_with_resolver(
    resolver: Arc<dyn ResolvesServerCert>,
    alpn: &[&[u8]],
) -> ServerConfig {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// Serves one certificate whatever the client asks for (SNI is not required).
#[derive(Debug)]
struct SingleKey(Arc<CertifiedKey>);

impl ResolvesServerCert for SingleKey {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests;
