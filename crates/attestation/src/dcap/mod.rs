//! Local Intel DCAP verification of SGX quotes (`mode: hardware`), with `dcap-qvl`.
//!
//! Trust is anchored on one root CA certificate: Intel's production SGX Root CA by
//! default ([`RootCa::intel_production`]), another only when configured explicitly
//! ([`RootCa::from_der`], e.g. Intel's test PKI in tests). Verification needs the
//! platform's collateral — TCB info, QE identity, CRLs and their issuer chains, in
//! `dcap-qvl`'s [`Collateral`] (`QuoteCollateralV3`) JSON — from a file or fetched from a
//! PCCS/THIM ([`pccs`]) into an on-disk cache.
//!
//! What is checked (by `dcap-qvl` with aws-lc-rs for the signatures, after our own strict parse): the collateral's
//! signatures and certificate chains up to the root, the CRLs, the PCK certificate chain
//! in the quote, the QE report's signature by the PCK, the attestation key's hash in the
//! QE report, the QE's identity, the quote's signature by the attestation key, and the
//! platform's TCB level. Before that, we check the collateral is valid at the given time,
//! so an expired collateral is reported with its dates. The result is a TCB status with
//! Intel advisory ids; debug enclaves are verified too (the policy decides on debug).

mod crypto;
#[cfg(feature = "pccs")]
pub mod pccs;

use std::fmt;
use std::sync::Arc;

use dcap_qvl::verify::QuoteVerifier;
use rustls_pki_types::UnixTime;

use self::crypto::AwsLcConfig;
use crate::claims::{Claims, EvidenceKind, Tcb, TcbStatus, VerifiedBy, sha256};
use crate::error::ParseError;
use crate::oe::OeReport;
use crate::quote::{INTEL_QE_VENDOR_ID, Quote};
use crate::sim::claims_simulation;
use crate::time::{format_rfc3339_utc, parse_rfc3339_utc};

/// Collateral for one platform (FMSPC), in `dcap-qvl`'s `QuoteCollateralV3` form; its
/// JSON is what `--collateral` files contain.
pub use dcap_qvl::QuoteCollateralV3 as Collateral;

/// Intel's production SGX Root CA (CN=Intel SGX Root CA), DER.
const INTEL_SGX_ROOT_CA_DER: &[u8] = include_bytes!("intel_sgx_root_ca.der");

/// Why DCAP verification rejected a quote.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DcapError {
    /// The evidence is malformed.
    #[error("malformed quote: {0}")]
    Parse(#[from] ParseError),
    /// A simulated quote was offered for hardware verification.
    #[error(
        "simulated quote offered as hardware evidence: DCAP verifies only quotes from Intel's quoting enclave"
    )]
    Simulated,
    /// The quote's QE vendor id is not Intel's.
    #[error("QE vendor id: expected {expected} (Intel), found {found}")]
    QeVendor {
        /// Intel's vendor id, hex.
        expected: String,
        /// The quote's, hex.
        found: String,
    },
    /// The root CA certificate could not be used.
    #[error("root CA certificate: {0}")]
    RootCa(String),
    /// The collateral could not be read.
    #[error("collateral: {0}")]
    CollateralFormat(String),
    /// A collateral item is not valid at the verification time.
    #[error("collateral {item} is valid from {valid_from} until {valid_until}, not at {now}")]
    CollateralNotValid {
        /// `tcb_info` or `qe_identity`.
        item: &'static str,
        /// Its issue date (RFC 3339).
        valid_from: String,
        /// Its next update (RFC 3339).
        valid_until: String,
        /// The verification time (RFC 3339).
        now: String,
    },
    /// No collateral is available for the quote's platform.
    #[error("no collateral for FMSPC {fmspc} ({ca} CA) valid at {now}{hint}")]
    CollateralUnavailable {
        /// The platform's FMSPC, hex.
        fmspc: String,
        /// `processor` or `platform`.
        ca: String,
        /// The verification time (RFC 3339).
        now: String,
        /// Where it was looked for.
        hint: String,
    },
    /// Fetching collateral from a PCCS/THIM failed.
    #[error("collateral fetch from {url}: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The collateral cache could not be written.
    #[error("collateral cache {path}: {reason}")]
    Cache {
        /// The cache file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The quote's PCK certificate is not usable to find its platform.
    #[error("PCK certificate in the quote: {0}")]
    Pck(String),
    /// dcap-qvl rejected the quote (chains, signatures, CRLs, identities, TCB level).
    #[error("DCAP verification failed: {0}")]
    Rejected(String),
    /// A TCB status this verifier does not know (never accepted).
    #[error("unknown TCB status {0:?}")]
    UnknownTcbStatus(String),
}

/// The root CA that DCAP verification chains to.
#[derive(Clone, PartialEq, Eq)]
pub struct RootCa {
    der: Arc<[u8]>,
    sha256: String,
}

impl fmt::Debug for RootCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootCa(sha256 {})", self.sha256)
    }
}

