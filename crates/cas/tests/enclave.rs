//! The enclave API under hostile clients, against a real `custos-cas` process over TLS, each
//! client bound to its own loopback source address (127.0.0.1 the legitimate runtime,
//! 127.0.0.2 and up the attackers): challenge floods, garbage and rate-limited attest
//! requests, config id enumeration and log injection; and, with simulated quotes signed by a
//! platform key the CAS trusts, SCONE's signer versions.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{CasProcess, create, get, wait_until};
use custos_attestation::ReportData;
use custos_attestation::sim::{PlatformKey, SimReport};
use custos_client::ClientIdentity;
use custos_ids::{MrEnclave, MrSigner};
use custos_protocol::audit::AuditAction;
use custos_protocol::client::AuditPage;
use custos_protocol::enclave::{
    AttestRequest, ChallengeResponse, Delivery, EvidenceBytes, Jwk, RuntimeData,
};
use custos_protocol::{ErrorBody, ErrorDetail};
use hyper::StatusCode;

const SESSION: &str = "name: ns/app
version: \"0.3\"
security: { attestation: { mode: none } }
secrets:
  - { name: A, kind: ascii, size: 8 }
services:
  - name: app
    environment: { A: $$SCONE::A$$ }
  - name: other
    environment: { A: $$SCONE::A$$ }
";

struct Setup {
    cas: CasProcess,
    owner: ClientIdentity,
    _dir: tempfile::TempDir,
}

/// A CAS with `config` (TOML) and the session `ns/app` (`mode: none`: the channel checks
/// are all there is, so a test runtime needs no evidence).
async fn setup(config: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cas.toml");
    std::fs::write(&path, config).unwrap();
    let cas = CasProcess::start(
        &dir.path().join("data"),
        &["--config", path.to_str().unwrap()],
    );
    let owner = ClientIdentity::generate("owner").unwrap();
    let client = cas.client(Some(&owner));
    let r = create(&client, "name: ns\nversion: \"0.3\"\n").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    let r = create(&client, SESSION).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    Setup {
        cas,
        owner,
        _dir: dir,
    }
}

impl Setup {
    fn runtime(&self, source: &str) -> Runtime {
        Runtime::new(&self.cas, source)
    }

    /// The session's enclave-attest audit events.
    async fn audited(&self) -> usize {
        let r = get(
            &self.cas.client(Some(&self.owner)),
            "/v1/audit?session=ns/app&limit=1000",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
        common::answer::<AuditPage>(&r)
            .events
            .iter()
            .filter(|e| e.event.action == AuditAction::EnclaveAttest)
            .count()
    }

    /// Waits (up to 10 s) until `n` events are audited: they are committed shortly after
    /// the answer.
    async fn wait_for_audited(&self, n: usize) {
        for _ in 0..500 {
            if self.audited().await >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("fewer than {n} audit events after 10 s");
    }

    async fn metrics(&self) -> String {
        let r = get(&self.cas.client(Some(&self.owner)), "/metrics").await;
        String::from_utf8(r.body.to_vec()).unwrap()
    }

    fn store_size(&self) -> u64 {
        std::fs::metadata(self.cas.data_dir.join("cas.redb"))
            .unwrap()
            .len()
    }
}

/// A runtime: a TLS client of the enclave API from one source address, with its own P-256
/// key as client certificate (the key its runtime data name).
struct Runtime {
    http: reqwest::Client,
    base: String,
    jwk: Jwk,
}

struct Answer {
    status: StatusCode,
    json: serde_json::Value,
    retry_after: Option<String>,
}

impl Answer {
    /// The error answered (empty for an answer that is not one).
    fn error(&self) -> ErrorDetail {
        serde_json::from_value::<ErrorBody>(self.json.clone()).map_or_else(
            |_| ErrorDetail {
                code: String::new(),
                message: String::new(),
                reasons: Vec::new(),
            },
            |body| body.error,
        )
    }
    fn code(&self) -> String {
        self.error().code
    }
    fn message(&self) -> String {
        self.error().message
    }
    fn reasons(&self) -> Vec<String> {
        self.error().reasons
    }
    /// The answer as `T`.
    fn decode<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.json.clone())
            .unwrap_or_else(|e| panic!("unexpected answer ({e}): {}", self.json))
    }
}

impl Runtime {
    fn new(cas: &CasProcess, source: &str) -> Self {
        let (http, base, jwk) = common::enclave_client(cas, source);
        Self { http, base, jwk }
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Answer {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.bytes().await.unwrap();
        Answer {
            status,
            json: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            retry_after,
        }
    }

    async fn challenge(&self, config_id: &str) -> Answer {
        let body = serde_json::to_vec(&serde_json::json!({ "config_id": config_id })).unwrap();
        self.post("/v1/enclave/challenge", body).await
    }

    async fn nonce(&self, config_id: &str) -> String {
        let a = self.challenge(config_id).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.json);
        a.decode::<ChallengeResponse>().nonce
    }

