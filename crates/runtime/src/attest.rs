//! One attestation: challenge, runtime data over a fresh ephemeral key, evidence, attest.

use std::path::Path;

use custos_attestation::ReportData;
use custos_attestation::sim::measure_executable;
use custos_ids::MrEnclave;
use custos_protocol::enclave::{AttestRequest, Delivery, RuntimeData};

use crate::RunError;
use crate::cas::CasClient;
use crate::config::{Mode, RunConfig};
use crate::evidence::EvidenceSource;
use crate::identity::EphemeralKey;

/// Where evidence comes from under `config`: Gramine's device, or the LAS (simulation; in
/// `auto` mode with a warning).
pub fn evidence_source(config: &RunConfig) -> EvidenceSource {
    match config.mode {
        Mode::Hardware => EvidenceSource::Gramine(config.attestation_dir.clone()),
        Mode::Simulation => EvidenceSource::Las(config.las.url("http")),
        Mode::Auto if config.attestation_dir.exists() => {
            EvidenceSource::Gramine(config.attestation_dir.clone())
        }
        Mode::Auto => {
            eprintln!(
                "custos-run: WARNING: no {} (not in an SGX enclave): SIMULATION, evidence from the LAS at {}",
                config.attestation_dir.display(),
                config.las
            );
            EvidenceSource::Las(config.las.url("http"))
        }
    }
}

/// Attests `program` as `config_id` to the CAS of `config`; returns what to start it with.
pub async fn attest(
    config: &RunConfig,
    config_id: &str,
    program: &Path,
) -> Result<Delivery, RunError> {
    let source = evidence_source(config);
    let measurement = measure_executable(program).map_err(|e| RunError::Program {
        path: program.to_path_buf(),
        reason: format!("cannot measure: {e}"),
    })?;
    if config.cas.is_empty() {
        return Err(RunError::Config(crate::config::ConfigError::Missing {
            name: "CUSTOS_CAS_ADDR",
            why: "a config id needs the CAS that holds its session (host[:18765])",
        }));
    }
    let key = EphemeralKey::generate()?;
    let cas =
        CasClient::with_replicas(&config.cas, &config.cas_trust, &key, source.is_simulation())?;
    let request = request(&cas, &key, &source, config_id, &measurement).await?;
    cas.attest(&request).await
}

/// The attest request for `config_id`: a fresh nonce from `cas`, the runtime data naming it
/// and `key`, and evidence from `source` binding them (for a program measured as
/// `measurement`). `cas` must present `key` as its client certificate.
pub async fn request(
    cas: &CasClient,
    key: &EphemeralKey,
    source: &EvidenceSource,
    config_id: &str,
    measurement: &MrEnclave,
) -> Result<AttestRequest, RunError> {
    let nonce = cas.challenge(config_id).await?;
    let runtime_data = serde_json::to_vec(&RuntimeData {
        nonce,
        jwk: key.jwk(),
    })
    .map_err(|e| RunError::Local(format!("runtime data: {e}")))?;
    let report_data = ReportData::binding(&runtime_data);
    let evidence = source
        .evidence(cas.http(), &report_data, measurement)
        .await?;
    Ok(AttestRequest {
        config_id: config_id.to_owned(),
        evidence,
        runtime_data,
    })
}
