//! The enclave API (`docs/enclave-api.md`): where `custos-run` attests a
//! service and, once allowed, receives its configuration.
//!
//! 1. `POST /v1/enclave/challenge` `{"config_id"}` → `{"nonce"}`: 32 bytes, stateless (time,
//!    randomness and a MAC binding the config id), valid for `enclave.nonce_ttl_secs`,
//!    redeemable once ([`nonce`]). Any well-formed config id gets one: whether it exists is
//!    for the attest request to say, so challenges cannot enumerate config ids.
//! 2. `POST /v1/enclave/attest` [`AttestRequest`], over a TLS connection whose client
//!    certificate holds the ephemeral key named in the runtime data. The CAS checks, in
//!    order, stopping at the first group that fails:
//!    - the channel: the runtime data parse, their nonce is redeemed for this config id, and
//!      their key is the TLS client's key — so the configuration goes to the holder of the
//!      key the evidence binds;
//!    - the evidence, by the session's `security.attestation.mode`: `hardware` ([`hardware`]),
//!      `maa` ([`maa`]) or `none` (not looked at);
//!    - the service's policy ([`policy`]), every check evaluated.
//! 3. Allowed: the secrets the service refers to are resolved ([`values`], [`azure`]) and
//!    rendered ([`render`]) into a [`Delivery`]. Denied: 403 `attestation_denied` with every
//!    failed check in `reasons`. Both are recorded in the audit log — but only for requests
//!    that redeemed a valid nonce: anything refused before that is counted and logged,
//!    rate-limited ([`rejections`]), so garbage cannot grow the store.
//!
//! Nothing here logs, records or returns a secret value: reasons name checks, measurements,
//! keys' hashes, secrets' names and Azure's errors.

pub mod azure;
pub mod hardware;
pub mod maa;
pub mod nonce;
pub mod policy;
pub mod rejections;
pub mod render;
pub mod renewal;
pub mod unverified;
pub mod values;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use custos_attestation::{Claims, EvidenceKind, UnixTime};
use custos_ids::KeyHash;
use custos_ids::jwk::{JwkError, P256Members};
use custos_policy::{
    AttestationMode, MAX_NAME_LEN, MAX_SESSION_DEPTH, ServiceName, Session, SessionName,
};
use custos_protocol::enclave::{
    ATTEST_PATH, AttestRequest, CHALLENGE_PATH, ChallengeRequest, ChallengeResponse, Delivery,
    RuntimeData,
};
use custos_serve::client_address;
use http_body_util::Full;
use hyper::body::Body;
use hyper::{Method, Request, Response, StatusCode};
use tokio_rustls::TlsAcceptor;

use crate::audit::{AuditAction, AuditEvent, EnclaveFacts, Outcome};
use crate::config::{Config, EnclaveSettings};
use crate::http::{BodyError, HttpsListener, Peer, json_response, read_body};
use crate::http_error::HttpError;
use crate::metrics::Metrics;
use crate::parsed::ParsedSessions;
use crate::ratelimit::RateLimiter;
use crate::store::{SessionRecord, Store};
use crate::tls::CasIdentity;

use self::azure::Azure;
use self::hardware::HardwareVerifier;
use self::maa::MaaVerifier;
use self::nonce::{NonceDenial, NonceKey, Nonces, RedeemError, unix_ms};
use self::rejections::Rejections;
use self::unverified::Unverified;

