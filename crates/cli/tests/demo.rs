//! `custos demo` end to end: the real binaries (LAS, CAS, Azure emulator, custos-run,
//! rest-api-sample), the sample's templates, real TLS — and no secret in any log.
//!
//! It uses the sample's fixed port 4996 and writes /tls, like the sample; it is one test so
//! nothing else in this binary competes for them.

use std::path::PathBuf;
use std::process::Command;

const SAMPLE_SECRET: &str = "a13f688c788626380ae1209e31e664891fc19dcdd0cfa29c27ca7e6e16b83a95";

/// target/debug, where `cargo test` put this test and the workspace's binaries.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

#[test]
fn the_demo_runs_the_samples_flow_and_logs_no_secret() {
    // Other packages' binaries: built by `cargo test --workspace` already; make sure.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--bins", "--quiet"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success(), "building the binaries failed");

    let work = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_custos"))
        .arg("demo")
        .arg("--bin-dir")
        .arg(bin_dir())
        .arg("--work-dir")
        .arg(work.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");

    // The sample's expected output, as the last JSON line.
    let json_line = stdout
        .lines()
        .find(|line| line.starts_with("{\"access_timestamp\":"))
        .unwrap_or_else(|| panic!("no JSON answer in:\n{stdout}"));
    let json: serde_json::Value = serde_json::from_str(json_line).unwrap();
    assert_eq!(json["secret"], SAMPLE_SECRET);
    assert!(json["access_timestamp"].as_f64().unwrap() > 1.7e9);

    // Every step reported, the unattested start failed for the sample's reason.
    for step in 1..=12 {
        assert!(
            stdout.contains(&format!("{step:>2}. ")),
            "step {step} missing:\n{stdout}"
        );
    }
    assert!(stdout.contains("/tls/flask.crt: cannot read"), "{stdout}");
    assert!(
        stdout.contains("Stopped"),
        "processes are cleaned up:\n{stdout}"
    );

    // The demo printed the secret once, in the app's answer; no log has it, nor the client secret.
    assert_eq!(stdout.matches(SAMPLE_SECRET).count(), 1, "{stdout}");
    let client_secret = std::fs::read_to_string(work.path().join("logs/azure-emulator.out"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("export AZURE_CLIENT_SECRET="))
        .unwrap()
        .trim_matches('\'')
        .to_owned();
    assert!(!stdout.contains(&client_secret));
    for entry in std::fs::read_dir(work.path().join("logs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let log = std::fs::read_to_string(&path).unwrap();
            assert!(
                !log.contains(SAMPLE_SECRET),
                "{} holds the secret",
                path.display()
            );
            assert!(
                !log.contains(&client_secret),
                "{} holds the client secret",
                path.display()
            );
        }
    }
}
