//! The client API (`docs/cas.md` § The client API): routes and access checks. Answers are
//! `custos_protocol::client` types; errors are [`HttpError`]s.
//!
//! Every handler sees the connection's [`Peer`]: its address and, when it presented a
//! certificate, its [`KeyHash`]. Access decisions use the stored session's access policy
//! and its creator; a denial is answered 403, names the list that did not admit the caller,
//! and is recorded in the audit log.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use custos_ids::KeyHash;
use custos_policy::{AccessPolicy, Principal, Session};
use custos_protocol::client::{
    AuditPage, CasEvidence, Health, PublicValue, PublicValues, SessionList, SessionWritten,
    StoredSession, Version,
};
use custos_protocol::enclave::EvidenceBytes;
use custos_serve::client_address;
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::Semaphore;

use crate::attest::{SelfEvidence, runtime_data};
use crate::audit::{AuditAction, AuditEvent, Outcome};
use crate::config::{ConfigError, Limits, SessionSettings};
use crate::http::{BodyError, Peer, json_response, read_body};
use crate::http_error::HttpError;
use crate::keygen::{Busy, KeyGenerationGate};
use crate::log_throttle::LogThrottle;
use crate::metrics::Metrics;
use crate::parsed::ParsedSessions;
use crate::ratelimit::RateLimiter;
use crate::secrets::{self, ImportResolver, SecretValue, SecretValues};
use crate::store::{SessionRecord, Store, StoreError, WriteTx};

impl From<StoreError> for HttpError {
    /// A database that cannot be reached is `store_unavailable` (retry, maybe at another
    /// replica); anything else the store refused is `store_error`. Both are 503.
    fn from(e: StoreError) -> Self {
        tracing::error!(error = ?e.to_string(), "store error");
        match e {
            StoreError::Unavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            )
            .retry_after(1),
            _ => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_error",
                e.to_string(),
            ),
        }
    }
}

/// An audit event, now, of `action` on `session` by the caller at `peer` (with its
/// certificate's identity, if any).
fn caller_event(action: AuditAction, outcome: Outcome, session: &str, peer: &Peer) -> AuditEvent {
    let mut event = AuditEvent::new(crate::audit::now_ms(), action, outcome);
    event.session = Some(session.to_owned());
    event.client = peer.client.map(|c| c.to_string());
    event.peer = Some(peer.addr.ip().to_string());
    event
}

/// Writes a session version — its record, its generated values (sealed with that record's
/// revision and hash) and the audit event of who wrote it — into one transaction.
fn write_version(
    tx: &mut WriteTx<'_>,
    record: SessionRecord,
    values: &SecretValues,
    action: AuditAction,
    peer: &Peer,
) {
    let mut event = caller_event(action, Outcome::Allowed, &record.name, peer);
    event.time_ms = record.updated_ms;
    event.hash = Some(record.hash.clone());
    let name = record.name.clone();
    tx.put_session(record);
    tx.put_secrets(&name, values.to_bytes());
    tx.append_audit(event);
}

fn parse_stored(record: &SessionRecord) -> Result<Session, HttpError> {
    custos_policy::parse(&record.name, &record.text).map_err(|d| unparsable(record, d.len()))
}

/// A stored session that no longer parses (a newer CAS's format, or a damaged store) denies
/// access to it rather than guessing.
fn unparsable(record: &SessionRecord, problems: usize) -> HttpError {
    tracing::error!(
        session = ?record.name,
        problems,
        "stored session no longer parses: access denied"
    );
    HttpError::internal(
        "stored_session_invalid",
        format!("the stored session {} does not parse any more", record.name),
    )
}

fn admits(list: &[Principal], caller: KeyHash, creator: KeyHash) -> bool {
    AccessPolicy::admits(list, &caller, &creator)
}

/// The client API.
#[derive(Debug)]
pub struct ClientApi {
    store: Store,
    limits: Limits,
    limiter: RateLimiter<RateKey>,
    evidence: Option<Arc<dyn SelfEvidence>>,
    cas_spki: Vec<u8>,
    cas_certificate_pem: String,
    metrics: Arc<Metrics>,
    sessions: ParsedSessions,
    keygen: KeyGenerationGate,
    namespace_quota: RateLimiter<IpAddr>,
    /// Quota refusals are logged throttled: any address can cause them at will.
    quota_log: LogThrottle,
    top_level_creators: TopLevelCreators,
    evidence_slots: Arc<Semaphore>,
}

