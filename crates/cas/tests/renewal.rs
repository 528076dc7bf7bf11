//! Generated certificates renewed at delivery, against a real `custos-cas` process: a short
//! `valid_for` certificate is delivered, renewed once half of it has passed — once, however
//! many attestations ask at the same time — for the same key and issuer, delivered again as
//! renewed, also by a restarted CAS; a CA with `renew_key: true` gets a new key and the
//! certificate it issued a new chain.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{CasProcess, create, get, update};
use custos_client::ClientIdentity;
use custos_protocol::ErrorBody;
use custos_protocol::audit::AuditAction;
use custos_protocol::client::{AuditPage, StoredSession};
use custos_protocol::enclave::{
    AttestRequest, ChallengeResponse, Delivery, EvidenceBytes, Jwk, RuntimeData,
};
use hyper::StatusCode;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Long enough that the steps after a renewal (more attestations, a restart) end before the
/// renewed certificate is due in turn (half of 20 s, less the 2 s it is backdated: 9 s).
const APP: &str = r#"name: ns/app
version: "0.3"
security: { attestation: { mode: none } }
secrets:
  - { name: CA, kind: x509-ca, common_name: App CA }
  - { name: KEY, kind: private-key }
  - name: TLS
    kind: x509
    private_key: KEY
    issuer: CA
    dns: [app.example]
    valid_for: 20 seconds
    endpoint: server
services:
  - name: app
    environment: { CERT: $$SCONE::TLS$$, CHAIN: $$SCONE::TLS:chain$$ }
"#;

/// The CA is due; the certificate it issued (no `valid_for`) is re-issued with it.
const ROTATING: &str = r#"name: ns/rotating
version: "0.3"
security: { attestation: { mode: none } }
secrets:
  - { name: CA, kind: x509-ca, common_name: Rotating CA, valid_for: 20 seconds, renew_key: true }
  - { name: KEY, kind: private-key }
  - { name: TLS, kind: x509, private_key: KEY, issuer: CA, dns: [rotating.example] }
services:
  - name: app
    environment: { CERT: $$SCONE::TLS$$, CHAIN: $$SCONE::TLS:chain$$ }
"#;

/// A runtime of `mode: none` sessions: a TLS client of the enclave API whose client
/// certificate holds the key its runtime data name.
struct Runtime {
    http: reqwest::Client,
    base: String,
    jwk: Jwk,
}

impl Runtime {
    fn new(cas: &CasProcess) -> Self {
        let (http, base, jwk) = common::enclave_client(cas, "127.0.0.1");
        Self { http, base, jwk }
    }

