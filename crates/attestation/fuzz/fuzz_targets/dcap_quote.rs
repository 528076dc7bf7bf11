//! DCAP verification of arbitrary quote bytes with the recorded collateral: our parser, then
//! dcap-qvl's decoder and checks on whatever gets past it.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use custos_attestation::UnixTime;
use custos_attestation::dcap::{DcapVerifier, RootCa, StaticCollateral};
use libfuzzer_sys::fuzz_target;

static VERIFIER: LazyLock<DcapVerifier> = LazyLock::new(|| {
    let collateral = StaticCollateral::from_json(include_bytes!(
        "../../tests/data/dcap/sgx_quote_collateral.json"
    ))
    .unwrap();
    DcapVerifier::sgx_quotes(RootCa::intel_production(), Arc::new(collateral))
});

fuzz_target!(|data: &[u8]| {
    let _ = VERIFIER.verify_evidence(
        data,
        UnixTime::since_unix_epoch(Duration::from_secs(1_751_328_000)),
    );
});