/// Why the enclave API could not be set up. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A configured file could not be read or used.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// DCAP could not be set up.
    #[error("DCAP {what}: {source}")]
    Dcap {
        /// The root CA, collateral file or PCCS.
        what: String,
        /// Why.
        source: custos_attestation::dcap::DcapError,
    },
    /// A trusted platform key entry is neither a key id nor a PEM public key file.
    #[error("trusted platform key {entry:?}: {reason}")]
    PlatformKey {
        /// The entry.
        entry: String,
        /// Why.
        reason: String,
    },
    /// A LAS named in `enclave.trusted_las` did not give its platform key.
    #[error("LAS {url}: cannot get its platform key (GET /v1/platform): {reason}")]
    Las {
        /// The LAS URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Azure access could not be set up.
    #[error("Azure: {0}")]
    Azure(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The enclave API listener, ready to serve.
pub struct EnclaveServer {
    listener: HttpsListener,
    api: Arc<EnclaveApi>,
    /// The address it listens on.
    pub local_addr: SocketAddr,
}

impl std::fmt::Debug for EnclaveServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnclaveServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// What the enclave API shares with the rest of the CAS.
#[derive(Debug, Clone, Copy)]
pub struct Shared<'a> {
    /// The store sessions and secrets are read from and attestations recorded in.
    pub store: &'a Store,
    /// The certificate both listeners serve.
    pub identity: &'a Arc<CasIdentity>,
    /// The key challenge nonces are MACed with (derived from the master key).
    pub nonce_key: &'a NonceKey,
    /// The counters `/metrics` shows.
    pub metrics: &'a Arc<Metrics>,
}

impl EnclaveServer {
    /// Sets up verification and Azure access and binds `config.enclave.listen`, serving with
    /// the certificate, store, nonce key and counters of `shared` — `&cas` for a started
    /// [`crate::server::Cas`], which converts into [`Shared`], so this module need not know it.
    pub async fn start<'a>(
        config: &Config,
        shared: impl Into<Shared<'a>>,
    ) -> Result<Self, SetupError> {
        let shared = shared.into();
        let api = Arc::new(
            EnclaveApi::from_config(
                config,
                shared.store.clone(),
                shared.metrics.clone(),
                shared.nonce_key.clone(),
            )
            .await?,
        );
        let addr = config.enclave.listen;
        let listener = HttpsListener::bind(
            addr,
            TlsAcceptor::from(crate::tls::enclave_server_config(shared.identity)),
            config.limits.connections(),
            shared.metrics.enclave_connections.clone(),
        )
        .await
        .map_err(|source| SetupError::Listen { addr, source })?;
        Ok(Self {
            local_addr: listener.local_addr,
            listener,
            api,
        })
    }

    /// Serves until the process ends.
    pub async fn serve(self) {
        let api = self.api;
        self.listener
            .serve(move |request, peer| api.clone().handle(request, peer))
            .await;
    }
}

/// An attestation denied: 403 `attestation_denied` with every failed check.
fn denied(reasons: Vec<String>) -> HttpError {
    HttpError::new(
        StatusCode::FORBIDDEN,
        "attestation_denied",
        format!("{} check(s) failed", reasons.len()),
    )
    .with_reasons(reasons)
}

/// A request body or config id that is not what the enclave API takes.
fn bad_request(message: impl Into<String>) -> HttpError {
    HttpError::bad_request("bad_request", message)
}

/// The enclave API's state.
#[derive(Debug)]
pub struct EnclaveApi {
    store: Store,
    nonces: Nonces,
    /// Challenges per client address.
    challenge_limiter: RateLimiter<IpAddr>,
    /// Attest requests per client address.
    attest_limiter: RateLimiter<IpAddr>,
    /// Attest requests per config id, once their nonce checks out.
    config_id_limiter: RateLimiter<String>,
    /// The limits, for the 429 messages.
    limits: EnclaveSettings,
    rejections: Rejections,
    hardware: HardwareVerifier,
    maa: MaaVerifier,
    azure: Azure,
    sessions: ParsedSessions,
    metrics: Arc<Metrics>,
    max_body: usize,
}

/// What an attestation established, for the audit log.
struct Attested {
    session: Arc<Session>,
    service: String,
    hash: String,
    facts: Option<EnclaveFacts>,
}

/// An attestation that did not end in a delivery.
struct Failure {
    error: HttpError,
    /// What is known by then, for the audit log.
    known: Option<Attested>,
}

