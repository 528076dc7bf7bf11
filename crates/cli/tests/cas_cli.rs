//! `custos self|cas|session create/update/read/verify` as real processes against a real CAS
//! server (the `custos-cas` library serving on loopback in this test process).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{attest_simulated_cas, code, err, out, start_cas, start_cas_with, strs};

fn sample(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../policy/tests/data/sample")
        .join(file)
}

const VARS: &[(&str, &str)] = &[
    ("CAS_NAMESPACE", "azure-integration-777"),
    ("PYTHON_SESSION_NAME", "demo"),
    ("AZURE_TENANT_ID", "tenant"),
    ("AZURE_CLIENT_ID", "client"),
    ("AZURE_CLIENT_SECRET", "CLI-SECRET-MARKER"),
    ("AKV_VAULT", "https://scone-sample.vault.azure.net/"),
    ("AKV_SECRET_NAME", "sample-secret"),
    ("AKV_CERT_SECRET_NAME", "flask"),
    ("MAA_PROVIDER", "https://sharedcus.cus.attest.azure.net"),
];

fn custos(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(args)
        .env_clear()
        .env("CUSTOS_CLI_CONFIG", config)
        .envs(VARS.iter().copied())
        .output()
        .expect("custos runs")
}

#[test]
fn attest_then_create_update_read_verify_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let cas = start_cas(&dir.path().join("cas"));
    let addr = cas.addr.clone();
    let alice = dir.path().join("alice.json");
    let ns = sample("namespace.template.yml");
    let session = sample("session.template.yml");
    let (ns, session) = (ns.to_str().unwrap(), session.to_str().unwrap());

    let id = custos(&alice, &["self", "show-key-hash"]);
    assert_eq!(code(&id), 0, "{}", err(&id));
    let id = out(&id).trim().to_owned();
    assert_eq!(id.len(), 64);
    assert_eq!(
        out(&custos(&alice, &["self", "show-key-hash"])).trim(),
        id,
        "the identity is kept"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&alice).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // Not attested: refused.
    let o = custos(
        &alice,
        &["session", "create", "--use-env", "--cas", &addr, ns],
    );
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("not attested"), "{}", err(&o));

    // Simulated and debug evidence need the testing flags, and the message says which.
    let o = custos(&alice, &["cas", "attest", &addr]);
    assert_eq!(code(&o), 1);
    assert!(
        err(&o).contains("--only-for-testing-trust-any"),
        "{}",
        err(&o)
    );
    let o = custos(
        &alice,
        &["cas", "attest", &addr, "--only-for-testing-trust-any"],
    );
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("--only-for-testing-debug"), "{}", err(&o));
    let wrong = "00".repeat(32);
    let o = custos(
        &alice,
        &[
            "cas",
            "attest",
            &addr,
            "--only-for-testing-trust-any",
            "--only-for-testing-debug",
            "--mrenclave",
            &wrong,
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(
        err(&o).contains(&format!("mrenclave: expected {wrong}, actual ")),
        "{}",
        err(&o)
    );
    let o = custos(&alice, &strs(&attest_simulated_cas(&addr)));
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out(&o).contains("SIMULATED"));
    let list = out(&custos(&alice, &["cas", "list"]));
    assert!(list.starts_with(&format!("* {addr} key_hash=")), "{list}");

    // The sample flow, against the default CAS.
    let o = custos(&alice, &["session", "create", "--use-env", ns]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let o = custos(&alice, &["session", "create", "--use-env", session]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let hash1 = out(&o)
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("hash: ")
        .unwrap()
        .to_owned();
    let o = custos(&alice, &["session", "create", "--use-env", session]);
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("409 session_exists"), "{}", err(&o));

    let o = custos(&alice, &["session", "verify", "--use-env", session]);
    assert_eq!(
        (code(&o), out(&o).trim()),
        (0, hash1.as_str()),
        "{}",
        err(&o)
    );
    let o = custos(&alice, &["session", "read", "azure-integration-777/demo"]);
    assert_eq!(code(&o), 0);
    assert!(out(&o).contains("name: azure-integration-777/demo"));

    // Update without a predecessor: the CLI fills in the current hash.
    let changed = dir.path().join("changed.yml");
    let text = std::fs::read_to_string(session)
        .unwrap()
        .replace("pwd: /", "pwd: /app");
    std::fs::write(&changed, text).unwrap();
    let o = custos(
        &alice,
        &["session", "update", "--use-env", changed.to_str().unwrap()],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let o = custos(&alice, &["session", "verify", "--use-env", session]);
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("holds another version"), "{}", err(&o));
    let o = custos(
        &alice,
        &[
            "session",
            "verify",
            "-e",
            "CAS_NAMESPACE=azure-integration-777",
            "--use-env",
            changed.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));

    // Invalid input is refused locally (nothing uploaded); templating errors list every variable.
    let o = custos(&alice, &["session", "create", session]);
    assert_eq!(code(&o), 1);
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "name: x\nversion: \"0.3\"\nservices: [\n").unwrap();
    let o = custos(&alice, &["session", "create", bad.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("bad.yml:"), "{}", err(&o));
    let o = custos(&alice, &["session", "create", "/nonexistent.yml"]);
    assert_eq!(code(&o), 2);

    // Another identity: attested too, but the session's policy excludes it.
    let bob = dir.path().join("bob.json");
    let o = custos(
        &bob,
        &[
            "cas",
            "attest",
            &addr,
            "--only-for-testing-trust-any",
            "--only-for-testing-debug",
        ],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let o = custos(&bob, &["session", "read", "azure-integration-777/demo"]);
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("403 access_denied"), "{}", err(&o));
    assert_ne!(out(&custos(&bob, &["self", "show-key-hash"])).trim(), id);
}

/// A stand-in for Gramine's `/dev/attestation` holding a real recorded DCAP quote: the CAS
/// serves it as its evidence, and the CLI must not pin a CAS whose quote does not bind the key
/// and nonce of the very connection (here it binds "Hello, world!").
fn gramine_dir(dir: &Path) -> PathBuf {
    let gramine = dir.join("attestation");
    std::fs::create_dir_all(&gramine).unwrap();
    std::fs::write(gramine.join("attestation_type"), "dcap\n").unwrap();
    std::fs::copy(attestation_data("sgx_quote"), gramine.join("quote")).unwrap();
    gramine
}

/// The flags of a CAS attesting itself with Gramine's files in `gramine`.
fn gramine_flags(gramine: &Path) -> [&str; 4] {
    [
        "--evidence",
        "gramine",
        "--gramine-dir",
        gramine.to_str().unwrap(),
    ]
}

fn attestation_data(file: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../attestation/tests/data/dcap")
        .join(file)
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_cas_in_gramine_serves_dcap_quotes_bound_to_its_key_and_the_cli_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    let gramine = gramine_dir(dir.path());
    let cas = start_cas_with(&dir.path().join("cas"), &gramine_flags(&gramine));
    let addr = cas.addr.clone();

    // The CAS writes SHA-256(its SPKI ‖ nonce) to user_report_data before reading the quote.
    let client =
        custos_client::CasClient::new(&addr, None, custos_client::ServerTrust::AttestationOnly)
            .unwrap();
    let nonce = hex::decode("00112233445566778899aabbccddeeff").unwrap();
    let (body, server_spki) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(client.evidence(&nonce))
        .unwrap();
    assert_eq!(body.evidence.kind, "sgx-quote");
    assert!(!body.simulation);
    let recorded_mrenclave = body.mrenclave.clone();
    assert!(recorded_mrenclave.starts_with("33d8736d"), "{body:?}");
    let mut runtime_data = server_spki;
    runtime_data.extend_from_slice(&nonce);
    assert_eq!(
        std::fs::read(gramine.join("user_report_data")).unwrap(),
        custos_attestation::ReportData::binding(&runtime_data).0
    );

    let cli = dir.path().join("cli.json");
    let no_mrenclave = custos(&cli, &["cas", "attest", &addr]);
    assert_eq!(code(&no_mrenclave), 1);
    assert!(
        err(&no_mrenclave).contains("give the CAS's MRENCLAVE with --mrenclave"),
        "{}",
        err(&no_mrenclave)
    );
    let no_collateral = custos(
        &cli,
        &["cas", "attest", &addr, "--mrenclave", &recorded_mrenclave],
    );
    assert_eq!(code(&no_collateral), 2);
    assert!(
        err(&no_collateral).contains("hardware evidence needs collateral"),
        "{}",
        err(&no_collateral)
    );
    let collateral = attestation_data("sgx_quote_collateral.json");
    let attest_with_collateral = |extra: &[&str]| {
        let mut args = vec!["cas", "attest", &addr, "--mrenclave", &recorded_mrenclave];
        args.extend(["--collateral", &collateral]);
        args.extend(extra);
        let output = custos(&cli, &args);
        assert_eq!(code(&output), 1, "{}", err(&output));
        err(&output)
    };
    let expired = attest_with_collateral(&[]);
    assert!(
        expired.contains("collateral tcb_info is valid from 2025-06-19T10:56:11Z until 2025-07-19T10:56:11Z, not at "),
        "checked as of now, the recorded collateral has expired: {expired}"
    );
    // As of a time inside the collateral's validity the quote is genuine, but it binds
    // "Hello, world!", not this CAS's key and the CLI's nonce.
    let unbound = attest_with_collateral(&["--only-for-testing-at", "1751328000"]);
    assert!(
        unbound.contains("evidence rejected: report data does not bind the runtime data"),
        "{unbound}"
    );
    // SCONE's --verification-time takes the day (00:00 UTC): the same check.
    let unbound = attest_with_collateral(&["--verification-time", "2025-07-01"]);
    assert!(
        unbound.contains("evidence rejected: report data does not bind the runtime data"),
        "{unbound}"
    );
    let listed = custos(&cli, &["cas", "list"]);
    assert!(
        !out(&listed).contains(&addr),
        "nothing pinned: {}",
        out(&listed)
    );
}

#[test]
fn a_gramine_cas_outside_an_enclave_stops_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(custos_e2e::bin("custos-cas"))
        .arg("--data-dir")
        .arg(dir.path().join("cas"))
        .args(["--listen", "127.0.0.1:0", "--enclave-listen", "127.0.0.1:0"])
        .args(gramine_flags(&dir.path().join("no-attestation")))
        .env_remove("CUSTOS_CAS_CONFIG")
        .output()
        .unwrap();
    assert!(!output.status.success(), "no enclave, no CAS");
    let error = err(&output);
    assert!(error.contains("no-attestation/user_report_data"), "{error}");
}
