//! The identifiers Custos names keys and enclaves by, and the conversions between their
//! forms — one type per concept, shared by every crate (as `rustls-pki-types` is for TLS).
//!
//! - [`KeyHash`]: the SHA-256 of a SubjectPublicKeyInfo DER. A client's identity, a platform
//!   key's id, a pinned CAS key and a public-key hash in an access policy are all this one
//!   value.
//! - [`MrEnclave`], [`MrSigner`]: SGX enclave measurements; [`TrustedMaaEnclave`]: an MAA
//!   enclave identity trusted to sign tokens.
//! - [`spki`]: a certificate's SubjectPublicKeyInfo, P-256 points ↔ SubjectPublicKeyInfo;
//!   [`jwk`]: P-256 JWK members ↔ SubjectPublicKeyInfo.
//! - [`hex_id!`]: the fixed-size hex newtype all of these are, with one [`HexError`].
//! - [`pem::encode`]: the one PEM writer; [`fmt`]: an error with its sources on one line, a
//!   GUID from 16 bytes.

#![warn(missing_docs)]

pub mod fmt;
pub mod hex;
pub mod jwk;
mod key_hash;
pub mod pem;
mod sgx;
pub mod spki;

pub use hex::HexError;
pub use key_hash::KeyHash;
pub use sgx::{MrEnclave, MrSigner, TrustedMaaEnclave};
pub use spki::{CertificateError, spki_of_certificate};

/// What [`hex_id!`] expands to refers to these, so a crate using the macro needs no
/// dependency of its own on them.
#[doc(hidden)]
pub mod __private {
    pub use hex;
    pub use serde;
}