impl From<HttpError> for Failure {
    fn from(error: HttpError) -> Self {
        Self { error, known: None }
    }
}

impl EnclaveApi {
    /// The API over `store` as `config` sets it up, with nonces MACed under `nonce_key`.
    pub async fn from_config(
        config: &Config,
        store: Store,
        metrics: Arc<Metrics>,
        nonce_key: NonceKey,
    ) -> Result<Self, SetupError> {
        let azure = Azure::from_config(&config.azure)?;
        let e = &config.enclave;
        if let Some(n) = e.max_pending_nonces {
            tracing::warn!(
                max_pending_nonces = n,
                "enclave.max_pending_nonces is deprecated and ignored: challenges keep no state now; enclave.max_redeemed_nonces bounds the nonces remembered"
            );
        }
        Ok(Self {
            store,
            nonces: Nonces::new(
                nonce_key,
                Duration::from_secs(e.nonce_ttl_secs),
                e.max_redeemed_nonces,
            ),
            challenge_limiter: RateLimiter::new(e.requests_per_second, e.burst),
            attest_limiter: RateLimiter::new(e.attests_per_second, e.attest_burst),
            config_id_limiter: RateLimiter::new(
                e.attests_per_second_per_config_id,
                e.attest_burst_per_config_id,
            ),
            limits: e.clone(),
            rejections: Rejections::new(metrics.clone()),
            hardware: HardwareVerifier::from_config(config).await?,
            maa: MaaVerifier::new(
                azure.http_options(),
                maa::SelfCheck {
                    enabled: config.maa.self_check,
                    trusted: config
                        .maa
                        .trusted_enclaves()
                        .map_err(|e| SetupError::Azure(e.to_string()))?,
                },
            ),
            azure,
            sessions: ParsedSessions::default(),
            metrics,
            max_body: config.limits.max_body_bytes,
        })
    }

