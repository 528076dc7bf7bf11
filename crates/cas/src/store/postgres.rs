//! Connections to the PostgreSQL database that replicated CASes share.
//!
//! The URL is libpq's (`postgres://user@host:port/db?…` or `host=… user=…`). TLS is required:
//! `sslmode=disable` is accepted only when every host is a loopback address (a database on
//! the CAS's own machine, as in tests), and any other mode (`verify-full` included) means TLS
//! verified against the configured CAs, chain and host name ([`tls`]). A connection that cannot be made within the connect timeout
//! fails, so a database that is down makes requests fail fast rather than hang.

pub(in crate::store) mod backend;
pub mod nonces;
pub mod schema;
pub mod tls;
pub mod unsealed;

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use rustls::RootCertStore;
use tokio_postgres::config::{Host, SslMode};

/// How long connecting (TCP, TLS, authentication) may take, unless the URL says.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the database is and how to trust it.
#[derive(Clone)]
pub struct PgSettings {
    /// libpq URL or key=value string. It may hold a password: never logged or shown.
    pub url: String,
    /// PEM files of the CAs the database's certificate must chain to.
    pub ca_files: Vec<PathBuf>,
}

impl std::fmt::Debug for PgSettings {
    /// The URL may hold a password: never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &"(redacted)")
            .field("ca_files", &self.ca_files)
            .finish()
    }
}

/// Why the database cannot be used. Never holds the URL (it may hold a password).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PgError {
    /// The URL or the settings are wrong.
    #[error("store.postgres: {0}")]
    Settings(String),
    /// Connecting or a statement failed.
    #[error("store.postgres: {0}")]
    Database(String),
}

/// Connection settings checked and ready to connect.
#[derive(Clone)]
pub struct Connector {
    config: postgres::Config,
    tls: Option<tls::MakeRustlsConnect>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("hosts", &hosts(&self.config))
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Connector {
    /// Checks `settings`: the URL parses, TLS is on unless every host is loopback, and the
    /// CA files read.
    pub fn new(settings: &PgSettings) -> Result<Self, PgError> {
        let url = verified_modes_as_require(&settings.url);
        let mut config = postgres::Config::from_str(&url).map_err(|e| {
            PgError::Settings(format!("the URL does not parse as a PostgreSQL URL: {e}"))
        })?;
        if config.get_hosts().is_empty() {
            return Err(PgError::Settings("the URL names no host".into()));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_ssl_mode() == SslMode::Disable {
            let remote: Vec<String> = config
                .get_hosts()
                .iter()
                .filter(|host| !is_loopback(host))
                .map(describe)
                .collect();
            if !remote.is_empty() {
                return Err(PgError::Settings(format!(
                    "sslmode=disable is accepted for loopback hosts only; {} would see the store's traffic in clear",
                    remote.join(", ")
                )));
            }
            return Ok(Self { config, tls: None });
        }
        if settings.ca_files.is_empty() {
            return Err(PgError::Settings(
                "TLS to the database needs the CA its certificate chains to (store.postgres.ca_files / --store-ca)".into(),
            ));
        }
        let mut roots = RootCertStore::empty();
        for path in &settings.ca_files {
            let certificates = custos_tls::read_certificates(path)
                .map_err(|e| PgError::Settings(format!("{}: {e}", path.display())))?;
            for certificate in certificates {
                roots.add(certificate).map_err(|e| {
                    PgError::Settings(format!("{}: not a usable CA: {e}", path.display()))
                })?;
            }
        }
        let client = rustls::ClientConfig::builder_with_provider(custos_tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| PgError::Settings(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Whatever the URL asked for short of disable, the connection is TLS or nothing.
        config.ssl_mode(SslMode::Require);
        Ok(Self {
            config,
            tls: Some(tls::MakeRustlsConnect::new(client)),
        })
    }

    /// Where the database is (hosts and ports; never the password), for messages.
    pub fn location(&self) -> String {
        format!("postgres at {}", hosts(&self.config))
    }

    /// A new connection. Blocking: call it from a thread of its own or `block_in_place`.
    pub fn connect(&self) -> Result<postgres::Client, PgError> {
        let connected = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(postgres::NoTls),
        };
        connected.map_err(|e| {
            PgError::Database(format!(
                "cannot connect to {}: {}",
                hosts(&self.config),
                custos_ids::fmt::error_chain(&e)
            ))
        })
    }
}

/// libpq's `sslmode=verify-ca` and `verify-full`, which the client's parser does not know, as
/// `require`: with any mode short of `disable` the connection is verified TLS — chain and host
/// name (`verify-full`; for `verify-ca` that is stricter than libpq).
fn verified_modes_as_require(url: &str) -> String {
    let rewrite = |pair: &str| match pair {
        "sslmode=verify-full" | "sslmode=verify-ca" => "sslmode=require".to_owned(),
        other => other.to_owned(),
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return url.to_owned();
        };
        let query: Vec<String> = query.split('&').map(rewrite).collect();
        format!("{base}?{}", query.join("&"))
    } else {
        // key=value form: space-separated pairs.
        url.split(' ').map(rewrite).collect::<Vec<_>>().join(" ")
    }
}

fn hosts(config: &postgres::Config) -> String {
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{}:{port}", describe(host))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(host: &Host) -> String {
    match host {
        Host::Tcp(name) => name.clone(),
        Host::Unix(path) => path.display().to_string(),
    }
}

fn is_loopback(host: &Host) -> bool {
    match host {
        Host::Tcp(name) => {
            name == "localhost" || IpAddr::from_str(name).is_ok_and(|ip| ip.is_loopback())
        }
        // A socket on this machine.
        Host::Unix(_) => true,
    }
}
