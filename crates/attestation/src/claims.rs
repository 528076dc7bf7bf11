//! What verified evidence says about an enclave: one typed [`Claims`] for every evidence kind.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use std::fmt;
use std::str::FromStr;

use custos_ids::{KeyHash, MrEnclave, MrSigner};
use serde::{Deserialize, Serialize};

use crate::quote::ReportBody;

custos_ids::hex_id!(
    /// The 64-byte `report_data` field an enclave chose when it produced its report.
    /// Custos (like MAA) binds runtime data by `report_data[0..32] = SHA-256(runtime_data)`.
    ReportData,
    64
);

impl ReportData {
    /// The report data that binds `runtime_data`: its SHA-256 followed by 32 zero bytes.
    pub fn binding(runtime_data: &[u8]) -> Self {
        let mut out = [0u8; 64];
        let (head, _) = out.split_at_mut(32);
        head.copy_from_slice(sha256(runtime_data).as_slice());
        Self(out)
    }

    /// The first 32 bytes, where the runtime-data hash goes.
    pub fn hash_part(&self) -> &[u8; 32] {
        let (head, _) = self.0.split_first_chunk::<32>().unwrap_or((&[0; 32], &[]));
        head
    }
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The kind of evidence bytes, as named on the wire (`evidence.type` of the enclave API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceKind {
    /// An SGX ECDSA quote, version 3 (or 4 with an SGX report body).
    SgxQuote,
    /// An Open Enclave remote report: a 16-byte header followed by an SGX quote.
    OeReport,
    /// A simulated quote signed by a platform key: evidence of nothing but the key's
    /// owner's word (see [`crate::sim`]).
    SimQuote,
    /// A token issued by Microsoft Azure Attestation after it verified an SGX quote.
    MaaToken,
}

impl EvidenceKind {
    /// The wire name (`sgx-quote`, `oe-report`, `sim-quote`, `maa-token`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::SgxQuote => "sgx-quote",
            Self::OeReport => "oe-report",
            Self::SimQuote => "sim-quote",
            Self::MaaToken => "maa-token",
        }
    }
}

impl fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown evidence type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown evidence type {0:?}: expected sgx-quote, oe-report, sim-quote or maa-token")]
pub struct UnknownEvidenceKind(pub String);

impl FromStr for EvidenceKind {
    type Err = UnknownEvidenceKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::SgxQuote,
            Self::OeReport,
            Self::SimQuote,
            Self::MaaToken,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| UnknownEvidenceKind(s.to_owned()))
    }
}

/// Who vouches for the claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum VerifiedBy {
    /// Local Intel DCAP verification, chained to this root CA.
    Dcap {
        /// SHA-256 of the trusted root CA certificate (DER), hex.
        root_ca_sha256: String,
    },
    /// A Microsoft Azure Attestation token from this issuer (instance URL).
    Maa {
        /// The token's `iss`, equal to the configured instance URL.
        issuer: String,
    },
    /// A simulated quote signed by this trusted platform key. Not hardware evidence.
    Simulation {
        /// The platform key that signed the quote.
        platform: KeyHash,
    },
}

impl VerifiedBy {
    /// A short name: `dcap`, `maa` or `simulation`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dcap { .. } => "dcap",
            Self::Maa { .. } => "maa",
            Self::Simulation { .. } => "simulation",
        }
    }
}

/// The TCB (trusted computing base) status of the platform, as judged by whoever verified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TcbStatus {
    /// Intel: the platform is patched and configured as recommended.
    UpToDate,
    /// Intel: up to date, but the enclave needs software mitigations (see the advisories).
    #[serde(rename = "SWHardeningNeeded")]
    SwHardeningNeeded,
    /// Intel: up to date, but the platform configuration (e.g. hyperthreading) is not recommended.
    ConfigurationNeeded,
    /// Intel: both of the above.
    #[serde(rename = "ConfigurationAndSWHardeningNeeded")]
    ConfigurationAndSwHardeningNeeded,
    /// Intel: the platform's TCB is out of date.
    OutOfDate,
    /// Intel: out of date and the configuration is not recommended.
    OutOfDateConfigurationNeeded,
    /// Intel: the platform's keys are revoked. Never acceptable.
    Revoked,
    /// MAA verified the TCB under its own policy; the token does not say which status.
    ManagedByMaa,
    /// Simulation: there is no TCB to assess.
    NotApplicable,
}

