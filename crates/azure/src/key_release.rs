//! Secure Key Release, the caller's side: the ephemeral RSA key a released key is wrapped to
//! (presented to MAA in the runtime data, so the token carries it in `x-ms-runtime.keys`),
//! and opening Key Vault's answer — a JWS whose payload holds the key with its `key_hsm` blob.
//!
//! Opening checks, in order, and fails naming the step: the JWS's structure (RS256, `x5c`),
//! its signature under `x5c[0]`, the `x5c` chain (each certificate signed by the next, the
//! last one a trusted root, unless the caller opts out), that the answer is for the key, `enc`
//! and nonce asked for, the `key_hsm` header, then unwraps `CKM_RSA_AES_KEY_WRAP` (RSA-OAEP
//! with SHA-1, as Key Vault's BYOK specification names it) or `RSA_AES_KEY_WRAP_256`/`_384`
//! (RSA-OAEP with SHA-256/384): the head (modulus-sized) is the OAEP-encrypted AES key, the
//! rest the key material wrapped with padding (RFC 5649). RSA and EC keys come out as PKCS#8
//! DER, symmetric keys as their bytes.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::key_wrap::{AES_128, AES_256, AesKek, KeyWrapPadded};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OaepAlgorithm,
    OaepPrivateDecryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// How Key Vault protects the released key (`enc` of the release request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyWrapAlgorithm {
    /// `CKM_RSA_AES_KEY_WRAP`: RSA-OAEP with SHA-1, then AES key wrap with padding.
    CkmRsaAesKeyWrap,
    /// `RSA_AES_KEY_WRAP_256`: RSA-OAEP with SHA-256, then AES key wrap with padding.
    RsaAesKeyWrap256,
    /// `RSA_AES_KEY_WRAP_384`: RSA-OAEP with SHA-384, then AES key wrap with padding.
    RsaAesKeyWrap384,
}

impl KeyWrapAlgorithm {
    /// All three, for tests and `--help` texts.
    pub const ALL: [Self; 3] = [
        Self::CkmRsaAesKeyWrap,
        Self::RsaAesKeyWrap256,
        Self::RsaAesKeyWrap384,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CkmRsaAesKeyWrap => "CKM_RSA_AES_KEY_WRAP",
            Self::RsaAesKeyWrap256 => "RSA_AES_KEY_WRAP_256",
            Self::RsaAesKeyWrap384 => "RSA_AES_KEY_WRAP_384",
        }
    }

    fn oaep(self) -> &'static OaepAlgorithm {
        match self {
            Self::CkmRsaAesKeyWrap => &OAEP_SHA1_MGF1SHA1,
            Self::RsaAesKeyWrap256 => &OAEP_SHA256_MGF1SHA256,
            Self::RsaAesKeyWrap384 => &OAEP_SHA384_MGF1SHA384,
        }
    }
}

impl std::str::FromStr for KeyWrapAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a key wrap algorithm (CKM_RSA_AES_KEY_WRAP, RSA_AES_KEY_WRAP_256 or RSA_AES_KEY_WRAP_384)"
                )
            })
    }
}

/// Opening a released key failed; names the step and why, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("released key: {step}: {reason}")]
pub struct ReleaseError {
    /// The step that failed (`JWS structure`, `JWS signature`, `x5c chain`, `request`,
    /// `key_hsm`, `RSA-OAEP`, `AES key wrap`, `key material`, `wrapping key`).
    pub step: &'static str,
    /// What was expected and found.
    pub reason: String,
}

fn fail(step: &'static str, reason: impl Into<String>) -> ReleaseError {
    ReleaseError {
        step,
        reason: reason.into(),
    }
}

/// The ephemeral RSA key a released key is wrapped to. Its private half never leaves this
/// value (and is not in `Debug`).
pub struct WrappingKey {
    private: OaepPrivateDecryptingKey,
    modulus_len: usize,
    n: Vec<u8>,
    e: Vec<u8>,
    kid: String,
}

impl std::fmt::Debug for WrappingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappingKey")
            .field("kid", &self.kid)
            .field("bits", &(self.modulus_len * 8))
            .finish_non_exhaustive()
    }
}

