//! Starting Custos's services on loopback ports the kernel picks, each awaited through its
//! ready file (see [`crate::ready`]), and the variables of the SCONE sample, written once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{Process, unique_stem};
use crate::ready::{CasReady, EmulatorReady, LasReady};

/// Where the binaries are, where logs and ready files go, and how long a start may take.
#[derive(Debug, Clone)]
pub struct Launcher {
    bins: PathBuf,
    logs: PathBuf,
    /// How long a service may take to be ready.
    pub timeout: Duration,
}

impl Launcher {
    /// Binaries from `bins`; logs and ready files in `logs`; 60 s to be ready.
    pub fn new(bins: impl Into<PathBuf>, logs: impl Into<PathBuf>) -> Self {
        Self {
            bins: bins.into(),
            logs: logs.into(),
            timeout: Duration::from_secs(60),
        }
    }

    /// The directory of the binaries.
    pub fn bins(&self) -> &Path {
        &self.bins
    }

    /// A binary.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bins.join(name)
    }

    /// The directory of logs and ready files.
    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// Starts `command` as `name`, its output in the log directory.
    pub fn spawn(&self, name: &str, command: &mut Command) -> Result<Process, String> {
        Process::spawn(name, command, &self.logs)
    }

    /// Starts `command` with `--ready-file` and waits for its ready document.
    fn start_ready<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        command: &mut Command,
    ) -> Result<(Process, T), String> {
        std::fs::create_dir_all(&self.logs).map_err(|e| format!("{}: {e}", self.logs.display()))?;
        let ready = self.logs.join(format!(
            "{}.ready",
            unique_stem(&self.logs, name, &["ready"])
        ));
        let mut process = self.spawn(name, command.arg("--ready-file").arg(&ready))?;
        let document = process.wait_ready(&ready, self.timeout)?;
        Ok((process, document))
    }

    /// Starts `custos-las` on `127.0.0.1:0` with its platform key in `data_dir`.
    pub fn las(&self, data_dir: &Path) -> Result<Las, String> {
        let mut command = Command::new(self.bin("custos-las"));
        command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir);
        let (process, ready) = self.start_ready::<LasReady>("las", &mut command)?;
        Ok(Las {
            process,
            addr: ready.listen.to_string(),
            key_id: ready.platform_key_id,
            data_dir: data_dir.to_owned(),
        })
    }

    /// Starts `custos-azure-emulator --demo` on 127.0.0.1, its CA written to `ca_file`, its
    /// MAA trusting `las`'s platform key and embedding in its signing certificate a simulated
    /// quote of the MAA enclave signed with that key (the MAA self-check a CAS does), with
    /// `extra` flags.
    pub fn emulator(
        &self,
        ca_file: &Path,
        las: &Las,
        extra: &[String],
    ) -> Result<Emulator, String> {
        let mut command = Command::new(self.bin("custos-azure-emulator"));
        command
            .args(["--demo", "--listen", "127.0.0.1", "--ca-file"])
            .arg(ca_file)
            .args(["--trust-platform-key", &las.key_id, "--maa-platform-key"])
            .arg(las.platform_key_file())
            .args(extra)
            .env("RUST_LOG", "info");
        let (process, ready) = self.start_ready::<EmulatorReady>("azure-emulator", &mut command)?;
        Ok(Emulator { process, ready })
    }

    /// Starts `custos-cas` in `data_dir` with both APIs on `127.0.0.1:0`, ignoring a
    /// configuration file named by the environment, with `extra` flags.
    pub fn cas(&self, data_dir: &Path, extra: &[String]) -> Result<Cas, String> {
        let mut command = Command::new(self.bin("custos-cas"));
        command
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--enclave-listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("CUSTOS_CAS_CONFIG")
            .env_remove("AZURE_AUTHORITY_HOST");
        let (process, ready) = self.start_ready::<CasReady>("cas", &mut command)?;
        Ok(Cas {
            process,
            addr: ready.client_api.to_string(),
            enclave_addr: ready.enclave_api.to_string(),
            key_hash: ready.key_hash,
        })
    }
}