/// Requests for the CAS's own evidence served at once: Gramine serialises quotes anyway, and
/// more would only take blocking threads.
const EVIDENCE_SLOTS: usize = 2;
/// How long a request for the CAS's evidence waits for a slot before it gets 503.
const EVIDENCE_WAIT: Duration = Duration::from_secs(5);

/// Who may create top-level sessions (namespaces): `sessions.top_level_creators`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TopLevelCreators {
    /// Any client with a certificate (the default, as in SCONE).
    #[default]
    Anyone,
    /// Only these clients.
    Only(Vec<KeyHash>),
}

impl TopLevelCreators {
    /// The creators `settings` name.
    pub fn from_settings(settings: &SessionSettings) -> Result<Self, ConfigError> {
        Ok(match settings.top_level_creator_ids()? {
            None => Self::Anyone,
            Some(ids) => Self::Only(ids),
        })
    }

    fn admits(&self, client: KeyHash) -> bool {
        match self {
            Self::Anyone => true,
            Self::Only(ids) => ids.contains(&client),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RateKey {
    Client(KeyHash),
    Address(std::net::IpAddr),
}

type HandlerResult = Result<Response<Full<Bytes>>, HttpError>;

impl ClientApi {
    /// The stored session `record`, parsed (once per hash).
    fn parsed(&self, record: &SessionRecord) -> Result<Arc<Session>, HttpError> {
        self.sessions
            .get(record)
            .map_err(|d| unparsable(record, d.len()))
    }

    /// The API over `store`, answering `/v1/attest` with `evidence` for the CAS key whose
    /// SubjectPublicKeyInfo is `cas_spki`.
    pub fn new(
        store: Store,
        limits: Limits,
        evidence: Option<Arc<dyn SelfEvidence>>,
        cas_spki: Vec<u8>,
        cas_certificate_pem: String,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            limiter: RateLimiter::new(limits.requests_per_second, limits.burst),
            keygen: KeyGenerationGate::new(&limits, metrics.clone()),
            namespace_quota: RateLimiter::new(
                limits.namespace_creates_per_hour / 3600.0,
                limits.namespace_create_burst,
            ),
            quota_log: LogThrottle::new(crate::log_throttle::INTERVAL),
            limits,
            evidence,
            cas_spki,
            cas_certificate_pem,
            metrics,
            sessions: ParsedSessions::default(),
            top_level_creators: TopLevelCreators::default(),
            evidence_slots: Arc::new(Semaphore::new(EVIDENCE_SLOTS)),
        }
    }

    /// Restricts who may create top-level sessions (default: anyone).
    pub fn with_top_level_creators(mut self, creators: TopLevelCreators) -> Self {
        self.top_level_creators = creators;
        self
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
        let path = request.uri().path().to_owned();
        let route = Route::of(request.method(), &path);
        let result = match self.rate_limit(&peer) {
            Err(e) => Err(e),
            Ok(()) => self.dispatch(route, request, peer).await,
        };
        let response = result.unwrap_or_else(|e| e.response());
        self.metrics
            .request(route.label(), response.status().as_u16());
        Ok(response)
    }

    fn rate_limit(&self, peer: &Peer) -> Result<(), HttpError> {
        let key = match peer.client {
            Some(id) => RateKey::Client(id),
            None => RateKey::Address(peer.addr.ip()),
        };
        self.limiter.check(&key, Instant::now()).map_err(|wait| {
            self.metrics.rate_limited();
            let secs = wait.as_secs() + 1;
            HttpError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many requests: this CAS allows {} per second per client (burst {}); retry in {secs} s",
                    self.limits.requests_per_second, self.limits.burst
                ),
            )
            .retry_after(secs)
        })
    }

    async fn dispatch<B>(&self, route: Route<'_>, request: Request<B>, peer: Peer) -> HandlerResult
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let query = request.uri().query().unwrap_or("").to_owned();
        match route {
            Route::Healthz => Ok(self.healthz()),
            Route::Metrics => Ok(self.metrics_text()),
            Route::Version => Ok(json_response(
                StatusCode::OK,
                &version(self.is_simulation()),
            )),
            Route::Attest => self.attest(&query).await,
            Route::Create => {
                let body = self.body_text(request).await?;
                self.create(peer, body).await
            }
            Route::List => self.list(peer, &query),
            Route::Read(name) => self.read(peer, name).await,
            Route::Update(name) => {
                let name = name.to_owned();
                let body = self.body_text(request).await?;
                self.update(peer, name, body).await
            }
            Route::Values(spec) => self.values(spec),
            Route::Audit => self.audit(peer, &query).await,
            Route::MethodNotAllowed(allowed) => {
                Err(HttpError::method_not_allowed(request.method(), allowed))
            }
            Route::NotFound => Err(HttpError::not_found(format!(
                "no such endpoint: {}",
                request.uri().path()
            ))),
        }
    }

