//! The readiness contract: with `--ready-file PATH`, a server removes `PATH` when it starts
//! and, once every listener is bound and accepting, writes one JSON document there
//! atomically (a temporary file in the same directory, renamed into place), readable by its
//! owner only. Whoever waits for the server polls for the file: if it is there, it is complete
//! and the server is ready; a server that fails to start never writes it.
//!
//! The human log lines (`custos-cas client API ready listen=…`, …) stay as they are, for
//! operators; programs read this file instead.

use std::fs;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `custos-cas --ready-file`: written when both the client API and the enclave API accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CasReady {
    /// The client API's bound address (`--listen`; the port the kernel picked for port 0).
    pub client_api: SocketAddr,
    /// The enclave API's bound address (`--enclave-listen`).
    pub enclave_api: SocketAddr,
    /// SHA-256 of the CAS's TLS public key (SubjectPublicKeyInfo), hex: what clients pin.
    pub key_hash: String,
}

/// `custos-las --ready-file`: written when the LAS accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LasReady {
    /// The bound address (plain HTTP).
    pub listen: SocketAddr,
    /// The id of the platform key its sim-quotes are signed with (64 hex digits).
    pub platform_key_id: String,
}

/// `custos-azure-emulator --ready-file`: written when Entra ID, Key Vault and MAA accept.
///
/// With `--demo`, `env` holds the demo app registration's client secret: the file is readable
/// by its owner only, as are the `export` lines the emulator prints.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmulatorReady {
    /// Entra ID's authority host, e.g. `https://127.0.0.1:40001`.
    pub authority_host: String,
    /// The vault's URL, e.g. `https://127.0.0.1:40002/`.
    pub key_vault: String,
    /// The MAA instance's URL.
    pub maa: String,
    /// The CA certificate file (PEM) the three endpoints' certificates chain to.
    pub ca_file: PathBuf,
    /// The variables the emulator prints as `export NAME=VALUE` lines, by name.
    pub env: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for EmulatorReady {
    // The environment may hold a client secret: names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorReady")
            .field("authority_host", &self.authority_host)
            .field("key_vault", &self.key_vault)
            .field("maa", &self.maa)
            .field("ca_file", &self.ca_file)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Removes a previous run's ready file, so that its presence always means "this run is ready".
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes `document` to `path` atomically, mode 0600: a reader sees no file or all of it.
pub fn write<T: Serialize>(path: &Path, document: &T) -> io::Result<()> {
    let mut json = serde_json::to_vec(document).map_err(io::Error::other)?;
    json.push(b'\n');
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{}: not a file name", path.display())))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary_name);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(&json)?;
        file.sync_all()
    });
    match written.and_then(|()| fs::rename(&temporary, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(&temporary);
            Err(e)
        }
    }
}

/// Reads a ready file: `None` while it does not exist.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: not a ready document: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_document_reads_back_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cas.ready");
        assert_eq!(read::<CasReady>(&path).unwrap(), None);
        let document = CasReady {
            client_api: "127.0.0.1:8081".parse().unwrap(),
            enclave_api: "[::1]:18765".parse().unwrap(),
            key_hash: "ab".repeat(32),
        };
        write(&path, &document).unwrap();
        assert_eq!(read::<CasReady>(&path).unwrap(), Some(document));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["cas.ready"]);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"client_api\":\"127.0.0.1:8081\",\"enclave_api\":\"[::1]:18765\",\"key_hash\":\"{}\"}}\n",
                "ab".repeat(32)
            )
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert_eq!(read::<CasReady>(&path).unwrap(), None);
    }

    #[test]
    fn a_foreign_document_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("las.ready");
        fs::write(&path, b"{\"listen\":\"127.0.0.1:1\"}").unwrap();
        let error = read::<LasReady>(&path).unwrap_err();
        assert!(
            error.contains("las.ready") && error.contains("platform_key_id"),
            "{error}"
        );
    }

    #[test]
    fn the_emulators_document_does_not_show_its_values_in_debug() {
        let document = EmulatorReady {
            authority_host: "https://127.0.0.1:1".into(),
            key_vault: "https://127.0.0.1:2/".into(),
            maa: "https://127.0.0.1:3".into(),
            ca_file: "/tmp/ca.pem".into(),
            env: [("AZURE_CLIENT_SECRET".to_owned(), "s3cr3t-value".to_owned())].into(),
        };
        let shown = format!("{document:?}");
        assert!(shown.contains("AZURE_CLIENT_SECRET") && !shown.contains("s3cr3t-value"));
    }
}
