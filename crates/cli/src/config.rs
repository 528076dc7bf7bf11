//! The CLI's configuration file: the user's identity (a key and a self-signed certificate,
//! made on first use) and the CAS instances it has attested (their pinned keys).
//!
//! Location: `$CUSTOS_CLI_CONFIG`, else `$XDG_CONFIG_HOME/custos/config.json`, else
//! `$HOME/.config/custos/config.json`. It holds a private key: it is written with mode 0600,
//! atomically.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use custos_client::ClientIdentity;
use custos_ids::KeyHash;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A CAS this CLI attested, and what it learnt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PinnedCas {
    /// SHA-256 of the CAS certificate's public key: the pin.
    pub key_hash: KeyHash,
    /// The CAS certificate (PEM), for reference.
    pub certificate: String,
    /// The MRENCLAVE its evidence reported.
    pub mrenclave: String,
    /// The evidence type (`sim-quote`, ...).
    pub evidence: String,
    /// Whether it was accepted under `--only-for-testing-*` flags.
    pub testing_only: bool,
    /// When, seconds since the Unix epoch.
    pub attested_at: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct Stored {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity: Option<StoredIdentity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_cas: Option<String>,
    #[serde(default)]
    cas: BTreeMap<String, PinnedCas>,
}

#[derive(Serialize, Deserialize)]
struct StoredIdentity {
    certificate: String,
    private_key: String,
}

impl Drop for StoredIdentity {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.private_key);
    }
}

/// The loaded configuration.
pub(crate) struct CliConfig {
    path: PathBuf,
    stored: Stored,
}

impl CliConfig {
    /// The configuration file's path.
    pub fn path() -> Result<PathBuf, String> {
        if let Some(p) = std::env::var_os("CUSTOS_CLI_CONFIG") {
            return Ok(PathBuf::from(p));
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .ok_or("no configuration directory: set CUSTOS_CLI_CONFIG or HOME")?;
        Ok(base.join("custos").join("config.json"))
    }

    /// Loads the file, or an empty configuration if there is none.
    pub fn load() -> Result<Self, String> {
        let path = Self::path()?;
        let stored = match std::fs::read(&path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                serde_json::from_slice(&bytes).map_err(|e| {
                    format!("{}: not a custos CLI configuration: {e}", path.display())
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
        };
        Ok(Self { path, stored })
    }

    /// Writes the file (mode 0600, atomically).
    pub fn save(&self) -> Result<(), String> {
        let error = |e: std::io::Error| format!("{}: cannot write: {e}", self.path.display());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(error)?;
        }
        let text =
            Zeroizing::new(serde_json::to_string_pretty(&self.stored).map_err(|e| e.to_string())?);
        let tmp = self.path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(error)?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(error)?;
        std::fs::rename(&tmp, &self.path).map_err(error)
    }

    /// The identity, created (and saved) on first use.
    pub fn identity(&mut self) -> Result<ClientIdentity, String> {
        if self.stored.identity.is_none() {
            let id = ClientIdentity::generate("custos-cli").map_err(|e| e.to_string())?;
            self.stored.identity = Some(StoredIdentity {
                certificate: id.certificate_pem(),
                private_key: id.private_key_pem().to_string(),
            });
            self.save()?;
        }
        let stored = self.stored.identity.as_ref().ok_or("no identity")?;
        let bad = |what: &str| {
            format!(
                "{}: the identity's {what} is unreadable",
                self.path.display()
            )
        };
        Ok(ClientIdentity {
            certificate: CertificateDer::from_pem_slice(stored.certificate.as_bytes())
                .map_err(|_| bad("certificate"))?,
            key: PrivateKeyDer::from_pem_slice(stored.private_key.as_bytes())
                .map_err(|_| bad("private key"))?,
        })
    }

    /// The pinned CAS at `addr`.
    pub fn pinned(&self, addr: &str) -> Option<&PinnedCas> {
        self.stored.cas.get(addr)
    }

    /// All pinned CAS instances.
    pub fn all_pinned(&self) -> &BTreeMap<String, PinnedCas> {
        &self.stored.cas
    }

    /// Pins `cas` at `addr` and makes it the default.
    pub fn pin(&mut self, addr: &str, cas: PinnedCas) {
        self.stored.cas.insert(addr.to_owned(), cas);
        self.stored.default_cas = Some(addr.to_owned());
    }

    /// The default CAS address.
    pub fn default_cas(&self) -> Option<&str> {
        self.stored.default_cas.as_deref()
    }

    /// Makes the replicas `addrs` the default; each must be pinned, to one key.
    pub fn set_default(&mut self, addrs: &[String]) -> Result<(), String> {
        self.pinned_key(addrs)?;
        self.stored.default_cas = Some(addrs.join(","));
        Ok(())
    }

    /// The key the replicas `addrs` are pinned to: each must be pinned, all to the same key
    /// (replicas of one CAS serve one key; anything else is a mix-up to refuse, not to pick
    /// from).
    pub fn pinned_key(&self, addrs: &[String]) -> Result<KeyHash, String> {
        let list = addrs.join(",");
        let mut first: Option<(&str, KeyHash)> = None;
        for addr in addrs {
            let key = self
                .pinned(addr)
                .ok_or_else(|| not_attested_in(addr, &list))?
                .key_hash;
            match first {
                None => first = Some((addr, key)),
                Some((first_addr, first_key)) if first_key != key => {
                    return Err(format!(
                        "CAS {addr}: pinned key hash {key}, expected {first_key} as pinned for {first_addr}: replicas of one CAS serve one key; attest them together: `custos cas attest {list}`"
                    ));
                }
                Some(_) => {}
            }
        }
        first
            .map(|(_, key)| key)
            .ok_or_else(|| "empty CAS address list".to_owned())
    }
}

/// `addr` is not pinned; `list` is what to attest.
fn not_attested_in(addr: &str, list: &str) -> String {
    format!("CAS {addr} is not attested: run `custos cas attest {list}` first")
}

/// `host[:port]`, or replicas as `host[:port],host[:port],...` → each `host:port` (port 8081
/// when none is given), in the order given; an empty or repeated entry is refused.
pub(crate) fn normalize_addrs(list: &str) -> Result<Vec<String>, String> {
    let mut addrs: Vec<String> = Vec::new();
    for entry in list.split(',') {
        let addr = normalize_addr(entry).map_err(|e| {
            if list.contains(',') {
                format!("CAS address list {list:?}: {e}")
            } else {
                e
            }
        })?;
        if addrs.contains(&addr) {
            return Err(format!("CAS address list {list:?}: {addr} is listed twice"));
        }
        addrs.push(addr);
    }
    Ok(addrs)
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address → `host:port`, port 8081
/// when none is given.
pub(crate) fn normalize_addr(addr: &str) -> Result<String, String> {
    let addr = addr.trim();
    let addr = addr
        .strip_prefix("https://")
        .unwrap_or(addr)
        .trim_end_matches('/');
    if addr.is_empty() {
        return Err("empty CAS address".into());
    }
    if let Ok(ip) = addr.parse::<std::net::IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, 8081).to_string());
    }
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(addr.to_owned());
    }
    if let Some(v6) = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        return Ok(format!("[{v6}]:8081"));
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() && !host.is_empty() => {
            Ok(addr.to_owned())
        }
        Some(_) => Err(format!("{addr}: not host[:port]")),
        None => Ok(format!("{addr}:8081")),
    }
}