impl TcbStatus {
    /// The name used in JSON output and denials (Intel's spelling for Intel statuses).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::UpToDate => "UpToDate",
            Self::SwHardeningNeeded => "SWHardeningNeeded",
            Self::ConfigurationNeeded => "ConfigurationNeeded",
            Self::ConfigurationAndSwHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            Self::OutOfDate => "OutOfDate",
            Self::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            Self::Revoked => "Revoked",
            Self::ManagedByMaa => "ManagedByMaa",
            Self::NotApplicable => "NotApplicable",
        }
    }
}

impl fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TCB status with the Intel security advisories that apply to the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tcb {
    /// The status.
    pub status: TcbStatus,
    /// Advisory ids such as `INTEL-SA-00615`, in the order the verifier reported them.
    pub advisory_ids: Vec<String>,
}

/// Facts about an enclave established by a verifier. Every evidence kind maps to this
/// one type, so a policy is evaluated the same way whatever the evidence.
///
/// Claims are what the evidence says, vouched for by [`Claims::verified_by`]; whether
/// they are acceptable is for [`crate::policy`] to decide.
///
/// Only the verifiers of this crate make claims: the fields are private and there is no
/// `Deserialize`, so no other code can build (or alter) "verified" claims. Tests of code
/// that consumes claims build them with `TestClaims` (feature `testing`).
///
/// Neither a struct literal nor deserialization makes claims outside this crate:
///
/// ```compile_fail,E0451
/// # use custos_attestation::*;
/// let forged = Claims {
///     evidence: EvidenceKind::SgxQuote,
///     verified_by: VerifiedBy::Maa { issuer: "https://attacker.example".into() },
///     mrenclave: MrEnclave([0; 32]),
///     mrsigner: MrSigner([0; 32]),
///     isvprodid: 0,
///     isvsvn: 0,
///     debug: false,
///     report_data: ReportData([0; 64]),
///     runtime_data: None,
///     tcb: Tcb { status: TcbStatus::UpToDate, advisory_ids: vec![] },
/// };
/// ```
///
/// ```compile_fail,E0277
/// let forged: custos_attestation::Claims = serde_json::from_str("{}").unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    pub(crate) evidence: EvidenceKind,
    pub(crate) verified_by: VerifiedBy,
    pub(crate) mrenclave: MrEnclave,
    pub(crate) mrsigner: MrSigner,
    pub(crate) isvprodid: u16,
    pub(crate) isvsvn: u16,
    pub(crate) debug: bool,
    pub(crate) report_data: ReportData,
    #[serde(serialize_with = "opt_hex_bytes")]
    pub(crate) runtime_data: Option<Vec<u8>>,
    pub(crate) tcb: Tcb,
}

impl Claims {
    /// What kind of evidence was verified.
    pub fn evidence(&self) -> EvidenceKind {
        self.evidence
    }

    /// Who vouches for these claims.
    pub fn verified_by(&self) -> &VerifiedBy {
        &self.verified_by
    }

    /// The enclave measurement.
    pub fn mrenclave(&self) -> MrEnclave {
        self.mrenclave
    }

    /// The enclave signer.
    pub fn mrsigner(&self) -> MrSigner {
        self.mrsigner
    }

    /// ISV product id.
    pub fn isvprodid(&self) -> u16 {
        self.isvprodid
    }

    /// ISV security version number.
    pub fn isvsvn(&self) -> u16 {
        self.isvsvn
    }

