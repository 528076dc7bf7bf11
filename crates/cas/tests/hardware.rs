//! `mode: hardware` verification of real DCAP evidence, as of fixed times: the recorded SGX
//! quote passes Intel DCAP (the first check that then fails is the runtime-data binding, which a
//! recorded quote cannot satisfy), expired collateral and simulated quotes offered as hardware
//! evidence are denied with their reasons.

use std::time::Duration;

use custos_attestation::dcap::{RootCa, StaticCollateral};
use custos_attestation::{
    EvidenceKind, MrEnclave, PlatformKey, SimReport, TrustedPlatforms, UnixTime,
};
use custos_cas::enclave::hardware::HardwareVerifier;
use custos_policy::AttestationPolicy;

/// Inside the recorded collateral's validity (2025-06-19 .. 2025-07-19).
const IN_WINDOW: u64 = 1_751_328_000; // 2025-07-01T00:00:00Z
/// After it.
const AFTER: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn at(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/dcap/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn verifier(trusted: TrustedPlatforms) -> HardwareVerifier {
    HardwareVerifier::new(
        RootCa::intel_production(),
        StaticCollateral::from_json(&data("sgx_quote_collateral.json")).unwrap(),
        trusted,
    )
}

fn verify(
    verifier: &HardwareVerifier,
    kind: EvidenceKind,
    evidence: &[u8],
    now: u64,
) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(verifier.verify(
            kind,
            evidence,
            b"{\"nonce\":\"n\",\"jwk\":{}}",
            &AttestationPolicy::default(),
            at(now),
        ))
        .unwrap_err()
}

#[test]
fn a_recorded_quote_passes_dcap_and_fails_only_the_binding() {
    let reasons = verify(
        &verifier(TrustedPlatforms::none()),
        EvidenceKind::SgxQuote,
        &data("sgx_quote"),
        IN_WINDOW,
    );
    assert_eq!(reasons.len(), 1);
    let hello = hex::encode(b"Hello, world!");
    assert!(
        reasons[0].starts_with(
            "evidence: report data does not bind the runtime data: expected report_data[0..32] = "
        ) && reasons[0].ends_with(&format!("found {hello}{}", "00".repeat(32 - 13))),
        "{reasons:?}"
    );
}

#[test]
fn expired_collateral_is_named_with_its_dates() {
    let reasons = verify(
        &verifier(TrustedPlatforms::none()),
        EvidenceKind::SgxQuote,
        &data("sgx_quote"),
        AFTER,
    );
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].starts_with("evidence: collateral tcb_info is valid from 2025-06-19")
            && reasons[0].ends_with("not at 2026-01-01T00:00:00Z"),
        "{reasons:?}"
    );
}

#[test]
fn simulated_quotes_are_never_hardware_evidence() {
    let platform = PlatformKey::generate().unwrap();
    let mut trusted = TrustedPlatforms::none();
    trusted.trust(&platform.public_key());
    let quote = platform
        .create_quote(&SimReport::new(MrEnclave([7; 32]), b"runtime"))
        .unwrap();
    // Offered as an SGX quote: DCAP refuses it, whatever the CAS trusts.
    let reasons = verify(
        &verifier(trusted),
        EvidenceKind::SgxQuote,
        &quote,
        IN_WINDOW,
    );
    assert_eq!(
        reasons,
        [
            "evidence: simulated quote offered as hardware evidence: DCAP verifies only quotes from Intel's quoting enclave"
        ]
    );
    // Offered as what it is, to a CAS that trusts no platform key.
    let reasons = verify(
        &verifier(TrustedPlatforms::none()),
        EvidenceKind::SimQuote,
        &quote,
        IN_WINDOW,
    );
    assert!(
        reasons[0].contains("this CAS trusts no simulation platform key"),
        "{reasons:?}"
    );
}
