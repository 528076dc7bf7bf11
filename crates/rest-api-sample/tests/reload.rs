//! Renewed files taken in by the running `rest-api-sample`, without a restart: the certificate
//! from the next handshake on, the secret file's new value at the next request, connections in
//! flight untouched, and a bad renewal leaving what is served in place.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// The sample serving the secret in `file`.
fn start_with_secret_file(pki: &Pki, file: &Path, extra: &[&str]) -> Sample {
    Sample::spawn(
        command(&pki.cert(), &pki.key(), None)
            .env("AKV_SECRET_FILE", file)
            .args(extra),
    )
}

/// The leaf certificate and the secret `client` sees (on its pooled connection, if it has one).
async fn fetch(sample: &Sample, client: &reqwest::Client) -> (Vec<u8>, String) {
    let response = client.get(sample.url("/secret")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let leaf = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("TLS info")
        .to_vec();
    let body: serde_json::Value = response.json().await.unwrap();
    (leaf, body["secret"].as_str().unwrap().to_owned())
}

fn client(sample: &Sample, pki: &Pki) -> reqwest::Client {
    sample
        .client_builder(&pki.ca_pem)
        .tls_info(true)
        .build()
        .unwrap()
}

/// Waits (at most 10 s) for a log line containing `needle`; returns every line seen.
fn wait_for_log(sample: &Sample, needle: &str, log: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.iter().any(|line| line.contains(needle)) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log: {log:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
        log.extend(sample.log_lines());
    }
}

const FIRST: &str = "first-secret-7f3a";
const SECOND: &str = "second-secret-91c2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_renews_the_certificate_and_the_secret_and_open_connections_carry_on() {
    let pki = Pki::new();
    let first_leaf = pki.first_leaf.clone();
    let secret_file = pki.path("akv-secret");
    std::fs::write(&secret_file, format!("{FIRST}\n")).unwrap();
    let sample = start_with_secret_file(&pki, &secret_file, &[]);
    let pid = sample.child.id();

    let open = client(&sample, &pki);
    assert_eq!(
        fetch(&sample, &open).await,
        (first_leaf.clone(), FIRST.into())
    );

    let second_leaf = pki.renew();
    pki.replace("akv-secret", SECOND.as_bytes());
    sample.signal("HUP");
    let mut log = Vec::new();
    wait_for_log(&sample, "secret file read again", &mut log);
    assert!(
        log.iter().any(|l| l.contains("certificate reloaded")),
        "{log:#?}"
    );

    // The connection opened before goes on with its certificate, and serves the new secret.
    assert_eq!(fetch(&sample, &open).await, (first_leaf, SECOND.into()));
    // A new connection gets the new certificate.
    let fresh = client(&sample, &pki);
    assert_eq!(
        fetch(&sample, &fresh).await,
        (second_leaf.clone(), SECOND.into())
    );

    // A renewal gone wrong — a key that is not the certificate's, an unreadable secret file —
    // keeps what is served, and says why.
    pki.replace(
        "flask.key",
        rcgen::KeyPair::generate()
            .unwrap()
            .serialize_pem()
            .as_bytes(),
    );
    pki.replace("akv-secret", &[0xff, 0xfe]);
    sample.signal("HUP");
    wait_for_log(&sample, "secret not reloaded", &mut log);
    assert!(
        log.iter().any(
            |l| l.contains("certificate not reloaded, the previous one stays")
                && l.contains("private key does not match the certificate")
        ),
        "{log:#?}"
    );
    let later = client(&sample, &pki);
    assert_eq!(fetch(&sample, &later).await, (second_leaf, SECOND.into()));

    assert_eq!(sample.child.id(), pid);
    let log = log.join("\n");
    assert!(
        !log.contains(FIRST) && !log.contains(SECOND),
        "a secret reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_watch_interval_changed_files_are_taken_in_without_a_signal() {
    let pki = Pki::new();
    let secret_file = pki.path("akv-secret");
    std::fs::write(&secret_file, FIRST).unwrap();
    let sample = start_with_secret_file(&pki, &secret_file, &["--watch-interval", "1"]);

    let second_leaf = pki.renew();
    pki.replace("akv-secret", SECOND.as_bytes());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = fetch(&sample, &client(&sample, &pki)).await;
        if seen == (second_leaf.clone(), SECOND.to_owned()) {
            break;
        }
        assert!(Instant::now() < deadline, "not taken in after 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = sample.log_lines().join("\n");
    assert!(log.contains("a served file changed: reloading"), "{log}");
}

#[test]
fn the_secret_is_given_one_way_only() {
    let pki = Pki::new();
    let output = command(&pki.cert(), &pki.key(), Some(SECRET))
        .env("AKV_SECRET_FILE", pki.path("akv-secret"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "rest-api-sample: AKV_SECRET and AKV_SECRET_FILE are both set: give the secret one way\n"
    );
    let missing = pki.path("missing");
    let output = command(&pki.cert(), &pki.key(), None)
        .env("AKV_SECRET_FILE", &missing)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!(
            "rest-api-sample: AKV_SECRET_FILE {}: ",
            missing.display()
        )),
        "{stderr}"
    );
}
