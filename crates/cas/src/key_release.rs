//! The master key by Azure Key Vault Secure Key Release (`master_key.provider = "azure-skr"`):
//! no key file; the master key is kept only wrapped ([`Envelope`]) by an exportable RSA-HSM key
//! in Key Vault (or a Managed HSM), which Key Vault releases only against an MAA token whose
//! claims meet the key's release policy — a CAS enclave of the measurement (or signer) the
//! operator admitted.
//!
//! At every start the CAS:
//! 1. makes a one-time RSA wrapping key and its runtime data `{"keys": [JWK]}`;
//! 2. produces its own evidence with `SHA-256(runtime data)` in the report data (a Gramine DCAP
//!    quote in an enclave; the simulated platform in simulation, which proves nothing);
//! 3. has MAA attest it, the runtime data as JSON, so the token carries the wrapping key;
//! 4. asks Key Vault to release the key with that token; Key Vault checks the token against the
//!    key's release policy and answers the key wrapped to the wrapping key;
//! 5. unwraps the answer and, with the released key, the envelope.
//!
//! A new store: the master key is generated here, wrapped to the Key Vault key's public half,
//! released once to prove it comes back to this CAS, and only then is the envelope stored
//! (first writer wins: replicas starting together share one master key).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::rsa::PrivateDecryptingKey;
use custos_azure::{
    AzureCredential, CredentialOptions, CredentialSpec, HttpOptions, KeyMaterial, KeyVaultKeys,
    KeyWrapAlgorithm, MaaClient, MaaEvidence, RuntimeData, SignerTrust, WrappingKey,
};

use crate::attest::SelfEvidence;
use crate::config::{AzureSettings, AzureSkrSettings, RecoverySettings};
use crate::seal::MasterKey;
use crate::seal::envelope::{Envelope, KekId};
use crate::seal::recovery::{RecoveryKey, RecoveryRecord};
use crate::store::postgres::PgSettings;

/// The wrapping key's size: Key Vault wraps to RSA keys of 2048 bits or more.
const WRAPPING_KEY_BITS: u32 = 3072;
/// The envelope's file, beside the embedded store.
pub const ENVELOPE_FILE: &str = "master-key.envelope.json";
/// The envelope of a master key being rotated to, beside the current one until the store is
/// re-sealed under it.
const PENDING_ENVELOPE_FILE: &str = "master-key.envelope.pending.json";

/// Why the master key was not released. Each names the step; none holds key material.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseFailure {
    /// The settings are unusable.
    #[error("master key (azure-skr): {0}")]
    Settings(String),
    /// This CAS's evidence could not be made.
    #[error("master key (azure-skr), step evidence: {0}")]
    Evidence(String),
    /// MAA did not attest the evidence.
    #[error("master key (azure-skr), step MAA attestation at {maa}: {reason}")]
    Maa {
        /// The MAA instance.
        maa: String,
        /// What failed.
        reason: String,
    },
    /// Key Vault did not release (or describe) the key: what it said.
    #[error("master key (azure-skr), step {step} of {key}: {reason}")]
    KeyVault {
        /// `release` or `get key`.
        step: &'static str,
        /// The key.
        key: String,
        /// Key Vault's answer (for a policy refusal, the unmet claim).
        reason: String,
    },
    /// The release answer or the envelope did not open.
    #[error("master key (azure-skr), step unwrap: {0}")]
    Unwrap(String),
    /// The envelope could not be read or stored.
    #[error("master key (azure-skr), step envelope: {0}")]
    Envelope(String),
    /// The store could not be re-sealed under a new master key.
    #[error("master key (azure-skr), step re-seal: {0}")]
    Reseal(String),
}

/// Where the envelope is kept: beside the embedded store, or in the shared database.
#[derive(Debug, Clone)]
pub enum EnvelopeSlot {
    /// `<data_dir>/master-key.envelope.json`.
    File(PathBuf),
    /// `custos_meta` of the PostgreSQL store.
    Postgres(PgSettings),
}

/// Which of the slot's two envelopes.
#[derive(Debug, Clone, Copy)]
enum Which {
    /// The one the store is sealed under.
    Current,
    /// The one a rotation is moving the store to.
    Pending,
}

