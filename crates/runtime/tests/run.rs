//! The real `custos-run` binary, before any CAS is involved: unattested start, configuration
//! errors, and refusing to start when attestation cannot happen.

use std::process::{Command, Output};

fn custos_run(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_custos-run"));
    for (name, _) in std::env::vars() {
        if name.starts_with("CUSTOS_") || name.starts_with("SCONE_") {
            command.env_remove(name);
        }
    }
    command
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn without_a_config_id_the_program_starts_unchanged() {
    let output = custos_run(
        &[("KEEP_ME", "kept")],
        &[
            "sh",
            "-c",
            "echo \"$1 $KEEP_ME $(pwd)\"",
            "sh",
            "--flag-like-arg",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("--flag-like-arg kept {}", cwd.display())
    );
    assert!(stderr(&output).contains("without attestation (no secrets)"));
}

#[test]
fn the_programs_exit_status_is_passed_through() {
    let output = custos_run(&[], &["sh", "-c", "exit 7"]);
    assert_eq!(output.status.code(), Some(7));
}

#[test]
fn configuration_errors_exit_2_naming_the_variable() {
    let output = custos_run(&[("SCONE_MODE", "turbo")], &["true"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output).trim(),
        "custos-run: SCONE_MODE=\"turbo\": one of hw, sim, auto"
    );
    let output = custos_run(&[("SCONE_CONFIG_ID", "ns/demo/rest-api")], &["true"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("CUSTOS_CAS_ADDR is not set"));
}

#[test]
fn an_unreachable_cas_fails_before_the_program_starts() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let script = format!("touch {}", marker.display());
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    let output = custos_run(
        &[
            ("CUSTOS_CONFIG_ID", "ns/demo/rest-api"),
            ("CUSTOS_CAS_ADDR", "127.0.0.1:9"),
            ("CUSTOS_MODE", "sim"),
        ],
        &["sh", "-c", &script],
    );
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("custos-run: CAS at 127.0.0.1:9:"), "{text}");
    assert!(
        text.contains("not authenticated"),
        "simulation warns: {text}"
    );
    assert!(!marker.exists(), "the program must not start");
}

#[test]
fn hardware_mode_refuses_an_unauthenticated_cas() {
    let output = custos_run(
        &[
            ("CUSTOS_CONFIG_ID", "ns/demo/rest-api"),
            ("CUSTOS_CAS_ADDR", "127.0.0.1:9"),
            ("CUSTOS_MODE", "hw"),
        ],
        &["true"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("refusing to trust an unauthenticated CAS"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_missing_program_is_named() {
    let output = custos_run(
        &[
            ("CUSTOS_CONFIG_ID", "ns/demo/rest-api"),
            ("CUSTOS_CAS_ADDR", "127.0.0.1:9"),
        ],
        &["no-such-program-custos"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output).trim(),
        "custos-run: no-such-program-custos: not found on PATH"
    );
}
