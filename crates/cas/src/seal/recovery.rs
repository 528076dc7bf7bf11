//! Multi-party recovery of the master key: when it cannot be released any more (the key
//! service gone, its key lost), a quorum of operators rebuilds it.
//!
//! At initialisation the master key is split into N shares, any `threshold` of which rebuild
//! it ([`super::shamir`]); each share is encrypted to one operator's RSA recovery key
//! (RSA-OAEP with SHA-256, the plaintext `index ‖ value`), and the [`RecoveryRecord`] — the
//! threshold, and per share its index, the recovery key's SHA-256 (of its
//! SubjectPublicKeyInfo), the ciphertext and a digest of the share — is kept beside the store.
//! It holds nothing a reader can use without `threshold` operators' private keys. An operator
//! decrypts their share with their private key and hands it to the CAS; the digests let the CAS
//! name a wrong share instead of rebuilding a wrong key from it.

use aws_lc_rs::digest;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use custos_ids::KeyHash;
pub use custos_protocol::recovery::EncryptedShare;
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::MasterKey;
use super::shamir::{self, KEY_LEN, Share};

/// The record's format.
const VERSION: u32 = 1;
/// First input of a share's digest.
const DIGEST_LABEL: &[u8] = b"custos-cas recovery share v1\0";
/// Smallest RSA recovery key accepted.
const MIN_RSA_BITS: usize = 3072;

/// Why recovery could not be set up or did not unlock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// A recovery key is unusable.
    #[error("recovery key {name}: {reason}")]
    Key {
        /// Where it came from (a file name).
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The threshold and the keys do not fit.
    #[error("recovery: {0}")]
    Settings(String),
    /// A share that is not the one made for its index.
    #[error(
        "share {index}: expected the share made for recovery key {key_hash}, actual: another value (a wrong share, or one of another CAS's key)"
    )]
    WrongShare {
        /// The share's index.
        index: u8,
        /// The recovery key it was made for.
        key_hash: String,
    },
    /// A share whose index no share was made for.
    #[error("share {index}: expected an index of 1 to {shares}, actual {index}")]
    UnknownIndex {
        /// The index given.
        index: u8,
        /// How many shares were made.
        shares: usize,
    },
    /// Too few valid shares.
    #[error("recovery needs {threshold} of the {shares} shares, {given} valid given")]
    TooFew {
        /// The threshold.
        threshold: usize,
        /// How many shares were made.
        shares: usize,
        /// How many valid, distinct shares were given.
        given: usize,
    },
    /// A share that does not parse.
    #[error("share: {0}")]
    Malformed(String),
    /// The crypto library failed.
    #[error("recovery: crypto failure: {0}")]
    Crypto(&'static str),
}

/// An operator's recovery key: an RSA public key.
#[derive(Debug)]
pub struct RecoveryKey {
    name: String,
    key: OaepPublicEncryptingKey,
    key_hash: KeyHash,
}

impl RecoveryKey {
    /// Parses an RSA public key (PEM `PUBLIC KEY`, at least 3072 bits); `name` says where it
    /// came from, in errors.
    pub fn from_pem(name: &str, pem: &[u8]) -> Result<Self, RecoveryError> {
        let error = |reason: String| RecoveryError::Key {
            name: name.to_owned(),
            reason,
        };
        let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem)
            .map_err(|e| error(format!("expected a PEM PUBLIC KEY: {e}")))?;
        let public = PublicEncryptingKey::from_der(spki.as_ref())
            .map_err(|_| error("expected an RSA public key".into()))?;
        let bits = public.key_size_bits();
        if bits < MIN_RSA_BITS {
            return Err(error(format!(
                "expected an RSA key of at least {MIN_RSA_BITS} bits, actual {bits}"
            )));
        }
        let key = OaepPublicEncryptingKey::new(public)
            .map_err(|_| error("not usable for RSA-OAEP".into()))?;
        Ok(Self {
            name: name.to_owned(),
            key,
            key_hash: KeyHash::of_spki(spki.as_ref()),
        })
    }
}

/// The recovery shares of a master key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryRecord {
    /// Format version.
    pub version: u32,
    /// Shares needed.
    pub threshold: usize,
    /// One per recovery key.
    pub shares: Vec<EncryptedShare>,
}

