//! The end-to-end tests' world: the real `custos-las`, `custos-azure-emulator` and
//! `custos-cas` binaries started by the one orchestrator (`custos-harness`: loopback ports the
//! kernel picks, readiness by `--ready-file`, logs in files), sessions created through the
//! CAS's client API over mutual TLS, and `custos-run` (and the sample app it execs) run as
//! child processes.
//!
//! Other packages' binaries are not visible to this crate's tests through `CARGO_BIN_EXE_*`,
//! so [`bin_dir`] builds them once (`cargo build --bins -p …`, same profile as the test) and
//! runs them from the target directory.
//!
//! It is test tooling: it must never be a dependency of anything shipped. Processes it starts
//! are killed when their handle drops, also when a test panics; their logs are in the world's
//! directory, `logs/`.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use custos_client::{CasClient, ClientError, ClientIdentity, ServerTrust};
pub use custos_harness::{Cas, Emulator, Las, Launcher, Log, Process};
use custos_ids::KeyHash;
use custos_protocol::audit::{AuditAction, AuditEntry, AuditEvent};
use custos_protocol::client::SessionWritten;

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

/// How long a process may take to start.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A launcher of the workspace's binaries ([`bin_dir`]) logging to `dir/logs`.
pub fn launcher(dir: &Path) -> Launcher {
    Launcher::new(bin_dir(), dir.join("logs"))
}

/// A client of a CAS's client API, pinned to its key.
pub trait CasClientExt {
    /// A client of the client API as `identity`.
    fn client(&self, identity: &ClientIdentity) -> CasClient;
}

impl CasClientExt for Cas {
    fn client(&self, identity: &ClientIdentity) -> CasClient {
        let pin: KeyHash = self.key_hash.parse().expect("key hash");
        CasClient::new(&self.addr, Some(identity), ServerTrust::Pinned(pin)).expect("client")
    }
}

/// HTTP trusting the emulator's CA, and the credential of the demo's app registration, which
/// owns the vault.
fn vault_owner(emulator: &Emulator) -> (custos_azure::HttpOptions, custos_azure::AzureCredential) {
    let ca = std::fs::read(emulator.var("REQUESTS_CA_BUNDLE")).expect("the emulator's CA");
    let http = custos_azure::HttpOptions::trusting_only_pem(&ca).expect("CA");
    let credential = custos_azure::AzureCredential::new(
        custos_azure::CredentialSpec::ClientSecret {
            tenant_id: emulator.var("AZURE_TENANT_ID").into(),
            client_id: emulator.var("AZURE_CLIENT_ID").into(),
            secret: emulator.var("AZURE_CLIENT_SECRET").into(),
        },
        &custos_azure::CredentialOptions {
            authority_host: emulator.var("AZURE_AUTHORITY_HOST").into(),
            http: http.clone(),
        },
    )
    .expect("credential");
    (http, credential)
}

/// Sets a Key Vault secret's value at the emulator (a new version), as the vault's owner would.
pub async fn set_secret(emulator: &Emulator, name: &str, value: &str) {
    as_vault_owner(
        emulator,
        reqwest::Method::PUT,
        &format!("secrets/{name}"),
        value,
    )
    .await;
}

/// Imports `pem` (a private key and its certificate chain) as the new current version of the
/// Key Vault certificate `name` at the emulator, as the vault's owner rotates a certificate.
pub async fn import_certificate(emulator: &Emulator, name: &str, pem: &str) {
    let path = format!("certificates/{name}/import");
    as_vault_owner(emulator, reqwest::Method::POST, &path, pem).await;
}

