//! The LAS API (`docs/enclave-api.md` § The LAS API): a workload asks its node's agent for evidence.

use serde::{Deserialize, Serialize};

/// `POST /v1/quote`: evidence over `report_data` for the workload measured as `measurement`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// The 64-byte report data, hex (`SHA-256(runtime_data) ‖ 0^32`).
    pub report_data: String,
    /// The workload's measurement, hex (in simulation: SHA-256 of the executable).
    pub measurement: String,
}

/// The answer to a [`QuoteRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteResponse {
    /// The evidence type (`sim-quote` from a simulating LAS).
    #[serde(rename = "type")]
    pub kind: String,
    /// The quote.
    #[serde(with = "crate::base64url")]
    pub quote: Vec<u8>,
}
