//! What the client API and the enclave API share below their routes: who is calling
//! ([`Peer`]), reading a request body within a limit, JSON answers (errors included), and
//! the TLS listener that serves them ([`HttpsListener`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use custos_ids::KeyHash;
use custos_serve::{ConnectionLimits, ConnectionStats, RequestBody, Server, Transport};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Who is calling: the connection's address and, with a client certificate, its identity.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The TCP peer address.
    pub addr: SocketAddr,
    /// SHA-256 of the client certificate's SubjectPublicKeyInfo, if one was presented.
    pub client: Option<KeyHash>,
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A JSON error answer, with `Retry-After` when the caller should come back later.
pub(crate) fn error_response(
    status: StatusCode,
    body: &impl Serialize,
    retry_after_secs: Option<u64>,
) -> Response<Full<Bytes>> {
    let mut response = json_response(status, body);
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Why a request body was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Longer than the limit: by its `Content-Length` (`Some`), or found while reading.
    TooLarge { declared: Option<u64> },
    /// The connection failed or timed out while the body was read.
    Unreadable(String),
}

/// The body of `request`, refused when it is longer than `max` bytes: at once when its
/// `Content-Length` says so, else as soon as more arrives.
pub(crate) async fn read_body<B>(request: Request<B>, max: usize) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if let Some(length) = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > max as u64
    {
        return Err(BodyError::TooLarge {
            declared: Some(length),
        });
    }
    match Limited::new(request.into_body(), max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge { declared: None }),
        Err(e) => Err(BodyError::Unreadable(e.to_string())),
    }
}

/// A bound TCP listener that serves HTTPS within connection limits.
pub struct HttpsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    /// The address it listens on (the real port when 0 was asked for).
    pub local_addr: SocketAddr,
}

impl std::fmt::Debug for HttpsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsListener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl HttpsListener {
    /// Binds `addr`; connections will be accepted with `acceptor` within `limits` (counted
    /// in `stats`).
    pub async fn bind(
        addr: SocketAddr,
        acceptor: TlsAcceptor,
        limits: ConnectionLimits,
        stats: Arc<ConnectionStats>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            acceptor,
            limits,
            stats,
            local_addr,
        })
    }

    /// Serves until the process ends; `handler` answers each request and sees the [`Peer`]
    /// (address, and the client certificate's identity if any).
    pub async fn serve<H, F>(self, handler: H)
    where
        H: Fn(Request<RequestBody>, Peer) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
    {
        Server::new(self.listener, Transport::Tls(self.acceptor), self.limits)
            .with_stats(self.stats)
            .serve(move |connection: &custos_serve::Client| {
                let client = connection
                    .certificate
                    .as_ref()
                    .and_then(|cert| KeyHash::of_certificate(cert).ok());
                let peer = Peer {
                    addr: connection.addr,
                    client,
                };
                let handler = handler.clone();
                service_fn(move |request| handler(request, peer))
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &'static [u8], content_length: Option<&str>) -> Request<Full<Bytes>> {
        let mut builder = Request::builder().uri("/");
        if let Some(length) = content_length {
            builder = builder.header(CONTENT_LENGTH, length);
        }
        builder.body(Full::new(Bytes::from_static(body))).unwrap()
    }

    #[tokio::test]
    async fn a_body_is_read_up_to_the_limit_and_refused_beyond_it() {
        let body = read_body(request(b"1234", None), 4).await.unwrap();
        assert_eq!(&body[..], b"1234");
        // A declared length over the limit is refused before anything is read.
        match read_body(request(b"", Some("5")), 4).await {
            Err(BodyError::TooLarge { declared: Some(5) }) => {}
            other => panic!("expected TooLarge by Content-Length, got {other:?}"),
        }
        // An undeclared (or understated) length is refused once more than the limit arrives.
        match read_body(request(b"12345", None), 4).await {
            Err(BodyError::TooLarge { declared: None }) => {}
            other => panic!("expected TooLarge while reading, got {other:?}"),
        }
    }
}