impl Which {
    /// Its file, given the current envelope's.
    fn file(self, current: &Path) -> PathBuf {
        match self {
            Self::Current => current.to_owned(),
            Self::Pending => current.with_file_name(PENDING_ENVELOPE_FILE),
        }
    }

    /// Its key in the database's metadata.
    fn meta_key(self) -> &'static str {
        match self {
            Self::Current => ENVELOPE_KEY,
            Self::Pending => PENDING_ENVELOPE_KEY,
        }
    }
}

impl EnvelopeSlot {
    /// Where `which` is: its file, or its key in the database's metadata.
    fn place(&self, which: Which) -> Place<'_> {
        match self {
            Self::File(path) => Place::File(which.file(path)),
            Self::Postgres(settings) => Place::Meta(settings, which.meta_key()),
        }
    }

    fn load(&self) -> Result<Option<Envelope>, ReleaseFailure> {
        Ok(self.load_all(&[Which::Current])?.pop().flatten())
    }

    /// The envelope, which a store made by a first start has.
    fn load_existing(&self) -> Result<Envelope, ReleaseFailure> {
        self.load()?.ok_or_else(no_envelope)
    }

    /// The current envelope and the pending one (each if any), in one connection to the
    /// database.
    fn load_both(&self) -> Result<(Option<Envelope>, Option<Envelope>), ReleaseFailure> {
        let mut both = self.load_all(&[Which::Current, Which::Pending])?;
        let pending = both.pop().flatten();
        Ok((both.pop().flatten(), pending))
    }

    fn load_all(&self, which: &[Which]) -> Result<Vec<Option<Envelope>>, ReleaseFailure> {
        let bytes: Vec<Option<Vec<u8>>> = match self {
            Self::File(path) => which
                .iter()
                .map(|w| {
                    let path = w.file(path);
                    match std::fs::read(&path) {
                        Ok(bytes) => Ok(Some(bytes)),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                        Err(e) => Err(envelope_error(&path, e)),
                    }
                })
                .collect::<Result<_, _>>()?,
            Self::Postgres(settings) => {
                let keys: Vec<&str> = which.iter().map(|w| w.meta_key()).collect();
                crate::store::postgres::unsealed::load_many(settings, &keys)
                    .map_err(|e| ReleaseFailure::Envelope(e.to_string()))?
            }
        };
        bytes
            .into_iter()
            .map(|b| b.map(|b| parse_envelope(&b)).transpose())
            .collect()
    }

    /// Stores `envelope` unless one is there; returns the one that is.
    fn store_first(&self, envelope: &Envelope) -> Result<Envelope, ReleaseFailure> {
        self.store_first_which(Which::Current, envelope)
    }

    fn store_first_which(
        &self,
        which: Which,
        envelope: &Envelope,
    ) -> Result<Envelope, ReleaseFailure> {
        let json = serde_json::to_vec_pretty(envelope)
            .map_err(|e| ReleaseFailure::Envelope(e.to_string()))?;
        let stored = match self.place(which) {
            Place::File(path) => {
                write_new(&path, &json)?;
                json
            }
            Place::Meta(settings, key) => {
                crate::store::postgres::unsealed::store_first(settings, key, &json)
                    .map_err(|e| ReleaseFailure::Envelope(e.to_string()))?
            }
        };
        parse_envelope(&stored)
    }

    fn remove_pending(&self) -> Result<(), ReleaseFailure> {
        match self.place(Which::Pending) {
            Place::File(path) => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(envelope_error(&path, e)),
                _ => Ok(()),
            },
            Place::Meta(settings, key) => crate::store::postgres::unsealed::remove(settings, key)
                .map_err(|e| ReleaseFailure::Envelope(e.to_string())),
        }
    }
}

fn no_envelope() -> ReleaseFailure {
    ReleaseFailure::Envelope("no envelope yet: start the CAS once to create the store".into())
}

/// One envelope's place.
enum Place<'a> {
    File(PathBuf),
    Meta(&'a PgSettings, &'static str),
}

