//! MAA token verification on every recorded token, and every way a token must be rejected.
#![cfg(feature = "maa")]

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{data, data_path, sha256_hex};
use custos_attestation::evidence::ParsedEvidence;
use custos_attestation::maa::signers::check_signer;
use custos_attestation::maa::{
    MaaConfig, MaaError, MaaExpectations, MaaKeySet, MaaTokenVerifier, RuntimeDataType,
};
use custos_attestation::{EvidenceKind, TcbStatus, UnixTime, VerifiedBy};
use custos_ids::TrustedMaaEnclave;
use serde_json::Value;

fn at(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

/// One recorded attestation: the JWKS served with it and the token.
struct Recording {
    name: String,
    jwks: Vec<u8>,
    token: String,
}

impl Recording {
    fn header(&self) -> Value {
        part(&self.token, 0)
    }
    fn payload(&self) -> Value {
        part(&self.token, 1)
    }
    fn iat(&self) -> u64 {
        self.payload()["iat"].as_u64().unwrap()
    }
    fn issuer(&self) -> String {
        self.payload()["iss"].as_str().unwrap().to_owned()
    }
    fn verifier(&self) -> MaaTokenVerifier {
        MaaTokenVerifier::new(
            MaaKeySet::from_jwks(&self.jwks).unwrap(),
            MaaConfig::new(self.issuer()),
        )
    }
    /// The evidence and runtime data the SDK test sent.
    fn sent(&self) -> (Vec<u8>, Option<(Vec<u8>, RuntimeDataType)>) {
        let evidence = if self.name.contains("OpenEnclave") {
            data("maa/openenclave_report_debug.bin")
        } else {
            data("maa/sgx_quote_debug.bin")
        };
        let runtime = if self.name.contains("AttestWithRuntimeDataJson") {
            Some((data("maa/runtime_data.bin"), RuntimeDataType::Json))
        } else if self.name.contains("AttestWithRuntimeData") {
            Some((data("maa/runtime_data.bin"), RuntimeDataType::Binary))
        } else {
            None
        };
        (evidence, runtime)
    }
}

fn part(token: &str, i: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(i).unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn recordings() -> Vec<Recording> {
    let mut out = Vec::new();
    let dir = data_path("maa/recordings");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let rec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let calls = rec["networkCallRecords"].as_array().unwrap();
        let jwks = calls
            .iter()
            .find(|c| c["Url"].as_str().unwrap().ends_with("/certs"))
            .map(|c| c["Response"]["BODY"].as_str().unwrap().as_bytes().to_vec());
        for call in calls {
            let body: Value =
                match serde_json::from_str(call["Response"]["BODY"].as_str().unwrap_or("")) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
            if let Some(token) = body["token"].as_str() {
                out.push(Recording {
                    name: path.file_name().unwrap().to_string_lossy().into_owned(),
                    jwks: jwks.clone().unwrap(),
                    token: token.to_owned(),
                });
            }
        }
    }
    out
}

fn signed() -> Vec<Recording> {
    recordings()
        .into_iter()
        .filter(|r| r.header()["alg"] == "RS256")
        .collect()
}

#[test]
fn every_signed_recorded_token_verifies_as_of_its_iat_with_the_quote_s_fields() {
    let signed = signed();
    assert_eq!(signed.len(), 18, "recorded RS256 tokens");
    for rec in &signed {
        let (evidence, runtime) = rec.sent();
        let expectations = MaaExpectations {
            runtime_data: runtime.as_ref().map(|(d, k)| (d.as_slice(), *k)),
            evidence: Some(&evidence),
        };
        let verified = rec
            .verifier()
            .verify(&rec.token, &expectations, at(rec.iat()))
            .unwrap_or_else(|e| panic!("{}: {e}", rec.name));
        let claims = &verified.claims;
        let quote = ParsedEvidence::parse(&evidence).unwrap();
        let body = quote.body();
        assert_eq!(claims.mrenclave(), body.mr_enclave, "{}", rec.name);
        assert_eq!(claims.mrsigner(), body.mr_signer);
        assert_eq!(
            (claims.isvprodid(), claims.isvsvn()),
            (body.isv_prod_id, body.isv_svn)
        );
        assert_eq!(claims.debug(), body.is_debug());
        assert_eq!(claims.report_data(), body.report_data);
        assert_eq!(claims.evidence(), EvidenceKind::MaaToken);
        assert_eq!(
            *claims.verified_by(),
            VerifiedBy::Maa {
                issuer: rec.issuer()
            }
        );
        assert_eq!(claims.tcb().status, TcbStatus::ManagedByMaa);
        assert_eq!(verified.attestation_type, "sgx");
        // MAA attested exactly the bytes sent.
        assert_eq!(
            verified.quote_hash.as_deref(),
            Some(sha256_hex(&evidence).as_str())
        );
        if let Some((rt, _)) = &runtime {
            assert_eq!(claims.runtime_data(), Some(rt.as_slice()));
        }
    }
}

#[test]
fn draft_policy_tokens_are_unsigned_and_rejected() {
    let drafts: Vec<_> = recordings()
        .into_iter()
        .filter(|r| r.name.contains("DraftPolicy"))
        .collect();
    assert_eq!(drafts.len(), 6);
    for rec in drafts {
        let err = rec
            .verifier()
            .verify(&rec.token, &MaaExpectations::default(), at(rec.iat()))
            .unwrap_err();
        assert_eq!(
            err,
            MaaError::Algorithm {
                found: "none".into()
            },
            "{}",
            rec.name
        );
    }
}

fn sample() -> Recording {
    signed()
        .into_iter()
        .find(|r| r.name.contains("AttestWithRuntimeData-SgxEnclave_Shared"))
        .unwrap()
}

fn reencode(token: &str, header: Option<&Value>, payload: Option<&Value>) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let h = header.map_or(parts[0].to_owned(), |h| {
        URL_SAFE_NO_PAD.encode(h.to_string())
    });
    let p = payload.map_or(parts[1].to_owned(), |p| {
        URL_SAFE_NO_PAD.encode(p.to_string())
    });
    format!("{h}.{p}.{}", parts[2])
}

