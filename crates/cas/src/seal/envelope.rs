//! The master key wrapped by a key-encryption key (envelope encryption): what is stored is
//! only [`Envelope`] — the master key encrypted with RSA-OAEP (SHA-256) to the public half of
//! an RSA key held elsewhere (a Key Vault or Managed HSM key, released only to an attested
//! CAS), the key's identity, and the recovery shares, if any. Anyone may read an envelope;
//! opening it takes the key-encryption key's private half.

use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey, PublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::MasterKey;
use super::recovery::RecoveryRecord;

/// The envelope's format.
const VERSION: u32 = 1;
/// The wrapping algorithm, named as Key Vault names it.
pub const ALG_RSA_OAEP_256: &str = "RSA-OAEP-256";

/// Which key-encryption key an envelope was made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KekId {
    /// The vault or managed HSM (`https://….vault.azure.net`, `https://….managedhsm.azure.net`).
    pub vault: String,
    /// The key's name.
    pub name: String,
    /// The key's version (the one whose public key wrapped the master key).
    pub version: String,
}

impl std::fmt::Display for KekId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/keys/{}/{}", self.vault, self.name, self.version)
    }
}

/// Why an envelope was not made or not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The key-encryption key's public half is unusable.
    #[error("key-encryption key {kek}: {reason}")]
    Kek {
        /// The key.
        kek: String,
        /// What is wrong.
        reason: String,
    },
    /// The envelope does not parse or names an unknown algorithm.
    #[error("master key envelope: {0}")]
    Malformed(String),
    /// The key given does not open it.
    #[error(
        "master key envelope: expected the private key of {kek}, actual: a key that does not unwrap it (another key, or another version of it)"
    )]
    WrongKey {
        /// The key the envelope was made for.
        kek: String,
    },
    /// The crypto library failed.
    #[error("master key envelope: crypto failure: {0}")]
    Crypto(&'static str),
}

/// The master key, wrapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version.
    pub version: u32,
    /// The key-encryption key.
    pub kek: KekId,
    /// The wrapping algorithm ([`ALG_RSA_OAEP_256`]).
    pub alg: String,
    /// The wrapped master key, base64.
    pub wrapped_key: String,
    /// Shares for multi-party recovery, when recovery keys are configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryRecord>,
}

impl Envelope {
    /// Wraps `master` for the RSA key `kek` whose public modulus and exponent (big-endian, as
    /// in its JWK's `n` and `e`) are given.
    pub fn wrap(master: &MasterKey, kek: KekId, n: &[u8], e: &[u8]) -> Result<Self, EnvelopeError> {
        let error = |reason: &str| EnvelopeError::Kek {
            kek: kek.to_string(),
            reason: reason.to_owned(),
        };
        let public: PublicEncryptingKey = PublicKeyComponents { n, e }
            .try_into()
            .map_err(|_| error("expected an RSA public key (JWK n and e)"))?;
        if public.key_size_bits() < 2048 {
            return Err(error(&format!(
                "expected an RSA key of at least 2048 bits, actual {}",
                public.key_size_bits()
            )));
        }
        let public =
            OaepPublicEncryptingKey::new(public).map_err(|_| error("not usable for RSA-OAEP"))?;
        let mut wrapped = vec![0u8; public.ciphertext_size()];
        let len = public
            .encrypt(
                &OAEP_SHA256_MGF1SHA256,
                master.0.as_ref(),
                &mut wrapped,
                None,
            )
            .map_err(|_| EnvelopeError::Crypto("RSA-OAEP encryption"))?
            .len();
        wrapped.truncate(len);
        Ok(Self {
            version: VERSION,
            kek,
            alg: ALG_RSA_OAEP_256.to_owned(),
            wrapped_key: STANDARD.encode(wrapped),
            recovery: None,
        })
    }

