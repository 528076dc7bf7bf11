//! Which MAA enclaves may sign tokens: the judgement of the MAA self-check.
//!
//! [`super::signers::check_signer_trusting`] says what a signing key's certificate embeds;
//! [`judge`] decides whether tokens signed by that key are believed. A key passes only when
//! its certificate embeds enclave evidence, the evidence binds the key, the evidence is
//! authentic (DCAP-verified hardware evidence with a TCB that is not revoked, or a simulated
//! quote signed by a trusted platform key) and the enclave matches one of the trusted
//! identities. Each failure names its check, with expected and actual values.

use custos_ids::{KeyHash, MrEnclave, MrSigner, TrustedMaaEnclave};

use super::signers::SignerReport;

use crate::claims::TcbStatus;

/// The MAA enclaves seen in the signing certificates recorded in
/// `crates/attestation/tests/data` (see its PROVENANCE.md): the shared West US instance's
/// key of 2022 (Open Enclave report) and the shared UK South instance's key of 2020 (raw
/// quote). Both are debug enclaves with ISVPRODID 1; the MRENCLAVE is not pinned because
/// MAA updates its enclave under the same signer.
pub fn observed_maa_enclaves() -> Vec<TrustedMaaEnclave> {
    [
        "74ba5fba208571cf99e1f7158e6536a05bbb6ce7807eef8f6a97f64a7af64b83",
        "5e5410aaf99a32e32df2a97d579e65f8310f274816ec4f34cedeeb1be410a526",
    ]
    .iter()
    // The literals are well-formed (a test counts them).
    .filter_map(|hex| hex.parse().ok())
    .map(|mrsigner| TrustedMaaEnclave {
        mrsigner,
        mrenclave: None,
        isvprodid: Some(1),
        min_isvsvn: None,
        debug_allowed: true,
    })
    .collect()
}

/// Why tokens signed by a key are not believed: the key and the check it failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing key {kid}: {check}")]
pub struct SignerRefused {
    /// The key's kid.
    pub kid: String,
    /// The failed check.
    pub check: SignerCheck,
}

/// A check of the MAA self-check, with expected and actual values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerCheck {
    /// The certificate's evidence could not be read.
    #[error("enclave evidence: {0}")]
    Unreadable(String),
    /// The certificate embeds no enclave evidence.
    #[error(
        "enclave evidence: expected an Open Enclave report ({}) or an SGX quote ({}) in the signing certificate, actual none",
        super::signers::OID_MAA_OE_REPORT,
        super::signers::OID_MAA_SGX_QUOTE
    )]
    NoEvidence,
    /// The evidence does not bind the certificate's key.
    #[error(
        "key binding: expected report_data[0..32] {} (SHA-256 of the key's PEM), actual {}",
        hex_or_none(.expected),
        hex_or_none(.actual)
    )]
    Binding {
        /// The binding the key calls for.
        expected: Option<[u8; 32]>,
        /// The evidence's `report_data[0..32]`.
        actual: Option<[u8; 32]>,
    },
    /// Simulated evidence whose signature did not verify under a trusted platform key.
    #[error("simulated evidence: {0}")]
    Simulated(String),
    /// Simulated evidence signed by a trusted platform key the session does not list.
    #[error(
        "trusted_platform_keys: expected one of [{}], actual {actual}",
        .allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    PlatformNotAllowed {
        /// The session's platform keys.
        allowed: Vec<KeyHash>,
        /// The key that signed the evidence.
        actual: KeyHash,
    },
    /// Hardware evidence that DCAP was not asked to verify.
    #[error("DCAP: expected verified evidence, actual not verified (no collateral source)")]
    NotVerified,
    /// Hardware evidence that DCAP refused.
    #[error("DCAP: {0}")]
    Dcap(String),
    /// The MAA platform's TCB is revoked.
    #[error("DCAP TCB status: expected not Revoked, actual {0}")]
    Revoked(TcbStatus),
    /// The evidence states no enclave identity.
    #[error("enclave identity: expected one, actual none")]
    NoIdentity,
    /// The enclave's signer is not a trusted one.
    #[error(
        "enclave mrsigner: expected one of [{}], actual {}",
        .expected.iter().map(MrSigner::to_hex).collect::<Vec<_>>().join(", "),
        .actual.to_hex()
    )]
    Mrsigner {
        /// The trusted signers.
        expected: Vec<MrSigner>,
        /// The enclave's.
        actual: MrSigner,
    },
    /// The enclave's signer is trusted, but no entry for it admits the enclave: why, per entry.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Identity(Vec<IdentityMismatch>),
}

