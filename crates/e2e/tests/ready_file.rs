//! The readiness contract (`--ready-file`, `custos_harness::ready`): each server writes its
//! ready document once it accepts, with what a client needs to reach it, and never writes it
//! when it cannot start — a ready file from an earlier run is removed first.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use custos_client::{CasClient, ClientIdentity, ServerTrust};
use custos_e2e::{bin, launcher};
use custos_harness::ready::{self, CasReady, EmulatorReady, LasReady};

/// A stale ready document, as an earlier run would have left it.
fn stale_ready_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("stale.ready");
    let stale = LasReady {
        listen: "127.0.0.1:1".parse().unwrap(),
        platform_key_id: "00".repeat(32),
    };
    ready::write(&path, &stale).unwrap();
    path
}

/// Runs `command` with `--ready-file` on a stale file; returns its exit code and its stderr.
fn run_to_exit(command: &mut Command, ready_file: &Path) -> (Option<i32>, String) {
    let output = command
        .arg("--ready-file")
        .arg(ready_file)
        .output()
        .expect("it runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_cas_announces_both_apis_and_the_key_clients_pin() {
    let dir = tempfile::tempdir().unwrap();
    let las = launcher(dir.path()).las(&dir.path().join("las")).unwrap();
    let cas = launcher(dir.path())
        .cas(
            &dir.path().join("cas"),
            &["--trust-platform-key".into(), las.key_id.clone()],
        )
        .unwrap();
    let path = dir.path().join("logs/cas.ready");
    let document: CasReady = ready::read(&path).unwrap().expect("the ready file");
    assert_eq!(document.client_api.to_string(), cas.addr);
    assert_eq!(document.enclave_api.to_string(), cas.enclave_addr);
    assert_ne!(document.client_api.port(), 0);
    assert_ne!(document.enclave_api.port(), 0);
    // The human line says the same.
    let line = cas.process.stderr.text();
    assert!(
        line.contains(&format!(
            "client API ready listen={} key_hash={}",
            document.client_api, document.key_hash
        )),
        "{line}"
    );
    // A client pinning that key hash reaches the client API; one pinning another is refused.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let owner = ClientIdentity::generate("owner").unwrap();
    let health = |pin: &str| {
        let client = CasClient::new(
            &document.client_api.to_string(),
            Some(&owner),
            ServerTrust::Pinned(pin.parse().unwrap()),
        )
        .unwrap();
        runtime.block_on(client.health())
    };
    assert_eq!(health(&document.key_hash).unwrap().status, "ok");
    assert!(health(&"00".repeat(32)).is_err());
    // The enclave API accepts connections.
    std::net::TcpStream::connect(document.enclave_api).expect("the enclave API accepts");
}

#[test]
fn a_cas_whose_port_is_taken_exits_and_leaves_no_ready_file() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let ready_file = stale_ready_file(dir.path());
    let (code, stderr) = run_to_exit(
        Command::new(bin("custos-cas"))
            .arg("--data-dir")
            .arg(dir.path().join("cas"))
            .args(["--listen", &taken.local_addr().unwrap().to_string()])
            .args(["--enclave-listen", "127.0.0.1:0"])
            .env_remove("CUSTOS_CAS_CONFIG"),
        &ready_file,
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!ready_file.exists(), "a ready file after: {stderr}");
    // Nothing half-written either.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("ready")), "{names:?}");
}

#[test]
fn the_las_announces_its_address_and_platform_key() {
    let dir = tempfile::tempdir().unwrap();
    let las = launcher(dir.path()).las(&dir.path().join("las")).unwrap();
    let document: LasReady = ready::read(&dir.path().join("logs/las.ready"))
        .unwrap()
        .expect("the ready file");
    assert_eq!(document.listen.to_string(), las.addr);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let platform: custos_protocol::las::Platform = runtime.block_on(async {
        reqwest::get(format!("http://{}/v1/platform", document.listen))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(platform.key_id, document.platform_key_id);
    assert!(
        las.process
            .stderr
            .text()
            .contains(&format!("platform key id {}", document.platform_key_id))
    );
}

#[test]
fn a_las_whose_port_is_taken_exits_and_leaves_no_ready_file() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let ready_file = stale_ready_file(dir.path());
    let (code, stderr) = run_to_exit(
        Command::new(bin("custos-las"))
            .args(["--listen", &taken.local_addr().unwrap().to_string()])
            .arg("--data-dir")
            .arg(dir.path().join("las")),
        &ready_file,
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen"), "{stderr}");
    assert!(!ready_file.exists());
}

#[test]
fn the_emulator_announces_what_it_exports_to_its_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let launcher = launcher(dir.path());
    let las = launcher.las(&dir.path().join("las")).unwrap();
    let emulator = launcher
        .emulator(&dir.path().join("ca.pem"), &las, &[])
        .unwrap();
    let path = dir.path().join("logs/azure-emulator.ready");
    let document: EmulatorReady = ready::read(&path).unwrap().expect("the ready file");
    // The same as its `export` lines.
    let exported: std::collections::BTreeMap<String, String> = emulator
        .process
        .stdout
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect();
    assert_eq!(document.env, exported);
    assert_eq!(
        document.env["AZURE_AUTHORITY_HOST"],
        document.authority_host
    );
    assert_eq!(document.env["AKV_VAULT"], document.key_vault);
    assert_eq!(document.env["MAA_PROVIDER"], document.maa);
    assert_eq!(document.ca_file, dir.path().join("ca.pem"));
    assert!(document.env.contains_key("AZURE_CLIENT_SECRET"));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions())
            & 0o777;
    assert_eq!(mode, 0o600);
    // Its endpoints accept, over its CA.
    let ca = std::fs::read(&document.ca_file).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        client
            .get(format!("{}/.well-known/openid-configuration", document.maa))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(status.is_success(), "{status}");
}

#[test]
fn an_emulator_whose_port_is_taken_exits_and_leaves_no_ready_file() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let ready_file = stale_ready_file(dir.path());
    let (code, stderr) = run_to_exit(
        Command::new(bin("custos-azure-emulator"))
            .args(["--demo", "--listen", "127.0.0.1", "--ca-file"])
            .arg(dir.path().join("ca.pem"))
            .args([
                "--maa-port",
                &taken.local_addr().unwrap().port().to_string(),
            ]),
        &ready_file,
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!ready_file.exists());
}