    fn is_simulation(&self) -> bool {
        self.evidence.as_ref().is_some_and(|e| e.is_simulation())
    }

    async fn body_text<B>(&self, request: Request<B>) -> Result<String, HttpError>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let max = self.limits.max_body_bytes;
        let bytes = read_body(request, max).await.map_err(|e| match e {
            BodyError::TooLarge { declared } => {
                self.metrics.body_too_large();
                let size = declared.map_or_else(|| "more than that".into(), |n| n.to_string());
                HttpError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("request body is {size} bytes; this CAS accepts at most {max}"),
                )
            }
            BodyError::Unreadable(e) => {
                HttpError::bad_request("bad_body", format!("cannot read the request body: {e}"))
            }
        })?;
        String::from_utf8(bytes.to_vec()).map_err(|e| {
            HttpError::bad_request("bad_body", format!("the session is not UTF-8 text: {e}"))
        })
    }

    fn require_client(&self, peer: &Peer) -> Result<KeyHash, HttpError> {
        peer.client.ok_or_else(|| {
            HttpError::new(
                StatusCode::UNAUTHORIZED,
                "client_certificate_required",
                "this request needs a client certificate (the caller's identity is the SHA-256 of its public key)",
            )
        })
    }

    async fn deny(&self, action: AuditAction, session: &str, peer: &Peer, error: &HttpError) {
        self.store
            .record(caller_event(action, error.outcome(), session, peer))
            .await;
    }

    async fn create(&self, peer: Peer, text: String) -> HandlerResult {
        let client = self.require_client(&peer)?;
        let session = parse_submitted(&text)?;
        custos_policy::check_create(&session).map_err(|d| {
            invalid(
                "predecessor_not_allowed",
                "a new session has no predecessor",
                &d,
            )
        })?;
        let name = session.name.to_string();
        let session_name = name.clone();
        let hash = session.hash.to_string();
        let warnings = custos_policy::warnings(&session);
        // Cheap checks first, so nobody can make the CAS generate keys for a create that
        // must fail; they are repeated in the write transaction, where they count.
        let creators = self.top_level_creators.clone();
        let allowed = {
            let read = self.store.read()?;
            check_create_allowed(&session, client, &creators, |n| read.session(n))
                .and_then(|()| check_export_namespaces(&session, |n| read.session(n)))
        };
        if let Err(e) = allowed {
            if e.status() == StatusCode::FORBIDDEN {
                self.deny(AuditAction::SessionCreate, &session_name, &peer, &e)
                    .await;
            }
            return Err(e);
        }
        if session.name.parent().is_none() {
            self.take_namespace_quota(&peer, &session_name)?;
        }
        let prepared = self.prepare_keys(&session, None).await?;
        let result = self
            .store
            .write(move |tx| {
                check_create_allowed(&session, client, &creators, |n| tx.session(n))?;
                check_export_namespaces(&session, |n| tx.session(n))?;
                let values = secrets::materialize(&session, None, &prepared, &TxImports(tx))
                    .map_err(secret_error)?;
                let now = crate::audit::now_ms();
                let record = SessionRecord {
                    name: name.clone(),
                    hash: hash.clone(),
                    text,
                    creator: client,
                    created_ms: now,
                    updated_ms: now,
                    revision: 1,
                };
                write_version(tx, record, &values, AuditAction::SessionCreate, &peer);
                Ok::<_, HttpError>((name, hash))
            })
            .await;
        match result {
            Ok((name, hash)) => {
                tracing::info!(session = ?name, %hash, %client, "session created");
                Ok(json_response(
                    StatusCode::CREATED,
                    &SessionWritten {
                        name,
                        hash,
                        warnings,
                    },
                ))
            }
            Err(e) => {
                if e.status() == StatusCode::FORBIDDEN {
                    self.deny(AuditAction::SessionCreate, &session_name, &peer, &e)
                        .await;
                }
                Err(e)
            }
        }
    }

    async fn update(&self, peer: Peer, path_name: String, text: String) -> HandlerResult {
        let client = self.require_client(&peer)?;
        let session = parse_submitted(&text)?;
        let name = session.name.to_string();
        if name != path_name {
            return Err(HttpError::bad_request(
                "name_mismatch",
                format!("the URL names session {path_name}, the body names {name}"),
            ));
        }
        let Some(predecessor) = session.predecessor else {
            return Err(HttpError::bad_request(
                "predecessor_required",
                "an update must name the session version it replaces: add `predecessor: <current hash>`",
            ));
        };
        // Check access and the predecessor before the (slow) key generation.
        let (current, previous) = {
            let read = self.store.read()?;
            let current = read
                .session(&name)?
                .ok_or_else(|| HttpError::not_found(format!("session {name} does not exist")))?;
            let previous = read.secrets(&name)?;
            (current, previous)
        };
        let stored = self.parsed(&current)?;
        if !admits(&stored.access_policy.update, client, current.creator) {
            let e = HttpError::forbidden(format!(
                "session {name}: its update policy does not admit client {client}"
            ));
            self.deny(AuditAction::SessionUpdate, &name, &peer, &e)
                .await;
            return Err(e);
        }
        check_predecessor(&name, &predecessor.to_string(), &current.hash)?;
        check_export_namespaces(&session, |n| self.store.read()?.session(n))?;
        let previous = previous
            .map(|bytes| SecretValues::from_bytes(&bytes))
            .transpose()
            .map_err(secret_error)?;
        let prepared = self.prepare_keys(&session, previous.as_ref()).await?;
        let hash = session.hash.to_string();
        let warnings = custos_policy::warnings(&session);
        let (name, hash) = self
            .store
            .write(move |tx| {
                let current = tx.session(&name)?.ok_or_else(|| {
                    HttpError::not_found(format!("session {name} does not exist"))
                })?;
                // Unchanged hash: unchanged policy and values, so the checks above still hold.
                check_predecessor(&name, &predecessor.to_string(), &current.hash)?;
                check_export_namespaces(&session, |n| tx.session(n))?;
                let values =
                    secrets::materialize(&session, previous.as_ref(), &prepared, &TxImports(tx))
                        .map_err(secret_error)?;
                let now = crate::audit::now_ms();
                let record = SessionRecord {
                    name: name.clone(),
                    hash: hash.clone(),
                    text,
                    creator: current.creator,
                    created_ms: current.created_ms,
                    updated_ms: now,
                    revision: current.revision + 1,
                };
                write_version(tx, record, &values, AuditAction::SessionUpdate, &peer);
                Ok::<_, HttpError>((name, hash))
            })
            .await?;
        tracing::info!(session = ?name, %hash, %client, "session updated");
        Ok(json_response(
            StatusCode::OK,
            &SessionWritten {
                name,
                hash,
                warnings,
            },
        ))
    }

    async fn read(&self, peer: Peer, name: &str) -> HandlerResult {
        let client = self.require_client(&peer)?;
        let record = self
            .store
            .read()?
            .session(name)?
            .ok_or_else(|| HttpError::not_found(format!("session {name} does not exist")))?;
        let stored = self.parsed(&record)?;
        if !admits(&stored.access_policy.read, client, record.creator) {
            let e = HttpError::forbidden(format!(
                "session {name}: its read policy does not admit client {client}"
            ));
            self.deny(AuditAction::SessionRead, name, &peer, &e).await;
            return Err(e);
        }
        let mut event = caller_event(
            AuditAction::SessionRead,
            Outcome::Allowed,
            &record.name,
            &peer,
        );
        event.hash = Some(record.hash.clone());
        self.store.record(event).await;
        Ok(json_response(
            StatusCode::OK,
            &StoredSession {
                creator: record.creator.to_string(),
                name: record.name,
                hash: record.hash,
                session: record.text,
                revision: record.revision,
                created_ms: record.created_ms,
                updated_ms: record.updated_ms,
            },
        ))
    }

    fn list(&self, peer: Peer, query: &str) -> HandlerResult {
        let client = self.require_client(&peer)?;
        let prefix = query_param(query, "prefix").unwrap_or_default();
        let records = self.store.read()?.sessions_with_prefix(&prefix)?;
        let mut names = Vec::new();
        for record in &records {
            if admits(
                &self.parsed(record)?.access_policy.read,
                client,
                record.creator,
            ) {
                names.push(record.name.clone());
            }
        }
        Ok(json_response(
            StatusCode::OK,
            &SessionList { sessions: names },
        ))
    }

    fn values(&self, spec: &str) -> HandlerResult {
        let (mut session_name, mut secret_name) = (None, None);
        for part in spec.split(',') {
            match part.split_once('=') {
                Some(("session", v)) => session_name = Some(v),
                Some(("secret", v)) => secret_name = Some(v),
                _ => {
                    return Err(HttpError::bad_request(
                        "bad_values_path",
                        "expected /v1/values/session=NAME or /v1/values/session=NAME,secret=SECRET",
                    ));
                }
            }
        }
        let name = session_name.ok_or_else(|| {
            HttpError::bad_request(
                "bad_values_path",
                "the path names no session (session=NAME)",
            )
        })?;
        // A missing session and one without public values are answered alike, so this
        // unauthenticated route does not tell whether a session exists.
        let nothing_public = || {
            HttpError::not_found(match secret_name {
                Some(secret) => {
                    format!("session {name} has no public value {secret} (export_public)")
                }
                None => format!("session {name} has no public values (export_public)"),
            })
        };
        let read = self.store.read()?;
        let Some(record) = read.session(name)? else {
            return Err(nothing_public());
        };
        let session = self.parsed(&record)?;
        if !session.secrets.iter().any(|s| s.export_public) {
            return Err(nothing_public());
        }
        let values = match read.secrets(name)? {
            Some(bytes) => SecretValues::from_bytes(&bytes).map_err(secret_error)?,
            None => SecretValues::default(),
        };
        let mut public = secrets::public_values(&session, &values);
        if let Some(secret) = secret_name {
            public.retain(|k, _| k == secret);
        }
        if public.is_empty() {
            return Err(nothing_public());
        }
        let values = public
            .into_iter()
            .map(|(k, (kind, pem))| {
                let kind = kind.as_str().to_owned();
                (k, PublicValue { kind, value: pem })
            })
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &PublicValues {
                session: name.to_owned(),
                values,
            },
        ))
    }

    async fn attest(&self, query: &str) -> HandlerResult {
        let evidence = SelfAttestation {
            source: self.evidence.clone(),
            cas_spki: &self.cas_spki,
            cas_certificate_pem: &self.cas_certificate_pem,
            slots: &self.evidence_slots,
            metrics: &self.metrics,
        };
        evidence.answer(query).await
    }

    async fn audit(&self, peer: Peer, query: &str) -> HandlerResult {
        let client = self.require_client(&peer)?;
        let name = query_param(query, "session").ok_or_else(|| {
            HttpError::bad_request("session_required", "give a session: /v1/audit?session=NAME")
        })?;
        let number = |key: &str, default: u64| -> Result<u64, HttpError> {
            query_param(query, key).map_or(Ok(default), |v| {
                v.parse().map_err(|_| {
                    HttpError::bad_request(
                        "bad_query",
                        format!("{key} must be a number, found {v:?}"),
                    )
                })
            })
        };
        let after = number("after", 0)?;
        let limit = number("limit", 100)?.clamp(1, 1000) as usize;
        let (record, events) = {
            let read = self.store.read()?;
            let record = read
                .session(&name)?
                .ok_or_else(|| HttpError::not_found(format!("session {name} does not exist")))?;
            let events = read.audit_for_session(&name, after, limit)?;
            (record, events)
        };
        let stored = self.parsed(&record)?;
        if !admits(&stored.access_policy.update, client, record.creator) {
            let e = HttpError::forbidden(format!(
                "session {name}: only clients its update policy admits may read its audit log; client {client} is not one"
            ));
            self.deny(AuditAction::AuditRead, &name, &peer, &e).await;
            return Err(e);
        }
        let event = caller_event(AuditAction::AuditRead, Outcome::Allowed, &name, &peer);
        self.store.record(event).await;
        Ok(json_response(
            StatusCode::OK,
            &AuditPage {
                session: name,
                events,
            },
        ))
    }

    /// Takes one namespace create from the caller's address quota, or says when to retry.
    fn take_namespace_quota(&self, peer: &Peer, session: &str) -> Result<(), HttpError> {
        let address = client_address(peer.addr.ip());
        self.namespace_quota
            .check(&address, Instant::now())
            .map_err(|wait| {
                self.metrics.namespace_quota_exceeded();
                let secs = wait.as_secs() + 1;
                if let Some(suppressed) = self
                    .quota_log
                    .admit(("session_create", "namespace_quota"), Instant::now())
                {
                    tracing::warn!(%address, session = ?session, retry_in_secs = secs, suppressed, "namespace quota exceeded");
                }
                HttpError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "namespace_quota_exceeded",
                    format!(
                        "address {address} has used its namespace quota (limits.namespace_creates_per_hour = {}, limits.namespace_create_burst = {}); retry in {secs} s or create the session inside an existing namespace",
                        self.limits.namespace_creates_per_hour, self.limits.namespace_create_burst
                    ),
                )
                .retry_after(secs)
            })
    }

    /// The private keys `session` needs, made on the blocking pool; RSA keys behind the key
    /// generation bound.
    async fn prepare_keys(
        &self,
        session: &Session,
        previous: Option<&SecretValues>,
    ) -> Result<secrets::PreparedKeys, HttpError> {
        let plan = secrets::plan(session, previous).map_err(secret_error)?;
        if plan.is_empty() {
            return Ok(secrets::PreparedKeys::default());
        }
        let keys = plan.len();
        self.keygen
            .run(plan.is_costly(), move || plan.generate())
            .await
            .map_err(|busy| self.key_generation_busy(busy, keys))?
            .map_err(secret_error)
    }

    fn key_generation_busy(&self, busy: Busy, keys: usize) -> HttpError {
        let slots = self.keygen.max_slots();
        let message = match busy {
            Busy::Failed(reason) => {
                tracing::error!(error = ?reason, "key generation failed");
                return HttpError::internal(
                    "secret_error",
                    format!("key generation failed: {reason}"),
                );
            }
            Busy::QueueFull { max_queued } => format!(
                "the CAS is busy generating keys: {slots} running (limits.max_concurrent_key_generations) and {max_queued} waiting (limits.max_queued_key_generations); this request needs {keys} keys; retry later"
            ),
            Busy::Timeout { waited } => format!(
                "the CAS is busy generating keys: no slot of {slots} (limits.max_concurrent_key_generations) came free within {} s (limits.key_generation_wait_secs); this request needs {keys} keys; retry later",
                waited.as_secs_f64()
            ),
        };
        self.metrics.key_generation_busy();
        HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
            .retry_after(self.keygen.max_wait().as_secs().max(1))
    }

    fn healthz(&self) -> Response<Full<Bytes>> {
        let store_ok = self.store.read().and_then(|r| r.session_count()).is_ok();
        let mut warnings = Vec::new();
        if self.is_simulation() {
            warnings.push(
                "SIMULATION: this CAS's evidence is simulated and proves nothing; not for production secrets".to_owned(),
            );
        }
        let status = if store_ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_response(
            status,
            &Health {
                status: if store_ok { "ok" } else { "store unavailable" }.into(),
                simulation: self.is_simulation(),
                warnings,
            },
        )
    }

    fn metrics_text(&self) -> Response<Full<Bytes>> {
        let sessions = self
            .store
            .read()
            .and_then(|r| r.session_count())
            .unwrap_or(0);
        let store = crate::metrics::StoreFigures {
            sessions,
            audit_events: self.store.audit_len(),
            commits: self.store.commits(),
        };
        let text = self.metrics.render(store, self.is_simulation());
        let mut response = Response::new(Full::new(Bytes::from(text)));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        response
    }
}

