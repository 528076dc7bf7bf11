//! The enclave API with arbitrary and half-valid requests, against a real store with
//! sessions in every mode: never a panic, always a JSON error shape, and — the property that
//! matters — a configuration (200) only for a request that redeemed a nonce this CAS issued,
//! whose runtime data name the TLS client's key, and whose evidence (unless `mode: none`) is a
//! sim-quote from the trusted platform key over exactly those runtime data.
//!
//! Input: byte 0 picks the operation — raw challenge body, raw attest body, or a structured
//! attest built from a real challenge with fuzzer-chosen parts (bytes 1–3 choose the config
//! id, whether the real nonce and the client's key are used, and the evidence; the rest is
//! raw material).

#![no_main]

use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custos_ids::{KeyHash, MrEnclave};
use bytes::Bytes;
use custos_attestation::{PlatformKey, SimReport};
use custos_cas::api::ClientApi;
use custos_cas::config::{Config, Limits};
use custos_cas::enclave::EnclaveApi;
use custos_cas::enclave::nonce::NonceKey;
use custos_cas::http::Peer;
use custos_cas::metrics::Metrics;
use custos_cas::seal::{MasterKey, Sealer};
use custos_cas::store::Store;
use custos_protocol::enclave::{AttestRequest, EvidenceBytes, Jwk, RuntimeData};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;

const MRENCLAVE: [u8; 32] = [0x42; 32];
const CONFIG_IDS: [&str; 4] = ["ns/hw/app", "ns/none/app", "ns/maa/app", "ns/hw/missing"];

struct World {
    runtime: tokio::runtime::Runtime,
    api: Arc<EnclaveApi>,
    platform: PlatformKey,
    /// A P-256 point (x ‖ y) and the identity of a certificate for it.
    key: ([u8; 64], KeyHash),
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sealer = Sealer::new(&MasterKey::from_bytes([5; 32])).unwrap();
        let store = Store::open(&dir.path().join("cas.redb"), sealer).unwrap();
        let platform = PlatformKey::generate().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        config.enclave.trusted_platform_keys = vec![platform.public_key().id().to_string()];
        config.enclave.requests_per_second = 1e9;
        config.enclave.burst = 1_000_000_000;
        config.enclave.attests_per_second = 1e9;
        config.enclave.attest_burst = 1_000_000_000;
        config.enclave.attests_per_second_per_config_id = 1e9;
        config.enclave.attest_burst_per_config_id = 1_000_000_000;
        // Nothing listens there: collateral and MAA fail at once, without the network.
        config.dcap.pccs_url = "http://127.0.0.1:9".into();
        config.azure.max_retries = 0;
        config.azure.timeout_secs = 1;
        let metrics = Arc::new(Metrics::default());
        let client = ClientApi::new(
            store.clone(),
            Limits {
                requests_per_second: 1e9,
                burst: 1_000_000_000,
                ..Limits::default()
            },
            None,
            vec![0x30, 0x00],
            String::new(),
            metrics.clone(),
        );
        let owner = Peer {
            addr: "127.0.0.1:9".parse().unwrap(),
            client: Some(KeyHash::from_bytes([1; 32])),
        };
        let m = hex::encode(MRENCLAVE);
        let sessions = [
            "name: ns\nversion: \"0.3\"\n".to_owned(),
            format!(
                "name: ns/hw\nversion: \"0.3\"\nsecurity: {{ attestation: {{ tolerate: [debug-mode] }} }}\nsecrets:\n  - {{ name: A, kind: ascii, size: 8 }}\n  - {{ name: B, kind: binary, value: AAEC }}\nservices:\n  - name: app\n    image_name: i\n    command: app $$SCONE::A$$\n    environment: {{ B: $$SCONE::B:hex$$ }}\n    mrenclaves: [\"{m}\"]\nimages:\n  - name: i\n    injection_files:\n      - {{ path: /f, content: $$SCONE::B$$ }}\n"
            ),
            "name: ns/none\nversion: \"0.3\"\nsecurity: { attestation: { mode: none } }\nsecrets:\n  - { name: A, kind: ascii, size: 8 }\nservices:\n  - name: app\n    environment: { A: $$SCONE::A$$ }\n".to_owned(),
            format!(
                "name: ns/maa\nversion: \"0.3\"\nsecurity: {{ attestation: {{ mode: maa, url: \"https://127.0.0.1:9\", tolerate: [debug-mode, maa-managed-tcb] }} }}\nservices:\n  - name: app\n    mrenclaves: [\"{m}\"]\n"
            ),
        ];
        let client = Arc::new(client);
        for text in sessions {
            let request = Request::builder()
                .method(Method::POST)
                .uri("/v1/sessions")
                .body(Full::new(Bytes::from(text)))
                .unwrap();
            let response = runtime
                .block_on(client.clone().handle(request, owner))
                .unwrap();
            assert_eq!(response.status(), StatusCode::CREATED);
        }
        let api = Arc::new(
            runtime
                .block_on(EnclaveApi::from_config(
                    &config,
                    store,
                    metrics,
                    NonceKey::derive(&MasterKey::from_bytes([5; 32])).unwrap(),
                ))
                .unwrap(),
        );
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let point: [u8; 64] = rcgen::PublicKeyData::der_bytes(&key)[1..].try_into().unwrap();
        World {
            runtime,
            api,
            platform,
            key: (point, KeyHash::of_certificate(cert.der()).unwrap()),
            _dir: dir,
        }
    })
}

