//! PEM in for certificates read from Key Vault (out is `custos_ids::pem`).

use aws_lc_rs::encoding::AsDer;
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

/// Certificates in order (DER), and a private key (PKCS#8 DER).
pub(crate) type ChainAndKey = (Vec<Vec<u8>>, Zeroizing<Vec<u8>>);

/// The certificates (in order) and the private key (as PKCS#8) of a PEM text.
pub(crate) fn chain_and_key(pem: &str) -> Result<ChainAndKey, String> {
    let mut chain = Vec::new();
    let mut key = None;
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes()) {
        let (kind, der) = item.map_err(|_| "malformed PEM".to_owned())?;
        let der = Zeroizing::new(der);
        match kind {
            SectionKind::Certificate => chain.push(der.to_vec()),
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                if key.is_some() {
                    return Err("more than one private key".into());
                }
                key = Some(to_pkcs8(kind, &der)?);
            }
            _ => {}
        }
    }
    if chain.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok((chain, key.ok_or("no private key block")?))
}

fn to_pkcs8(kind: SectionKind, der: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    match kind {
        SectionKind::PrivateKey => Ok(Zeroizing::new(der.to_vec())),
        SectionKind::RsaPrivateKey => {
            let key = aws_lc_rs::rsa::KeyPair::from_der(der)
                .map_err(|_| "unusable RSA PRIVATE KEY".to_owned())?;
            let pkcs8 = key
                .as_der()
                .map_err(|_| "cannot re-encode the RSA key".to_owned())?;
            Ok(Zeroizing::new(pkcs8.as_ref().to_vec()))
        }
        _ => {
            use aws_lc_rs::signature::{
                ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
            };
            let key = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
                .or_else(|_| {
                    EcdsaKeyPair::from_private_key_der(&ECDSA_P384_SHA384_ASN1_SIGNING, der)
                })
                .map_err(|_| "unusable EC PRIVATE KEY (P-256 or P-384 expected)".to_owned())?;
            let pkcs8 = key
                .to_pkcs8v1()
                .map_err(|_| "cannot re-encode the EC key".to_owned())?;
            Ok(Zeroizing::new(pkcs8.as_ref().to_vec()))
        }
    }
}

/// Fails unless the PKCS#8 key belongs to the certificate.
pub(crate) fn check_key_matches(leaf: &[u8], pkcs8: &[u8]) -> Result<(), String> {
    let path = std::path::Path::new("<key vault>");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()));
    custos_tls::certified_key(path, vec![CertificateDer::from(leaf.to_vec())], path, key)
        .map(drop)
        .map_err(|e| match e {
            custos_tls::LoadError::KeyMismatch { .. } => {
                "the private key does not match the certificate".to_owned()
            }
            custos_tls::LoadError::BadPrivateKey { reason, .. } => {
                format!("unusable private key: {reason}")
            }
            other => other.to_string().replace("<key vault>: ", ""),
        })
}