    /// Answers one request.
    pub async fn handle<B>(
        self: Arc<Self>,
        request: Request<B>,
        peer: Peer,
    ) -> Result<Response<Full<Bytes>>, Infallible>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (label, result) = match (request.method(), request.uri().path()) {
            (&Method::POST, CHALLENGE_PATH) => {
                ("enclave_challenge", self.challenge(request, &peer).await)
            }
            (&Method::POST, ATTEST_PATH) => ("enclave_attest", self.attest(request, &peer).await),
            (_, CHALLENGE_PATH | ATTEST_PATH) => (
                "method_not_allowed",
                Err(HttpError::method_not_allowed(request.method(), "POST")),
            ),
            (_, path) => (
                "not_found",
                Err(HttpError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no such endpoint on the enclave API: {path}"),
                )),
            ),
        };
        let response = result.unwrap_or_else(|e| e.response());
        self.metrics.request(label, response.status().as_u16());
        Ok(response)
    }

    async fn body_json<B, T>(&self, request: Request<B>) -> Result<T, HttpError>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
        T: serde::de::DeserializeOwned,
    {
        let max = self.max_body;
        let bytes = read_body(request, max).await.map_err(|e| match e {
            BodyError::TooLarge { .. } => HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is larger than {max} bytes"),
            ),
            BodyError::Unreadable(e) => bad_request(format!("cannot read the request body: {e}")),
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| bad_request(format!("the request body is not valid: {e}")))
    }

    /// The stored session and service `config_id` names.
    fn lookup(&self, config_id: &str) -> Result<(SessionRecord, Arc<Session>, String), HttpError> {
        let not_found = || unknown_config_id(config_id);
        let (session_name, service) = config_id.rsplit_once('/').ok_or_else(not_found)?;
        if session_name.is_empty() || service.is_empty() {
            return Err(not_found());
        }
        let record = self
            .store
            .read()
            .and_then(|r| r.session(session_name))
            .map_err(store_error)?
            .ok_or_else(not_found)?;
        let session = self.sessions.get(&record).map_err(|_| {
            tracing::error!(session = %record.name, "stored session no longer parses");
            HttpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "stored_session_invalid",
                format!("the stored session {} does not parse any more", record.name),
            )
        })?;
        if session.service(service).is_none() {
            return Err(not_found());
        }
        Ok((record, session, service.to_owned()))
    }

    async fn challenge<B>(
        &self,
        request: Request<B>,
        peer: &Peer,
    ) -> Result<Response<Full<Bytes>>, HttpError>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let ip = peer.addr.ip();
        let refuse = |reason: &'static str, config_id: Option<&str>, e: HttpError| {
            self.rejections
                .record("challenge", reason, ip, config_id, e.message());
            e
        };
        if let Err(wait) = self
            .challenge_limiter
            .check(&client_address(ip), Instant::now())
        {
            self.metrics.rate_limited();
            let e = rate_limited(
                wait,
                format!(
                    "too many challenges from this address: this CAS allows {} per second per client address (burst {}; enclave.requests_per_second, enclave.burst)",
                    self.limits.requests_per_second, self.limits.burst
                ),
            );
            return Err(refuse("rate_limited_address", None, e));
        }
        let ChallengeRequest { config_id } = self
            .body_json(request)
            .await
            .map_err(|e| refuse(e.code(), None, e))?;
        // Only the form is checked: whether the session and service exist is for the attest
        // request to say, so challenges cannot be used to enumerate config ids.
        check_config_id(&config_id).map_err(|e| refuse(e.code(), Some(&config_id), e))?;
        let nonce = self
            .nonces
            .issue(&config_id, unix_ms(SystemTime::now()))
            .map_err(|e| {
                HttpError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "nonce_failed",
                    e.to_string(),
                )
            })?;
        Ok(json_response(StatusCode::OK, &ChallengeResponse { nonce }))
    }

    async fn attest<B>(
        &self,
        request: Request<B>,
        peer: &Peer,
    ) -> Result<Response<Full<Bytes>>, HttpError>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let ip = peer.addr.ip();
        let refuse = |reason: &'static str, config_id: Option<&str>, e: HttpError| {
            self.rejections.record(
                "attest",
                reason,
                ip,
                config_id,
                &format!("{}; {}", e.message(), e.reasons().join("; ")),
            );
            e
        };
        if let Err(wait) = self
            .attest_limiter
            .check(&client_address(ip), Instant::now())
        {
            self.metrics.rate_limited();
            let e = rate_limited(
                wait,
                format!(
                    "too many attest requests from this address: this CAS allows {} per second per client address (burst {}; enclave.attests_per_second, enclave.attest_burst)",
                    self.limits.attests_per_second, self.limits.attest_burst
                ),
            );
            return Err(refuse("rate_limited_address", None, e));
        }
        let request: AttestRequest = self
            .body_json(request)
            .await
            .map_err(|e| refuse(e.code(), None, e))?;
        let config_id = request.config_id.as_str();
        check_config_id(config_id).map_err(|e| refuse(e.code(), Some(config_id), e))?;

        // The nonce: until one this CAS issued for this config id is redeemed, nothing is
        // audited — anyone can send such requests.
        let runtime: RuntimeData = serde_json::from_slice(&request.runtime_data).map_err(|e| {
            let e = denied(vec![format!(
                "runtime_data: expected JSON {{\"nonce\", \"jwk\"}}, actual: {e}"
            )]);
            refuse("bad_runtime_data", Some(config_id), e)
        })?;
        let key_reasons = check_client_key(&runtime, peer);
        let now_ms = unix_ms(SystemTime::now());
        let denied = |denial: NonceDenial| {
            let mut reasons = vec![denial.to_string()];
            reasons.extend(key_reasons.iter().cloned());
            refuse(denial.label(), Some(config_id), denied(reasons))
        };
        let verified = self
            .nonces
            .verify(&runtime.nonce, config_id, now_ms)
            .map_err(denied)?;
        // Limited before redeeming, so a limited runtime may retry with the same nonce.
        if let Err(wait) = self
            .config_id_limiter
            .check(&config_id.to_owned(), Instant::now())
        {
            self.metrics.rate_limited();
            let e = rate_limited(
                wait,
                format!(
                    "too many attest requests for config id {config_id:?}: this CAS allows {} per second per config id (burst {}; enclave.attests_per_second_per_config_id, enclave.attest_burst_per_config_id)",
                    self.limits.attests_per_second_per_config_id,
                    self.limits.attest_burst_per_config_id
                ),
            );
            return Err(refuse("rate_limited_config_id", Some(config_id), e));
        }
        match self.nonces.redeem(verified, now_ms) {
            Ok(()) => {}
            Err(RedeemError::Denied(denial)) => return Err(denied(denial)),
            Err(full @ RedeemError::Full { .. }) => {
                let e = HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", full.to_string())
                    .retry_after(1);
                return Err(refuse("redeemed_nonces_full", Some(config_id), e));
            }
        }
        // Replicas sharing the store redeem it once among them (the embedded store: no-op).
        let expires_ms = self.nonces.expires_ms(verified);
        match self.store.redeem_nonce(&verified.id(), expires_ms) {
            Ok(true) => {}
            Ok(false) => return Err(denied(NonceDenial::Replayed)),
            Err(e) => return Err(refuse("store_unavailable", Some(config_id), store_error(e))),
        }

        // Redeemed: from here every answer for a known config id is audited.
        let outcome = self
            .attest_redeemed(&request, key_reasons, UnixTime::now())
            .await;
        let (known, result) = match outcome {
            Ok((attested, delivery)) => (Some(attested), Ok(delivery)),
            Err(Failure { error, known }) => (known, Err(error)),
        };
        match &known {
            Some(known) => self.record(config_id, peer, known, &result).await,
            // Nothing to attach an audit event to (an unknown config id).
            None => {
                if let Err(e) = &result {
                    refuse(e.code(), Some(config_id), e.clone());
                }
            }
        }
        result.map(|delivery| json_response(StatusCode::OK, &delivery))
    }

    /// The whole check and delivery of a request whose nonce was redeemed, as of `now`;
    /// `key_reasons` are the failed client key checks.
    async fn attest_redeemed(
        &self,
        request: &AttestRequest,
        key_reasons: Vec<String>,
        now: UnixTime,
    ) -> Result<(Attested, Delivery), Failure> {
        let config_id = request.config_id.as_str();
        let (record, session, service_name) = self.lookup(config_id)?;
        let mut known = Attested {
            session: session.clone(),
            service: service_name.clone(),
            hash: record.hash.clone(),
            facts: None,
        };
        let mode = session.security.attestation.mode;
        let deny = |reasons: Vec<String>, known: Attested| {
            self.metrics.attestation(mode.as_str(), "denied");
            Failure {
                error: denied(reasons),
                known: Some(known),
            }
        };

        // The channel: the nonce is redeemed; the runtime data name the TLS client's key.
        if !key_reasons.is_empty() {
            return Err(deny(key_reasons, known));
        }

        // The evidence, then the policy. Until the evidence is verified, all the audit log
        // can say is what was offered.
        let Some(service) = session.service(&service_name) else {
            return Err(unknown_config_id(config_id).into());
        };
        known.facts = Some(offered(&request.evidence.kind));
        if mode != AttestationMode::None {
            let attestation = &session.security.attestation;
            let claims = match self.verify_evidence(mode, request, attestation, now).await {
                Ok(claims) => claims,
                Err(unverified) => return Err(deny(vec![unverified.to_string()], known)),
            };
            known.facts = Some(facts(&claims));
            let decision = custos_attestation::policy::evaluate(
                &claims,
                &policy::service_policy(attestation, service),
            );
            if !decision.is_allowed() {
                return Err(deny(decision.reasons(), known));
            }
        }

        // Allowed: the values it refers to, renewed where due, rendered.
        let delivery = match self.deliver(&session, service).await {
            Ok(delivery) => delivery,
            Err(error) => {
                self.metrics.attestation(mode.as_str(), "failed");
                return Err(Failure {
                    error,
                    known: Some(known),
                });
            }
        };
        self.metrics.attestation(mode.as_str(), "allowed");
        Ok((known, delivery))
    }

    /// Verifies the evidence of `request` as `mode` (`hardware` or `maa`) says.
    async fn verify_evidence(
        &self,
        mode: AttestationMode,
        request: &AttestRequest,
        attestation: &custos_policy::AttestationPolicy,
        now: UnixTime,
    ) -> Result<Claims, Unverified> {
        let kind = request.evidence.kind.parse::<EvidenceKind>()?;
        let (evidence, runtime_data) = (&request.evidence.quote, &request.runtime_data);
        match mode {
            AttestationMode::Maa => Ok(self
                .maa
                .verify(
                    kind,
                    evidence,
                    runtime_data,
                    attestation,
                    &self.hardware,
                    now,
                )
                .await?),
            AttestationMode::Hardware | AttestationMode::None => {
                self.hardware
                    .verify(kind, evidence, runtime_data, attestation, now)
                    .await
            }
        }
    }

    async fn deliver(
        &self,
        session: &Arc<Session>,
        service: &custos_policy::Service,
    ) -> Result<Delivery, HttpError> {
        let names = values::referenced(session, service);
        let not_renewed = renewal::renew_due(
            &self.store,
            session,
            &names,
            time::OffsetDateTime::now_utc(),
        )
        .await;
        let (mut resolved, pending) = {
            let read = self.store.read().map_err(store_error)?;
            values::resolve_local(session, &names, &read, &not_renewed).map_err(value_error)?
        };
        for item in pending {
            let value = self
                .azure
                .resolve(session, item.secret, &self.store)
                .await
                .map_err(value_error)?;
            resolved.insert(item.secret.name.as_str().to_owned(), value);
        }
        render::delivery(session, service, &resolved).map_err(|failures| {
            HttpError::internal(
                "render_failed",
                format!(
                    "the configuration could not be rendered: {} placeholder(s) failed",
                    failures.len()
                ),
            )
            .with_reasons(failures.iter().map(ToString::to_string).collect())
        })
    }

    async fn record(
        &self,
        config_id: &str,
        peer: &Peer,
        known: &Attested,
        result: &Result<Delivery, HttpError>,
    ) {
        let outcome = match result {
            Ok(_) => Outcome::Allowed,
            Err(e) => e.outcome(),
        };
        // Client text (the config id, reasons quoting it) only as escaped (`?`) fields.
        match result {
            // One line per start would dominate the log at scale: the audit log has them all.
            Ok(_) => tracing::debug!(
                config_id = ?config_id,
                mrenclave = known
                    .facts
                    .as_ref()
                    .and_then(|f| f.mrenclave.as_deref())
                    .unwrap_or("-"),
                verified_by = known.facts.as_ref().map_or("-", |f| f.verified_by.as_str()),
                "attested: configuration delivered"
            ),
            Err(e) => tracing::warn!(
                config_id = ?config_id,
                code = e.code(),
                message = ?e.message(),
                reasons = ?e.reasons(),
                "attestation refused"
            ),
        }
        let mut event =
            AuditEvent::new(crate::audit::now_ms(), AuditAction::EnclaveAttest, outcome);
        event.session = Some(known.session.name.to_string());
        event.service = Some(known.service.clone());
        event.client = peer.client.map(|c| c.to_string());
        event.peer = Some(peer.addr.ip().to_string());
        event.hash = Some(known.hash.clone());
        event.enclave = known.facts.clone();
        self.store.record(event).await;
    }
}

