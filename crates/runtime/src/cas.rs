//! The enclave API client: how the runtime authenticates the CAS and talks to it.

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

/// A client of the CAS's enclave API (and of the LAS, over plain HTTP).
#[derive(Debug, Clone)]
pub struct CasClient {
    http: reqwest::Client,
    addr: String,
    base: String,
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
        let tls = tls_config(trust, key, simulation)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| RunError::Local(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            addr: cas.to_string(),
            base: cas.url("https"),
        })
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
        let answer: ChallengeResponse = self.post(CHALLENGE_PATH, &request, config_id).await?;
        Ok(answer.nonce)
    }

    /// Presents the evidence; returns what to start with, or the CAS's denial.
    pub async fn attest(&self, request: &AttestRequest) -> Result<Delivery, RunError> {
        self.post(ATTEST_PATH, request, &request.config_id).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
        config_id: &str,
    ) -> Result<T, RunError> {
        let cas_error = |reason: String| RunError::Cas {
            addr: self.addr.clone(),
            reason,
        };
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .map_err(|e| cas_error(error_chain(&e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| cas_error(error_chain(&e)))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| cas_error(format!("{path}: unexpected answer: {e}")));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(ErrorBody { error }) if error.code == "attestation_denied" => {
                Err(RunError::Denied {
                    config_id: config_id.to_owned(),
                    detail: error,
                })
            }
            Ok(ErrorBody { error }) => Err(cas_error(format!(
                "{path}: HTTP {status} {}: {}",
                error.code, error.message
            ))),
            Err(_) => Err(cas_error(format!(
                "{path}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ))),
        }
    }
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
