//! DCAP verification of real quotes with recorded collateral, as of fixed times.
#![cfg(feature = "dcap")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::data;
use custos_attestation::dcap::{Collateral, DcapError, DcapVerifier, RootCa, StaticCollateral};
use custos_attestation::{
    EvidenceKind, PlatformKey, SimReport, TcbStatus, UnixTime, VerifiedBy, Verifier, VerifyError,
};
use custos_ids::MrEnclave;

/// Inside the recorded collateral's validity (2025-06-19 .. 2025-07-19).
const IN_WINDOW: u64 = 1_751_328_000; // 2025-07-01T00:00:00Z

fn at(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

fn recorded_collateral() -> Arc<StaticCollateral> {
    Arc::new(StaticCollateral::from_json(&data("dcap/sgx_quote_collateral.json")).unwrap())
}

fn production_verifier() -> DcapVerifier {
    DcapVerifier::sgx_quotes(RootCa::intel_production(), recorded_collateral())
}

#[test]
fn the_embedded_root_is_the_recorded_production_root() {
    let root = RootCa::intel_production();
    assert!(root.is_intel_production());
    assert_eq!(
        root,
        RootCa::from_der(&data("dcap/TrustedRootCA.der")).unwrap()
    );
    assert_eq!(
        root.sha256(),
        "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
    );
}

#[test]
fn recorded_quote_verifies_with_its_tcb_status_and_advisories() {
    let claims = production_verifier()
        .verify_evidence(&data("dcap/sgx_quote"), at(IN_WINDOW))
        .unwrap();
    assert_eq!(
        claims.tcb().status,
        TcbStatus::ConfigurationAndSwHardeningNeeded
    );
    assert_eq!(
        claims.tcb().advisory_ids,
        ["INTEL-SA-00289", "INTEL-SA-00615"]
    );
    assert_eq!(claims.evidence(), EvidenceKind::SgxQuote);
    assert_eq!(
        *claims.verified_by(),
        VerifiedBy::Dcap {
            root_ca_sha256: RootCa::intel_production().sha256().to_owned()
        }
    );
    assert!(!claims.debug());
    assert!(claims.mrenclave().to_hex().starts_with("33d8736d"));
    assert_eq!(&claims.report_data().0[..13], b"Hello, world!");
    assert!(claims.report_data().0[13..].iter().all(|b| *b == 0));
}

#[test]
fn collateral_outside_its_window_is_rejected_with_dates() {
    let v = production_verifier();
    let before = v
        .verify_evidence(&data("dcap/sgx_quote"), at(1_750_000_000))
        .unwrap_err();
    assert_eq!(
        before.to_string(),
        "collateral tcb_info is valid from 2025-06-19T10:56:11Z until 2025-07-19T10:56:11Z, not at 2025-06-15T15:06:40Z"
    );
    let after = v
        .verify_evidence(&data("dcap/sgx_quote"), at(1_800_000_000))
        .unwrap_err();
    assert!(
        matches!(
            after,
            DcapError::CollateralNotValid {
                item: "tcb_info",
                ..
            }
        ),
        "{after}"
    );
}

#[test]
fn a_quote_is_rejected_against_another_root() {
    let test_root = RootCa::from_pem(&data("dcap-intel-test-pki/trustedRootCaCert.pem")).unwrap();
    assert!(!test_root.is_intel_production());
    let v = DcapVerifier::sgx_quotes(test_root, recorded_collateral());
    let err = v
        .verify_evidence(&data("dcap/sgx_quote"), at(IN_WINDOW))
        .unwrap_err();
    assert!(matches!(err, DcapError::Rejected(_)), "{err}");
}

#[test]
fn tampered_quotes_are_rejected() {
    let v = production_verifier();
    let quote = data("dcap/sgx_quote");
    // report_data, mrenclave, the debug flag, the ISV signature, the QE report.
    for offset in [48 + 320, 48 + 64, 48 + 48, 436 + 10, 436 + 128 + 64] {
        let mut q = quote.clone();
        q[offset] ^= 0x02;
        let err = v.verify_evidence(&q, at(IN_WINDOW)).unwrap_err();
        assert!(
            matches!(err, DcapError::Rejected(_)),
            "offset {offset}: {err}"
        );
    }
}

/// Intel's QVL sample (test PKI) quote with collateral assembled from its files.
fn intel_test_pki_collateral() -> Collateral {
    let text =
        |name: &str| String::from_utf8(data(&format!("dcap-intel-test-pki/{name}"))).unwrap();
    let signed = |name: &str, field: &str| -> (String, Vec<u8>) {
        let v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text(name)).unwrap();
        let sig = hex::decode(v["signature"].as_str().unwrap()).unwrap();
        // The signed JSON is the field's text as it appears in the file.
        let raw = text(name);
        let start = raw.find(&format!("\"{field}\":")).unwrap() + field.len() + 3;
        let end = raw.rfind(",\"signature\"").unwrap();
        (raw[start..end].to_owned(), sig)
    };
    let (tcb_info, tcb_info_signature) = signed("tcbInfo.json", "tcbInfo");
    let (qe_identity, qe_identity_signature) = signed("qeIdentity.json", "enclaveIdentity");
    Collateral {
        pck_crl_issuer_chain: text("pckSignChain.pem"),
        root_ca_crl: data("dcap-intel-test-pki/rootCaCrl.der"),
        pck_crl: data("dcap-intel-test-pki/intermediateCaCrl.der"),
        tcb_info_issuer_chain: text("tcbSignChain.pem"),
        tcb_info,
        tcb_info_signature,
        qe_identity_issuer_chain: text("tcbSignChain.pem"),
        qe_identity,
        qe_identity_signature,
        pck_certificate_chain: Some(text("pckCert.pem") + &text("pckSignChain.pem")),
    }
}