/// A create is allowed when the name is free and, for a session inside a namespace, the
/// namespace exists and its `create_sessions` admits the caller; for a top-level session
/// (a namespace), when `sessions.top_level_creators` admits the caller.
fn check_create_allowed(
    session: &Session,
    client: KeyHash,
    creators: &TopLevelCreators,
    lookup: impl Fn(&str) -> Result<Option<SessionRecord>, StoreError>,
) -> Result<(), HttpError> {
    let name = &session.name;
    if lookup(name.as_str())?.is_some() {
        return Err(HttpError::conflict(
            "session_exists",
            format!("session {name} exists: update it instead (with its hash as predecessor)"),
        ));
    }
    if let Some(parent) = name.parent() {
        let namespace = lookup(parent.as_str())?.ok_or_else(|| {
            HttpError::not_found(format!(
                "namespace {parent} does not exist: create it first"
            ))
        })?;
        let policy = parse_stored(&namespace)?.access_policy;
        if !admits(&policy.create_sessions, client, namespace.creator) {
            return Err(HttpError::forbidden(format!(
                "namespace {parent}: create_sessions does not admit client {client}"
            )));
        }
    } else if !creators.admits(client) {
        return Err(HttpError::forbidden(format!(
            "top-level session {name}: this CAS's sessions.top_level_creators does not list client {client}; ask its operator, or create the session inside a namespace that admits you"
        )));
    }
    Ok(())
}

