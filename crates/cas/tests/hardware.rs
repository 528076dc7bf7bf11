//! `mode: hardware` verification of real DCAP evidence, as of fixed times: the recorded SGX
//! quote passes Intel DCAP (the first check that then fails is the runtime-data binding, which a
//! recorded quote cannot satisfy), expired collateral and simulated quotes offered as hardware
//! evidence are denied with their reasons.

use std::time::Duration;

use custos_attestation::dcap::{DcapError, RootCa, StaticCollateral};
use custos_attestation::{
    EvidenceKind, PlatformKey, SimReport, TrustedPlatforms, UnixTime, VerifyError,
};
use custos_cas::enclave::hardware::HardwareVerifier;
use custos_cas::enclave::unverified::Unverified;
use custos_ids::MrEnclave;
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
) -> Unverified {
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

/// The reasons a 403 answer lists for `unverified`.
fn reasons(unverified: &Unverified) -> Vec<String> {
    vec![unverified.to_string()]
}

#[test]
fn a_recorded_quote_passes_dcap_and_fails_only_the_binding() {
    let unverified = verify(
        &verifier(TrustedPlatforms::none()),
        EvidenceKind::SgxQuote,
        &data("sgx_quote"),
        IN_WINDOW,
    );
    assert!(
        matches!(
            unverified,
            Unverified::Verify(VerifyError::ReportDataMismatch { .. })
        ),
        "{unverified:?}"
    );
    let reasons = reasons(&unverified);
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
    let unverified = verify(
        &verifier(TrustedPlatforms::none()),
        EvidenceKind::SgxQuote,
        &data("sgx_quote"),
        AFTER,
    );
    assert!(
        matches!(unverified, Unverified::Verify(VerifyError::Dcap(_))),
        "{unverified:?}"
    );
    let reasons = reasons(&unverified);
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
    let unverified = verify(
        &verifier(trusted),
        EvidenceKind::SgxQuote,
        &quote,
        IN_WINDOW,
    );
    assert!(
        matches!(
            unverified,
            Unverified::Verify(VerifyError::Dcap(DcapError::Simulated))
        ),
        "{unverified:?}"
    );
    assert_eq!(
        reasons(&unverified),
        [
            "evidence: simulated quote offered as hardware evidence: DCAP verifies only quotes from Intel's quoting enclave"
        ]
    );
    // Offered as what it is, to a CAS that trusts no platform key.
    let unverified = verify(
        &verifier(TrustedPlatforms::none()),
        EvidenceKind::SimQuote,
        &quote,
        IN_WINDOW,
    );
    assert!(
        matches!(unverified, Unverified::SimulationNotTrusted),
        "{unverified:?}"
    );
    let reasons = reasons(&unverified);
    assert!(
        reasons[0].contains("this CAS trusts no simulation platform key"),
        "{reasons:?}"
    );
}

#[test]
fn a_session_narrows_the_platform_keys_the_cas_trusts() {
    let (ours, other) = (
        PlatformKey::generate().unwrap(),
        PlatformKey::generate().unwrap(),
    );
    let mut trusted = TrustedPlatforms::none();
    trusted.trust(&ours.public_key());
    trusted.trust(&other.public_key());
    let verifier = verifier(trusted);
    let runtime_data = b"{\"nonce\":\"n\",\"jwk\":{}}";
    let quote = ours
        .create_quote(&SimReport::new(MrEnclave([7; 32]), runtime_data))
        .unwrap();
    let session = |key: &PlatformKey| AttestationPolicy {
        trusted_platform_keys: vec![key.public_key().id().to_string().parse().unwrap()],
        ..AttestationPolicy::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let verify = |policy: &AttestationPolicy| {
        runtime.block_on(verifier.verify(
            EvidenceKind::SimQuote,
            &quote,
            runtime_data,
            policy,
            at(IN_WINDOW),
        ))
    };
    // Any key the CAS trusts, for a session that names none; the session's own key.
    for policy in [AttestationPolicy::default(), session(&ours)] {
        let claims = verify(&policy).unwrap();
        assert_eq!(claims.platform(), Some(&ours.public_key().id()));
    }
    // A key the CAS trusts but the session does not list.
    let unverified = verify(&session(&other)).unwrap_err();
    match &unverified {
        Unverified::PlatformNotAllowed { allowed, actual } => {
            assert_eq!(allowed, &[other.public_key().id()]);
            assert_eq!(actual, &ours.public_key().id());
        }
        e => panic!("expected PlatformNotAllowed, got {e:?}"),
    }
    assert_eq!(
        unverified.to_string(),
        format!(
            "trusted_platform_keys: expected one of [{}], actual {}",
            other.public_key().id(),
            ours.public_key().id()
        )
    );
    // A key the session lists but the CAS does not trust: the session cannot widen the trust.
    let stranger = PlatformKey::generate().unwrap();
    let quote = stranger
        .create_quote(&SimReport::new(MrEnclave([7; 32]), runtime_data))
        .unwrap();
    let unverified = runtime
        .block_on(verifier.verify(
            EvidenceKind::SimQuote,
            &quote,
            runtime_data,
            &session(&stranger),
            at(IN_WINDOW),
        ))
        .unwrap_err();
    assert!(
        matches!(unverified, Unverified::Verify(VerifyError::Sim(_))),
        "{unverified:?}"
    );
}
