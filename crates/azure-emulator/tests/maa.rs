//! The emulator's MAA over HTTPS: simulation quotes from trusted platform keys in, tokens with
//! the recorded claim set out, verified by `custos-attestation`'s MAA token verifier.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custos_attestation::maa::{
    MaaConfig, MaaExpectations, MaaKeySet, MaaTokenVerifier, RuntimeDataType,
};
use custos_attestation::{PlatformKey, SimReport, UnixTime};
use custos_azure_emulator::{Config, Running};
use custos_ids::MrEnclave;
use serde_json::{Value, json};

const RUNTIME_JSON: &[u8] = b"{\"jwk\":{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"18wHLeIgW9wVN6VD1Txgpqy2LszYkMf6J8njVAibvhM\",\"y\":\"cV4dS4UaLMgP_4fY4j8ir7cl1TXlFdAgcx55o7TkcSA\"}}\0";

struct Setup {
    running: Running,
    http: reqwest::Client,
    platform: PlatformKey,
}

async fn setup() -> Setup {
    let platform = PlatformKey::generate().unwrap();
    let mut config = Config::default();
    config.maa.trusted_platform_keys = vec![platform.public_key().id().to_string()];
    let running = custos_azure_emulator::start(config).await.unwrap();
    let ca = reqwest::Certificate::from_pem(running.ca_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    Setup {
        running,
        http,
        platform,
    }
}

fn quote(platform: &PlatformKey, runtime_data: &[u8]) -> Vec<u8> {
    platform
        .create_quote(&SimReport::new(MrEnclave([7; 32]), runtime_data))
        .unwrap()
}

async fn attest(s: &Setup, kind: &str, body: Value) -> (u16, Value) {
    let url = format!(
        "{}/attest/{kind}?api-version=2022-08-01",
        s.running.urls().maa
    );
    let response = s.http.post(url).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn payload(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part =
        || serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    (part(), part())
}

fn recorded_token_claims(file: &str) -> BTreeSet<String> {
    let path = format!("{}/tests/data/maa/{file}", env!("CARGO_MANIFEST_DIR"));
    let recording: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let call = recording["networkCallRecords"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Url"].as_str().unwrap().contains("/attest/"))
        .unwrap();
    let body: Value = serde_json::from_str(call["Response"]["BODY"].as_str().unwrap()).unwrap();
    payload(body["token"].as_str().unwrap())
        .1
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

async fn verifier(s: &Setup) -> MaaTokenVerifier {
    let jwks = s
        .http
        .get(format!("{}/certs", s.running.urls().maa))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    MaaTokenVerifier::new(
        MaaKeySet::from_jwks(&jwks).unwrap(),
        MaaConfig::new(s.running.urls().maa.clone()),
    )
}

#[tokio::test]
async fn binary_runtime_data_gives_the_recorded_claims_and_verifies() {
    let s = setup().await;
    let runtime = b"runtime data bound by report_data";
    let evidence = quote(&s.platform, runtime);
    let (status, body) = attest(
        &s,
        "SgxEnclave",
        json!({ "quote": URL_SAFE_NO_PAD.encode(&evidence), "runtimeData": { "data": URL_SAFE_NO_PAD.encode(runtime), "dataType": "Binary" } }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    let (header, claims) = payload(token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["jku"], format!("{}/certs", s.running.urls().maa));
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        8 * 3600
    );
    assert_eq!(claims["iss"], s.running.urls().maa);
    assert_eq!(claims["x-ms-sgx-ehd"], URL_SAFE_NO_PAD.encode(runtime));
    assert_eq!(claims["x-ms-sgx-is-debuggable"], true);
    let quote_hash = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &evidence,
    ));
    assert_eq!(claims["x-ms-sgx-collateral"]["quotehash"], quote_hash);
    let names: BTreeSet<String> = claims.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        names,
        recorded_token_claims(
            "Attestation-AttestationTests.AttestWithRuntimeData-SgxEnclave_Shared.json"
        )
    );

    let verified = verifier(&s)
        .await
        .verify(
            token,
            &MaaExpectations {
                runtime_data: Some((runtime, RuntimeDataType::Binary)),
                evidence: Some(&evidence),
            },
            UnixTime::now(),
        )
        .unwrap();
    assert_eq!(verified.claims.mrenclave(), MrEnclave([7; 32]));
    assert!(verified.claims.debug());
    assert_eq!(s.running.stats().maa_attestations, 1);
}

#[tokio::test]
async fn json_runtime_data_open_enclave_reports_and_draft_policies() {
    let s = setup().await;
    let evidence = quote(&s.platform, RUNTIME_JSON);
    let mut report = Vec::new();
    report.extend_from_slice(&1u32.to_le_bytes());
    report.extend_from_slice(&2u32.to_le_bytes());
    report.extend_from_slice(&(evidence.len() as u64).to_le_bytes());
    report.extend_from_slice(&evidence);
    let runtime = json!({ "data": URL_SAFE_NO_PAD.encode(RUNTIME_JSON), "dataType": "JSON" });

    let (status, body) = attest(
        &s,
        "OpenEnclave",
        json!({ "report": URL_SAFE_NO_PAD.encode(&report), "runtimeData": runtime }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    let (_, claims) = payload(token);
    assert_eq!(claims["x-ms-runtime"]["jwk"]["crv"], "P-256");
    let names: BTreeSet<String> = claims.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        names,
        recorded_token_claims(
            "Attestation-AttestationTests.AttestWithRuntimeDataJson-SgxEnclave_Shared.json"
        )
    );
    let hash = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &report,
    ));
    assert_eq!(
        claims["x-ms-sgx-collateral"]["quotehash"], hash,
        "the hash of the whole OE report"
    );
    verifier(&s)
        .await
        .verify(
            token,
            &MaaExpectations {
                runtime_data: Some((RUNTIME_JSON, RuntimeDataType::Json)),
                evidence: Some(&report),
            },
            UnixTime::now(),
        )
        .unwrap();

    let (status, body) = attest(
        &s,
        "SgxEnclave",
        json!({ "quote": URL_SAFE_NO_PAD.encode(&evidence), "runtimeData": runtime, "draftPolicyForAttestation": "version=1.0; authorizationrules { => permit(); };" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    assert!(token.ends_with('.'), "unsigned");
    let (header, _) = payload(token);
    assert_eq!(header["alg"], "none");
    let err = verifier(&s)
        .await
        .verify(token, &MaaExpectations::default(), UnixTime::now())
        .unwrap_err();
    assert!(err.to_string().contains("none"), "{err}");
}

#[tokio::test]
async fn refuses_untrusted_keys_mismatched_runtime_data_and_hardware_quotes() {
    let s = setup().await;
    let stranger = PlatformKey::generate().unwrap();
    let (status, body) = attest(
        &s,
        "SgxEnclave",
        json!({ "quote": URL_SAFE_NO_PAD.encode(quote(&stranger, b"x")) }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Simulation quote rejected"),
        "{body}"
    );

    let (status, body) = attest(
        &s,
        "SgxEnclave",
        json!({ "quote": URL_SAFE_NO_PAD.encode(quote(&s.platform, b"bound")), "runtimeData": { "data": URL_SAFE_NO_PAD.encode(b"other"), "dataType": "Binary" } }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Runtime data hash mismatch"),
        "{body}"
    );

    // A real (hardware) SGX quote: the emulator cannot vouch for it.
    let hardware = include_bytes!("data/maa/sgx_quote_debug.bin");
    let (status, body) = attest(
        &s,
        "SgxEnclave",
        json!({ "quote": URL_SAFE_NO_PAD.encode(hardware) }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("accepts only simulation quotes"),
        "{body}"
    );

    let url = format!("{}/attest/SgxEnclave", s.running.urls().maa);
    let response = s.http.post(url).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 400, "api-version is required");

    // Trusting the stranger at run time lets its quotes in.
    s.running.trust_platform_key(&stranger.public_key());
    let (status, _) = attest(
        &s,
        "SgxEnclave",
        json!({ "quote": URL_SAFE_NO_PAD.encode(quote(&stranger, b"x")) }),
    )
    .await;
    assert_eq!(status, 200);
}
