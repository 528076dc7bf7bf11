//! Starting the CAS: data directory, master key, store, TLS identity, evidence source, and
//! the client API's listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use custos_ids::KeyHash;
use tokio_rustls::TlsAcceptor;

use crate::api::{ClientApi, TopLevelCreators};
use crate::attest::{GramineEnclave, SelfEvidence, SimulatedPlatform};
use crate::config::{Config, EvidenceMode, MasterKeyProvider};
use crate::enclave::Shared;
use crate::enclave::nonce::NonceKey;
use crate::http::HttpsListener;
use crate::key_release::{EnvelopeSlot, ReleaseFailure, Unreleased};
use crate::metrics::Metrics;
use crate::seal::{KeyFile, KeyProvider, Sealer};
use crate::store::Store;
use crate::tls::CasIdentity;

/// Why the CAS could not start. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The data directory could not be created.
    #[error("data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The master key is unavailable.
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The master key was not released (`master_key.provider = "azure-skr"`).
    #[error(transparent)]
    Release(ReleaseFailure),
    /// The TLS identity could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The evidence source could not be set up.
    #[error(transparent)]
    Evidence(#[from] crate::attest::EvidenceError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A started CAS, ready to serve.
pub struct Cas {
    listener: HttpsListener,
    api: Arc<ClientApi>,
    metrics: Arc<Metrics>,
    store: Store,
    identity: Arc<CasIdentity>,
    nonce_key: NonceKey,
    /// The client API's address.
    pub local_addr: SocketAddr,
    /// SHA-256 of the CAS certificate's public key (what clients pin).
    pub key_hash: KeyHash,
}

impl std::fmt::Debug for Cas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cas")
            .field("local_addr", &self.local_addr)
            .field("key_hash", &self.key_hash)
            .finish_non_exhaustive()
    }
}

impl Cas {
    /// Prepares everything and binds the listener.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        config.validate()?;
        create_private_dir(&config.data_dir)?;
        let evidence = self_evidence(config)?;
        let master_key = match config.master_key.provider {
            MasterKeyProvider::File => {
                let provider = key_file(config)?;
                let key = provider.master_key()?;
                tracing::info!(master_key = %provider.describe(), "master key loaded");
                key
            }
            MasterKeyProvider::AzureSkr => released_master_key(config, evidence.clone()).await?,
        };
        let sealer = Sealer::new(&master_key)?;
        let nonce_key = NonceKey::derive(&master_key)?;
        drop(master_key);
        let retention = config.audit.retention();
        let store = match &config.store.postgres {
            Some(postgres) => Store::open_postgres(&postgres.settings(), sealer, retention)?,
            None => Store::open_with_retention(&config.store_path(), sealer, retention)?,
        };
        let identity = match (&config.tls.certificate, &config.tls.private_key) {
            (Some(cert), Some(key)) => CasIdentity::load(cert, key)?,
            _ if store.is_replicated() => CasIdentity::shared(&store, &config.tls.names)?,
            _ => CasIdentity::load_or_generate(&config.data_dir, &config.tls.names)?,
        };
        let metrics = Arc::new(Metrics::default());
        let api = Arc::new(
            ClientApi::new(
                store.clone(),
                config.limits,
                evidence,
                identity.spki.clone(),
                identity.certificate_pem.clone(),
                metrics.clone(),
            )
            .with_top_level_creators(TopLevelCreators::from_settings(&config.sessions)?),
        );
        let listener = bind_client_api(config, &identity, &metrics).await?;
        Ok(Self {
            local_addr: listener.local_addr,
            listener,
            api,
            metrics,
            key_hash: identity.key_hash(),
            store,
            identity: Arc::new(identity),
            nonce_key,
        })
    }

    /// What the enclave API shares with the client API.
    pub fn shared(&self) -> Shared<'_> {
        Shared {
            store: &self.store,
            identity: &self.identity,
            nonce_key: &self.nonce_key,
            metrics: &self.metrics,
        }
    }

    /// Serves the client API until the process ends.
    pub async fn serve(self) {
        let api = self.api;
        self.listener
            .serve(move |request, peer| api.clone().handle(request, peer))
            .await;
    }
}

impl<'a> From<&'a Cas> for Shared<'a> {
    fn from(cas: &'a Cas) -> Self {
        cas.shared()
    }
}

/// The client API's listener, serving `identity`.
pub(crate) async fn bind_client_api(
    config: &Config,
    identity: &CasIdentity,
    metrics: &Metrics,
) -> Result<HttpsListener, StartError> {
    HttpsListener::bind(
        config.listen,
        TlsAcceptor::from(crate::tls::server_config(identity)),
        config.limits.connections(),
        metrics.client_connections.clone(),
    )
    .await
    .map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })
}