impl EnvelopeSlot {
    /// Replaces `old` by `new`, unless the stored envelope is no longer `old` (another
    /// re-wrap ran meanwhile).
    fn replace(&self, old: &Envelope, new: &Envelope) -> Result<(), ReleaseFailure> {
        let json = |e: &Envelope| {
            serde_json::to_vec_pretty(e).map_err(|e| ReleaseFailure::Envelope(e.to_string()))
        };
        let (old, new) = (json(old)?, json(new)?);
        let replaced = match self {
            Self::File(path) => {
                if std::fs::read(path).map_err(|e| envelope_error(path, e))? != old {
                    false
                } else {
                    // Written beside and renamed over: a crash leaves one whole envelope.
                    let next = path.with_extension("json.next");
                    let _ = std::fs::remove_file(&next);
                    write_new(&next, &new)?;
                    std::fs::rename(&next, path).map_err(|e| envelope_error(path, e))?;
                    true
                }
            }
            Self::Postgres(settings) => {
                crate::store::postgres::unsealed::replace(settings, ENVELOPE_KEY, &old, &new)
                    .map_err(|e| ReleaseFailure::Envelope(e.to_string()))?
            }
        };
        if replaced {
            Ok(())
        } else {
            Err(ReleaseFailure::Envelope(
                "the stored envelope changed while it was re-wrapped (another re-wrap?); nothing was replaced".into(),
            ))
        }
    }
}

/// The envelope's key in the database's metadata.
const ENVELOPE_KEY: &str = "key-envelope";
/// The pending envelope's (see [`PENDING_ENVELOPE_FILE`]).
const PENDING_ENVELOPE_KEY: &str = "key-envelope-pending";

fn parse_envelope(bytes: &[u8]) -> Result<Envelope, ReleaseFailure> {
    serde_json::from_slice(bytes)
        .map_err(|e| ReleaseFailure::Envelope(format!("does not parse: {e}")))
}

fn envelope_error(path: &Path, e: std::io::Error) -> ReleaseFailure {
    ReleaseFailure::Envelope(format!("{}: {e}", path.display()))
}

fn write_new(path: &Path, content: &[u8]) -> Result<(), ReleaseFailure> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| envelope_error(path, e))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(|e| envelope_error(path, e))?;
    if let Some(dir) = path.parent() {
        crate::seal::sync_dir(dir).map_err(|e| envelope_error(path, e))?;
    }
    Ok(())
}

/// What key release takes from the CAS's configuration.
pub struct SkrSetup<'a> {
    /// The key and the MAA instance.
    pub settings: &'a AzureSkrSettings,
    /// The operators a new master key is split for.
    pub recovery: Option<&'a RecoverySettings>,
    /// Azure endpoints and CAs (and the credential's defaults).
    pub azure: &'a AzureSettings,
    /// How to reach Azure.
    pub http: HttpOptions,
    /// This CAS's own evidence.
    pub evidence: Arc<dyn SelfEvidence>,
    /// Where the envelope is.
    pub slot: EnvelopeSlot,
}

impl std::fmt::Debug for SkrSetup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkrSetup")
            .field("key", &self.settings.key)
            .field("maa", &self.settings.maa)
            .finish_non_exhaustive()
    }
}

impl SkrSetup<'_> {
    fn skr(&self) -> Result<Skr, ReleaseFailure> {
        Skr::new(self.settings, self.azure, &self.http, self.evidence.clone())
    }
}

/// Key Vault, MAA and this CAS's evidence, set up from the configuration.
struct Skr {
    keys: KeyVaultKeys,
    vault: String,
    name: String,
    maa: MaaClient,
    signers: SignerTrust,
    evidence: Arc<dyn SelfEvidence>,
}

