//! The enclave API client: how the runtime authenticates the CAS — one address or its
//! replicas ([`crate::replicas`]) — and talks to it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use custos_ids::fmt::error_chain;
use custos_protocol::ErrorBody;
use custos_protocol::enclave::{
    ATTEST_PATH, AttestRequest, CHALLENGE_PATH, ChallengeRequest, ChallengeResponse, Delivery,
};
use rustls::{ClientConfig, RootCertStore};
use serde::de::DeserializeOwned;

use crate::RunError;
use crate::config::{CasTrust, Endpoint};
use crate::identity::EphemeralKey;
use crate::replicas::{self, Candidate};

/// How long connecting to one replica (TCP and TLS together) may take before the next is
/// tried: an answering CAS connects within a round trip and a handshake; a replica that is
/// gone costs 5 s, not the kernel's minutes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one request may take in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where an attestation starts among the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// At a random replica (then in list order): spreads load.
    #[default]
    Random,
    /// At the first replica listed.
    First,
}

/// A client of the CAS's enclave API (and of the LAS, over plain HTTP): of one CAS, or of the
/// replicas of one CAS, which share its key and its nonces — so the challenge and the attest
/// may be answered by different replicas.
///
/// A request moves to the next replica when it could not connect (refused, reset,
/// unreachable, [`CONNECT_TIMEOUT`]) or was answered 503; a challenge also when its
/// connection failed later (a nonce costs the CAS nothing). Everything else is the answer:
/// a denial (403) or any other refusal; a CAS whose certificate is not the trusted one
/// (another replica is not asked to make up for a wrong key); and an attest whose connection
/// failed after it was sent (the CAS may have redeemed its nonce and delivered: the error
/// says so, and the next attestation starts afresh).
#[derive(Debug)]
pub struct CasClient {
    http: reqwest::Client,
    tls: ClientConfig,
    replicas: Vec<Endpoint>,
    start_at: StartAt,
    /// One HTTP client per replica address, so a challenge and its attest share a connection.
    clients: Mutex<HashMap<SocketAddr, reqwest::Client>>,
    /// The replica that answered last: asked first next time.
    last_answered: Mutex<Option<SocketAddr>>,
}

impl CasClient {
    /// A client that authenticates the CAS at `cas` by `trust` and itself with `key`.
    /// `Unverified` trust is accepted only when `simulation` is true.
    pub fn new(
        cas: &Endpoint,
        trust: &CasTrust,
        key: &EphemeralKey,
        simulation: bool,
    ) -> Result<Self, RunError> {
        Self::with_replicas(std::slice::from_ref(cas), trust, key, simulation)
    }

    /// A client of the replicas `replicas` of one CAS (at least one), each authenticated by
    /// `trust`.
    pub fn with_replicas(
        replicas: &[Endpoint],
        trust: &CasTrust,
        key: &EphemeralKey,
        simulation: bool,
    ) -> Result<Self, RunError> {
        if replicas.is_empty() {
            return Err(RunError::Local("no CAS address".into()));
        }
        let tls = tls_config(trust, key, simulation)?;
        let http = http_client(tls.clone(), None)?;
        Ok(Self {
            http,
            tls,
            replicas: replicas.to_vec(),
            start_at: StartAt::default(),
            clients: Mutex::default(),
            last_answered: Mutex::default(),
        })
    }

    /// The same client, starting where `start_at` says.
    #[must_use]
    pub fn start_at(mut self, start_at: StartAt) -> Self {
        self.start_at = start_at;
        self
    }

    /// The HTTP client (also used for the LAS).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Asks for a single-use nonce for `config_id`.
    pub async fn challenge(&self, config_id: &str) -> Result<String, RunError> {
        let request = ChallengeRequest {
            config_id: config_id.to_owned(),
        };
        let answer: ChallengeResponse = self
            .post(CHALLENGE_PATH, &request, config_id, Resend::Always)
            .await?;
        Ok(answer.nonce)
    }

    /// Presents the evidence; returns what to start with, or the CAS's denial.
    pub async fn attest(&self, request: &AttestRequest) -> Result<Delivery, RunError> {
        self.post(ATTEST_PATH, request, &request.config_id, Resend::OnlyUnsent)
            .await
    }

