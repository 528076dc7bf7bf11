//! A key named by the SHA-256 of its SubjectPublicKeyInfo.

use crate::spki::{CertificateError, spki_of_certificate};

crate::hex_id!(
    /// The identity of a public key: SHA-256 of its DER-encoded SubjectPublicKeyInfo, 32 bytes.
    ///
    /// A client's identity (the key of its TLS certificate, as `custos self show-key-hash`
    /// prints it, and a public-key hash in an access policy), a platform key's id, and the
    /// CAS key a client pins are all this one value. A key, not a certificate: renewing a
    /// certificate for the same key keeps the identity, and nothing about names or issuers
    /// is trusted.
    KeyHash,
    32
);

impl KeyHash {
    /// The hash of `spki_der`.
    pub fn of_spki(spki_der: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// The hash of the key certified by `cert_der`.
    pub fn of_certificate(cert_der: &[u8]) -> Result<Self, CertificateError> {
        spki_of_certificate(cert_der).map(Self::of_spki)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_key_not_the_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let a = rcgen::CertificateParams::new(vec!["a".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let b = rcgen::CertificateParams::new(vec!["b".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let hash = KeyHash::of_certificate(a.der()).unwrap();
        assert_eq!(hash, KeyHash::of_certificate(b.der()).unwrap());
        assert_eq!(
            hash,
            KeyHash::of_spki(&rcgen::PublicKeyData::subject_public_key_info(&key))
        );
        assert_eq!(hash.to_string().parse::<KeyHash>().unwrap(), hash);
        let other = rcgen::KeyPair::generate().unwrap();
        assert_ne!(
            hash,
            KeyHash::of_spki(&rcgen::PublicKeyData::subject_public_key_info(&other))
        );
    }

    #[test]
    fn the_hash_is_sha256_of_the_spki_in_lower_case_hex() {
        // SHA-256 of the empty string: a known answer.
        assert_eq!(
            KeyHash::of_spki(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn garbage_is_not_a_certificate_nor_a_key_hash() {
        assert!(KeyHash::of_certificate(b"not a certificate").is_err());
        assert!(KeyHash::of_certificate(&[1, 2, 3]).is_err());
        assert!("abc".parse::<KeyHash>().is_err());
    }
}
