//! Wire types shared by the programs that take part in attested secret delivery: the
//! enclave API between `custos-run` and the CAS (`docs/enclave-api.md` § The protocol), the
//! LAS API between `custos-run` and the node agent (`docs/enclave-api.md` § The LAS API), and
//! the CAS's client API ([`client`], [`audit`]; `docs/cas.md` § The client API). One
//! definition, so both ends agree byte for byte; every API answers errors with [`ErrorBody`].
//!
//! Bytes travel as base64url without padding. Values that may hold secrets (the environment
//! and files the CAS delivers) are zeroized on drop and never shown by `Debug`.
//!
//! This crate must stay free of I/O and crypto: it is data only.

#![warn(missing_docs)]

pub mod audit;
pub mod client;
pub mod enclave;
mod error;
pub mod las;
pub mod recovery;

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

pub use error::{ErrorBody, ErrorDetail};
