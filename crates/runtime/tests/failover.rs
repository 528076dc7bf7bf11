//! custos-run's client of a replicated CAS, against real TLS servers on 127.0.0.x that share
//! one key: which failures move a challenge or an attest to the next replica, which are final,
//! and what `custos-run` says when every replica failed. Each replica counts its requests.

#[path = "../../client/tests/replica/mod.rs"]
mod replica;

use std::process::Command;

use custos_protocol::enclave::{AttestRequest, EvidenceBytes};
use custos_runtime::RunError;
use custos_runtime::cas::{CasClient, StartAt};
use custos_runtime::config::{CasTrust, Endpoint};
use custos_runtime::identity::EphemeralKey;
use replica::{Behaviour, Replica, SharedKey, error_body};

const NONCE: &str = r#"{"nonce":"bm9uY2U"}"#;
const DELIVERY: &str = r#"{"argv":["app"],"env":{},"pwd":"/","files":[]}"#;

fn endpoint(addr: impl ToString) -> Endpoint {
    Endpoint::parse(&addr.to_string(), 0).unwrap()
}

/// A client of `replicas` pinned to `key`, trying them in the list's order.
fn client(replicas: &[Endpoint], key: &SharedKey) -> CasClient {
    let own = EphemeralKey::generate().unwrap();
    CasClient::with_replicas(replicas, &CasTrust::Pin(key.key_hash()), &own, false)
        .unwrap()
        .start_at(StartAt::First)
}

fn attest_request() -> AttestRequest {
    AttestRequest {
        config_id: "ns/app/svc".into(),
        evidence: EvidenceBytes {
            kind: "sim-quote".into(),
            quote: vec![1, 2, 3],
        },
        runtime_data: b"{}".to_vec(),
    }
}

#[tokio::test]
async fn a_refused_connection_or_a_503_moves_the_request_to_the_next_replica() {
    let key = SharedKey::generate();
    let dead = Replica::refusing("127.0.1.11").await;
    let busy = Replica::start(
        "127.0.0.3",
        &key,
        Behaviour::Answer(503, error_body("busy", "retry later")),
    )
    .await;
    let live = Replica::start("127.0.0.4", &key, Behaviour::Answer(200, NONCE.into())).await;
    let cas = client(
        &[endpoint(dead), endpoint(busy.addr), endpoint(live.addr)],
        &key,
    );
    assert_eq!(cas.challenge("ns/app/svc").await.unwrap(), "bm9uY2U");
    assert_eq!((busy.count(), live.count()), (1, 1));
    // The replica that answered is asked first next time (the attest after a challenge).
    cas.challenge("ns/app/svc").await.unwrap();
    assert_eq!((busy.count(), live.count()), (1, 2));
}

#[tokio::test]
async fn a_replica_that_never_finishes_the_handshake_costs_the_connect_timeout() {
    let key = SharedKey::generate();
    let silent = Replica::start("127.0.0.5", &key, Behaviour::Silent).await;
    let live = Replica::start("127.0.0.6", &key, Behaviour::Answer(200, NONCE.into())).await;
    let cas = client(&[endpoint(silent.addr), endpoint(live.addr)], &key);
    let started = std::time::Instant::now();
    cas.challenge("ns/app/svc").await.unwrap();
    let took = started.elapsed();
    assert!(took >= custos_runtime::cas::CONNECT_TIMEOUT, "{took:?}");
    assert!(took < std::time::Duration::from_secs(8), "{took:?}");
    assert_eq!(custos_runtime::cas::CONNECT_TIMEOUT.as_secs(), 5);
    assert_eq!(live.count(), 1);
}

#[tokio::test]
async fn a_name_is_steered_to_each_address_it_resolves_to() {
    let key = SharedKey::generate();
    let live = Replica::start("127.0.0.1", &key, Behaviour::Answer(200, NONCE.into())).await;
    let by_name = endpoint(format!("localhost:{}", live.addr.port()));
    let cas = client(&[by_name], &key);
    assert_eq!(cas.challenge("ns/app/svc").await.unwrap(), "bm9uY2U");
    assert_eq!(live.count(), 1);
}

