//! The LAS API (`docs/enclave-api.md` § The LAS API): a workload asks its node's agent for evidence.
//! Errors are [`crate::ErrorBody`].

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

/// `GET /v1/platform`: the platform key a CAS is told to trust (`enclave.trusted_las`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `simulation`.
    pub mode: String,
    /// The platform key's id, hex (what `enclave.trusted_platform_keys` takes).
    pub key_id: String,
    /// The platform's public key, PEM `PUBLIC KEY`.
    pub public_key_pem: String,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// `simulation`.
    pub mode: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_answer_as_the_las_wrote_it_parses_and_round_trips() {
        let json = serde_json::json!({"mode": "simulation", "key_id": "ab",
            "public_key_pem": "-----BEGIN PUBLIC KEY-----\n"});
        let platform: Platform = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(platform.key_id, "ab");
        assert_eq!(serde_json::to_value(&platform).unwrap(), json);
    }
}
