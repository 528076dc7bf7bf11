//! `custos demo` end to end: the real binaries (LAS, CAS, Azure emulator, custos-run,
//! rest-api-sample), the sample's templates, real TLS — and no secret in any log; and
//! `custos demo --fresh`, which then rotates the secret and the certificate in the Key Vault under
//! the supervised app.
//!
//! The demo uses the sample's fixed port 4996 and writes /tls, like the sample: the tests take
//! turns ([`DEMO`]) so they never compete for them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

const SAMPLE_SECRET: &str = "a13f688c788626380ae1209e31e664891fc19dcdd0cfa29c27ca7e6e16b83a95";

/// One demo at a time: port 4996 and /tls are the machine's.
static DEMO: Mutex<()> = Mutex::new(());

/// target/debug, where `cargo test` put this test and the workspace's binaries.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// `custos demo ARGS` in a new work directory, after making sure the binaries are built.
fn run_demo(args: &[&str]) -> (Output, tempfile::TempDir) {
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
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (output, work)
}

/// What every demo shows: the sample's answer, its `steps` steps, the unattested start failing
/// for the sample's reason, the processes stopped, and the sample's secret printed once, in the
/// answer. Returns stdout.
fn check_samples_flow(output: &Output, steps: usize) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
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

    // Every step reported, and no more; the unattested start failed for the sample's reason.
    for step in 1..=steps {
        assert!(
            stdout.contains(&format!("{step:>2}. ")),
            "step {step} missing:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains(&format!("{:>2}. ", steps + 1)),
        "more than {steps} steps:\n{stdout}"
    );
    assert!(stdout.contains("/tls/flask.crt: cannot read"), "{stdout}");
    assert!(
        stdout.contains("Stopped"),
        "processes are cleaned up:\n{stdout}"
    );
    assert_eq!(stdout.matches(SAMPLE_SECRET).count(), 1, "{stdout}");
    stdout
}

/// The demo's logs (`*.log` under `work/logs`), by path.
fn logs(work: &Path) -> Vec<(PathBuf, String)> {
    std::fs::read_dir(work.join("logs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

/// No log, and not the demo's output, holds the sample's secret (but in its answer) or the app
/// registration's client secret.
fn check_no_secret_in_logs(stdout: &str, work: &Path) {
    let client_secret = std::fs::read_to_string(work.join("logs/azure-emulator.out"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("export AZURE_CLIENT_SECRET="))
        .unwrap()
        .trim_matches('\'')
        .to_owned();
    assert!(!stdout.contains(&client_secret));
    for (path, log) in logs(work) {
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

/// The first 16 hex digits of a value's SHA-256, as the demo shows values.
fn fingerprint(value: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    hex::encode(&digest.as_ref()[..8])
}

/// The words of `text` that are 64 hex digits (the form of the sample's secrets).
fn hex_words(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .filter(|w| w.len() == 64)
        .collect()
}

#[test]
fn the_demo_runs_the_samples_flow_and_logs_no_secret() {
    let _turn = DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let (output, work) = run_demo(&[]);
    let stdout = check_samples_flow(&output, 12);
    check_no_secret_in_logs(&stdout, work.path());
}

#[test]
fn the_demo_with_fresh_rotates_the_secret_and_the_certificate_under_the_running_app() {
    let _turn = DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let (output, work) = run_demo(&["--fresh"]);
    let stdout = check_samples_flow(&output, 16);
    check_no_secret_in_logs(&stdout, work.path());
    assert!(
        stdout.contains("--azure-cache-ttl 1 (--fresh"),
        "the CAS reuses Key Vault values for 1 s:\n{stdout}"
    );
    assert!(
        stdout.contains("    refresh: {interval: 1 second}"),
        "the session update shows what changed:\n{stdout}"
    );

    // Before: the vault's value, by hash; then the new one, from the same process, no failure.
    let before = format!(
        "before: the app serves sample-secret with SHA-256 {} (pid ",
        fingerprint(SAMPLE_SECRET)
    );
    let pid_before = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(&before))
        .unwrap_or_else(|| panic!("no {before:?} in:\n{stdout}"))
        .trim_end_matches(')')
        .to_owned();
    let new_hash = stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("set a new version of sample-secret in the Key Vault: SHA-256 ")
        })
        .unwrap_or_else(|| panic!("no rotation in:\n{stdout}"))
        .to_owned();
    assert_ne!(new_hash, fingerprint(SAMPLE_SECRET));
    let arrived = format!("the app served the new value (SHA-256 {new_hash}) ");
    let after_ms: u64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(&arrived))
        .and_then(|rest| rest.strip_suffix(" ms after the rotation"))
        .unwrap_or_else(|| panic!("no {arrived:?} in:\n{stdout}"))
        .parse()
        .unwrap();
    // Interval (1 s) + cache TTL (1 s) is the worst case; the rest is a debug build's slack.
    assert!(after_ms <= 5_000, "{after_ms} ms:\n{stdout}");
    let same = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("same process: pid "))
        .unwrap_or_else(|| panic!("no \"same process\" in:\n{stdout}"));
    let (pid_after, tally) = same.split_once("; ").unwrap();
    assert_eq!(pid_after, pid_before, "{stdout}");
    assert!(tally.ends_with(" requests, 0 failed"), "{stdout}");
    let requests: u32 = tally.split(' ').next().unwrap().parse().unwrap();
    assert!(requests > 10, "{stdout}");

    // Then a new certificate imported into the vault: presented from a later handshake on,
    // by the same process, with no failed request.
    let imported = stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("imported a new version of flask into the Key Vault: SHA-256 ")
        })
        .unwrap_or_else(|| panic!("no certificate import in:\n{stdout}"));
    let presented = format!("the app presented the new certificate (SHA-256 {imported}) ");
    assert!(
        stdout.lines().any(|l| l.trim().starts_with(&presented)),
        "no {presented:?} in:\n{stdout}"
    );
    let same = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("same process: pid "))
        .nth(1)
        .unwrap_or_else(|| panic!("no second \"same process\" in:\n{stdout}"));
    assert!(
        same.starts_with(&format!("{pid_before}; "))
            && same.ends_with(" requests, 0 failed (each a new TLS connection)"),
        "{stdout}"
    );

    // custos-run supervised the app and rewrote the secret's file; the new value, known here
    // only by its hash, is in no log and not in the output.
    let logs = logs(work.path());
    assert!(
        logs.iter()
            .any(|(_, log)| log.contains("supervised") && log.contains("file(s) rewritten")),
        "no custos-run log shows the supervised app's files rewritten"
    );
    for (path, text) in logs
        .iter()
        .map(|(path, text)| (path.display().to_string(), text.as_str()))
        .chain([("the demo's output".to_owned(), stdout.as_str())])
    {
        for word in hex_words(text) {
            assert_ne!(fingerprint(word), new_hash, "{path} holds the new value");
        }
    }
}
