//! Evidence for the runtime data: from the node's LAS (simulation) or from Gramine's
//! `/dev/attestation` (hardware).

use std::path::{Path, PathBuf};

use custos_attestation::ReportData;
use custos_ids::MrEnclave;
use custos_protocol::enclave::EvidenceBytes;
use custos_protocol::las::{QuoteRequest, QuoteResponse};

use crate::RunError;

/// Where the runtime gets its evidence.
#[derive(Debug, Clone)]
pub enum EvidenceSource {
    /// A LAS at this base URL signs a sim-quote (simulation).
    Las(String),
    /// Gramine's attestation pseudo-files in this directory (SGX DCAP quote).
    Gramine(PathBuf),
}

impl EvidenceSource {
    /// Whether this evidence is simulated.
    pub fn is_simulation(&self) -> bool {
        matches!(self, Self::Las(_))
    }

    /// Evidence carrying `report_data` for the program measured as `measurement` (used by the
    /// LAS only: hardware measures the enclave itself).
    pub async fn evidence(
        &self,
        http: &reqwest::Client,
        report_data: &ReportData,
        measurement: &MrEnclave,
    ) -> Result<EvidenceBytes, RunError> {
        match self {
            Self::Las(base) => las_quote(http, base, report_data, measurement).await,
            Self::Gramine(dir) => gramine_quote(dir, report_data),
        }
    }
}

async fn las_quote(
    http: &reqwest::Client,
    base: &str,
    report_data: &ReportData,
    measurement: &MrEnclave,
) -> Result<EvidenceBytes, RunError> {
    let error = |reason: String| RunError::Evidence {
        source_name: format!("LAS at {base}"),
        reason,
    };
    let request = QuoteRequest {
        report_data: report_data.to_hex(),
        measurement: measurement.to_hex(),
    };
    let response = http
        .post(format!("{base}/v1/quote"))
        .json(&request)
        .send()
        .await
        .map_err(|e| error(custos_ids::fmt::error_chain(&e)))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| error(e.to_string()))?;
    if !status.is_success() {
        return Err(error(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .collect::<String>()
        )));
    }
    let quote: QuoteResponse =
        serde_json::from_slice(&body).map_err(|e| error(format!("unexpected answer: {e}")))?;
    Ok(EvidenceBytes {
        kind: quote.kind,
        quote: quote.quote,
    })
}

fn gramine_quote(dir: &Path, report_data: &ReportData) -> Result<EvidenceBytes, RunError> {
    let quote = custos_attestation::gramine::sgx_quote(dir, report_data).map_err(|e| {
        RunError::Evidence {
            source_name: dir.display().to_string(),
            reason: e.to_string(),
        }
    })?;
    Ok(EvidenceBytes {
        kind: "sgx-quote".into(),
        quote,
    })
}
