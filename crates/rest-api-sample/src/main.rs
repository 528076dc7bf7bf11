//! `rest-api-sample`: the sample's HTTPS REST API. Wiring only; the behaviour is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use custos_serve::ConnectionLimits;
use custos_serve::daemon::{self, Failure};
use custos_tls::ReplaceableIdentity;
use rest_api_sample::{Reloader, SecretApp, ServeOptions, serve};

/// The SCONE sample's REST API in Rust.
///
/// Serves `GET /secret` over HTTPS (HTTP/2 and HTTP/1.1): `{"access_timestamp": ..., "secret": ...}`
/// with the value of the `AKV_SECRET` environment variable (or the content of the file named by
/// `AKV_SECRET_FILE`), or 404 `{"error": "secret not found"}` when neither is set. The
/// certificate and key are the files the CAS injects after attestation; without them the app
/// exits at once, naming the missing file.
///
/// SIGHUP reloads the certificate, the key and the secret file without dropping a connection:
/// new handshakes get the new certificate. SIGTERM or SIGINT stop it gracefully.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Address and port to listen on.
    #[arg(long, env = "REST_API_LISTEN", default_value = "0.0.0.0:4996")]
    listen: SocketAddr,
    /// TLS certificate chain, PEM, leaf first.
    #[arg(long, env = "REST_API_CERT", default_value = "/tls/flask.crt")]
    cert: PathBuf,
    /// TLS private key, PEM (PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[arg(long, env = "REST_API_KEY", default_value = "/tls/flask.key")]
    key: PathBuf,
    /// Also reload when the certificate, the key or the secret file changes on disk, checking
    /// every SECONDS (default: reload on SIGHUP only).
    #[arg(long, env = "REST_API_WATCH_INTERVAL", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..))]
    watch_interval: Option<u64>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Connection limits (see `custos_serve::ConnectionLimits`; the defaults are its defaults).
#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// Connections served at once; at the limit the longest-idle one is closed for a new one.
    #[arg(long, env = "REST_API_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Connections one client address may hold at once; more are closed at once.
    #[arg(long, env = "REST_API_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections_per_address: u32,
    /// Seconds for the TLS handshake.
    #[arg(long, env = "REST_API_HANDSHAKE_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    handshake_timeout: u64,
    /// Seconds from the handshake to a complete first request head.
    #[arg(long, env = "REST_API_FIRST_REQUEST_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    first_request_timeout: u64,
    /// Seconds a connection may stay open with no request in flight (HTTP/1.1 and HTTP/2).
    #[arg(long, env = "REST_API_IDLE_TIMEOUT", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
    /// Seconds to receive an HTTP/1.1 request head once it started.
    #[arg(long, env = "REST_API_HEADER_READ_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout: u64,
    /// Seconds to receive a whole request body.
    #[arg(long, env = "REST_API_BODY_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout: u64,
    /// Seconds between HTTP/2 keep-alive pings.
    #[arg(long, env = "REST_API_HTTP2_KEEP_ALIVE_INTERVAL", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    http2_keep_alive_interval: u64,
    /// Seconds for an HTTP/2 ping's acknowledgement.
    #[arg(long, env = "REST_API_HTTP2_KEEP_ALIVE_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    http2_keep_alive_timeout: u64,
}

impl LimitArgs {
    fn limits(&self) -> ConnectionLimits {
        let secs = Duration::from_secs;
        ConnectionLimits {
            max_connections: self.max_connections as usize,
            max_connections_per_address: self.max_connections_per_address as usize,
            handshake_timeout: secs(self.handshake_timeout),
            first_request_timeout: secs(self.first_request_timeout),
            idle_timeout: secs(self.idle_timeout),
            header_read_timeout: secs(self.header_read_timeout),
            body_timeout: secs(self.body_timeout),
            http2_keep_alive_interval: secs(self.http2_keep_alive_interval),
            http2_keep_alive_timeout: secs(self.http2_keep_alive_timeout),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    daemon::init_logging(None);
    daemon::exit("rest-api-sample", run(args).map_err(Failure::from))
}

fn run(args: Args) -> Result<(), String> {
    let app = Arc::new(SecretApp::from_env()?);
    let key = custos_tls::load_certified_key(&args.cert, &args.key).map_err(|e| e.to_string())?;
    let identity = ReplaceableIdentity::new(key);
    let tls = identity.server_config(custos_tls::ALPN_H2_HTTP11);
    let reloader = Reloader::new(args.cert, args.key, identity, app.clone());

    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let reloading = reloader
            .start(args.watch_interval.map(Duration::from_secs))
            .map_err(|e| format!("cannot watch for SIGHUP: {e}"))?;
        tokio::spawn(reloading);
        let secret = match (app.has_secret(), app.secret_file()) {
            (false, _) => "AKV_SECRET not set".to_owned(),
            (true, None) => "AKV_SECRET set".to_owned(),
            (true, Some(file)) => format!("secret from AKV_SECRET_FILE {}", file.display()),
        };
        tracing::info!("listening on https://{address} (h2, http/1.1); {secret}");
        let shutdown = daemon::stop_signal();
        serve(
            listener,
            Arc::new(tls),
            app,
            ServeOptions {
                limits: args.limits.limits(),
                ..ServeOptions::default()
            },
            shutdown,
        )
        .await;
        Ok(())
    })
}
