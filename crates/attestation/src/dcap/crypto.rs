//! The `dcap-qvl` configuration: its audited X.509 parser and ECDSA signature encoder, with
//! aws-lc-rs (the project's only crypto provider) for ECDSA P-256 and SHA-2.
//!
//! The signature algorithm is rustls-webpki's aws-lc-rs ECDSA P-256/SHA-256, the one rustls
//! uses for TLS certificates; it implements the same `rustls-pki-types` trait as `dcap-qvl`'s
//! own backends. It is 3–4 times faster than the RustCrypto backend here, which keeps DCAP
//! verification within its budget; `tests/dcap.rs` checks both backends agree.

use dcap_qvl::config::{Config, CryptoProvider};
use rustls_pki_types::SignatureVerificationAlgorithm;

/// `dcap-qvl` with aws-lc-rs.
pub(crate) struct AwsLcConfig;

impl Config for AwsLcConfig {
    type X509 = dcap_qvl::x509::X509CertBackend;
    type SigEncoder = dcap_qvl::signature::DerSigEncoder;
    type Crypto = AwsLcCrypto;
}

/// ECDSA P-256 verification and SHA-2 from aws-lc-rs.
pub(crate) struct AwsLcCrypto;

impl CryptoProvider for AwsLcCrypto {
    fn sig_algo() -> &'static dyn SignatureVerificationAlgorithm {
        webpki::aws_lc_rs::ECDSA_P256_SHA256
    }

    fn sha256(data: &[u8]) -> [u8; 32] {
        crate::claims::sha256(data)
    }

    fn sha384(data: &[u8]) -> [u8; 48] {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, data);
        let mut out = [0u8; 48];
        out.copy_from_slice(digest.as_ref());
        out
    }
}