impl WrappingKey {
    /// A fresh RSA key of `bits` (2048, 3072 or 4096) named `kid` in its JWK.
    pub fn generate(bits: u32, kid: &str) -> Result<Self, ReleaseError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            other => {
                return Err(fail(
                    "wrapping key",
                    format!("expected 2048, 3072 or 4096 bits, actual {other}"),
                ));
            }
        };
        let pair = aws_lc_rs::rsa::KeyPair::generate(size)
            .map_err(|_| fail("wrapping key", "RSA key generation failed"))?;
        let pkcs8 = Zeroizing::new(
            pair.as_der()
                .map_err(|_| fail("wrapping key", "cannot encode the key"))?
                .as_ref()
                .to_vec(),
        );
        Self::from_pkcs8(&pkcs8, kid)
    }

    /// An RSA private key (PKCS#8 DER) named `kid`.
    pub fn from_pkcs8(pkcs8: &[u8], kid: &str) -> Result<Self, ReleaseError> {
        let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| fail("wrapping key", format!("not an RSA PKCS#8 key: {e}")))?;
        let public = pair.public_key();
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        let private = PrivateDecryptingKey::from_pkcs8(pkcs8)
            .ok()
            .and_then(|k| OaepPrivateDecryptingKey::new(k).ok())
            .ok_or_else(|| fail("wrapping key", "the key cannot decrypt RSA-OAEP"))?;
        Ok(Self {
            modulus_len: n.len(),
            private,
            n,
            e,
            kid: kid.to_owned(),
        })
    }

    /// The `kid` of its JWK (Key Vault names it in the `key_hsm` header).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK: `kty` RSA, `kid`, `key_ops` `["encrypt"]`, `n`, `e`.
    pub fn public_jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "kid": self.kid,
            "key_ops": ["encrypt"],
            "n": URL_SAFE_NO_PAD.encode(&self.n),
            "e": URL_SAFE_NO_PAD.encode(&self.e),
        })
    }

    /// The JSON runtime data to attest with (`{"keys": [jwk]}`): MAA puts it in the token's
    /// `x-ms-runtime` claim, where Key Vault finds the key to wrap the released key to.
    pub fn runtime_data(&self) -> Vec<u8> {
        json!({ "keys": [self.public_jwk()] })
            .to_string()
            .into_bytes()
    }
}

/// Who may sign release answers.
#[derive(Debug, Clone)]
pub enum SignerTrust {
    /// The `x5c` chain must end in (or be issued by) one of these root certificates (DER).
    Roots(Vec<Vec<u8>>),
    /// Any signer: the signature is checked against `x5c[0]` and the chain's signatures are
    /// checked, but not who issued it. The wrapped key is still only for the wrapping key's
    /// holder; but anyone who knows its public half could have wrapped a key of their choice.
    AnySigner,
}

/// What the answer must be for.
#[derive(Debug, Clone)]
pub struct ReleaseExpectations<'a> {
    /// The key's name (the release request's `kid` names it).
    pub key_name: &'a str,
    /// The `enc` asked for.
    pub enc: KeyWrapAlgorithm,
    /// The nonce sent, if any: the answer must echo it.
    pub nonce: Option<&'a str>,
    /// Who may have signed it.
    pub signers: &'a SignerTrust,
}

/// Released key material. `Debug` shows the kind only.
pub enum KeyMaterial {
    /// An RSA private key, PKCS#8 DER.
    RsaPrivateKey(Zeroizing<Vec<u8>>),
    /// An EC private key, PKCS#8 DER.
    EcPrivateKey(Zeroizing<Vec<u8>>),
    /// A symmetric key's bytes.
    Symmetric(Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, len) = match self {
            Self::RsaPrivateKey(k) => ("RsaPrivateKey", k.len()),
            Self::EcPrivateKey(k) => ("EcPrivateKey", k.len()),
            Self::Symmetric(k) => ("Symmetric", k.len()),
        };
        write!(f, "{kind}({len} bytes)")
    }
}

/// A released key, opened.
#[derive(Debug)]
pub struct UnwrappedKey {
    /// The key's id (`{vault}/keys/{name}/{version}`).
    pub kid: String,
    /// Its `kty` (e.g. `RSA-HSM`, `oct-HSM`).
    pub kty: String,
    /// The key itself.
    pub material: KeyMaterial,
    /// The answer's signing chain (`x5c`), DER, leaf first.
    pub signer_chain: Vec<Vec<u8>>,
}

