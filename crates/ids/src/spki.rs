//! SubjectPublicKeyInfo (SPKI) DER: the form a key is named by ([`crate::KeyHash`]).
//!
//! A certificate's SPKI, and the key types Custos builds SPKIs for itself: P-256 with an
//! uncompressed point (platform keys in simulated quotes, `custos-run`'s ephemeral key) and RSA
//! from a JWK's modulus and exponent (Key Vault keys, Secure Key Release).

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

/// DER: `tag`, a definite length, `content`.
pub fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER of the unsigned big-endian `bytes` (leading zeros dropped, one added where the
/// top bit would make it negative).
fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let bytes = &bytes[start..];
    let mut content = Vec::with_capacity(bytes.len() + 1);
    if bytes.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(bytes);
    der(0x02, &content)
}

/// The SubjectPublicKeyInfo DER of the RSA public key with modulus `n` and exponent `e`
/// (big-endian, as in a JWK): rsaEncryption with NULL parameters.
pub fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let algorithm = der(
        0x30,
        &[der(0x06, RSA_ENCRYPTION), vec![0x05, 0x00]].concat(),
    );
    let mut bits = vec![0u8];
    bits.extend(der(0x30, &[der_uint(n), der_uint(e)].concat()));
    der(0x30, &[algorithm, der(0x03, &bits)].concat())
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
    fn an_rsa_spki_from_n_and_e_is_what_aws_lc_writes() {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        let components: aws_lc_rs::rsa::PublicKeyComponents<Vec<u8>> = public.into();
        let mut padded_n = vec![0, 0];
        padded_n.extend_from_slice(&components.n);
        let spki = rsa_spki(&padded_n, &components.e);
        assert_eq!(spki, public.as_der().unwrap().as_ref());
    }

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
