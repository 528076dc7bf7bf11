//! Which MAA enclaves may sign tokens: the judgement of the MAA self-check.
//!
//! [`super::signers::check_signer_trusting`] says what a signing key's certificate embeds;
//! [`judge`] decides whether tokens signed by that key are believed. A key passes only when
//! its certificate embeds enclave evidence, the evidence binds the key, the evidence is
//! authentic (DCAP-verified hardware evidence with a TCB that is not revoked, or a simulated
//! quote signed by a trusted platform key) and the enclave matches one of the trusted
//! identities. Each failure names its check, with expected and actual values.

use std::fmt;

use super::signers::SignerReport;
use crate::PlatformKeyId;
use crate::claims::{MrEnclave, MrSigner, TcbStatus};

/// An MAA enclave identity trusted to sign tokens. Every condition given must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedMaaEnclave {
    /// MRSIGNER.
    pub mrsigner: MrSigner,
    /// If given: the exact MRENCLAVE.
    pub mrenclave: Option<MrEnclave>,
    /// If given: the exact ISVPRODID.
    pub isvprodid: Option<u16>,
    /// If given: the smallest ISVSVN admitted.
    pub min_isvsvn: Option<u16>,
    /// Whether a debug enclave is admitted.
    pub debug_allowed: bool,
}

impl fmt::Display for TrustedMaaEnclave {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{mrsigner {}", self.mrsigner.to_hex())?;
        if let Some(m) = self.mrenclave {
            write!(f, ", mrenclave {}", m.to_hex())?;
        }
        if let Some(p) = self.isvprodid {
            write!(f, ", isvprodid {p}")?;
        }
        if let Some(s) = self.min_isvsvn {
            write!(f, ", isvsvn >= {s}")?;
        }
        let debug = if self.debug_allowed {
            "debug allowed"
        } else {
            "production only"
        };
        write!(f, ", {debug}}}")
    }
}

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

/// Whether tokens signed by the key `report` describes are believed: `Ok` or the failed
/// check, as `signing key <kid>: <check>: expected …, actual …`. `allowed_platforms`, when
/// not empty, narrows which (already trusted) platform keys may sign simulated evidence.
pub fn judge(
    report: &SignerReport,
    trusted: &[TrustedMaaEnclave],
    allowed_platforms: &[PlatformKeyId],
) -> Result<(), String> {
    let fail = |check: String| Err(format!("signing key {}: {check}", report.kid));
    if let Some(problem) = &report.problem {
        return fail(format!("enclave evidence: {problem}"));
    }
    if !report.enclave {
        return fail(format!(
            "enclave evidence: expected an Open Enclave report ({}) or an SGX quote ({}) in the signing certificate, actual none",
            super::signers::OID_MAA_OE_REPORT,
            super::signers::OID_MAA_SGX_QUOTE
        ));
    }
    if !report.binding_ok {
        let hex = |v: Option<[u8; 32]>| v.map_or_else(|| "none".to_owned(), hex::encode);
        return fail(format!(
            "key binding: expected report_data[0..32] {} (SHA-256 of the key's PEM), actual {}",
            hex(report.key_binding),
            hex(report.report_data_hash)
        ));
    }
    match (&report.simulated, &report.dcap) {
        (Some(Err(e)), _) => return fail(format!("simulated evidence: {e}")),
        (Some(Ok(platform)), _) => {
            if !allowed_platforms.is_empty() && !allowed_platforms.contains(platform) {
                let list: Vec<String> = allowed_platforms.iter().map(ToString::to_string).collect();
                return fail(format!(
                    "trusted_platform_keys: expected one of [{}], actual {platform}",
                    list.join(", ")
                ));
            }
        }
        (None, None) => {
            return fail(
                "DCAP: expected verified evidence, actual not verified (no collateral source)"
                    .into(),
            );
        }
        (None, Some(Err(e))) => return fail(format!("DCAP: {e}")),
        (None, Some(Ok(tcb))) if tcb.status == TcbStatus::Revoked => {
            return fail(format!(
                "DCAP TCB status: expected not Revoked, actual {}",
                tcb.status
            ));
        }
        (None, Some(Ok(_))) => {}
    }
    let Some(id) = report.identity else {
        return fail("enclave identity: expected one, actual none".into());
    };
    let same_signer: Vec<&TrustedMaaEnclave> = trusted
        .iter()
        .filter(|t| t.mrsigner == id.mrsigner)
        .collect();
    if same_signer.is_empty() {
        let list: Vec<String> = trusted.iter().map(|t| t.mrsigner.to_hex()).collect();
        return fail(format!(
            "enclave mrsigner: expected one of [{}], actual {}",
            list.join(", "),
            id.mrsigner.to_hex()
        ));
    }
    let mut mismatches = Vec::new();
    for t in same_signer {
        let mismatch = if let Some(m) = t.mrenclave.filter(|m| *m != id.mrenclave) {
            format!(
                "enclave mrenclave: expected {}, actual {}",
                m.to_hex(),
                id.mrenclave.to_hex()
            )
        } else if let Some(p) = t.isvprodid.filter(|p| *p != id.isvprodid) {
            format!("enclave isvprodid: expected {p}, actual {}", id.isvprodid)
        } else if let Some(s) = t.min_isvsvn.filter(|s| id.isvsvn < *s) {
            format!(
                "enclave isvsvn: expected at least {s}, actual {}",
                id.isvsvn
            )
        } else if id.debug && !t.debug_allowed {
            "enclave debug: expected a production enclave (debug_allowed is false), actual a debug enclave".to_owned()
        } else {
            return Ok(());
        };
        mismatches.push(mismatch);
    }
    fail(mismatches.join("; "))
}
