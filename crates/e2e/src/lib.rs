//! The end-to-end test harness: starts the real `custos-las`, `custos-azure-emulator` and
//! `custos-cas` binaries on loopback ports the kernel picks, creates sessions through the CAS's
//! client API over mutual TLS, and runs `custos-run` (and the sample app it execs) as child
//! processes, capturing every log.
//!
//! Other packages' binaries are not visible to this crate's tests through `CARGO_BIN_EXE_*`,
//! so [`bin_dir`] builds them once (`cargo build --bins -p …`, same profile as the test) and
//! runs them from the target directory.
//!
//! It is test tooling: it must never be a dependency of anything shipped. Processes it starts
//! are killed when their handle drops, also when a test panics.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use custos_cas::client::{CasClient, ClientIdentity, ServerTrust};
use custos_cas::identity::ClientId;

/// How long a process may take to print its start-up line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The packages whose binaries the tests run.
const PACKAGES: &[&str] = &[
    "custos-cas",
    "custos-las",
    "custos-runtime",
    "custos-azure-emulator",
    "rest-api-sample",
];

/// The directory holding the binaries, built (once per test process) in the profile of the
/// running test.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        let mut dir = exe.parent().expect("a directory").to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let release = dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .args(["build", "--bins", "--quiet"])
            .current_dir(workspace_root());
        for package in PACKAGES {
            command.args(["-p", package]);
        }
        if release {
            command.arg("--release");
        }
        let status = command.status().expect("cargo build runs");
        assert!(status.success(), "building the binaries failed");
        dir
    })
}

/// A binary of the workspace.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/e2e is two levels down")
        .to_path_buf()
}

/// A text every line of a process's output goes to, and that can be waited on.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<(Mutex<String>, Condvar)>);

impl Log {
    fn push(&self, line: &str) {
        let (text, changed) = &*self.0;
        let mut text = text.lock().unwrap_or_else(|e| e.into_inner());
        text.push_str(line);
        text.push('\n');
        changed.notify_all();
    }

    /// Everything so far.
    pub fn text(&self) -> String {
        self.0.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits for a line containing `needle`; returns it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let (text, changed) = &*self.0;
        let deadline = Instant::now() + timeout;
        let mut guard = text.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(line) = guard.lines().find(|l| l.contains(needle)) {
                return Some(line.to_owned());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            guard = changed
                .wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn drain(&self, stream: impl Read + Send + 'static) {
        let log = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                log.push(&line);
            }
        });
    }
}

/// A child process, killed when dropped; its stdout and stderr go to separate logs.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    /// Standard output.
    pub stdout: Log,
    /// Standard error (the log of every Custos program).
    pub stderr: Log,
}

