//! A local, protocol-faithful Entra ID token endpoint, Azure Key Vault and Microsoft Azure
//! Attestation (MAA), for development, the demo and tests — no Azure account needed.
//!
//! Each service gets its own HTTPS listener, with a TLS certificate from the emulator's own CA
//! (written to a file clients can trust). The wire protocol is what the real services speak, as
//! recorded from them and as judged by Microsoft's own SDKs (the Python conformance suite in
//! `conformance/`): token requests with client secrets or signed client assertions, Key Vault's
//! 401 challenge and error bodies, MAA's token claims and signing certificates.
//!
//! It must never be mistaken for the real thing: it accepts only simulation evidence for
//! attestation (from platform keys it was told to trust), its CA is generated at start-up, and
//! it holds every secret in plain memory. It must never be exposed beyond a development machine.

#![warn(missing_docs)]

pub mod config;
pub mod demo;
mod entra;
pub mod faults;
mod http;
mod keys;
mod keyvault;
mod maa;
mod managed_hsm;
pub mod pki;
mod release_policy;
mod server;
pub mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::Config;
pub use stats::StatsSnapshot;

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error("{service}: cannot listen on {addr}: {source}")]
    Bind {
        /// Which service.
        service: &'static str,
        /// The address.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Keys or certificates could not be made or imported.
    #[error("{context}: {source}")]
    Pki {
        /// What was being made.
        context: String,
        /// Why it failed.
        source: pki::PkiError,
    },
    /// A configured file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// The base URLs of the four services, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    /// Entra ID authority host, e.g. `https://127.0.0.1:40001`.
    pub authority_host: String,
    /// The vault, e.g. `https://127.0.0.1:40002`.
    pub vault: String,
    /// The MAA instance, e.g. `https://127.0.0.1:40003`.
    pub maa: String,
    /// The Managed HSM, e.g. `https://127.0.0.1:40004`.
    pub managed_hsm: String,
}

/// State shared by the listeners.
pub(crate) struct Shared {
    pub urls: Urls,
    pub stats: Arc<stats::Stats>,
    pub faults: Arc<faults::Faults>,
    pub directory: entra::Directory,
    pub vault: keyvault::Vault,
    pub managed_hsm: keyvault::Vault,
    pub maa: maa::Maa,
}