#[test]
fn intel_test_pki_quote_is_rejected_against_the_production_root() {
    const IN_TEST_WINDOW: u64 = 1_672_531_200; // 2023-01-01
    let collateral = Arc::new(StaticCollateral(Arc::new(intel_test_pki_collateral())));
    let quote = data("dcap-intel-test-pki/quote.dat");
    let err = DcapVerifier::sgx_quotes(RootCa::intel_production(), collateral.clone())
        .verify_evidence(&quote, at(IN_TEST_WINDOW))
        .unwrap_err();
    // The first check to fail is the root CA CRL's signature by the pinned root.
    assert!(
        err.to_string()
            .contains("root CA CRL: InvalidCrlSignatureForPublicKey"),
        "{err}"
    );
    // With the test root configured explicitly, the anchoring checks pass; this synthetic
    // sample then fails on its version 2 TCB info, which dcap-qvl does not read.
    let test_root = RootCa::from_pem(&data("dcap-intel-test-pki/trustedRootCaCert.pem")).unwrap();
    let err = DcapVerifier::sgx_quotes(test_root, collateral)
        .verify_evidence(&quote, at(IN_TEST_WINDOW))
        .unwrap_err();
    assert!(
        err.to_string().contains("Failed to decode TcbInfo"),
        "{err}"
    );
}

#[test]
fn simulated_quotes_are_never_dcap_verified() {
    let key = PlatformKey::generate().unwrap();
    let quote = key
        .create_quote(&SimReport::new(MrEnclave([1; 32]), b"rt"))
        .unwrap();
    let err = production_verifier()
        .verify_evidence(&quote, at(IN_WINDOW))
        .unwrap_err();
    assert!(matches!(err, DcapError::Simulated), "{err}");
}

#[test]
fn the_verifier_trait_checks_the_binding_and_oe_reports_unwrap() {
    let v = production_verifier();
    // The recorded quote's report data is "Hello, world!", not a hash of runtime data.
    let err =
        Verifier::verify(&v, &data("dcap/sgx_quote"), b"Hello, world!", at(IN_WINDOW)).unwrap_err();
    match err {
        VerifyError::ReportDataMismatch { expected, actual } => {
            assert_eq!(expected, common::sha256_hex(b"Hello, world!"));
            assert_eq!(
                actual,
                hex::encode(b"Hello, world!\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")
            );
        }
        other => panic!("{other}"),
    }
    // An OE report wrapping the same quote verifies through the OE verifier.
    let quote = data("dcap/sgx_quote");
    let mut report = vec![1, 0, 0, 0, 2, 0, 0, 0];
    report.extend_from_slice(&(quote.len() as u64).to_le_bytes());
    report.extend_from_slice(&quote);
    let oe = DcapVerifier::oe_reports(RootCa::intel_production(), recorded_collateral());
    let claims = oe.verify_evidence(&report, at(IN_WINDOW)).unwrap();
    assert_eq!(claims.evidence(), EvidenceKind::OeReport);
    assert_eq!(
        claims.tcb().status,
        TcbStatus::ConfigurationAndSwHardeningNeeded
    );
}