/// The CAS's own Entra ID identity: a client secret, a federated token (workload identity)
/// or the managed identity, from the settings or the standard `AZURE_*` variables.
fn credential(
    settings: &AzureSkrSettings,
    azure: &AzureSettings,
    http: &HttpOptions,
) -> Result<AzureCredential, ReleaseFailure> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let tenant = settings
        .tenant_id
        .clone()
        .or_else(|| env("AZURE_TENANT_ID"));
    let client = settings
        .client_id
        .clone()
        .or_else(|| env("AZURE_CLIENT_ID"));
    let token_file = settings
        .federated_token_file
        .clone()
        .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from));
    let needs = |what: &str| {
        ReleaseFailure::Settings(format!(
            "{what} needs the tenant and client ids (master_key.azure_skr.tenant_id/client_id or AZURE_TENANT_ID/AZURE_CLIENT_ID)"
        ))
    };
    let spec = match (&settings.client_secret_file, token_file) {
        (Some(path), _) => {
            let secret = std::fs::read_to_string(path).map_err(|e| {
                ReleaseFailure::Settings(format!("client_secret_file {}: {e}", path.display()))
            })?;
            CredentialSpec::ClientSecret {
                tenant_id: tenant.ok_or_else(|| needs("a client secret"))?,
                client_id: client.ok_or_else(|| needs("a client secret"))?,
                secret: secret.trim().to_owned().into(),
            }
        }
        (None, Some(token_file)) => CredentialSpec::WorkloadIdentity {
            tenant_id: tenant.ok_or_else(|| needs("a federated token"))?,
            client_id: client.ok_or_else(|| needs("a federated token"))?,
            token_file,
        },
        (None, None) => CredentialSpec::ManagedIdentity { client_id: client },
    };
    let options = CredentialOptions {
        authority_host: azure.authority_host.clone(),
        http: http.clone(),
    };
    AzureCredential::new(spec, &options).map_err(|e| ReleaseFailure::Settings(e.to_string()))
}

impl Skr {
    fn new(
        settings: &AzureSkrSettings,
        azure: &AzureSettings,
        http: &HttpOptions,
        evidence: Arc<dyn SelfEvidence>,
    ) -> Result<Self, ReleaseFailure> {
        let key = settings.key.trim_end_matches('/');
        let (vault, name) = key
            .split_once("/keys/")
            .filter(|(vault, name)| {
                vault.starts_with("https://") && !name.is_empty() && !name.contains('/')
            })
            .ok_or_else(|| {
                ReleaseFailure::Settings(format!(
                    "master_key.azure_skr.key: expected https://VAULT/keys/NAME, actual {key:?}"
                ))
            })?;
        let credential = credential(settings, azure, http)?;
        let keys = KeyVaultKeys::new(vault, &credential, http)
            .map_err(|e| ReleaseFailure::Settings(e.to_string()))?;
        let maa = MaaClient::new(&settings.maa, http)
            .map_err(|e| ReleaseFailure::Settings(format!("master_key.azure_skr.maa: {e}")))?;
        let signers = if settings.signer_ca_files.is_empty() {
            SignerTrust::AnySigner
        } else {
            let mut roots = Vec::new();
            for path in &settings.signer_ca_files {
                let certificates = custos_tls::read_certificates(path).map_err(|e| {
                    ReleaseFailure::Settings(format!("signer_ca_files {}: {e}", path.display()))
                })?;
                roots.extend(certificates.into_iter().map(|c| c.to_vec()));
            }
            SignerTrust::Roots(roots)
        };
        Ok(Self {
            keys,
            vault: vault.to_owned(),
            name: name.to_owned(),
            maa,
            signers,
            evidence,
        })
    }

    fn key_id(&self, version: &str) -> KekId {
        KekId {
            vault: self.vault.clone(),
            name: self.name.clone(),
            version: version.to_owned(),
        }
    }

    fn key_vault(
        &self,
        step: &'static str,
        version: Option<&str>,
        reason: impl ToString,
    ) -> ReleaseFailure {
        ReleaseFailure::KeyVault {
            step,
            key: match version {
                Some(v) => self.key_id(v).to_string(),
                None => format!("{}/keys/{}", self.vault, self.name),
            },
            reason: reason.to_string(),
        }
    }

    /// The key's current version and its public modulus and exponent.
    async fn public(&self) -> Result<(KekId, Vec<u8>, Vec<u8>), ReleaseFailure> {
        let info = self
            .keys
            .get_key(&self.name, None)
            .await
            .map_err(|e| self.key_vault("get key", None, e))?;
        if !info.exportable {
            return Err(self.key_vault(
                "get key",
                Some(&info.version),
                "expected an exportable key with a release policy, actual: not exportable (Key Vault would never release it)",
            ));
        }
        let (n, e) = info.rsa_public.clone().ok_or_else(|| {
            self.key_vault(
                "get key",
                Some(&info.version),
                format!("expected an RSA key, actual kty {}", info.kty),
            )
        })?;
        Ok((self.key_id(&info.version), n, e))
    }