/// Why one trusted entry with the enclave's signer does not admit it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityMismatch {
    /// Another MRENCLAVE.
    #[error("enclave mrenclave: expected {}, actual {}", .expected.to_hex(), .actual.to_hex())]
    Mrenclave {
        /// The entry's.
        expected: MrEnclave,
        /// The enclave's.
        actual: MrEnclave,
    },
    /// Another ISVPRODID.
    #[error("enclave isvprodid: expected {expected}, actual {actual}")]
    Isvprodid {
        /// The entry's.
        expected: u16,
        /// The enclave's.
        actual: u16,
    },
    /// An ISVSVN below the entry's minimum.
    #[error("enclave isvsvn: expected at least {min}, actual {actual}")]
    Isvsvn {
        /// The entry's minimum.
        min: u16,
        /// The enclave's.
        actual: u16,
    },
    /// A debug enclave where the entry admits production enclaves only.
    #[error(
        "enclave debug: expected a production enclave (debug_allowed is false), actual a debug enclave"
    )]
    Debug,
}

fn hex_or_none(v: &Option<[u8; 32]>) -> String {
    v.map_or_else(|| "none".to_owned(), hex::encode)
}

/// Whether tokens signed by the key `report` describes are believed: `Ok` or the failed
/// check. `allowed_platforms`, when not empty, narrows which (already trusted) platform keys
/// may sign simulated evidence.
pub fn judge(
    report: &SignerReport,
    trusted: &[TrustedMaaEnclave],
    allowed_platforms: &[KeyHash],
) -> Result<(), SignerRefused> {
    let fail = |check: SignerCheck| {
        Err(SignerRefused {
            kid: report.kid.clone(),
            check,
        })
    };
    if let Some(problem) = &report.problem {
        return fail(SignerCheck::Unreadable(problem.clone()));
    }
    if !report.enclave {
        return fail(SignerCheck::NoEvidence);
    }
    if !report.binding_ok {
        return fail(SignerCheck::Binding {
            expected: report.key_binding,
            actual: report.report_data_hash,
        });
    }
    match (&report.simulated, &report.dcap) {
        (Some(Err(e)), _) => return fail(SignerCheck::Simulated(e.clone())),
        (Some(Ok(platform)), _) => {
            if !allowed_platforms.is_empty() && !allowed_platforms.contains(platform) {
                return fail(SignerCheck::PlatformNotAllowed {
                    allowed: allowed_platforms.to_vec(),
                    actual: *platform,
                });
            }
        }
        (None, None) => return fail(SignerCheck::NotVerified),
        (None, Some(Err(e))) => return fail(SignerCheck::Dcap(e.clone())),
        (None, Some(Ok(tcb))) if tcb.status == TcbStatus::Revoked => {
            return fail(SignerCheck::Revoked(tcb.status));
        }
        (None, Some(Ok(_))) => {}
    }
    let Some(id) = report.identity else {
        return fail(SignerCheck::NoIdentity);
    };
    let same_signer: Vec<&TrustedMaaEnclave> = trusted
        .iter()
        .filter(|t| t.mrsigner == id.mrsigner)
        .collect();
    if same_signer.is_empty() {
        return fail(SignerCheck::Mrsigner {
            expected: trusted.iter().map(|t| t.mrsigner).collect(),
            actual: id.mrsigner,
        });
    }
    let mut mismatches = Vec::new();
    for t in same_signer {
        let mismatch = if let Some(m) = t.mrenclave.filter(|m| *m != id.mrenclave) {
            IdentityMismatch::Mrenclave {
                expected: m,
                actual: id.mrenclave,
            }
        } else if let Some(p) = t.isvprodid.filter(|p| *p != id.isvprodid) {
            IdentityMismatch::Isvprodid {
                expected: p,
                actual: id.isvprodid,
            }
        } else if let Some(s) = t.min_isvsvn.filter(|s| id.isvsvn < *s) {
            IdentityMismatch::Isvsvn {
                min: s,
                actual: id.isvsvn,
            }
        } else if id.debug && !t.debug_allowed {
            IdentityMismatch::Debug
        } else {
            return Ok(());
        };
        mismatches.push(mismatch);
    }
    fail(SignerCheck::Identity(mismatches))
}
