//! Simulation evidence: create, verify, and every way it must be rejected.

mod common;

use common::data;
use custos_attestation::quote::Quote;
use custos_attestation::sim::{
    PlatformKey, PlatformPublicKey, SIM_QUOTE_LEN, SimQuote, SimQuoteVerifier, measure_executable,
    verify_sim_quote,
};
use custos_attestation::{
    EvidenceKind, ParseError, SimError, SimReport, TcbStatus, TrustedPlatforms, UnixTime,
    VerifiedBy, Verifier, Verifiers, VerifyError,
};
use custos_ids::{MrEnclave, MrSigner};

fn report() -> SimReport {
    SimReport {
        mrenclave: MrEnclave([0xaa; 32]),
        mrsigner: MrSigner([0xbb; 32]),
        isvprodid: 7,
        isvsvn: 3,
        report_data: custos_attestation::ReportData::binding(b"{\"nonce\":\"n\"}"),
    }
}

fn trusting(key: &PlatformKey) -> TrustedPlatforms {
    TrustedPlatforms::from_ids([key.public_key().id()])
}

fn now() -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000))
}

#[test]
fn a_sim_quote_verifies_to_debug_simulation_claims() {
    let key = PlatformKey::generate().unwrap();
    let quote = key.create_quote(&report()).unwrap();
    assert_eq!(quote.len(), SIM_QUOTE_LEN);
    let claims = verify_sim_quote(&quote, &trusting(&key)).unwrap();
    assert_eq!(claims.evidence(), EvidenceKind::SimQuote);
    assert_eq!(
        *claims.verified_by(),
        VerifiedBy::Simulation {
            platform: key.public_key().id()
        }
    );
    assert!(claims.is_simulation());
    assert!(claims.debug());
    assert_eq!(claims.tcb().status, TcbStatus::NotApplicable);
    assert_eq!(claims.mrenclave(), MrEnclave([0xaa; 32]));
    assert_eq!(claims.mrsigner(), MrSigner([0xbb; 32]));
    assert_eq!((claims.isvprodid(), claims.isvsvn()), (7, 3));
    assert_eq!(claims.report_data(), report().report_data);
}

#[test]
fn the_verifier_trait_also_checks_the_runtime_data_binding() {
    let key = PlatformKey::generate().unwrap();
    let quote = key.create_quote(&report()).unwrap();
    let verifiers = Verifiers::new().with(SimQuoteVerifier::new(trusting(&key)));
    let claims = verifiers
        .verify(EvidenceKind::SimQuote, &quote, b"{\"nonce\":\"n\"}", now())
        .unwrap();
    assert_eq!(claims.runtime_data(), Some(&b"{\"nonce\":\"n\"}"[..]));
    let err = verifiers
        .verify(
            EvidenceKind::SimQuote,
            &quote,
            b"{\"nonce\":\"other\"}",
            now(),
        )
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::ReportDataMismatch { .. }),
        "{err}"
    );
    let err = verifiers
        .verify(EvidenceKind::SgxQuote, &quote, b"", now())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "evidence type sgx-quote is not accepted here (accepted: sim-quote)"
    );
}