    /// The candidates in the order to try them; endpoints that did not resolve, as failures.
    async fn candidates(&self) -> (Vec<Candidate>, Vec<(String, RunError)>) {
        let (candidates, unresolved) = replicas::resolve(&self.replicas).await;
        let last = self.last_answered.lock().ok().and_then(|l| *l);
        let start = match candidates.iter().position(|c| Some(c.socket) == last) {
            Some(index) => index,
            None if self.start_at == StartAt::Random => replicas::random_start(candidates.len()),
            None => 0,
        };
        let ordered = replicas::order(candidates.len(), start, |i| {
            replicas::failed_recently(candidates[i].socket)
        })
        .into_iter()
        .map(|i| candidates[i].clone())
        .collect();
        let unresolved = unresolved
            .into_iter()
            .map(|(endpoint, reason)| {
                let addr = endpoint.to_string();
                let error = RunError::Cas {
                    addr: addr.clone(),
                    reason,
                };
                (addr, error)
            })
            .collect();
        (ordered, unresolved)
    }

    /// The HTTP client for `candidate`: steered to its address when it is a name (TLS still
    /// checks the name).
    fn client_for(&self, candidate: &Candidate) -> Result<reqwest::Client, RunError> {
        if !candidate.is_name() {
            return Ok(self.http.clone());
        }
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| RunError::Local("HTTP clients: poisoned lock".into()))?;
        if let Some(client) = clients.get(&candidate.socket) {
            return Ok(client.clone());
        }
        let client = http_client(
            self.tls.clone(),
            Some((&candidate.endpoint.host, candidate.socket)),
        )?;
        clients.insert(candidate.socket, client.clone());
        Ok(client)
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
        config_id: &str,
        resend: Resend,
    ) -> Result<T, RunError> {
        let (candidates, mut failed) = self.candidates().await;
        for candidate in &candidates {
            match self.post_at(candidate, path, body, config_id, resend).await {
                Attempt::Answer(answer) => {
                    replicas::record_success(candidate.socket);
                    if let Ok(mut last) = self.last_answered.lock() {
                        *last = Some(candidate.socket);
                    }
                    return answer;
                }
                Attempt::Next(error) => {
                    replicas::record_failure(candidate.socket);
                    failed.push((candidate.to_string(), error));
                }
            }
        }
        if failed.len() == 1 {
            return Err(failed.remove(0).1);
        }
        Err(RunError::CasReplicas {
            path: path.to_owned(),
            attempts: failed.into_iter().map(|(_, e)| e.to_string()).collect(),
        })
    }

    /// The request at one replica.
    async fn post_at<T: DeserializeOwned>(
        &self,
        candidate: &Candidate,
        path: &str,
        body: &impl serde::Serialize,
        config_id: &str,
        resend: Resend,
    ) -> Attempt<T> {
        let addr = candidate.to_string();
        let cas_error = |reason: String| RunError::Cas {
            addr: addr.clone(),
            reason,
        };
        let http = match self.client_for(candidate) {
            Ok(http) => http,
            Err(e) => return Attempt::Answer(Err(e)),
        };
        let url = format!("{}{path}", candidate.endpoint.url("https"));
        let response = match http.post(url).json(body).send().await {
            Ok(response) => response,
            Err(e) => {
                let error = cas_error(error_chain(&e));
                return match failure_kind(&e) {
                    Sent::NotTrusted => Attempt::Answer(Err(error)),
                    Sent::No => Attempt::Next(error),
                    Sent::Maybe if resend == Resend::Always => Attempt::Next(error),
                    Sent::Maybe => Attempt::Answer(Err(cas_error(format!(
                        "{path}: the connection failed after the request was sent ({}); the CAS may have redeemed its nonce, so it was not sent to another replica",
                        error_chain(&e)
                    )))),
                };
            }
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) if resend == Resend::Always => return Attempt::Next(cas_error(error_chain(&e))),
            Err(e) => {
                return Attempt::Answer(Err(cas_error(format!(
                    "{path}: the answer was cut off ({}); the CAS may have redeemed its nonce, so it was not sent to another replica",
                    error_chain(&e)
                ))));
            }
        };
        if status.is_success() {
            return Attempt::Answer(
                serde_json::from_slice(&bytes)
                    .map_err(|e| cas_error(format!("{path}: unexpected answer: {e}"))),
            );
        }
        let error = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(ErrorBody { error }) if error.code == "attestation_denied" => RunError::Denied {
                config_id: config_id.to_owned(),
                detail: error,
            },
            Ok(ErrorBody { error }) => cas_error(format!(
                "{path}: HTTP {status} {}: {}",
                error.code, error.message
            )),
            Err(_) => cas_error(format!(
                "{path}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )),
        };
        // A CAS answers 503 (busy, its store unavailable) before it changes anything.
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return Attempt::Next(error);
        }
        Attempt::Answer(Err(error))
    }
}

