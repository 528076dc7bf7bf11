//! What the tests of the real `rest-api-sample` binary share: a CA and leaf certificates
//! written as the CAS injects them, and the running process.
#![allow(dead_code)] // each test file uses a part

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

pub const HOST: &str = "rest-api.scone.sample";
pub const SECRET: &str = "a13f688c788626380ae1209e31e664891fc19dcdd0cfa29c27ca7e6e16b83a95";

/// A CA and a leaf certificate for `rest-api.scone.sample`, written as the CAS would inject them.
pub struct Pki {
    dir: tempfile::TempDir,
    pub ca_pem: String,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The DER of the leaf written at creation.
    pub first_leaf: Vec<u8>,
}

impl Pki {
    pub fn new() -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Custos test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let mut pki = Self {
            dir: tempfile::tempdir().unwrap(),
            ca_pem: ca.pem(),
            ca,
            first_leaf: Vec::new(),
        };
        pki.first_leaf = pki.renew();
        pki
    }

    /// Issues a new leaf with a new key and puts both in place as the CAS does (each written
    /// aside, then renamed over the old file); returns the new leaf's DER.
    pub fn renew(&self) -> Vec<u8> {
        let mut params = CertificateParams::new(vec![HOST.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, HOST);
        let key = KeyPair::generate().unwrap();
        let leaf = params.signed_by(&key, &self.ca).unwrap();
        self.replace("flask.key", key.serialize_pem().as_bytes());
        self.replace("flask.crt", leaf.pem().as_bytes());
        leaf.der().to_vec()
    }

    /// Writes `content` to `name` atomically.
    pub fn replace(&self, name: &str, content: &[u8]) {
        let aside = self.path(&format!(".{name}.new"));
        std::fs::write(&aside, content).unwrap();
        std::fs::rename(&aside, self.path(name)).unwrap();
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("flask.crt")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("flask.key")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tls/tests/data")
        .join(name)
}

/// A running sample; killed when dropped.
pub struct Sample {
    pub child: Child,
    pub addr: SocketAddr,
    log: mpsc::Receiver<String>,
}

pub fn command(cert: &Path, key: &Path, secret: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rest-api-sample"));
    command
        .args(["--listen", "127.0.0.1:0", "--cert"])
        .arg(cert)
        .arg("--key")
        .arg(key)
        .env_remove("AKV_SECRET")
        .env_remove("AKV_SECRET_FILE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(secret) = secret {
        command.env("AKV_SECRET", secret);
    }
    command
}

impl Sample {
    pub fn start(cert: &Path, key: &Path, secret: Option<&str>) -> Self {
        Self::start_with(cert, key, secret, &[])
    }

    pub fn start_with(cert: &Path, key: &Path, secret: Option<&str>, extra: &[&str]) -> Self {
        Self::spawn(command(cert, key, secret).args(extra))
    }

    /// Starts `command` (see [`command`]) and waits for its start-up line.
    pub fn spawn(command: &mut Command) -> Self {
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = log
            .recv_timeout(Duration::from_secs(10))
            .expect("a start-up line");
        let addr = first
            .split("listening on https://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in start-up line: {first}"))
            .parse()
            .unwrap();
        Self { child, addr, log }
    }

    pub fn client(&self, ca_pem: &str) -> reqwest::Client {
        self.client_builder(ca_pem).build().unwrap()
    }

    pub fn client_builder(&self, ca_pem: &str) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
            .resolve(HOST, self.addr)
            .no_proxy()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{HOST}:{}{path}", self.addr.port())
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        wait_with_limit(&mut self.child, limit)
    }

    /// Everything logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for Sample {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_with_limit(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < limit,
            "process still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