    /// Key version `version`'s private half, released to this CAS.
    async fn release(&self, version: &str) -> Result<PrivateDecryptingKey, ReleaseFailure> {
        let wrapping = WrappingKey::generate(WRAPPING_KEY_BITS, "custos-cas-release")
            .map_err(|e| ReleaseFailure::Evidence(format!("the one-time wrapping key: {e}")))?;
        let runtime = wrapping.runtime_data();
        let evidence = {
            let (source, runtime) = (self.evidence.clone(), runtime.clone());
            tokio::task::spawn_blocking(move || source.evidence(&runtime))
                .await
                .map_err(|e| ReleaseFailure::Evidence(e.to_string()))?
                .map_err(|e| ReleaseFailure::Evidence(e.to_string()))?
        };
        let token = self
            .maa
            .attest(
                MaaEvidence::SgxQuote(&evidence.bytes),
                Some(RuntimeData::Json(&runtime)),
            )
            .await
            .map_err(|e| ReleaseFailure::Maa {
                maa: self.maa.url().to_owned(),
                reason: e.to_string(),
            })?;
        let released = self
            .keys
            .release_key(
                &self.name,
                Some(version),
                &token,
                KeyWrapAlgorithm::CkmRsaAesKeyWrap,
                None,
            )
            .await
            .map_err(|e| self.key_vault("release", Some(version), e))?;
        let unwrapped = released
            .unwrap(&wrapping, &self.signers)
            .map_err(|e| ReleaseFailure::Unwrap(e.to_string()))?;
        let KeyMaterial::RsaPrivateKey(pkcs8) = &unwrapped.material else {
            return Err(ReleaseFailure::Unwrap(format!(
                "expected an RSA private key, actual {:?}",
                unwrapped.material
            )));
        };
        PrivateDecryptingKey::from_pkcs8(pkcs8)
            .map_err(|e| ReleaseFailure::Unwrap(format!("the released RSA key: {e}")))
    }
}

/// Re-wraps the master key under the Key Vault key's current version: releases the version
/// the envelope names, wraps the master key to the current one, proves that one is released
/// to this CAS too, and replaces the envelope. The running CASes keep their master key; the
/// next start releases the new version. Returns the versions before and after.
pub async fn rewrap(setup: &SkrSetup<'_>) -> Result<(String, String), ReleaseFailure> {
    let (skr, slot) = (setup.skr()?, &setup.slot);
    let envelope = slot.load_existing()?;
    let master = open(&envelope, &skr.release(&envelope.kek.version).await?)?;
    let (current, n, e) = skr.public().await?;
    if current == envelope.kek {
        return Err(ReleaseFailure::Envelope(format!(
            "the master key is wrapped by {current} already, the key's current version: create a new version first"
        )));
    }
    let mut rewrapped = Envelope::wrap(&master, current, &n, &e)
        .map_err(|e| ReleaseFailure::Envelope(e.to_string()))?;
    rewrapped.recovery = envelope.recovery.clone();
    let proof = open(&rewrapped, &skr.release(&rewrapped.kek.version).await?)?;
    if !proof.same_as(&master) {
        return Err(ReleaseFailure::Unwrap(
            "the new version's release did not give back the master key".into(),
        ));
    }
    slot.replace(&envelope, &rewrapped)?;
    tracing::info!(from = %envelope.kek, to = %rewrapped.kek, "master key re-wrapped");
    Ok((envelope.kek.version, rewrapped.kek.version))
}

/// What `custos-cas master-key rotate` did under `azure-skr`.
#[derive(Debug)]
pub struct KeyRotated {
    /// The key version the new master key is wrapped by.
    pub kek: String,
    /// What was re-sealed (none when an interrupted rotation had re-sealed it already).
    pub resealed: Option<crate::store::rotate::Rotated>,
}

