//! Durability: SIGKILL the CAS in the middle of a stream of creates; after a restart every
//! acknowledged create is there and the store opens cleanly.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{CasProcess, get};
use custos_client::ClientIdentity;
use custos_protocol::client::{SessionList, SessionWritten, StoredSession};
use hyper::{Method, StatusCode};

const WRITERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_create_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let alice = ClientIdentity::generate("alice").unwrap();
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let rate = [
        "--rate-limit",
        "100000",
        "--rate-burst",
        "100000",
        "--namespace-create-burst",
        "100000",
    ];

    for round in 0..3 {
        let mut cas = CasProcess::start(dir.path(), &rate);
        let client = cas.client(Some(&alice));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let client = client.clone();
            let acknowledged = acknowledged.clone();
            writers.push(tokio::spawn(async move {
                let Ok(mut conn) = client.connect().await else { return };
                for i in 0.. {
                    let name = format!("r{round}-w{w}-{i}");
                    let text = format!(
                        "name: {name}\nversion: \"0.3\"\nsecurity: {{ attestation: {{ mode: none }} }}\nsecrets:\n  - {{ name: S, kind: ascii }}\n"
                    );
                    match conn.send(Method::POST, "/v1/sessions", Some(text.into_bytes())).await {
                        Ok(r) if r.status == StatusCode::CREATED => {
                            let hash = common::answer::<SessionWritten>(&r).hash;
                            acknowledged.lock().unwrap().push((name, hash));
                        }
                        Ok(r) => panic!("unexpected answer {}: {:?}", r.status, r.json()),
                        // The CAS was killed mid-request: this create was not acknowledged.
                        Err(_) => return,
                    }
                }
            }));
        }
        // Let the stream run, then kill -9 while requests are in flight.
        let target = (round + 1) * 150;
        common::wait_until("creates to be acknowledged", || {
            acknowledged.lock().unwrap().len() >= target
        });
        tokio::time::sleep(Duration::from_millis(37)).await;
        cas.kill();
        for w in writers {
            w.await.unwrap();
        }
    }

    let cas = CasProcess::start(dir.path(), &rate);
    assert!(!cas.log().contains("ERROR"), "{}", cas.log());
    let client = cas.client(Some(&alice));
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 450);
    let mut conn = client.connect().await.unwrap();
    for (name, hash) in &acknowledged {
        let r = conn
            .send(Method::GET, &format!("/v1/sessions/{name}"), None)
            .await
            .unwrap();
        assert_eq!(
            r.status,
            StatusCode::OK,
            "acknowledged create of {name} lost"
        );
        assert_eq!(common::answer::<StoredSession>(&r).hash, *hash);
    }
    // Every session is listed once, and the store holds no half-written session.
    let listed = common::answer::<SessionList>(&get(&client, "/v1/sessions?prefix=r").await)
        .sessions
        .len();
    assert!(listed >= acknowledged.len());
    assert!(
        listed <= acknowledged.len() + 3 * WRITERS,
        "at most one unacknowledged create per writer and round"
    );
    eprintln!(
        "{} acknowledged creates survived 3 kills; {listed} sessions stored",
        acknowledged.len()
    );
}
