//! `custos session check`, run as a real process.

use std::path::PathBuf;
use std::process::{Command, Output};

fn sample(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../policy/tests/data/sample")
        .join(file)
}

/// The sample README's variables (its placeholders `...` for the Azure credentials).
const README_VARS: &[(&str, &str)] = &[
    ("CAS_NAMESPACE", "azure-integration-123451234512345"),
    ("PYTHON_SESSION_NAME", "demo"),
    ("AZURE_TENANT_ID", "..."),
    ("AZURE_CLIENT_ID", "..."),
    ("AZURE_CLIENT_SECRET", "..."),
    ("AKV_VAULT", "https://scone-sample.vault.azure.net/"),
    ("AKV_SECRET_NAME", "sample-secret"),
    ("AKV_CERT_SECRET_NAME", "flask"),
    ("MAA_PROVIDER", "https://sharedcus.cus.attest.azure.net"),
];

fn custos(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custos"));
    cmd.args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("custos runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn expected_hash(file: &str) -> String {
    let template = std::fs::read_to_string(sample(file)).unwrap();
    let expanded = custos_policy::template::expand(&template, |n| {
        README_VARS
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    custos_policy::parse(file, &expanded)
        .unwrap()
        .hash
        .to_string()
}

#[test]
fn the_sample_session_passes_with_the_readme_variables() {
    let path = sample("session.template.yml");
    let out = custos(
        &["session", "check", "--use-env", path.to_str().unwrap()],
        README_VARS,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "name: azure-integration-123451234512345/demo\nhash: {}\n",
            expected_hash("session.template.yml")
        )
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn the_sample_namespace_passes_with_the_readme_variables() {
    let path = sample("namespace.template.yml");
    let out = custos(
        &["session", "check", "--use-env", path.to_str().unwrap()],
        README_VARS,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "name: azure-integration-123451234512345\nhash: {}\n",
            expected_hash("namespace.template.yml")
        )
    );
}

#[test]
fn dash_e_sets_variables_and_wins_over_the_environment() {
    let path = sample("namespace.template.yml");
    let out = custos(
        &[
            "session",
            "check",
            "--use-env",
            "-e",
            "CAS_NAMESPACE=from-flag",
            path.to_str().unwrap(),
        ],
        &[("CAS_NAMESPACE", "from-env")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("name: from-flag\n"));

    // -e alone enables templating, without reading the environment.
    let out = custos(
        &["session", "check", "-e", "X=1", path.to_str().unwrap()],
        &[("CAS_NAMESPACE", "from-env")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}:3:7: variable CAS_NAMESPACE is not set\n",
            path.display()
        )
    );
}

#[test]
fn every_missing_variable_is_reported_and_nothing_printed() {
    let path = sample("session.template.yml");
    let out = custos(
        &["session", "check", "--use-env", path.to_str().unwrap()],
        &[("CAS_NAMESPACE", "ns"), ("AZURE_CLIENT_SECRET", "s3cr3t")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    for var in [
        "PYTHON_SESSION_NAME",
        "MAA_PROVIDER",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AKV_VAULT",
        "AKV_SECRET_NAME",
        "AKV_CERT_SECRET_NAME",
    ] {
        assert!(
            stderr.contains(&format!("variable {var} is not set")),
            "{var} missing from:\n{stderr}"
        );
    }
    assert!(!stderr.contains("CAS_NAMESPACE"));
    assert!(!stderr.contains("s3cr3t"));
    assert_eq!(stderr.lines().count(), 8, "{stderr}"); // AKV_VAULT is used twice
}

#[test]
fn invalid_sessions_print_every_problem_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yml");
    std::fs::write(
        &file,
        "name: ns/app\nversion: \"0.3\"\nsecrets:\n  - name: A\n    kind: asci\nservices:\n  - name: app\n    mrenclaves: [\"00\"]\n    enviroment: {}\n",
    )
    .unwrap();
    let out = custos(&["session", "check", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let f = file.display();
    assert_eq!(
        text(&out.stderr),
        format!(
            "{f}:5:11: secrets[0].kind: unknown secret kind `asci`; did you mean `ascii`? (expected one of: ascii, binary, private-key, x509, x509-ca, aad-token)\n\
             {f}:8:18: services[0].mrenclaves[0]: `00` is not an MRENCLAVE: expected 64 hexadecimal digits, found 2 characters\n\
             {f}:9:5: services[0].enviroment: unknown key `enviroment`; did you mean `environment`? (expected one of: name, image_name, command, environment, pwd, mrenclaves, attestation, platforms, refresh)\n"
        )
    );
}

#[test]
fn canonical_form_hashes_to_the_printed_hash() {
    let path = sample("namespace.template.yml");
    let out = custos(
        &[
            "session",
            "check",
            "--canonical",
            "-e",
            "CAS_NAMESPACE=ns",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        r#"{"access_policy":{"create_sessions":["CREATOR"],"read":["CREATOR"],"update":["CREATOR"]},"name":"ns","version":"0.3"}"#
    );
}

#[test]
fn standard_input_is_read_with_a_dash() {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(["session", "check", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"name: ns\nversion: \"0.3\"\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("name: ns\nhash: "));
}

#[test]
fn usage_and_input_errors_exit_2() {
    let out = custos(&["session", "check", "/nonexistent/session.yml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("/nonexistent/session.yml: cannot read: "));

    let out = custos(&["session", "check", "-e", "NOEQUALS", "x.yml"], &[]);
    assert_eq!(out.status.code(), Some(2));

    let out = custos(&["session", "check", "-e", "1X=a", "x.yml"], &[]);
    assert_eq!(out.status.code(), Some(2));

    let out = custos(&["session", "check"], &[]);
    assert_eq!(out.status.code(), Some(2));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latin1.yml");
    std::fs::write(&file, b"name: caf\xe9\n").unwrap();
    let out = custos(&["session", "check", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not UTF-8"));
}
