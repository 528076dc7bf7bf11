//! The Custos trust core: evidence that an enclave is what it claims to be.
//!
//! The CAS hands a workload its secrets only after this crate has (1) verified the
//! workload's evidence — an SGX quote by local Intel DCAP verification ([`dcap`]), a token
//! from Microsoft Azure Attestation ([`maa`]), or, without hardware, a simulated quote
//! signed by a trusted platform key ([`sim`]) — into typed [`Claims`], and (2) evaluated
//! those claims against the service's policy ([`policy`]), explaining every denial with
//! expected and actual values.
//!
//! This crate must never accept evidence it could not authenticate (every path fails
//! closed), never let simulated evidence pass as hardware evidence, never trust a clock
//! it was not given (verification takes the time as an argument), and never panic or
//! allocate without bound on untrusted bytes: parsers borrow from their input and check
//! every length.
//!
//! # Layout
//! - [`quote`] and [`oe`]: parsers for SGX ECDSA quotes (v3, v4 with an SGX body) and Open
//!   Enclave reports; [`sim`]: the simulated quote format, platform keys, its verifier.
//! - [`Verifier`]: the one trait every evidence verifier implements, with its security
//!   contract; [`Verifiers`] dispatches by [`EvidenceKind`]. Verifiers: [`sim::SimQuoteVerifier`],
//!   [`dcap::DcapVerifier`] (collateral from a file or [`dcap::pccs`]); MAA tokens are checked by
//!   [`maa::MaaTokenVerifier`], and the MAA service itself by [`maa::signers`].
//! - [`policy::evaluate`]: claims against a [`policy::ServicePolicy`] → allow, or deny with
//!   every failed check.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod claims;
#[cfg(feature = "dcap")]
pub mod dcap;
pub mod error;
pub mod evidence;
pub mod gramine;
#[cfg(feature = "maa")]
pub mod maa;
pub mod oe;
pub mod policy;
pub mod quote;
mod reader;
pub mod sim;
#[cfg(any(feature = "dcap", feature = "maa"))]
mod time;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use claims::{Claims, EvidenceKind, ReportData, Tcb, TcbStatus, VerifiedBy};
pub use error::ParseError;
pub use rustls_pki_types::UnixTime;
pub use sim::{PlatformKey, PlatformPublicKey, SimError, SimReport, TrustedPlatforms};

/// A verifier of one kind of evidence.
///
/// # Security contract
///
/// `verify` returns `Ok(claims)` only if
/// - `evidence` is authentic under this verifier's trust anchors, as of `now`: for DCAP,
///   a quote chained to the configured Intel root CA with valid collateral; for
///   simulation, a quote signed by one of the trusted platform keys;
/// - the enclave bound `runtime_data` to the evidence: `claims.report_data[0..32] ==
///   SHA-256(runtime_data)` (the MAA convention); `claims.runtime_data` is then
///   `Some(runtime_data)`.
///
/// The claims are facts vouched for by `claims.verified_by`; they are not a decision.
/// The caller must still
/// - evaluate them against the service's policy ([`policy::evaluate`]): measurements,
///   signer, debug mode, TCB status and advisories, trusted platforms;
/// - check that `runtime_data` is fresh and its own (it carries the caller's single-use
///   nonce and the key the enclave will use), because this trait does not know the
///   nonce;
/// - register only the verifiers its mode allows (no [`sim::SimQuoteVerifier`] where
///   hardware evidence is required).
pub trait Verifier: Send + Sync {
    /// The evidence kind this verifier accepts.
    fn kind(&self) -> EvidenceKind;

    /// Verifies `evidence` and its binding to `runtime_data` as of `now`.
    fn verify(
        &self,
        evidence: &[u8],
        runtime_data: &[u8],
        now: UnixTime,
    ) -> Result<Claims, VerifyError>;
}

/// Why evidence was not accepted. Each variant names the failed check with expected and
/// actual values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The evidence is malformed.
    #[error("malformed evidence: {0}")]
    Parse(#[from] ParseError),
    /// Simulation evidence was rejected.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// DCAP verification rejected the quote.
    #[cfg(feature = "dcap")]
    #[error(transparent)]
    Dcap(#[from] dcap::DcapError),
    /// An MAA token was rejected.
    #[cfg(feature = "maa")]
    #[error(transparent)]
    Maa(#[from] maa::MaaError),
    /// The evidence does not bind the runtime data.
    #[error(
        "report data does not bind the runtime data: expected report_data[0..32] = {expected}, found {actual}"
    )]
    ReportDataMismatch {
        /// SHA-256 of the runtime data, hex.
        expected: String,
        /// `report_data[0..32]`, hex.
        actual: String,
    },
    /// No verifier is configured for this kind of evidence.
    #[error("evidence type {kind} is not accepted here (accepted: {accepted})")]
    NotAccepted {
        /// The evidence kind offered.
        kind: EvidenceKind,
        /// The kinds with a verifier, comma-separated.
        accepted: String,
    },
}

/// Checks that `claims.report_data[0..32] == SHA-256(runtime_data)` and records the
/// runtime data in the claims.
pub fn check_binding(mut claims: Claims, runtime_data: &[u8]) -> Result<Claims, VerifyError> {
    let expected = ReportData::binding(runtime_data);
    if claims.report_data.hash_part() != expected.hash_part() {
        return Err(VerifyError::ReportDataMismatch {
            expected: hex::encode(expected.hash_part()),
            actual: hex::encode(claims.report_data.hash_part()),
        });
    }
    claims.runtime_data = Some(runtime_data.to_vec());
    Ok(claims)
}

/// Verifiers by evidence kind: the configuration decides which kinds are accepted.
#[derive(Clone, Default)]
pub struct Verifiers {
    by_kind: BTreeMap<EvidenceKind, Arc<dyn Verifier>>,
}

impl std::fmt::Debug for Verifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_kind.keys()).finish()
    }
}

impl Verifiers {
    /// Accepts nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the verifier for its kind.
    pub fn with(mut self, verifier: impl Verifier + 'static) -> Self {
        self.by_kind.insert(verifier.kind(), Arc::new(verifier));
        self
    }

    /// The accepted kinds.
    pub fn kinds(&self) -> impl Iterator<Item = EvidenceKind> + '_ {
        self.by_kind.keys().copied()
    }

    /// Verifies evidence of `kind` with the verifier registered for it.
    pub fn verify(
        &self,
        kind: EvidenceKind,
        evidence: &[u8],
        runtime_data: &[u8],
        now: UnixTime,
    ) -> Result<Claims, VerifyError> {
        let verifier = self
            .by_kind
            .get(&kind)
            .ok_or_else(|| VerifyError::NotAccepted {
                kind,
                accepted: self
                    .kinds()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        verifier.verify(evidence, runtime_data, now)
    }
}