    async fn post<T: serde::Serialize>(&self, path: &str, body: &T) -> (StatusCode, Vec<u8>) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        (status, response.bytes().await.unwrap().to_vec())
    }

    /// Challenge, attest: the answer's status and body.
    async fn attest(&self, config_id: &str) -> (StatusCode, Vec<u8>) {
        let (status, body) = self
            .post(
                "/v1/enclave/challenge",
                &serde_json::json!({ "config_id": config_id }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let nonce = serde_json::from_slice::<ChallengeResponse>(&body)
            .unwrap()
            .nonce;
        let runtime_data = serde_json::to_vec(&RuntimeData {
            nonce,
            jwk: self.jwk.clone(),
        })
        .unwrap();
        let request = AttestRequest {
            config_id: config_id.to_owned(),
            evidence: EvidenceBytes {
                kind: "sim-quote".into(),
                quote: Vec::new(),
            },
            runtime_data,
        };
        self.post("/v1/enclave/attest", &request).await
    }

    /// Challenge, attest: the delivered certificate and chain of `config_id`.
    async fn certificate(&self, config_id: &str) -> Delivered {
        let (status, body) = self.attest(config_id).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let delivery: Delivery = serde_json::from_slice(&body).unwrap();
        let ders = |pem: &str| -> Vec<Vec<u8>> {
            CertificateDer::pem_slice_iter(pem.as_bytes())
                .map(|c| c.unwrap().to_vec())
                .collect()
        };
        let [leaf] = &ders(&delivery.env["CERT"])[..] else {
            panic!("one certificate in CERT")
        };
        Delivered {
            leaf: leaf.clone(),
            chain: ders(&delivery.env["CHAIN"]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Delivered {
    leaf: Vec<u8>,
    chain: Vec<Vec<u8>>,
}

fn parsed(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).unwrap().1
}

fn spki(der: &[u8]) -> Vec<u8> {
    parsed(der).public_key().raw.to_vec()
}

fn not_after(der: &[u8]) -> i64 {
    parsed(der).validity().not_after.timestamp()
}

/// When half of the certificate's validity has passed, in seconds since the Unix epoch.
fn half(der: &[u8]) -> f64 {
    let cert = parsed(der);
    let (from, until) = (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    );
    (from + until) as f64 / 2.0
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The leaf is signed by the first certificate of its chain.
fn verifies(delivered: &Delivered) {
    parsed(&delivered.leaf)
        .verify_signature(Some(parsed(&delivered.chain[0]).public_key()))
        .expect("the certificate is signed by its chain's first issuer");
}

/// The secrets named by `secret-renew` events of `session`.
async fn renewals(cas: &CasProcess, owner: &ClientIdentity, session: &str) -> Vec<String> {
    let r = get(
        &cas.client(Some(owner)),
        &format!("/v1/audit?session={session}&limit=1000"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    common::answer::<AuditPage>(&r)
        .events
        .into_iter()
        .filter(|e| e.event.action == AuditAction::SecretRenew)
        .map(|e| {
            assert!(e.event.outcome.is_allowed());
            e.event.secret.expect("the event names the secret")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_past_half_its_validity_is_renewed_once_and_stays_renewed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cas = CasProcess::start(&data, &[]);
    let owner = ClientIdentity::generate("owner").unwrap();
    let client = cas.client(Some(&owner));
    for text in ["name: ns\nversion: \"0.3\"\n", APP, ROTATING] {
        let r = create(&client, text).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    }
    let stored = |client: custos_client::CasClient| async move {
        common::answer::<StoredSession>(&get(&client, "/v1/sessions/ns/app").await)
    };
    let before = stored(client.clone()).await;
    let runtime = Runtime::new(&cas);
    let a = runtime.certificate("ns/app/app").await;
    let rotating_a = runtime.certificate("ns/rotating/app").await;
    verifies(&a);
    verifies(&rotating_a);
    assert_eq!(
        runtime.certificate("ns/app/app").await,
        a,
        "not due yet: delivered as it is"
    );

    // Past half of both: the app's certificate and the rotating CA are due.
    let due_at = half(&a.leaf).max(half(&rotating_a.chain[0])) + 1.0;
    tokio::time::sleep(Duration::from_secs_f64((due_at - unix_now()).max(0.0))).await;
    let started = std::time::Instant::now();

    // Four attestations at once: one renewal, which all of them deliver.
    let attests: Vec<_> = (0..4)
        .map(|_| {
            let runtime = Runtime::new(&cas);
            tokio::spawn(async move { runtime.certificate("ns/app/app").await })
        })
        .collect();
    let mut delivered = BTreeSet::new();
    for attest in attests {
        let d = attest.await.unwrap();
        delivered.insert((d.leaf, d.chain));
    }
    assert_eq!(
        delivered.len(),
        1,
        "every attestation got the same certificate"
    );
    let (leaf, chain) = delivered.into_iter().next().unwrap();
    let b = Delivered { leaf, chain };
    assert_ne!(b.leaf, a.leaf, "renewed");
    assert_eq!(spki(&b.leaf), spki(&a.leaf), "for the same key");
    assert_eq!(b.chain, a.chain, "by the same issuer");
    verifies(&b);
    assert_eq!(parsed(&b.leaf).subject(), parsed(&a.leaf).subject());
    assert_ne!(parsed(&b.leaf).raw_serial(), parsed(&a.leaf).raw_serial());
    assert!(not_after(&b.leaf) > not_after(&a.leaf));
    assert_eq!(runtime.certificate("ns/app/app").await, b, "still B");
    assert_eq!(renewals(&cas, &owner, "ns/app").await, ["TLS"]);
    let after = stored(client.clone()).await;
    assert_eq!(
        (after.hash, after.revision),
        (before.hash, before.revision),
        "the policy did not change"
    );

    // `renew_key: true` on the CA: a new CA key; the certificate it issued keeps its key.
    let rotating_b = runtime.certificate("ns/rotating/app").await;
    assert_ne!(spki(&rotating_b.chain[0]), spki(&rotating_a.chain[0]));
    assert_eq!(spki(&rotating_b.leaf), spki(&rotating_a.leaf));
    verifies(&rotating_b);
    assert!(not_after(&rotating_b.chain[0]) > not_after(&rotating_a.chain[0]));
    assert_eq!(
        renewals(&cas, &owner, "ns/rotating").await,
        ["CA", "TLS"],
        "the CA renewed, the certificate it issued re-issued"
    );
    let log = cas.log();
    assert!(
        log.contains("generated certificates renewed") && log.contains("ns/rotating"),
        "{log}"
    );

    // A restarted CAS on the same store delivers what was renewed.
    cas.process.stop(Duration::from_secs(5));
    let cas = CasProcess::start(&data, &[]);
    let runtime = Runtime::new(&cas);
    assert_eq!(
        runtime.certificate("ns/app/app").await,
        b,
        "B after a restart"
    );
    assert_eq!(runtime.certificate("ns/rotating/app").await, rotating_b);
    let elapsed = started.elapsed();
    eprintln!("renewal to the restarted CAS's delivery: {elapsed:?}");
    // Otherwise B could have been due again, and "still B" proves less than it says.
    assert!(
        unix_now() < half(&b.leaf),
        "the steps after the renewal took {elapsed:?}: longer than half of B's validity"
    );
}

const EXPORTING_CA: &str = "name: ns/ca
version: \"0.3\"
secrets:
  - { name: CA, kind: x509-ca, export: [ns/app] }
";

/// Its certificate's issuer is imported: renewing it needs the import to still be allowed.
const IMPORTING: &str = r#"name: ns/app
version: "0.3"
security: { attestation: { mode: none } }
secrets:
  - { name: CA, import: { session: ns/ca } }
  - { name: KEY, kind: private-key }
  - { name: TLS, kind: x509, private_key: KEY, issuer: CA, valid_for: 6 seconds }
services:
  - name: app
    environment: { CERT: $$SCONE::TLS$$, CHAIN: $$SCONE::TLS:chain$$ }
"#;

async fn sleep_until(unix: f64) {
    tokio::time::sleep(Duration::from_secs_f64((unix - unix_now()).max(0.0))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_renewal_delivers_a_valid_certificate_and_refuses_an_expired_one_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let cas = CasProcess::start(&dir.path().join("data"), &[]);
    let owner = ClientIdentity::generate("owner").unwrap();
    let client = cas.client(Some(&owner));
    for text in ["name: ns\nversion: \"0.3\"\n", EXPORTING_CA, IMPORTING] {
        let r = create(&client, text).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    }
    let runtime = Runtime::new(&cas);
    let a = runtime.certificate("ns/app/app").await;
    // The exporter stops exporting its CA: the certificate it issued cannot be renewed.
    let hash = common::answer::<StoredSession>(&get(&client, "/v1/sessions/ns/ca").await).hash;
    let text = format!(
        "name: ns/ca\nversion: \"0.3\"\npredecessor: {hash}\nsecrets:\n  - {{ name: CA, kind: x509-ca }}\n"
    );
    let r = update(&client, "ns/ca", &text).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());

    sleep_until(half(&a.leaf) + 0.5).await;
    assert!(
        unix_now() < not_after(&a.leaf) as f64,
        "the test ran too slowly"
    );
    assert_eq!(
        runtime.certificate("ns/app/app").await,
        a,
        "due, not renewed, still valid: delivered"
    );

    sleep_until(not_after(&a.leaf) as f64 + 1.5).await;
    let (status, body) = runtime.attest("ns/app/app").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let error = serde_json::from_slice::<ErrorBody>(&body).unwrap().error;
    assert_eq!(error.code, "secret_error");
    eprintln!("refused: {}", error.message);
    assert!(
        error
            .message
            .starts_with("secret TLS: the generated certificate expired: notAfter ")
            && error.message.contains(
                "; renewing it failed: secret CA: cannot import CA from session ns/ca: session ns/ca does not export CA to session ns/app"
            ),
        "{}",
        error.message
    );
    assert!(renewals(&cas, &owner, "ns/app").await.is_empty());
    assert!(
        cas.log()
            .contains("generated certificates due for renewal were not renewed"),
        "{}",
        cas.log()
    );
}
