//! The parsers on real recorded quotes and reports.

mod common;

use common::{data, sha256_hex};
use custos_attestation::evidence::ParsedEvidence;
use custos_attestation::oe::OeReport;
use custos_attestation::quote::{INTEL_QE_VENDOR_ID, Quote};
use custos_attestation::{EvidenceKind, ParseError, VerifyError};

const MAA_MRENCLAVE: &str = "292a1f4b519e46627eb2478a3d9851405653c5b4b0a6925de843834d9216850e";
const MAA_MRSIGNER: &str = "4aea5f9a0ed04b11f889aadfe6a1d376213a29a95a85ce7337ae6f7fece6610c";

#[test]
fn maa_sdk_sgx_quote_parses_to_the_recorded_fields() {
    let bytes = data("maa/sgx_quote_debug.bin");
    let q = Quote::parse(&bytes).unwrap();
    assert_eq!(q.header.version, 3);
    assert_eq!(q.header.qe_vendor_id, INTEL_QE_VENDOR_ID);
    assert_eq!(q.body.mr_enclave.to_hex(), MAA_MRENCLAVE);
    assert_eq!(q.body.mr_signer.to_hex(), MAA_MRSIGNER);
    assert_eq!((q.body.isv_prod_id, q.body.isv_svn), (1, 1));
    assert!(q.body.is_debug());
    // report_data[0..32] = SHA-256(runtime data, trailing NUL included).
    assert_eq!(
        hex::encode(q.body.report_data.hash_part()),
        sha256_hex(&data("maa/runtime_data.bin"))
    );
    assert_eq!(q.certification.kind, 5);
    let pem = std::str::from_utf8(q.certification.pck_chain_pem().unwrap()).unwrap();
    assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 3);
}

#[test]
fn oe_reports_parse_and_embed_the_same_enclave() {
    let debug = data("maa/openenclave_report_debug.bin");
    let nondebug = data("maa/openenclave_report_nondebug.bin");
    let r = OeReport::parse(&debug).unwrap();
    assert_eq!(r.quote_bytes.len() + 16, debug.len());
    assert_eq!(r.quote.body.mr_enclave.to_hex(), MAA_MRENCLAVE);
    assert!(r.quote.body.is_debug());
    let r = OeReport::parse(&nondebug).unwrap();
    assert!(!r.quote.body.is_debug());
    assert_eq!(
        ParsedEvidence::parse(&nondebug).unwrap().kind(),
        EvidenceKind::OeReport
    );
}

#[test]
fn dcap_qvl_sample_quote_parses() {
    let bytes = data("dcap/sgx_quote");
    let q = Quote::parse(&bytes).unwrap();
    assert!(q.body.mr_enclave.to_hex().starts_with("33d8736d"));
    assert!(!q.body.is_debug());
    let mut expected = [0u8; 64];
    expected[..13].copy_from_slice(b"Hello, world!");
    assert_eq!(q.body.report_data.0, expected);
}

#[test]
fn intel_test_pki_quote_parses_without_a_pck_chain() {
    let bytes = data("dcap-intel-test-pki/quote.dat");
    let q = Quote::parse(&bytes).unwrap();
    assert_eq!(q.body.mr_enclave.0, [0; 32]);
    assert!(q.certification.pck_chain_pem().is_none());
}

#[test]
fn tdx_quote_is_refused() {
    let bytes = data("dcap-intel-test-pki/tdx/quote.dat");
    assert!(matches!(
        Quote::parse(&bytes),
        Err(ParseError::UnsupportedTeeType(0x81))
    ));
}

#[test]
fn every_truncation_of_a_real_quote_is_an_error_naming_a_field() {
    let bytes = data("maa/sgx_quote_debug.bin");
    for len in 0..bytes.len() {
        let err = ParsedEvidence::parse(&bytes[..len]).unwrap_err();
        assert!(
            matches!(err, VerifyError::Parse(ParseError::Truncated { .. })),
            "len {len}: {err}"
        );
    }
    let oe = data("maa/openenclave_report_debug.bin");
    for len in 0..oe.len() {
        assert!(ParsedEvidence::parse(&oe[..len]).is_err(), "len {len}");
    }
}

#[test]
fn oe_header_errors_name_expected_and_found() {
    let mut oe = data("maa/openenclave_report_debug.bin");
    oe[4] = 1; // a local report
    assert_eq!(
        OeReport::parse(&oe).unwrap_err().to_string(),
        "Open Enclave report report_type: expected 2, found 1"
    );
    oe[4] = 2;
    oe.push(0);
    assert_eq!(
        OeReport::parse(&oe).unwrap_err().to_string(),
        "Open Enclave report size: header says 4584 bytes, 4585 bytes follow"
    );
}

#[test]
fn parse_quote_json_has_the_fields() {
    let bytes = data("maa/sgx_quote_debug.bin");
    let json = ParsedEvidence::parse(&bytes).unwrap().to_json(&bytes);
    assert_eq!(json["type"], "sgx-quote");
    assert_eq!(json["mrenclave"], MAA_MRENCLAVE);
    assert_eq!(json["isvprodid"], 1);
    assert_eq!(json["debug"], true);
    assert_eq!(json["sha256"], sha256_hex(&bytes));
    assert_eq!(
        json["header"]["qe_vendor_id"],
        "939a7233f79c4ca9940a0db3957f0607"
    );
    assert_eq!(json["signature_data"]["pck_chain_certificates"], 3);
}
