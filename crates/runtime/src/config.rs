//! The runtime's configuration, from the environment (`docs/enclave-api.md` § The runtime).
//!
//! Every `CUSTOS_X` is also accepted as `SCONE_X`, so the sample's deployments work unchanged;
//! when both are set, `CUSTOS_X` wins.

use std::fmt;
use std::path::PathBuf;

use custos_ids::KeyHash;

/// The CAS's enclave API port.
pub const DEFAULT_CAS_PORT: u16 = 18765;
/// The LAS's port.
pub const DEFAULT_LAS_PORT: u16 = 18766;

/// A configuration variable with an unusable value; names the variable, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is missing.
    #[error("{name} is not set: {why}")]
    Missing {
        /// The variable (its `CUSTOS_` name).
        name: &'static str,
        /// Why it is needed.
        why: &'static str,
    },
    /// A variable's value is malformed.
    #[error("{name}={value:?}: {expected}")]
    Invalid {
        /// The variable as set (`CUSTOS_X` or `SCONE_X`).
        name: String,
        /// Its value (configuration, not secrets).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// A `host[:port]` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Endpoint {
    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`, with `default_port` when absent.
    pub fn parse(text: &str, default_port: u16) -> Option<Self> {
        let text = text.trim();
        let text = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .unwrap_or(text)
            .trim_end_matches('/');
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']')?;
            match after.strip_prefix(':') {
                Some(port) => (host, port.parse().ok()?),
                None if after.is_empty() => (host, default_port),
                None => return None,
            }
        } else {
            match text.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') => (host, port.parse().ok()?),
                Some(_) => (text, default_port), // a bare IPv6 address
                None => (text, default_port),
            }
        };
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        valid.then(|| Self {
            host: host.to_owned(),
            port,
        })
    }

    /// `https://host:port` (brackets around IPv6).
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{self}")
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `host[:port]` entries separated by commas, each with [`DEFAULT_CAS_PORT`] when it has
/// none; `None` if one is empty, malformed or repeated.
fn parse_replicas(text: &str) -> Option<Vec<Endpoint>> {
    let mut replicas: Vec<Endpoint> = Vec::new();
    for entry in text.split(',') {
        let endpoint = Endpoint::parse(entry, DEFAULT_CAS_PORT)?;
        if replicas.contains(&endpoint) {
            return None;
        }
        replicas.push(endpoint);
    }
    Some(replicas)
}

/// Where evidence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Hardware: Gramine's `/dev/attestation`.
    Hardware,
    /// Simulation: a sim-quote from the LAS.
    Simulation,
    /// Hardware if the attestation device exists, else simulation (with a warning).
    Auto,
}

/// How the runtime authenticates the CAS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasTrust {
    /// A CA (PEM file) that issued the CAS's certificate; the CAS address must match it.
    Ca(PathBuf),
    /// The SHA-256 of the CAS certificate's public key.
    Pin(KeyHash),
    /// Nothing: refused unless in simulation, where it is accepted with a warning.
    Unverified,
}

/// Everything `custos-run` reads from its environment.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// `<session>/<service>`; `None`: start the program unattested.
    pub config_id: Option<String>,
    /// The CAS's enclave API: one address, or the replicas of one CAS (empty: not set).
    pub cas: Vec<Endpoint>,
    /// The node's LAS.
    pub las: Endpoint,
    /// Evidence source.
    pub mode: Mode,
    /// CAS authentication.
    pub cas_trust: CasTrust,
    /// Gramine's attestation directory (a test may point it elsewhere).
    pub attestation_dir: PathBuf,
    /// Directories the deployment keeps private to this container although their mode lets
    /// others write (Kubernetes creates `emptyDir` volumes 0777): files are written there
    /// without the directory check of [`crate::files`].
    pub private_dirs: Vec<PathBuf>,
}