fn share_digest(index: u8, value: &[u8; KEY_LEN]) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(DIGEST_LABEL);
    context.update(&[index]);
    context.update(value);
    hex::encode(context.finish())
}

impl RecoveryRecord {
    /// Splits `master` for `keys`, any `threshold` of whose holders can rebuild it.
    pub fn create(
        master: &MasterKey,
        threshold: usize,
        keys: &[RecoveryKey],
    ) -> Result<Self, RecoveryError> {
        let shares = shamir::split(&master.0, threshold, keys.len())
            .map_err(|e| RecoveryError::Settings(e.to_string()))?;
        let mut out = Vec::with_capacity(keys.len());
        for (share, key) in shares.iter().zip(keys) {
            let mut plain = Zeroizing::new(Vec::with_capacity(1 + KEY_LEN));
            plain.push(share.index);
            plain.extend_from_slice(share.value.as_ref());
            let mut ciphertext = vec![0u8; key.key.ciphertext_size()];
            let written = key
                .key
                .encrypt(&OAEP_SHA256_MGF1SHA256, &plain, &mut ciphertext, None)
                .map_err(|_| RecoveryError::Crypto("RSA-OAEP encryption"))?
                .len();
            ciphertext.truncate(written);
            out.push(EncryptedShare {
                index: share.index,
                key_name: key.name.clone(),
                key_hash: key.key_hash.to_string(),
                ciphertext: STANDARD.encode(&ciphertext),
                digest: share_digest(share.index, &share.value),
            });
        }
        Ok(Self {
            version: VERSION,
            threshold,
            shares: out,
        })
    }

    /// `Ok` when `share` is the one made for its index; else names it and its recovery key.
    pub fn check(&self, share: &Share) -> Result<(), RecoveryError> {
        let made = self.shares.iter().find(|s| s.index == share.index).ok_or(
            RecoveryError::UnknownIndex {
                index: share.index,
                shares: self.shares.len(),
            },
        )?;
        if share_digest(share.index, &share.value) != made.digest {
            return Err(RecoveryError::WrongShare {
                index: share.index,
                key_hash: made.key_hash.clone(),
            });
        }
        Ok(())
    }

    /// The master key `shares` rebuild: each is checked against its digest (a wrong one is
    /// named), and `threshold` distinct valid ones are needed.
    pub fn recover(&self, shares: &[Share]) -> Result<MasterKey, RecoveryError> {
        let mut valid: Vec<Share> = Vec::new();
        for share in shares {
            self.check(share)?;
            if !valid.iter().any(|v| v.index == share.index) {
                valid.push(share.clone());
            }
        }
        if valid.len() < self.threshold {
            return Err(RecoveryError::TooFew {
                threshold: self.threshold,
                shares: self.shares.len(),
                given: valid.len(),
            });
        }
        let key = shamir::combine(&valid).map_err(|e| RecoveryError::Malformed(e.to_string()))?;
        Ok(MasterKey::from_bytes(*key))
    }
}