/// The client key check: the runtime data's key is the TLS client certificate's, so the
/// delivery goes only to the holder of the key the evidence binds.
fn check_client_key(runtime: &RuntimeData, peer: &Peer) -> Vec<String> {
    match jwk_key_id(&runtime.jwk) {
        Err(reason) => vec![format!("runtime_data.jwk: {reason}")],
        Ok(id) if Some(id) != peer.client => vec![format!(
            "client key: expected the TLS client certificate's key to be the runtime data's jwk (key hash {id}), actual key hash {}",
            peer.client
                .map_or_else(|| "none".to_owned(), |c| c.to_string())
        )],
        Ok(_) => Vec::new(),
    }
}

/// Longest config id: a session name of the most and longest components, `/`, a service name.
const MAX_CONFIG_ID_LEN: usize = MAX_SESSION_DEPTH * (MAX_NAME_LEN + 1) + MAX_NAME_LEN;

/// Checks the form of a config id (`<session name>/<service name>`, as the session language
/// allows them), not whether it exists.
fn check_config_id(config_id: &str) -> Result<(), HttpError> {
    let bad = |why: String| {
        let shown: String = config_id.chars().take(160).collect();
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "bad_config_id",
            format!("config id {shown:?}: {why} (expected <session name>/<service name>)"),
        )
    };
    if config_id.len() > MAX_CONFIG_ID_LEN {
        return Err(bad(format!(
            "{} bytes long, at most {MAX_CONFIG_ID_LEN} allowed",
            config_id.len()
        )));
    }
    let (session, service) = config_id
        .rsplit_once('/')
        .ok_or_else(|| bad("no `/`".into()))?;
    session
        .parse::<SessionName>()
        .map_err(|e| bad(format!("session name: {e}")))?;
    service
        .parse::<ServiceName>()
        .map_err(|e| bad(format!("service name: {e}")))?;
    Ok(())
}

