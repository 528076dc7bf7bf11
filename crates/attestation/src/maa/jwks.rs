//! An MAA instance's signing keys, from its JWKS (`GET {url}/certs`).
//!
//! MAA publishes certificates only (`x5c`, no `n`/`e`): the key of an entry is the RSA key
//! of its first certificate. Keys are parsed once, so a token verification costs one RSA
//! signature check.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::MaaError;

/// One JWKS key: its certificate and the RSA key in it.
#[derive(Clone)]
pub struct MaaSigningKey {
    kid: String,
    certificate: Arc<[u8]>,
    key: Arc<ParsedPublicKey>,
    modulus_bits: usize,
}

impl std::fmt::Debug for MaaSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MaaSigningKey({:?}, RSA-{})",
            self.kid, self.modulus_bits
        )
    }
}

impl MaaSigningKey {
    /// From a DER certificate with an RSA key.
    pub fn from_certificate(kid: &str, der: &[u8]) -> Result<Self, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("x5c[0] is not a certificate: {e}"))?;
        let spki = cert.public_key();
        let modulus_bits = match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => modulus_bits(rsa.modulus),
            _ => return Err("x5c[0] does not hold an RSA key".into()),
        };
        // The legacy algorithm admits 1024-bit keys; the minimum size is our check.
        let key = ParsedPublicKey::new(&RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, spki.raw)
            .map_err(|e| format!("RSA key rejected: {e}"))?;
        Ok(Self {
            kid: kid.to_owned(),
            certificate: der.into(),
            key: Arc::new(key),
            modulus_bits,
        })
    }

    /// The kid.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The certificate (`x5c[0]`), DER.
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// The RSA modulus size in bits.
    pub fn modulus_bits(&self) -> usize {
        self.modulus_bits
    }

    /// Verifies an RSASSA-PKCS1-v1_5 SHA-256 signature.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

fn modulus_bits(modulus: &[u8]) -> usize {
    let modulus = match modulus.iter().position(|b| *b != 0) {
        Some(first) => modulus.get(first..).unwrap_or_default(),
        None => return 0,
    };
    let leading = modulus.first().map_or(0, |b| b.leading_zeros() as usize);
    (modulus.len() * 8).saturating_sub(leading)
}

/// The signing keys of one MAA instance, by kid. Entries without a usable `x5c` are kept
/// with the reason, so a token naming them is rejected with that reason.
#[derive(Debug, Clone, Default)]
pub struct MaaKeySet {
    keys: BTreeMap<String, Result<MaaSigningKey, String>>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    #[serde(default)]
    x5c: Vec<String>,
}

impl MaaKeySet {
    /// Parses a JWKS document (`{"keys": [{"kid", "x5c": [base64 DER, ...]}, ...]}`).
    /// Two entries with the same kid make the set ambiguous and are rejected.
    pub fn from_jwks(json: &[u8]) -> Result<Self, MaaError> {
        let jwks: Jwks =
            serde_json::from_slice(json).map_err(|e| MaaError::Jwks(format!("not a JWKS: {e}")))?;
        let mut keys = BTreeMap::new();
        for (index, jwk) in jwks.keys.into_iter().enumerate() {
            let kid = jwk
                .kid
                .ok_or_else(|| MaaError::Jwks(format!("key {index} has no kid")))?;
            let key = match jwk.x5c.first() {
                None => Err("no x5c certificate".to_owned()),
                Some(b64) => STANDARD
                    .decode(b64)
                    .map_err(|_| "x5c[0] is not base64".to_owned())
                    .and_then(|der| MaaSigningKey::from_certificate(&kid, &der)),
            };
            if keys.insert(kid.clone(), key).is_some() {
                return Err(MaaError::Jwks(format!("kid {kid:?} appears twice")));
            }
        }
        Ok(Self { keys })
    }

    /// A set of keys.
    pub fn from_keys(keys: impl IntoIterator<Item = MaaSigningKey>) -> Self {
        Self {
            keys: keys.into_iter().map(|k| (k.kid.clone(), Ok(k))).collect(),
        }
    }

    /// The key for `kid`.
    pub fn get(&self, kid: &str) -> Result<&MaaSigningKey, MaaError> {
        match self.keys.get(kid) {
            Some(Ok(key)) => Ok(key),
            Some(Err(reason)) => Err(MaaError::UnusableKey {
                kid: kid.to_owned(),
                reason: reason.clone(),
            }),
            None => Err(MaaError::UnknownKid {
                kid: kid.to_owned(),
                known: self
                    .keys
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Every usable key, in kid order.
    pub fn keys(&self) -> impl Iterator<Item = &MaaSigningKey> {
        self.keys.values().filter_map(|k| k.as_ref().ok())
    }

    /// Every entry's kid with its key or the reason it is unusable.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Result<&MaaSigningKey, &str>)> {
        self.keys
            .iter()
            .map(|(kid, k)| (kid.as_str(), k.as_ref().map_err(String::as_str)))
    }
}

#[cfg(test)]
mod tests {
    use super::modulus_bits;

    #[test]
    fn modulus_bits_ignore_leading_zeros() {
        assert_eq!(modulus_bits(&[0x00, 0x80, 0, 0]), 24);
        assert_eq!(modulus_bits(&[0x01, 0]), 9);
        assert_eq!(modulus_bits(&[0, 0]), 0);
        let mut n = vec![0u8; 257];
        n[1] = 0xc0;
        assert_eq!(modulus_bits(&n), 2048);
    }
}