impl RunConfig {
    /// Reads the configuration through `lookup` (the process environment in production).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |suffix: &str| -> Option<(String, String)> {
            ["CUSTOS_", "SCONE_"].iter().find_map(|prefix| {
                let name = format!("{prefix}{suffix}");
                lookup(&name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (name, v))
            })
        };
        let invalid = |(name, value): (String, String), expected| ConfigError::Invalid {
            name,
            value,
            expected,
        };

        let config_id = get("CONFIG_ID").map(|(_, v)| v.trim().to_owned());
        let cas = match get("CAS_ADDR") {
            Some(var) => parse_replicas(&var.1).ok_or_else(|| {
                invalid(
                    var,
                    "host[:port], or the replicas of one CAS separated by commas, e.g. cas:18765, 10.0.0.4 or cas-0:18765,cas-1:18765",
                )
            })?,
            None => Vec::new(),
        };
        let las = match get("LAS_ADDR") {
            Some(var) => Endpoint::parse(&var.1, DEFAULT_LAS_PORT)
                .ok_or_else(|| invalid(var, "host[:port], e.g. 10.0.0.5:18766"))?,
            None => Endpoint {
                host: "127.0.0.1".into(),
                port: DEFAULT_LAS_PORT,
            },
        };
        let mode = match get("MODE") {
            None => Mode::Auto,
            Some(var) => match var.1.trim() {
                "hw" | "hardware" => Mode::Hardware,
                "sim" | "simulation" => Mode::Simulation,
                "auto" => Mode::Auto,
                _ => return Err(invalid(var, "one of hw, sim, auto")),
            },
        };
        let cas_trust = match (get("CAS_CA"), get("CAS_KEY_HASH")) {
            (Some(ca), _) => CasTrust::Ca(PathBuf::from(ca.1.trim())),
            (None, Some(pin)) => {
                let parsed = pin.1.trim().parse();
                CasTrust::Pin(parsed.map_err(|_| {
                    invalid(
                        pin,
                        "64 hex digits: SHA-256 of the CAS certificate's public key (`custos cas list`)",
                    )
                })?)
            }
            (None, None) => CasTrust::Unverified,
        };
        let attestation_dir = get("ATTESTATION_DIR")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| PathBuf::from(custos_attestation::gramine::ATTESTATION_DIR));

        let private_dirs: Vec<PathBuf> = get("PRIVATE_DIRS")
            .map(|(_, v)| std::env::split_paths(&v).collect())
            .unwrap_or_default();
        if let Some(dir) = private_dirs.iter().find(|d| !d.is_absolute()) {
            return Err(ConfigError::Invalid {
                name: get("PRIVATE_DIRS").map(|(n, _)| n).unwrap_or_default(),
                value: dir.display().to_string(),
                expected: "absolute directory paths separated by `:`, e.g. /tls:/etc/app",
            });
        }
        if let Some(id) = &config_id
            && id.split('/').filter(|part| !part.is_empty()).count() < 2
        {
            return Err(ConfigError::Invalid {
                name: get("CONFIG_ID").map(|(n, _)| n).unwrap_or_default(),
                value: id.clone(),
                expected: "<session name>/<service name>, e.g. my-namespace/demo/rest-api",
            });
        }
        if config_id.is_some() && cas.is_empty() {
            return Err(ConfigError::Missing {
                name: "CUSTOS_CAS_ADDR",
                why: "a config id needs the CAS that holds its session (host[:18765])",
            });
        }
        Ok(Self {
            config_id,
            cas,
            las,
            mode,
            cas_trust,
            attestation_dir,
            private_dirs,
        })
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<RunConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RunConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_set_means_run_unattested() {
        let config = config(&[]).unwrap();
        assert_eq!(config.config_id, None);
        assert_eq!(config.mode, Mode::Auto);
        assert_eq!(config.cas_trust, CasTrust::Unverified);
        assert_eq!(config.las.to_string(), "127.0.0.1:18766");
    }

    #[test]
    fn scone_names_work_and_custos_names_win() {
        let config = config(&[
            ("SCONE_CONFIG_ID", "ns/demo/rest-api"),
            ("SCONE_CAS_ADDR", "10.0.0.4"),
            ("SCONE_LAS_ADDR", "10.0.0.5"),
            ("CUSTOS_CAS_ADDR", "cas.local:9000"),
            ("SCONE_MODE", "sim"),
        ])
        .unwrap();
        assert_eq!(config.config_id.as_deref(), Some("ns/demo/rest-api"));
        assert_eq!(config.cas, [Endpoint::parse("cas.local:9000", 0).unwrap()]);
        assert_eq!(config.las.to_string(), "10.0.0.5:18766");
        assert_eq!(config.mode, Mode::Simulation);
    }

    #[test]
    fn endpoints_parse_hosts_ports_ipv6_and_urls() {
        let parse = |s| Endpoint::parse(s, 18765).map(|e| e.to_string());
        assert_eq!(parse("cas").as_deref(), Some("cas:18765"));
        assert_eq!(parse("10.0.0.4:81").as_deref(), Some("10.0.0.4:81"));
        assert_eq!(parse("[::1]:81").as_deref(), Some("[::1]:81"));
        assert_eq!(parse("::1").as_deref(), Some("[::1]:18765"));
        assert_eq!(parse("https://cas:18765/").as_deref(), Some("cas:18765"));
        assert_eq!(parse("cas:http"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("bad host"), None);
    }

    #[test]
    fn the_cas_may_be_its_replicas_separated_by_commas() {
        let parsed = config(&[("CUSTOS_CAS_ADDR", "cas-0, 10.0.0.5:9000,[::1]")]).unwrap();
        let shown: Vec<String> = parsed.cas.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["cas-0:18765", "10.0.0.5:9000", "[::1]:18765"]);
        for bad in ["a,,b", "a,", "a,a:18765", "a,b c"] {
            let error = config(&[("SCONE_CAS_ADDR", bad)]).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!(
                    "SCONE_CAS_ADDR={bad:?}: host[:port], or the replicas"
                )),
                "{error}"
            );
        }
    }

    #[test]
    fn bad_values_name_the_variable_and_what_was_expected() {
        let error = config(&[("CUSTOS_MODE", "fast")]).unwrap_err().to_string();
        assert_eq!(error, "CUSTOS_MODE=\"fast\": one of hw, sim, auto");
        let error = config(&[("SCONE_CAS_KEY_HASH", "abc")])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("SCONE_CAS_KEY_HASH=\"abc\": 64 hex digits"),
            "{error}"
        );
        let error = config(&[("CUSTOS_CONFIG_ID", "ns/demo/rest-api")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("CUSTOS_CAS_ADDR is not set"), "{error}");
        let error = config(&[("CUSTOS_CONFIG_ID", "rest-api"), ("CUSTOS_CAS_ADDR", "cas")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("<session name>/<service name>"), "{error}");
    }

    #[test]
    fn private_dirs_are_absolute_paths_separated_by_colons() {
        let parsed = config(&[("CUSTOS_PRIVATE_DIRS", "/tls:/etc/app")]).unwrap();
        assert_eq!(
            parsed.private_dirs,
            vec![PathBuf::from("/tls"), PathBuf::from("/etc/app")]
        );
        let error = config(&[("SCONE_PRIVATE_DIRS", "/tls:tls")])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("SCONE_PRIVATE_DIRS=\"tls\": absolute"),
            "{error}"
        );
    }

    #[test]
    fn a_ca_file_takes_precedence_over_a_pin() {
        let pin = "ab".repeat(32);
        let config = config(&[
            ("CUSTOS_CAS_CA", "/etc/cas.pem"),
            ("CUSTOS_CAS_KEY_HASH", &pin),
        ])
        .unwrap();
        assert_eq!(config.cas_trust, CasTrust::Ca("/etc/cas.pem".into()));
        let only_pin =
            super::RunConfig::from_lookup(|n| (n == "CUSTOS_CAS_KEY_HASH").then(|| pin.clone()))
                .unwrap();
        assert_eq!(only_pin.cas_trust, CasTrust::Pin(pin.parse().unwrap()));
    }
}
