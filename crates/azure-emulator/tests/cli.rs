//! The `custos-azure-emulator` binary: `--demo` prints what a client needs; bad input exits 2.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_custos-azure-emulator");

#[test]
fn demo_prints_export_lines_for_every_variable() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let mut child = Command::new(BIN)
        .args(["--demo", "--ca-file"])
        .arg(&ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut vars = std::collections::BTreeMap::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let (name, value) = line
            .strip_prefix("export ")
            .unwrap()
            .split_once('=')
            .unwrap();
        vars.insert(name.to_owned(), value.trim_matches('\'').to_owned());
        if name == "REQUESTS_CA_BUNDLE" {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let names: Vec<&str> = vars.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "AKV_CERT_SECRET_NAME",
            "AKV_SECRET_NAME",
            "AKV_VAULT",
            "AZURE_AUTHORITY_HOST",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
            "AZURE_MANAGEDHSM_URL",
            "AZURE_TENANT_ID",
            "MAA_PROVIDER",
            "REQUESTS_CA_BUNDLE",
            "SSL_CERT_FILE"
        ]
    );
    assert_eq!(vars["AKV_SECRET_NAME"], "sample-secret");
    assert_eq!(vars["AKV_CERT_SECRET_NAME"], "flask");
    assert!(
        vars["AKV_VAULT"].starts_with("https://127.0.0.1:") && vars["AKV_VAULT"].ends_with('/')
    );
    assert_eq!(vars["SSL_CERT_FILE"], ca.display().to_string());
    assert!(
        std::fs::read_to_string(&ca)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
}

#[test]
fn a_bad_configuration_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(
        &config,
        "keyvault:\n  secrets:\n    - name: no_underscores\n      value: x\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("keyvault.secrets[0].name"), "{stderr}");
}

#[test]
fn a_bad_platform_key_on_the_command_line_exits_2_naming_it() {
    let output = Command::new(BIN)
        .args(["--demo", "--trust-platform-key", "not-a-key"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("the command line") && stderr.contains("maa.trusted_platform_keys[0]"),
        "{stderr}"
    );
}

#[test]
fn bad_maa_signing_evidence_flags_exit_2_naming_them() {
    let output = Command::new(BIN)
        .args(["--demo", "--maa-signing-evidence", "quote"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("--maa-signing-evidence: expected sim or none"),
        "{stderr}"
    );
    let output = Command::new(BIN)
        .args(["--demo", "--maa-mrsigner", "abc"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("maa.signing_evidence.mrsigner"), "{stderr}");
}
