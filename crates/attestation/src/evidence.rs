//! Recognising evidence bytes: an SGX quote, an OE report or a simulated quote.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use serde_json::{Value, json};

use crate::VerifyError;
use crate::claims::{EvidenceKind, sha256};
use crate::oe::OeReport;
use crate::quote::{Quote, QuoteHeader, QuoteLayout, ReportBody};
use crate::sim::{SimQuote, claims_simulation};

/// Evidence bytes parsed according to their recognised kind. Nothing is authenticated.
#[derive(Debug, Clone, Copy)]
pub enum ParsedEvidence<'a> {
    /// An SGX ECDSA quote.
    SgxQuote(Quote<'a>),
    /// An Open Enclave report.
    OeReport(OeReport<'a>),
    /// A simulated quote.
    SimQuote(SimQuote<'a>),
}

impl<'a> ParsedEvidence<'a> {
    /// Recognises and parses `bytes`: an OE report (header version 1), a simulated quote
    /// (either simulation marker), or else an SGX quote.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, VerifyError> {
        if OeReport::looks_like(bytes) {
            return Ok(Self::OeReport(OeReport::parse(bytes)?));
        }
        let layout = QuoteLayout::parse(bytes)?;
        if claims_simulation(&layout.header) {
            Ok(Self::SimQuote(SimQuote::from_layout(layout)?))
        } else {
            Ok(Self::SgxQuote(Quote::from_layout(layout)?))
        }
    }

    /// The evidence kind.
    pub fn kind(&self) -> EvidenceKind {
        match self {
            Self::SgxQuote(_) => EvidenceKind::SgxQuote,
            Self::OeReport(_) => EvidenceKind::OeReport,
            Self::SimQuote(_) => EvidenceKind::SimQuote,
        }
    }

    /// The enclave's report body.
    pub fn body(&self) -> &ReportBody {
        match self {
            Self::SgxQuote(q) => &q.body,
            Self::OeReport(r) => &r.quote.body,
            Self::SimQuote(q) => &q.body,
        }
    }

    /// The quote header.
    pub fn header(&self) -> &QuoteHeader {
        match self {
            Self::SgxQuote(q) => &q.header,
            Self::OeReport(r) => &r.quote.header,
            Self::SimQuote(q) => &q.header,
        }
    }

    /// A JSON description of every field (hex lower-case), as `custos evidence
    /// parse-quote` prints it. `sha256` is the hash of the whole input, which MAA reports
    /// as `x-ms-sgx-collateral.quotehash`.
    pub fn to_json(&self, input: &[u8]) -> Value {
        let body = self.body();
        let header = self.header();
        let signature = match self {
            Self::SgxQuote(q) => quote_signature_json(q),
            Self::OeReport(r) => quote_signature_json(&r.quote),
            Self::SimQuote(q) => json!({
                "signature": hex::encode(q.signature),
                "platform_key_id": q.platform_key.id().to_hex(),
                "platform_key_xy": hex::encode(q.platform_key.xy()),
            }),
        };
        json!({
            "type": self.kind().as_str(),
            "simulated": matches!(self, Self::SimQuote(_)),
            "sha256": hex::encode(sha256(input)),
            "version": header.version,
            "mrenclave": body.mr_enclave.to_hex(),
            "mrsigner": body.mr_signer.to_hex(),
            "isvprodid": body.isv_prod_id,
            "isvsvn": body.isv_svn,
            "debug": body.is_debug(),
            "report_data": body.report_data.to_hex(),
            "header": {
                "version": header.version,
                "att_key_type": header.att_key_type,
                "tee_type": header.tee_type,
                "qe_svn": header.qe_svn,
                "pce_svn": header.pce_svn,
                "qe_vendor_id": hex::encode(header.qe_vendor_id),
                "user_data": hex::encode(header.user_data),
            },
            "body": body_json(body),
            "signature_data": signature,
        })
    }
}

fn body_json(body: &ReportBody) -> Value {
    json!({
        "cpu_svn": hex::encode(body.cpu_svn),
        "misc_select": body.misc_select,
        "isv_ext_prod_id": hex::encode(body.isv_ext_prod_id),
        "attributes_flags": format!("{:#018x}", body.attributes_flags),
        "attributes_xfrm": format!("{:#018x}", body.attributes_xfrm),
        "mrenclave": body.mr_enclave.to_hex(),
        "mrsigner": body.mr_signer.to_hex(),
        "config_id": hex::encode(body.config_id),
        "isvprodid": body.isv_prod_id,
        "isvsvn": body.isv_svn,
        "config_svn": body.config_svn,
        "isv_family_id": hex::encode(body.isv_family_id),
        "debug": body.is_debug(),
        "report_data": body.report_data.to_hex(),
    })
}

fn quote_signature_json(q: &Quote<'_>) -> Value {
    let pck_certificates = q.certification.pck_chain_pem().map(|pem| {
        pem.windows(27)
            .filter(|w| w == b"-----BEGIN CERTIFICATE-----")
            .count()
    });
    json!({
        "isv_signature": hex::encode(q.isv_signature),
        "attestation_key": hex::encode(q.attestation_key),
        "qe_report": body_json(&q.qe_report),
        "qe_report_signature": hex::encode(q.qe_report_signature),
        "qe_auth_data": hex::encode(q.qe_auth_data),
        "certification_data_type": q.certification.kind,
        "certification_data_len": q.certification.data.len(),
        "pck_chain_certificates": pck_certificates,
    })
}