    fn attest_body(&self, config_id: &str, nonce: &str) -> Vec<u8> {
        self.attest_body_quoted(config_id, nonce, |_| Vec::new())
    }

    /// An attest request whose sim-quote `quote` makes from the runtime data's binding.
    fn attest_body_quoted(
        &self,
        config_id: &str,
        nonce: &str,
        quote: impl FnOnce(ReportData) -> Vec<u8>,
    ) -> Vec<u8> {
        let runtime_data = serde_json::to_vec(&RuntimeData {
            nonce: nonce.to_owned(),
            jwk: self.jwk.clone(),
        })
        .unwrap();
        serde_json::to_vec(&AttestRequest {
            config_id: config_id.to_owned(),
            evidence: EvidenceBytes {
                kind: "sim-quote".into(),
                quote: quote(ReportData::binding(&runtime_data)),
            },
            runtime_data,
        })
        .unwrap()
    }

    /// Challenge, then attest with a sim-quote `platform` signs for an enclave of `signer`,
    /// product 7, security version `isvsvn`.
    async fn start_signed(
        &self,
        config_id: &str,
        platform: &PlatformKey,
        signer: MrSigner,
        isvsvn: u16,
    ) -> Answer {
        let nonce = self.nonce(config_id).await;
        let body = self.attest_body_quoted(config_id, &nonce, |report_data| {
            let report = SimReport {
                mrenclave: MrEnclave([1; 32]),
                mrsigner: signer,
                isvprodid: 7,
                isvsvn,
                report_data,
            };
            platform.create_quote(&report).unwrap()
        });
        self.post("/v1/enclave/attest", body).await
    }

    async fn attest(&self, config_id: &str, nonce: &str) -> Answer {
        self.post("/v1/enclave/attest", self.attest_body(config_id, nonce))
            .await
    }

    /// Challenge, then attest: the delivery's `A` or the failed answer.
    async fn start(&self, config_id: &str) -> Answer {
        let nonce = self.nonce(config_id).await;
        self.attest(config_id, &nonce).await
    }
}

fn delivered(a: &Answer) {
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    assert_eq!(a.decode::<Delivery>().env["A"].len(), 8, "{}", a.json);
}