#[test]
fn tampered_tokens_are_rejected_with_the_right_reason() {
    let rec = sample();
    let v = rec.verifier();
    let now = at(rec.iat());
    let none = MaaExpectations::default();
    let kid = rec.header()["kid"].as_str().unwrap().to_owned();

    // A flipped signature byte.
    let mut sig = URL_SAFE_NO_PAD
        .decode(rec.token.rsplit('.').next().unwrap())
        .unwrap();
    sig[17] ^= 0x01;
    let head = rec.token.rsplit_once('.').unwrap().0;
    let flipped = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&sig));
    assert_eq!(
        v.verify(&flipped, &none, now).unwrap_err(),
        MaaError::BadSignature { kid: kid.clone() }
    );

    // An edited payload: another mrenclave.
    let mut payload = rec.payload();
    payload["x-ms-sgx-mrenclave"] = Value::from("00".repeat(32));
    let edited = reencode(&rec.token, None, Some(&payload));
    assert_eq!(
        v.verify(&edited, &none, now).unwrap_err(),
        MaaError::BadSignature { kid: kid.clone() }
    );

    // A swapped kid: another key of the same instance.
    let mut header = rec.header();
    let other = MaaKeySet::from_jwks(&rec.jwks)
        .unwrap()
        .keys()
        .map(|k| k.kid().to_owned())
        .find(|k| *k != kid)
        .unwrap();
    header["kid"] = Value::from(other.clone());
    let swapped = reencode(&rec.token, Some(&header), None);
    assert_eq!(
        v.verify(&swapped, &none, now).unwrap_err(),
        MaaError::BadSignature { kid: other }
    );
    // An unknown kid.
    header["kid"] = Value::from("nope");
    let unknown = reencode(&rec.token, Some(&header), None);
    assert!(
        matches!(v.verify(&unknown, &none, now).unwrap_err(), MaaError::UnknownKid { kid, .. } if kid == "nope")
    );

    // alg: none, with and without the signature.
    let mut header = rec.header();
    header["alg"] = Value::from("none");
    let alg_none = reencode(&rec.token, Some(&header), None);
    assert_eq!(
        v.verify(&alg_none, &none, now).unwrap_err(),
        MaaError::Algorithm {
            found: "none".into()
        }
    );
    let stripped = format!("{}.", alg_none.rsplit_once('.').unwrap().0);
    assert_eq!(
        v.verify(&stripped, &none, now).unwrap_err(),
        MaaError::Algorithm {
            found: "none".into()
        }
    );

    // alg: HS256 keyed with the public key (the classic key-confusion attack).
    let key_set = MaaKeySet::from_jwks(&rec.jwks).unwrap();
    let cert = key_set.get(&kid).unwrap().certificate().to_vec();
    header["alg"] = Value::from("HS256");
    let unsigned = reencode(&rec.token, Some(&header), None);
    let message = unsigned.rsplit_once('.').unwrap().0.to_owned();
    let hmac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &cert);
    let tag = aws_lc_rs::hmac::sign(&hmac_key, message.as_bytes());
    let hs256 = format!("{message}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    assert_eq!(
        v.verify(&hs256, &none, now).unwrap_err(),
        MaaError::Algorithm {
            found: "HS256".into()
        }
    );

    // Expired, not yet valid (beyond the leeway), and the edges within it.
    let exp = rec.payload()["exp"].as_u64().unwrap();
    assert!(matches!(
        v.verify(&rec.token, &none, at(exp + 61)).unwrap_err(),
        MaaError::Expired { .. }
    ));
    v.verify(&rec.token, &none, at(exp + 60)).unwrap();
    assert!(matches!(
        v.verify(&rec.token, &none, at(rec.iat() - 61)).unwrap_err(),
        MaaError::NotYetValid { .. }
    ));
    v.verify(&rec.token, &none, at(rec.iat() - 60)).unwrap();

    // Wrong issuer.
    let wrong = MaaTokenVerifier::new(
        key_set.clone(),
        MaaConfig::new("https://evil.attest.azure.net"),
    );
    assert_eq!(
        wrong.verify(&rec.token, &none, now).unwrap_err(),
        MaaError::Issuer {
            expected: "https://evil.attest.azure.net".into(),
            found: rec.issuer()
        }
    );
    // A trailing slash on the configured URL is the same instance.
    let slash = MaaTokenVerifier::new(
        key_set.clone(),
        MaaConfig::new(format!("{}/", rec.issuer())),
    );
    slash.verify(&rec.token, &none, now).unwrap();

    // Not a JWS.
    assert!(matches!(
        v.verify("a.b", &none, now).unwrap_err(),
        MaaError::Format(_)
    ));
    assert!(matches!(
        v.verify(&format!("{}.x", rec.token), &none, now)
            .unwrap_err(),
        MaaError::Format(_)
    ));
}

