//! `custos evidence …` and `custos mrenclave`, run as real processes on recorded artifacts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../attestation/tests/data")
        .join(name)
}

fn custos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(args)
        .output()
        .expect("custos runs")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What a run must print on stderr.
#[derive(Debug, Clone, Copy)]
enum Says<'a> {
    Exactly(&'a str),
    StartsWith(&'a str),
    Contains(&'a str),
    EndsWith(&'a str),
    Anything,
}

/// One run of the CLI that must end with `code` and say `says`.
#[derive(Debug)]
struct Case<'a> {
    what: &'a str,
    args: Vec<&'a str>,
    code: i32,
    says: Says<'a>,
}

/// Runs every case, naming the failing one.
fn check(cases: &[Case<'_>]) {
    for case in cases {
        let out = custos(&case.args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(case.code), "{}: {err}", case.what);
        let holds = match case.says {
            Says::Exactly(text) => err == text,
            Says::StartsWith(text) => err.starts_with(text),
            Says::Contains(text) => err.contains(text),
            Says::EndsWith(text) => err.ends_with(text),
            Says::Anything => true,
        };
        assert!(
            holds,
            "{}: expected {:?}, stderr {err:?}",
            case.what, case.says
        );
    }
}

/// The arguments of `custos evidence verify-quote QUOTE FLAGS…`.
fn verify_quote<'a>(quote: &'a Path, flags: &[&'a str]) -> Vec<&'a str> {
    [&["evidence", "verify-quote", path(quote)][..], flags].concat()
}

/// The arguments of `custos evidence verify-maa-token TOKEN --jwks JWKS FLAGS…`.
fn verify_maa<'a>(token: &'a Path, jwks: &'a Path, flags: &[&'a str]) -> Vec<&'a str> {
    [
        &[
            "evidence",
            "verify-maa-token",
            path(token),
            "--jwks",
            path(jwks),
        ][..],
        flags,
    ]
    .concat()
}

const IN_WINDOW: &str = "1751328000"; // 2025-07-01, inside the recorded collateral's validity

#[test]
fn parse_quote_prints_the_fields_of_every_evidence_kind() {
    let out = custos(&[
        "evidence",
        "parse-quote",
        path(&data("maa/sgx_quote_debug.bin")),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["type"], "sgx-quote");
    assert_eq!(
        v["mrenclave"],
        "292a1f4b519e46627eb2478a3d9851405653c5b4b0a6925de843834d9216850e"
    );
    assert_eq!(v["debug"], true);

    let out = custos(&[
        "evidence",
        "parse-quote",
        path(&data("maa/openenclave_report_nondebug.bin")),
    ]);
    assert_eq!(json(&out)["type"], "oe-report");
    assert_eq!(json(&out)["debug"], false);

    let dir = tempfile::tempdir().unwrap();
    let key = custos_attestation::PlatformKey::generate().unwrap();
    let sim = key
        .create_quote(&custos_attestation::SimReport::new(
            custos_ids::MrEnclave([7; 32]),
            b"rt",
        ))
        .unwrap();
    let sim_path = dir.path().join("sim");
    std::fs::write(&sim_path, &sim).unwrap();
    let v = json(&custos(&["evidence", "parse-quote", path(&sim_path)]));
    assert_eq!(v["type"], "sim-quote");
    assert_eq!(v["simulated"], true);
    assert_eq!(
        v["signature_data"]["platform_key_id"],
        key.public_key().id().to_hex()
    );

    let bad = dir.path().join("bad");
    std::fs::write(&bad, &sim[..100]).unwrap();
    let out = custos(&["evidence", "parse-quote", path(&bad)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("header and report body at offset 0: needs 432 bytes, 100 left"),
        "{}",
        stderr(&out)
    );
    let out = custos(&["evidence", "parse-quote", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verify_quote_prints_the_tcb_status_and_identity() {
    let quote = data("dcap/sgx_quote");
    let collateral = data("dcap/sgx_quote_collateral.json");
    let out = custos(&verify_quote(
        &quote,
        &["--collateral", path(&collateral), "--at", IN_WINDOW],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["tcb_status"], "ConfigurationAndSWHardeningNeeded");
    assert_eq!(
        v["advisory_ids"],
        serde_json::json!(["INTEL-SA-00289", "INTEL-SA-00615"])
    );
    assert!(v["mrenclave"].as_str().unwrap().starts_with("33d8736d"));
    assert_eq!(v["isvprodid"], 0);
    assert_eq!(v["debug"], false);
    assert!(
        v["report_data"]
            .as_str()
            .unwrap()
            .starts_with(&hex("Hello, world!"))
    );
    for key in [
        "tcb_status",
        "advisory_ids",
        "mrenclave",
        "mrsigner",
        "isvsvn",
        "debug",
        "report_data",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
}

#[test]
fn verify_quote_rejections_exit_1_and_bad_input_exits_2() {
    let quote = data("dcap/sgx_quote");
    let collateral = data("dcap/sgx_quote_collateral.json");
    let test_root = data("dcap-intel-test-pki/trustedRootCaCert.pem");
    let other_platform = data("maa/sgx_quote_debug.bin");
    let (quote_s, collateral_s) = (path(&quote), path(&collateral));
    check(&[
        Case {
            what: "expired collateral",
            args: verify_quote(
                &quote,
                &["--collateral", collateral_s, "--at", "1800000000"],
            ),
            code: 1,
            says: Says::Exactly(
                "collateral tcb_info is valid from 2025-06-19T10:56:11Z until 2025-07-19T10:56:11Z, not at 2027-01-15T08:00:00Z\n",
            ),
        },
        Case {
            what: "another root",
            args: verify_quote(
                &quote,
                &[
                    "--collateral",
                    collateral_s,
                    "--root-ca",
                    path(&test_root),
                    "--at",
                    IN_WINDOW,
                ],
            ),
            code: 1,
            says: Says::Anything,
        },
        Case {
            what: "a quote from another platform",
            args: verify_quote(
                &other_platform,
                &["--collateral", collateral_s, "--at", IN_WINDOW],
            ),
            code: 1,
            says: Says::Contains("Fmspc mismatch"),
        },
        Case {
            what: "no collateral",
            args: verify_quote(&quote, &[]),
            code: 2,
            says: Says::Anything,
        },
        Case {
            what: "collateral that is not collateral",
            args: verify_quote(&quote, &["--collateral", quote_s]),
            code: 2,
            says: Says::Contains("not QuoteCollateralV3 JSON"),
        },
        Case {
            what: "a root that is not a certificate",
            args: verify_quote(
                &quote,
                &["--collateral", collateral_s, "--root-ca", quote_s],
            ),
            code: 2,
            says: Says::Anything,
        },
        Case {
            what: "both collateral sources at once",
            args: verify_quote(
                &quote,
                &["--collateral", collateral_s, "--pccs", "https://x"],
            ),
            code: 2,
            says: Says::Anything,
        },
    ]);
}

/// The JWKS and the token of a recording, written to files.
fn recording(dir: &Path, name: &str) -> (PathBuf, PathBuf, u64) {
    let rec: Value =
        serde_json::from_slice(&std::fs::read(data(&format!("maa/recordings/{name}"))).unwrap())
            .unwrap();
    let calls = rec["networkCallRecords"].as_array().unwrap();
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, calls[0]["Response"]["BODY"].as_str().unwrap()).unwrap();
    let body: Value = serde_json::from_str(calls[1]["Response"]["BODY"].as_str().unwrap()).unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let payload: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let token_path = dir.join("token.jwt");
    std::fs::write(&token_path, format!("{token}\n")).unwrap();
    (token_path, jwks, payload["iat"].as_u64().unwrap())
}

#[test]
fn verify_maa_token_prints_the_claims_and_rejects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let (token, jwks, iat) = recording(
        dir.path(),
        "Attestation-AttestationTests.AttestWithRuntimeData-OpenEnclave_Isolated.json",
    );
    let iat = iat.to_string();
    let issuer = "https://cplarryoattestationiso.wus.attest.azure.net";
    let runtime_data = data("maa/runtime_data.bin");
    let evidence = data("maa/openenclave_report_debug.bin");
    let out = custos(&verify_maa(
        &token,
        &jwks,
        &[
            "--issuer",
            issuer,
            "--at",
            &iat,
            "--runtime-data",
            path(&runtime_data),
            "--evidence",
            path(&evidence),
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["issuer"], issuer);
    assert_eq!(v["attestation_type"], "sgx");
    assert_eq!(
        v["mrenclave"],
        "292a1f4b519e46627eb2478a3d9851405653c5b4b0a6925de843834d9216850e"
    );
    assert_eq!(
        v["mrsigner"],
        "4aea5f9a0ed04b11f889aadfe6a1d376213a29a95a85ce7337ae6f7fece6610c"
    );
    assert_eq!(
        (
            v["isvprodid"].as_u64(),
            v["isvsvn"].as_u64(),
            v["debug"].as_bool()
        ),
        (Some(1), Some(1), Some(true))
    );
    assert_eq!(v["report_data"].as_str().unwrap().len(), 128);

    let late = (iat.parse::<u64>().unwrap() + 9 * 3600).to_string();
    let other_evidence = data("maa/sgx_quote_debug.bin");
    let wrong_issuer = format!("token issuer: expected \"https://evil\", found \"{issuer}\"\n");
    check(&[
        Case {
            what: "wrong issuer",
            args: verify_maa(&token, &jwks, &["--issuer", "https://evil", "--at", &iat]),
            code: 1,
            says: Says::Exactly(&wrong_issuer),
        },
        Case {
            what: "expired",
            args: verify_maa(&token, &jwks, &["--issuer", issuer, "--at", &late]),
            code: 1,
            says: Says::StartsWith("token expired at 2022-"),
        },
        Case {
            what: "other evidence",
            args: verify_maa(
                &token,
                &jwks,
                &[
                    "--issuer",
                    issuer,
                    "--at",
                    &iat,
                    "--evidence",
                    path(&other_evidence),
                ],
            ),
            code: 1,
            says: Says::Contains("quotehash"),
        },
        Case {
            what: "a JWKS that is not one",
            args: verify_maa(&token, &token, &["--at", &iat]),
            code: 2,
            says: Says::Anything,
        },
    ]);

    // A flipped signature byte.
    let text = std::fs::read_to_string(&token).unwrap();
    let mut bytes = text.trim().as_bytes().to_vec();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    std::fs::write(&token, &bytes).unwrap();
    check(&[Case {
        what: "a flipped signature byte",
        args: verify_maa(&token, &jwks, &["--issuer", issuer, "--at", &iat]),
        code: 1,
        says: Says::StartsWith("token signature does not verify"),
    }]);
}

#[test]
fn draft_policy_tokens_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (token, jwks, iat) = recording(
        dir.path(),
        "Attestation-AttestationTests.AttestWithDraftPolicy-SgxEnclave_Shared.json",
    );
    check(&[Case {
        what: "alg none",
        args: verify_maa(&token, &jwks, &["--at", &iat.to_string()]),
        code: 1,
        says: Says::EndsWith("token alg: expected RS256, found \"none\"\n"),
    }]);
}

#[test]
fn maa_signers_prints_one_object_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_, jwks, _) = recording(
        dir.path(),
        "Attestation-AttestationTests.SimpleAttest-SgxEnclave_Aad.json",
    );
    let out = custos(&["evidence", "maa-signers", path(&jwks)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for v in &lines {
        for key in [
            "kid",
            "enclave",
            "binding_ok",
            "mrenclave",
            "mrsigner",
            "debug",
        ] {
            assert!(v.get(key).is_some(), "{key} in {v}");
        }
    }
    let enclave: Vec<_> = lines.iter().filter(|v| v["enclave"] == true).collect();
    assert_eq!(enclave.len(), 1);
    assert_eq!(enclave[0]["binding_ok"], true);
    assert_eq!(enclave[0]["debug"], true);
    assert_eq!(
        enclave[0]["mrsigner"],
        "74ba5fba208571cf99e1f7158e6536a05bbb6ce7807eef8f6a97f64a7af64b83"
    );

    // A single PEM certificate (the 2020 format, with a raw quote).
    let out = custos(&[
        "evidence",
        "maa-signers",
        path(&data("maa-signing-certs/maa.prod.uks.signing.cert.pem")),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["enclave"].as_bool(), v["binding_ok"].as_bool()),
        (Some(true), Some(true))
    );

    // DCAP verification asked for, with collateral of another platform: rejected with the reason.
    let out = custos(&[
        "evidence",
        "maa-signers",
        path(&jwks),
        "--collateral",
        path(&data("dcap/sgx_quote_collateral.json")),
        "--at",
        IN_WINDOW,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("DCAP verification failed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn mrenclave_is_the_sha256_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("app");
    std::fs::write(&exe, b"#!/bin/sh\necho hello\n").unwrap();
    let out = custos(&["mrenclave", path(&exe)]);
    assert_eq!(out.status.code(), Some(0));
    let expected = hex(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        b"#!/bin/sh\necho hello\n",
    ));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{expected}\n")
    );
    let out = custos(&["mrenclave", path(&dir.path().join("missing"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing"));
}

#[test]
fn verify_quote_with_an_unreachable_pccs_is_missing_input() {
    let quote = data("dcap/sgx_quote");
    let collateral = data("dcap/sgx_quote_collateral.json");
    let not_pem = data("maa/runtime_data.bin");
    check(&[
        Case {
            what: "an unreachable PCCS",
            args: verify_quote(
                &quote,
                &[
                    "--pccs",
                    "https://127.0.0.1:1/sgx/certification/v4/",
                    "--at",
                    IN_WINDOW,
                ],
            ),
            code: 2,
            says: Says::StartsWith(
                "collateral fetch from https://127.0.0.1:1/sgx/certification/v4/pckcrl?ca=processor&encoding=der: ",
            ),
        },
        Case {
            what: "--pccs-ca without PEM certificates",
            args: verify_quote(
                &quote,
                &["--pccs", "https://127.0.0.1:1", "--pccs-ca", path(&not_pem)],
            ),
            code: 2,
            says: Says::Contains("no PEM certificate"),
        },
        Case {
            what: "--cache-dir without --pccs",
            args: verify_quote(
                &quote,
                &["--collateral", path(&collateral), "--cache-dir", "/tmp"],
            ),
            code: 2,
            says: Says::Anything,
        },
    ]);
}

#[test]
fn maa_signers_without_any_enclave_key_is_a_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let (_, jwks, _) = recording(
        dir.path(),
        "Attestation-AttestationTests.SimpleAttest-SgxEnclave_Aad.json",
    );
    // Keep only the two keys issued by Microsoft's PCA (no enclave evidence).
    let mut v: Value = serde_json::from_slice(&std::fs::read(&jwks).unwrap()).unwrap();
    v["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["kid"] != "XxRc2vLh1E5FrsNawnRH3PzuFgqg3q7NvCdnjoJHBGE=");
    std::fs::write(&jwks, v.to_string()).unwrap();
    let out = custos(&["evidence", "maa-signers", path(&jwks)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    assert!(
        stderr(&out)
            .starts_with("enclave: expected at least one signing key with MAA enclave evidence"),
        "{}",
        stderr(&out)
    );
}
