//! Azure Key Vault keys on `azure_security_keyvault_keys`: create an exportable key with a
//! release policy, read its public part and policy, and release it to an attested caller
//! (Secure Key Release). Opening what Key Vault releases is [`crate::key_release`].
//!
//! Same transport, challenge handling and errors as [`crate::KeyVault`]: a refused release
//! comes back as [`KeyVaultError::Service`] with Key Vault's status, code and message (for an
//! unmet release policy, 403 with the message saying why).

use azure_security_keyvault_keys::models::{
    CreateKeyParameters, Key, KeyAttributes, KeyClientGetKeyOptions, KeyClientReleaseOptions,
    KeyEncryptionAlgorithm, KeyReleasePolicy, KeyType, ReleaseParameters,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};

use crate::credential::AzureCredential;
use crate::http::HttpOptions;
use crate::key_release::{
    KeyWrapAlgorithm, ReleaseError, ReleaseExpectations, SignerTrust, UnwrappedKey, WrappingKey,
    unwrap_released,
};
use crate::keyvault::{
    KeyVaultError, build_client, check_object_name, display_name, service_error,
};

/// The release policy content type Key Vault documents.
pub const RELEASE_POLICY_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// The kind of exportable key to create (always HSM-protected: Key Vault releases no other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportableKeyType {
    /// `RSA-HSM` of 2048, 3072 or 4096 bits.
    RsaHsm {
        /// Modulus size.
        bits: u32,
    },
    /// `oct-HSM` (symmetric; Managed HSM) of 128, 192 or 256 bits.
    OctHsm {
        /// Key size.
        bits: u32,
    },
}

/// A key's public part and properties, as Get Key answers.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// Its id, `{vault}/keys/{name}/{version}`.
    pub kid: String,
    /// The version (the last segment of `kid`).
    pub version: String,
    /// `kty`, e.g. `RSA-HSM`, `oct-HSM`.
    pub kty: String,
    /// The RSA modulus and exponent (big-endian), for RSA keys.
    pub rsa_public: Option<(Vec<u8>, Vec<u8>)>,
    /// Whether it may be released.
    pub exportable: bool,
    /// The release policy (JSON), if any.
    pub release_policy: Option<Vec<u8>>,
}

impl KeyInfo {
    /// The RSA public key as a SubjectPublicKeyInfo (DER), to wrap data to it.
    pub fn rsa_public_key_spki(&self) -> Option<Vec<u8>> {
        self.rsa_public
            .as_ref()
            .map(|(n, e)| crate::key_release::rsa_public_key_spki(n, e))
    }
}

/// What Release answered, with what was asked, to open it with [`ReleasedKey::unwrap`].
#[derive(Debug, Clone)]
pub struct ReleasedKey {
    /// The answer's `value`: a compact JWS.
    pub jws: String,
    /// The key's name.
    pub key_name: String,
    /// The `enc` asked for.
    pub enc: KeyWrapAlgorithm,
    /// The nonce sent.
    pub nonce: Option<String>,
}

impl ReleasedKey {
    /// Opens the answer with the wrapping key whose public half the MAA token carried.
    pub fn unwrap(
        &self,
        wrapping_key: &WrappingKey,
        signers: &SignerTrust,
    ) -> Result<UnwrappedKey, ReleaseError> {
        unwrap_released(
            &self.jws,
            wrapping_key,
            &ReleaseExpectations {
                key_name: &self.key_name,
                enc: self.enc,
                nonce: self.nonce.as_deref(),
                signers,
            },
        )
    }
}

/// A keys client for one vault.
pub struct KeyVaultKeys {
    vault: String,
    client: KeyClient,
}

impl std::fmt::Debug for KeyVaultKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVaultKeys")
            .field("vault", &self.vault)
            .finish_non_exhaustive()
    }
}

const KIND: &str = "key";

impl KeyVaultKeys {
    /// A client for `vault` (URL or bare host name) authorized by `credential`.
    pub fn new(
        vault: &str,
        credential: &AzureCredential,
        http: &HttpOptions,
    ) -> Result<Self, KeyVaultError> {
        let (vault, client) = build_client(
            vault,
            http,
            |url, client_options, verify_challenge_resource| {
                let options = KeyClientOptions {
                    client_options,
                    verify_challenge_resource: Some(verify_challenge_resource),
                    ..KeyClientOptions::default()
                };
                KeyClient::new(url, credential.token_credential(), Some(options))
            },
        )?;
        Ok(Self { vault, client })
    }

    /// The vault URL.
    pub fn url(&self) -> &str {
        &self.vault
    }

    fn check_name(&self, name: &str, version: Option<&str>) -> Result<(), KeyVaultError> {
        check_object_name(&self.vault, KIND, name, version)
    }

