//! A real `custos-cas` process for tests, started by the one orchestrator (`custos-harness`):
//! free ports, its own data dir, awaited through its ready file, its log captured.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use custos_client::{CasClient, ClientIdentity, KeyHash, Response, ServerTrust};
use custos_harness::{Launcher, Process};
use hyper::Method;
use serde::de::DeserializeOwned;

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

/// The answer `r` holds, typed (whatever its status: tests check the status first).
pub fn answer<T: DeserializeOwned>(r: &Response) -> T {
    r.decode(r.status)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.body)))
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

/// An enclave API client of `cas` from `source` whose client certificate holds a fresh P-256
/// key, and that key as the JWK its runtime data name: what a runtime brings to an attestation.
pub fn enclave_client(
    cas: &CasProcess,
    source: &str,
) -> (reqwest::Client, String, custos_protocol::enclave::Jwk) {
    let identity = ClientIdentity::generate("runtime").unwrap();
    let spki = custos_ids::spki_of_certificate(&identity.certificate).unwrap();
    let (x, y) = custos_ids::jwk::p256_coordinates(custos_ids::spki::p256_point(spki).unwrap());
    let jwk = custos_protocol::enclave::Jwk {
        kty: custos_ids::jwk::KTY_EC.into(),
        crv: custos_ids::jwk::CRV_P256.into(),
        x,
        y,
    };
    let tls = rustls::ClientConfig::builder_with_provider(custos_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(custos_tls::pinned_server_verifier(cas.key_hash))
        .with_client_auth_cert(vec![identity.certificate.clone()], identity.key.clone_key())
        .unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .local_address(Some(source.parse::<std::net::IpAddr>().unwrap()))
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    (http, format!("https://{}", cas.enclave_addr), jwk)
}
