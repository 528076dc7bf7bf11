//! The MAA self-check: is the service that signs tokens itself an enclave?
//!
//! An MAA instance signs with keys whose certificates embed the SGX evidence of the MAA
//! enclave: extension 1.3.6.1.4.1.311.105.1 holds an Open Enclave report (current
//! certificates), 1.2.840.113556.10.1.1 a DER OCTET STRING wrapping a raw SGX quote (older
//! ones). The enclave binds the signing key: `report_data[0..32] == SHA-256(PEM(SubjectPublicKeyInfo) ‖ 0x00)`
//! (the PEM text as a C string). This module extracts that evidence, checks the binding,
//! DCAP-verifies it when collateral is available, and reports the MAA enclave's identity
//! — which operators pin, since MAA's signer has changed over time.

use x509_parser::prelude::{FromDer, X509Certificate};

use custos_ids::{KeyHash, MrEnclave, MrSigner};

use super::MaaSigningKey;

use crate::TrustedPlatforms;
use crate::claims::sha256;
use crate::evidence::ParsedEvidence;

/// Extension carrying an Open Enclave report of the MAA enclave.
pub const OID_MAA_OE_REPORT: &str = "1.3.6.1.4.1.311.105.1";
/// Extension carrying a raw SGX quote of the MAA enclave (older certificates).
pub const OID_MAA_SGX_QUOTE: &str = "1.2.840.113556.10.1.1";

/// What the self-check found for one signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerReport {
    /// The key's kid.
    pub kid: String,
    /// Whether its certificate embeds enclave evidence.
    pub enclave: bool,
    /// The extension the evidence was found in.
    pub evidence_oid: Option<&'static str>,
    /// Whether the evidence binds the certificate's key (`report_data` check).
    pub binding_ok: bool,
    /// The binding the key calls for ([`key_binding`]), when the certificate parsed.
    pub key_binding: Option<[u8; 32]>,
    /// The evidence's `report_data[0..32]`, when there is evidence.
    pub report_data_hash: Option<[u8; 32]>,
    /// For simulated evidence: the platform key whose signature verified, or why it did
    /// not (untrusted platform key, bad signature). `None` for hardware evidence.
    pub simulated: Option<Result<KeyHash, String>>,
    /// The MAA enclave's identity, when there is evidence.
    pub identity: Option<SignerIdentity>,
    /// DCAP verification of the evidence: `None` when not attempted, `Some(Err(why))`
    /// when it failed (e.g. no collateral for the MAA platform).
    pub dcap: Option<Result<crate::Tcb, String>>,
    /// Why the evidence could not be read, if it could not.
    pub problem: Option<String>,
}

/// The MAA enclave's identity as its evidence states it (authenticated only when `dcap`
/// is `Some(Ok(_))`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignerIdentity {
    /// MRENCLAVE.
    pub mrenclave: MrEnclave,
    /// MRSIGNER.
    pub mrsigner: MrSigner,
    /// ISV product id.
    pub isvprodid: u16,
    /// ISV SVN.
    pub isvsvn: u16,
    /// Whether the MAA enclave is debuggable (all observed ones are).
    pub debug: bool,
}

/// How to DCAP-verify the embedded evidence.
#[cfg(feature = "dcap")]
#[derive(Debug, Clone)]
pub struct DcapCheck {
    /// The root CA.
    pub root: crate::dcap::RootCa,
    /// Where collateral comes from.
    pub collateral: std::sync::Arc<dyn crate::dcap::CollateralSource>,
    /// The verification time.
    pub now: crate::UnixTime,
}

/// Without the `dcap` feature, evidence is never DCAP-verified: this cannot be built.
#[cfg(not(feature = "dcap"))]
#[derive(Debug, Clone)]
pub enum DcapCheck {}

/// Checks one signing key; simulated evidence is reported as not verified (no platform key
/// trusted).
pub fn check_signer(key: &MaaSigningKey, dcap: Option<&DcapCheck>) -> SignerReport {
    check_signer_trusting(key, dcap, &TrustedPlatforms::none())
}

