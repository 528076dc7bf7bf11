//! A small client of the CAS client API (feature `client`): for the `custos` CLI, the tests
//! and the benchmark. Not part of the CAS server.
//!
//! The server is trusted by pin — the SHA-256 of its certificate's public key, learnt by
//! attesting it — never by a name or a CA, so an IP address works as well as a host name.
//! Before a pin exists, [`ServerTrust::AttestationOnly`] accepts any certificate but hands the
//! caller the certificate seen, which the caller must bind through the CAS's evidence before
//! it trusts anything said over that connection.

use std::sync::Arc;

use bytes::Bytes;
use custos_ids::{KeyHash, spki_of_certificate};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why a request failed before an HTTP answer arrived.
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
    /// The TLS handshake failed (for a pinned CAS: its key is not the pinned one).
    #[error("TLS with {addr} failed: {source}{}", rekey_hint(source))]
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
}

/// A CAS that is not the pinned one may simply have been re-keyed: say what to do.
///
/// Recognised by [`custos_tls::PinMismatch`]'s text: the verifier reports it as rustls's
/// `General` error so it reads well (a typed error would print as `Debug`); `tests/api.rs`
/// checks the two stay together.
fn rekey_hint(source: &std::io::Error) -> &'static str {
    if source.to_string().contains("expected the pinned") {
        " (attest the CAS again if it was re-keyed)"
    } else {
        ""
    }
}

/// How the client trusts the CAS.
#[derive(Debug, Clone, Copy)]
pub enum ServerTrust {
    /// Only a certificate whose public key has this hash.
    Pinned(KeyHash),
    /// Any certificate: only for fetching evidence that the caller then binds to the
    /// certificate seen ([`Response::server_spki`]).
    AttestationOnly,
}

/// A client certificate and its key.
#[derive(Debug)]
pub struct ClientIdentity {
    /// The certificate, DER.
    pub certificate: CertificateDer<'static>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        Self {
            certificate: self.certificate.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl ClientIdentity {
    /// A new P-256 key with a self-signed certificate naming `common_name`.
    pub fn generate(common_name: &str) -> Result<Self, ClientError> {
        let error = |e: rcgen::Error| ClientError::Identity(e.to_string());
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(error)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(error)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - std::time::Duration::from_secs(3600);
        params.not_after = now + std::time::Duration::from_secs(20 * 365 * 24 * 3600);
        let cert = params.self_signed(&key).map_err(error)?;
        Ok(Self {
            certificate: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        })
    }

    /// The identity the CAS sees: SHA-256 of the certificate's public key.
    pub fn id(&self) -> Result<KeyHash, ClientError> {
        KeyHash::of_certificate(&self.certificate).map_err(|e| ClientError::Identity(e.to_string()))
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
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
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
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
            .map_err(|source| ClientError::Tls {
                addr: self.addr.clone(),
                source,
            })?;
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
            status,
            body,
            server_spki: self.server_spki.clone(),
            retry_after,
        })
    }
}
