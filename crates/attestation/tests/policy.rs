//! Policy evaluation table: the allow case and every deny reason.

use custos_attestation::claims::TestClaims;
use custos_attestation::policy::{
    Check, Decision, IdentityPolicy, IgnoredAdvisories, ServicePolicy, SignerPolicy, Toleration,
    Tolerations, evaluate,
};
use custos_attestation::{Claims, EvidenceKind, ReportData, Tcb, TcbStatus, VerifiedBy};
use custos_ids::{KeyHash, MrEnclave, MrSigner};

const M: MrEnclave = MrEnclave([0x11; 32]);
const S: MrSigner = MrSigner([0x22; 32]);

fn hardware(status: TcbStatus, advisories: &[&str], debug: bool) -> Claims {
    hardware_fields(status, advisories, debug).unverified()
}

fn hardware_fields(status: TcbStatus, advisories: &[&str], debug: bool) -> TestClaims {
    TestClaims {
        evidence: EvidenceKind::SgxQuote,
        verified_by: VerifiedBy::Dcap {
            root_ca_sha256: "00".into(),
        },
        mrenclave: M,
        mrsigner: S,
        isvprodid: 7,
        isvsvn: 3,
        debug,
        report_data: ReportData([0; 64]),
        runtime_data: None,
        tcb: Tcb {
            status,
            advisory_ids: advisories.iter().map(|s| s.to_string()).collect(),
        },
    }
}

fn simulated(platform: KeyHash) -> Claims {
    TestClaims {
        evidence: EvidenceKind::SimQuote,
        verified_by: VerifiedBy::Simulation { platform },
        tcb: Tcb {
            status: TcbStatus::NotApplicable,
            advisory_ids: vec![],
        },
        ..hardware_fields(TcbStatus::UpToDate, &[], true)
    }
    .unverified()
}

fn policy(identities: Vec<IdentityPolicy>, tolerate: &[Toleration]) -> ServicePolicy {
    ServicePolicy {
        identities,
        tolerations: Tolerations::of(tolerate.iter().copied()),
        platforms: vec![],
    }
}

fn checks(d: &Decision) -> Vec<Check> {
    match d {
        Decision::Allow => vec![],
        Decision::Deny(v) => v.iter().map(|d| d.check).collect(),
    }
}

fn signer(isvprodid: Option<u16>, min_isvsvn: u16) -> SignerPolicy {
    SignerPolicy {
        mrsigner: S,
        isvprodid,
        min_isvsvn,
        max_isvsvn: u16::MAX,
    }
}

fn svn_range(min_isvsvn: u16, max_isvsvn: u16) -> SignerPolicy {
    SignerPolicy {
        mrsigner: S,
        isvprodid: Some(7),
        min_isvsvn,
        max_isvsvn,
    }
}