/// The store a rotation re-seals, and what to tell as it goes.
pub struct Reseal<'a> {
    /// The store.
    pub location: &'a crate::store::copy::Location,
    /// Called with (what, how many so far) as records are re-sealed.
    pub progress: &'a mut (dyn FnMut(&str, u64) + Send),
}

impl std::fmt::Debug for Reseal<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reseal")
            .field("location", &self.location.to_string())
            .finish_non_exhaustive()
    }
}

/// Rotates the master key itself (`custos-cas master-key rotate` under `azure-skr`): releases
/// the current one, makes a new one wrapped by the key's current version (split anew for the
/// configured `recovery` operators), proves it is released back, records it as the pending
/// envelope, re-seals the store at `location` under it and only then makes it the current
/// envelope. A rotation interrupted anywhere is finished by running this again: the pending
/// envelope's key is the one the store moves to, and a CAS refuses to start until it is done.
pub async fn rotate(setup: &SkrSetup<'_>, store: Reseal<'_>) -> Result<KeyRotated, ReleaseFailure> {
    use crate::seal::Sealer;
    let Reseal { location, progress } = store;
    let (skr, slot, recovery) = (setup.skr()?, &setup.slot, setup.recovery);
    let (envelope, pending) = slot.load_both()?;
    let envelope = envelope.ok_or_else(no_envelope)?;
    let old = open(&envelope, &skr.release(&envelope.kek.version).await?)?;
    let (pending, new) = match pending {
        Some(pending) => {
            let new = open(&pending, &skr.release(&pending.kek.version).await?)?;
            tracing::info!(to = %pending.kek, "finishing an interrupted master-key rotation");
            (pending, new)
        }
        None => {
            let (kek, n, e) = skr.public().await?;
            let new = MasterKey::generate().map_err(|e| ReleaseFailure::Envelope(e.to_string()))?;
            let mut pending = Envelope::wrap(&new, kek, &n, &e)
                .map_err(|e| ReleaseFailure::Envelope(e.to_string()))?;
            pending.recovery = match (recovery, &envelope.recovery) {
                (Some(recovery), _) => Some(
                    RecoveryRecord::create(&new, recovery.threshold, &recovery_keys(recovery)?)
                        .map_err(|e| ReleaseFailure::Settings(e.to_string()))?,
                ),
                (None, Some(_)) => {
                    return Err(ReleaseFailure::Settings(
                        "the master key has recovery shares: configure [master_key.recovery] (the operators' public keys and threshold) so that the new key is split too".into(),
                    ));
                }
                (None, None) => None,
            };
            // Proved to come back before anything depends on it.
            let proof = open(&pending, &skr.release(&pending.kek.version).await?)?;
            if !proof.same_as(&new) {
                return Err(ReleaseFailure::Unwrap(
                    "the release did not give back the new master key".into(),
                ));
            }
            let stored = slot.store_first_which(Which::Pending, &pending)?;
            if stored != pending {
                return Err(ReleaseFailure::Envelope(
                    "another rotation stored its pending envelope meanwhile; nothing was changed"
                        .into(),
                ));
            }
            (pending, new)
        }
    };
    let sealer =
        |key: &MasterKey| Sealer::new(key).map_err(|e| ReleaseFailure::Reseal(e.to_string()));
    let (old_sealer, new_sealer) = (sealer(&old)?, sealer(&new)?);
    // Re-sealed already if an earlier run got past this step.
    let resealed = if crate::store::rotate::opens_with(location, &new_sealer) {
        None
    } else {
        Some(
            crate::store::rotate::rotate(location, &old_sealer, &new_sealer, progress)
                .map_err(|e| ReleaseFailure::Reseal(format!("{location}: {e}")))?,
        )
    };
    slot.replace(&envelope, &pending)?;
    slot.remove_pending()?;
    tracing::info!(kek = %pending.kek, "master key rotated");
    Ok(KeyRotated {
        kek: pending.kek.to_string(),
        resealed,
    })
}

/// Why there is no master key: the failure, and the recovery shares if the envelope has them.
#[derive(Debug)]
pub struct Unreleased {
    /// What failed.
    pub failure: ReleaseFailure,
    /// The envelope's recovery shares, when operators can recover the key instead.
    pub recovery: Option<RecoveryRecord>,
}