/// Sends `count` requests from `runtime`, `parallel` at a time; returns the statuses.
async fn flood<F, Fut>(runtime: Arc<Runtime>, count: usize, parallel: usize, f: F) -> Vec<u16>
where
    F: Fn(Arc<Runtime>, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Answer> + Send,
{
    let mut tasks = Vec::new();
    for worker in 0..parallel {
        let (runtime, f) = (runtime.clone(), f.clone());
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in (worker..count).step_by(parallel) {
                statuses.push(f(runtime.clone(), i).await.status.as_u16());
            }
            statuses
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_flood_from_one_address_does_not_stop_another() {
    // Generous per-address limits, so the flood reaches the nonce code; the old nonce table
    // (capped by max_pending_nonces) filled up and refused everyone's challenges.
    let s = setup(
        "[enclave]\nmax_pending_nonces = 300\nrequests_per_second = 100000.0\nburst = 100000\n",
    )
    .await;
    let attacker = Arc::new(s.runtime("127.0.0.2"));
    let statuses = flood(attacker, 1_000, 8, |r, _| async move {
        r.challenge("ns/app/app").await
    })
    .await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    delivered(&s.runtime("127.0.0.1").start("ns/app/app").await);
    assert!(
        s.cas
            .log()
            .contains("enclave.max_pending_nonces is deprecated and ignored"),
        "{}",
        s.cas.log()
    );

    // With the default limits the flood is cut off at its address, others go on.
    let s = setup("").await;
    let attacker = Arc::new(s.runtime("127.0.0.3"));
    let statuses = flood(attacker, 1_000, 8, |r, _| async move {
        r.challenge("ns/app/app").await
    })
    .await;
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert!(limited > 0, "none of 1,000 challenges limited");
    delivered(&s.runtime("127.0.0.1").start("ns/app/app").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_moved_and_forged_nonces_are_refused() {
    let s = setup("").await;
    let runtime = s.runtime("127.0.0.1");
    let nonce = runtime.nonce("ns/app/app").await;
    delivered(&runtime.attest("ns/app/app", &nonce).await);
    let replay = runtime.attest("ns/app/app", &nonce).await;
    assert_eq!(replay.status, StatusCode::FORBIDDEN);
    assert_eq!(
        replay.reasons(),
        ["nonce: expected one not used before, actual: already used (a replayed request?)"]
    );

    let nonce = runtime.nonce("ns/app/app").await;
    let moved = runtime.attest("ns/app/other", &nonce).await;
    assert_eq!(moved.status, StatusCode::FORBIDDEN);
    assert_eq!(
        moved.reasons(),
        [
            "nonce: expected one this CAS issued for \"ns/app/other\", actual: not issued by this CAS for \"ns/app/other\" (issued for another config id or by a CAS with another master key, or altered)"
        ]
    );
    // A refused nonce is not spent: it still works for its own config id.
    delivered(&runtime.attest("ns/app/app", &nonce).await);

    // Another CAS (another master key) issued this one.
    let other = setup("").await;
    let foreign = other.runtime("127.0.0.1").nonce("ns/app/app").await;
    let refused = runtime.attest("ns/app/app", &foreign).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.reasons()[0].contains("not issued by this CAS"),
        "{:?}",
        refused.reasons()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attests_are_rate_limited_per_address_and_per_config_id() {
    let s = setup(
        "[enclave]\nattests_per_second = 0.1\nattest_burst = 3\nattests_per_second_per_config_id = 0.1\nattest_burst_per_config_id = 5\n",
    )
    .await;
    let runtime = s.runtime("127.0.0.2");
    for _ in 0..3 {
        delivered(&runtime.start("ns/app/app").await);
    }
    let limited = runtime.start("ns/app/app").await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.json
    );
    assert_eq!(limited.code(), "rate_limited");
    assert!(
        limited.message().contains("enclave.attests_per_second")
            && limited.message().contains("per client address"),
        "{}",
        limited.message()
    );
    let wait: u64 = limited.retry_after.unwrap().parse().unwrap();
    assert!((1..=11).contains(&wait), "{wait}");

    // Other addresses go on until the config id's own limit (5 in all) is reached.
    delivered(&s.runtime("127.0.0.3").start("ns/app/app").await);
    delivered(&s.runtime("127.0.0.4").start("ns/app/app").await);
    let fresh = s.runtime("127.0.0.5");
    let nonce = fresh.nonce("ns/app/app").await;
    let limited = fresh.attest("ns/app/app", &nonce).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.json
    );
    assert!(
        limited
            .message()
            .contains("enclave.attests_per_second_per_config_id"),
        "{}",
        limited.message()
    );
    assert!(limited.retry_after.is_some());
    // Another config id is not affected.
    delivered(&fresh.start("ns/app/other").await);
    // Rate-limited requests are not audited: 5 + 1 deliveries.
    s.wait_for_audited(6).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.audited().await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_attests_are_counted_not_audited() {
    let s = setup(
        "[enclave]\nattests_per_second = 100000.0\nattest_burst = 100000\nrequests_per_second = 100000.0\nburst = 100000\n",
    )
    .await;
    let legit = s.runtime("127.0.0.1");
    delivered(&legit.start("ns/app/app").await);
    s.wait_for_audited(1).await;
    let size_before = s.store_size();

    let attacker = Arc::new(s.runtime("127.0.0.2"));
    let spent = legit.nonce("ns/app/app").await;
    delivered(&legit.attest("ns/app/app", &spent).await);
    let statuses = flood(attacker, 2_000, 8, move |r, i| {
        let spent = spent.clone();
        async move {
            match i % 5 {
                // Not JSON.
                0 => r.post("/v1/enclave/attest", b"{garbage".to_vec()).await,
                // A random nonce for a known config id.
                1 => {
                    let nonce = URL_SAFE_NO_PAD.encode([i as u8; 32]);
                    r.attest("ns/app/app", &nonce).await
                }
                // A replayed nonce.
                2 => r.attest("ns/app/app", &spent).await,
                // Not a nonce at all.
                3 => r.attest("ns/app/app", "short").await,
                // A config id that does not exist.
                _ => r.attest("ns/app/missing", &spent).await,
            }
        }
    })
    .await;
    assert!(
        statuses.iter().all(|&s| s == 400 || s == 403),
        "{statuses:?}"
    );
    // Give the store's batch a moment: nothing more may arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.audited().await, 2, "one event per redeemed nonce only");
    let grown = s.store_size().saturating_sub(size_before);
    assert!(grown <= 64 * 1024, "the store grew by {grown} bytes");
    let metrics = s.metrics().await;
    let count = |reason: &str| -> u64 {
        let prefix =
            format!("custos_cas_enclave_rejected_total{{request=\"attest\",reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |n| n.parse().unwrap())
    };
    assert_eq!(count("bad_request"), 400, "{metrics}");
    assert_eq!(count("nonce_not_issued"), 800, "{metrics}");
    assert_eq!(count("nonce_replayed"), 400, "{metrics}");
    assert_eq!(count("nonce_malformed"), 400, "{metrics}");
    // The warn lines are rate-limited: far fewer than 2,000.
    let lines = s.cas.log().matches("enclave request refused").count();
    assert!((1..100).contains(&lines), "{lines} warn lines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_challenge_does_not_tell_known_from_unknown_config_ids() {
    let s = setup("").await;
    let runtime = s.runtime("127.0.0.1");
    let known = runtime.challenge("ns/app/app").await;
    let unknown = runtime.challenge("ns/app/missing").await;
    let no_session = runtime.challenge("nowhere/app").await;
    for a in [&known, &unknown, &no_session] {
        assert_eq!(a.status, StatusCode::OK, "{}", a.json);
        let keys: Vec<&String> = a.json.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["nonce"]);
        assert_eq!(a.json["nonce"].as_str().unwrap().len(), 43);
    }
    // With a valid nonce, the attest request says clearly what is wrong.
    let nonce = unknown.decode::<ChallengeResponse>().nonce;
    let denied = runtime.attest("ns/app/missing", &nonce).await;
    assert_eq!(denied.status, StatusCode::NOT_FOUND, "{}", denied.json);
    assert_eq!(denied.code(), "unknown_config_id");
    // Malformed config ids are refused for their form alone.
    for bad in [
        "nothing",
        "ns/app/",
        "ns\u{1}/app",
        &format!("ns/{}", "a".repeat(300)),
    ] {
        let a = runtime.challenge(bad).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", a.json);
        assert_eq!(a.code(), "bad_config_id", "{}", a.json);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_strings_cannot_forge_log_lines() {
    let s = setup("").await;
    let runtime = s.runtime("127.0.0.1");
    let forged = "ns/app/x\nFORGED INFO attested: configuration delivered";
    let nonce = runtime.nonce("ns/app/app").await;
    runtime.attest(forged, &nonce).await;
    runtime.challenge(forged).await;
    let body = r#"{"config_id": "ns/app/app", "evidence": {"type": "x", "quote": ""}, "runtime_data": "", "x\nFORGED": 1}"#;
    runtime
        .post("/v1/enclave/attest", body.as_bytes().to_vec())
        .await;
    wait_until("the refusals are logged", || s.cas.log().contains("FORGED"));
    std::thread::sleep(Duration::from_millis(300));
    let log = s.cas.log();
    // All three are logged (each the first of its reason), on one line each, escaped.
    let refused = log
        .lines()
        .filter(|l| l.contains("enclave request refused"));
    assert_eq!(
        refused.filter(|l| l.contains("\\nFORGED")).count(),
        3,
        "{log}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "a forged line: {log}"
    );
}

/// SCONE's `isvsvn` is one exact version and `isvsvn_min`/`isvsvn_max` an inclusive range
/// (issue #13): through the real CAS, a signer pinning 4 admits 4 and refuses 3 and 5, naming
/// the check; a range 4–5 admits 5 and refuses 6.
#[tokio::test(flavor = "multi_thread")]
async fn a_signer_admits_its_exact_isvsvn_or_its_range_and_nothing_else() {
    let platform = PlatformKey::generate().unwrap();
    let key_id = platform.public_key().id();
    let s = setup(&format!(
        "[enclave]\ntrusted_platform_keys = [\"{key_id}\"]\n"
    ))
    .await;
    let signer = MrSigner([0xab; 32]);
    let hex = signer.to_hex();
    let session = format!(
        "name: ns/signed
version: \"0.3\"
security: {{ attestation: {{ tolerate: [debug-mode] }} }}
secrets:
  - {{ name: A, kind: ascii, size: 8 }}
services:
  - name: exact
    attestation: {{ signer: {{ mrsigner: \"{hex}\", isvprodid: 7, isvsvn: 4 }} }}
    environment: {{ A: $$SCONE::A$$ }}
  - name: range
    attestation: {{ signer: {{ mrsigner: \"{hex}\", isvprodid: 7, isvsvn_min: 4, isvsvn_max: 5 }} }}
    environment: {{ A: $$SCONE::A$$ }}
"
    );
    let r = create(&s.cas.client(Some(&s.owner)), &session).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    let runtime = s.runtime("127.0.0.1");
    for (service, isvsvn, admitted) in [
        ("exact", 4, true),
        ("exact", 5, false),
        ("exact", 3, false),
        ("range", 4, true),
        ("range", 5, true),
        ("range", 6, false),
    ] {
        let a = runtime
            .start_signed(&format!("ns/signed/{service}"), &platform, signer, isvsvn)
            .await;
        if admitted {
            delivered(&a);
        } else {
            assert_eq!(
                a.status,
                StatusCode::FORBIDDEN,
                "{service} {isvsvn}: {}",
                a.json
            );
            let reasons = a.reasons();
            assert!(
                reasons
                    .iter()
                    .any(|r| r.contains("isvsvn") && r.contains(&format!("actual {isvsvn}"))),
                "{service} {isvsvn}: {reasons:?}"
            );
        }
    }
}