#[test]
fn table() {
    use Check as C;
    use Toleration::*;
    use custos_attestation::TcbStatus::*;
    let by_m = || vec![IdentityPolicy::mrenclave(M)];
    let other_m = MrEnclave([0x99; 32]);
    #[rustfmt::skip]
    let cases: Vec<(&str, Claims, ServicePolicy, Vec<Check>)> = vec![
        ("up to date, matching mrenclave", hardware(UpToDate, &[], false), policy(by_m(), &[]), vec![]),
        ("matching signer", hardware(UpToDate, &[], false), policy(vec![IdentityPolicy::signer(signer(Some(7), 3))], &[]), vec![]),
        ("mrenclave and signer both required", hardware(UpToDate, &[], false),
            policy(vec![IdentityPolicy { mrenclave: Some(M), signer: Some(signer(Some(8), 4)) }], &[]), vec![C::Isvprodid, C::Isvsvn]),
        ("second alternative matches", hardware(UpToDate, &[], false),
            policy(vec![IdentityPolicy::mrenclave(other_m), IdentityPolicy::mrenclave(M)], &[]), vec![]),
        ("no alternative matches", hardware(UpToDate, &[], false),
            policy(vec![IdentityPolicy::mrenclave(other_m), IdentityPolicy::signer(SignerPolicy { mrsigner: MrSigner([0; 32]), isvprodid: None, min_isvsvn: 0, max_isvsvn: u16::MAX })], &[]),
            vec![C::Mrenclave, C::Mrsigner]),
        ("svn too low", hardware(UpToDate, &[], false), policy(vec![IdentityPolicy::signer(signer(None, 4))], &[]), vec![C::Isvsvn]),
        // SCONE's `isvsvn` is an exact version: pinning 2 does not admit 3 (the claims' SVN).
        ("exact svn matches", hardware(UpToDate, &[], false), policy(vec![IdentityPolicy::signer(svn_range(3, 3))], &[]), vec![]),
        ("exact svn below", hardware(UpToDate, &[], false), policy(vec![IdentityPolicy::signer(svn_range(2, 2))], &[]), vec![C::Isvsvn]),
        ("svn range contains", hardware(UpToDate, &[], false), policy(vec![IdentityPolicy::signer(svn_range(2, 5))], &[]), vec![]),
        ("svn above range", hardware(UpToDate, &[], false), policy(vec![IdentityPolicy::signer(svn_range(0, 2))], &[]), vec![C::Isvsvn]),
        ("no identity configured", hardware(UpToDate, &[], false), policy(vec![], &[]), vec![C::Identity]),
        ("empty alternative", hardware(UpToDate, &[], false), policy(vec![IdentityPolicy::default()], &[]), vec![C::Identity]),
        ("debug not tolerated", hardware(UpToDate, &[], true), policy(by_m(), &[]), vec![C::Debug]),
        ("debug tolerated", hardware(UpToDate, &[], true), policy(by_m(), &[DebugMode]), vec![]),
        ("sw hardening", hardware(SwHardeningNeeded, &[], false), policy(by_m(), &[]), vec![C::TcbStatus]),
        ("sw hardening tolerated", hardware(SwHardeningNeeded, &[], false), policy(by_m(), &[SoftwareHardeningNeeded]), vec![]),
        ("configuration", hardware(ConfigurationNeeded, &[], false), policy(by_m(), &[SoftwareHardeningNeeded]), vec![C::TcbStatus]),
        ("configuration: hyperthreading", hardware(ConfigurationNeeded, &[], false), policy(by_m(), &[Hyperthreading]), vec![]),
        ("configuration: insecure-configuration", hardware(ConfigurationNeeded, &[], false), policy(by_m(), &[InsecureConfiguration]), vec![]),
        ("both needed, one tolerated", hardware(ConfigurationAndSwHardeningNeeded, &[], false), policy(by_m(), &[Hyperthreading]), vec![C::TcbStatus]),
        ("both tolerated", hardware(ConfigurationAndSwHardeningNeeded, &[], false), policy(by_m(), &[Hyperthreading, SoftwareHardeningNeeded]), vec![]),
        ("out of date", hardware(OutOfDate, &[], false), policy(by_m(), &[SoftwareHardeningNeeded]), vec![C::TcbStatus]),
        ("out of date tolerated", hardware(OutOfDate, &[], false), policy(by_m(), &[OutdatedTcb]), vec![]),
        ("out of date + configuration", hardware(OutOfDateConfigurationNeeded, &[], false), policy(by_m(), &[OutdatedTcb]), vec![C::TcbStatus]),
        ("revoked is never tolerated", hardware(Revoked, &[], false),
            policy(by_m(), &[DebugMode, Hyperthreading, SoftwareHardeningNeeded, OutdatedTcb, InsecureConfiguration, MaaManagedTcb]), vec![C::TcbStatus]),
        ("maa-managed needs its toleration", hardware(ManagedByMaa, &[], false), policy(by_m(), &[]), vec![C::TcbStatus]),
        ("maa-managed tolerated", hardware(ManagedByMaa, &[], false), policy(by_m(), &[MaaManagedTcb]), vec![]),
        ("advisories not ignored", hardware(SwHardeningNeeded, &["INTEL-SA-00289", "INTEL-SA-00615"], false),
            policy(by_m(), &[SoftwareHardeningNeeded]), vec![C::Advisory, C::Advisory]),
        ("everything wrong at once", hardware(OutOfDate, &["INTEL-SA-00615"], true), policy(vec![IdentityPolicy::mrenclave(other_m)], &[]),
            vec![C::Mrenclave, C::Debug, C::TcbStatus, C::Advisory]),
    ];
    for (name, claims, policy, expected) in cases {
        assert_eq!(checks(&evaluate(&claims, &policy)), expected, "{name}");
    }
}

