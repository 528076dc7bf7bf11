//! The real `rest-api-sample` binary, called as the sample's
//! `curl https://rest-api.scone.sample:4996/secret --resolve rest-api.scone.sample:4996:127.0.0.1`:
//! the name resolves to loopback and the certificate is verified against that name.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use rcgen::KeyPair;

#[tokio::test]
async fn serves_the_secret_over_h2_and_http11_verified_by_name() {
    let pki = Pki::new();
    let sample = Sample::start(&pki.cert(), &pki.key(), Some(SECRET));

    let before = now();
    let response = sample
        .client(&pki.ca_pem)
        .get(sample.url("/secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.version(),
        reqwest::Version::HTTP_2,
        "ALPN chose h2"
    );
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["secret"], SECRET);
    let timestamp = body["access_timestamp"].as_f64().unwrap();
    assert!(
        timestamp >= before - 1.0 && timestamp <= now() + 1.0,
        "{timestamp}"
    );
    assert_eq!(body.as_object().unwrap().len(), 2);

    let http1 = sample
        .client_builder(&pki.ca_pem)
        .http1_only()
        .build()
        .unwrap();
    let response = http1.get(sample.url("/secret")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn without_akv_secret_the_route_says_secret_not_found() {
    let pki = Pki::new();
    let sample = Sample::start(&pki.cert(), &pki.key(), None);
    let response = sample
        .client(&pki.ca_pem)
        .get(sample.url("/secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"error": "secret not found"}));
}

#[tokio::test]
async fn other_paths_are_404_and_other_methods_405() {
    let pki = Pki::new();
    let sample = Sample::start(&pki.cert(), &pki.key(), Some(SECRET));
    let client = sample.client(&pki.ca_pem);
    for path in ["/", "/secret/", "/secrets", "/api/secret"] {
        let response = client.get(sample.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let text = response.text().await.unwrap();
        assert!(!text.contains(SECRET), "{path}: {text}");
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = client
            .request(method.clone(), sample.url("/secret"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(response.headers()["allow"], "GET, HEAD");
    }
    let head = client.head(sample.url("/secret")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_by_the_client() {
    let pki = Pki::new();
    let sample = Sample::start(&pki.cert(), &pki.key(), Some(SECRET));
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap()])
        .resolve("other.scone.sample", sample.addr)
        .no_proxy()
        .build()
        .unwrap();
    let url = format!("https://other.scone.sample:{}/secret", sample.addr.port());
    let error = client.get(url).send().await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
}

#[tokio::test]
async fn serves_rsa_pkcs1_and_ec_sec1_keys_and_chains() {
    let ca_pem = std::fs::read_to_string(fixture("ca.crt")).unwrap();
    for (cert, key) in [
        ("leaf-rsa.crt", "leaf-rsa.pkcs1.key"),
        ("leaf-ec.crt", "leaf-ec.sec1.key"),
        ("chain-ec.crt", "leaf-ec.sec1.key"),
    ] {
        let sample = Sample::start(&fixture(cert), &fixture(key), Some(SECRET));
        let response = sample
            .client(&ca_pem)
            .get(sample.url("/secret"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{cert}");
    }
}

/// Starts the binary expecting it to fail at once; returns its one line of output.
fn start_failure(cert: &Path, key: &Path) -> String {
    let started = Instant::now();
    let mut child = command(cert, key, Some(SECRET)).spawn().unwrap();
    let status = wait_with_limit(&mut child, Duration::from_secs(5));
    assert!(!status.success(), "must exit non-zero");
    assert_eq!(status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {stderr:?}");
    assert!(!stderr.contains(SECRET));
    lines[0].to_string()
}

#[test]
fn starting_without_the_injected_files_fails_naming_the_file() {
    // The sample's "application without attestation": nothing under /tls.
    let pki = Pki::new();
    let missing_cert = pki.path("missing/flask.crt");
    let line = start_failure(&missing_cert, &pki.key());
    assert!(
        line.contains(&format!("{}: cannot read:", missing_cert.display())),
        "{line}"
    );
    assert!(line.contains("No such file"), "{line}");

    let missing_key = pki.path("missing/flask.key");
    let line = start_failure(&pki.cert(), &missing_key);
    assert!(
        line.contains(&format!("{}: cannot read:", missing_key.display())),
        "{line}"
    );
}

#[test]
fn unreadable_malformed_and_mismatched_files_fail_naming_the_problem() {
    let pki = Pki::new();
    // Unreadable even for root: a directory where a file should be.
    std::fs::create_dir(pki.path("dir.crt")).unwrap();
    let line = start_failure(&pki.path("dir.crt"), &pki.key());
    assert!(line.contains("dir.crt: cannot read:"), "{line}");

    std::fs::write(pki.path("empty.crt"), "").unwrap();
    let line = start_failure(&pki.path("empty.crt"), &pki.key());
    assert!(line.contains("empty.crt: no certificate found"), "{line}");

    let key = std::fs::read_to_string(pki.key()).unwrap();
    std::fs::write(pki.path("truncated.key"), &key[..key.len() - 40]).unwrap();
    let line = start_failure(&pki.cert(), &pki.path("truncated.key"));
    assert!(line.contains("truncated.key: malformed PEM"), "{line}");

    std::fs::write(pki.path("cert-as.key"), std::fs::read(pki.cert()).unwrap()).unwrap();
    let line = start_failure(&pki.cert(), &pki.path("cert-as.key"));
    assert!(line.contains("cert-as.key: no private key found"), "{line}");

    let other_key = KeyPair::generate().unwrap();
    std::fs::write(pki.path("other.key"), other_key.serialize_pem()).unwrap();
    let line = start_failure(&pki.cert(), &pki.path("other.key"));
    assert!(
        line.contains("other.key: private key does not match the certificate in"),
        "{line}"
    );
}

// Multi-threaded so the client keeps answering the server's HTTP/2 GOAWAY/PING while the test
// waits for the process: a graceful HTTP/2 shutdown needs a live peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_shut_down_gracefully_and_no_log_shows_the_secret() {
    let pki = Pki::new();
    for signal in ["TERM", "INT"] {
        let mut sample = Sample::start(&pki.cert(), &pki.key(), Some(SECRET));
        let client = sample.client(&pki.ca_pem);
        // A pooled keep-alive connection stays open across the signal.
        let response = client.get(sample.url("/secret")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        sample.signal(signal);
        let status = sample.wait(Duration::from_secs(5));
        assert!(status.success(), "SIGTERM/SIGINT exit status: {status}");
        let log = sample.log_lines().join("\n");
        assert!(log.contains("shutting down"), "{log}");
        assert!(!log.contains(SECRET), "the secret reached the log");
        // It no longer accepts connections.
        assert!(std::net::TcpStream::connect(sample.addr).is_err());
    }
}

#[test]
fn the_start_up_line_names_the_address_and_not_the_secret() {
    let pki = Pki::new();
    let sample = Sample::start(&pki.cert(), &pki.key(), Some(SECRET));
    // The start-up line was consumed by start(); anything else logged so far must be clean too.
    std::thread::sleep(Duration::from_millis(100));
    assert!(sample.log_lines().iter().all(|l| !l.contains(SECRET)));
    let mut child = command(&pki.cert(), &pki.key(), Some(SECRET))
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("listening on https://127.0.0.1:"), "{line}");
    assert!(line.contains("AKV_SECRET set"), "{line}");
    assert!(!line.contains(SECRET));
}

/// Connects from 127.0.0.2 and sends nothing (not even a TLS hello); how long until the app
/// closes the connection (`None`: still open after `wait`).
async fn idle_from_attacker(app: SocketAddr, wait: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
    let mut tcp = socket.connect(app).await.unwrap();
    let opened = Instant::now();
    let mut buffer = [0u8; 64];
    match tokio::time::timeout(wait, tcp.read(&mut buffer)).await {
        Ok(Ok(0) | Err(_)) => Some(opened.elapsed()),
        Ok(Ok(_)) => panic!("the app sent bytes to a silent connection"),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_capped_per_address_and_closed_at_the_handshake_deadline() {
    let pki = Pki::new();
    let sample = Sample::start_with(
        &pki.cert(),
        &pki.key(),
        Some(SECRET),
        &[
            "--max-connections-per-address",
            "4",
            "--handshake-timeout",
            "1",
        ],
    );
    let attackers: Vec<_> = (0..40)
        .map(|_| tokio::spawn(idle_from_attacker(sample.addr, Duration::from_secs(5))))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The sample's curl on 127.0.0.1, with a new connection, is served meanwhile.
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        sample.client(&pki.ca_pem).get(sample.url("/secret")).send(),
    )
    .await
    .expect("the app did not answer within 5 s")
    .unwrap();
    assert_eq!(response.status(), 200);
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
        "no TLS hello within the handshake deadline"
    );
}