/// A running `custos-las`.
#[derive(Debug)]
pub struct Las {
    /// The process.
    pub process: Process,
    /// `host:port` (plain HTTP).
    pub addr: String,
    /// Its platform key id.
    pub key_id: String,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl Las {
    /// Its platform key (PKCS#8 PEM).
    pub fn platform_key_file(&self) -> PathBuf {
        self.data_dir.join("platform-key.pem")
    }
}

/// A running `custos-azure-emulator --demo`.
#[derive(Debug)]
pub struct Emulator {
    /// The process.
    pub process: Process,
    /// Its ready document: endpoints, CA file, the variables it exports.
    pub ready: EmulatorReady,
}

impl Emulator {
    /// Everything it exports, by name.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.ready.env
    }

    /// A variable it exports, or an error naming it.
    pub fn get(&self, name: &str) -> Result<&str, String> {
        self.ready
            .env
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("the emulator exported no {name}"))
    }

    /// A variable it exports (panics if none: for tests).
    pub fn var(&self, name: &str) -> &str {
        self.get(name).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A running `custos-cas`.
#[derive(Debug)]
pub struct Cas {
    /// The process.
    pub process: Process,
    /// The client API, `host:port`.
    pub addr: String,
    /// The enclave API, `host:port`.
    pub enclave_addr: String,
    /// SHA-256 of its TLS public key, hex.
    pub key_hash: String,
}

/// The Azure variables of the sample's README (the app registration, the vault, the secret's
/// and the certificate's names, the MAA provider), as `custos-azure-emulator --demo` exports
/// them.
pub const SAMPLE_AZURE_VARS: [&str; 7] = [
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AKV_VAULT",
    "AKV_SECRET_NAME",
    "AKV_CERT_SECRET_NAME",
    "MAA_PROVIDER",
];

/// The variables the sample's templates use (`--use-env`): [`SAMPLE_AZURE_VARS`] from
/// `azure`, and `CAS_NAMESPACE`, `PYTHON_SESSION_NAME` and `REST_API_MRENCLAVE` (the app's
/// measurement, `custos mrenclave rest-api-sample`).
pub fn sample_vars(
    azure: &BTreeMap<String, String>,
    namespace: &str,
    session_name: &str,
    rest_api_mrenclave: &str,
) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for name in SAMPLE_AZURE_VARS {
        let value = azure
            .get(name)
            .ok_or_else(|| format!("the emulator did not export {name}"))?;
        vars.insert(name.to_owned(), value.clone());
    }
    vars.insert("CAS_NAMESPACE".into(), namespace.into());
    vars.insert("PYTHON_SESSION_NAME".into(), session_name.into());
    vars.insert("REST_API_MRENCLAVE".into(), rest_api_mrenclave.into());
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_samples_variables_are_the_azure_ones_and_the_templates_own() {
        let azure: BTreeMap<String, String> = SAMPLE_AZURE_VARS
            .iter()
            .chain(&["SSL_CERT_FILE"])
            .map(|n| ((*n).to_owned(), format!("value of {n}")))
            .collect();
        let vars = sample_vars(&azure, "ns", "rest-api", "ab").unwrap();
        assert_eq!(vars.len(), 10);
        assert_eq!(vars["AKV_VAULT"], "value of AKV_VAULT");
        assert_eq!(vars["CAS_NAMESPACE"], "ns");
        assert_eq!(vars["PYTHON_SESSION_NAME"], "rest-api");
        assert_eq!(vars["REST_API_MRENCLAVE"], "ab");
        assert!(!vars.contains_key("SSL_CERT_FILE"));
        let mut partial = azure;
        partial.remove("MAA_PROVIDER");
        assert_eq!(
            sample_vars(&partial, "ns", "s", "ab").unwrap_err(),
            "the emulator did not export MAA_PROVIDER"
        );
    }
}
