//! Wire types shared by the programs that take part in attested secret delivery: the
//! enclave API between `custos-run` and the CAS (`docs/enclave-api.md` § The protocol), and
//! the LAS API between `custos-run` and the node agent (`docs/enclave-api.md` § The LAS API). One definition, so both ends agree byte for byte.
//!
//! Bytes travel as base64url without padding. Values that may hold secrets (the environment
//! and files the CAS delivers) are zeroized on drop and never shown by `Debug`.
//!
//! This crate must stay free of I/O and crypto: it is data only.

#![warn(missing_docs)]

pub mod enclave;
pub mod las;

/// Serde for `Vec<u8>` as base64url without padding.
pub mod base64url {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes bytes as base64url without padding.
    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Deserializes base64url (padding tolerated) into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|e| serde::de::Error::custom(format!("invalid base64url: {e}")))
    }

    /// Encodes bytes as base64url without padding.
    pub fn encode(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// The error body of every Custos HTTP API: `{"error": {"code", "message", "reasons"?}}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`attestation_denied`, `bad_request`, ...).
    pub code: String,
    /// One human-readable sentence.
    pub message: String,
    /// For denials: every failed check, with expected and actual values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}