/// A share as an operator hands it over: `index ‖ value`, 33 bytes (what their share's
/// ciphertext decrypts to).
pub fn parse_share(plain: &[u8]) -> Result<Share, RecoveryError> {
    let (&index, value) = plain
        .split_first()
        .ok_or_else(|| RecoveryError::Malformed("empty".into()))?;
    let value: [u8; KEY_LEN] = value.try_into().map_err(|_| {
        RecoveryError::Malformed(format!(
            "expected {} bytes, actual {}",
            1 + KEY_LEN,
            plain.len()
        ))
    })?;
    Ok(Share {
        index,
        value: Zeroizing::new(value),
    })
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::{AsDer as _, PublicKeyX509Der};
    use aws_lc_rs::rsa::{KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey};

    use super::*;

    /// An operator: a private key and its public key as PEM.
    fn operator() -> (OaepPrivateDecryptingKey, String) {
        let private = PrivateDecryptingKey::generate(KeySize::Rsa3072).unwrap();
        let spki: PublicKeyX509Der = private.public_key().as_der().unwrap();
        let pem = custos_ids::pem::encode("PUBLIC KEY", spki.as_ref());
        (OaepPrivateDecryptingKey::new(private).unwrap(), pem)
    }

    /// What an operator does with their share: decrypt it with their private key.
    fn decrypt(share: &EncryptedShare, key: &OaepPrivateDecryptingKey) -> Share {
        let ciphertext = STANDARD.decode(&share.ciphertext).unwrap();
        let mut plain = vec![0u8; key.min_output_size()];
        let plain = key
            .decrypt(&OAEP_SHA256_MGF1SHA256, &ciphertext, &mut plain, None)
            .unwrap();
        parse_share(plain).unwrap()
    }

    #[test]
    fn k_of_n_operators_recover_the_master_key_and_fewer_or_a_wrong_share_do_not() {
        let operators: Vec<_> = (0..3).map(|_| operator()).collect();
        let keys: Vec<RecoveryKey> = operators
            .iter()
            .enumerate()
            .map(|(i, (_, pem))| {
                RecoveryKey::from_pem(&format!("op{i}.pem"), pem.as_bytes()).unwrap()
            })
            .collect();
        let master = MasterKey::from_bytes([9; 32]);
        let record = RecoveryRecord::create(&master, 2, &keys).unwrap();
        // It survives its JSON form, and holds neither the key nor a share in clear.
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            serde_json::from_str::<RecoveryRecord>(&json).unwrap(),
            record
        );
        assert!(!json.contains(&hex::encode([9u8; 32])));

        let shares: Vec<Share> = record
            .shares
            .iter()
            .zip(&operators)
            .map(|(s, (private, _))| decrypt(s, private))
            .collect();
        for pair in [[0, 1], [0, 2], [1, 2]] {
            let given = [shares[pair[0]].clone(), shares[pair[1]].clone()];
            assert_eq!(*record.recover(&given).unwrap().0, [9; 32], "{pair:?}");
        }
        // One share (twice): too few.
        let one = [shares[0].clone(), shares[0].clone()];
        assert_eq!(
            record.recover(&one).unwrap_err().to_string(),
            "recovery needs 2 of the 3 shares, 1 valid given"
        );
        // A wrong share is named, with the recovery key it should come from.
        let mut wrong = shares[1].clone();
        wrong.value[5] ^= 0x40;
        let error = record.recover(&[shares[0].clone(), wrong]).unwrap_err();
        assert_eq!(
            error,
            RecoveryError::WrongShare {
                index: 2,
                key_hash: keys[1].key_hash.to_string()
            }
        );
        // A share of another split (another CAS, or an older record) is wrong too.
        let other = RecoveryRecord::create(&master, 2, &keys).unwrap();
        let foreign = decrypt(&other.shares[2], &operators[2].0);
        assert!(matches!(
            record.recover(&[shares[0].clone(), foreign]),
            Err(RecoveryError::WrongShare { index: 3, .. })
        ));
        let stray = Share {
            index: 7,
            value: Zeroizing::new([0; KEY_LEN]),
        };
        assert!(matches!(
            record.recover(&[stray]),
            Err(RecoveryError::UnknownIndex {
                index: 7,
                shares: 3
            })
        ));
    }

    #[test]
    fn weak_or_foreign_recovery_keys_and_bad_settings_are_refused() {
        let small = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        let pem =
            custos_ids::pem::encode("PUBLIC KEY", small.public_key().as_der().unwrap().as_ref());
        let error = RecoveryKey::from_pem("small.pem", pem.as_bytes()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "recovery key small.pem: expected an RSA key of at least 3072 bits, actual 2048"
        );
        let error = RecoveryKey::from_pem("junk.pem", b"not a key").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("recovery key junk.pem: expected a PEM PUBLIC KEY"),
            "{error}"
        );
        let (_, pem) = operator();
        let key = RecoveryKey::from_pem("op.pem", pem.as_bytes()).unwrap();
        let error = RecoveryRecord::create(&MasterKey::from_bytes([1; 32]), 2, &[key]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "recovery: expected 1 ≤ threshold ≤ shares ≤ 255, actual threshold 2 of 1"
        );
        assert!(
            parse_share(&[1, 2, 3])
                .unwrap_err()
                .to_string()
                .contains("expected 33 bytes, actual 3")
        );
    }
}