fn b64url(step: &'static str, what: &str, text: &str) -> Result<Vec<u8>, ReleaseError> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| fail(step, format!("{what} is not base64url")))
}

/// Opens Key Vault's release answer (`value`, a compact JWS) with `wrapping_key`.
pub fn unwrap_released(
    jws: &str,
    wrapping_key: &WrappingKey,
    expected: &ReleaseExpectations<'_>,
) -> Result<UnwrappedKey, ReleaseError> {
    const STRUCTURE: &str = "JWS structure";
    let parts: Vec<&str> = jws.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err(fail(
            STRUCTURE,
            format!("expected 3 dot-separated parts, actual {}", parts.len()),
        ));
    };
    let header: Value = serde_json::from_slice(&b64url(STRUCTURE, "the header", header_b64)?)
        .map_err(|_| fail(STRUCTURE, "the header is not JSON"))?;
    if header["alg"] != "RS256" {
        return Err(fail(
            STRUCTURE,
            format!("expected alg \"RS256\", actual {}", header["alg"]),
        ));
    }
    let chain: Vec<Vec<u8>> = header["x5c"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| fail(STRUCTURE, "the header has no x5c certificate chain"))?
        .iter()
        .map(|c| c.as_str().and_then(|c| STANDARD.decode(c).ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| fail(STRUCTURE, "an x5c entry is not base64"))?;
    let signature = b64url(STRUCTURE, "the signature", signature_b64)?;
    let leaf_key = rsa_public_key_of(&chain[0])
        .map_err(|why| fail("JWS signature", format!("x5c[0]: {why}")))?;
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, leaf_key)
        .verify(format!("{header_b64}.{payload_b64}").as_bytes(), &signature)
        .map_err(|_| fail("JWS signature", "does not verify under x5c[0]"))?;
    check_chain(&chain, expected.signers)?;

    let payload: Value = serde_json::from_slice(&b64url(STRUCTURE, "the payload", payload_b64)?)
        .map_err(|_| fail(STRUCTURE, "the payload is not JSON"))?;
    check_request(&payload["request"], expected)?;
    let key = &payload["response"]["key"]["key"];
    let kid = key["kid"].as_str().unwrap_or_default().to_owned();
    let kty = key["kty"].as_str().unwrap_or_default().to_owned();
    let key_hsm_b64 = key["key_hsm"]
        .as_str()
        .ok_or_else(|| fail("key_hsm", "response.key.key.key_hsm is missing"))?;
    let key_hsm: Value = serde_json::from_slice(&b64url("key_hsm", "key_hsm", key_hsm_b64)?)
        .map_err(|_| fail("key_hsm", "not JSON"))?;
    let hsm_header = &key_hsm["header"];
    for (field, want) in [
        ("alg", "dir"),
        ("enc", expected.enc.as_str()),
        ("kid", wrapping_key.kid()),
    ] {
        if hsm_header[field] != want {
            return Err(fail(
                "key_hsm",
                format!(
                    "expected header.{field} {want:?}, actual {}",
                    hsm_header[field]
                ),
            ));
        }
    }
    let ciphertext = b64url(
        "key_hsm",
        "ciphertext",
        key_hsm["ciphertext"]
            .as_str()
            .ok_or_else(|| fail("key_hsm", "ciphertext is missing"))?,
    )?;
    let plaintext = rsa_aes_key_unwrap(wrapping_key, expected.enc, &ciphertext)?;
    let material = match kty.as_str() {
        "RSA" | "RSA-HSM" => {
            let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&plaintext)
                .map_err(|e| fail("key material", format!("not an RSA PKCS#8 key: {e}")))?;
            let n = pair
                .public_key()
                .modulus()
                .big_endian_without_leading_zero()
                .to_vec();
            let listed = key["n"]
                .as_str()
                .map(|n| b64url("key material", "n", n))
                .transpose()?;
            if listed.is_some_and(|listed| listed != n) {
                return Err(fail(
                    "key material",
                    "the released private key does not match the answer's public n",
                ));
            }
            KeyMaterial::RsaPrivateKey(plaintext)
        }
        "EC" | "EC-HSM" => KeyMaterial::EcPrivateKey(plaintext),
        "oct" | "oct-HSM" => KeyMaterial::Symmetric(plaintext),
        other => {
            return Err(fail(
                "key material",
                format!("unknown kty {other:?} (RSA, EC or oct, optionally -HSM)"),
            ));
        }
    };
    Ok(UnwrappedKey {
        kid,
        kty,
        material,
        signer_chain: chain,
    })
}

