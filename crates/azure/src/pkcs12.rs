//! Opening PKCS#12 (PFX) archives: Key Vault's `application/x-pkcs12` secrets and PFX client
//! certificates.
//!
//! Key Vault's "password-less" PFX files are protected with the *absent* password (a
//! zero-length BMPString, as Windows and OpenSSL's `NULL` password produce), not with the
//! empty password (BMPString `""` plus its two-byte terminator) that most libraries derive
//! from `""`. `p12-keystore` handles the latter and every real password; the absent-password
//! archives Key Vault hands out (SHA-1 MAC, 3DES-encrypted bags — see the recording in
//! `tests/data`) are opened here, with the MAC verified before anything is decrypted.

use aws_lc_rs::hmac;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use der::asn1::{ContextSpecific, OctetString};
use der::{Decode, Encode};
use pkcs12::cms::content_info::ContentInfo;
use pkcs12::cms::encrypted_data::EncryptedData;
use pkcs12::kdf::{Pkcs12KeyType, derive_key};
use zeroize::Zeroizing;

use crate::pem::ChainAndKey;

type Chain = Vec<Vec<u8>>;

/// Refuse absurd iteration counts from untrusted archives (they cost CPU per iteration).
const MAX_ITERATIONS: i32 = 100_000;

/// The certificate chain (leaf first, DER) and the private key (PKCS#8 DER) of the archive's
/// one key entry.
pub(crate) fn open(der: &[u8], password: &str) -> Result<ChainAndKey, String> {
    match open_with_password(der, password) {
        Ok(opened) => Ok(opened),
        Err(first) if password.is_empty() => open_with_absent_password(der)
            .map_err(|second| format!("cannot open the archive (with the empty password: {first}; with no password: {second})")),
        Err(e) => Err(format!("cannot open the archive ({e})")),
    }
}

fn open_with_password(der: &[u8], password: &str) -> Result<ChainAndKey, String> {
    let store = p12_keystore::KeyStore::from_pkcs12(
        der,
        password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| e.to_string())?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or("no private key with a certificate")?;
    let certs: Vec<Vec<u8>> = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
    let key = Zeroizing::new(chain.key().as_der().to_vec());
    Ok((leaf_first(certs, &key)?, key))
}

fn open_with_absent_password(der: &[u8]) -> Result<ChainAndKey, String> {
    let asn1 = |e: der::Error| format!("malformed ({e})");
    let pfx = pkcs12::pfx::Pfx::from_der(der).map_err(asn1)?;
    if pfx.auth_safe.content_type != const_oid::db::rfc5911::ID_DATA {
        return Err("public-key-protected archives are not supported".into());
    }
    let auth_safe = octets(&pfx.auth_safe)?;
    let mac = pfx.mac_data.ok_or("the archive has no MAC")?;
    if mac.mac.algorithm.oid != const_oid::db::rfc5912::ID_SHA_1 {
        return Err(format!("MAC digest {} is not SHA-1", mac.mac.algorithm.oid));
    }
    let iterations = checked_iterations(mac.iterations)?;
    let mac_key = derive_key::<sha1::Sha1>(
        &[],
        mac.mac_salt.as_bytes(),
        Pkcs12KeyType::Mac,
        iterations,
        20,
    );
    let mac_key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &mac_key);
    hmac::verify(&mac_key, &auth_safe, mac.mac.digest.as_bytes())
        .map_err(|_| "MAC mismatch".to_owned())?;

    let mut certs = Vec::new();
    let mut key = None;
    for info in Vec::<ContentInfo>::from_der(&auth_safe).map_err(asn1)? {
        let contents = if info.content_type == const_oid::db::rfc5911::ID_DATA {
            Zeroizing::new(octets(&info)?)
        } else if info.content_type == const_oid::db::rfc5911::ID_ENCRYPTED_DATA {
            let encrypted =
                EncryptedData::from_der(&info.content.to_der().map_err(asn1)?).map_err(asn1)?;
            let content = encrypted
                .enc_content_info
                .encrypted_content
                .ok_or("empty encrypted content")?;
            decrypt(
                &encrypted.enc_content_info.content_enc_alg,
                content.as_bytes(),
            )?
        } else {
            return Err(format!("unsupported content type {}", info.content_type));
        };
        for bag in pkcs12::safe_bag::SafeContents::from_der(&contents).map_err(asn1)? {
            if bag.bag_id == pkcs12::PKCS_12_CERT_BAG_OID {
                // The bag value keeps its `[0] EXPLICIT` wrapper.
                let cert = ContextSpecific::<pkcs12::CertBag>::from_der(&bag.bag_value)
                    .map_err(asn1)?
                    .value;
                if cert.cert_id == pkcs12::PKCS_12_X509_CERT_OID {
                    certs.push(cert.cert_value.as_bytes().to_vec());
                }
            } else if bag.bag_id == pkcs12::PKCS_12_PKCS8_KEY_BAG_OID {
                if key.is_some() {
                    return Err("more than one private key".into());
                }
                let shrouded =
                    ContextSpecific::<pkcs12::pbe_params::EncryptedPrivateKeyInfo>::from_der(
                        &bag.bag_value,
                    )
                    .map_err(asn1)?
                    .value;
                key = Some(decrypt(
                    &shrouded.encryption_algorithm,
                    shrouded.encrypted_data.as_bytes(),
                )?);
            }
        }
    }
    let key = key.ok_or("no private key")?;
    Ok((leaf_first(certs, &key)?, key))
}

