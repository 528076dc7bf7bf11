//! Failover between CAS replicas, against real TLS servers on 127.0.0.x that present one key:
//! which failures move a call to the next replica, which are the call's answer, and what the
//! error says when every replica failed. Each replica counts the requests it read.

mod replica;

use std::time::{Duration, Instant};

use custos_client::{CasClient, ClientError, ClientIdentity, ServerTrust, StartAt, Timeouts};
use hyper::{Method, StatusCode};
use replica::{Behaviour, Replica, SharedKey, error_body};

const VERSION: &str = r#"{"name":"custos-cas","version":"0.1.0","api":"v1","simulation":true}"#;
const WRITTEN: &str = r#"{"name":"ns","hash":"00"}"#;

fn ok(body: &str) -> Behaviour {
    Behaviour::Answer(200, body.to_owned())
}

fn unavailable() -> Behaviour {
    Behaviour::Answer(503, error_body("store_error", "the store is unavailable"))
}

/// A client of `addrs` trusting `key`, trying them in the list's order.
fn client(addrs: &[String], key: &SharedKey) -> CasClient {
    let identity = ClientIdentity::generate("failover-test").unwrap();
    CasClient::new(
        &addrs.join(","),
        Some(&identity),
        ServerTrust::Pinned(key.key_hash()),
    )
    .unwrap()
    .start_at(StartAt::First)
}

#[tokio::test]
async fn a_refused_connection_moves_the_call_to_the_next_replica() {
    let key = SharedKey::generate();
    let dead = Replica::refusing("127.0.1.1").await;
    let live = Replica::start("127.0.0.3", &key, ok(VERSION)).await;
    let cas = client(&[dead.to_string(), live.addr.to_string()], &key);
    let version = cas.version().await.unwrap();
    assert_eq!(version.name, "custos-cas");
    assert_eq!(live.count(), 1);
}

#[tokio::test]
async fn a_503_moves_the_call_even_a_create_and_each_replica_is_asked_once() {
    let key = SharedKey::generate();
    let busy = Replica::start("127.0.0.2", &key, unavailable()).await;
    let live = Replica::start("127.0.0.3", &key, Behaviour::Answer(201, WRITTEN.into())).await;
    let cas = client(&[busy.addr.to_string(), live.addr.to_string()], &key);
    let written = cas.create_session("name: ns\n").await.unwrap();
    assert_eq!(written.name, "ns");
    assert_eq!((busy.count(), live.count()), (1, 1));
}

#[tokio::test]
async fn a_denial_is_the_answer_and_no_other_replica_is_asked() {
    let key = SharedKey::generate();
    let denying = Replica::start(
        "127.0.0.2",
        &key,
        Behaviour::Answer(403, error_body("access_denied", "not yours")),
    )
    .await;
    let other = Replica::start("127.0.0.3", &key, ok(VERSION)).await;
    let cas = client(&[denying.addr.to_string(), other.addr.to_string()], &key);
    match cas.read_session("ns").await {
        Err(ClientError::Refused { status, error, .. }) => {
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert_eq!(error.code, "access_denied");
        }
        other => panic!("expected the 403, got {other:?}"),
    }
    // Any other 4xx too: a create meeting an existing session.
    let conflicting = Replica::start(
        "127.0.0.4",
        &key,
        Behaviour::Answer(409, error_body("exists", "session ns exists")),
    )
    .await;
    let cas = client(
        &[conflicting.addr.to_string(), other.addr.to_string()],
        &key,
    );
    let error = cas.create_session("name: ns\n").await.unwrap_err();
    assert!(error.to_string().starts_with("409 exists"), "{error}");
    assert_eq!((denying.count(), conflicting.count()), (1, 1));
    assert_eq!(other.count(), 0, "no other replica may be asked");
}

#[tokio::test]
async fn a_create_cut_off_after_it_was_sent_is_reported_not_resent() {
    let key = SharedKey::generate();
    let cut = Replica::start("127.0.0.2", &key, Behaviour::ResetAfterRequest).await;
    let live = Replica::start("127.0.0.3", &key, Behaviour::Answer(201, WRITTEN.into())).await;
    let cas = client(&[cut.addr.to_string(), live.addr.to_string()], &key);
    match cas.create_session("name: ns\n").await {
        Err(error @ ClientError::Interrupted { .. }) => {
            let text = error.to_string();
            assert!(text.starts_with(&format!("{}: ", cut.addr)), "{text}");
            assert!(
                text.contains("POST /v1/sessions request was sent"),
                "{text}"
            );
            assert!(text.contains("not retried at another replica"), "{text}");
        }
        other => panic!("expected Interrupted, got {other:?}"),
    }
    assert_eq!((cut.count(), live.count()), (1, 0));

    // A read cut off the same way is simply asked again elsewhere.
    let cas = client(&[cut.addr.to_string(), live.addr.to_string()], &key);
    let answer = cas.request(Method::GET, "/v1/version", None).await.unwrap();
    assert_eq!(answer.addr, live.addr.to_string());
    assert_eq!((cut.count(), live.count()), (2, 1));
}

