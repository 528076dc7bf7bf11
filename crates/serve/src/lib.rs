//! The one place a Custos server accepts and serves connections, over TLS (HTTP/2 or
//! HTTP/1.1 by ALPN) or plain TCP (HTTP/1.1).
//!
//! One client must not be able to take a server offline by opening connections and doing
//! nothing. So every listener has a global connection limit (at the limit the longest-idle
//! connection is closed for the new one), a per-address cap, and deadlines for the TLS
//! handshake, the first request, idle keep-alive (HTTP/1 and HTTP/2), request heads and
//! request bodies; see [`ConnectionLimits`]. [`ConnectionStats`] counts what happened.

mod body;
mod connection;
pub mod daemon;
mod limits;
mod registry;
mod stats;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Body;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::CertificateDer;

pub use body::{BodyError, RequestBody, ResponseBody};
pub use limits::ConnectionLimits;
pub use registry::client_address;
pub use stats::{ConnectionStats, Deadline};

use connection::Shared;
use registry::{Admission, Registry};

/// Any error a handler or body may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The service a server builds for each connection: it takes requests whose body has the
/// read deadline, and answers with any body. (One name for the bounds every function here
/// needs.)
pub trait HttpService:
    hyper::service::Service<
        Request<RequestBody>,
        Response = Response<Self::ResponseBody>,
        Future: Send + 'static,
        Error: Into<BoxError>,
    > + Send
    + 'static
{
    /// The response body.
    type ResponseBody: Body<Data: Send, Error: Into<BoxError>> + Send + 'static;
}

impl<S, B> HttpService for S
where
    S: hyper::service::Service<Request<RequestBody>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
{
    type ResponseBody = B;
}

/// How a listener's connections are secured.
#[derive(Clone)]
pub enum Transport {
    /// Plain TCP, HTTP/1.1 only.
    Plain,
    /// TLS; HTTP/2 when ALPN chose `h2`, HTTP/1.1 otherwise.
    Tls(TlsAcceptor),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Plain => "Plain",
            Transport::Tls(_) => "Tls",
        })
    }
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct Client {
    /// The peer's address.
    pub addr: SocketAddr,
    /// The client certificate (the leaf), when TLS asked for one and the client sent it.
    pub certificate: Option<CertificateDer<'static>>,
}

/// A listener with its limits, ready to serve.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    transport: Transport,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
}

impl Server {
    /// A server for `listener`, counting into fresh [`ConnectionStats`].
    pub fn new(listener: TcpListener, transport: Transport, limits: ConnectionLimits) -> Self {
        Self {
            listener,
            transport,
            limits,
            stats: Arc::default(),
        }
    }

    /// Counts into `stats` (e.g. the ones a metrics endpoint shows).
    pub fn with_stats(mut self, stats: Arc<ConnectionStats>) -> Self {
        self.stats = stats;
        self
    }

    /// The counters of this listener.
    pub fn stats(&self) -> &Arc<ConnectionStats> {
        &self.stats
    }

    /// Serves until the process ends. `make_service` builds the service of each connection
    /// from its [`Client`].
    pub async fn serve<M, S>(self, make_service: M)
    where
        M: Fn(&Client) -> S + Send + Sync + 'static,
        S: HttpService,
    {
        self.serve_until(make_service, std::future::pending(), Duration::ZERO)
            .await;
    }

    /// Serves until `shutdown` resolves, then stops accepting, asks every connection to
    /// finish (HTTP/1: after its current request; HTTP/2: GOAWAY) and waits for them at most
    /// `grace`.
    pub async fn serve_until<M, S>(
        self,
        make_service: M,
        shutdown: impl Future<Output = ()>,
        grace: Duration,
    ) where
        M: Fn(&Client) -> S + Send + Sync + 'static,
        S: HttpService,
    {
        let registry = Registry::new(self.limits, self.stats.clone());
        let shared = Arc::new(Shared {
            transport: self.transport,
            limits: self.limits,
            stats: self.stats,
            make_service,
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // The accept loop is a task of its own, so it runs on a runtime worker. Awaited here
        // it would run wherever this future is polled: under `block_on` or `#[tokio::main]`
        // that is the main thread, and every accept would wait for that thread to be woken
        // and scheduled (on a busy machine, milliseconds) while the handshakes queue.
        let mut accepting = AbortOnDrop(tokio::spawn(accept_loop(
            self.listener,
            registry.clone(),
            shared.clone(),
            stopped,
        )));
        shutdown.await;
        // Aborting drops the listener: the loop holds no slot across its awaits.
        accepting.0.abort();
        if let Err(error) = (&mut accepting.0).await
            && error.is_panic()
        {
            tracing::error!("the accept loop panicked");
        }
        tracing::info!(
            accepted = shared.stats.accepted(),
            handshakes_resumed = shared.stats.handshakes_resumed(),
            "shutting down: no new connections"
        );
        let _ = stop.send(true);
        if tokio::time::timeout(grace, registry.wait_empty())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_ms = grace.as_millis(),
                open = shared.stats.open(),
                "connections still open after the grace period; closing them"
            );
        }
    }
}

/// Stops the accept loop (and closes its listener) when the future serving it is dropped, as
/// happens to a server raced against a stop signal in `select!`.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Accepts connections until aborted, each into a slot of `registry` and a task of its own.
async fn accept_loop<M, S>(
    listener: TcpListener,
    registry: Arc<Registry>,
    shared: Arc<Shared<M>>,
    stopped: tokio::sync::watch::Receiver<bool>,
) where
    M: Fn(&Client) -> S + Send + Sync + 'static,
    S: HttpService,
{
    'accept: loop {
        // At the limit with every connection busy, leave new ones in the listen backlog.
        registry.wait_for_room().await;
        let (tcp, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = loop {
            match registry.admit(addr.ip()) {
                Admission::Admitted(slot) => break slot,
                Admission::OverAddressCap => {
                    tracing::debug!(%addr, "connection closed: its address holds its maximum");
                    continue 'accept;
                }
                // Someone went busy since the room check: wait for room again.
                Admission::Full => registry.wait_for_room().await,
            }
        };
        tokio::spawn(connection::run(
            tcp,
            addr,
            slot,
            shared.clone(),
            stopped.clone(),
        ));
    }
}
