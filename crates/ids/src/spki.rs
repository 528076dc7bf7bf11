//! SubjectPublicKeyInfo (SPKI) DER: the form a key is named by ([`crate::KeyHash`]).
//!
//! A certificate's SPKI, and the one key type Custos builds SPKIs for itself: P-256 with an
//! uncompressed point (platform keys in simulated quotes, `custos-run`'s ephemeral key).

use x509_parser::prelude::{FromDer, X509Certificate};

/// A certificate whose public key cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid X.509 certificate: {0}")]
pub struct CertificateError(String);

/// The SubjectPublicKeyInfo DER (with its SEQUENCE header) of the certificate `cert_der`.
pub fn spki_of_certificate(cert_der: &[u8]) -> Result<&[u8], CertificateError> {
    let (rest, cert) =
        X509Certificate::from_der(cert_der).map_err(|e| CertificateError(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertificateError(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        )));
    }
    Ok(cert.tbs_certificate.subject_pki.raw)
}

/// DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point:
/// `SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0x04 ‖ x ‖ y) }`.
pub const P256_PREFIX: [u8; 27] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];

/// Length of a P-256 SubjectPublicKeyInfo with an uncompressed point.
pub const P256_LEN: usize = P256_PREFIX.len() + 64;

/// A P-256 public point as `x ‖ y` (32 bytes each, big-endian).
pub type P256Point = [u8; 64];

/// The SubjectPublicKeyInfo DER of the P-256 point `xy`.
pub fn p256_spki(xy: &P256Point) -> Vec<u8> {
    let mut der = Vec::with_capacity(P256_LEN);
    der.extend_from_slice(&P256_PREFIX);
    der.extend_from_slice(xy);
    der
}

/// Why a SubjectPublicKeyInfo is not a P-256 key with an uncompressed point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum P256SpkiError {
    /// Another algorithm, curve or point encoding.
    #[error("not a P-256 SubjectPublicKeyInfo with an uncompressed point")]
    NotP256,
    /// The right header, but not the right length.
    #[error("a P-256 SubjectPublicKeyInfo is {P256_LEN} bytes, found {0}")]
    Length(usize),
}

/// The point `x ‖ y` of a P-256 SubjectPublicKeyInfo with an uncompressed point. Whether
/// the point is on the curve is for the signature verifier to check.
pub fn p256_point(spki_der: &[u8]) -> Result<&P256Point, P256SpkiError> {
    let xy = spki_der
        .strip_prefix(&P256_PREFIX[..])
        .ok_or(P256SpkiError::NotP256)?;
    xy.try_into()
        .map_err(|_| P256SpkiError::Length(spki_der.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_p256_point_and_its_spki_convert_both_ways_as_rcgen_writes_it() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let xy = p256_point(&spki).unwrap();
        assert_eq!(&key.public_key_raw()[1..], xy);
        assert_eq!(p256_spki(xy), spki);

        let cert = rcgen::CertificateParams::new(vec!["a".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(spki_of_certificate(cert.der()).unwrap(), spki.as_slice());
    }

    #[test]
    fn other_keys_and_lengths_are_refused() {
        let rsa_like = [0x30, 0x82, 0x01, 0x22];
        assert_eq!(p256_point(&rsa_like), Err(P256SpkiError::NotP256));
        let mut long = p256_spki(&[7; 64]);
        long.push(0);
        assert_eq!(p256_point(&long), Err(P256SpkiError::Length(P256_LEN + 1)));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_not_a_certificate() {
        assert!(spki_of_certificate(b"not a certificate").is_err());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let mut der = cert.der().to_vec();
        der.push(0);
        let error = spki_of_certificate(&der).unwrap_err();
        assert!(error.to_string().contains("1 trailing bytes"), "{error}");
    }
}
