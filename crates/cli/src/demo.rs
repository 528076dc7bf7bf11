//! `custos demo`: the SCONE sample's flow on one machine, with no Azure account and no SGX.
//!
//! It starts the node agent (LAS) and the CAS in simulation and a local Azure (Entra ID, Key
//! Vault holding `sample-secret` and the `flask` certificate, MAA), then walks the sample's
//! README: export the variables, attest the CAS, create the namespace and the session from
//! `templates/` with `--use-env`, start the app without attestation (it exits: no certificate),
//! start it through `custos-run` (attested: Key Vault's secret and certificate are injected),
//! and call `https://rest-api.scone.sample:4996/secret` trusting the certificate from the vault.
//! Every process is real, every connection is TLS; each step says what it does and how long it
//! took, and a failure names the step and shows the failing process's log. With `--fresh` it
//! goes on beyond the sample: the app supervised, its secret rotated while it serves ([`fresh`]).

mod fresh;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use custos_harness::{Cas, Emulator, Las, Launcher, Process};
use secrecy::ExposeSecret;

/// The sample's templates, as shipped in `templates/`.
const NAMESPACE_TEMPLATE: &str = include_str!("../../../templates/namespace.template.yml");
const SESSION_TEMPLATE: &str = include_str!("../../../templates/session.template.yml");
const ATTEST_CAS_SCRIPT: &str = include_str!("../../../templates/attest-cas.sh");

/// The sample app's name and port (its certificate's CN; the port of the sample's README).
const APP_HOST: &str = "rest-api.scone.sample";
const APP_PORT: u16 = 4996;

/// How long a service may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped process may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The binaries the demo runs, besides `custos` itself.
const BINARIES: [&str; 5] = [
    "custos-las",
    "custos-azure-emulator",
    "custos-cas",
    "custos-run",
    "rest-api-sample",
];

/// Run the SCONE sample's flow on this machine, in simulation, against a local Azure.
///
/// Starts a LAS, a CAS and the Azure emulator, attests the CAS, creates the sample's namespace
/// and session from templates/ with --use-env, shows the app failing without attestation, starts
/// it through custos-run, and calls its /secret endpoint as the sample's README does with curl.
/// Needs the Custos binaries next to this `custos` (scripts/demo builds them), write access to
/// /tls (where the session injects the app's certificate) and a free port 4996.
///
/// With --fresh it then shows secrets kept fresh (services[].refresh, a Custos extension):
/// the session is updated so custos-run supervises the app and re-attests every second, with
/// the secret as a file the app reads again on SIGHUP; the secret, then the certificate, is
/// rotated in the Key Vault while a client calls /secret, and the demo prints after how long
/// the app served the new value and presented the new certificate, that it is the same
/// process, and how many requests were made and failed (0).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct DemoArgs {
    /// Leave the LAS, CAS, emulator and app running at the end (prints how to stop them).
    #[arg(long)]
    keep_running: bool,
    /// Directory for the demo's data, logs and CLI configuration [default: a new one under /tmp].
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Directory holding the Custos binaries [default: the directory of this `custos`].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Then rotate the secret and the certificate in the Key Vault while the app, supervised
    /// by custos-run (refresh every second; the CAS's Key Vault cache TTL 1 s), keeps serving:
    /// prints when each arrived, the app's PID before and after, and the requests (none failed).
    #[arg(long)]
    fresh: bool,
}

