//! `custos-las`: wiring only; the behaviour is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use custos_attestation::PlatformKey;
use custos_las::Las;
use custos_serve::daemon::{self, Failure};
use custos_serve::{ConnectionLimits, Server, Transport};
use hyper_util::service::TowerToHyperService;

/// The Custos node agent (LAS), in simulation mode.
///
/// Issues simulated quotes (sim-quote) for the workloads on this node, signed by the node's
/// platform key (P-256, created on first start in the data directory). Simulated quotes prove
/// nothing about hardware: a CAS accepts them only from platform keys it trusts, and only for
/// sessions that tolerate debug mode.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Address and port to listen on (plain HTTP: the LAS serves its own node). Any process
    /// that reaches it gets quotes signed; listen wider than loopback only as far as the
    /// node's workloads need (e.g. `0.0.0.0:18766` with a node-local hostPort).
    #[arg(long, env = "CUSTOS_LAS_LISTEN", default_value = "127.0.0.1:18766")]
    listen: SocketAddr,
    /// Directory holding the platform key (`platform-key.pem`, mode 0600).
    #[arg(
        long,
        env = "CUSTOS_LAS_DATA_DIR",
        default_value = "/var/lib/custos-las"
    )]
    data_dir: PathBuf,
    /// Once listening, write the address and the platform key id to this file as JSON
    /// (atomically; removed at start-up): `{"listen": "…", "platform_key_id": "…"}`.
    #[arg(long, env = "CUSTOS_LAS_READY_FILE")]
    ready_file: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Connection limits (see `custos_serve::ConnectionLimits`; the defaults are its defaults).
#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// Connections served at once; at the limit the longest-idle one is closed for a new one.
    #[arg(long, env = "CUSTOS_LAS_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Connections one client address may hold at once; more are closed at once.
    #[arg(long, env = "CUSTOS_LAS_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections_per_address: u32,
    /// Seconds from accepting a connection to a complete first request head.
    #[arg(long, env = "CUSTOS_LAS_FIRST_REQUEST_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    first_request_timeout: u64,
    /// Seconds a keep-alive connection may stay open with no request in flight.
    #[arg(long, env = "CUSTOS_LAS_IDLE_TIMEOUT", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
    /// Seconds to receive a request head once it started.
    #[arg(long, env = "CUSTOS_LAS_HEADER_READ_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout: u64,
    /// Seconds to receive a whole request body.
    #[arg(long, env = "CUSTOS_LAS_BODY_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout: u64,
}

impl LimitArgs {
    fn limits(&self) -> ConnectionLimits {
        let secs = Duration::from_secs;
        ConnectionLimits {
            max_connections: self.max_connections as usize,
            max_connections_per_address: self.max_connections_per_address as usize,
            first_request_timeout: secs(self.first_request_timeout),
            idle_timeout: secs(self.idle_timeout),
            header_read_timeout: secs(self.header_read_timeout),
            body_timeout: secs(self.body_timeout),
            // Plain HTTP/1.1: no TLS handshake, no HTTP/2.
            ..ConnectionLimits::default()
        }
    }
}

/// How long open connections may finish after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args = Args::parse();
    daemon::init_logging(None);
    daemon::exit("custos-las", run(args))
}

fn run(args: Args) -> Result<(), Failure> {
    // A ready file from an earlier run must not announce this one.
    if let Some(path) = &args.ready_file {
        custos_harness::ready::remove(path)
            .map_err(|e| Failure::Usage(format!("--ready-file {}: {e}", path.display())))?;
    }
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
        if let Some(path) = &args.ready_file {
            let ready = custos_harness::ready::LasReady {
                listen: address,
                platform_key_id: key_id.to_string(),
            };
            custos_harness::ready::write(path, &ready)
                .map_err(|e| format!("--ready-file {}: {e}", path.display()))?;
        }
        let router = Las::new(platform).router();
        Server::new(listener, Transport::Plain, args.limits.limits())
            .serve_until(
                move |_: &custos_serve::Client| TowerToHyperService::new(router.clone()),
                daemon::stop_signal(),
                SHUTDOWN_GRACE,
            )
            .await;
        Ok(())
    })
}