/// A running emulator. Dropping it stops the listeners.
#[derive(Debug)]
pub struct Running {
    urls: Urls,
    addrs: [SocketAddr; 4],
    ca_pem: String,
    ca_file: Option<PathBuf>,
    stats: Arc<stats::Stats>,
    faults: Arc<faults::Faults>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

/// Starts the emulator: binds the four listeners, makes its CA and keys, loads the
/// configured tenants, secrets and certificates, and serves until the returned handle is
/// dropped or [`Running::shutdown`] is called.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let bind = |service: &'static str, port: u16| {
        let addr = SocketAddr::new(config.listen, port);
        async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind {
                    service,
                    addr,
                    source,
                })
        }
    };
    let entra_listener = bind("entra", config.entra.port).await?;
    let vault_listener = bind("keyvault", config.keyvault.port).await?;
    let maa_listener = bind("maa", config.maa.port).await?;
    let hsm_listener = bind("managedhsm", config.managed_hsm.port).await?;
    let local = |l: &TcpListener, service: &'static str| {
        l.local_addr().map_err(|source| StartError::Bind {
            service,
            addr: SocketAddr::new(config.listen, 0),
            source,
        })
    };
    let addrs = [
        local(&entra_listener, "entra")?,
        local(&vault_listener, "keyvault")?,
        local(&maa_listener, "maa")?,
        local(&hsm_listener, "managedhsm")?,
    ];
    let host = config
        .host
        .clone()
        .unwrap_or_else(|| url_host(config.listen));
    let url = |addr: SocketAddr| format!("https://{host}:{}", addr.port());
    let urls = Urls {
        authority_host: url(addrs[0]),
        vault: url(addrs[1]),
        maa: url(addrs[2]),
        managed_hsm: url(addrs[3]),
    };

    let pki_err = |context: &str| {
        let context = context.to_owned();
        move |source| StartError::Pki { context, source }
    };
    let ca = pki::Ca::generate().map_err(pki_err("CA"))?;
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let configured_host = config
        .host
        .clone()
        .unwrap_or_else(|| config.listen.to_string());
    if !names.contains(&configured_host) {
        names.insert(0, configured_host);
    }
    let (chain, key) = ca
        .server_certificate(&names)
        .map_err(pki_err("TLS certificate"))?;
    let generated = std::path::Path::new("<generated>");
    let certified = custos_tls::certified_key(generated, chain, generated, key).map_err(|e| {
        StartError::Pki {
            context: "TLS key".into(),
            source: pki::PkiError::Input(e.to_string()),
        }
    })?;
    let tls = Arc::new(custos_tls::server_config(
        certified,
        custos_tls::ALPN_H2_HTTP11,
    ));

    if let Some(path) = &config.ca_file {
        std::fs::write(path, ca.pem()).map_err(|source| StartError::File {
            path: path.clone(),
            source,
        })?;
    }

    let stats = Arc::new(stats::Stats::default());
    let faults = Arc::new(faults::Faults::new(config.faults.clone()));
    let directory =
        entra::Directory::new(&config, &urls.authority_host).map_err(pki_err("entra"))?;
    let vault = keyvault::Vault::new(&config, &urls.vault, &ca).map_err(pki_err("keyvault"))?;
    let managed_hsm = keyvault::Vault::managed_hsm(&config, &urls.managed_hsm, &ca)
        .map_err(pki_err("managed HSM"))?;
    let maa = maa::Maa::new(&config, &urls.maa).map_err(pki_err("maa"))?;
    let shared = Arc::new(Shared {
        urls: urls.clone(),
        stats: stats.clone(),
        faults: faults.clone(),
        directory,
        vault,
        managed_hsm,
        maa,
    });

    let (shutdown, signal) = watch::channel(false);
    let routers = [
        (
            entra_listener,
            http::with_common(entra::router(), config::Service::Entra, &shared),
        ),
        (
            vault_listener,
            http::with_common(
                keyvault::router(keyvault::Flavour::Vault),
                config::Service::Keyvault,
                &shared,
            ),
        ),
        (
            hsm_listener,
            http::with_common(
                keyvault::router(keyvault::Flavour::ManagedHsm),
                config::Service::Managedhsm,
                &shared,
            ),
        ),
        (
            maa_listener,
            http::with_common(maa::router(), config::Service::Maa, &shared),
        ),
    ];
    let tasks = routers
        .into_iter()
        .map(|(listener, router)| {
            tokio::spawn(server::serve(listener, tls.clone(), router, signal.clone()))
        })
        .collect();
    tracing::info!(entra = %urls.authority_host, keyvault = %urls.vault, maa = %urls.maa, managed_hsm = %urls.managed_hsm, "Azure emulator listening");
    Ok(Running {
        urls,
        addrs,
        ca_pem: ca.pem().to_owned(),
        ca_file: config.ca_file.clone(),
        stats,
        faults,
        shared,
        shutdown,
        tasks,
    })
}

fn url_host(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

impl Running {
    /// The services' base URLs.
    pub fn urls(&self) -> &Urls {
        &self.urls
    }

    /// The bound addresses: Entra ID, Key Vault, MAA, Managed HSM.
    pub fn addrs(&self) -> [SocketAddr; 4] {
        self.addrs
    }

    /// The CA certificate (PEM) that signed the listeners' TLS certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Where the CA certificate was written, if configured.
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        self.ca_file.as_deref()
    }

    /// The request counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Trusts one more platform key for simulation quotes at MAA.
    pub fn trust_platform_key(&self, key: &custos_attestation::PlatformPublicKey) {
        self.shared.maa.trust(key.id());
    }

    /// The platform key that signed the simulated quote in MAA's signing certificate, if the
    /// certificate embeds one.
    pub fn maa_evidence_platform_key(&self) -> Option<&custos_attestation::PlatformPublicKey> {
        self.shared.maa.evidence_platform()
    }

    /// Replaces the fault rules.
    pub fn set_faults(&self, rules: Vec<config::FaultRule>) {
        self.faults.replace(rules);
    }

    /// Stops accepting, ends open connections and waits for the listeners to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
