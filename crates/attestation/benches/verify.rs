//! Prints the cost of the verifications the CAS does per attestation, in µs per operation.
//!
//! `cargo bench -p custos-attestation --bench verify` (optimised build). Targets: MAA token
//! with cached keys ≤ 50 µs, DCAP with cached parsed collateral ≤ 2 ms, sim-quote ≤ 100 µs.
//! Each figure is the median of 7 rounds (each round long enough to take ~0.3 s).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_attestation::dcap::{DcapVerifier, RootCa, StaticCollateral};
use custos_attestation::evidence::ParsedEvidence;
use custos_attestation::maa::{
    MaaConfig, MaaExpectations, MaaKeySet, MaaTokenVerifier, RuntimeDataType,
};
use custos_attestation::sim::verify_sim_quote;
use custos_attestation::{PlatformKey, SimReport, TrustedPlatforms, UnixTime};
use custos_ids::MrEnclave;
use serde_json::Value;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

/// Median µs per call of `f` over 7 rounds.
fn measure(name: &str, target_us: Option<f64>, mut f: impl FnMut()) -> f64 {
    // Calibrate: how many calls take ~0.3 s.
    let start = Instant::now();
    let mut calibration = 0u64;
    while start.elapsed() < Duration::from_millis(100) {
        f();
        calibration += 1;
    }
    let per_round = (calibration * 3).max(10);
    let mut rounds: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_round {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / per_round as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    let median = rounds[3];
    let verdict = match target_us {
        Some(t) if median <= t => format!("target ≤ {t} µs: met"),
        Some(t) => format!("target ≤ {t} µs: MISSED"),
        None => String::new(),
    };
    println!("{name:<58} {median:>10.1} µs/op  ({per_round} ops × 7 rounds) {verdict}");
    median
}

fn main() {
    // MAA: a recorded token (with runtime data and quote-hash checks), keys parsed once.
    let rec: Value = serde_json::from_slice(&data(
        "maa/recordings/Attestation-AttestationTests.AttestWithRuntimeData-SgxEnclave_Shared.json",
    ))
    .unwrap();
    let calls = rec["networkCallRecords"].as_array().unwrap();
    let jwks = calls[0]["Response"]["BODY"].as_str().unwrap();
    let token = serde_json::from_str::<Value>(calls[1]["Response"]["BODY"].as_str().unwrap())
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let maa = MaaTokenVerifier::new(
        MaaKeySet::from_jwks(jwks.as_bytes()).unwrap(),
        MaaConfig::new("https://sharedwus.wus.attest.azure.net"),
    );
    let runtime_data = data("maa/runtime_data.bin");
    let quote = data("maa/sgx_quote_debug.bin");
    let expected = MaaExpectations {
        runtime_data: Some((&runtime_data, RuntimeDataType::Binary)),
        evidence: Some(&quote),
    };
    let iat = UnixTime::since_unix_epoch(Duration::from_secs(1_654_037_277));
    maa.verify(&token, &expected, iat).unwrap();
    measure(
        "MAA token verify (cached keys, binding + quotehash checks)",
        Some(50.0),
        || {
            black_box(maa.verify(black_box(&token), &expected, iat).unwrap());
        },
    );
    measure("MAA JWKS parse (3 keys, x5c certificates)", None, || {
        black_box(MaaKeySet::from_jwks(black_box(jwks.as_bytes())).unwrap());
    });

    // DCAP: the recorded quote with its collateral, parsed from JSON once.
    let dcap_quote = data("dcap/sgx_quote");
    let collateral =
        Arc::new(StaticCollateral::from_json(&data("dcap/sgx_quote_collateral.json")).unwrap());
    let dcap = DcapVerifier::sgx_quotes(RootCa::intel_production(), collateral);
    let in_window = UnixTime::since_unix_epoch(Duration::from_secs(1_751_328_000));
    dcap.verify_evidence(&dcap_quote, in_window).unwrap();
    measure(
        "DCAP quote verify (cached parsed collateral)",
        Some(2000.0),
        || {
            black_box(
                dcap.verify_evidence(black_box(&dcap_quote), in_window)
                    .unwrap(),
            );
        },
    );

    // Simulation.
    let key = PlatformKey::generate().unwrap();
    let trusted = TrustedPlatforms::from_ids([key.public_key().id()]);
    let sim = key
        .create_quote(&SimReport::new(MrEnclave([1; 32]), b"runtime data"))
        .unwrap();
    measure("sim-quote verify", Some(100.0), || {
        black_box(verify_sim_quote(black_box(&sim), &trusted).unwrap());
    });
    measure("sim-quote create (sign)", None, || {
        black_box(
            key.create_quote(&SimReport::new(MrEnclave([1; 32]), b"runtime data"))
                .unwrap(),
        );
    });

    // Parsing alone.
    measure("SGX quote parse (4.6 KB, v3 with PCK chain)", None, || {
        black_box(ParsedEvidence::parse(black_box(&quote)).unwrap());
    });
}
