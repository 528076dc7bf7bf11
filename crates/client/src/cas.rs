//! A client of one CAS's client API (`docs/cas.md` § The client API): typed calls on the
//! `custos_protocol::client` types, and raw requests for whatever else.
//!
//! The server is trusted by pin — the SHA-256 of its certificate's public key, learnt by
//! attesting it — never by a name or a CA, so an IP address works as well as a host name.
//! Before a pin exists, [`ServerTrust::AttestationOnly`] accepts any certificate but hands the
//! caller the certificate seen, which the caller must bind through the CAS's evidence before
//! it trusts anything said over that connection.

use std::sync::Arc;

use bytes::Bytes;
use custos_ids::{KeyHash, spki_of_certificate};
use custos_protocol::client::{
    ATTEST_PATH as CAS_ATTEST_PATH, AUDIT_PATH, AuditPage, CasEvidence, HEALTH_PATH, Health,
    PublicValues, SESSIONS_PATH, SessionList, SessionWritten, StoredSession, VERSION_PATH, Version,
    session_path,
};
use custos_protocol::{ErrorBody, ErrorDetail};
use custos_tls::PinMismatch;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::identity::ClientIdentity;

/// Why a call to the CAS failed: before an answer (connection, TLS, HTTP), or by the answer
/// (the CAS's refusal, or an answer that is not the API's).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CAS's key is not the pinned one: another server, or the CAS was re-keyed.
    #[error(
        "CAS {addr}: its key hash is {actual}, expected the pinned {expected} (attest the CAS again if it was re-keyed)"
    )]
    PinMismatch {
        /// The address.
        addr: String,
        /// The pinned key hash.
        expected: KeyHash,
        /// The key hash of the certificate the server presented.
        actual: KeyHash,
    },
    /// The TLS handshake failed.
    #[error("TLS with {addr} failed: {source}")]
    Tls {
        /// The address.
        addr: String,
        /// The TLS error.
        source: std::io::Error,
    },
    /// HTTP failed.
    #[error("HTTP with {addr} failed: {reason}")]
    Http {
        /// The address.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The client identity is unusable.
    #[error("client identity: {0}")]
    Identity(String),
    /// The CAS refused the request (or failed): its [`ErrorBody`].
    #[error("{} {}: {}", status.as_u16(), error.code, error.message)]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The CAS's error, with every problem in `reasons`.
        error: ErrorDetail,
        /// The `Retry-After` header, if any.
        retry_after: Option<String>,
    },
    /// The CAS answered something that is not the API's answer.
    #[error("{addr}: unexpected answer (HTTP {status}): {reason}")]
    Unexpected {
        /// The address.
        addr: String,
        /// The HTTP status.
        status: StatusCode,
        /// What is wrong with it.
        reason: String,
    },
}

/// How the client trusts the CAS.
#[derive(Debug, Clone, Copy)]
pub enum ServerTrust {
    /// Only a certificate whose public key has this hash (the CAS's key hash, learnt by
    /// attesting it: [`crate::attest`]).
    Pinned(KeyHash),
    /// Any certificate: only for fetching evidence that the caller then binds to the
    /// certificate seen ([`Response::server_spki`]).
    AttestationOnly,
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The address of the CAS that answered.
    pub addr: String,
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
    /// The SubjectPublicKeyInfo of the certificate the server presented.
    pub server_spki: Vec<u8>,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

impl Response {
    /// The body as JSON (`Null` if it is not JSON): for looking at the wire itself.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The error the CAS answered, if the body is an [`ErrorBody`].
    pub fn error(&self) -> Option<ErrorDetail> {
        serde_json::from_slice::<ErrorBody>(&self.body)
            .ok()
            .map(|body| body.error)
    }

    /// The answer as `T` when its status is `expected`; else the CAS's error
    /// ([`ClientError::Refused`]), or [`ClientError::Unexpected`] for a body that is neither.
    pub fn decode<T: DeserializeOwned>(&self, expected: StatusCode) -> Result<T, ClientError> {
        let unexpected = |reason: String| ClientError::Unexpected {
            addr: self.addr.clone(),
            status: self.status,
            reason,
        };
        if self.status == expected {
            return serde_json::from_slice(&self.body).map_err(|e| unexpected(e.to_string()));
        }
        match self.error() {
            Some(error) => Err(ClientError::Refused {
                status: self.status,
                error,
                retry_after: self.retry_after.clone(),
            }),
            None => Err(unexpected(format!(
                "expected {expected}: {}",
                String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ))),
        }
    }
}

/// A client of one CAS.
#[derive(Clone)]
pub struct CasClient {
    addr: String,
    connector: TlsConnector,
}

impl std::fmt::Debug for CasClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CasClient")
            .field("addr", &self.addr)
            .finish()
    }
}