/// Sends `{"value": value}` to the vault's `path` as its owner; panics unless it succeeds.
async fn as_vault_owner(emulator: &Emulator, method: reqwest::Method, path: &str, value: &str) {
    let (http, credential) = vault_owner(emulator);
    let token = credential
        .token(custos_azure::KEY_VAULT_SCOPE)
        .await
        .expect("a token");
    let url = format!("{}{path}?api-version=7.4", emulator.var("AKV_VAULT"));
    let response = http
        .reqwest_client()
        .expect("client")
        .request(method.clone(), url)
        .bearer_auth(secrecy::ExposeSecret::expose_secret(&token.token))
        .json(&serde_json::json!({ "value": value }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    assert!(
        response.status().is_success(),
        "{method} {path}: {:?}",
        response.status()
    );
}

/// A started service, or a panic with why it did not start (its log included).
fn started<T>(service: Result<T, String>) -> T {
    service.unwrap_or_else(|e| panic!("{e}"))
}

/// The sample's variables (as the SCONE README sets them) for the demo emulator, with the
/// session named `rest-api`.
pub fn sample_vars(emulator: &Emulator, namespace: &str) -> BTreeMap<String, String> {
    custos_harness::sample_vars(
        emulator.env(),
        namespace,
        "rest-api",
        &measurement(&bin("rest-api-sample")),
    )
    .unwrap_or_else(|e| panic!("{e}"))
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

/// The release policy `custos cas release-policy` prints for this custos-cas binary attested
/// by the emulator's MAA (debug enclaves admitted: simulation).
pub fn release_policy(emulator: &Emulator) -> String {
    let policy = Command::new(bin("custos"))
        .args([
            "cas",
            "release-policy",
            "--maa",
            emulator.var("MAA_PROVIDER"),
        ])
        .args(["--mrenclave", &measurement(&bin("custos-cas"))])
        .arg("--only-for-testing-debug")
        .output()
        .expect("custos runs");
    assert!(policy.status.success(), "{}", stderr(&policy));
    stdout(&policy)
}

/// Where the emulator keeps the exportable key: its vault or its Managed HSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHolder {
    /// Key Vault (Premium).
    Vault,
    /// Managed HSM.
    ManagedHsm,
}

impl KeyHolder {
    /// Its URL, with a trailing slash.
    pub fn url(self, emulator: &Emulator) -> &str {
        emulator.var(match self {
            Self::Vault => "AKV_VAULT",
            Self::ManagedHsm => "AZURE_MANAGEDHSM_URL",
        })
    }
}

/// Creates a version of the exportable RSA-HSM key `custos-kek` in `holder` under `policy`;
/// returns the version.
pub fn exportable_key(
    runtime: &tokio::runtime::Runtime,
    emulator: &Emulator,
    holder: KeyHolder,
    policy: &str,
) -> String {
    let (http, credential) = vault_owner(emulator);
    let keys = custos_azure::KeyVaultKeys::new(holder.url(emulator), &credential, &http)
        .expect("keys client");
    runtime
        .block_on(keys.create_exportable_key(
            "custos-kek",
            custos_azure::ExportableKeyType::RsaHsm { bits: 3072 },
            policy.as_bytes(),
            false,
        ))
        .expect("the exportable key")
        .version
}

/// A CAS configuration file in `dir` for `master_key.provider = "azure-skr"` with the key
/// `custos-kek` in `holder`, the emulator's MAA, the demo app's credential, and simulated
/// evidence from `platform_key` (the LAS's, which the emulator's MAA trusts).
pub fn key_release_config(
    dir: &Path,
    emulator: &Emulator,
    holder: KeyHolder,
    platform_key: &Path,
) -> PathBuf {
    let secret = dir.join("client-secret");
    std::fs::write(&secret, emulator.var("AZURE_CLIENT_SECRET")).expect("secret file");
    let config = dir.join("cas.toml");
    let text = format!(
        r#"
evidence = "simulation"
platform_key_file = "{platform_key}"
[azure]
authority_host = "{authority}"
ca_files = ["{ca}"]
[master_key]
provider = "azure-skr"
[master_key.azure_skr]
key = "{vault}keys/custos-kek"
maa = "{maa}"
tenant_id = "{tenant}"
client_id = "{client}"
client_secret_file = "{secret}"
"#,
        platform_key = platform_key.display(),
        authority = emulator.var("AZURE_AUTHORITY_HOST"),
        ca = emulator.var("REQUESTS_CA_BUNDLE"),
        vault = holder.url(emulator),
        maa = emulator.var("MAA_PROVIDER"),
        tenant = emulator.var("AZURE_TENANT_ID"),
        client = emulator.var("AZURE_CLIENT_ID"),
        secret = secret.display(),
    );
    std::fs::write(&config, text).expect("config file");
    config
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
    launcher: Launcher,
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
        Self::launch(azure, cas_flags, emulator_flags, false)
    }

    /// [`World::start`] with Azure, its CAS holding no key file: its master key is kept
    /// wrapped by the exportable key `custos-kek` of the emulator's vault, whose release policy
    /// (`custos cas release-policy`) admits this custos-cas binary attested by the emulator's
    /// MAA (simulated evidence from the LAS's platform key, which that MAA trusts).
    pub fn start_with_key_release(cas_flags: &[&str]) -> Self {
        Self::launch(true, cas_flags, &[], true)
    }

    fn launch(azure: bool, cas_flags: &[&str], emulator_flags: &[&str], key_release: bool) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let launcher = launcher(dir.path());
        let las = started(launcher.las(&dir.path().join("las")));
        let emulator = azure.then(|| {
            let flags: Vec<String> = emulator_flags.iter().map(|f| (*f).to_owned()).collect();
            started(launcher.emulator(&dir.path().join("ca.pem"), &las, &flags))
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mut flags = vec![
            "--log".to_owned(),
            "info".to_owned(),
            "--trust-platform-key".to_owned(),
            las.key_id.clone(),
        ];
        if let Some(emulator) = &emulator {
            flags.extend([
                "--azure-ca".to_owned(),
                emulator.var("REQUESTS_CA_BUNDLE").to_owned(),
                "--azure-authority-host".to_owned(),
                emulator.var("AZURE_AUTHORITY_HOST").to_owned(),
            ]);
            if key_release {
                let holder = KeyHolder::Vault;
                exportable_key(&runtime, emulator, holder, &release_policy(emulator));
                let config =
                    key_release_config(dir.path(), emulator, holder, &las.platform_key_file());
                flags.extend(["--config".to_owned(), config.display().to_string()]);
            }
        }
        flags.extend(cas_flags.iter().map(|f| (*f).to_owned()));
        let cas = started(launcher.cas(&dir.path().join("cas"), &flags));
        Self {
            dir,
            las,
            emulator,
            cas,
            launcher,
            owner: ClientIdentity::generate("session owner").expect("identity"),
            runtime,
        }
    }

    /// Starts `command` as `name`, its logs in the world's `logs/` (panics if it cannot start).
    pub fn spawn(&self, name: &str, command: &mut Command) -> Process {
        self.launcher
            .spawn(name, command)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `future` to completion on the world's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The emulator (panics if the world has none).
    pub fn emulator(&self) -> &Emulator {
        self.emulator.as_ref().expect("a world with Azure")
    }

    /// Creates a session as the owner: the CAS's answer, or its refusal.
    pub fn try_create(&self, text: &str) -> Result<SessionWritten, ClientError> {
        self.block_on(self.cas.client(&self.owner).create_session(text))
    }

    /// Creates a session as the owner; panics unless it is created. Returns its hash.
    pub fn create(&self, text: &str) -> String {
        match self.try_create(text) {
            Ok(written) => written.hash,
            Err(e) => panic!("create failed: {e}"),
        }
    }

    /// The value of the CAS's metric `name` (a sample without labels) now.
    pub fn metric(&self, name: &str) -> u64 {
        let response = self
            .block_on(self.cas.client(&self.owner).request(
                custos_client::Method::GET,
                "/metrics",
                None,
            ))
            .expect("the CAS answers /metrics");
        String::from_utf8_lossy(&response.body)
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name}"))
    }

    /// The audit events of `session`.
    pub fn audit(&self, session: &str) -> Vec<AuditEntry> {
        self.block_on(self.cas.client(&self.owner).audit(session, 0, 1000))
            .expect("the CAS answers with the audit log")
            .events
    }

    /// The attestation events (`enclave-attest`) of `session` once there are `count` of
    /// them (attestations are committed with the store's next batch, shortly after the
    /// answer); panics after ten seconds.
    pub fn attestations(&self, session: &str, count: usize) -> Vec<AuditEvent> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events: Vec<_> = self
                .audit(session)
                .into_iter()
                .map(|entry| entry.event)
                .filter(|e| e.action == AuditAction::EnclaveAttest)
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

/// The vault's certificate `flask` (PEM chain) and its key, read as the vault's owner.
pub fn vault_certificate(world: &World) -> (String, String) {
    let emulator = world.emulator();
    let (http, credential) = vault_owner(emulator);
    let vault = custos_azure::KeyVault::new(emulator.var("AKV_VAULT"), &credential, &http).unwrap();
    let cert = world
        .block_on(vault.get_certificate(emulator.var("AKV_CERT_SECRET_NAME"), None))
        .unwrap();
    (
        cert.chain_pem,
        secrecy::ExposeSecret::expose_secret(&cert.key_pem).to_owned(),
    )
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

/// The sample's session with its secret delivered as a file (`AKV_SECRET_FILE`, which the
/// sample reads again on SIGHUP) and its service supervised with `refresh` (the YAML of
/// `services[].refresh`), in namespace `fresh`. Returns the namespace, the session and the Key
/// Vault secret's name.
pub fn supervised_sample(world: &World, refresh: &str) -> (String, String, String) {
    let mut vars = sample_vars(world.emulator(), "fresh");
    vars.insert("PYTHON_SESSION_NAME".into(), "rest-api".into());
    let namespace = template("namespace.template.yml", &vars);
    let dir = world.dir.path();
    let secret_file = dir.join("akv-secret");
    let session = with_local_paths(&template("session.template.yml", &vars), dir)
        .replace(
            "      AKV_SECRET: $$SCONE::MY_AKV_SECRET$$\n",
            &format!("      AKV_SECRET_FILE: {}\n", secret_file.display()),
        )
        .replace("    pwd: /\n", &format!("    pwd: /\n    refresh: {refresh}\n"))
        .replace(
            "    injection_files:\n",
            &format!(
                "    injection_files:\n      - path: {}\n        content: $$SCONE::MY_AKV_SECRET$$\n",
                secret_file.display()
            ),
        );
    assert!(session.contains("refresh:") && session.contains("AKV_SECRET_FILE"));
    (namespace, session, vars["AKV_SECRET_NAME"].clone())
}

/// Creates `namespace` and `session` (from [`supervised_sample`]) and starts the sample under
/// `custos-run`; returns custos-run and the address the sample listens on.
pub fn start_supervised_sample(
    world: &World,
    namespace: &str,
    session: &str,
) -> (Process, std::net::SocketAddr) {
    world.create(namespace);
    world.create(session);
    let vars = world.runtime_vars("fresh/rest-api/rest-api");
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sample = bin("rest-api-sample");
    let mut app = world.spawn(
        "custos-run rest-api-sample (supervised)",
        &mut run_command(&vars, &[sample.to_str().expect("a UTF-8 path")]),
    );
    let line = app
        .wait_for("listening on https://", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    (app, listen_address(&line))
}

/// The address in the sample's `listening on https://ADDRESS` line.
pub fn listen_address(line: &str) -> std::net::SocketAddr {
    line.split("listening on https://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// CAS flags that lift the enclave API's per-address and per-config-id rate limits
/// (docs/enclave-api.md § Limits): benchmarks run every runtime from 127.0.0.1, where in
/// production they come from many nodes, and measure the CAS's work, not its admission control.
pub const NO_ENCLAVE_RATE_LIMITS: [&str; 12] = [
    "--enclave-challenge-rate",
    "1000000",
    "--enclave-challenge-burst",
    "1000000",
    "--enclave-attest-rate",
    "1000000",
    "--enclave-attest-burst",
    "1000000",
    "--enclave-config-id-attest-rate",
    "1000000",
    "--enclave-config-id-attest-burst",
    "1000000",
];

/// CPU time (user + system) process `pid` has used so far. `/proc` counts in clock ticks
/// (`CLK_TCK`, USER_HZ), which the Linux ABI fixes at 100 per second.
pub fn cpu_time(pid: u32) -> std::time::Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name: state is the first, utime the 12th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    std::time::Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