/// Runs the demo; 0 when the app served the vault's secret, 1 when a step failed.
pub fn run(args: DemoArgs) -> ExitCode {
    let mut demo = match Demo::new(&args) {
        Ok(demo) => demo,
        Err(message) => {
            eprintln!("custos demo: {message}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let outcome = demo.walk();
    match outcome {
        Ok(json) => {
            println!();
            println!("{json}");
            println!();
            println!(
                "The attested app served the Key Vault secret over the Key Vault certificate ({:.1} s).",
                started.elapsed().as_secs_f64()
            );
            demo.finish(args.keep_running);
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!();
            eprintln!(
                "custos demo: step {} failed: {}",
                failure.step, failure.message
            );
            eprintln!("Logs and data: {}", demo.work.display());
            demo.finish(false);
            ExitCode::FAILURE
        }
    }
}

/// A step's value and the lines it shows, or why it failed.
type StepResult<T> = Result<(T, Vec<String>), String>;

/// A step that did not work: which, and why.
struct Failure {
    step: String,
    message: String,
}

struct Demo {
    work: PathBuf,
    custos: PathBuf,
    launcher: Launcher,
    /// The services and the app, once started (the orchestrator's handles).
    las: Option<Las>,
    azure: Option<Emulator>,
    cas: Option<Cas>,
    app: Option<Process>,
    /// The variables of the sample's README, as exported in its shell.
    env: BTreeMap<String, String>,
    step: usize,
    /// `--fresh`: the rotation steps after the sample's flow.
    fresh: bool,
}

/// What the vault holds for the app, read with the app owner's credentials.
struct VaultView {
    chain_pem: String,
    secret: secrecy::SecretString,
}

/// The sample's app registration, which owns the vault: what makes its credential.
struct VaultOwner {
    spec: custos_azure::CredentialSpec,
    options: custos_azure::CredentialOptions,
}

impl VaultOwner {
    fn credential(self) -> Result<custos_azure::AzureCredential, String> {
        custos_azure::AzureCredential::new(self.spec, &self.options).map_err(|e| e.to_string())
    }
}

impl Demo {
    fn new(args: &DemoArgs) -> Result<Self, String> {
        let custos = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
        let bins = match &args.bin_dir {
            Some(dir) => dir.clone(),
            None => custos
                .parent()
                .ok_or("cannot find the directory of this custos")?
                .to_path_buf(),
        };
        let work = match &args.work_dir {
            Some(dir) => dir.clone(),
            None => std::env::temp_dir().join(format!("custos-demo-{}", std::process::id())),
        };
        fs::create_dir_all(work.join("logs")).map_err(|e| format!("{}: {e}", work.display()))?;
        let mut launcher = Launcher::new(bins, work.join("logs"));
        launcher.timeout = READY_TIMEOUT;
        Ok(Self {
            launcher,
            las: None,
            azure: None,
            cas: None,
            app: None,
            work,
            custos,
            env: BTreeMap::new(),
            step: 0,
            fresh: args.fresh,
        })
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.launcher.bin(name)
    }

    fn las(&self) -> Result<&Las, String> {
        self.las
            .as_ref()
            .ok_or_else(|| "the LAS is not running".into())
    }

    fn azure(&self) -> Result<&Emulator, String> {
        self.azure
            .as_ref()
            .ok_or_else(|| "the Azure emulator is not running".into())
    }

    fn cas(&self) -> Result<&Cas, String> {
        self.cas
            .as_ref()
            .ok_or_else(|| "the CAS is not running".into())
    }

    /// The running processes, in the order they were started.
    fn processes(&mut self) -> Vec<&mut Process> {
        [
            self.las.as_mut().map(|s| &mut s.process),
            self.azure.as_mut().map(|s| &mut s.process),
            self.cas.as_mut().map(|s| &mut s.process),
            self.app.as_mut(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Runs one step: prints its title, runs it, prints its duration or its failure.
    fn step<T>(
        &mut self,
        title: &str,
        body: impl FnOnce(&mut Self) -> StepResult<T>,
    ) -> Result<T, Failure> {
        self.step += 1;
        let label = format!("{:>2}. {title}", self.step);
        println!("{label}");
        let started = Instant::now();
        match body(self) {
            Ok((value, details)) => {
                for line in details {
                    println!("      {line}");
                }
                println!("      done in {} ms", started.elapsed().as_millis());
                Ok(value)
            }
            Err(message) => Err(Failure {
                step: label.trim().to_owned(),
                message,
            }),
        }
    }

    /// The sample's README, step by step; returns the app's answer.
    fn walk(&mut self) -> Result<String, Failure> {
        self.step("Check the binaries, /tls and port 4996", |demo| {
            demo.preflight().map(|details| ((), details))
        })?;
        self.step("Start the LAS (node agent, simulation)", |demo| {
            demo.start_las()
        })?;
        self.step(
            "Start the local Azure: Entra ID, Key Vault (sample-secret, certificate flask), MAA",
            |demo| demo.start_azure(),
        )?;
        self.step("Start the CAS (simulation)", |demo| demo.start_cas())?;
        self.step("Export the sample's variables", |demo| {
            demo.export_variables()
        })?;
        self.step("Attest the CAS: templates/attest-cas.sh", |demo| {
            demo.attest_cas()
        })?;
        self.step(
            "Create the namespace: custos session create --use-env namespace.template.yml",
            |demo| demo.create_session("namespace.template.yml", NAMESPACE_TEMPLATE),
        )?;
        self.step(
            "Create the session: custos session create --use-env session.template.yml",
            |demo| demo.create_session("session.template.yml", SESSION_TEMPLATE),
        )?;
        self.step(
            "Start the app without attestation: no certificate, so it exits",
            |demo| demo.run_unattested(),
        )?;
        self.step(
            "Start the app through custos-run with SCONE_CONFIG_ID (attested)",
            |demo| demo.run_attested(),
        )?;
        let vault_cert = self.step(
            "Fetch the certificate flask from the Key Vault and compare it with the app's",
            |demo| demo.vault_certificate(),
        )?;
        let answer = self.step(
            "curl https://rest-api.scone.sample:4996/secret --resolve rest-api.scone.sample:4996:127.0.0.1",
            |demo| demo.call_app(&vault_cert),
        )?;
        if self.fresh {
            self.walk_fresh(&vault_cert)?;
        }
        Ok(answer)
    }

    fn preflight(&self) -> Result<Vec<String>, String> {
        let missing: Vec<&str> = BINARIES
            .iter()
            .copied()
            .filter(|name| !self.bin(name).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} not found in {} (build them with `cargo build --release --bins`, or run scripts/demo)",
                missing.join(", "),
                self.launcher.bins().display()
            ));
        }
        let probe = Path::new("/tls/.custos-demo-probe");
        fs::create_dir_all("/tls")
            .and_then(|()| fs::write(probe, b""))
            .and_then(|()| fs::remove_file(probe))
            .map_err(|e| {
                format!(
                    "the session injects the app's certificate into /tls, which is not writable ({e}): \
                     run the demo as root, or `sudo mkdir -p /tls && sudo chown $USER /tls`"
                )
            })?;
        TcpListener::bind(("0.0.0.0", APP_PORT))
            .map_err(|e| format!("port {APP_PORT} (the sample app's) is not free: {e}"))?;
        Ok(vec![
            format!("binaries: {}", self.launcher.bins().display()),
            format!("work directory: {}", self.work.display()),
        ])
    }

    fn start_las(&mut self) -> StepResult<()> {
        let las = self.launcher.las(&self.work.join("las"))?;
        let details = vec![format!(
            "http://{}, platform key id {}",
            las.addr, las.key_id
        )];
        self.las = Some(las);
        Ok(((), details))
    }

    fn start_azure(&mut self) -> StepResult<()> {
        // MAA's signing certificate embeds its enclave's simulated quote, signed with the
        // LAS's platform key, which the CAS trusts (the CAS's MAA self-check).
        let azure = self
            .launcher
            .emulator(&self.work.join("azure-ca.pem"), self.las()?, &[])?;
        let details = vec![
            format!("Entra ID {}", azure.ready.authority_host),
            format!("Key Vault {}", azure.ready.key_vault),
            format!("MAA {}", azure.ready.maa),
        ];
        self.azure = Some(azure);
        Ok(((), details))
    }

    fn start_cas(&mut self) -> StepResult<()> {
        let azure = self.azure()?;
        let flags = [
            "--trust-las",
            &format!("http://{}", self.las()?.addr),
            "--azure-authority-host",
            azure.get("AZURE_AUTHORITY_HOST")?,
            "--azure-ca",
            azure.get("SSL_CERT_FILE")?,
            "--tls-name",
            "localhost,127.0.0.1",
        ];
        let mut flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        let mut details = Vec::new();
        if self.fresh {
            // The default (60 s) would make the rotation wait up to a minute in the CAS.
            flags.extend([
                "--azure-cache-ttl".to_owned(),
                fresh::CACHE_TTL_SECS.to_string(),
            ]);
            details.push(format!(
                "--azure-cache-ttl {} (--fresh: Key Vault values are reused for {} s)",
                fresh::CACHE_TTL_SECS,
                fresh::CACHE_TTL_SECS
            ));
        }
        let cas = self.launcher.cas(&self.work.join("cas"), &flags)?;
        details.extend([
            format!(
                "client API https://{}, enclave API https://{}",
                cas.addr, cas.enclave_addr
            ),
            format!("TLS key hash {}", cas.key_hash),
        ]);
        self.cas = Some(cas);
        Ok(((), details))
    }

    fn export_variables(&mut self) -> StepResult<()> {
        let mrenclave = custos_attestation::sim::measure_executable(&self.bin("rest-api-sample"))
            .map_err(|e| format!("measuring rest-api-sample: {e}"))?;
        let namespace = format!("azure-integration-{}", random_digits());
        let mut env = custos_harness::sample_vars(
            self.azure()?.env(),
            &namespace,
            "demo",
            &mrenclave.to_hex(),
        )?;
        env.insert("SCONE_CAS_ADDR".into(), self.cas()?.addr.clone());
        let details = env
            .iter()
            .map(|(name, value)| {
                let shown = if name == "AZURE_CLIENT_SECRET" {
                    "(hidden)"
                } else {
                    value
                };
                format!("export {name}={shown}")
            })
            .collect();
        self.env = env;
        Ok(((), details))
    }

    /// `command` with the sample's environment and the demo's own CLI configuration.
    fn with_sample_env(&self, mut command: Command) -> Command {
        clear_custos_env(&mut command);
        command
            .envs(&self.env)
            .env("CUSTOS_CLI_CONFIG", self.work.join("cli/config.json"));
        command
    }

    fn attest_cas(&mut self) -> StepResult<()> {
        let script = self.work.join("templates/attest-cas.sh");
        write_file(&script, ATTEST_CAS_SCRIPT)?;
        let mut command = self.with_sample_env(Command::new("bash"));
        command.arg(&script).env("CUSTOS", &self.custos);
        let output = run_captured(command, "attest-cas.sh")?;
        Ok(((), output))
    }

    fn create_session(&mut self, file: &str, template: &str) -> StepResult<()> {
        let path = self.work.join("templates").join(file);
        write_file(&path, template)?;
        let mut command = self.with_sample_env(Command::new(&self.custos));
        command.args(["session", "create", "--use-env"]).arg(&path);
        let output = run_captured(command, "custos session create")?;
        Ok(((), output))
    }

    fn run_unattested(&mut self) -> StepResult<()> {
        let _ = fs::remove_file("/tls/flask.crt");
        let _ = fs::remove_file("/tls/flask.key");
        let mut command = Command::new(self.bin("custos-run"));
        clear_custos_env(&mut command);
        command
            .arg(self.bin("rest-api-sample"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start custos-run: {e}"))?;
        let status = wait_limited(&mut child, Duration::from_secs(10))?;
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        if status.success() {
            return Err(
                "the app started without attestation, but it should have no certificate".into(),
            );
        }
        let mut details: Vec<String> = stderr.lines().map(str::to_owned).collect();
        details.push(format!("exit status: {}", status.code().unwrap_or(-1)));
        Ok(((), details))
    }

    fn run_attested(&mut self) -> StepResult<()> {
        let config_id = format!(
            "{}/{}/rest-api",
            self.env["CAS_NAMESPACE"], self.env["PYTHON_SESSION_NAME"]
        );
        let mut command = Command::new(self.bin("custos-run"));
        clear_custos_env(&mut command);
        command
            .arg(self.bin("rest-api-sample"))
            .env("SCONE_CONFIG_ID", &config_id)
            .env("SCONE_CAS_ADDR", &self.cas()?.enclave_addr)
            .env("SCONE_LAS_ADDR", &self.las()?.addr)
            .env("CUSTOS_MODE", "sim")
            .env("CUSTOS_CAS_KEY_HASH", &self.cas()?.key_hash);
        let app = self
            .app
            .insert(self.launcher.spawn("rest-api", &mut command)?);
        app.wait_for("listening on https://", READY_TIMEOUT)?;
        let mut details = vec![format!("export SCONE_CONFIG_ID={config_id}")];
        details.extend(app.logs().lines().map(str::to_owned));
        Ok(((), details))
    }

    /// HTTP trusting the local Azure's CA, and the credential of the sample's app
    /// registration, which owns the vault.
    fn vault_owner(&self) -> Result<(custos_azure::HttpOptions, VaultOwner), String> {
        let azure = self.azure()?;
        let ca = azure.get("SSL_CERT_FILE")?;
        let ca_pem = fs::read(ca).map_err(|e| format!("{ca}: {e}"))?;
        let http = custos_azure::HttpOptions {
            trust: custos_azure::Trust::Only(
                custos_azure::http::parse_pem_certificates(&ca_pem).map_err(|e| e.to_string())?,
            ),
            ..custos_azure::HttpOptions::default()
        };
        let spec = custos_azure::CredentialSpec::ClientSecret {
            tenant_id: self.env["AZURE_TENANT_ID"].clone(),
            client_id: self.env["AZURE_CLIENT_ID"].clone(),
            secret: self.env["AZURE_CLIENT_SECRET"].clone().into(),
        };
        let options = custos_azure::CredentialOptions {
            authority_host: azure.get("AZURE_AUTHORITY_HOST")?.to_owned(),
            http: http.clone(),
        };
        Ok((http, VaultOwner { spec, options }))
    }

    /// Reads the certificate and the secret from the vault as the app's owner would, and checks
    /// that the app serves that certificate.
    fn vault_certificate(&mut self) -> StepResult<VaultView> {
        let vault = &self.env["AKV_VAULT"];
        let name = &self.env["AKV_CERT_SECRET_NAME"];
        let (http, owner) = self.vault_owner()?;
        let runtime = tokio_runtime()?;
        let secret_name = &self.env["AKV_SECRET_NAME"];
        let view = runtime.block_on(async {
            let credential = owner.credential()?;
            let vault = custos_azure::KeyVault::new(vault, &credential, &http)
                .map_err(|e| e.to_string())?;
            let certificate = vault
                .get_certificate(name, None)
                .await
                .map_err(|e| e.to_string())?;
            let secret = vault
                .get_secret(secret_name, None)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(VaultView {
                chain_pem: certificate.chain_pem,
                secret: secret.value,
            })
        })?;
        let served = runtime.block_on(served_certificate(APP_PORT))?;
        let vault_leaf = custos_tls::parse_certificates(Path::new(name), view.chain_pem.as_bytes())
            .map_err(|e| e.to_string())?
            .remove(0);
        let served_leaf = served.first().ok_or("the app presented no certificate")?;
        if served_leaf.as_ref() != vault_leaf.as_ref() {
            return Err(format!(
                "the app's certificate (key hash {}) is not the vault's {name} (key hash {})",
                key_hash(served_leaf),
                key_hash(&vault_leaf)
            ));
        }
        Ok((
            view,
            vec![format!(
                "the app serves the vault's certificate {name} (key hash {})",
                key_hash(&vault_leaf)
            )],
        ))
    }

    /// What `curl --resolve` does: the name resolved to loopback, the certificate verified by
    /// name against the vault's certificate.
    fn call_app(&mut self, vault: &VaultView) -> StepResult<String> {
        let runtime = tokio_runtime()?;
        let client = app_client(vault)?;
        let body = runtime.block_on(async {
            let url = app_secret_url();
            let response = client
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let status = response.status();
            let text = response.text().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("{url}: HTTP {status}: {text}"));
            }
            Ok(text)
        })?;
        let json: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| format!("the app's answer is not JSON: {e}"))?;
        if json["secret"].as_str() != Some(vault.secret.expose_secret()) {
            return Err(format!(
                "the app's secret is not the vault's {}",
                self.env["AKV_SECRET_NAME"]
            ));
        }
        Ok((
            body.trim().to_owned(),
            vec![format!(
                "the secret is the vault's {}",
                self.env["AKV_SECRET_NAME"]
            )],
        ))
    }

    /// Stops every process, or leaves them running and says how to stop them.
    fn finish(&mut self, keep_running: bool) {
        if keep_running {
            println!();
            println!(
                "Still running (logs in {}):",
                self.launcher.logs().display()
            );
            let mut pids = Vec::new();
            for process in self.processes() {
                println!("  {:<15} pid {}", process.name(), process.id());
                pids.push(process.id().to_string());
                process.detach();
            }
            println!("Stop them with: kill {}", pids.join(" "));
        } else {
            // Newest first: the app before the CAS before the services it uses.
            let mut processes = self.processes();
            for process in processes.iter_mut().rev() {
                process.stop(STOP_GRACE);
            }
            println!("Stopped {} processes.", processes.len());
        }
    }
}

/// A client of the app as `curl --resolve` is: its name resolved to loopback, its certificate
/// verified by name against the vault's certificate.
fn app_client(vault: &VaultView) -> Result<reqwest::Client, String> {
    let root = reqwest::Certificate::from_pem(vault.chain_pem.as_bytes())
        .map_err(|e| format!("the vault's certificate: {e}"))?;
    reqwest::Client::builder()
        .tls_certs_only([root])
        .resolve(APP_HOST, SocketAddr::from(([127, 0, 0, 1], APP_PORT)))
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())
}

fn app_secret_url() -> String {
    format!("https://{APP_HOST}:{APP_PORT}/secret")
}

/// The sample's `$RANDOM$RANDOM$RANDOM`.
fn random_digits() -> String {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG works");
    (u64::from_le_bytes(bytes) % 10_000_000_000).to_string()
}

fn clear_custos_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CUSTOS_") || name.starts_with("SCONE_") {
            command.env_remove(name.as_ref());
        }
    }
}

