//! The MAA client against the emulator (simulation quotes) and against replays of a real MAA
//! instance's recorded answers; tokens are handed to `custos-attestation` for verification.

mod common;

use std::time::Duration;

use common::replay::{self, Recorded, Script};
use custos_attestation::maa::{
    MaaConfig, MaaExpectations, MaaKeySet, MaaTokenVerifier, RuntimeDataType,
};
use custos_attestation::{PlatformKey, SimReport, UnixTime};
use custos_azure::{HttpOptions, MaaClient, MaaClientError, MaaEvidence, RuntimeData};
use custos_azure_emulator::config::{FaultRule, Service};
use custos_ids::MrEnclave;
use serde_json::Value;

fn verify(
    client: &MaaClient,
    keys: &custos_azure::SigningKeys,
    token: &str,
    runtime: &[u8],
    evidence: &[u8],
    now: UnixTime,
) {
    let verifier = MaaTokenVerifier::new(
        MaaKeySet::from_jwks(&keys.jwks).unwrap(),
        MaaConfig::new(client.url()),
    );
    let expected = MaaExpectations {
        runtime_data: Some((runtime, RuntimeDataType::Binary)),
        evidence: Some(evidence),
    };
    verifier.verify(token, &expected, now).unwrap();
}

#[tokio::test]
async fn attests_simulation_quotes_at_the_emulator() {
    let platform = PlatformKey::generate().unwrap();
    let (mut config, _) = common::config(None);
    config.maa.trusted_platform_keys = vec![platform.public_key().id().to_string()];
    let running = common::start(config).await;
    let client = MaaClient::new(&running.urls().maa, &common::http(&running)).unwrap();

    let runtime = br#"{"nonce":"n","jwk":{}}"#;
    let quote = platform
        .create_quote(&SimReport::new(MrEnclave([1; 32]), runtime))
        .unwrap();
    let token = client
        .attest(
            MaaEvidence::SgxQuote(&quote),
            Some(RuntimeData::Binary(runtime)),
        )
        .await
        .unwrap();
    let keys = client.signing_keys_for(&token).await.unwrap();
    verify(&client, &keys, &token, runtime, &quote, UnixTime::now());

    // Cached: a second token with a known kid costs no key request.
    let token = client
        .attest(
            MaaEvidence::SgxQuote(&quote),
            Some(RuntimeData::Binary(runtime)),
        )
        .await
        .unwrap();
    client.signing_keys_for(&token).await.unwrap();
    assert_eq!(running.stats().maa_key_requests, 1);
    // An unknown kid: fetched once more.
    let forged = format!("{}.e30.", base64_url(r#"{"alg":"RS256","kid":"rotated"}"#));
    let keys = client.signing_keys_for(&forged).await.unwrap();
    assert!(!keys.contains("rotated"));
    assert_eq!(running.stats().maa_key_requests, 2);

    let metadata = client.openid_metadata().await.unwrap();
    assert_eq!(
        metadata["jwks_uri"],
        format!("{}/certs", running.urls().maa)
    );

    // MAA's refusal, with its code.
    let stranger = PlatformKey::generate()
        .unwrap()
        .create_quote(&SimReport::new(MrEnclave([1; 32]), runtime))
        .unwrap();
    let err = client
        .attest(MaaEvidence::SgxQuote(&stranger), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MaaClientError::Service { status: 400, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("/attest/SgxEnclave?api-version=2022-08-01: HTTP 400 InvalidParameter: Simulation quote rejected"), "{err}");

    // Throttling: Retry-After is honoured.
    running.set_faults(vec![FaultRule {
        service: Service::Maa,
        path: "/attest/".into(),
        method: None,
        status: Some(429),
        retry_after_secs: Some(1),
        latency_ms: None,
        times: Some(1),
    }]);
    let started = std::time::Instant::now();
    client
        .attest(
            MaaEvidence::SgxQuote(&quote),
            Some(RuntimeData::Binary(runtime)),
        )
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
}

fn base64_url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn recording(file: &str) -> Value {
    let path = format!("{}/tests/data/maa/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn replays_a_real_instance() {
    let attest =
        recording("Attestation-AttestationTests.AttestWithRuntimeData-SgxEnclave_Shared.json");
    let metadata = recording("Attestation-MetadataTests.GetOpenIdMetadata-Shared.json");
    let mut script = Script::default();
    for call in attest["networkCallRecords"]
        .as_array()
        .unwrap()
        .iter()
        .chain(metadata["networkCallRecords"].as_array().unwrap())
    {
        let url = call["Url"].as_str().unwrap();
        let path = url
            .split("attest.azure.net")
            .nth(1)
            .unwrap()
            .split('?')
            .next()
            .unwrap()
            .to_owned();
        script.routes.insert(
            (call["Method"].as_str().unwrap().to_owned(), path),
            Recorded::from_cpp_record(&call["Response"]),
        );
    }
    let server = replay::start(script).await;
    let http = HttpOptions::trusting_only_pem(server.ca_pem.as_bytes()).unwrap();
    let client = MaaClient::new(&server.url(), &http).unwrap();

    let quote = include_bytes!("data/maa/sgx_quote_debug.bin");
    let runtime = include_bytes!("data/maa/runtime_data.bin");
    let token = client
        .attest(
            MaaEvidence::SgxQuote(quote),
            Some(RuntimeData::Binary(runtime)),
        )
        .await
        .unwrap();
    let keys = client.signing_keys_for(&token).await.unwrap();
    assert_eq!(keys.kids.len(), 3);

    // What the client sent is what MAA's API takes.
    let seen = server.seen();
    let (method, path, body) = &seen[0];
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("POST", "/attest/SgxEnclave?api-version=2022-08-01")
    );
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["quote"], base64_url_bytes(quote));
    assert_eq!(body["runtimeData"]["dataType"], "Binary");

    // The recorded token verifies with the recorded keys, as of its issue time. Its issuer is
    // the real instance's URL, so the verifier is configured with it.
    let (_, claims) = token.split_once('.').unwrap();
    let claims: Value =
        serde_json::from_slice(&base64_decode(claims.split('.').next().unwrap())).unwrap();
    let iat = claims["iat"].as_u64().unwrap();
    let verifier = MaaTokenVerifier::new(
        MaaKeySet::from_jwks(&keys.jwks).unwrap(),
        MaaConfig::new(claims["iss"].as_str().unwrap()).with_min_rsa_bits(2048),
    );
    let expected = MaaExpectations {
        runtime_data: Some((runtime, RuntimeDataType::Binary)),
        evidence: Some(quote),
    };
    verifier
        .verify(
            &token,
            &expected,
            UnixTime::since_unix_epoch(Duration::from_secs(iat + 60)),
        )
        .unwrap();

    // The metadata's issuer is the real instance, not the replay server: refused.
    let err = client.openid_metadata().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("issuer is \"https://sharedwus.wus.attest.azure.net\""),
        "{err}"
    );
}

fn base64_url_bytes(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}