#[tokio::test]
async fn a_denial_is_final_and_no_other_replica_is_asked() {
    let key = SharedKey::generate();
    let denying = Replica::start(
        "127.0.0.2",
        &key,
        Behaviour::Answer(403, error_body("attestation_denied", "mrenclave mismatch")),
    )
    .await;
    let live = Replica::start("127.0.0.3", &key, Behaviour::Answer(200, DELIVERY.into())).await;
    let cas = client(&[endpoint(denying.addr), endpoint(live.addr)], &key);
    match cas.attest(&attest_request()).await {
        Err(RunError::Denied { config_id, detail }) => {
            assert_eq!(config_id, "ns/app/svc");
            assert_eq!(detail.message, "mrenclave mismatch");
        }
        other => panic!("expected the denial, got {other:?}"),
    }
    assert_eq!((denying.count(), live.count()), (1, 0));
}

#[tokio::test]
async fn an_attest_cut_off_after_it_was_sent_is_not_resent_but_a_challenge_is() {
    let key = SharedKey::generate();
    let cut = Replica::start("127.0.0.2", &key, Behaviour::ResetAfterRequest).await;
    let live = Replica::start("127.0.0.3", &key, Behaviour::Answer(200, DELIVERY.into())).await;
    let cas = client(&[endpoint(cut.addr), endpoint(live.addr)], &key);
    let error = cas.attest(&attest_request()).await.unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("CAS at {}: /v1/enclave/attest: ", cut.addr)),
        "{error}"
    );
    assert!(error.contains("not sent to another replica"), "{error}");
    assert_eq!((cut.count(), live.count()), (1, 0));

    let nonces = Replica::start("127.0.0.4", &key, Behaviour::Answer(200, NONCE.into())).await;
    let cas = client(&[endpoint(cut.addr), endpoint(nonces.addr)], &key);
    cas.challenge("ns/app/svc").await.unwrap();
    assert_eq!((cut.count(), nonces.count()), (2, 1));
}

#[tokio::test]
async fn a_replica_with_another_key_is_refused_not_skipped() {
    let key = SharedKey::generate();
    let foreign = Replica::start(
        "127.0.0.2",
        &SharedKey::generate(),
        Behaviour::Answer(200, NONCE.into()),
    )
    .await;
    let live = Replica::start("127.0.0.3", &key, Behaviour::Answer(200, NONCE.into())).await;
    let cas = client(&[endpoint(foreign.addr), endpoint(live.addr)], &key);
    let error = cas.challenge("ns/app/svc").await.unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("CAS at {}: ", foreign.addr)),
        "{error}"
    );
    assert!(error.contains("expected the pinned"), "{error}");
    assert_eq!((foreign.count(), live.count()), (0, 0));
}

#[tokio::test]
async fn when_every_replica_fails_each_is_named() {
    let key = SharedKey::generate();
    let dead = Replica::refusing("127.0.1.12").await;
    let busy = Replica::start(
        "127.0.0.3",
        &key,
        Behaviour::Answer(503, error_body("store_error", "the store is unavailable")),
    )
    .await;
    let cas = client(&[endpoint(dead), endpoint(busy.addr)], &key);
    match cas.challenge("ns/app/svc").await {
        Err(RunError::CasReplicas { path, attempts }) => {
            assert_eq!(path, "/v1/enclave/challenge");
            assert_eq!(attempts.len(), 2);
            assert!(
                attempts[0].starts_with(&format!("CAS at {dead}: ")),
                "{attempts:?}"
            );
            assert_eq!(
                attempts[1],
                format!(
                    "CAS at {}: /v1/enclave/challenge: HTTP 503 Service Unavailable store_error: the store is unavailable",
                    busy.addr
                )
            );
        }
        other => panic!("expected every replica named, got {other:?}"),
    }
}

#[test]
fn custos_run_names_every_unreachable_replica_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    // Port 9 (discard) on loopback: nothing listens, each connection is refused at once.
    let output = Command::new(env!("CARGO_BIN_EXE_custos-run"))
        .args(["sh", "-c", &format!("touch {}", marker.display())])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CUSTOS_CONFIG_ID", "ns/demo/rest-api")
        .env("CUSTOS_CAS_ADDR", "127.0.0.1:9,127.0.0.2:9")
        .env("CUSTOS_MODE", "sim")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("custos-run: no CAS replica could serve /v1/enclave/challenge (2 tried): "),
        "{text}"
    );
    for addr in ["127.0.0.1:9", "127.0.0.2:9"] {
        assert!(
            text.contains(&format!("custos-run:   - CAS at {addr}: ")),
            "{text}"
        );
    }
    assert!(!marker.exists(), "the program must not start");
}