fn write_file(path: &Path, content: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    fs::write(path, content).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs a command to completion; its output lines, or its failure with them.
fn run_captured(mut command: Command, what: &str) -> Result<Vec<String>, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let mut lines = Vec::new();
    for stream in [&output.stdout, &output.stderr] {
        lines.extend(String::from_utf8_lossy(stream).lines().map(str::to_owned));
    }
    if output.status.success() {
        Ok(lines)
    } else {
        let mut message = format!("{what} exited with {}", output.status);
        for line in lines {
            let _ = write!(message, "\n        {line}");
        }
        Err(message)
    }
}

fn wait_limited(child: &mut Child, limit: Duration) -> Result<std::process::ExitStatus, String> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            return Err(format!("still running after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

fn key_hash(cert: &rustls_pki_types::CertificateDer<'_>) -> String {
    custos_ids::KeyHash::of_certificate(cert)
        .map(|h| h.to_string())
        .unwrap_or_else(|e| e.to_string())
}

/// The certificate chain the app presents to a client asking for `rest-api.scone.sample`.
async fn served_certificate(
    port: u16,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    let config = rustls::ClientConfig::builder_with_provider(custos_tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        // Only to read what the app presents; the comparison with the vault is the check.
        .with_custom_certificate_verifier(custos_tls::unauthenticated_server_verifier())
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
    let name = rustls_pki_types::ServerName::try_from(APP_HOST).map_err(|e| e.to_string())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with the app: {e}"))?;
    let (_, session) = tls.get_ref();
    Ok(session
        .peer_certificates()
        .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default())
}