impl CasClient {
    /// A client of the CAS at `addr` (`host:port`), presenting `identity` if given.
    pub fn new(
        addr: &str,
        identity: Option<&ClientIdentity>,
        trust: ServerTrust,
    ) -> Result<Self, ClientError> {
        let provider = custos_tls::provider();
        let verifier = match trust {
            ServerTrust::Pinned(pin) => custos_tls::pinned_server_verifier(pin),
            ServerTrust::AttestationOnly => custos_tls::unauthenticated_server_verifier(),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Identity(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match identity {
            Some(id) => builder
                .with_client_auth_cert(vec![id.certificate.clone()], id.key.clone_key())
                .map_err(|e| ClientError::Identity(e.to_string()))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            addr: addr.to_owned(),
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// The address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Opens a connection (HTTP/1.1, kept alive).
    pub async fn connect(&self) -> Result<Connection, ClientError> {
        let tcp = TcpStream::connect(&self.addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        // The name is not checked (the verifier pins the key); it only fills SNI.
        let host = self
            .addr
            .rsplit_once(':')
            .map_or(self.addr.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .unwrap_or_else(|_| ServerName::try_from("custos-cas").expect("valid DNS name"));
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(|source| tls_error(&self.addr, source))?;
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
            .map_err(|e| ClientError::Http {
                addr: self.addr.clone(),
                reason: e.to_string(),
            })?;
        tokio::spawn(connection);
        Ok(Connection {
            addr: self.addr.clone(),
            sender,
            server_spki,
        })
    }

    /// `POST /v1/sessions`: creates the session `yaml` describes.
    pub async fn create_session(&self, yaml: &str) -> Result<SessionWritten, ClientError> {
        self.call(Method::POST, SESSIONS_PATH, Some(yaml), StatusCode::CREATED)
            .await
    }

    /// `PUT /v1/sessions/{name}`: replaces the session `name` by `yaml` (which names its
    /// `predecessor`).
    pub async fn update_session(
        &self,
        name: &str,
        yaml: &str,
    ) -> Result<SessionWritten, ClientError> {
        self.call(Method::PUT, &session_path(name), Some(yaml), StatusCode::OK)
            .await
    }

    /// `GET /v1/sessions/{name}`.
    pub async fn read_session(&self, name: &str) -> Result<StoredSession, ClientError> {
        self.call(Method::GET, &session_path(name), None, StatusCode::OK)
            .await
    }

    /// `GET /v1/sessions?prefix=`: the sessions under `prefix` the caller may read.
    pub async fn list_sessions(&self, prefix: &str) -> Result<SessionList, ClientError> {
        let path = format!("{SESSIONS_PATH}?prefix={}", query_value(prefix));
        self.call(Method::GET, &path, None, StatusCode::OK).await
    }

    /// `GET /v1/values/session=NAME[,secret=S]`: public values of `export_public` secrets.
    pub async fn public_values(
        &self,
        session: &str,
        secret: Option<&str>,
    ) -> Result<PublicValues, ClientError> {
        let mut path = format!("/v1/values/session={session}");
        if let Some(secret) = secret {
            path.push_str(&format!(",secret={secret}"));
        }
        self.call(Method::GET, &path, None, StatusCode::OK).await
    }

    /// `GET /v1/audit`: the events of `session` after `after`, at most `limit`.
    pub async fn audit(
        &self,
        session: &str,
        after: u64,
        limit: usize,
    ) -> Result<AuditPage, ClientError> {
        let path = format!(
            "{AUDIT_PATH}?session={}&after={after}&limit={limit}",
            query_value(session)
        );
        self.call(Method::GET, &path, None, StatusCode::OK).await
    }

    /// `GET /v1/attest?nonce=`: the CAS's evidence over `nonce`, and the SubjectPublicKeyInfo
    /// of the certificate of the connection it came on (what the evidence must bind).
    pub async fn evidence(&self, nonce: &[u8]) -> Result<(CasEvidence, Vec<u8>), ClientError> {
        let path = format!("{CAS_ATTEST_PATH}?nonce={}", hex::encode(nonce));
        let response = self.request(Method::GET, &path, None).await?;
        let evidence = response.decode(StatusCode::OK)?;
        Ok((evidence, response.server_spki))
    }

    /// `GET /v1/version`.
    pub async fn version(&self) -> Result<Version, ClientError> {
        self.call(Method::GET, VERSION_PATH, None, StatusCode::OK)
            .await
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.call(Method::GET, HEALTH_PATH, None, StatusCode::OK)
            .await
    }

    /// One request on a new connection, its answer decoded when it is `expected`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        expected: StatusCode,
    ) -> Result<T, ClientError> {
        let body = body.map(|text| text.as_bytes().to_vec());
        self.request(method, path, body).await?.decode(expected)
    }

    /// One request on a new connection.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ClientError> {
        self.connect().await?.send(method, path, body).await
    }
}

/// An open connection to the CAS.
#[derive(Debug)]
pub struct Connection {
    addr: String,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    server_spki: Vec<u8>,
}

impl Connection {
    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ClientError> {
        let http = |reason: String| ClientError::Http {
            addr: self.addr.clone(),
            reason,
        };
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.addr.as_str());
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/yaml");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| http(e.to_string()))?;
        self.sender.ready().await.map_err(|e| http(e.to_string()))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| http(e.to_string()))?;
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
            .map_err(|e| http(e.to_string()))?
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

/// `text` encoded for a URL query.
fn query_value(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
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