fn check_request(request: &Value, expected: &ReleaseExpectations<'_>) -> Result<(), ReleaseError> {
    const STEP: &str = "request";
    let kid = request["kid"].as_str().unwrap_or_default();
    let name = kid
        .split_once("/keys/")
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
        .unwrap_or_default();
    if !name.eq_ignore_ascii_case(expected.key_name) {
        return Err(fail(
            STEP,
            format!(
                "expected key {:?}, actual request.kid {kid:?}",
                expected.key_name
            ),
        ));
    }
    if request["enc"] != expected.enc.as_str() {
        return Err(fail(
            STEP,
            format!(
                "expected enc {:?}, actual {}",
                expected.enc.as_str(),
                request["enc"]
            ),
        ));
    }
    if let Some(nonce) = expected.nonce
        && request["nonce"] != nonce
    {
        return Err(fail(
            STEP,
            format!("expected nonce {nonce:?}, actual {}", request["nonce"]),
        ));
    }
    Ok(())
}

/// The head is the RSA-OAEP-encrypted AES key (as long as the modulus), the tail the key
/// material wrapped with padding under it.
fn rsa_aes_key_unwrap(
    key: &WrappingKey,
    enc: KeyWrapAlgorithm,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ReleaseError> {
    let (head, tail) = ciphertext
        .split_at_checked(key.modulus_len)
        .ok_or_else(|| {
            fail(
                "RSA-OAEP",
                format!(
                    "ciphertext is {} bytes, shorter than the {}-byte RSA block",
                    ciphertext.len(),
                    key.modulus_len
                ),
            )
        })?;
    let mut aes = Zeroizing::new(vec![0u8; key.private.min_output_size()]);
    let aes_len = key
        .private
        .decrypt(enc.oaep(), head, &mut aes, None)
        .map_err(|_| {
            fail(
                "RSA-OAEP",
                format!(
                    "decryption with {} failed (another wrapping key, or another enc)",
                    enc.as_str()
                ),
            )
        })?
        .len();
    let cipher = match aes_len {
        16 => &AES_128,
        32 => &AES_256,
        other => {
            return Err(fail(
                "AES key wrap",
                format!(
                    "expected a 128- or 256-bit AES key, actual {} bits",
                    other * 8
                ),
            ));
        }
    };
    let kek = AesKek::new(cipher, &aes[..aes_len])
        .map_err(|_| fail("AES key wrap", "unusable AES key"))?;
    let mut out = Zeroizing::new(vec![0u8; tail.len()]);
    let len = kek
        .unwrap_with_padding(tail, &mut out)
        .map_err(|_| {
            fail(
                "AES key wrap",
                "the wrapped key does not unwrap (RFC 5649 check failed)",
            )
        })?
        .len();
    out.truncate(len);
    Ok(out)
}

/// The RSAPublicKey DER of a certificate's key.
fn rsa_public_key_of(cert_der: &[u8]) -> Result<Vec<u8>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err(format!(
            "expected an RSA key, actual algorithm {}",
            spki.algorithm.algorithm
        ));
    }
    Ok(spki.subject_public_key.data.to_vec())
}

/// Each certificate signed by the next; the last one a trusted root or issued by one.
fn check_chain(chain: &[Vec<u8>], trust: &SignerTrust) -> Result<(), ReleaseError> {
    const STEP: &str = "x5c chain";
    for (i, pair) in chain.windows(2).enumerate() {
        verify_issued_by(&pair[0], &pair[1]).map_err(|why| {
            fail(
                STEP,
                format!("x5c[{i}] is not signed by x5c[{}]: {why}", i + 1),
            )
        })?;
    }
    let SignerTrust::Roots(roots) = trust else {
        return Ok(());
    };
    let last = chain.last().expect("x5c is not empty");
    if roots.iter().any(|r| r == last) || roots.iter().any(|r| verify_issued_by(last, r).is_ok()) {
        return Ok(());
    }
    Err(fail(
        STEP,
        format!(
            "expected a chain to one of {} trusted root(s), actual: the chain ends in {}",
            roots.len(),
            subject_of(last)
        ),
    ))
}