/// An export to a session whose namespace does not exist yet would go to whoever creates
/// that namespace first: refused unless the export pins the importer's `session_hash`. The
/// session's own namespace exists (or is this very session).
fn check_export_namespaces<E>(
    session: &Session,
    lookup: impl Fn(&str) -> Result<Option<SessionRecord>, E>,
) -> Result<(), HttpError>
where
    HttpError: From<E>,
{
    let top_level =
        |name: &custos_policy::SessionName| name.components().next().unwrap_or_default().to_owned();
    let own = top_level(&session.name);
    for secret in &session.secrets {
        for export in secret.export.iter().filter(|e| e.session_hash.is_none()) {
            let namespace = top_level(&export.session);
            if namespace != own && lookup(&namespace)?.is_none() {
                return Err(HttpError::conflict(
                    "export_namespace_missing",
                    format!(
                        "secret {}: the export to session {} is refused: its namespace {namespace} does not exist, so whoever creates it first could import the secret; pin the importer with `session_hash` in the export, or create namespace {namespace} first",
                        secret.name, export.session
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn check_predecessor(name: &str, predecessor: &str, current: &str) -> Result<(), HttpError> {
    if predecessor == current {
        Ok(())
    } else {
        Err(HttpError::conflict(
            "predecessor_mismatch",
            format!(
                "session {name} changed since it was read: predecessor is {predecessor}, the current hash is {current}"
            ),
        ))
    }
}

fn parse_submitted(text: &str) -> Result<Session, HttpError> {
    custos_policy::parse("session", text)
        .map_err(|d| invalid("invalid_session", "the session is not valid", &d))
}

fn invalid(code: &'static str, what: &str, d: &custos_policy::Diagnostics) -> HttpError {
    HttpError::bad_request(code, format!("{what}: {} problem(s)", d.len()))
        .with_reasons(d.iter().map(|d| d.to_string()).collect())
}

fn secret_error(e: secrets::SecretError) -> HttpError {
    match e {
        secrets::SecretError::Corrupt(_) | secrets::SecretError::Generate { .. } => {
            tracing::error!(error = ?e.to_string(), "secret error");
            HttpError::internal("secret_error", e.to_string())
        }
        secrets::SecretError::Import { .. } => HttpError::forbidden(e.to_string()),
        secrets::SecretError::Reference { .. } | secrets::SecretError::TooManyKeys { .. } => {
            HttpError::bad_request("invalid_secret", e.to_string())
        }
    }
}

/// Imports resolved against the write transaction.
/// Imports as a write transaction sees them (create, update and renewal).
pub(crate) struct TxImports<'t, 'a>(pub(crate) &'t WriteTx<'a>);

impl ImportResolver for TxImports<'_, '_> {
    fn resolve(
        &self,
        importer: &Session,
        import: &custos_policy::SessionImport,
    ) -> Result<Option<SecretValue>, String> {
        let name = import.session.as_str();
        let record = self
            .0
            .session(name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("session {name} does not exist"))?;
        let exporter = custos_policy::parse(&record.name, &record.text)
            .map_err(|_| format!("the stored session {name} does not parse"))?;
        secrets::check_export(&exporter, &import.secret, importer, import)?;
        let values = match self.0.secrets(name).map_err(|e| e.to_string())? {
            Some(bytes) => SecretValues::from_bytes(&bytes).map_err(|e| e.to_string())?,
            None => return Ok(None),
        };
        Ok(values.values.get(import.secret.as_str()).cloned())
    }
}

fn query_param(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[derive(Debug, Clone, Copy)]
enum Route<'p> {
    Healthz,
    Metrics,
    Version,
    Attest,
    Create,
    List,
    Read(&'p str),
    Update(&'p str),
    Values(&'p str),
    Audit,
    MethodNotAllowed(&'static str),
    NotFound,
}

impl<'p> Route<'p> {
    fn of(method: &Method, path: &'p str) -> Self {
        let get = |route| {
            if method == Method::GET {
                route
            } else {
                Route::MethodNotAllowed("GET")
            }
        };
        match path {
            "/healthz" => get(Route::Healthz),
            "/metrics" => get(Route::Metrics),
            "/v1/version" => get(Route::Version),
            "/v1/attest" => get(Route::Attest),
            "/v1/audit" => get(Route::Audit),
            "/v1/sessions" => match *method {
                Method::POST => Route::Create,
                Method::GET => Route::List,
                _ => Route::MethodNotAllowed("GET, POST"),
            },
            _ => {
                if let Some(name) = path.strip_prefix("/v1/sessions/").filter(|n| !n.is_empty()) {
                    match *method {
                        Method::GET => Route::Read(name),
                        Method::PUT => Route::Update(name),
                        _ => Route::MethodNotAllowed("GET, PUT"),
                    }
                } else if let Some(spec) = path.strip_prefix("/v1/values/") {
                    get(Route::Values(spec))
                } else {
                    Route::NotFound
                }
            }
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Route::Healthz => "healthz",
            Route::Metrics => "metrics",
            Route::Version => "version",
            Route::Attest => "attest",
            Route::Create => "session_create",
            Route::List => "session_list",
            Route::Read(_) => "session_read",
            Route::Update(_) => "session_update",
            Route::Values(_) => "values",
            Route::Audit => "audit",
            Route::MethodNotAllowed(_) => "method_not_allowed",
            Route::NotFound => "not_found",
        }
    }
}

/// `GET /v1/version`.
pub(crate) fn version(simulation: bool) -> Version {
    Version {
        name: "custos-cas".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api: "v1".into(),
        simulation,
    }
}

/// What the CAS's own evidence needs (the client API's, and a locked CAS's).
pub(crate) struct SelfAttestation<'a> {
    pub source: Option<Arc<dyn SelfEvidence>>,
    pub cas_spki: &'a [u8],
    pub cas_certificate_pem: &'a str,
    pub slots: &'a Arc<Semaphore>,
    pub metrics: &'a Metrics,
}

impl SelfAttestation<'_> {
    /// `GET /v1/attest?nonce=...`: this CAS's evidence, binding its TLS key and the nonce.
    pub(crate) async fn answer(&self, query: &str) -> HandlerResult {
        let nonce = query_param(query, "nonce").ok_or_else(|| {
            HttpError::bad_request(
                "nonce_required",
                "give a nonce: /v1/attest?nonce=<hex, 16 to 64 bytes>",
            )
        })?;
        let nonce = hex::decode(&nonce)
            .ok()
            .filter(|n| (16..=64).contains(&n.len()))
            .ok_or_else(|| {
                HttpError::bad_request(
                    "bad_nonce",
                    format!(
                        "the nonce must be 32 to 128 hex digits (16 to 64 bytes), found {} characters",
                        nonce.len()
                    ),
                )
            })?;
        let source = self.source.clone().ok_or_else(|| {
            HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_evidence",
                "this CAS is configured without an evidence source (evidence = \"none\")",
            )
        })?;
        // Gramine's evidence is file I/O under a lock: off the async workers, a few at a time.
        let slot = tokio::time::timeout(EVIDENCE_WAIT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| {
                self.metrics.evidence_busy();
                HttpError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    format!(
                        "the CAS's evidence is being produced for {EVIDENCE_SLOTS} other requests and none finished within {} s; retry later",
                        EVIDENCE_WAIT.as_secs()
                    ),
                )
                .retry_after(1)
            })?
            .map_err(|e| HttpError::internal("evidence_failed", e.to_string()))?;
        let data = runtime_data(self.cas_spki, &nonce);
        let producer = source.clone();
        let evidence = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            producer.evidence(&data)
        })
        .await
        .map_err(|e| HttpError::internal("evidence_failed", e.to_string()))?
        .map_err(|e| HttpError::internal("evidence_failed", e.to_string()))?;
        Ok(json_response(
            StatusCode::OK,
            &CasEvidence {
                evidence: EvidenceBytes {
                    kind: evidence.kind.as_str().to_owned(),
                    quote: evidence.bytes,
                },
                mrenclave: source.mrenclave().to_hex(),
                simulation: source.is_simulation(),
                platform_key: source.platform_public_key_pem(),
                certificate: self.cas_certificate_pem.to_owned(),
            },
        ))
    }
}

#[cfg(test)]
mod tests;
