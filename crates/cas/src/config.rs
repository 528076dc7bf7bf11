//! The CAS configuration: a TOML file, overridden by environment variables and flags (the
//! binary does the overriding; see `docs/cas.md` for every setting).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("config file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (line, column, key).
        message: String,
    },
    /// A value is out of range or settings contradict each other.
    #[error("config: {0}")]
    Invalid(String),
}

/// Where the CAS's own evidence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceMode {
    /// A simulated platform in the CAS process (a platform key in the data directory):
    /// evidence of nothing, for development and tests.
    Simulation,
    /// No evidence: `/v1/attest` answers 503, and `custos cas attest` cannot trust this CAS.
    None,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for the store, the master key (by default), the generated TLS certificate
    /// and the simulated platform key.
    pub data_dir: PathBuf,
    /// Address of the client API.
    pub listen: SocketAddr,
    /// The CAS's TLS certificate.
    pub tls: TlsSettings,
    /// The master key file; default `<data_dir>/master.key`, generated when missing.
    pub master_key_file: Option<PathBuf>,
    /// Where the CAS's evidence comes from.
    pub evidence: EvidenceMode,
    /// The simulated platform key; default `<data_dir>/platform-key.pem`.
    pub platform_key_file: Option<PathBuf>,
    /// Request limits.
    pub limits: Limits,
    /// Log filter (`info`, `custos_cas=debug`, ...).
    pub log: String,
}

/// The TLS certificate: given (both files), or generated into the data directory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first.
    pub certificate: Option<PathBuf>,
    /// PEM private key of the leaf.
    pub private_key: Option<PathBuf>,
    /// DNS names and IP addresses of a generated certificate.
    pub names: Vec<String>,
}

/// Request limits.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body, in bytes (a larger one gets 413).
    pub max_body_bytes: usize,
    /// Requests per second allowed per client (by identity, or by address without a
    /// certificate); more get 429.
    pub requests_per_second: f64,
    /// Requests a client may send at once above its rate.
    pub burst: u32,
    /// Connections served at once; more wait in the accept queue.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            requests_per_second: 100.0,
            burst: 200,
            max_connections: 1024,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/custos-cas"),
            listen: SocketAddr::from(([0, 0, 0, 0], 8081)),
            tls: TlsSettings {
                names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
                ..TlsSettings::default()
            },
            master_key_file: None,
            evidence: EvidenceMode::Simulation,
            platform_key_file: None,
            limits: Limits::default(),
            log: "info".into(),
        }
    }
}

impl Config {
    /// Reads a TOML file; settings it does not mention keep their defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(path, &text)
    }

    /// Parses TOML text that came from `path`.
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })
    }

    /// Checks ranges and combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.certificate.is_some() != self.tls.private_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls.certificate and tls.private_key are given together or not at all".into(),
            ));
        }
        if self.limits.max_body_bytes == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_body_bytes must be above 0".into(),
            ));
        }
        let rate = self.limits.requests_per_second;
        if !rate.is_finite() || rate <= 0.0 {
            return Err(ConfigError::Invalid(
                "limits.requests_per_second must be above 0".into(),
            ));
        }
        if self.limits.burst == 0 || self.limits.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "limits.burst and limits.max_connections must be above 0".into(),
            ));
        }
        Ok(())
    }

    /// The master key file.
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// The simulated platform key file.
    pub fn platform_key_path(&self) -> PathBuf {
        self.platform_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("platform-key.pem"))
    }

    /// The store file.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("cas.redb")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_settings_override_defaults() {
        let c = Config::from_toml(
            Path::new("cas.toml"),
            "data_dir = \"/tmp/x\"\nlisten = \"127.0.0.1:9000\"\n[limits]\nburst = 5\n",
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.limits.burst, 5);
        assert_eq!(c.limits.max_body_bytes, Limits::default().max_body_bytes);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = Config::from_toml(Path::new("cas.toml"), "listn = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
        let err = Config::from_toml(Path::new("cas.toml"), "[limits]\nburst = -1\n").unwrap_err();
        assert!(
            err.to_string().starts_with("config file cas.toml:"),
            "{err}"
        );
        let mut c = Config::default();
        c.tls.certificate = Some("a.crt".into());
        assert!(c.validate().unwrap_err().to_string().contains("together"));
    }
}
