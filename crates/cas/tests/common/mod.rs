//! A real `custos-cas` process for tests: started on a free port with its own data dir,
//! its log captured.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custos_cas::client::{CasClient, ClientIdentity, Response, ServerTrust};
use custos_cas::identity::ClientId;
use hyper::Method;

pub struct CasProcess {
    pub child: Child,
    pub addr: String,
    /// The enclave API's address.
    pub enclave_addr: String,
    pub key_hash: ClientId,
    pub data_dir: PathBuf,
    pub log: Arc<Mutex<String>>,
}

impl CasProcess {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_on(data_dir, "127.0.0.1:0", extra)
    }

    pub fn start_on(data_dir: &Path, listen: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_custos-cas"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", listen, "--log", "info"])
            .args(["--enclave-listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("CUSTOS_CAS_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start custos-cas");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut enclave = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let field = |name: &str| {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix(name))
                        .map(str::to_owned)
                };
                if line.contains("enclave API ready") {
                    enclave = field("listen=").unwrap();
                }
                if line.contains("client API ready") {
                    let _ = ready_tx.send((
                        field("listen=").unwrap(),
                        field("key_hash=").unwrap(),
                        enclave.clone(),
                    ));
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let (addr, key_hash, enclave_addr) = match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(ready) => ready,
            Err(_) => {
                let _ = child.kill();
                panic!("custos-cas did not start: {}", log.lock().unwrap());
            }
        };
        Self {
            child,
            addr,
            enclave_addr,
            key_hash: key_hash.parse().unwrap(),
            data_dir: data_dir.to_owned(),
            log,
        }
    }

    pub fn client(&self, identity: Option<&ClientIdentity>) -> CasClient {
        CasClient::new(&self.addr, identity, ServerTrust::Pinned(self.key_hash)).unwrap()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for CasProcess {
    fn drop(&mut self) {
        self.kill();
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