/// Whether a request may go to another replica after its connection failed once it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Yes: asking twice changes nothing (a challenge).
    Always,
    /// No: the CAS may have acted on it (an attest redeems its nonce).
    OnlyUnsent,
}

/// What one replica did with a request.
enum Attempt<T> {
    /// The request's outcome.
    Answer(Result<T, RunError>),
    /// This replica did not serve it; another may.
    Next(RunError),
}

/// How far a failed request got.
enum Sent {
    /// Not at all: no connection.
    No,
    /// The server's certificate is not the trusted one: no replica is asked to make up for it.
    NotTrusted,
    /// It may have been written.
    Maybe,
}

fn failure_kind(error: &reqwest::Error) -> Sent {
    if !error.is_connect() {
        return Sent::Maybe;
    }
    if untrusted_certificate(error) {
        Sent::NotTrusted
    } else {
        Sent::No
    }
}

/// Whether `error` comes from a certificate the client does not trust (a pin mismatch, or
/// one `CUSTOS_CAS_CA` did not issue or that names another host). rustls's error sits inside
/// `io::Error`s, whose `source()` skips what they wrap: each one is opened instead.
fn untrusted_certificate(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        match e.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidCertificate(_)) => return true,
            Some(rustls::Error::Other(other))
                if other.0.downcast_ref::<custos_tls::PinMismatch>().is_some() =>
            {
                return true;
            }
            _ => {}
        }
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

/// An HTTP client over `tls`; with `steer`, connections to that host go to that address.
fn http_client(
    tls: ClientConfig,
    steer: Option<(&str, SocketAddr)>,
) -> Result<reqwest::Client, RunError> {
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT);
    if let Some((host, socket)) = steer {
        builder = builder.resolve(host, socket);
    }
    builder
        .build()
        .map_err(|e| RunError::Local(format!("HTTP client: {e}")))
}

fn tls_config(
    trust: &CasTrust,
    key: &EphemeralKey,
    simulation: bool,
) -> Result<ClientConfig, RunError> {
    let builder = ClientConfig::builder_with_provider(custos_tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| RunError::Local(format!("TLS: {e}")))?;
    let builder = match trust {
        CasTrust::Ca(path) => {
            let mut roots = RootCertStore::empty();
            for cert in custos_tls::read_certificates(path)
                .map_err(|e| RunError::Local(format!("CUSTOS_CAS_CA: {e}")))?
            {
                roots.add(cert).map_err(|e| {
                    RunError::Local(format!("CUSTOS_CAS_CA {}: {e}", path.display()))
                })?;
            }
            builder.with_root_certificates(roots)
        }
        CasTrust::Pin(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(custos_tls::pinned_server_verifier(*pin)),
        CasTrust::Unverified if simulation => {
            eprintln!(
                "custos-run: WARNING: the CAS is not authenticated (neither CUSTOS_CAS_CA nor CUSTOS_CAS_KEY_HASH is set); \
                 accepted only because this is a simulation"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(custos_tls::unauthenticated_server_verifier())
        }
        CasTrust::Unverified => {
            return Err(RunError::Local(
                "refusing to trust an unauthenticated CAS: set CUSTOS_CAS_CA (a PEM CA file) or CUSTOS_CAS_KEY_HASH (the CAS key's SHA-256, see `custos cas list`)".into(),
            ));
        }
    };
    let (chain, private_key) = key.client_auth();
    builder
        .with_client_auth_cert(chain, private_key)
        .map_err(|e| RunError::Local(format!("TLS client certificate: {e}")))
}
