//! The HTTPS server: accept loop, TLS handshakes, HTTP/1.1 and HTTP/2, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use custos_serve::{ConnectionLimits, Server, Transport};
use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use crate::SecretApp;

/// Limits that keep slow, idle or hostile clients from holding connections.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Connection limits and timeouts.
    pub limits: ConnectionLimits,
    /// How long in-flight connections may finish after shutdown starts.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            limits: ConnectionLimits::default(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then stops accepting and
/// gives open connections `options.shutdown_grace` to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Arc<SecretApp>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let make_service = move |_: &custos_serve::Client| {
        let app = app.clone();
        service_fn(move |request| {
            let response = app.respond(&request);
            async move { Ok::<_, Infallible>(response) }
        })
    };
    Server::new(
        listener,
        Transport::Tls(TlsAcceptor::from(tls)),
        options.limits,
    )
    .serve_until(make_service, shutdown, options.shutdown_grace)
    .await;
}