fn post(w: &World, path: &str, body: Vec<u8>, client: KeyHash) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let peer = Peer {
        addr: "127.0.0.1:9".parse().unwrap(),
        client: Some(client),
    };
    let response = w
        .runtime
        .block_on(w.api.clone().handle(request, peer))
        .unwrap();
    let status = response.status();
    let bytes = w
        .runtime
        .block_on(response.into_body().collect())
        .unwrap()
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).expect("every answer is JSON");
    if !status.is_success() {
        let code = json["error"]["code"].as_str().expect("errors have a code");
        assert!(json["error"]["message"].is_string());
        assert!(
            status.as_u16() < 500
                || ["store_error", "secret_error", "render_failed"].contains(&code),
            "{status} {json}"
        );
    }
    (status, json)
}

fuzz_target!(|data: &[u8]| {
    let [op, a, b, c, rest @ ..] = data else {
        return;
    };
    let w = world();
    let (point, key_id) = w.key;
    let other = KeyHash::from_bytes([7; 32]);
    match op % 3 {
        0 => {
            post(w, "/v1/enclave/challenge", rest.to_vec(), key_id);
        }
        1 => {
            let (status, _) = post(w, "/v1/enclave/attest", rest.to_vec(), key_id);
            assert_ne!(
                status,
                StatusCode::OK,
                "no nonce was issued for a raw request"
            );
        }
        _ => {
            let config_id = CONFIG_IDS[usize::from(a % 4)];
            let challenge =
                serde_json::to_vec(&serde_json::json!({ "config_id": config_id })).unwrap();
            let (status, answer) = post(w, "/v1/enclave/challenge", challenge, key_id);
            let real_nonce = b & 1 == 0 && status == StatusCode::OK;
            let nonce = if real_nonce {
                answer["nonce"].as_str().unwrap().to_owned()
            } else {
                URL_SAFE_NO_PAD.encode(rest.get(..32).unwrap_or(rest))
            };
            let matching_key = b & 2 == 0;
            let jwk = if b & 4 == 0 {
                Jwk {
                    kty: "EC".into(),
                    crv: "P-256".into(),
                    x: URL_SAFE_NO_PAD.encode(&point[..32]),
                    y: URL_SAFE_NO_PAD.encode(&point[32..]),
                }
            } else {
                Jwk {
                    kty: "EC".into(),
                    crv: "P-256".into(),
                    x: URL_SAFE_NO_PAD.encode(rest.get(..32).unwrap_or(rest)),
                    y: URL_SAFE_NO_PAD.encode(rest.get(32..64).unwrap_or_default()),
                }
            };
            let honest_key = matching_key && b & 4 == 0;
            let runtime_data = serde_json::to_vec(&RuntimeData { nonce, jwk }).unwrap();
            let (kind, quote, valid_quote) = match c % 4 {
                0 => {
                    let report = SimReport::new(MrEnclave(MRENCLAVE), &runtime_data);
                    ("sim-quote", w.platform.create_quote(&report).unwrap(), true)
                }
                1 => {
                    // A sim-quote over other runtime data.
                    let report = SimReport::new(MrEnclave(MRENCLAVE), rest);
                    (
                        "sim-quote",
                        w.platform.create_quote(&report).unwrap(),
                        false,
                    )
                }
                2 => ("sim-quote", rest.to_vec(), false),
                _ => (
                    ["sgx-quote", "oe-report", "maa-token", "x"][usize::from(c >> 4) % 4],
                    rest.to_vec(),
                    false,
                ),
            };
            let request = AttestRequest {
                config_id: config_id.into(),
                evidence: EvidenceBytes {
                    kind: kind.into(),
                    quote,
                },
                runtime_data,
            };
            let client = if matching_key { key_id } else { other };
            let (status, _) = post(
                w,
                "/v1/enclave/attest",
                serde_json::to_vec(&request).unwrap(),
                client,
            );
            if status == StatusCode::OK {
                assert!(
                    real_nonce && honest_key,
                    "a delivery without a fresh nonce for the client's own key"
                );
                assert!(
                    config_id == "ns/none/app" || (config_id == "ns/hw/app" && valid_quote),
                    "a delivery for {config_id} without valid evidence"
                );
            }
        }
    }
});
