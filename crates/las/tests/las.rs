//! The real `custos-las` binary: quotes it issues verify against its platform key, the key
//! survives restarts, and bad requests get clear errors.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use custos_attestation::sim::verify_sim_quote;
use custos_attestation::{EvidenceKind, PlatformPublicKey, ReportData, TrustedPlatforms};
use custos_harness::Process;
use custos_harness::ready::LasReady;
use custos_ids::MrEnclave;
use custos_protocol::ErrorBody;
use custos_protocol::las::{Health, Platform, QuoteResponse};
use serde_json::{Value, json};

struct Las {
    /// Killed when dropped.
    process: Process,
    addr: SocketAddr,
    base: String,
    _logs: tempfile::TempDir,
}

impl Las {
    fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Starts the binary and waits for its ready file (the readiness contract, not a log line).
    fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        let logs = tempfile::tempdir().unwrap();
        let ready_file = logs.path().join("las.ready");
        let mut command = Command::new(env!("CARGO_BIN_EXE_custos-las"));
        command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .arg("--ready-file")
            .arg(&ready_file)
            .env_remove("RUST_LOG");
        let mut process = Process::spawn("las", &mut command, logs.path()).unwrap();
        let ready: LasReady = process
            .wait_ready(&ready_file, Duration::from_secs(30))
            .unwrap();
        Self {
            process,
            addr: ready.listen,
            base: format!("http://{}", ready.listen),
            _logs: logs,
        }
    }

    async fn platform_key(&self) -> PlatformPublicKey {
        let platform: Platform = reqwest::get(format!("{}/v1/platform", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(platform.mode, "simulation");
        let key = PlatformPublicKey::from_spki_pem(platform.public_key_pem.as_bytes()).unwrap();
        assert_eq!(platform.key_id, key.id().to_string());
        key
    }

    async fn post_quote(&self, body: &Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/v1/quote", self.base))
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn issues_sim_quotes_that_verify_against_its_platform_key() {
    let dir = tempfile::tempdir().unwrap();
    let las = Las::start(dir.path());
    let start_up = las.process.logs();
    assert!(
        start_up.contains("SIMULATION"),
        "simulation must be announced at start-up: {start_up}"
    );
    let health: Health = reqwest::get(format!("{}/healthz", las.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health.mode, "simulation");

    let measurement = MrEnclave([0x29; 32]);
    let report_data = ReportData::binding(b"{\"nonce\":\"n\"}");
    let response = las
        .post_quote(&json!({"report_data": report_data, "measurement": measurement}))
        .await;
    assert_eq!(response.status(), 200);
    let body: QuoteResponse = response.json().await.unwrap();
    assert_eq!(body.kind, "sim-quote");
    let quote = body.quote;

    let key = las.platform_key().await;
    let trusted = TrustedPlatforms::from_ids([key.id()]);
    let claims = verify_sim_quote(&quote, &trusted).unwrap();
    assert_eq!(claims.mrenclave(), measurement);
    assert_eq!(claims.report_data(), report_data);
    assert_eq!(claims.evidence(), EvidenceKind::SimQuote);
    assert!(claims.debug(), "simulated enclaves are always debuggable");

    // Another platform's key does not vouch for it.
    assert!(verify_sim_quote(&quote, &TrustedPlatforms::none()).is_err());
}

#[tokio::test]
async fn the_platform_key_survives_a_restart_and_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let first = Las::start(dir.path()).platform_key().await;
    let second = Las::start(dir.path()).platform_key().await;
    assert_eq!(first.id(), second.id());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("platform-key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // A LAS with another data directory is another platform.
    let other = tempfile::tempdir().unwrap();
    assert_ne!(
        Las::start(other.path()).platform_key().await.id(),
        first.id()
    );
}

#[tokio::test]
async fn bad_requests_are_rejected_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let las = Las::start(dir.path());
    let good_data = "00".repeat(64);
    let good_measurement = "11".repeat(32);
    let cases = [
        (
            json!({"report_data": "00", "measurement": good_measurement}),
            400,
            "report_data",
        ),
        (
            json!({"report_data": good_data, "measurement": "zz".repeat(32)}),
            400,
            "measurement",
        ),
        (json!({"report_data": good_data}), 422, "measurement"),
        (
            json!({"report_data": good_data, "measurement": good_measurement, "extra": 1}),
            422,
            "extra",
        ),
    ];
    for (case, status, field) in cases {
        let response = las.post_quote(&case).await;
        assert_eq!(response.status(), status, "{case}");
        let ErrorBody { error } = response.json().await.unwrap();
        assert_eq!(error.code, "bad_request", "{case}");
        assert!(error.message.contains(field), "{case}: {}", error.message);
    }
    let response = reqwest::Client::new()
        .post(format!("{}/v1/quote", las.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = reqwest::Client::new()
        .post(format!("{}/v1/quote", las.base))
        .header("content-type", "application/json")
        .body(vec![b' '; 8192])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

/// Connects from 127.0.0.2 and sends nothing; how long until the LAS closes the connection
/// (`None`: still open after `wait`).
async fn idle_from_attacker(las: SocketAddr, wait: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
    let mut tcp = socket.connect(las).await.unwrap();
    let opened = Instant::now();
    let mut buffer = [0u8; 64];
    match tokio::time::timeout(wait, tcp.read(&mut buffer)).await {
        Ok(Ok(0) | Err(_)) => Some(opened.elapsed()),
        Ok(Ok(_)) => panic!("the LAS sent bytes to a silent connection"),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_capped_per_address_and_closed_at_the_first_request_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let las = Las::start_with(
        dir.path(),
        &[
            "--max-connections-per-address",
            "4",
            "--first-request-timeout",
            "1",
        ],
    );
    let attackers: Vec<_> = (0..40)
        .map(|_| tokio::spawn(idle_from_attacker(las.addr, Duration::from_secs(5))))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A legitimate workload on 127.0.0.1 is served meanwhile.
    let health = tokio::time::timeout(
        Duration::from_secs(5),
        reqwest::get(format!("{}/healthz", las.base)),
    )
    .await
    .expect("the LAS did not answer within 5 s")
    .unwrap();
    assert_eq!(health.status(), 200);
    let mut closed_at_once = 0;
    let mut closed_at_deadline = 0;
    for attacker in attackers {
        match attacker.await.unwrap() {
            Some(after) if after < Duration::from_millis(500) => closed_at_once += 1,
            Some(after) if after < Duration::from_secs(3) => closed_at_deadline += 1,
            other => panic!("an idle connection was closed after {other:?}"),
        }
    }
    assert_eq!(closed_at_once, 36, "over the cap of 4 per address");
    assert_eq!(
        closed_at_deadline, 4,
        "silent past the first-request deadline"
    );
}

#[test]
fn listens_on_loopback_by_default() {
    let help = Command::new(env!("CARGO_BIN_EXE_custos-las"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("[default: 127.0.0.1:18766]"), "{help}");
    assert!(!help.contains("0.0.0.0:18766]"), "{help}");
}
