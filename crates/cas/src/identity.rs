//! Client identities: the SHA-256 of a certificate's SubjectPublicKeyInfo.
//!
//! A client is its key, not its certificate: renewing a certificate for the same key keeps
//! access, and nothing about names or issuers is trusted.

use std::fmt;
use std::str::FromStr;

use x509_parser::prelude::{FromDer, X509Certificate};

/// A client's identity: SHA-256 of its certificate's SubjectPublicKeyInfo DER (written as 64
/// lower-case hex digits). The same value as a `PublicKeyHash` in an access policy.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId([u8; 32]);

/// A certificate whose public key could not be found.
#[derive(Debug, thiserror::Error)]
#[error("client certificate is not a valid X.509 certificate: {0}")]
pub struct CertificateError(String);

/// A text that is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error(
    "a client identity is 64 hex digits (SHA-256 of a SubjectPublicKeyInfo), found {0} characters"
)]
pub struct ClientIdError(usize);

impl ClientId {
    /// From raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The identity of the key in `spki_der` (a SubjectPublicKeyInfo).
    pub fn of_spki(spki_der: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// The identity of the key certified by `cert_der`.
    pub fn of_certificate(cert_der: &[u8]) -> Result<Self, CertificateError> {
        spki_of_certificate(cert_der).map(Self::of_spki)
    }
}

/// The SubjectPublicKeyInfo DER of a certificate.
pub fn spki_of_certificate(cert_der: &[u8]) -> Result<&[u8], CertificateError> {
    let (rest, cert) =
        X509Certificate::from_der(cert_der).map_err(|e| CertificateError(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertificateError(
            "trailing bytes after the certificate".into(),
        ));
    }
    Ok(cert.tbs_certificate.subject_pki.raw)
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({self})")
    }
}

impl FromStr for ClientId {
    type Err = ClientIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ClientIdError(s.chars().count()))?;
        Ok(Self(out))
    }
}

impl serde::Serialize for ClientId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for ClientId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_the_key_not_the_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let a = rcgen::CertificateParams::new(vec!["a".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let b = rcgen::CertificateParams::new(vec!["b".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let id_a = ClientId::of_certificate(a.der()).unwrap();
        assert_eq!(id_a, ClientId::of_certificate(b.der()).unwrap());
        assert_eq!(
            id_a,
            ClientId::of_spki(&rcgen::PublicKeyData::subject_public_key_info(&key))
        );
        assert_eq!(id_a.to_string().parse::<ClientId>().unwrap(), id_a);
        let other = rcgen::KeyPair::generate().unwrap();
        assert_ne!(
            id_a,
            ClientId::of_spki(&rcgen::PublicKeyData::subject_public_key_info(&other))
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(ClientId::of_certificate(b"not a certificate").is_err());
        assert!("abc".parse::<ClientId>().is_err());
    }
}
