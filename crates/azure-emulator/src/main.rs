//! `custos-azure-emulator`: runs the emulator until interrupted and prints, as `export` lines,
//! what a client needs to reach it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use custos_azure_emulator::{Config, demo};
use custos_serve::daemon::{self, Failure};

/// A local Entra ID + Key Vault + Managed HSM + MAA over HTTPS, for development and tests. Never expose it.
#[derive(Debug, Parser)]
#[command(name = "custos-azure-emulator", version)]
struct Args {
    /// YAML configuration file (see docs/azure.md).
    #[arg(long, short, conflicts_with = "demo")]
    config: Option<PathBuf>,
    /// Start with the demo's tenant, app registration, secret and certificate.
    #[arg(long)]
    demo: bool,
    /// Address to listen on (overrides the file).
    #[arg(long)]
    listen: Option<IpAddr>,
    /// Entra ID port; 0 picks a free one (overrides the file).
    #[arg(long)]
    entra_port: Option<u16>,
    /// Key Vault port; 0 picks a free one (overrides the file).
    #[arg(long)]
    keyvault_port: Option<u16>,
    /// MAA port; 0 picks a free one (overrides the file).
    #[arg(long)]
    maa_port: Option<u16>,
    /// Managed HSM port; 0 picks a free one (overrides the file).
    #[arg(long)]
    managed_hsm_port: Option<u16>,
    /// Where to write the CA certificate [default: a fresh temporary directory].
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Trust this simulation platform key at the MAA endpoint (repeatable): a key id (64 hex
    /// digits, as `custos-las` logs it) or a PEM public key. Adds to the file's list.
    #[arg(long, value_name = "KEY")]
    trust_platform_key: Vec<String>,
    /// Sign the simulated quote that MAA's signing certificate embeds with this platform key
    /// (PKCS#8 PEM, e.g. a LAS's `platform-key.pem`) instead of a fresh one.
    #[arg(long, value_name = "FILE")]
    maa_platform_key: Option<PathBuf>,
    /// What MAA's signing certificate embeds: `sim` (a simulated quote of the MAA enclave
    /// bound to the key) or `none`.
    #[arg(long, value_name = "KIND")]
    maa_signing_evidence: Option<String>,
    /// The MAA enclave's MRSIGNER in that quote (64 hex digits).
    #[arg(long, value_name = "HEX")]
    maa_mrsigner: Option<String>,
    /// Lifetime of the Entra ID access tokens it issues, in seconds (overrides the file;
    /// Entra ID's is about an hour). Short lifetimes test what happens as tokens expire.
    #[arg(long, value_name = "SECS")]
    token_lifetime: Option<u64>,
    /// Once all endpoints accept, write them, the CA file and the `export` variables to
    /// this file as JSON (atomically, mode 0600; removed at start-up). See docs/azure.md.
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    daemon::init_logging(None);
    daemon::exit("custos-azure-emulator", run(Args::parse()))
}

fn run(args: Args) -> Result<(), Failure> {
    // A ready file from an earlier run must not announce this one.
    if let Some(path) = &args.ready_file {
        custos_harness::ready::remove(path)
            .map_err(|e| Failure::Usage(format!("--ready-file {}: {e}", path.display())))?;
    }
    let (mut config, demo_secret) = if args.demo {
        let (config, secret) = demo::config();
        (config, Some(secret))
    } else if let Some(path) = &args.config {
        let config = Config::from_file(path).map_err(|e| Failure::Usage(e.to_string()))?;
        (config, None)
    } else {
        (Config::default(), None)
    };
    if let Some(ip) = args.listen {
        config.listen = ip;
    }
    if let Some(port) = args.entra_port {
        config.entra.port = port;
    }
    if let Some(secs) = args.token_lifetime {
        config.entra.token_lifetime_secs = secs;
    }
    if let Some(port) = args.keyvault_port {
        config.keyvault.port = port;
    }
    if let Some(port) = args.maa_port {
        config.maa.port = port;
    }
    if let Some(port) = args.managed_hsm_port {
        config.managed_hsm.port = port;
    }
    if let Some(path) = args.ca_file {
        config.ca_file = Some(path);
    }
    config
        .maa
        .trusted_platform_keys
        .extend(args.trust_platform_key);
    let evidence = &mut config.maa.signing_evidence;
    if let Some(path) = args.maa_platform_key {
        evidence.platform_key_file = Some(path);
    }
    if let Some(mrsigner) = args.maa_mrsigner {
        evidence.mrsigner = mrsigner;
    }
    match args.maa_signing_evidence.as_deref() {
        None => {}
        Some("sim") => evidence.kind = custos_azure_emulator::config::SigningEvidenceKind::Sim,
        Some("none") => evidence.kind = custos_azure_emulator::config::SigningEvidenceKind::None,
        Some(other) => {
            return Err(Failure::Usage(format!(
                "--maa-signing-evidence: expected sim or none, found {other:?}"
            )));
        }
    }
    config
        .validate("the command line")
        .map_err(|e| Failure::Usage(e.to_string()))?;
    if config.ca_file.is_none() {
        let dir =
            std::env::temp_dir().join(format!("custos-azure-emulator-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        config.ca_file = Some(dir.join("ca.pem"));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let ready_file = args.ready_file;
    runtime.block_on(async move {
        let running = custos_azure_emulator::start(config)
            .await
            .map_err(|e| e.to_string())?;
        print_env(&running, demo_secret.as_deref());
        if let Some(path) = &ready_file
            && let Err(e) = write_ready(path, &running, demo_secret.as_deref())
        {
            running.shutdown().await;
            return Err(format!("--ready-file {}: {e}", path.display()).into());
        }
        daemon::stop_signal().await;
        running.shutdown().await;
        Ok(())
    })
}

fn print_env(running: &custos_azure_emulator::Running, demo_secret: Option<&str>) {
    let mut out = String::new();
    for (name, value) in demo::client_env(running, demo_secret) {
        out.push_str(&format!("export {name}={}\n", shell_quote(&value)));
    }
    print!("{out}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
}

fn write_ready(
    path: &std::path::Path,
    running: &custos_azure_emulator::Running,
    demo_secret: Option<&str>,
) -> std::io::Result<()> {
    let urls = running.urls();
    let ready = custos_harness::ready::EmulatorReady {
        authority_host: urls.authority_host.clone(),
        key_vault: format!("{}/", urls.vault),
        maa: urls.maa.clone(),
        ca_file: running.ca_file().map(PathBuf::from).unwrap_or_default(),
        env: demo::client_env(running, demo_secret)
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
    };
    custos_harness::ready::write(path, &ready)
}

/// Single-quotes a value for POSIX shells unless it is plainly safe.
fn shell_quote(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:~@%+=,".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}