impl RootCa {
    /// Intel's production SGX Root CA: the default trust anchor.
    pub fn intel_production() -> Self {
        Self {
            der: INTEL_SGX_ROOT_CA_DER.into(),
            sha256: hex::encode(sha256(INTEL_SGX_ROOT_CA_DER)),
        }
    }

    /// Another root, configured explicitly (e.g. Intel's test PKI). Must be an X.509
    /// certificate in DER.
    pub fn from_der(der: &[u8]) -> Result<Self, DcapError> {
        x509_parser::parse_x509_certificate(der)
            .map_err(|e| DcapError::RootCa(format!("not a DER X.509 certificate ({e})")))?;
        Ok(Self {
            der: der.into(),
            sha256: hex::encode(sha256(der)),
        })
    }

    /// From a PEM `CERTIFICATE`.
    pub fn from_pem(pem: &[u8]) -> Result<Self, DcapError> {
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(pem)
            .map_err(|_| DcapError::RootCa("no PEM CERTIFICATE block".into()))?;
        Self::from_der(der.as_ref())
    }

    /// SHA-256 of the certificate DER (its fingerprint), hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Whether this is Intel's production root.
    pub fn is_intel_production(&self) -> bool {
        &*self.der == INTEL_SGX_ROOT_CA_DER
    }
}

/// The platform a quote comes from, which selects its collateral.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlatformId {
    /// FMSPC (family-model-stepping-platform-customSKU), 12 upper-case hex characters.
    pub fmspc: String,
    /// The PCK's issuing CA: `processor` or `platform`.
    pub ca: &'static str,
}

impl PlatformId {
    /// The platform of a quote with its PCK certificate chain (certification data type 5).
    pub fn of_quote(quote: &Quote<'_>) -> Result<Self, DcapError> {
        let pem = quote.certification.pck_chain_pem().ok_or_else(|| {
            DcapError::Pck(format!(
                "certification data type {} has no PCK certificate chain (type 5 required)",
                quote.certification.kind
            ))
        })?;
        let ext = dcap_qvl::intel::parse_pck_extension_from_pem_with::<AwsLcConfig>(pem)
            .map_err(|e| DcapError::Pck(format!("{e:#}")))?;
        let leaf = pem_leaf_der(pem)?;
        let ca = dcap_qvl::intel::pck_ca_with::<AwsLcConfig>(&leaf)
            .map_err(|e| DcapError::Pck(format!("{e:#}")))?;
        Ok(Self {
            fmspc: hex::encode_upper(ext.fmspc),
            ca: ca.as_id_str(),
        })
    }
}

fn pem_leaf_der(pem: &[u8]) -> Result<Vec<u8>, DcapError> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .next()
        .and_then(Result::ok)
        .map(|c| c.as_ref().to_vec())
        .ok_or_else(|| DcapError::Pck("no PEM certificate in the chain".into()))
}

/// Where a verifier gets collateral for a quote.
pub trait CollateralSource: Send + Sync + fmt::Debug {
    /// Collateral for the platform of `quote`, valid at `now` if possible.
    fn collateral_for(
        &self,
        quote: &Quote<'_>,
        now: UnixTime,
    ) -> Result<Arc<Collateral>, DcapError>;
}

/// One collateral, used for every quote (from a `--collateral` file).
#[derive(Debug, Clone)]
pub struct StaticCollateral(pub Arc<Collateral>);

impl StaticCollateral {
    /// Parses `QuoteCollateralV3` JSON.
    pub fn from_json(json: &[u8]) -> Result<Self, DcapError> {
        let collateral = serde_json::from_slice(json)
            .map_err(|e| DcapError::CollateralFormat(format!("not QuoteCollateralV3 JSON: {e}")))?;
        Ok(Self(Arc::new(collateral)))
    }
}

impl CollateralSource for StaticCollateral {
    fn collateral_for(
        &self,
        _quote: &Quote<'_>,
        _now: UnixTime,
    ) -> Result<Arc<Collateral>, DcapError> {
        Ok(self.0.clone())
    }
}

/// The time window in which a collateral can be used: the intersection of its TCB
/// info's and QE identity's `issueDate..nextUpdate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollateralValidity {
    /// TCB info issue date and next update (Unix seconds).
    pub tcb_info: (u64, u64),
    /// QE identity issue date and next update (Unix seconds).
    pub qe_identity: (u64, u64),
}