#[test]
fn runtime_data_and_evidence_must_be_the_ones_sent() {
    let rec = sample();
    let v = rec.verifier();
    let now = at(rec.iat());
    let (evidence, runtime) = rec.sent();
    let (rt, _) = runtime.unwrap();
    let other = b"{\"jwk\":{}}".to_vec();
    let err = v
        .verify(
            &rec.token,
            &MaaExpectations {
                runtime_data: Some((&other, RuntimeDataType::Binary)),
                evidence: None,
            },
            now,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            MaaError::RuntimeData {
                claim: "x-ms-sgx-ehd",
                ..
            }
        ),
        "{err}"
    );
    // The token has no x-ms-runtime: JSON runtime data were not what was sent.
    let err = v
        .verify(
            &rec.token,
            &MaaExpectations {
                runtime_data: Some((&rt, RuntimeDataType::Json)),
                evidence: None,
            },
            now,
        )
        .unwrap_err();
    assert_eq!(err, MaaError::MissingClaim("x-ms-runtime"));
    // Another quote than the one sent.
    let oe = data("maa/openenclave_report_debug.bin");
    let err = v
        .verify(
            &rec.token,
            &MaaExpectations {
                runtime_data: None,
                evidence: Some(&oe),
            },
            now,
        )
        .unwrap_err();
    assert_eq!(
        err,
        MaaError::QuoteHash {
            expected: sha256_hex(&oe),
            found: sha256_hex(&evidence)
        }
    );
}