#[test]
fn untrusted_platform_keys_are_rejected_by_id() {
    let key = PlatformKey::generate().unwrap();
    let other = PlatformKey::generate().unwrap();
    let quote = key.create_quote(&report()).unwrap();
    for trusted in [TrustedPlatforms::none(), trusting(&other)] {
        match verify_sim_quote(&quote, &trusted) {
            Err(SimError::UntrustedPlatform { key_id, .. }) => {
                assert_eq!(key_id, key.public_key().id())
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn any_flipped_bit_in_the_signed_part_or_signature_is_rejected() {
    let key = PlatformKey::generate().unwrap();
    let trusted = trusting(&key);
    let quote = key.create_quote(&report()).unwrap();
    // Every byte of the signed part and the signature; the key part changes the key id.
    for i in (0..500).step_by(7) {
        let mut q = quote.clone();
        q[i] ^= 0x01;
        assert!(verify_sim_quote(&q, &trusted).is_err(), "byte {i}");
    }
    let mut q = quote.clone();
    q[200] ^= 0x80; // inside mr_enclave...
    assert!(matches!(
        verify_sim_quote(&q, &trusted),
        Err(SimError::BadSignature { .. })
    ));
    let mut q = quote.clone();
    q[510] ^= 0x01; // the embedded key
    assert!(matches!(
        verify_sim_quote(&q, &trusted),
        Err(SimError::UntrustedPlatform { .. })
    ));
}

#[test]
fn a_key_substituted_with_a_trusted_id_but_foreign_signature_fails() {
    // Re-sign the body with an untrusted key but keep the trusted key embedded.
    let trusted_key = PlatformKey::generate().unwrap();
    let attacker = PlatformKey::generate().unwrap();
    let mut q = attacker.create_quote(&report()).unwrap();
    q[500..564].copy_from_slice(trusted_key.public_key().xy());
    assert!(matches!(
        verify_sim_quote(&q, &trusting(&trusted_key)),
        Err(SimError::BadSignature { .. })
    ));
}

#[test]
fn sim_quotes_are_never_taken_for_sgx_quotes_and_vice_versa() {
    let key = PlatformKey::generate().unwrap();
    let quote = key.create_quote(&report()).unwrap();
    // The SGX parser refuses the simulated key type.
    assert_eq!(
        Quote::parse(&quote).unwrap_err(),
        ParseError::UnsupportedAttestationKeyType(0x8002)
    );
    // A real SGX quote is not a simulated one.
    let sgx = data("maa/sgx_quote_debug.bin");
    let err = SimQuote::parse(&sgx).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not a simulated quote: expected QE vendor id 435553544f532d53494d554c41544544 and attestation key type 0x8002, found 939a7233f79c4ca9940a0db3957f0607 and 0x0002"
    );
    // One marker alone is not enough either way.
    let mut q = quote.clone();
    q[2..4].copy_from_slice(&2u16.to_le_bytes());
    assert!(matches!(
        SimQuote::parse(&q),
        Err(SimError::NotSimulated { .. })
    ));
}

#[test]
fn a_sim_quote_must_declare_debug() {
    let key = PlatformKey::generate().unwrap();
    let mut quote = key.create_quote(&report()).unwrap();
    quote[48 + 48] &= !0x02;
    assert!(matches!(
        SimQuote::parse(&quote),
        Err(SimError::NotDebug { flags: 0x05 })
    ));
}

#[test]
fn truncated_and_padded_sim_quotes_are_malformed() {
    let key = PlatformKey::generate().unwrap();
    let quote = key.create_quote(&report()).unwrap();
    for len in 0..quote.len() {
        assert!(SimQuote::parse(&quote[..len]).is_err(), "len {len}");
    }
    let mut long = quote.clone();
    long.push(0);
    assert!(matches!(
        SimQuote::parse(&long),
        Err(SimError::Parse(ParseError::TrailingBytes { .. }))
    ));
}

#[test]
fn platform_keys_round_trip_through_pem_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.key");
    let key = PlatformKey::load_or_generate(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let again = PlatformKey::load_or_generate(&path).unwrap();
    assert_eq!(again.public_key(), key.public_key());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(!format!("{key:?}").contains(&text[28..60]));

    let pem = key.public_key().to_spki_pem();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let public = PlatformPublicKey::from_spki_pem(pem.as_bytes()).unwrap();
    assert_eq!(public, key.public_key());
    assert_eq!(
        public.id().to_hex(),
        common::sha256_hex(&public.to_spki_der())
    );
    // A quote made with the reloaded key verifies under the original's id.
    let quote = again.create_quote(&report()).unwrap();
    verify_sim_quote(&quote, &trusting(&key)).unwrap();
}

#[test]
fn bad_key_files_are_named_and_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.key");
    std::fs::write(
        &path,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = PlatformKey::load(&path).unwrap_err().to_string();
    assert!(err.contains("bad.key"), "{err}");
    assert!(!err.contains("AAAA"), "{err}");
    let err = PlatformKey::load(&dir.path().join("missing.key"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.key"), "{err}");
    // Public keys: an RSA SPKI or a point off the curve is refused.
    let mut der = PlatformKey::generate().unwrap().public_key().to_spki_der();
    der[40] ^= 0xff;
    assert!(PlatformPublicKey::from_spki_der(&der).is_err());
}

#[test]
fn mrenclave_of_an_executable_is_its_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app");
    let content = vec![0x5a; 200_000];
    std::fs::write(&path, &content).unwrap();
    assert_eq!(
        measure_executable(&path).unwrap().to_hex(),
        common::sha256_hex(&content)
    );
    assert!(measure_executable(&dir.path().join("none")).is_err());
}

#[test]
fn the_documented_layout_holds() {
    let key = PlatformKey::generate().unwrap();
    let q = key.create_quote(&report()).unwrap();
    assert_eq!(&q[0..2], &3u16.to_le_bytes());
    assert_eq!(&q[2..4], &0x8002u16.to_le_bytes());
    assert_eq!(&q[12..28], b"CUSTOS-SIMULATED");
    assert_eq!(&q[28..48], &[0; 20]);
    assert_eq!(&q[48 + 48..48 + 56], &7u64.to_le_bytes());
    assert_eq!(&q[48 + 64..48 + 96], &[0xaa; 32]);
    assert_eq!(&q[48 + 128..48 + 160], &[0xbb; 32]);
    assert_eq!(&q[432..436], &128u32.to_le_bytes());
    assert_eq!(&q[500..564], key.public_key().xy());
    // The signature verifies with a plain P-256 verifier over bytes 0..432.
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(&q[500..564]);
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        &sec1,
    )
    .verify(&q[..432], &q[436..500])
    .unwrap();
    // The trait object is usable from other crates.
    let v: Box<dyn Verifier> = Box::new(SimQuoteVerifier::new(trusting(&key)));
    assert_eq!(v.kind(), EvidenceKind::SimQuote);
}

#[test]
fn a_sim_quote_built_independently_from_the_documented_format_verifies() {
    // tests/data/sim/: made by fuzz/seed.py with Python and the openssl CLI, following
    // docs/attestation.md only (no Custos code).
    let quote = data("sim/independent_sim_quote.bin");
    let key =
        PlatformPublicKey::from_spki_pem(&data("sim/independent_platform_key.pub.pem")).unwrap();
    let claims = verify_sim_quote(&quote, &TrustedPlatforms::from_ids([key.id()])).unwrap();
    assert_eq!(claims.mrenclave().to_hex(), common::sha256_hex(b"app"));
    assert_eq!(
        claims.report_data(),
        custos_attestation::ReportData::binding(b"runtime data")
    );
    assert!(claims.debug());
}
