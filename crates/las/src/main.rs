//! `custos-las`: wiring only; the behaviour is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use custos_attestation::PlatformKey;
use custos_las::Las;

/// The Custos node agent (LAS), in simulation mode.
///
/// Issues simulated quotes (sim-quote) for the workloads on this node, signed by the node's
/// platform key (P-256, created on first start in the data directory). Simulated quotes prove
/// nothing about hardware: a CAS accepts them only from platform keys it trusts, and only for
/// sessions that tolerate debug mode.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Address and port to listen on (plain HTTP: the LAS serves its own node).
    #[arg(long, env = "CUSTOS_LAS_LISTEN", default_value = "0.0.0.0:18766")]
    listen: SocketAddr,
    /// Directory holding the platform key (`platform-key.pem`, mode 0600).
    #[arg(
        long,
        env = "CUSTOS_LAS_DATA_DIR",
        default_value = "/var/lib/custos-las"
    )]
    data_dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("custos-las: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("{}: cannot create: {e}", args.data_dir.display()))?;
    let platform = PlatformKey::load_or_generate(&args.data_dir.join("platform-key.pem"))
        .map_err(|e| e.to_string())?;
    let key_id = platform.public_key().id();

    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::warn!(
            "SIMULATION: quotes are signed by a software platform key and prove nothing about hardware"
        );
        tracing::info!("listening on http://{address}; platform key id {key_id}");
        axum::serve(listener, Las::new(platform).router())
            .with_graceful_shutdown(termination())
            .await
            .map_err(|e| format!("serving: {e}"))
    })
}

async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => std::future::pending().await,
    }
}
