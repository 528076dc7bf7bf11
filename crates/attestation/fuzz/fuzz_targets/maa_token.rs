//! MAA token verification with the recorded signing keys and every expectation checked.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use custos_attestation::UnixTime;
use custos_attestation::maa::{
    MaaConfig, MaaExpectations, MaaKeySet, MaaTokenVerifier, RuntimeDataType,
};
use libfuzzer_sys::fuzz_target;

static VERIFIER: LazyLock<MaaTokenVerifier> = LazyLock::new(|| {
    let recording: serde_json::Value = serde_json::from_slice(include_bytes!(
        "../../tests/data/maa/recordings/Attestation-AttestationTests.AttestWithRuntimeData-SgxEnclave_Shared.json"
    ))
    .unwrap();
    let jwks = recording["networkCallRecords"][0]["Response"]["BODY"]
        .as_str()
        .unwrap();
    MaaTokenVerifier::new(
        MaaKeySet::from_jwks(jwks.as_bytes()).unwrap(),
        MaaConfig::new("https://sharedwus.wus.attest.azure.net"),
    )
});

const RUNTIME_DATA: &[u8] = include_bytes!("../../tests/data/maa/runtime_data.bin");
const QUOTE: &[u8] = include_bytes!("../../tests/data/maa/sgx_quote_debug.bin");

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let now = UnixTime::since_unix_epoch(Duration::from_secs(1_654_037_277));
    for kind in [RuntimeDataType::Binary, RuntimeDataType::Json] {
        let expected = MaaExpectations {
            runtime_data: Some((RUNTIME_DATA, kind)),
            evidence: Some(QUOTE),
        };
        let _ = VERIFIER.verify(token, &expected, now);
    }
    let _ = VERIFIER.verify(token, &MaaExpectations::default(), now);
});
