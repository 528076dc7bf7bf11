//! The client's identity: a key and a self-signed certificate. The CAS knows a client by the
//! SHA-256 of the certificate's public key ([`KeyHash`]), so renewing the certificate for the
//! same key keeps access, and nothing about names or issuers is trusted.

use custos_ids::KeyHash;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

/// Why an identity could not be made or used.
#[derive(Debug, thiserror::Error)]
#[error("client identity: {0}")]
pub struct IdentityError(String);

/// A client certificate and its key.
#[derive(Debug)]
pub struct ClientIdentity {
    /// The certificate, DER.
    pub certificate: CertificateDer<'static>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        Self {
            certificate: self.certificate.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl ClientIdentity {
    /// A new P-256 key with a self-signed certificate naming `common_name`.
    pub fn generate(common_name: &str) -> Result<Self, IdentityError> {
        let error = |e: rcgen::Error| IdentityError(e.to_string());
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(error)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(error)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - std::time::Duration::from_secs(3600);
        params.not_after = now + std::time::Duration::from_secs(20 * 365 * 24 * 3600);
        let cert = params.self_signed(&key).map_err(error)?;
        Ok(Self {
            certificate: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        })
    }

    /// The identity the CAS sees: SHA-256 of the certificate's public key.
    pub fn id(&self) -> Result<KeyHash, IdentityError> {
        KeyHash::of_certificate(&self.certificate).map_err(|e| IdentityError(e.to_string()))
    }

    /// The certificate as PEM (`CERTIFICATE`): what access policies may name.
    pub fn certificate_pem(&self) -> String {
        custos_ids::pem::encode("CERTIFICATE", &self.certificate)
    }

    /// The private key as PEM (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`, as it
    /// is encoded), wiped when dropped: for storing the identity.
    pub fn private_key_pem(&self) -> Zeroizing<String> {
        let label = match &self.key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        custos_ids::pem::encode_secret(label, self.key.secret_der())
    }
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::pem::PemObject as _;

    use super::*;

    #[test]
    fn the_identity_is_its_keys_hash_and_survives_pem() {
        let identity = ClientIdentity::generate("alice").unwrap();
        let id = identity.id().unwrap();
        let spki = custos_ids::spki_of_certificate(&identity.certificate).unwrap();
        assert_eq!(id, KeyHash::of_spki(spki));
        assert_ne!(id, ClientIdentity::generate("alice").unwrap().id().unwrap());

        let certificate_pem = identity.certificate_pem();
        assert!(certificate_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        let certificate = CertificateDer::from_pem_slice(certificate_pem.as_bytes()).unwrap();
        assert_eq!(certificate, identity.certificate);
        let key = PrivateKeyDer::from_pem_slice(identity.private_key_pem().as_bytes()).unwrap();
        assert_eq!(key.secret_der(), identity.key.secret_der());
    }
}