impl From<ReleaseFailure> for Unreleased {
    fn from(failure: ReleaseFailure) -> Self {
        Self {
            failure,
            recovery: None,
        }
    }
}

/// The operators' recovery keys `settings` name.
fn recovery_keys(settings: &RecoverySettings) -> Result<Vec<RecoveryKey>, ReleaseFailure> {
    settings
        .keys
        .iter()
        .map(|path| {
            let pem = std::fs::read(path).map_err(|e| {
                ReleaseFailure::Settings(format!(
                    "master_key.recovery.keys {}: {e}",
                    path.display()
                ))
            })?;
            RecoveryKey::from_pem(&path.display().to_string(), &pem)
                .map_err(|e| ReleaseFailure::Settings(e.to_string()))
        })
        .collect()
}

/// The master key in `envelope`, unwrapped with the released key-encryption key `kek`.
fn open(envelope: &Envelope, kek: &PrivateDecryptingKey) -> Result<MasterKey, ReleaseFailure> {
    envelope
        .unwrap(kek)
        .map_err(|e| ReleaseFailure::Unwrap(e.to_string()))
}

/// The master key, released to this CAS through `settings`' Key Vault key; for a new store,
/// made (with `recovery` shares, if set) and its envelope stored in `slot`.
pub async fn master_key(setup: &SkrSetup<'_>) -> Result<MasterKey, Unreleased> {
    let simulated = setup.evidence.is_simulation();
    let started = std::time::Instant::now();
    let (skr, slot, recovery, settings) =
        (setup.skr()?, &setup.slot, setup.recovery, setup.settings);
    let (current, pending) = slot.load_both()?;
    if let Some(pending) = pending {
        return Err(ReleaseFailure::Envelope(format!(
            "a master-key rotation to {} was interrupted: run `custos-cas master-key rotate` again with this configuration to finish it",
            pending.kek
        ))
        .into());
    }
    let master = match current {
        Some(envelope) => {
            let released = match skr.release(&envelope.kek.version).await {
                Ok(kek) => open(&envelope, &kek),
                Err(e) => Err(e),
            };
            let master = released.map_err(|failure| Unreleased {
                failure,
                recovery: envelope.recovery.clone(),
            })?;
            tracing::info!(key = %envelope.kek, maa = %settings.maa, elapsed_ms = started.elapsed().as_millis() as u64, "master key released to this CAS by Key Vault (Secure Key Release)");
            master
        }
        None => {
            let (kek_id, n, e) = skr.public().await?;
            let master =
                MasterKey::generate().map_err(|e| ReleaseFailure::Envelope(e.to_string()))?;
            let mut envelope = Envelope::wrap(&master, kek_id, &n, &e)
                .map_err(|e| ReleaseFailure::Envelope(e.to_string()))?;
            if let Some(recovery) = recovery {
                let keys = recovery_keys(recovery)?;
                envelope.recovery = Some(
                    RecoveryRecord::create(&master, recovery.threshold, &keys)
                        .map_err(|e| ReleaseFailure::Settings(e.to_string()))?,
                );
            }
            // Stored only once the key has come back to this CAS: a policy that would never
            // release it must not leave a store nobody can open.
            let kek = skr.release(&envelope.kek.version).await?;
            open(&envelope, &kek)?;
            let stored = slot.store_first(&envelope)?;
            tracing::info!(key = %stored.kek, maa = %settings.maa, elapsed_ms = started.elapsed().as_millis() as u64, "new master key, wrapped by the Key Vault key; released to this CAS");
            if stored == envelope {
                master
            } else if stored.kek.version == envelope.kek.version {
                // Another replica stored its envelope first: its master key is the store's.
                open(&stored, &kek)?
            } else {
                open(&stored, &skr.release(&stored.kek.version).await?)?
            }
        }
    };
    if simulated {
        tracing::warn!(
            "SIMULATION: the master key was released against simulated evidence, which proves nothing; a release policy that admits a simulated CAS protects nothing"
        );
    }
    Ok(master)
}