    /// Whether the enclave is debuggable (its memory is readable by the host). Always true
    /// for simulation.
    pub fn debug(&self) -> bool {
        self.debug
    }

    /// The report data the enclave chose.
    pub fn report_data(&self) -> ReportData {
        self.report_data
    }

    /// The runtime data checked to be bound to `report_data` (or carried in the MAA token),
    /// when the verifier was given any.
    pub fn runtime_data(&self) -> Option<&[u8]> {
        self.runtime_data.as_deref()
    }

    /// The platform's TCB status and advisories.
    pub fn tcb(&self) -> &Tcb {
        &self.tcb
    }

    /// Claims from a report body whose authenticity the caller has just established.
    pub(crate) fn from_report_body(
        evidence: EvidenceKind,
        verified_by: VerifiedBy,
        body: &ReportBody,
        tcb: Tcb,
    ) -> Self {
        Self {
            evidence,
            verified_by,
            mrenclave: body.mr_enclave,
            mrsigner: body.mr_signer,
            isvprodid: body.isv_prod_id,
            isvsvn: body.isv_svn,
            debug: body.is_debug(),
            report_data: body.report_data,
            runtime_data: None,
            tcb,
        }
    }

    /// True for simulated evidence, which proves nothing about the hardware.
    pub fn is_simulation(&self) -> bool {
        matches!(self.verified_by, VerifiedBy::Simulation { .. })
    }

    /// The platform key that signed simulated evidence.
    pub fn platform(&self) -> Option<&KeyHash> {
        match &self.verified_by {
            VerifiedBy::Simulation { platform } => Some(platform),
            _ => None,
        }
    }
}

fn opt_hex_bytes<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(bytes) => s.serialize_some(&hex::encode(bytes)),
        None => s.serialize_none(),
    }
}

/// Claims that no verifier vouched for, for tests of code that consumes [`Claims`]
/// (policies, reports). Only with the `testing` feature, which no production build enables.
#[cfg(feature = "testing")]
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct TestClaims {
    pub evidence: EvidenceKind,
    pub verified_by: VerifiedBy,
    pub mrenclave: MrEnclave,
    pub mrsigner: MrSigner,
    pub isvprodid: u16,
    pub isvsvn: u16,
    pub debug: bool,
    pub report_data: ReportData,
    pub runtime_data: Option<Vec<u8>>,
    pub tcb: Tcb,
}

#[cfg(feature = "testing")]
impl TestClaims {
    /// These values as [`Claims`], although nothing verified them.
    pub fn unverified(self) -> Claims {
        Claims {
            evidence: self.evidence,
            verified_by: self.verified_by,
            mrenclave: self.mrenclave,
            mrsigner: self.mrsigner,
            isvprodid: self.isvprodid,
            isvsvn: self.isvsvn,
            debug: self.debug,
            report_data: self.report_data,
            runtime_data: self.runtime_data,
            tcb: self.tcb,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_data_binding_is_sha256_then_zeros() {
        let rd = ReportData::binding(b"abc");
        assert_eq!(
            hex::encode(rd.hash_part()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(rd.0[32..].iter().all(|b| *b == 0));
    }

    #[test]
    fn evidence_kinds_parse_from_their_wire_names() {
        for k in [
            EvidenceKind::SgxQuote,
            EvidenceKind::OeReport,
            EvidenceKind::SimQuote,
            EvidenceKind::MaaToken,
        ] {
            assert_eq!(k.as_str().parse::<EvidenceKind>().unwrap(), k);
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert!("sgx".parse::<EvidenceKind>().is_err());
    }

    #[test]
    fn tcb_status_serializes_with_intel_spelling() {
        assert_eq!(
            serde_json::to_string(&TcbStatus::ConfigurationAndSwHardeningNeeded).unwrap(),
            "\"ConfigurationAndSWHardeningNeeded\""
        );
        assert_eq!(
            TcbStatus::SwHardeningNeeded.to_string(),
            "SWHardeningNeeded"
        );
    }
}