/// Checks one signing key: hardware evidence with `dcap` when given, simulated evidence
/// (`sim-quote`, as the Azure emulator embeds) against the platform keys in `platforms`.
pub fn check_signer_trusting(
    key: &MaaSigningKey,
    dcap: Option<&DcapCheck>,
    platforms: &TrustedPlatforms,
) -> SignerReport {
    let mut report = SignerReport {
        kid: key.kid().to_owned(),
        enclave: false,
        evidence_oid: None,
        binding_ok: false,
        key_binding: None,
        report_data_hash: None,
        simulated: None,
        identity: None,
        dcap: None,
        problem: None,
    };
    let cert = match X509Certificate::from_der(key.certificate()) {
        Ok((_, cert)) => cert,
        Err(e) => {
            report.problem = Some(format!("certificate: {e}"));
            return report;
        }
    };
    let binding = key_binding(cert.public_key().raw);
    report.key_binding = Some(binding);
    let Some((oid, evidence)) = evidence_in(&cert) else {
        return report;
    };
    report.enclave = true;
    report.evidence_oid = Some(oid);
    let parsed = match ParsedEvidence::parse(&evidence) {
        Ok(p) => p,
        Err(e) => {
            report.problem = Some(format!("embedded evidence: {e}"));
            return report;
        }
    };
    let body = parsed.body();
    report.identity = Some(SignerIdentity {
        mrenclave: body.mr_enclave,
        mrsigner: body.mr_signer,
        isvprodid: body.isv_prod_id,
        isvsvn: body.isv_svn,
        debug: body.is_debug(),
    });
    report.report_data_hash = Some(*body.report_data.hash_part());
    report.binding_ok = body.report_data.hash_part() == &binding;
    if let ParsedEvidence::SimQuote(quote) = &parsed {
        report.simulated = Some(
            quote
                .verify(platforms)
                .map(|_| quote.platform_key.id())
                .map_err(|e| e.to_string()),
        );
        return report;
    }
    #[cfg(feature = "dcap")]
    if let Some(check) = dcap {
        use crate::dcap::DcapVerifier;
        let verifier = match parsed {
            ParsedEvidence::OeReport(_) => {
                DcapVerifier::oe_reports(check.root.clone(), check.collateral.clone())
            }
            _ => DcapVerifier::sgx_quotes(check.root.clone(), check.collateral.clone()),
        };
        report.dcap = Some(
            verifier
                .verify_evidence(&evidence, check.now)
                .map(|c| c.tcb)
                .map_err(|e| e.to_string()),
        );
    }
    #[cfg(not(feature = "dcap"))]
    let _ = dcap;
    report
}

/// The key binding MAA enclaves put in `report_data[0..32]`: SHA-256 of the PEM text of the
/// SubjectPublicKeyInfo with its terminating NUL.
pub fn key_binding(spki_der: &[u8]) -> [u8; 32] {
    let mut pem = custos_ids::pem::encode("PUBLIC KEY", spki_der).into_bytes();
    pem.push(0);
    sha256(&pem)
}

/// The enclave evidence in an MAA signing certificate (DER), with the extension it came
/// from, if it has any.
pub fn embedded_evidence(certificate: &[u8]) -> Option<(&'static str, Vec<u8>)> {
    evidence_in(&X509Certificate::from_der(certificate).ok()?.1)
}

fn evidence_in(cert: &X509Certificate<'_>) -> Option<(&'static str, Vec<u8>)> {
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        let which = match oid.as_str() {
            OID_MAA_OE_REPORT => OID_MAA_OE_REPORT,
            OID_MAA_SGX_QUOTE => OID_MAA_SGX_QUOTE,
            _ => continue,
        };
        // Some certificates wrap the evidence in a further OCTET STRING.
        let value = match x509_parser::der_parser::der::parse_der_octetstring(ext.value) {
            Ok(([], inner)) => inner.as_slice().map(<[u8]>::to_vec).unwrap_or_default(),
            _ => ext.value.to_vec(),
        };
        return Some((which, value));
    }
    None
}
