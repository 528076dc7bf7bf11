//! One connection: TLS handshake, HTTP/1.1 or HTTP/2 by ALPN, and the deadlines that close
//! it when it does nothing.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::rustls::HandshakeKind;

use crate::body::{RequestBody, ResponseBody};
use crate::registry::{Activity, Slot};
use crate::stats::{ConnectionStats, Deadline};
use crate::{Client, ConnectionLimits, HttpService, Transport};

/// How long a connection closed for a deadline may take to say goodbye (HTTP/2 GOAWAY).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What every connection of a listener shares.
pub(crate) struct Shared<M> {
    pub(crate) transport: Transport,
    pub(crate) limits: ConnectionLimits,
    pub(crate) stats: Arc<ConnectionStats>,
    pub(crate) make_service: M,
}

/// Serves one accepted connection until it ends, times out, is evicted or the server stops.
pub(crate) async fn run<M, S>(
    tcp: TcpStream,
    addr: SocketAddr,
    slot: Slot,
    shared: Arc<Shared<M>>,
    mut stop: watch::Receiver<bool>,
) where
    M: Fn(&Client) -> S,
    S: HttpService,
{
    let _ = tcp.set_nodelay(true);
    let activity = slot.activity.clone();
    let limits = shared.limits;
    match &shared.transport {
        Transport::Plain => {
            let client = Client {
                addr,
                certificate: None,
            };
            serve_http(tcp, false, client, &activity, &shared, &mut stop).await;
        }
        Transport::Tls(acceptor) => {
            let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp));
            let tls = tokio::select! {
                result = handshake => match result {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        shared.stats.handshake_failed();
                        tracing::debug!(%addr, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        shared.stats.time_out(Deadline::Handshake);
                        tracing::debug!(%addr, "TLS handshake timed out");
                        return;
                    }
                },
                () = activity.evicted.notified() => return,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            activity.touch();
            let session = tls.get_ref().1;
            if session.handshake_kind() == Some(HandshakeKind::Resumed) {
                shared.stats.handshake_resumed();
            }
            let h2 = session.alpn_protocol() == Some(b"h2".as_slice());
            let certificate = session
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| cert.clone().into_owned());
            let client = Client { addr, certificate };
            serve_http(tls, h2, client, &activity, &shared, &mut stop).await;
        }
    }
    drop(slot);
}

async fn serve_http<I, M, S>(
    io: I,
    h2: bool,
    client: Client,
    activity: &Arc<Activity>,
    shared: &Shared<M>,
    stop: &mut watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    M: Fn(&Client) -> S,
    S: HttpService,
{
    let limits = &shared.limits;
    let service = Tracked {
        inner: (shared.make_service)(&client),
        activity: activity.clone(),
        body_timeout: limits.body_timeout,
        stats: shared.stats.clone(),
    };
    let io = TokioIo::new(io);
    let (addr, stats) = (client.addr, &shared.stats);
    // The protocol comes from ALPN, so no bytes are read before the deadlines apply.
    if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(limits.http2_keep_alive_interval)
            .keep_alive_timeout(limits.http2_keep_alive_timeout);
        let connection = builder.serve_connection(io, service);
        drive(connection, addr, activity, limits, stats, stop).await;
    } else {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let connection = builder.serve_connection(io, service);
        drive(connection, addr, activity, limits, stats, stop).await;
    }
}

async fn drive<C>(
    connection: C,
    addr: SocketAddr,
    activity: &Activity,
    limits: &ConnectionLimits,
    stats: &ConnectionStats,
    stop: &mut watch::Receiver<bool>,
) where
    C: GracefulConnection<Error = hyper::Error>,
{
    tokio::pin!(connection);
    let grace = tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                if e.is_timeout() {
                    stats.time_out(Deadline::Header);
                }
                tracing::debug!(%addr, "connection ended: {e}");
            }
            return;
        }
        deadline = activity.expired(limits) => {
            stats.time_out(deadline);
            tracing::debug!(%addr, deadline = deadline.as_str(), "connection timed out");
            Some(CLOSE_GRACE)
        }
        // Its slot already went to a new connection: no goodbye.
        () = activity.evicted.notified() => {
            tracing::debug!(%addr, "idle connection evicted for a new one");
            return;
        }
        // The server bounds how long stopping may take.
        _ = stop.wait_for(|stop| *stop) => None,
    };
    connection.as_mut().graceful_shutdown();
    match grace {
        Some(grace) => {
            let _ = tokio::time::timeout(grace, connection).await;
        }
        None => {
            let _ = connection.await;
        }
    }
}

/// The handler's service, wrapped: each request counts as in flight until its response body
/// is done, and its body gets the read deadline.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    body_timeout: Duration,
    stats: Arc<ConnectionStats>,
}

type ResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<RequestBody>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<ResponseBody<B>>;
    type Error = S::Error;
    type Future = ResponseFuture<B, S::Error>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let busy = self.activity.begin();
        let (limit, stats) = (self.body_timeout, self.stats.clone());
        let request = request.map(|body| RequestBody::new(body, limit, stats));
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| ResponseBody::new(body, busy)))
        })
    }
}
