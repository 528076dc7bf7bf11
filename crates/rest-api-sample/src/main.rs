//! `rest-api-sample`: the sample's HTTPS REST API. Wiring only; the behaviour is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use rest_api_sample::{SecretApp, ServeOptions, serve, server::termination_signal};

/// The SCONE sample's REST API in Rust.
///
/// Serves `GET /secret` over HTTPS (HTTP/2 and HTTP/1.1): `{"access_timestamp": ..., "secret": ...}`
/// with the value of the `AKV_SECRET` environment variable, or 404 `{"error": "secret not found"}`
/// when it is not set. The certificate and key are the files the CAS injects after attestation;
/// without them the app exits at once, naming the missing file.
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
            eprintln!("rest-api-sample: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let app = SecretApp::from_env()?;
    let key = custos_tls::load_certified_key(&args.cert, &args.key).map_err(|e| e.to_string())?;
    let tls = custos_tls::server_config(key, custos_tls::ALPN_H2_HTTP11);

    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let secret = if app.has_secret() { "set" } else { "not set" };
        tracing::info!("listening on https://{address} (h2, http/1.1); AKV_SECRET {secret}");
        let shutdown = async {
            if let Err(e) = termination_signal().await {
                tracing::error!("cannot watch for termination signals: {e}");
                std::future::pending::<()>().await;
            }
        };
        serve(
            listener,
            Arc::new(tls),
            Arc::new(app),
            ServeOptions::default(),
            shutdown,
        )
        .await;
        Ok(())
    })
}
