//! Why evidence did not yield claims: typed until the answer is written, where each becomes
//! one reason of the 403 `attestation_denied` (its `Display`, which names the check with
//! expected and actual values).

use custos_attestation::VerifyError;
use custos_attestation::claims::UnknownEvidenceKind;
use custos_attestation::dcap::DcapError;
use custos_attestation::maa::MaaError;
use custos_attestation::maa::trust::SignerRefused;
use custos_azure::MaaClientError;
use custos_ids::KeyHash;

/// Why `mode: hardware` or `mode: maa` did not verify the evidence.
#[derive(Debug, thiserror::Error)]
pub enum Unverified {
    /// The request names an evidence type this CAS does not know.
    #[error("evidence: {0}")]
    UnknownKind(#[from] UnknownEvidenceKind),
    /// DCAP collateral for the evidence's platform could not be fetched.
    #[error("evidence: {0}")]
    Collateral(DcapError),
    /// The verifier for the evidence's type refused it.
    #[error("evidence: {0}")]
    Verify(VerifyError),
    /// A `sim-quote`, and this CAS trusts no simulation platform key.
    #[error(
        "evidence: expected hardware evidence (sgx-quote, oe-report), actual sim-quote: this CAS trusts no simulation platform key (see enclave.trusted_platform_keys)"
    )]
    SimulationNotTrusted,
    /// An MAA token in `mode: hardware`: the CAS takes tokens only from MAA itself.
    #[error(
        "evidence: expected sgx-quote, oe-report or sim-quote, actual maa-token (the CAS asks MAA itself in mode: maa)"
    )]
    MaaTokenOffered,
    /// Simulated evidence signed by a platform key the CAS trusts but the session does not.
    #[error(
        "trusted_platform_keys: expected one of [{}], actual {actual}",
        allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    PlatformNotAllowed {
        /// The session's `trusted_platform_keys`.
        allowed: Vec<KeyHash>,
        /// The key that signed the evidence.
        actual: KeyHash,
    },
    /// MAA did not vouch for the evidence, or its token was not believed.
    #[error("maa: {0}")]
    Maa(#[from] MaaFailure),
}

/// Why `mode: maa` did not yield claims.
#[derive(Debug, thiserror::Error)]
pub enum MaaFailure {
    /// The session names no MAA instance.
    #[error("the session has no url")]
    NoUrl,
    /// An MAA token offered as evidence: the CAS asks MAA itself.
    #[error(
        "evidence: expected sgx-quote, oe-report or sim-quote, actual maa-token (the CAS asks MAA itself)"
    )]
    TokenOffered,
    /// MAA could not be reached or refused the evidence, or its signing keys.
    #[error(transparent)]
    Service(#[from] MaaClientError),
    /// The token (or the signing keys it is checked with) failed verification.
    #[error(transparent)]
    Token(#[from] MaaError),
    /// The token's signing key was not among the keys the self-check examined.
    #[error("signing key {kid}: not examined (not in the signing keys)")]
    NotExamined {
        /// The token's `kid`.
        kid: String,
    },
    /// The self-check refused the key that signed the token.
    #[error(transparent)]
    Signer(#[from] SignerRefused),
}
