//! P-256 public keys as JSON Web Keys (RFC 7517/7518) ↔ SubjectPublicKeyInfo.
//!
//! `custos-run` names its ephemeral key as a JWK in the runtime data its evidence binds; the
//! CAS checks that the TLS client certificate carries the same key by comparing
//! [`KeyHash`](crate::KeyHash)es of the SubjectPublicKeyInfo. The JWK's wire type is
//! `custos_protocol::enclave::Jwk` (data only); these are its conversions.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::spki::{P256Point, p256_spki};

/// `kty` of an elliptic-curve JWK.
pub const KTY_EC: &str = "EC";
/// `crv` of a P-256 JWK.
pub const CRV_P256: &str = "P-256";

/// The members of a P-256 public JWK, borrowed from wherever the JWK was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct P256Members<'a> {
    /// `kty`: [`KTY_EC`].
    pub kty: &'a str,
    /// `crv`: [`CRV_P256`].
    pub crv: &'a str,
    /// `x`: the x coordinate, 32 bytes in base64url without padding.
    pub x: &'a str,
    /// `y`: the y coordinate, 32 bytes in base64url without padding.
    pub y: &'a str,
}

/// Why JWK members are not a P-256 public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// Another key type or curve.
    #[error("expected kty {KTY_EC} and crv {CRV_P256}, actual kty {kty:?} and crv {crv:?}")]
    NotP256 {
        /// The JWK's `kty`.
        kty: String,
        /// The JWK's `crv`.
        crv: String,
    },
    /// A coordinate that is not 32 bytes in base64url.
    #[error("expected {member} as 32 bytes in base64url")]
    Coordinate {
        /// `x` or `y`.
        member: &'static str,
    },
}

/// The `x` and `y` members (base64url, no padding) of the P-256 point `xy`.
pub fn p256_coordinates(xy: &P256Point) -> (String, String) {
    let (x, y) = xy.split_at(32);
    (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y))
}

/// The SubjectPublicKeyInfo DER of a P-256 JWK. The point is not checked to be on the curve:
/// the key is compared by hash with a certificate's key, which the TLS handshake proved.
pub fn p256_spki_of(jwk: P256Members<'_>) -> Result<Vec<u8>, JwkError> {
    if jwk.kty != KTY_EC || jwk.crv != CRV_P256 {
        return Err(JwkError::NotP256 {
            kty: jwk.kty.to_owned(),
            crv: jwk.crv.to_owned(),
        });
    }
    let coordinate = |member: &'static str, text: &str| {
        URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or(JwkError::Coordinate { member })
    };
    let mut xy = [0u8; 64];
    let (x, y) = xy.split_at_mut(32);
    x.copy_from_slice(&coordinate("x", jwk.x)?);
    y.copy_from_slice(&coordinate("y", jwk.y)?);
    Ok(p256_spki(&xy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyHash;

    #[test]
    fn a_jwk_names_the_same_key_as_the_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let spki = crate::spki_of_certificate(cert.der()).unwrap();
        let (x, y) = p256_coordinates(crate::spki::p256_point(spki).unwrap());
        let jwk = P256Members {
            kty: KTY_EC,
            crv: CRV_P256,
            x: &x,
            y: &y,
        };
        let from_jwk = p256_spki_of(jwk).unwrap();
        assert_eq!(from_jwk, spki);
        assert_eq!(
            KeyHash::of_spki(&from_jwk),
            KeyHash::of_certificate(cert.der()).unwrap()
        );
    }

    #[test]
    fn other_curves_and_bad_coordinates_are_named() {
        let (x, y) = p256_coordinates(&[1; 64]);
        let p384 = P256Members {
            kty: "EC",
            crv: "P-384",
            x: &x,
            y: &y,
        };
        assert_eq!(
            p256_spki_of(p384).unwrap_err().to_string(),
            "expected kty EC and crv P-256, actual kty \"EC\" and crv \"P-384\""
        );
        let short_y = P256Members {
            crv: CRV_P256,
            y: "AAAA",
            ..p384
        };
        assert_eq!(
            p256_spki_of(short_y).unwrap_err(),
            JwkError::Coordinate { member: "y" }
        );
        let padded_x = format!("{x}=");
        let bad_x = P256Members {
            crv: CRV_P256,
            x: &padded_x,
            ..p384
        };
        assert_eq!(
            p256_spki_of(bad_x).unwrap_err().to_string(),
            "expected x as 32 bytes in base64url"
        );
    }
}
