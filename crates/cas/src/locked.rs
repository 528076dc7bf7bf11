//! A CAS whose master key could not be released (MAA or Key Vault gone for good, the key lost)
//! but whose envelope holds recovery shares: it serves only what recovery needs — its own
//! evidence (`custos cas attest`), the encrypted shares, and the submission of decrypted ones —
//! until `threshold` operators have each submitted theirs; then it has its master key and starts
//! as usual. Shares travel decrypted only over a TLS connection to the key this CAS's evidence
//! binds: an operator attests the CAS before handing over a share.
//!
//! - `GET /healthz` → 503 `locked`, with how many shares arrived;
//! - `GET /v1/version`, `GET /v1/attest?nonce=…` as usual;
//! - `GET /v1/recovery` → the threshold, the shares received and every encrypted share;
//! - `POST /v1/recovery/share` `{"share": base64(index ‖ value)}` → a wrong share is refused,
//!   naming it; the threshold-th valid one unlocks;
//! - anything else → 503 `locked`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{Semaphore, oneshot};

use crate::api::SelfAttestation;
use crate::attest::SelfEvidence;
use crate::config::Config;
use crate::http::{Peer, json_response};
use crate::http_error::HttpError;
use crate::key_release::ReleaseFailure;
use crate::metrics::Metrics;
use crate::seal::MasterKey;
use crate::seal::recovery::{RecoveryRecord, parse_share};
use crate::seal::shamir::Share;
use crate::server::StartError;
use crate::tls::CasIdentity;
use custos_protocol::recovery::{
    RECOVERY_PATH, RecoveryStatus, SHARE_PATH, ShareAccepted, ShareSubmission,
};
use custos_serve::RequestBody;

/// Largest share submission: a share is 33 bytes.
const MAX_BODY: usize = 1024;

struct Locked {
    record: RecoveryRecord,
    shares: Mutex<Vec<Share>>,
    unlock: Mutex<Option<oneshot::Sender<MasterKey>>>,
    evidence: Option<Arc<dyn SelfEvidence>>,
    identity: CasIdentity,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

/// Serves the locked API on `config.listen` until `record`'s threshold of shares arrived;
/// returns the master key they rebuild.
pub async fn wait_for_recovery(
    config: &Config,
    evidence: Option<Arc<dyn SelfEvidence>>,
    record: RecoveryRecord,
    failure: &ReleaseFailure,
) -> Result<MasterKey, StartError> {
    let identity = match (&config.tls.certificate, &config.tls.private_key) {
        (Some(cert), Some(key)) => CasIdentity::load(cert, key)?,
        _ => CasIdentity::load_or_generate(&config.data_dir, &config.tls.names)?,
    };
    let metrics = Arc::new(Metrics::default());
    let listener = crate::server::bind_client_api(config, &identity, &metrics).await?;
    tracing::warn!(
        listen = %listener.local_addr,
        key_hash = %identity.key_hash(),
        threshold = record.threshold,
        shares = record.shares.len(),
        "custos-cas LOCKED: the master key was not released ({failure}); {} of the {} recovery shares unlock it: each operator attests this CAS and runs `custos cas recover`",
        record.threshold,
        record.shares.len(),
    );
    let (unlock, unlocked) = oneshot::channel();
    let locked = Arc::new(Locked {
        record,
        shares: Mutex::new(Vec::new()),
        unlock: Mutex::new(Some(unlock)),
        evidence,
        identity,
        slots: Arc::new(Semaphore::new(2)),
        metrics,
    });
    let server =
        tokio::spawn(listener.serve(move |request, peer| locked.clone().handle(request, peer)));
    let master = unlocked.await;
    // The listener closes with its task: the unlocked CAS binds the address again.
    server.abort();
    let _ = server.await;
    let master = master.map_err(|_| {
        StartError::Release(ReleaseFailure::Envelope("the locked API stopped".into()))
    })?;
    tracing::info!("master key recovered from the operators' shares");
    Ok(master)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Locked {
    async fn handle(
        self: Arc<Self>,
        request: Request<RequestBody>,
        _peer: Peer,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let result = match (request.method(), request.uri().path()) {
            (&Method::GET, "/healthz") => Err(self.locked()),
            (&Method::GET, "/v1/version") => Ok(json_response(
                StatusCode::OK,
                &crate::api::version(self.evidence.as_ref().is_some_and(|e| e.is_simulation())),
            )),
            (&Method::GET, "/v1/attest") => {
                let query = request.uri().query().unwrap_or("").to_owned();
                let attestation = SelfAttestation {
                    source: self.evidence.clone(),
                    cas_spki: &self.identity.spki,
                    cas_certificate_pem: &self.identity.certificate_pem,
                    slots: &self.slots,
                    metrics: &self.metrics,
                };
                attestation.answer(&query).await
            }
            (&Method::GET, RECOVERY_PATH) => Ok(json_response(
                StatusCode::OK,
                &RecoveryStatus {
                    threshold: self.record.threshold,
                    received: lock(&self.shares).len(),
                    shares: self.record.shares.clone(),
                },
            )),
            (&Method::POST, SHARE_PATH) => self.submit(request).await,
            _ => Err(self.locked()),
        };
        Ok(result.unwrap_or_else(|e| e.response()))
    }

    fn locked(&self) -> HttpError {
        HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "locked",
            format!(
                "this CAS is locked: its master key was not released; {} of {} recovery shares received, {} needed (custos cas recover)",
                lock(&self.shares).len(),
                self.record.shares.len(),
                self.record.threshold
            ),
        )
    }

    async fn submit(
        &self,
        request: Request<RequestBody>,
    ) -> Result<Response<Full<Bytes>>, HttpError> {
        let body = Limited::new(request.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                HttpError::bad_request(
                    "bad_body",
                    format!("expected at most {MAX_BODY} bytes of JSON: {e}"),
                )
            })?
            .to_bytes();
        let submission: ShareSubmission = serde_json::from_slice(&body).map_err(|e| {
            HttpError::bad_request("bad_share", format!("expected {{\"share\": base64}}: {e}"))
        })?;
        let plain =
            zeroize::Zeroizing::new(STANDARD.decode(submission.share.trim()).map_err(|e| {
                HttpError::bad_request("bad_share", format!("share: expected base64: {e}"))
            })?);
        let share =
            parse_share(&plain).map_err(|e| HttpError::bad_request("bad_share", e.to_string()))?;
        let index = share.index;
        // Checked alone first: a wrong share is named, and never mixed with good ones.
        self.record
            .check(&share)
            .map_err(|e| HttpError::new(StatusCode::FORBIDDEN, "wrong_share", e.to_string()))?;
        let mut shares = lock(&self.shares);
        if !shares.iter().any(|s| s.index == index) {
            shares.push(share);
        }
        let received = shares.len();
        let mut unlocked = false;
        if received >= self.record.threshold {
            let master = self
                .record
                .recover(&shares)
                .map_err(|e| HttpError::internal("recovery_failed", e.to_string()))?;
            if let Some(unlock) = lock(&self.unlock).take() {
                unlocked = unlock.send(master).is_ok();
            }
        }
        tracing::info!(
            index,
            received,
            threshold = self.record.threshold,
            "recovery share accepted"
        );
        Ok(json_response(
            StatusCode::OK,
            &ShareAccepted {
                index,
                received,
                threshold: self.record.threshold,
                unlocked,
            },
        ))
    }
}
