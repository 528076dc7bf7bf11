//! One connection to one replica: TCP and TLS within [`Timeouts`], then HTTP/1.1 — and, for
//! each failure, whether the request could have reached the CAS ([`Failure`]), which is what
//! decides if a call may move to another replica.

use std::time::Duration;

use bytes::Bytes;
use custos_ids::spki_of_certificate;
use custos_tls::PinMismatch;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::candidates::Candidate;
use crate::cas::{ClientError, Response};

/// How long connecting to one replica may take before the next is tried.
///
/// TCP: 2 s — an answering host accepts or refuses within a round trip; 2 s leave room for
/// one lost SYN (Linux resends it after 1 s) while a replica that is gone (its SYNs dropped)
/// costs 2 s, not the kernel's two minutes. TLS: 5 s — the handshake includes the CAS's
/// signature and may wait on a loaded CAS; a replica that accepts and never answers costs 5 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP connection.
    pub connect: Duration,
    /// The TLS handshake.
    pub tls_handshake: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            tls_handshake: Duration::from_secs(5),
        }
    }
}

/// Why one attempt at one replica failed, by what the CAS may have seen of the request.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Before the request was written (no connection, no TLS, connection not ready): the CAS
    /// cannot have processed it.
    NotSent(ClientError),
    /// After the request was (or may have been) written: a request that changes state may
    /// have been processed.
    MaybeProcessed(ClientError),
    /// A failure another replica cannot cure: the replica's key is not the pinned one, or the
    /// client's own setup is broken.
    Final(ClientError),
}

/// An open connection to the CAS.
#[derive(Debug)]
pub struct Connection {
    addr: String,
    host: String,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    server_spki: Vec<u8>,
}

/// Opens a connection to `candidate` (HTTP/1.1, kept alive).
pub(crate) async fn open(
    connector: &TlsConnector,
    candidate: &Candidate,
    timeouts: Timeouts,
) -> Result<Connection, Failure> {
    let addr = candidate.to_string();
    let timed_out = |what: &str, limit: Duration| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{what} timed out after {} ms", limit.as_millis()),
        )
    };
    let tcp =
        match tokio::time::timeout(timeouts.connect, TcpStream::connect(candidate.socket)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(source)) => return Err(Failure::NotSent(ClientError::Connect { addr, source })),
            Err(_) => {
                let source = timed_out("connecting", timeouts.connect);
                return Err(Failure::NotSent(ClientError::Connect { addr, source }));
            }
        };
    let _ = tcp.set_nodelay(true);
    let handshake = connector.connect(candidate.server_name(), tcp);
    let tls = match tokio::time::timeout(timeouts.tls_handshake, handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(source)) => {
            return Err(match tls_error(&addr, source) {
                mismatch @ ClientError::PinMismatch { .. } => Failure::Final(mismatch),
                other => Failure::NotSent(other),
            });
        }
        Err(_) => {
            let source = timed_out("the TLS handshake", timeouts.tls_handshake);
            return Err(Failure::NotSent(ClientError::Tls { addr, source }));
        }
    };
    let server_spki = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| spki_of_certificate(c).ok())
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| {
            Failure::NotSent(ClientError::Http {
                addr: addr.clone(),
                reason: e.to_string(),
            })
        })?;
    tokio::spawn(connection);
    Ok(Connection {
        addr,
        host: candidate.entry.clone(),
        sender,
        server_spki,
    })
}

impl Connection {
    /// The replica this connection goes to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ClientError> {
        self.exchange(method, path, body)
            .await
            .map_err(|failure| match failure {
                Failure::NotSent(e) | Failure::MaybeProcessed(e) | Failure::Final(e) => e,
            })
    }

    /// Sends one request and reads the whole answer; a failure says whether the request was
    /// written.
    pub(crate) async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, Failure> {
        let http = |reason: String| ClientError::Http {
            addr: self.addr.clone(),
            reason,
        };
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.host.as_str());
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/yaml");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Failure::Final(http(e.to_string())))?;
        self.sender
            .ready()
            .await
            .map_err(|e| Failure::NotSent(http(e.to_string())))?;
        // hyper hands the request back when it failed before writing any of it: only then is
        // it certain the CAS did not see it.
        let response = match self.sender.try_send_request(request).await {
            Ok(response) => response,
            Err(mut error) => {
                let unsent = error.take_message().is_some();
                let e = http(error.into_error().to_string());
                return Err(if unsent {
                    Failure::NotSent(e)
                } else {
                    Failure::MaybeProcessed(e)
                });
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::MaybeProcessed(http(e.to_string())))?
            .to_bytes();
        Ok(Response {
            addr: self.addr.clone(),
            status,
            body,
            server_spki: self.server_spki.clone(),
            retry_after,
        })
    }
}

/// The handshake's failure: [`ClientError::PinMismatch`] when the pinned-key verifier refused
/// the server's key, else [`ClientError::Tls`].
fn tls_error(addr: &str, source: std::io::Error) -> ClientError {
    let mismatch = PinMismatch::of_handshake(&source).map(|m| (m.expected, m.actual));
    match mismatch {
        Some((expected, actual)) => ClientError::PinMismatch {
            addr: addr.to_owned(),
            expected,
            actual,
        },
        None => ClientError::Tls {
            addr: addr.to_owned(),
            source,
        },
    }
}