fn octets(info: &ContentInfo) -> Result<Vec<u8>, String> {
    let der = info.content.to_der().map_err(|e| e.to_string())?;
    Ok(OctetString::from_der(&der)
        .map_err(|e| format!("malformed ({e})"))?
        .as_bytes()
        .to_vec())
}

fn checked_iterations(iterations: i32) -> Result<i32, String> {
    if (1..=MAX_ITERATIONS).contains(&iterations) {
        Ok(iterations)
    } else {
        Err(format!("iteration count {iterations} is out of range"))
    }
}

/// pbeWithSHAAnd3-KeyTripleDES-CBC with the absent password.
fn decrypt(
    algorithm: &spki::AlgorithmIdentifierOwned,
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, String> {
    if algorithm.oid != pkcs12::PKCS_12_PBE_WITH_SHAAND3_KEY_TRIPLE_DES_CBC {
        return Err(format!(
            "encryption {} is not pbeWithSHAAnd3-KeyTripleDES-CBC",
            algorithm.oid
        ));
    }
    let params = algorithm
        .parameters
        .as_ref()
        .ok_or("no PBE parameters")?
        .to_der()
        .map_err(|e| e.to_string())?;
    let params = pkcs12::pbe_params::Pkcs12PbeParams::from_der(&params)
        .map_err(|e| format!("PBE parameters ({e})"))?;
    let iterations = checked_iterations(params.iterations)?;
    let salt = params.salt.as_bytes();
    let key = Zeroizing::new(derive_key::<sha1::Sha1>(
        &[],
        salt,
        Pkcs12KeyType::EncryptionKey,
        iterations,
        24,
    ));
    let iv = derive_key::<sha1::Sha1>(&[], salt, Pkcs12KeyType::Iv, iterations, 8);
    let decryptor = cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
        .map_err(|_| "3DES key length")?;
    decryptor
        .decrypt_padded_vec::<Pkcs7>(data)
        .map(Zeroizing::new)
        .map_err(|_| "decryption failed (bad padding)".into())
}

/// Puts the certificate whose public key is the private key's first.
fn leaf_first(mut certs: Chain, key_pkcs8: &[u8]) -> Result<Chain, String> {
    if certs.is_empty() {
        return Err("no certificate".into());
    }
    let leaf = certs
        .iter()
        .position(|c| crate::pem::check_key_matches(c, key_pkcs8).is_ok())
        .ok_or("no certificate matches the private key")?;
    let leaf = certs.remove(leaf);
    certs.insert(0, leaf);
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    /// Key Vault's password-less PFX from the recording (`tests/data/PROVENANCE.md`).
    fn recorded_pfx() -> Vec<u8> {
        let recording: serde_json::Value = serde_json::from_str(include_str!(
            "../tests/data/KeyVaultCertificateClientTest.DownloadImportPkcs.json"
        ))
        .unwrap();
        let call = recording["networkCallRecords"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Url"].as_str().unwrap().contains("/secrets/"))
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_str(call["Response"]["BODY"].as_str().unwrap()).unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(body["value"].as_str().unwrap())
            .unwrap()
    }

    #[test]
    fn opens_key_vaults_absent_password_pfx() {
        let (chain, key) = super::open(&recorded_pfx(), "").unwrap();
        assert_eq!(chain.len(), 1);
        crate::pem::check_key_matches(&chain[0], &key).unwrap();
        assert!(super::open(&recorded_pfx(), "wrong").is_err());
    }

    #[test]
    fn a_tampered_archive_fails_its_mac() {
        let mut pfx = recorded_pfx();
        let middle = pfx.len() / 2;
        pfx[middle] ^= 1;
        let err = super::open(&pfx, "").unwrap_err();
        assert!(
            err.contains("with no password: MAC mismatch") || err.contains("malformed"),
            "{err}"
        );
    }
}