impl CollateralValidity {
    /// Reads the dates from the collateral's TCB info and QE identity.
    pub fn of(collateral: &Collateral) -> Result<Self, DcapError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Dates {
            issue_date: String,
            next_update: String,
        }
        let window = |item: &str, json: &str| -> Result<(u64, u64), DcapError> {
            let dates: Dates = serde_json::from_str(json)
                .map_err(|e| DcapError::CollateralFormat(format!("{item}: {e}")))?;
            let parse = |s: &str| {
                parse_rfc3339_utc(s)
                    .ok_or_else(|| DcapError::CollateralFormat(format!("{item}: bad date {s:?}")))
            };
            Ok((parse(&dates.issue_date)?, parse(&dates.next_update)?))
        };
        Ok(Self {
            tcb_info: window("tcb_info", &collateral.tcb_info)?,
            qe_identity: window("qe_identity", &collateral.qe_identity)?,
        })
    }

    /// Checks both items are valid at `now`.
    pub fn check(&self, now: UnixTime) -> Result<(), DcapError> {
        let now = now.as_secs();
        for (item, (from, until)) in [
            ("tcb_info", self.tcb_info),
            ("qe_identity", self.qe_identity),
        ] {
            if now < from || now > until {
                return Err(DcapError::CollateralNotValid {
                    item,
                    valid_from: format_rfc3339_utc(from),
                    valid_until: format_rfc3339_utc(until),
                    now: format_rfc3339_utc(now),
                });
            }
        }
        Ok(())
    }

    /// The end of the window.
    pub fn valid_until(&self) -> u64 {
        self.tcb_info.1.min(self.qe_identity.1)
    }
}

/// Verifies SGX quotes (or OE reports) by Intel DCAP against a root CA.
#[derive(Debug, Clone)]
pub struct DcapVerifier {
    root: RootCa,
    collateral: Arc<dyn CollateralSource>,
    accepts: EvidenceKind,
}

impl DcapVerifier {
    /// A verifier of `sgx-quote` evidence.
    pub fn sgx_quotes(root: RootCa, collateral: Arc<dyn CollateralSource>) -> Self {
        Self {
            root,
            collateral,
            accepts: EvidenceKind::SgxQuote,
        }
    }

    /// A verifier of `oe-report` evidence (the quote inside the report is verified).
    pub fn oe_reports(root: RootCa, collateral: Arc<dyn CollateralSource>) -> Self {
        Self {
            root,
            collateral,
            accepts: EvidenceKind::OeReport,
        }
    }

    /// The root CA.
    pub fn root(&self) -> &RootCa {
        &self.root
    }

    /// Verifies the evidence's authenticity and TCB as of `now` (no runtime-data check:
    /// see [`crate::Verifier::verify`] for that).
    pub fn verify_evidence(&self, evidence: &[u8], now: UnixTime) -> Result<Claims, DcapError> {
        let quote_bytes = match self.accepts {
            EvidenceKind::OeReport => OeReport::parse(evidence)?.quote_bytes,
            _ => evidence,
        };
        let layout = crate::quote::QuoteLayout::parse(quote_bytes)?;
        if claims_simulation(&layout.header) {
            return Err(DcapError::Simulated);
        }
        let quote = Quote::from_layout(layout)?;
        if quote.header.qe_vendor_id != INTEL_QE_VENDOR_ID {
            return Err(DcapError::QeVendor {
                expected: hex::encode(INTEL_QE_VENDOR_ID),
                found: hex::encode(quote.header.qe_vendor_id),
            });
        }
        let collateral = self.collateral.collateral_for(&quote, now)?;
        verify_quote(&self.root, quote_bytes, &quote, &collateral, now).map(|mut claims| {
            claims.evidence = self.accepts;
            claims
        })
    }
}

/// Verifies one parsed quote with the given collateral.
fn verify_quote(
    root: &RootCa,
    quote_bytes: &[u8],
    quote: &Quote<'_>,
    collateral: &Collateral,
    now: UnixTime,
) -> Result<Claims, DcapError> {
    CollateralValidity::of(collateral)?.check(now)?;
    let report = QuoteVerifier::<AwsLcConfig>::new_with_config(root.der.to_vec())
        .allow_debug(true)
        .verify(quote_bytes, collateral, now.as_secs())
        .map_err(|e| DcapError::Rejected(format!("{e:#}")))?;
    let status = tcb_status(&report.status)?;
    Ok(Claims::from_report_body(
        EvidenceKind::SgxQuote,
        VerifiedBy::Dcap {
            root_ca_sha256: root.sha256.clone(),
        },
        &quote.body,
        Tcb {
            status,
            advisory_ids: report.advisory_ids,
        },
    ))
}

fn tcb_status(name: &str) -> Result<TcbStatus, DcapError> {
    Ok(match name {
        "UpToDate" => TcbStatus::UpToDate,
        "SWHardeningNeeded" => TcbStatus::SwHardeningNeeded,
        "ConfigurationNeeded" => TcbStatus::ConfigurationNeeded,
        "ConfigurationAndSWHardeningNeeded" => TcbStatus::ConfigurationAndSwHardeningNeeded,
        "OutOfDate" => TcbStatus::OutOfDate,
        "OutOfDateConfigurationNeeded" => TcbStatus::OutOfDateConfigurationNeeded,
        "Revoked" => TcbStatus::Revoked,
        other => return Err(DcapError::UnknownTcbStatus(other.to_owned())),
    })
}

impl crate::Verifier for DcapVerifier {
    fn kind(&self) -> EvidenceKind {
        self.accepts
    }

    fn verify(
        &self,
        evidence: &[u8],
        runtime_data: &[u8],
        now: UnixTime,
    ) -> Result<Claims, crate::VerifyError> {
        let claims = self.verify_evidence(evidence, now)?;
        crate::check_binding(claims, runtime_data)
    }
}