    /// The master key, unwrapped with the key-encryption key's private half.
    pub fn unwrap(&self, kek: &PrivateDecryptingKey) -> Result<MasterKey, EnvelopeError> {
        if self.version != VERSION || self.alg != ALG_RSA_OAEP_256 {
            return Err(EnvelopeError::Malformed(format!(
                "expected version {VERSION} with {ALG_RSA_OAEP_256}, actual version {} with {:?}",
                self.version, self.alg
            )));
        }
        let wrapped = STANDARD
            .decode(&self.wrapped_key)
            .map_err(|e| EnvelopeError::Malformed(format!("wrapped_key: {e}")))?;
        let wrong = || EnvelopeError::WrongKey {
            kek: self.kek.to_string(),
        };
        let private = OaepPrivateDecryptingKey::new(kek.clone()).map_err(|_| wrong())?;
        let mut plain = Zeroizing::new(vec![0u8; private.min_output_size()]);
        let plain = private
            .decrypt(&OAEP_SHA256_MGF1SHA256, &wrapped, &mut plain, None)
            .map_err(|_| wrong())?;
        let key: [u8; 32] = plain.try_into().map_err(|_| wrong())?;
        Ok(MasterKey::from_bytes(key))
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::KeyPair as _;

    use super::*;

    /// A key-encryption key of `size` and its JWK's `n` and `e`.
    fn kek_of(size: KeySize) -> (PrivateDecryptingKey, Vec<u8>, Vec<u8>) {
        let pair = KeyPair::generate(size).unwrap();
        let components: PublicKeyComponents<Vec<u8>> = pair.public_key().into();
        let private = PrivateDecryptingKey::from_pkcs8(pair.as_der().unwrap().as_ref()).unwrap();
        (private, components.n, components.e)
    }

    fn kek() -> (PrivateDecryptingKey, Vec<u8>, Vec<u8>) {
        kek_of(KeySize::Rsa3072)
    }

    fn id(version: &str) -> KekId {
        KekId {
            vault: "https://custos.vault.azure.net".into(),
            name: "custos-kek".into(),
            version: version.into(),
        }
    }

    #[test]
    fn the_master_key_is_wrapped_for_the_kek_and_only_its_private_key_opens_it() {
        let (private, n, e) = kek();
        let master = MasterKey::from_bytes([42; 32]);
        let envelope = Envelope::wrap(&master, id("v1"), &n, &e).unwrap();
        let json = serde_json::to_string(&envelope).unwrap();
        assert!(!json.contains(&STANDARD.encode([42u8; 32])));
        let parsed: Envelope = serde_json::from_str(&json).unwrap();
        assert_eq!(*parsed.unwrap(&private).unwrap().0, [42; 32]);

        let (other, _, _) = kek();
        assert_eq!(
            parsed.unwrap(&other).unwrap_err().to_string(),
            "master key envelope: expected the private key of https://custos.vault.azure.net/keys/custos-kek/v1, actual: a key that does not unwrap it (another key, or another version of it)"
        );
        // Wrapping again (a new key version) gives another envelope of the same key.
        let (private2, n2, e2) = kek();
        let rewrapped = Envelope::wrap(&master, id("v2"), &n2, &e2).unwrap();
        assert_ne!(rewrapped.wrapped_key, envelope.wrapped_key);
        assert_eq!(*rewrapped.unwrap(&private2).unwrap().0, [42; 32]);
    }

    #[test]
    fn weak_keys_and_unknown_formats_are_refused() {
        // 2048 bits is Key Vault's smallest RSA-HSM key: accepted.
        let (_, n, e) = kek_of(KeySize::Rsa2048);
        Envelope::wrap(&MasterKey::from_bytes([1; 32]), id("v"), &n, &e).unwrap();
        let error = Envelope::wrap(
            &MasterKey::from_bytes([1; 32]),
            id("v"),
            &[1, 2, 3],
            &[1, 0, 1],
        )
        .unwrap_err();
        assert!(
            error.to_string().starts_with(
                "key-encryption key https://custos.vault.azure.net/keys/custos-kek/v: expected"
            ),
            "{error}"
        );
        let (private, n, e) = kek();
        let mut envelope =
            Envelope::wrap(&MasterKey::from_bytes([1; 32]), id("v"), &n, &e).unwrap();
        envelope.alg = "RSA1_5".into();
        assert_eq!(
            envelope.unwrap(&private).unwrap_err().to_string(),
            "master key envelope: expected version 1 with RSA-OAEP-256, actual version 1 with \"RSA1_5\""
        );
    }
}
