//! A client of one CAS's client API (`docs/cas.md` § The client API): typed calls on the
//! `custos_protocol::client` types, and raw requests for whatever else. The CAS may be several
//! replicas serving one key: a call goes to one of them and moves on by the rules of
//! [`crate::failover`].
//!
//! The server is trusted by pin — the SHA-256 of its certificate's public key, learnt by
//! attesting it — never by a name or a CA, so an IP address works as well as a host name.
//! Before a pin exists, [`ServerTrust::AttestationOnly`] accepts any certificate but hands the
//! caller the certificate seen, which the caller must bind through the CAS's evidence before
//! it trusts anything said over that connection.

use std::sync::Arc;

use bytes::Bytes;
use custos_ids::KeyHash;
use custos_protocol::client::{
    ATTEST_PATH as CAS_ATTEST_PATH, AUDIT_PATH, AuditPage, CasEvidence, HEALTH_PATH, Health,
    PublicValues, SESSIONS_PATH, SessionList, SessionWritten, StoredSession, VERSION_PATH, Version,
    session_path,
};
use custos_protocol::{ErrorBody, ErrorDetail};
use hyper::{Method, StatusCode};
use rustls::ClientConfig;
use serde::de::DeserializeOwned;
use tokio_rustls::TlsConnector;

use crate::candidates::{Candidate, RecentFailures, StartAt, split_list};
use crate::connection::Timeouts;
use crate::failover::Attempt;
use crate::identity::ClientIdentity;

/// Why a call to the CAS failed: before an answer (connection, TLS, HTTP), or by the answer
/// (the CAS's refusal, or an answer that is not the API's).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address list is unusable.
    #[error("{0}")]
    Address(String),
    /// The TCP connection failed (or the address did not resolve).
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
    /// The connection failed after a request that changes state was sent: the CAS may have
    /// processed it, so it was not sent to another replica.
    #[error(
        "{addr}: the connection failed after the {method} {path} request was sent ({reason}); the CAS may have processed it, so it was not retried at another replica: check whether it took effect before retrying"
    )]
    Interrupted {
        /// The replica.
        addr: String,
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
        /// What failed.
        reason: String,
    },
    /// Every replica failed: each with its reason, in the order they were tried.
    #[error("no CAS replica could serve the request ({} tried): {}", attempts.len(), attempts.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    AllFailed {
        /// Each replica tried, and why it failed.
        attempts: Vec<Attempt>,
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

/// A client of one CAS: one address, or the replicas of one CAS (a list, or a name that
/// resolves to several addresses), all trusted the same way.
#[derive(Clone)]
pub struct CasClient {
    entries: Vec<String>,
    /// A client of this one candidate only (attesting each replica), instead of `entries`.
    only: Option<Candidate>,
    connector: TlsConnector,
    start_at: StartAt,
    timeouts: Timeouts,
    failures: RecentFailures,
}

impl std::fmt::Debug for CasClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CasClient")
            .field("addr", &self.addr())
            .field("start_at", &self.start_at)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl CasClient {
    /// A client of the CAS at `addr` — `host:port`, or the replicas of one CAS as
    /// `host:port,host:port,...` (a name that resolves to several addresses makes each a
    /// replica) — presenting `identity` if given.
    pub fn new(
        addr: &str,
        identity: Option<&ClientIdentity>,
        trust: ServerTrust,
    ) -> Result<Self, ClientError> {
        let entries = split_list(addr).map_err(ClientError::Address)?;
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
            entries,
            only: None,
            connector: TlsConnector::from(Arc::new(config)),
            start_at: StartAt::default(),
            timeouts: Timeouts::default(),
            failures: RecentFailures::default(),
        })
    }

    /// The same client, starting its calls where `start_at` says.
    #[must_use]
    pub fn start_at(mut self, start_at: StartAt) -> Self {
        self.start_at = start_at;
        self
    }

    /// The same client, with other connection timeouts.
    #[must_use]
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The same client, bound to `candidate` alone (no failover).
    #[must_use]
    pub fn only(&self, candidate: Candidate) -> Self {
        Self {
            only: Some(candidate),
            ..self.clone()
        }
    }

    /// The address, or the replicas' addresses separated by commas.
    pub fn addr(&self) -> String {
        match &self.only {
            Some(candidate) => candidate.to_string(),
            None => self.entries.join(","),
        }
    }

    /// The list's entries (`host:port`).
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    pub(crate) fn only_candidate(&self) -> Option<&Candidate> {
        self.only.as_ref()
    }

    pub(crate) fn start_at_setting(&self) -> StartAt {
        self.start_at
    }

    pub(crate) fn timeouts_setting(&self) -> Timeouts {
        self.timeouts
    }

    pub(crate) fn recent_failures(&self) -> &RecentFailures {
        &self.failures
    }

    pub(crate) fn connector(&self) -> &TlsConnector {
        &self.connector
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
        let (evidence, spki, _) = self.evidence_from(nonce).await?;
        Ok((evidence, spki))
    }

    /// [`CasClient::evidence`], and the replica that answered.
    pub(crate) async fn evidence_from(
        &self,
        nonce: &[u8],
    ) -> Result<(CasEvidence, Vec<u8>, String), ClientError> {
        let path = format!("{CAS_ATTEST_PATH}?nonce={}", hex::encode(nonce));
        let response = self.request(Method::GET, &path, None).await?;
        let evidence = response.decode(StatusCode::OK)?;
        Ok((evidence, response.server_spki, response.addr))
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

    /// One request (on a new connection, failed over by [`crate::failover`]'s rules), its
    /// answer decoded when it is `expected`.
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
}

/// `text` encoded for a URL query.
fn query_value(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