fn subject_of(cert_der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(cert_der)
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_else(|_| "an unparsable certificate".into())
}

/// Whether `issuer`'s key signed `cert` (RSA PKCS#1 SHA-256/384/512, ECDSA P-256/P-384).
fn verify_issued_by(cert_der: &[u8], issuer_der: &[u8]) -> Result<(), String> {
    use x509_parser::oid_registry as oids;
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let (_, issuer) = x509_parser::parse_x509_certificate(issuer_der)
        .map_err(|e| format!("issuer is not an X.509 certificate: {e}"))?;
    let algorithm = &cert.signature_algorithm.algorithm;
    let verification: &dyn signature::VerificationAlgorithm =
        if *algorithm == oids::OID_PKCS1_SHA256WITHRSA {
            &signature::RSA_PKCS1_2048_8192_SHA256
        } else if *algorithm == oids::OID_PKCS1_SHA384WITHRSA {
            &signature::RSA_PKCS1_2048_8192_SHA384
        } else if *algorithm == oids::OID_PKCS1_SHA512WITHRSA {
            &signature::RSA_PKCS1_2048_8192_SHA512
        } else if *algorithm == oids::OID_SIG_ECDSA_WITH_SHA256 {
            &signature::ECDSA_P256_SHA256_ASN1
        } else if *algorithm == oids::OID_SIG_ECDSA_WITH_SHA384 {
            &signature::ECDSA_P384_SHA384_ASN1
        } else {
            return Err(format!("unsupported signature algorithm {algorithm}"));
        };
    signature::UnparsedPublicKey::new(verification, &issuer.public_key().subject_public_key.data)
        .verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data)
        .map_err(|_| "the signature does not verify".to_owned())
}

/// The SubjectPublicKeyInfo (DER) of a released RSA key's public part (`n`, `e` big-endian),
/// for wrapping to it (e.g. `aws_lc_rs::rsa::PublicEncryptingKey::from_der`).
pub fn rsa_public_key_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    custos_ids::spki::rsa_spki(n, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_of_components_is_what_aws_lc_writes() {
        let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        assert_eq!(
            rsa_public_key_spki(
                public.modulus().big_endian_without_leading_zero(),
                public.exponent().big_endian_without_leading_zero()
            ),
            public.as_der().unwrap().as_ref()
        );
    }

    #[test]
    fn wrapping_key_jwk_and_debug_hide_the_private_key() {
        let key = WrappingKey::generate(2048, "k1").unwrap();
        let jwk = key.public_jwk();
        assert_eq!(jwk["kid"], "k1");
        assert_eq!(jwk["key_ops"], json!(["encrypt"]));
        assert_eq!(
            format!("{key:?}"),
            "WrappingKey { kid: \"k1\", bits: 2048, .. }"
        );
        assert!(WrappingKey::generate(1024, "k").is_err());
        let material = KeyMaterial::Symmetric(Zeroizing::new(vec![7; 32]));
        assert_eq!(format!("{material:?}"), "Symmetric(32 bytes)");
    }

    #[test]
    fn malformed_answers_name_the_step() {
        let key = WrappingKey::generate(2048, "k").unwrap();
        let trust = SignerTrust::AnySigner;
        let expected = ReleaseExpectations {
            key_name: "k",
            enc: KeyWrapAlgorithm::CkmRsaAesKeyWrap,
            nonce: None,
            signers: &trust,
        };
        let err = unwrap_released("a.b", &key, &expected).unwrap_err();
        assert_eq!(err.step, "JWS structure");
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","x5c":[]}"#);
        let err = unwrap_released(&format!("{header}.e30."), &key, &expected).unwrap_err();
        assert_eq!(
            err.to_string(),
            "released key: JWS structure: expected alg \"RS256\", actual \"none\""
        );
        assert_eq!(
            "RSA_AES_KEY_WRAP_384".parse::<KeyWrapAlgorithm>(),
            Ok(KeyWrapAlgorithm::RsaAesKeyWrap384)
        );
        assert!("A256KW".parse::<KeyWrapAlgorithm>().is_err());
    }
}