    fn sdk_error(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> impl Fn(azure_core::Error) -> KeyVaultError {
        let (vault, name) = (self.vault.clone(), display_name(name, version));
        move |e| service_error(&vault, KIND, name.clone(), e)
    }

    /// Creates a new version of `name`: exportable, HSM-protected, releasable under
    /// `release_policy` (the policy JSON; `immutable` forbids changing it later).
    pub async fn create_exportable_key(
        &self,
        name: &str,
        key_type: ExportableKeyType,
        release_policy: &[u8],
        immutable: bool,
    ) -> Result<KeyInfo, KeyVaultError> {
        self.check_name(name, None)?;
        let policy = KeyReleasePolicy {
            content_type: Some(RELEASE_POLICY_CONTENT_TYPE.to_owned()),
            encoded_policy: Some(release_policy.to_vec()),
            immutable: Some(immutable),
        };
        let attributes = KeyAttributes {
            enabled: Some(true),
            exportable: Some(true),
            ..Default::default()
        };
        let mut parameters = CreateKeyParameters::default();
        let (kty, bits) = match key_type {
            ExportableKeyType::RsaHsm { bits } => (KeyType::RsaHsm, bits),
            ExportableKeyType::OctHsm { bits } => (KeyType::OctHsm, bits),
        };
        parameters.kty = Some(kty);
        parameters.key_size = Some(i32::try_from(bits).unwrap_or(i32::MAX));
        parameters.key_attributes = Some(attributes);
        parameters.release_policy = Some(policy);
        let on_error = self.sdk_error(name, None);
        let key = self
            .client
            .create_key(name, parameters.try_into().map_err(&on_error)?, None)
            .await
            .map_err(&on_error)?
            .into_model()
            .map_err(&on_error)?;
        self.key_info(name, None, key)
    }

    /// A key's public part, attributes and release policy: the current version, or `version`.
    pub async fn get_key(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<KeyInfo, KeyVaultError> {
        self.check_name(name, version)?;
        let options = KeyClientGetKeyOptions {
            key_version: version.map(str::to_owned),
            ..Default::default()
        };
        let on_error = self.sdk_error(name, version);
        let key = self
            .client
            .get_key(name, Some(options))
            .await
            .map_err(&on_error)?
            .into_model()
            .map_err(&on_error)?;
        self.key_info(name, version, key)
    }

    /// Release: Key Vault checks `maa_token` against the key's release policy and answers
    /// the key wrapped to the RSA key in the token's `x-ms-runtime.keys` (see
    /// [`WrappingKey::runtime_data`]), protected with `enc`. `version` `None`: the current one.
    pub async fn release_key(
        &self,
        name: &str,
        version: Option<&str>,
        maa_token: &str,
        enc: KeyWrapAlgorithm,
        nonce: Option<&str>,
    ) -> Result<ReleasedKey, KeyVaultError> {
        self.check_name(name, version)?;
        let parameters = ReleaseParameters {
            target_attestation_token: Some(maa_token.to_owned()),
            algorithm: Some(match enc {
                KeyWrapAlgorithm::CkmRsaAesKeyWrap => KeyEncryptionAlgorithm::CkmRsaAesKeyWrap,
                KeyWrapAlgorithm::RsaAesKeyWrap256 => KeyEncryptionAlgorithm::RsaAesKeyWrap256,
                KeyWrapAlgorithm::RsaAesKeyWrap384 => KeyEncryptionAlgorithm::RsaAesKeyWrap384,
            }),
            nonce: nonce.map(str::to_owned),
        };
        let options = KeyClientReleaseOptions {
            key_version: version.map(str::to_owned),
            ..Default::default()
        };
        let on_error = self.sdk_error(name, version);
        let result = self
            .client
            .release(
                name,
                parameters.try_into().map_err(&on_error)?,
                Some(options),
            )
            .await
            .map_err(&on_error)?
            .into_model()
            .map_err(&on_error)?;
        let jws = result.value.ok_or_else(|| KeyVaultError::Content {
            vault: self.vault.clone(),
            kind: KIND,
            name: display_name(name, version),
            reason: "the release answer has no value".into(),
        })?;
        Ok(ReleasedKey {
            jws,
            key_name: name.to_owned(),
            enc,
            nonce: nonce.map(str::to_owned),
        })
    }

    fn key_info(
        &self,
        name: &str,
        version: Option<&str>,
        key: Key,
    ) -> Result<KeyInfo, KeyVaultError> {
        let content = |reason: &str| KeyVaultError::Content {
            vault: self.vault.clone(),
            kind: KIND,
            name: display_name(name, version),
            reason: reason.to_owned(),
        };
        let jwk = key.key.ok_or_else(|| content("the answer has no key"))?;
        let kid = jwk.kid.ok_or_else(|| content("the key has no kid"))?;
        let kty = match jwk.kty {
            Some(KeyType::Rsa) => "RSA".to_owned(),
            Some(KeyType::RsaHsm) => "RSA-HSM".to_owned(),
            Some(KeyType::Ec) => "EC".to_owned(),
            Some(KeyType::EcHsm) => "EC-HSM".to_owned(),
            Some(KeyType::Oct) => "oct".to_owned(),
            Some(KeyType::OctHsm) => "oct-HSM".to_owned(),
            Some(KeyType::UnknownValue(other)) => other,
            None => return Err(content("the key has no kty")),
        };
        let rsa_public = match (jwk.n, jwk.e) {
            (Some(n), Some(e)) => Some((n, e)),
            _ => None,
        };
        Ok(KeyInfo {
            version: kid.rsplit('/').next().unwrap_or_default().to_owned(),
            kid,
            kty,
            rsa_public,
            exportable: key.attributes.and_then(|a| a.exportable).unwrap_or(false),
            release_policy: key.release_policy.and_then(|p| p.encoded_policy),
        })
    }
}