/// This CAS's own evidence, as `config.evidence` says.
pub fn self_evidence(config: &Config) -> Result<Option<Arc<dyn SelfEvidence>>, StartError> {
    Ok(match config.evidence {
        EvidenceMode::Simulation => {
            let exe = std::env::current_exe().map_err(|source| StartError::DataDir {
                path: PathBuf::from("/proc/self/exe"),
                source,
            })?;
            let platform = SimulatedPlatform::open(&config.platform_key_path(), &exe)?;
            tracing::warn!(
                mrenclave = %platform.mrenclave(),
                "SIMULATION: this CAS attests itself with a simulated platform key; its evidence proves nothing (not for production secrets)"
            );
            Some(Arc::new(platform))
        }
        EvidenceMode::Gramine => {
            let enclave = GramineEnclave::open(&config.gramine_path())?;
            tracing::info!(
                mrenclave = %enclave.mrenclave(),
                "this CAS attests itself with SGX DCAP quotes from Gramine"
            );
            Some(Arc::new(enclave))
        }
        EvidenceMode::None => {
            tracing::warn!("no evidence source: clients cannot attest this CAS");
            None
        }
    })
}

/// The key file of `master_key.provider = "file"`.
fn key_file(config: &Config) -> Result<KeyFile, StartError> {
    Ok(match &config.master_key_file {
        Some(path) => KeyFile::existing(path),
        // A new key only for a new store: a store without its key must not get another one.
        None if config.store_path().exists() => KeyFile::existing(config.master_key_path()),
        // Replicas must share one key: a generated one would fit no other replica.
        None if config.store.postgres.is_some() => {
            return Err(StartError::Config(crate::config::ConfigError::Invalid(
                "a replicated store (store.postgres / --store) needs the master key every replica shares: give master_key_file / --master-key-file, the same file for every replica (make one with: (echo 'custos-cas master key v1'; head -c 32 /dev/urandom | base64) > master.key; chmod 600 master.key)".into(),
            )));
        }
        None => KeyFile::create_if_missing(config.master_key_path()),
    })
}

/// The master key of `master_key.provider = "azure-skr"`, released to this CAS.
async fn released_master_key(
    config: &Config,
    evidence: Option<Arc<dyn SelfEvidence>>,
) -> Result<crate::seal::MasterKey, StartError> {
    let setup = skr_setup(config, evidence.clone())?;
    match crate::key_release::master_key(&setup).await {
        Ok(key) => Ok(key),
        Err(Unreleased {
            failure,
            recovery: Some(record),
        }) => crate::locked::wait_for_recovery(config, evidence, record, &failure).await,
        Err(Unreleased { failure, .. }) => Err(StartError::Release(failure)),
    }
}

/// Re-wraps the master key under the Key Vault key's current version (`custos-cas master-key
/// rewrap`): returns the versions before and after.
pub async fn rewrap_master_key(config: &Config) -> Result<(String, String), StartError> {
    config.validate()?;
    let evidence = self_evidence(config)?;
    crate::key_release::rewrap(&skr_setup(config, evidence)?)
        .await
        .map_err(StartError::Release)
}

/// Rotates the master key itself under `azure-skr` (`custos-cas master-key rotate` with the
/// CAS's configuration), re-sealing its store; `progress(what, done)` as records are re-sealed.
pub async fn rotate_master_key(
    config: &Config,
    progress: &mut (dyn FnMut(&str, u64) + Send),
) -> Result<crate::key_release::KeyRotated, StartError> {
    config.validate()?;
    if config.master_key.provider != crate::config::MasterKeyProvider::AzureSkr {
        return Err(StartError::Config(crate::config::ConfigError::Invalid(
            "master-key rotate: with key files give --store, --master-key-file and --new-master-key-file; without them it rotates a master key of master_key.provider = \"azure-skr\", and this configuration's provider is \"file\"".into(),
        )));
    }
    let evidence = self_evidence(config)?;
    let setup = skr_setup(config, evidence)?;
    let location = match &config.store.postgres {
        Some(postgres) => crate::store::copy::Location::Postgres(postgres.settings()),
        None => crate::store::copy::Location::Embedded(config.data_dir.clone()),
    };
    let store = crate::key_release::Reseal {
        location: &location,
        progress,
    };
    crate::key_release::rotate(&setup, store)
        .await
        .map_err(StartError::Release)
}

fn skr_setup(
    config: &Config,
    evidence: Option<Arc<dyn SelfEvidence>>,
) -> Result<crate::key_release::SkrSetup<'_>, StartError> {
    let invalid = |reason: String| StartError::Config(crate::config::ConfigError::Invalid(reason));
    let settings = config.master_key.azure_skr.as_ref().ok_or_else(|| {
        invalid("master_key.provider = \"azure-skr\" needs [master_key.azure_skr]".into())
    })?;
    let evidence = evidence.ok_or_else(|| {
        invalid("master_key.provider = \"azure-skr\" needs evidence (simulation or gramine)".into())
    })?;
    let http = crate::enclave::azure::Azure::from_config(&config.azure)
        .map_err(|e| invalid(e.to_string()))?
        .http_options();
    let slot = match &config.store.postgres {
        Some(postgres) => EnvelopeSlot::Postgres(postgres.settings()),
        None => EnvelopeSlot::File(config.data_dir.join(crate::key_release::ENVELOPE_FILE)),
    };
    Ok(crate::key_release::SkrSetup {
        settings,
        recovery: config.master_key.recovery.as_ref(),
        azure: &config.azure,
        http,
        evidence,
        slot,
    })
}

fn create_private_dir(path: &std::path::Path) -> Result<(), StartError> {
    let error = |source| StartError::DataDir {
        path: path.to_owned(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(error)
}
