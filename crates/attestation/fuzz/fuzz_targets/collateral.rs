//! Collateral JSON: parsing, validity dates, and DCAP verification of the recorded quote with
//! whatever collateral the input describes.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use custos_attestation::UnixTime;
use custos_attestation::dcap::{CollateralValidity, DcapVerifier, RootCa, StaticCollateral};
use libfuzzer_sys::fuzz_target;

const QUOTE: &[u8] = include_bytes!("../../tests/data/dcap/sgx_quote");

fuzz_target!(|data: &[u8]| {
    let Ok(collateral) = StaticCollateral::from_json(data) else {
        return;
    };
    let _ = CollateralValidity::of(&collateral.0);
    let verifier = DcapVerifier::sgx_quotes(RootCa::intel_production(), Arc::new(collateral));
    let _ = verifier.verify_evidence(
        QUOTE,
        UnixTime::since_unix_epoch(Duration::from_secs(1_751_328_000)),
    );
});
