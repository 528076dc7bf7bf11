//! The emulator's own keys and certificates: a CA for its TLS listeners, RSA token-signing
//! keys with self-signed certificates (as Entra ID and MAA publish them), and certificates
//! for the vault.

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    PKCS_RSA_SHA256, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// A failure to make keys or certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A token could not be signed.
    #[error("token signing: {0}")]
    Sign(String),
    /// A certificate or key the emulator was given is unusable.
    #[error("{0}")]
    Input(String),
}

/// The emulator's certificate authority, which signs the TLS certificate of every listener.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    der: Vec<u8>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    /// A new CA with a fresh P-256 key, valid from yesterday for ten years.
    pub fn generate() -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn("Custos Azure Emulator CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, 3650);
        let cert = params.self_signed(&key)?;
        let pem = cert.pem();
        Ok(Self {
            issuer: Issuer::new(params, key),
            pem,
            der: cert.der().to_vec(),
        })
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// A fresh RSA-2048 signing key with a certificate for `common_name` issued by this CA:
    /// the key and the chain (leaf, then the CA), DER.
    pub fn rsa_signing_certificate(
        &self,
        common_name: &str,
    ) -> Result<(RsaKeyPair, Vec<Vec<u8>>), PkiError> {
        let key = KeyPair::generate_for(&PKCS_RSA_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params, 825);
        let cert = params.signed_by(&key, &self.issuer)?;
        let signer = RsaKeyPair::from_pkcs8(&key.serialize_der())
            .map_err(|e| PkiError::Sign(format!("cannot load the generated key: {e}")))?;
        Ok((signer, vec![cert.der().to_vec(), self.der.clone()]))
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A TLS server certificate for `names` (DNS names or IP addresses) and its key.
    pub fn server_certificate(
        &self,
        names: &[String],
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = dn(&names[0]);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        set_validity(&mut params, 825);
        let cert = params.signed_by(&key, &self.issuer)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![cert.der().clone()], key))
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn set_validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(days);
}

/// An RSA key that signs tokens (RS256), with the self-signed certificate under which it is
/// published in a JWKS (`x5c`), as Entra ID and MAA do.
pub struct SigningKey {
    kid: String,
    /// Parsed once: loading an RSA key checks it, which costs more than a signature (a token
    /// library's key is parsed at every signature, two thirds of an emulated MAA attestation).
    signer: RsaKeyPair,
    decoding: jsonwebtoken::DecodingKey,
    cert_der: Vec<u8>,
    n: Vec<u8>,
    e: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// How a signing key's `kid` is derived from its certificate.
#[derive(Debug, Clone, Copy)]
pub enum KidStyle {
    /// base64url(SHA-1(cert)), the `x5t` — Entra ID's convention.
    Sha1Base64Url,
    /// base64(SHA-256(cert)) — MAA's convention (e.g. `XxRc2vLh1E5F...=`).
    Sha256Base64,
}

impl SigningKey {
    /// A fresh RSA-2048 key with a self-signed certificate for `common_name`.
    pub fn generate(common_name: &str, kid_style: KidStyle) -> Result<Self, PkiError> {
        Self::generate_with_extension(common_name, kid_style, |_| Ok(None))
    }

