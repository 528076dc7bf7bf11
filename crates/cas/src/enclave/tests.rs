//! Unit tests of the channel checks.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custos_protocol::enclave::Jwk;

use super::*;

#[test]
fn a_jwk_has_the_identity_of_a_certificate_for_the_same_key() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let point = rcgen::PublicKeyData::der_bytes(&key).to_vec();
    assert_eq!(point.len(), 65);
    let jwk = Jwk {
        kty: "EC".into(),
        crv: "P-256".into(),
        x: URL_SAFE_NO_PAD.encode(&point[1..33]),
        y: URL_SAFE_NO_PAD.encode(&point[33..]),
    };
    assert_eq!(
        jwk_key_id(&jwk).unwrap(),
        KeyHash::of_certificate(cert.der()).unwrap()
    );
    let mut bad = jwk.clone();
    bad.crv = "P-384".into();
    assert!(jwk_key_id(&bad).unwrap_err().to_string().contains("P-256"));
    let mut short = jwk;
    short.x = URL_SAFE_NO_PAD.encode([1u8; 31]);
    assert_eq!(
        jwk_key_id(&short).unwrap_err().to_string(),
        "expected x as 32 bytes in base64url"
    );
}