#[test]
fn ignored_advisories() {
    let claims = hardware(
        TcbStatus::ConfigurationAndSwHardeningNeeded,
        &["INTEL-SA-00289", "INTEL-SA-00615"],
        false,
    );
    let mut p = policy(
        vec![IdentityPolicy::mrenclave(M)],
        &[
            Toleration::Hyperthreading,
            Toleration::SoftwareHardeningNeeded,
        ],
    );
    p.tolerations.ignore_advisories = IgnoredAdvisories::from_list(["INTEL-SA-00289"]);
    assert_eq!(
        evaluate(&claims, &p).reasons(),
        [
            "advisory: expected no advisory, or INTEL-SA-00615 in ignore_advisories, actual INTEL-SA-00615"
        ]
    );
    p.tolerations.ignore_advisories =
        IgnoredAdvisories::from_list(["INTEL-SA-00289", "INTEL-SA-00615"]);
    assert!(evaluate(&claims, &p).is_allowed());
    p.tolerations.ignore_advisories = IgnoredAdvisories::from_list(["*"]);
    assert!(evaluate(&claims, &p).is_allowed());
    assert_eq!(
        IgnoredAdvisories::from_list(Vec::<String>::new()),
        IgnoredAdvisories::None
    );
}

#[test]
fn simulation_passes_only_debug_tolerating_policies_and_its_platforms() {
    let trusted = KeyHash([0xab; 32]);
    let claims = simulated(trusted);
    let production = policy(vec![IdentityPolicy::mrenclave(M)], &[]);
    assert_eq!(
        evaluate(&claims, &production).reasons(),
        [
            "debug: expected a production (non-debug) enclave, or tolerate debug-mode, actual a debug enclave (simulation is always debug)"
        ]
    );
    let mut dev = policy(vec![IdentityPolicy::mrenclave(M)], &[Toleration::DebugMode]);
    assert!(evaluate(&claims, &dev).is_allowed());
    dev.platforms = vec![trusted];
    assert!(evaluate(&claims, &dev).is_allowed());
    dev.platforms = vec![KeyHash([0xcd; 32])];
    assert_eq!(
        evaluate(&claims, &dev).reasons(),
        [format!(
            "platform: expected one of [{}], actual {}",
            "cd".repeat(32),
            "ab".repeat(32)
        )]
    );
    // A policy naming platforms denies evidence without a platform key.
    let hw = hardware(TcbStatus::UpToDate, &[], false);
    assert_eq!(
        evaluate(&hw, &dev).reasons(),
        [format!(
            "platform: expected one of [{}], actual dcap evidence without a platform key",
            "cd".repeat(32)
        )]
    );
}

#[test]
fn denials_name_expected_and_actual_values() {
    let claims = hardware(TcbStatus::OutOfDate, &[], false);
    let p = policy(
        vec![
            IdentityPolicy::mrenclave(MrEnclave([0x99; 32])),
            IdentityPolicy::signer(signer(Some(8), 9)),
        ],
        &[],
    );
    assert_eq!(
        evaluate(&claims, &p).reasons(),
        [
            format!(
                "alternative 1: mrenclave: expected {}, actual {}",
                "99".repeat(32),
                "11".repeat(32)
            ),
            "alternative 2: isvprodid: expected 8, actual 7".to_owned(),
            "alternative 2: isvsvn: expected >= 9, actual 3".to_owned(),
            "tcb_status: expected UpToDate, or tolerate outdated-tcb, actual OutOfDate".to_owned(),
        ]
    );
}

#[test]
fn toleration_names_parse_with_the_debug_alias() {
    assert_eq!(
        "debug".parse::<Toleration>().unwrap(),
        Toleration::DebugMode
    );
    for t in [
        Toleration::DebugMode,
        Toleration::Hyperthreading,
        Toleration::SoftwareHardeningNeeded,
        Toleration::OutdatedTcb,
        Toleration::InsecureConfiguration,
        Toleration::MaaManagedTcb,
    ] {
        assert_eq!(t.as_str().parse::<Toleration>().unwrap(), t);
    }
    assert!("insecure-igpu".parse::<Toleration>().is_err());
}