    /// Like [`Self::generate`], with the certificate extension `extension` makes from the
    /// key's SubjectPublicKeyInfo (DER), if it makes one: how MAA's certificates embed the
    /// evidence of the enclave that holds the key.
    pub fn generate_with_extension(
        common_name: &str,
        kid_style: KidStyle,
        extension: impl FnOnce(&[u8]) -> Result<Option<CustomExtension>, PkiError>,
    ) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&PKCS_RSA_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name);
        set_validity(&mut params, 3650);
        params.custom_extensions.extend(extension(
            &rcgen::PublicKeyData::subject_public_key_info(&key),
        )?);
        let cert = params.self_signed(&key)?;
        let cert_der = cert.der().to_vec();
        let kid = match kid_style {
            KidStyle::Sha1Base64Url => x5t(&cert_der),
            KidStyle::Sha256Base64 => STANDARD.encode(digest::digest(&digest::SHA256, &cert_der)),
        };
        let (n, e) = rsa_components(&cert_der)?;
        let signer = RsaKeyPair::from_pkcs8(&key.serialize_der())
            .map_err(|e| PkiError::Sign(format!("cannot load the generated key: {e}")))?;
        let decoding = jsonwebtoken::DecodingKey::from_rsa_raw_components(&n, &e);
        Ok(Self {
            kid,
            signer,
            decoding,
            cert_der,
            n,
            e,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A compact JWS, `header.claims.signature`, signed with this key; `header.alg` must be
    /// RS256.
    pub fn sign_jwt(
        &self,
        header: &jsonwebtoken::Header,
        claims: &impl serde::Serialize,
    ) -> Result<String, PkiError> {
        if header.alg != jsonwebtoken::Algorithm::RS256 {
            return Err(PkiError::Sign(format!(
                "expected alg RS256, actual {:?}",
                header.alg
            )));
        }
        let part = |json: serde_json::Result<Vec<u8>>| {
            json.map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
                .map_err(|e| PkiError::Sign(e.to_string()))
        };
        let signing_input = format!(
            "{}.{}",
            part(serde_json::to_vec(header))?,
            part(serde_json::to_vec(claims))?
        );
        let mut signature = vec![0; self.signer.public_modulus_len()];
        self.signer
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| PkiError::Sign("RSA signing failed".into()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// The key for verifying what this key signed.
    pub fn decoding_key(&self) -> &jsonwebtoken::DecodingKey {
        &self.decoding
    }

    /// The certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// This key as a JWK, the way Entra ID publishes keys (`n`, `e`, `x5t`, `x5c`).
    pub fn entra_jwk(&self, issuer: &str) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": x5t(&self.cert_der),
            "n": URL_SAFE_NO_PAD.encode(&self.n),
            "e": URL_SAFE_NO_PAD.encode(&self.e),
            "x5c": [STANDARD.encode(&self.cert_der)],
            "issuer": issuer,
        })
    }

    /// This key as MAA publishes it in `/certs`: `kid`, `kty` and `x5c` only.
    pub fn maa_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "x5c": [STANDARD.encode(&self.cert_der)],
            "kid": self.kid,
            "kty": "RSA",
        })
    }
}

/// base64url(SHA-1(DER)): the `x5t` thumbprint.
pub fn x5t(cert_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der))
}

/// base64url(SHA-256(DER)): the `x5t#S256` thumbprint.
pub fn x5t_s256(cert_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, cert_der))
}

/// The RSA modulus and exponent of a certificate's public key (big-endian, no leading zeros).
pub fn rsa_components(cert_der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| PkiError::Input(format!("certificate is not valid X.509: {e}")))?;
    spki_rsa_components(cert.public_key())
}