#[tokio::test]
async fn a_silent_replica_costs_the_handshake_timeout_once() {
    let key = SharedKey::generate();
    let silent = Replica::start("127.0.0.2", &key, Behaviour::Silent).await;
    let live = Replica::start("127.0.0.3", &key, ok(VERSION)).await;
    let timeouts = Timeouts {
        connect: Duration::from_millis(500),
        tls_handshake: Duration::from_millis(300),
    };
    assert_eq!(
        Timeouts::default(),
        Timeouts {
            connect: Duration::from_secs(2),
            tls_handshake: Duration::from_secs(5),
        },
        "the defaults docs/cli.md states"
    );
    let cas = client(&[silent.addr.to_string(), live.addr.to_string()], &key).timeouts(timeouts);
    let started = Instant::now();
    cas.version().await.unwrap();
    let first = started.elapsed();
    assert!(first >= Duration::from_millis(300), "{first:?}");
    assert!(first < Duration::from_secs(3), "{first:?}");
    // It failed recently: the next call asks the live replica first and pays nothing.
    let started = Instant::now();
    cas.version().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(live.count(), 2);
}

#[tokio::test]
async fn a_replica_with_another_key_is_refused_not_skipped() {
    let key = SharedKey::generate();
    let foreign_key = SharedKey::generate();
    let foreign = Replica::start("127.0.0.2", &foreign_key, ok(VERSION)).await;
    let live = Replica::start("127.0.0.3", &key, ok(VERSION)).await;
    let cas = client(&[foreign.addr.to_string(), live.addr.to_string()], &key);
    match cas.version().await {
        Err(ClientError::PinMismatch {
            addr,
            expected,
            actual,
        }) => {
            assert_eq!(addr, foreign.addr.to_string());
            assert_eq!((expected, actual), (key.key_hash(), foreign_key.key_hash()));
        }
        other => panic!("expected a pin mismatch, got {other:?}"),
    }
    assert_eq!((foreign.count(), live.count()), (0, 0));
}

#[tokio::test]
async fn when_every_replica_fails_each_is_named_with_its_reason() {
    let key = SharedKey::generate();
    let dead = Replica::refusing("127.0.1.2").await;
    let busy = Replica::start("127.0.0.3", &key, unavailable()).await;
    let cas = client(
        &[
            dead.to_string(),
            busy.addr.to_string(),
            "no-such-host.invalid:8081".into(),
        ],
        &key,
    );
    match cas.version().await {
        Err(ClientError::AllFailed { attempts }) => {
            let named: Vec<&str> = attempts.iter().map(|a| a.addr.as_str()).collect();
            assert_eq!(
                named,
                [
                    "no-such-host.invalid:8081",
                    &dead.to_string(),
                    &busy.addr.to_string()
                ]
            );
            assert!(
                attempts[1].reason.starts_with("cannot connect: "),
                "{attempts:?}"
            );
            assert_eq!(
                attempts[2].reason,
                "503 store_error: the store is unavailable"
            );
            let text = ClientError::AllFailed { attempts }.to_string();
            assert!(
                text.starts_with("no CAS replica could serve the request (3 tried): "),
                "{text}"
            );
        }
        other => panic!("expected every replica named, got {other:?}"),
    }
    assert_eq!(busy.count(), 1);
}

#[tokio::test]
async fn one_address_keeps_its_own_errors_and_its_503() {
    let key = SharedKey::generate();
    let dead = Replica::refusing("127.0.1.3").await;
    let error = client(&[dead.to_string()], &key)
        .version()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Connect { addr, .. } if *addr == dead.to_string()),
        "{error:?}"
    );
    let busy = Replica::start("127.0.0.3", &key, unavailable()).await;
    match client(&[busy.addr.to_string()], &key).version().await {
        Err(ClientError::Refused { status, .. }) => {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        }
        other => panic!("expected the 503, got {other:?}"),
    }
}

#[tokio::test]
async fn random_starts_spread_calls_over_the_replicas() {
    let key = SharedKey::generate();
    let a = Replica::start("127.0.0.2", &key, ok(VERSION)).await;
    let b = Replica::start("127.0.0.3", &key, ok(VERSION)).await;
    let cas = client(&[a.addr.to_string(), b.addr.to_string()], &key).start_at(StartAt::Random);
    for _ in 0..40 {
        cas.version().await.unwrap();
    }
    assert_eq!(a.count() + b.count(), 40);
    // 40 fair coin flips all one way: 2 in 2^40.
    assert!(
        a.count() > 0 && b.count() > 0,
        "{} {}",
        a.count(),
        b.count()
    );
}

#[test]
fn a_bad_list_is_refused_naming_the_entry() {
    let error = CasClient::new("127.0.0.1:8081,,x:1", None, ServerTrust::AttestationOnly)
        .unwrap_err()
        .to_string();
    assert!(error.contains("entry 2 is empty"), "{error}");
}
