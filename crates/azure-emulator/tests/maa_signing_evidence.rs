//! The emulated MAA's signing certificate embeds the MAA enclave's (simulated) evidence bound
//! to the signing key, as real MAA's does — or none, when configured so.

use custos_attestation::TrustedPlatforms;
use custos_attestation::maa::MaaKeySet;
use custos_attestation::maa::signers::{OID_MAA_SGX_QUOTE, check_signer_trusting};
use custos_attestation::sim::PlatformKey;
use custos_azure_emulator::config::SigningEvidenceKind;
use custos_azure_emulator::{Config, Running};

async fn start(config: Config) -> (Running, MaaKeySet) {
    let running = custos_azure_emulator::start(config)
        .await
        .expect("emulator starts");
    let ca = reqwest::Certificate::from_pem(running.ca_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    let jwks = http
        .get(format!("{}/certs", running.urls().maa))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let keys = MaaKeySet::from_jwks(&jwks).expect("a JWKS");
    (running, keys)
}

#[tokio::test]
async fn the_signing_certificate_embeds_a_sim_quote_bound_to_the_key_signed_by_the_given_platform_key()
 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform-key.pem");
    let platform = PlatformKey::generate().unwrap();
    platform.save(&path).unwrap();
    let mut config = Config::default();
    config.maa.signing_evidence.platform_key_file = Some(path);
    let (running, keys) = start(config).await;
    assert_eq!(
        running.maa_evidence_platform_key(),
        Some(&platform.public_key())
    );
    let key = keys.keys().next().expect("one key");

    let trusted = TrustedPlatforms::from_ids([platform.public_key().id()]);
    let report = check_signer_trusting(key, None, &trusted);
    assert_eq!(report.evidence_oid, Some(OID_MAA_SGX_QUOTE), "{report:?}");
    assert!(report.binding_ok, "{report:?}");
    assert_eq!(
        report.simulated,
        Some(Ok(platform.public_key().id())),
        "{report:?}"
    );
    let id = report.identity.unwrap();
    assert_eq!(
        id.mrsigner.to_hex(),
        custos_azure_emulator::config::RECORDED_MAA_MRSIGNER
    );
    assert_eq!((id.isvprodid, id.isvsvn, id.debug), (1, 1, true));

    // Another platform key does not vouch for it.
    let untrusted =
        TrustedPlatforms::from_ids([PlatformKey::generate().unwrap().public_key().id()]);
    let report = check_signer_trusting(key, None, &untrusted);
    let why = report.simulated.unwrap().unwrap_err();
    assert!(
        why.contains("not trusted") || why.contains("untrusted"),
        "{why}"
    );
}

#[tokio::test]
async fn configured_identity_and_no_evidence() {
    let mut config = Config::default();
    config.maa.signing_evidence.mrsigner = "ab".repeat(32);
    let (_running, keys) = start(config).await;
    let report =
        check_signer_trusting(keys.keys().next().unwrap(), None, &TrustedPlatforms::none());
    assert_eq!(report.identity.unwrap().mrsigner.to_hex(), "ab".repeat(32));

    let mut config = Config::default();
    config.maa.signing_evidence.kind = SigningEvidenceKind::None;
    let (running, keys) = start(config).await;
    assert!(running.maa_evidence_platform_key().is_none());
    let report =
        check_signer_trusting(keys.keys().next().unwrap(), None, &TrustedPlatforms::none());
    assert!(!report.enclave && report.identity.is_none(), "{report:?}");
}

#[test]
fn the_signing_evidence_configuration_is_checked() {
    let config = Config::from_yaml(
        "maa:\n  signing_evidence:\n    kind: none\n    isvsvn: 7\n",
        "<inline>",
        std::path::Path::new("."),
    )
    .unwrap();
    assert_eq!(config.maa.signing_evidence.kind, SigningEvidenceKind::None);
    assert_eq!(config.maa.signing_evidence.isvsvn, 7);
    let bad = Config::from_yaml(
        "maa:\n  signing_evidence:\n    mrsigner: abc\n",
        "<inline>",
        std::path::Path::new("."),
    )
    .and_then(|c| c.validate("<inline>").map(|()| c))
    .unwrap_err();
    assert!(
        bad.to_string().contains("maa.signing_evidence.mrsigner"),
        "{bad}"
    );
}