/// The RSA modulus and exponent of a SubjectPublicKeyInfo.
pub fn spki_rsa_components(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
    match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => Ok((
            strip_zeros(rsa.modulus).to_vec(),
            strip_zeros(rsa.exponent).to_vec(),
        )),
        Ok(_) => Err(PkiError::Input("the key is not an RSA key".into())),
        Err(e) => Err(PkiError::Input(format!("unreadable public key: {e}"))),
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// A certificate with its private key, as the vault holds it.
#[derive(Clone)]
pub struct CertificateWithKey {
    /// The chain, leaf first, DER.
    pub chain: Vec<Vec<u8>>,
    /// The leaf's private key, PKCS#8 DER.
    pub key_pkcs8: Vec<u8>,
}

impl std::fmt::Debug for CertificateWithKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateWithKey")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl CertificateWithKey {
    /// A self-signed RSA-2048 certificate as Key Vault's `Self` issuer makes it.
    pub fn generate_self_signed(
        common_name: &str,
        dns_names: &[String],
        validity_days: u32,
    ) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&PKCS_RSA_SHA256)?;
        let mut params = CertificateParams::new(dns_names.to_vec())?;
        params.distinguished_name = dn(common_name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(10);
        params.not_after = now + Duration::days(i64::from(validity_days));
        params.subject_alt_names = dns_names
            .iter()
            .map(|n| n.clone().try_into().map(SanType::DnsName))
            .collect::<Result<_, _>>()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            chain: vec![cert.der().to_vec()],
            key_pkcs8: key.serialize_der(),
        })
    }

    /// Imports PEM text holding certificates (leaf first) and one PKCS#8 private key.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        use rustls_pki_types::pem::PemObject;
        let chain: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| PkiError::Input(format!("malformed certificate PEM: {e}")))?;
        if chain.is_empty() {
            return Err(PkiError::Input("no CERTIFICATE block".into()));
        }
        let key = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| PkiError::Input("no usable PRIVATE KEY (PKCS#8) block".into()))?;
        Ok(Self {
            chain,
            key_pkcs8: key.secret_pkcs8_der().to_vec(),
        })
    }

    /// The leaf certificate, DER.
    pub fn leaf(&self) -> &[u8] {
        &self.chain[0]
    }

    /// Key Vault's `application/x-pem-file` secret value: the key, then the chain.
    pub fn to_pem_secret(&self) -> String {
        let mut out = custos_ids::pem::encode("PRIVATE KEY", &self.key_pkcs8);
        for cert in &self.chain {
            out.push_str(&custos_ids::pem::encode("CERTIFICATE", cert));
        }
        out
    }

    /// Key Vault's `application/x-pkcs12` secret value: base64 of a PFX without password.
    pub fn to_pkcs12_secret(&self, alias: &str) -> Result<String, PkiError> {
        use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
        let certs = self
            .chain
            .iter()
            .map(|c| Certificate::from_der(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PkiError::Input(format!("PKCS#12 certificate: {e}")))?;
        let key = PrivateKey::from_der(&self.key_pkcs8)
            .map_err(|e| PkiError::Input(format!("PKCS#12 key: {e}")))?;
        let local_key_id = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, self.leaf());
        let mut store = KeyStore::new();
        store.add_entry(
            alias,
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id.as_ref(), key, certs)),
        );
        let der = store
            .writer("")
            .write()
            .map_err(|e| PkiError::Input(format!("PKCS#12: {e}")))?;
        Ok(STANDARD.encode(der))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_kid_styles() {
        let entra = SigningKey::generate("login", KidStyle::Sha1Base64Url).unwrap();
        assert_eq!(entra.kid(), x5t(entra.certificate_der()));
        let maa = SigningKey::generate("https://maa", KidStyle::Sha256Base64).unwrap();
        assert_eq!(maa.kid().len(), 44);
        assert!(maa.kid().ends_with('='));
    }

    #[test]
    fn signed_tokens_verify_under_the_published_key() {
        let key = SigningKey::generate("https://maa", KidStyle::Sha256Base64).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(key.kid().to_owned());
        let claims = serde_json::json!({ "iss": "https://maa", "exp": 4_000_000_000u64 });
        let token = key.sign_jwt(&header, &claims).unwrap();

        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_issuer(&["https://maa"]);
        let decoded =
            jsonwebtoken::decode::<serde_json::Value>(&token, key.decoding_key(), &validation)
                .unwrap();
        assert_eq!(decoded.claims, claims);
        assert_eq!(decoded.header.kid.as_deref(), Some(key.kid()));

        // A flipped signature bit must not verify.
        let mut bytes = token.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(&tampered, key.decoding_key(), &validation)
                .is_err()
        );

        let hs256 = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        let refused = key.sign_jwt(&hs256, &claims).unwrap_err().to_string();
        assert!(refused.contains("expected alg RS256"), "{refused}");
    }

    #[test]
    fn pem_secret_round_trips() {
        let cert = CertificateWithKey::generate_self_signed("a.example", &["a.example".into()], 10)
            .unwrap();
        let pem = cert.to_pem_secret();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let back = CertificateWithKey::from_pem(&pem).unwrap();
        assert_eq!(back.chain, cert.chain);
        assert_eq!(back.key_pkcs8, cert.key_pkcs8);
    }

    #[test]
    fn pkcs12_secret_opens_without_password() {
        let cert = CertificateWithKey::generate_self_signed("a.example", &["a.example".into()], 10)
            .unwrap();
        let pfx = STANDARD
            .decode(cert.to_pkcs12_secret("a").unwrap())
            .unwrap();
        let store = p12_keystore::KeyStore::from_pkcs12(
            &pfx,
            "",
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .unwrap();
        let (_, chain) = store.private_key_chain().unwrap();
        assert_eq!(chain.certs()[0].as_der(), cert.leaf());
        assert_eq!(chain.key().as_der(), cert.key_pkcs8.as_slice());
    }
}