impl Process {
    /// Starts `command` with piped output.
    pub fn spawn(name: &str, command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let (stdout, stderr) = (Log::default(), Log::default());
        stdout.drain(child.stdout.take().expect("piped"));
        stderr.drain(child.stderr.take().expect("piped"));
        Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for a line containing `needle` on stderr; panics with the log if none comes.
    pub fn wait_for(&self, needle: &str) -> String {
        self.stderr
            .wait_for(needle, START_TIMEOUT)
            .unwrap_or_else(|| panic!("{}: no line with {needle:?}:\n{}", self.name, self.logs()))
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Both logs.
    pub fn logs(&self) -> String {
        format!("{}{}", self.stdout.text(), self.stderr.text())
    }

    /// Whether it has exited, and how.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for it to exit (at most `timeout`).
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `name=VALUE` among the whitespace-separated words of `line`.
pub fn field(line: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .map(str::to_owned)
}

/// A running `custos-las`.
#[derive(Debug)]
pub struct Las {
    /// The process.
    pub process: Process,
    /// `host:port`.
    pub addr: String,
    /// Its platform key id.
    pub key_id: String,
}

impl Las {
    /// Starts a LAS keeping its key in `data_dir`.
    pub fn start(data_dir: &Path) -> Self {
        let process = Process::spawn(
            "custos-las",
            Command::new(bin("custos-las"))
                .args(["--listen", "127.0.0.1:0", "--data-dir"])
                .arg(data_dir)
                .env_remove("RUST_LOG"),
        );
        let line = process.wait_for("listening on http://");
        let rest = line.split("listening on http://").nth(1).expect("address");
        let addr = rest.split(';').next().expect("address").to_owned();
        let key_id = rest
            .split("platform key id ")
            .nth(1)
            .expect("key id")
            .trim()
            .to_owned();
        Self {
            process,
            addr,
            key_id,
        }
    }
}

/// A running `custos-azure-emulator --demo`.
#[derive(Debug)]
pub struct Emulator {
    /// The process.
    pub process: Process,
    /// What it printed as `export NAME=VALUE`.
    pub env: BTreeMap<String, String>,
}

impl Emulator {
    /// Starts the demo emulator, writing its CA to `dir/ca.pem`, trusting the LAS's key at MAA.
    pub fn start(dir: &Path, las_key_id: &str) -> Self {
        Self::start_with(dir, las_key_id, &[])
    }

    /// [`Emulator::start`] with `extra` flags (e.g. `--maa-platform-key FILE`).
    pub fn start_with(dir: &Path, las_key_id: &str, extra: &[String]) -> Self {
        let process = Process::spawn(
            "custos-azure-emulator",
            Command::new(bin("custos-azure-emulator"))
                .args(["--demo", "--listen", "127.0.0.1", "--ca-file"])
                .arg(dir.join("ca.pem"))
                .args(["--trust-platform-key", las_key_id])
                .args(extra)
                .env("RUST_LOG", "info"),
        );
        process
            .stdout
            .wait_for("export REQUESTS_CA_BUNDLE", START_TIMEOUT)
            .unwrap_or_else(|| panic!("the emulator did not start:\n{}", process.logs()));
        let env = process
            .stdout
            .text()
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
            .collect();
        Self { process, env }
    }

    /// A variable it exported.
    pub fn var(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("the emulator exported no {name}"))
    }

    /// Sets a Key Vault secret's value (a new version), as the vault's owner would.
    pub async fn set_secret(&self, name: &str, value: &str) {
        let ca = std::fs::read(self.var("REQUESTS_CA_BUNDLE")).expect("the emulator's CA");
        let http = custos_azure::HttpOptions::trusting_only_pem(&ca).expect("CA");
        let credential = custos_azure::AzureCredential::new(
            custos_azure::CredentialSpec::ClientSecret {
                tenant_id: self.var("AZURE_TENANT_ID").into(),
                client_id: self.var("AZURE_CLIENT_ID").into(),
                secret: self.var("AZURE_CLIENT_SECRET").into(),
            },
            &custos_azure::CredentialOptions {
                authority_host: self.var("AZURE_AUTHORITY_HOST").into(),
                http: http.clone(),
            },
        )
        .expect("credential");
        let token = credential
            .token(custos_azure::KEY_VAULT_SCOPE)
            .await
            .expect("a token");
        let url = format!("{}secrets/{name}?api-version=7.4", self.var("AKV_VAULT"));
        let response = http
            .reqwest_client()
            .expect("client")
            .put(url)
            .bearer_auth(secrecy::ExposeSecret::expose_secret(&token.token))
            .json(&serde_json::json!({ "value": value }))
            .send()
            .await
            .expect("PUT secret");
        assert!(response.status().is_success(), "{:?}", response.status());
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
    /// SHA-256 of its TLS key.
    pub key_hash: String,
}

impl Cas {
    /// Starts a CAS in `data_dir` with `extra` flags.
    pub fn start(data_dir: &Path, extra: &[String]) -> Self {
        let process = Process::spawn(
            "custos-cas",
            Command::new(bin("custos-cas"))
                .arg("--data-dir")
                .arg(data_dir)
                .args(["--listen", "127.0.0.1:0", "--enclave-listen", "127.0.0.1:0"])
                .args(["--log", "info"])
                .args(extra)
                .env_remove("CUSTOS_CAS_CONFIG")
                .env_remove("AZURE_AUTHORITY_HOST"),
        );
        let enclave = process.wait_for("enclave API ready");
        let ready = process.wait_for("client API ready");
        Self {
            addr: field(&ready, "listen").expect("listen="),
            key_hash: field(&ready, "key_hash").expect("key_hash="),
            enclave_addr: field(&enclave, "listen").expect("listen="),
            process,
        }
    }

    /// A client of its client API as `identity`.
    pub fn client(&self, identity: &ClientIdentity) -> CasClient {
        let pin: ClientId = self.key_hash.parse().expect("key hash");
        CasClient::new(&self.addr, Some(identity), ServerTrust::Pinned(pin)).expect("client")
    }
}

/// The sample's variables (as the SCONE README sets them), for the demo emulator.
pub fn sample_vars(emulator: &Emulator, namespace: &str) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = [
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AKV_VAULT",
        "AKV_SECRET_NAME",
        "AKV_CERT_SECRET_NAME",
        "MAA_PROVIDER",
    ]
    .iter()
    .map(|k| ((*k).to_owned(), emulator.var(k).to_owned()))
    .collect();
    vars.insert("CAS_NAMESPACE".into(), namespace.into());
    vars.insert("PYTHON_SESSION_NAME".into(), "rest-api".into());
    vars.insert(
        "REST_API_MRENCLAVE".into(),
        measurement(&bin("rest-api-sample")),
    );
    vars
}

/// `templates/NAME` with `vars` substituted (`--use-env` templating).
pub fn template(name: &str, vars: &BTreeMap<String, String>) -> String {
    let text = std::fs::read_to_string(workspace_root().join("templates").join(name))
        .unwrap_or_else(|e| panic!("templates/{name}: {e}"));
    custos_policy::template::expand(&text, |v| vars.get(v).cloned())
        .unwrap_or_else(|e| panic!("templates/{name}: {e}"))
        .to_string()
}

/// The simulation MRENCLAVE of an executable (`custos mrenclave FILE`).
pub fn measurement(path: &Path) -> String {
    custos_attestation::sim::measure_executable(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_hex()
}

/// `custos-run PROGRAM ARGS` with `vars` as its whole environment (plus `PATH`), to the end.
pub fn run(vars: &[(&str, &str)], program: &[&str]) -> Output {
    run_command(vars, program)
        .output()
        .expect("custos-run runs")
}

/// The `custos-run` command [`run`] runs.
pub fn run_command(vars: &[(&str, &str)], program: &[&str]) -> Command {
    let mut command = Command::new(bin("custos-run"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .arg("--")
        .args(program);
    command
}

/// Text of a process's standard error.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Text of a process's standard output.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A CAS, a LAS and optionally the Azure emulator, with a session owner.
#[derive(Debug)]
pub struct World {
    /// Data directories and files of the test.
    pub dir: tempfile::TempDir,
    /// The node agent.
    pub las: Las,
    /// Azure, when asked for.
    pub emulator: Option<Emulator>,
    /// The CAS.
    pub cas: Cas,
    /// Who creates the sessions.
    pub owner: ClientIdentity,
    runtime: tokio::runtime::Runtime,
}

impl World {
    /// Starts a LAS, the emulator if `azure`, and a CAS trusting the LAS's platform key (and
    /// the emulator's CA and Entra ID) with `cas_flags` added.
    pub fn start(azure: bool, cas_flags: &[&str]) -> Self {
        Self::start_with(azure, cas_flags, &[])
    }

    /// [`World::start`] with `emulator_flags` for the emulator. Its MAA signing certificate
    /// embeds a simulated quote of the MAA enclave signed with the LAS's platform key, which
    /// the CAS trusts: the MAA enclave runs on the node's simulated platform.
    pub fn start_with(azure: bool, cas_flags: &[&str], emulator_flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let las = Las::start(&dir.path().join("las"));
        let emulator = azure.then(|| {
            let mut flags = vec![
                "--maa-platform-key".to_owned(),
                dir.path()
                    .join("las/platform-key.pem")
                    .to_string_lossy()
                    .into_owned(),
            ];
            flags.extend(emulator_flags.iter().map(|f| (*f).to_owned()));
            Emulator::start_with(dir.path(), &las.key_id, &flags)
        });
        let mut flags = vec!["--trust-platform-key".to_owned(), las.key_id.clone()];
        if let Some(emulator) = &emulator {
            flags.extend([
                "--azure-ca".to_owned(),
                emulator.var("REQUESTS_CA_BUNDLE").to_owned(),
                "--azure-authority-host".to_owned(),
                emulator.var("AZURE_AUTHORITY_HOST").to_owned(),
            ]);
        }
        flags.extend(cas_flags.iter().map(|f| (*f).to_owned()));
        let cas = Cas::start(&dir.path().join("cas"), &flags);
        Self {
            dir,
            las,
            emulator,
            cas,
            owner: ClientIdentity::generate("session owner").expect("identity"),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
        }
    }

    /// Runs `future` to completion on the world's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The emulator (panics if the world has none).
    pub fn emulator(&self) -> &Emulator {
        self.emulator.as_ref().expect("a world with Azure")
    }

    /// Creates a session as the owner; returns the status and the answer.
    pub fn try_create(&self, text: &str) -> (u16, serde_json::Value) {
        let client = self.cas.client(&self.owner);
        let response = self
            .block_on(client.request(
                hyper::Method::POST,
                "/v1/sessions",
                Some(text.as_bytes().to_vec()),
            ))
            .expect("the CAS answers");
        (response.status.as_u16(), response.json())
    }

    /// Creates a session as the owner; panics unless it is created. Returns its hash.
    pub fn create(&self, text: &str) -> String {
        let (status, answer) = self.try_create(text);
        assert_eq!(status, 201, "create failed: {answer}");
        answer["hash"].as_str().expect("hash").to_owned()
    }

    /// The audit events of `session`.
    pub fn audit(&self, session: &str) -> Vec<serde_json::Value> {
        let client = self.cas.client(&self.owner);
        let response = self
            .block_on(client.request(
                hyper::Method::GET,
                &format!("/v1/audit?session={session}&limit=1000"),
                None,
            ))
            .expect("the CAS answers");
        response.json()["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The attestation events (`enclave-attest`) of `session` once there are `count` of
    /// them (attestations are committed with the store's next batch, shortly after the
    /// answer); panics after ten seconds.
    pub fn attestations(&self, session: &str, count: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events: Vec<_> = self
                .audit(session)
                .into_iter()
                .filter(|e| e["action"] == "enclave-attest")
                .collect();
            if events.len() >= count {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "no such audit event for {session}: {events:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The variables `custos-run` needs to attest as `config_id` here, in simulation.
    pub fn runtime_vars(&self, config_id: &str) -> Vec<(&'static str, String)> {
        vec![
            ("CUSTOS_CONFIG_ID", config_id.to_owned()),
            ("CUSTOS_CAS_ADDR", self.cas.enclave_addr.clone()),
            ("CUSTOS_LAS_ADDR", self.las.addr.clone()),
            ("CUSTOS_MODE", "sim".to_owned()),
            ("CUSTOS_CAS_KEY_HASH", self.cas.key_hash.clone()),
        ]
    }

    /// `custos-run PROGRAM…` attesting as `config_id`, to the end.
    pub fn run(&self, config_id: &str, program: &[&str]) -> Output {
        let vars = self.runtime_vars(config_id);
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run(&vars, program)
    }

    /// Every log of the world's services so far (CAS, LAS, emulator).
    pub fn service_logs(&self) -> String {
        let mut text = self.cas.process.logs();
        text.push_str(&self.las.process.logs());
        if let Some(emulator) = &self.emulator {
            // Its stdout is the `export` lines a user sources (with the demo's client secret),
            // not a log.
            text.push_str(&emulator.process.stderr.text());
        }
        text
    }
}

/// The sample's session with its TLS files under `dir/tls` instead of `/tls` and the app
/// listening on a port the kernel picks, so tests run side by side and without root. Only
/// paths and the listen address change; every secret, placeholder and policy stays.
pub fn with_local_paths(session: &str, dir: &Path) -> String {
    let tls = dir.join("tls");
    let env_line = "      AKV_SECRET: $$SCONE::MY_AKV_SECRET$$\n";
    assert!(session.contains(env_line) && session.contains("path: /tls/"));
    session
        .replace("path: /tls/", &format!("path: {}/", tls.display()))
        .replace(
            env_line,
            &format!(
                "{env_line}      REST_API_LISTEN: \"127.0.0.1:0\"\n      REST_API_CERT: {tls}/flask.crt\n      REST_API_KEY: {tls}/flask.key\n",
                tls = tls.display()
            ),
        )
}