/// A 429 answer after `wait`, naming the limit in `message`.
fn rate_limited(wait: Duration, message: String) -> HttpError {
    let secs = wait.as_secs() + 1;
    HttpError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("{message}; retry in {secs} s"),
    )
    .retry_after(secs)
}

/// The identity (SHA-256 of the SubjectPublicKeyInfo) of a P-256 JWK: what the TLS client
/// certificate carrying the same key has as [`KeyHash`].
fn jwk_key_id(jwk: &custos_protocol::enclave::Jwk) -> Result<KeyHash, JwkError> {
    let spki = custos_ids::jwk::p256_spki_of(P256Members {
        kty: &jwk.kty,
        crv: &jwk.crv,
        x: &jwk.x,
        y: &jwk.y,
    })?;
    Ok(KeyHash::of_spki(&spki))
}

fn unknown_config_id(config_id: &str) -> HttpError {
    HttpError::new(
        StatusCode::NOT_FOUND,
        "unknown_config_id",
        format!("config id {config_id:?}: no such session and service"),
    )
}

/// What is known of evidence before (or without) verifying it: its claimed type.
fn offered(kind: &str) -> EnclaveFacts {
    EnclaveFacts {
        evidence: kind.chars().take(32).collect(),
        verified_by: "none".into(),
        mrenclave: None,
        mrsigner: None,
        debug: None,
        platform: None,
    }
}

fn facts(claims: &Claims) -> EnclaveFacts {
    EnclaveFacts {
        evidence: claims.evidence().as_str().into(),
        verified_by: claims.verified_by().name().into(),
        mrenclave: Some(claims.mrenclave().to_hex()),
        mrsigner: Some(claims.mrsigner().to_hex()),
        debug: Some(claims.debug()),
        platform: claims.platform().map(ToString::to_string),
    }
}

fn store_error(e: crate::store::StoreError) -> HttpError {
    HttpError::from(e)
}

fn value_error(e: values::ValueError) -> HttpError {
    match e {
        values::ValueError::Unavailable { .. } => {
            HttpError::new(StatusCode::BAD_GATEWAY, "secret_unavailable", e.to_string())
        }
        values::ValueError::Invalid { .. } => HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "secret_error",
            e.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests;
