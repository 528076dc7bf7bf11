//! The runtime's ephemeral key: named in the runtime data the evidence binds, and the key
//! of the TLS client certificate that receives the secrets. Lives only as long as the
//! process, in memory.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use custos_ids::jwk::{CRV_P256, KTY_EC, p256_coordinates};
use custos_ids::spki::P256Point;
use custos_protocol::enclave::Jwk;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

use crate::RunError;

/// A fresh P-256 key pair and a self-signed certificate for it.
pub struct EphemeralKey {
    pkcs8: Zeroizing<Vec<u8>>,
    /// x ‖ y.
    public_point: P256Point,
    certificate: CertificateDer<'static>,
}

impl std::fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralKey").finish_non_exhaustive()
    }
}

impl EphemeralKey {
    /// Generates the key and its certificate.
    pub fn generate() -> Result<Self, RunError> {
        let local = |what: &str| RunError::Local(format!("ephemeral key: {what}"));
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .map_err(|_| local("generation failed"))?;
        let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8)
            .map_err(|_| local("cannot load the generated key"))?;
        // aws-lc-rs gives the uncompressed point: 0x04 ‖ x ‖ y.
        let public_point = pair
            .public_key()
            .as_ref()
            .get(1..)
            .and_then(|xy| P256Point::try_from(xy).ok())
            .ok_or_else(|| local("the public key is not an uncompressed P-256 point"))?;

        let der = PrivatePkcs8KeyDer::from(pkcs8.as_slice());
        let signer =
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ECDSA_P256_SHA256)
                .map_err(|e| local(&e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| local(&e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "custos-run ephemeral key");
        let certificate = params
            .self_signed(&signer)
            .map_err(|e| local(&e.to_string()))?
            .der()
            .clone();
        Ok(Self {
            pkcs8,
            public_point,
            certificate,
        })
    }

    /// The public key as a JWK (`kty: EC`, `crv: P-256`).
    pub fn jwk(&self) -> Jwk {
        let (x, y) = p256_coordinates(&self.public_point);
        Jwk {
            kty: KTY_EC.into(),
            crv: CRV_P256.into(),
            x,
            y,
        }
    }

    /// The certificate chain and key for TLS client authentication.
    pub fn client_auth(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = PrivatePkcs8KeyDer::from(self.pkcs8.to_vec());
        (vec![self.certificate.clone()], PrivateKeyDer::Pkcs8(key))
    }

    /// The certificate (its public key is the JWK's).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jwk_is_the_certificates_key() {
        let key = EphemeralKey::generate().unwrap();
        let jwk = key.jwk();
        assert_eq!((jwk.kty.as_str(), jwk.crv.as_str()), ("EC", "P-256"));
        let spki = custos_ids::spki_of_certificate(key.certificate()).unwrap();
        // A P-256 SPKI ends with the uncompressed point.
        let point = &spki[spki.len() - 65..];
        assert_eq!(point[0], 4);
        let encode = custos_protocol::base64url::encode;
        assert_eq!(encode(&point[1..33]), jwk.x);
        assert_eq!(encode(&point[33..]), jwk.y);
        assert_ne!(
            EphemeralKey::generate().unwrap().jwk(),
            jwk,
            "fresh every time"
        );
    }
}
