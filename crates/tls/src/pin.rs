//! Trust by key: a TLS key is named by the SHA-256 of its SubjectPublicKeyInfo.
//!
//! Custos identifies CLI users and services by their key hash, and clients that learnt the
//! CAS's key by attesting it pin that hash instead of trusting a name or a CA — so an IP
//! address works as well as a host name, and nothing about issuers is trusted.

use std::sync::Arc;

use custos_ids::{KeyHash, spki_of_certificate};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// A server verifier that accepts exactly the key `pin`, whatever the name or issuer, and
/// still checks that the server proves possession of it in the handshake.
pub fn pinned_server_verifier(pin: KeyHash) -> Arc<dyn ServerCertVerifier> {
    Arc::new(KeyVerifier {
        pin: Some(pin),
        algorithms: crate::provider().signature_verification_algorithms,
    })
}

/// A server verifier that accepts any key (checking only the handshake signature).
///
/// Dangerous: for a client that binds the server's key afterwards by other means (attesting
/// the CAS, whose evidence names its key), and for simulation, where it must say so loudly.
pub fn unauthenticated_server_verifier() -> Arc<dyn ServerCertVerifier> {
    Arc::new(KeyVerifier {
        pin: None,
        algorithms: crate::provider().signature_verification_algorithms,
    })
}

/// The handshake-signature methods every verifier here shares: whoever the peer is, it must
/// prove it holds its certificate's key, with an algorithm of `self.algorithms`.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

#[derive(Debug)]
struct KeyVerifier {
    pin: Option<KeyHash>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for KeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = KeyHash::of_certificate(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        match self.pin {
            None => Ok(ServerCertVerified::assertion()),
            Some(pin) if pin == seen => Ok(ServerCertVerified::assertion()),
            // Typed, so a client can tell a re-keyed (or another) server from other TLS
            // failures by downcasting; `Other` (not `InvalidCertificate`, which would print
            // it as `Debug`) keeps the message readable where the TLS error is reported.
            Some(pin) => Err(rustls::Error::Other(rustls::OtherError(Arc::new(
                PinMismatch {
                    expected: pin,
                    actual: seen,
                },
            )))),
        }
    }

    handshake_signatures!();
}

/// A client verifier for servers whose clients are their keys: any well-formed client
/// certificate is accepted (no CA, no expiry) and the handshake proves its key; the
/// server then names the client by [`KeyHash::of_certificate`]. `mandatory`: a client
/// without a certificate is refused at the handshake.
pub fn any_client_key_verifier(mandatory: bool) -> Arc<dyn ClientCertVerifier> {
    Arc::new(AnyClientKey {
        mandatory,
        algorithms: crate::provider().signature_verification_algorithms,
    })
}

#[derive(Debug)]
struct AnyClientKey {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientKey {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        spki_of_certificate(end_entity)
            .map(|_| ClientCertVerified::assertion())
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))
    }

    handshake_signatures!();
}

/// The server's key is not the pinned one.
#[derive(Debug, thiserror::Error)]
#[error("server key hash is {actual}, expected the pinned {expected}")]
pub struct PinMismatch {
    /// The pinned hash.
    pub expected: KeyHash,
    /// The server's.
    pub actual: KeyHash,
}

impl PinMismatch {
    /// The mismatch that failed a handshake, if that is why it failed: `error` is the I/O
    /// error rustls's streams and tokio-rustls report, holding the verifier's error.
    pub fn of_handshake(error: &std::io::Error) -> Option<&Self> {
        match error.get_ref()?.downcast_ref::<rustls::Error>()? {
            rustls::Error::Other(other) => other.0.downcast_ref::<Self>(),
            _ => None,
        }
    }
}