#[test]
fn a_quote_from_another_platform_does_not_match_the_collateral() {
    let err = production_verifier()
        .verify_evidence(&data("maa/sgx_quote_debug.bin"), at(IN_WINDOW))
        .unwrap_err();
    assert!(matches!(err, DcapError::Rejected(_)), "{err}");
}

#[test]
fn our_aws_lc_backend_agrees_with_dcap_qvl_s_rustcrypto_backend() {
    use dcap_qvl::configs::RustCryptoConfig;
    use dcap_qvl::verify::QuoteVerifier;
    let collateral: Collateral =
        serde_json::from_slice(&data("dcap/sgx_quote_collateral.json")).unwrap();
    let reference = |quote: &[u8], root: &[u8], now: u64| {
        QuoteVerifier::<RustCryptoConfig>::new_with_config(root.to_vec())
            .allow_debug(true)
            .verify(quote, &collateral, now)
            .map(|r| (r.status, r.advisory_ids))
    };
    let ours = |quote: &[u8], root: RootCa, now: u64| {
        DcapVerifier::sgx_quotes(root, recorded_collateral())
            .verify_evidence(quote, at(now))
            .map(|c| {
                (
                    c.tcb().status.as_str().to_owned(),
                    c.tcb().advisory_ids.clone(),
                )
            })
    };
    let production = data("dcap/TrustedRootCA.der");
    let test_root_pem = data("dcap-intel-test-pki/trustedRootCaCert.pem");
    let test_root = RootCa::from_pem(&test_root_pem).unwrap();
    let test_root_der = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(&test_root_pem)
            .unwrap()
            .to_vec()
    };
    let quote = data("dcap/sgx_quote");
    assert_eq!(
        ours(&quote, RootCa::intel_production(), IN_WINDOW).unwrap(),
        reference(&quote, &production, IN_WINDOW).unwrap()
    );
    // Every single-bit change in the signed part, the signatures and the QE report: both reject.
    for offset in (0..436 + 128 + 384 + 64).step_by(37) {
        let mut q = quote.clone();
        q[offset] ^= 0x01;
        let (a, b) = (
            ours(&q, RootCa::intel_production(), IN_WINDOW),
            reference(&q, &production, IN_WINDOW),
        );
        assert_eq!(a.is_ok(), b.is_ok(), "offset {offset}: {a:?} vs {b:?}");
    }
    assert!(ours(&quote, test_root, IN_WINDOW).is_err());
    assert!(reference(&quote, &test_root_der, IN_WINDOW).is_err());
}

#[test]
fn the_recorded_quote_passes_a_sample_like_policy_and_fails_a_strict_one() {
    use custos_attestation::policy::{
        IdentityPolicy, IgnoredAdvisories, ServicePolicy, Toleration, Tolerations, evaluate,
    };
    let claims = production_verifier()
        .verify_evidence(&data("dcap/sgx_quote"), at(IN_WINDOW))
        .unwrap();
    let mut policy = ServicePolicy {
        identities: vec![IdentityPolicy::mrenclave(claims.mrenclave())],
        tolerations: Tolerations::of([
            Toleration::Hyperthreading,
            Toleration::SoftwareHardeningNeeded,
        ]),
        platforms: vec![],
    };
    policy.tolerations.ignore_advisories =
        IgnoredAdvisories::from_list(["INTEL-SA-00289", "INTEL-SA-00615"]);
    assert!(evaluate(&claims, &policy).is_allowed());
    policy.tolerations = Tolerations::default();
    assert_eq!(
        evaluate(&claims, &policy).reasons(),
        [
            "tcb_status: expected UpToDate, or tolerate software-hardening-needed and insecure-configuration (or hyperthreading), actual ConfigurationAndSWHardeningNeeded",
            "advisory: expected no advisory, or INTEL-SA-00289 in ignore_advisories, actual INTEL-SA-00289",
            "advisory: expected no advisory, or INTEL-SA-00615 in ignore_advisories, actual INTEL-SA-00615",
        ]
    );
}
