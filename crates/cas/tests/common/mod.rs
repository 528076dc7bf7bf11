//! A real `custos-cas` process for tests, started by the one orchestrator (`custos-harness`):
//! free ports, its own data dir, awaited through its ready file, its log captured.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use custos_cas::client::{CasClient, ClientIdentity, Response, ServerTrust};
use custos_harness::{Launcher, Process};
use custos_ids::KeyHash;
use hyper::Method;

pub struct CasProcess {
    pub process: Process,
    pub addr: String,
    /// The enclave API's address.
    pub enclave_addr: String,
    pub key_hash: KeyHash,
    pub data_dir: PathBuf,
    /// Its log and ready file.
    _logs: tempfile::TempDir,
}

impl CasProcess {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let logs = tempfile::tempdir().expect("a log directory");
        let bin = Path::new(env!("CARGO_BIN_EXE_custos-cas"));
        let launcher = Launcher::new(bin.parent().expect("a directory"), logs.path());
        let mut flags = vec!["--log".to_owned(), "info".to_owned()];
        flags.extend(extra.iter().map(|f| (*f).to_owned()));
        let cas = launcher
            .cas(data_dir, &flags)
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            key_hash: cas.key_hash.parse().unwrap(),
            addr: cas.addr,
            enclave_addr: cas.enclave_addr,
            process: cas.process,
            data_dir: data_dir.to_owned(),
            _logs: logs,
        }
    }

    pub fn client(&self, identity: Option<&ClientIdentity>) -> CasClient {
        CasClient::new(&self.addr, identity, ServerTrust::Pinned(self.key_hash)).unwrap()
    }

    pub fn log(&self) -> String {
        self.process.stderr.text()
    }

    pub fn kill(&mut self) {
        self.process.kill();
    }
}

pub async fn create(client: &CasClient, text: &str) -> Response {
    client
        .request(Method::POST, "/v1/sessions", Some(text.as_bytes().to_vec()))
        .await
        .unwrap()
}

pub async fn update(client: &CasClient, name: &str, text: &str) -> Response {
    client
        .request(
            Method::PUT,
            &format!("/v1/sessions/{name}"),
            Some(text.as_bytes().to_vec()),
        )
        .await
        .unwrap()
}

pub async fn get(client: &CasClient, path: &str) -> Response {
    client.request(Method::GET, path, None).await.unwrap()
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