#[test]
fn json_runtime_data_compare_as_json() {
    let rec = signed()
        .into_iter()
        .find(|r| r.name.contains("RuntimeDataJson-SgxEnclave_Aad"))
        .unwrap();
    let v = rec.verifier();
    let rt = data("maa/runtime_data.bin");
    let now = at(rec.iat());
    v.verify(
        &rec.token,
        &MaaExpectations {
            runtime_data: Some((&rt, RuntimeDataType::Json)),
            evidence: None,
        },
        now,
    )
    .unwrap();
    let mut changed: Value = serde_json::from_slice(&rt[..rt.len() - 1]).unwrap();
    changed["jwk"]["x"] = Value::from("AAAA");
    let changed = changed.to_string().into_bytes();
    let err = v
        .verify(
            &rec.token,
            &MaaExpectations {
                runtime_data: Some((&changed, RuntimeDataType::Json)),
                evidence: None,
            },
            now,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            MaaError::RuntimeData {
                claim: "x-ms-runtime",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn key_size_minimum_is_enforced() {
    let rec = sample();
    let keys = MaaKeySet::from_jwks(&rec.jwks).unwrap();
    assert!(keys.keys().all(|k| k.modulus_bits() == 2048));
    let strict = MaaTokenVerifier::new(keys, MaaConfig::new(rec.issuer()).with_min_rsa_bits(3072));
    let err = strict
        .verify(&rec.token, &MaaExpectations::default(), at(rec.iat()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            MaaError::WeakKey {
                bits: 2048,
                min: 3072,
                ..
            }
        ),
        "{err}"
    );
    // The minimum cannot be configured below 1024.
    assert_eq!(
        MaaConfig::new("x").with_min_rsa_bits(512).min_rsa_bits,
        1024
    );
}

#[test]
fn maa_signing_keys_embed_the_maa_enclave_bound_to_the_key() {
    let rec = sample();
    let keys = MaaKeySet::from_jwks(&rec.jwks).unwrap();
    let reports: Vec<_> = keys.keys().map(|k| check_signer(k, None)).collect();
    let enclave: Vec<_> = reports.iter().filter(|r| r.enclave).collect();
    // The instance's own key embeds its enclave; the two "Microsoft Azure Attestation 2020"
    // keys issued by Microsoft's PCA do not.
    assert_eq!(enclave.len(), 1);
    let r = enclave[0];
    assert_eq!(r.kid, "XxRc2vLh1E5FrsNawnRH3PzuFgqg3q7NvCdnjoJHBGE=");
    assert_eq!(
        r.evidence_oid,
        Some(custos_attestation::maa::signers::OID_MAA_OE_REPORT)
    );
    assert!(r.binding_ok);
    let id = r.identity.unwrap();
    assert_eq!(
        id.mrsigner.to_hex(),
        "74ba5fba208571cf99e1f7158e6536a05bbb6ce7807eef8f6a97f64a7af64b83"
    );
    assert!(id.debug);
    for r in reports.iter().filter(|r| !r.enclave) {
        assert!(
            !r.binding_ok && r.identity.is_none() && r.problem.is_none(),
            "{r:?}"
        );
    }
}

#[test]
fn a_2020_maa_certificate_with_a_raw_quote_and_a_1024_bit_key() {
    use rustls_pki_types::pem::PemObject;
    let pem = data("maa-signing-certs/maa.prod.uks.signing.cert.pem");
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
    let key =
        custos_attestation::maa::MaaSigningKey::from_certificate("uks", der.as_ref()).unwrap();
    assert_eq!(key.modulus_bits(), 1024);
    let r = check_signer(&key, None);
    assert_eq!(
        r.evidence_oid,
        Some(custos_attestation::maa::signers::OID_MAA_SGX_QUOTE)
    );
    assert!(r.binding_ok, "{r:?}");
    assert!(r.identity.unwrap().debug);
    // Tokens signed by such a key are refused unless 1024-bit keys are allowed.
    let set = MaaKeySet::from_keys([key]);
    let token = format!(
        "{}.{}.AAAA",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"uks"}"#),
        URL_SAFE_NO_PAD.encode("{}")
    );
    let v = MaaTokenVerifier::new(
        set.clone(),
        MaaConfig::new("https://shareduks.uks.attest.azure.net"),
    );
    assert!(matches!(
        v.verify(&token, &MaaExpectations::default(), at(0))
            .unwrap_err(),
        MaaError::WeakKey {
            bits: 1024,
            min: 2048,
            ..
        }
    ));
    let lenient = MaaTokenVerifier::new(
        set,
        MaaConfig::new("https://shareduks.uks.attest.azure.net").with_min_rsa_bits(1024),
    );
    assert!(matches!(
        lenient
            .verify(&token, &MaaExpectations::default(), at(0))
            .unwrap_err(),
        MaaError::BadSignature { .. }
    ));
}

#[cfg(feature = "dcap")]
#[test]
fn the_maa_enclave_evidence_goes_through_dcap_when_asked() {
    let rec = sample();
    let keys = MaaKeySet::from_jwks(&rec.jwks).unwrap();
    let key = keys
        .get("XxRc2vLh1E5FrsNawnRH3PzuFgqg3q7NvCdnjoJHBGE=")
        .unwrap();
    // The only recorded collateral is for another platform: verification is attempted
    // and fails, and the report says why.
    let check = collateral_of_another_platform();
    let r = check_signer(key, Some(&check));
    let err = r.dcap.unwrap().unwrap_err();
    assert!(err.contains("DCAP verification failed"), "{err}");
}

#[test]
fn bad_jwks_are_rejected() {
    assert!(MaaKeySet::from_jwks(b"[]").is_err());
    assert!(MaaKeySet::from_jwks(br#"{"keys":[{"x5c":[]}]}"#).is_err());
    let dup = br#"{"keys":[{"kid":"a","x5c":[]},{"kid":"a","x5c":[]}]}"#;
    assert_eq!(
        MaaKeySet::from_jwks(dup).unwrap_err(),
        MaaError::Jwks("kid \"a\" appears twice".into())
    );
    let set =
        MaaKeySet::from_jwks(br#"{"keys":[{"kid":"a","x5c":["AAAA"]},{"kid":"b"}]}"#).unwrap();
    assert!(matches!(
        set.get("a").unwrap_err(),
        MaaError::UnusableKey { .. }
    ));
    assert!(
        matches!(set.get("b").unwrap_err(), MaaError::UnusableKey { reason, .. } if reason == "no x5c certificate")
    );
}

#[test]
fn the_self_check_judges_each_recorded_signing_key() {
    use custos_attestation::maa::trust::{SignerCheck, judge, observed_maa_enclaves};
    use custos_attestation::{Tcb, TcbStatus};
    let rec = sample();
    let keys = MaaKeySet::from_jwks(&rec.jwks).unwrap();
    let observed = observed_maa_enclaves();
    assert_eq!(observed.len(), 2);
    let report = |kid: &str| check_signer(keys.get(kid).unwrap(), None);

    // Microsoft's PCA-issued keys embed nothing.
    let err = judge(&report("5n95sus8qrcBcVLXZu3lPYgdMlM"), &observed, &[]).unwrap_err();
    assert_eq!(err.check, SignerCheck::NoEvidence);
    assert_eq!(
        err.to_string(),
        "signing key 5n95sus8qrcBcVLXZu3lPYgdMlM: enclave evidence: expected an Open Enclave report (1.3.6.1.4.1.311.105.1) or an SGX quote (1.2.840.113556.10.1.1) in the signing certificate, actual none"
    );
    // The instance's key embeds its enclave, but unverified evidence is not believed.
    let kid = "XxRc2vLh1E5FrsNawnRH3PzuFgqg3q7NvCdnjoJHBGE=";
    let unverified = report(kid);
    assert_eq!(
        judge(&unverified, &observed, &[]).unwrap_err().to_string(),
        format!(
            "signing key {kid}: DCAP: expected verified evidence, actual not verified (no collateral source)"
        )
    );
    // Had DCAP verified it: its identity is among the observed ones; the identity checks.
    let mut verified = unverified.clone();
    verified.dcap = Some(Ok(Tcb {
        status: TcbStatus::UpToDate,
        advisory_ids: Vec::new(),
    }));
    assert_eq!(judge(&verified, &observed, &[]), Ok(()));
    let other = "ab".repeat(32);
    let untrusted = TrustedMaaEnclave {
        mrsigner: other.parse().unwrap(),
        mrenclave: None,
        isvprodid: None,
        min_isvsvn: None,
        debug_allowed: true,
    };
    assert_eq!(
        judge(&verified, &[untrusted], &[]).unwrap_err().to_string(),
        format!(
            "signing key {kid}: enclave mrsigner: expected one of [{other}], actual 74ba5fba208571cf99e1f7158e6536a05bbb6ce7807eef8f6a97f64a7af64b83"
        )
    );
    let strict = TrustedMaaEnclave {
        mrsigner: observed[0].mrsigner,
        mrenclave: None,
        isvprodid: Some(1),
        min_isvsvn: Some(2),
        debug_allowed: true,
    };
    assert!(
        judge(&verified, &[strict], &[])
            .unwrap_err()
            .to_string()
            .ends_with("enclave isvsvn: expected at least 2, actual 1")
    );
    let production = TrustedMaaEnclave {
        debug_allowed: false,
        ..observed[0]
    };
    assert!(
        judge(&verified, &[production], &[])
            .unwrap_err()
            .to_string()
            .ends_with("enclave debug: expected a production enclave (debug_allowed is false), actual a debug enclave")
    );
    let mut revoked = verified.clone();
    revoked.dcap = Some(Ok(Tcb {
        status: TcbStatus::Revoked,
        advisory_ids: Vec::new(),
    }));
    assert!(
        judge(&revoked, &observed, &[])
            .unwrap_err()
            .to_string()
            .contains("DCAP TCB status: expected not Revoked, actual")
    );
    // A key whose evidence binds another key.
    let mut unbound = verified;
    unbound.binding_ok = false;
    assert!(
        judge(&unbound, &observed, &[])
            .unwrap_err()
            .to_string()
            .contains("key binding: expected report_data[0..32] ")
    );
}

#[cfg(feature = "dcap")]
#[test]
fn the_self_check_refuses_evidence_dcap_cannot_verify() {
    use custos_attestation::maa::trust::{judge, observed_maa_enclaves};
    let rec = sample();
    let keys = MaaKeySet::from_jwks(&rec.jwks).unwrap();
    let key = keys
        .get("XxRc2vLh1E5FrsNawnRH3PzuFgqg3q7NvCdnjoJHBGE=")
        .unwrap();
    let check = collateral_of_another_platform();
    let err = judge(
        &check_signer(key, Some(&check)),
        &observed_maa_enclaves(),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("signing key XxRc2vLh1E5FrsNawnRH3PzuFgqg3q7NvCdnjoJHBGE=: DCAP: DCAP verification failed"),
        "{err}"
    );
}

/// A DCAP check with the only recorded collateral, which is for another platform than MAA's.
#[cfg(feature = "dcap")]
fn collateral_of_another_platform() -> custos_attestation::maa::signers::DcapCheck {
    use custos_attestation::dcap::{RootCa, StaticCollateral};
    custos_attestation::maa::signers::DcapCheck {
        root: RootCa::intel_production(),
        collateral: std::sync::Arc::new(
            StaticCollateral::from_json(&data("dcap/sgx_quote_collateral.json")).unwrap(),
        ),
        now: at(1_751_328_000),
    }
}