#[cfg(test)]
mod tests {
    use super::{normalize_addr, normalize_addrs};

    #[test]
    fn lists_are_replicas_each_normalized_in_order() {
        assert_eq!(normalize_addrs("cas").unwrap(), ["cas:8081"]);
        assert_eq!(
            normalize_addrs("a, 10.0.0.2:9000,[::1]").unwrap(),
            ["a:8081", "10.0.0.2:9000", "[::1]:8081"]
        );
        let error = normalize_addrs("a,,b").unwrap_err();
        assert_eq!(error, "CAS address list \"a,,b\": empty CAS address");
        let error = normalize_addrs("a,a:8081").unwrap_err();
        assert!(error.ends_with("a:8081 is listed twice"), "{error}");
        let error = normalize_addrs("a,host:port").unwrap_err();
        assert!(error.ends_with("host:port: not host[:port]"), "{error}");
    }

    #[test]
    fn addresses_get_the_default_port() {
        assert_eq!(normalize_addr("127.0.0.1").unwrap(), "127.0.0.1:8081");
        assert_eq!(normalize_addr("10.0.0.7:9000").unwrap(), "10.0.0.7:9000");
        assert_eq!(normalize_addr("cas.example").unwrap(), "cas.example:8081");
        assert_eq!(
            normalize_addr("https://cas.example:8081/").unwrap(),
            "cas.example:8081"
        );
        assert_eq!(normalize_addr("::1").unwrap(), "[::1]:8081");
        assert_eq!(normalize_addr("[::1]:7").unwrap(), "[::1]:7");
        assert!(normalize_addr("host:port").is_err());
    }
}
