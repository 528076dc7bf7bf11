use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::ThreadId;

use custos_attestation::claims::EvidenceKind;
use custos_ids::MrEnclave;

use super::*;
use crate::attest::{Evidence, EvidenceError};
use crate::seal::{MasterKey, Sealer};

/// Evidence that takes a while, as Gramine's file I/O does, and records where it ran.
#[derive(Debug, Default)]
struct SlowEvidence {
    threads: Mutex<Vec<ThreadId>>,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl SelfEvidence for SlowEvidence {
    fn evidence(&self, runtime_data: &[u8]) -> Result<Evidence, EvidenceError> {
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::current().id());
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(150));
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(Evidence {
            kind: EvidenceKind::SimQuote,
            bytes: runtime_data.to_vec(),
        })
    }

    fn is_simulation(&self) -> bool {
        true
    }

    fn mrenclave(&self) -> MrEnclave {
        "ab".repeat(32).parse().unwrap()
    }

    fn platform_public_key_pem(&self) -> Option<String> {
        None
    }
}

fn api(dir: &std::path::Path, evidence: Arc<SlowEvidence>) -> Arc<ClientApi> {
    let sealer = Sealer::new(&MasterKey::from_bytes([3; 32])).unwrap();
    let store = Store::open(&dir.join("cas.redb"), sealer).unwrap();
    Arc::new(ClientApi::new(
        store,
        Limits::default(),
        Some(evidence),
        vec![0x30, 0x00],
        String::new(),
        Arc::new(Metrics::default()),
    ))
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(path)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

// One worker thread: evidence produced on it would stall every other request.
#[tokio::test(flavor = "current_thread")]
async fn the_cas_evidence_is_made_off_the_async_worker_a_few_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let evidence = Arc::new(SlowEvidence::default());
    let api = api(dir.path(), evidence.clone());
    let worker = std::thread::current().id();
    let peer = |n: u8| Peer {
        addr: SocketAddr::from(([127, 0, 0, n], 40_000)),
        client: None,
    };
    let attests: Vec<_> = (0..6)
        .map(|n| {
            let api = api.clone();
            tokio::spawn(async move {
                let nonce = hex::encode([n; 32]);
                api.handle(get(&format!("/v1/attest?nonce={nonce}")), peer(n + 1))
                    .await
                    .unwrap()
            })
        })
        .collect();
    // Let the attests start, then ask for health while evidence is being made. Evidence made
    // on this thread would have run to its end before this task is polled again.
    let start = Instant::now();
    while evidence.running.load(Ordering::SeqCst) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "evidence was never in progress while another request was served"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let health = api
        .clone()
        .handle(get("/healthz"), peer(100))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(
        evidence.running.load(Ordering::SeqCst) > 0,
        "/healthz waited for the evidence"
    );
    for attest in attests {
        assert_eq!(attest.await.unwrap().status(), StatusCode::OK);
    }
    let threads = evidence.threads.lock().unwrap();
    assert_eq!(threads.len(), 6);
    assert!(
        threads.iter().all(|t| *t != worker),
        "evidence was made on the async worker"
    );
    assert_eq!(evidence.peak.load(Ordering::SeqCst), EVIDENCE_SLOTS);
}

#[test]
fn quota_addresses_group_an_ipv6_64() {
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
    let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(client_address(a), client_address(b));
    assert_ne!(client_address(a), client_address(c));
    let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
    assert_eq!(
        client_address(mapped),
        "127.0.0.2".parse::<IpAddr>().unwrap()
    );
    let v4: IpAddr = "127.0.0.3".parse().unwrap();
    assert_eq!(client_address(v4), v4);
}
