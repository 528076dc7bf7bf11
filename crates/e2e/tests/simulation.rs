//! `mode: hardware` in simulation: a real `custos-run` asks the real `custos-las` for a
//! sim-quote and attests to the real `custos-cas`, which verifies it against the LAS's
//! platform key and the session's policy before it hands over the service's secrets.

use std::os::unix::fs::PermissionsExt;

use custos_e2e::{CasClientExt as _, World, measurement, stderr, stdout};

const PASSWORD: &str = "s3cret-Pa55word-from-the-session";

/// A namespace and a session whose service is `sh`, with a literal and a generated secret in
/// its environment and a file.
fn session(world: &World, mrenclave: &str, tolerate: &str) -> String {
    let out = world.dir.path().join("out");
    format!(
        r#"
name: ns/app
version: "0.3"
security:
  attestation:
    mode: hardware
    tolerate: [{tolerate}]
secrets:
  - {{ name: PASSWORD, kind: ascii, value: "{PASSWORD}" }}
  - {{ name: TOKEN, kind: binary, size: 16 }}
services:
  - name: app
    image_name: files
    command: ["sh", "-c", "printf '%s|%s|%s' \"$PASSWORD\" \"$(cat {out}/config)\" \"$(pwd)\""]
    environment:
      PASSWORD: $$SCONE::PASSWORD$$
      TOKEN_HEX: $$SCONE::TOKEN:hex$$
    mrenclaves: ["{mrenclave}"]
    pwd: /tmp
images:
  - name: files
    injection_files:
      - path: {out}/config
        content: "token=$$SCONE::TOKEN:base64$$"
        permission: "0640"
"#,
        out = out.display()
    )
}

fn sh_mrenclave() -> String {
    let sh = custos_runtime::launch::resolve_program(std::ffi::OsStr::new("sh")).unwrap();
    measurement(&sh)
}

fn setup(world: &World, mrenclave: &str, tolerate: &str) {
    world.create("name: ns\nversion: \"0.3\"\n");
    world.create(&session(world, mrenclave, tolerate));
}

#[test]
fn an_attested_service_starts_with_its_secrets_and_the_audit_log_says_so() {
    let world = World::start(false, &[]);
    setup(&world, &sh_mrenclave(), "debug-mode");

    let output = world.run("ns/app/app", &["sh"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    let parts: Vec<&str> = out.split('|').collect();
    assert_eq!(parts[0], PASSWORD);
    assert!(parts[1].starts_with("token="), "{out}");
    assert_eq!(parts[1].len(), "token=".len() + 24, "16 bytes in base64");
    assert_eq!(parts[2], "/tmp", "the policy's working directory");
    let file = world.dir.path().join("out/config");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert!(
        stderr(&output).contains("ns/app/app attested"),
        "{}",
        stderr(&output)
    );

    let events = world.attestations("ns/app", 1);
    let attest = &events[0];
    assert!(attest.outcome.is_allowed(), "{attest:?}");
    assert_eq!(attest.service.as_deref(), Some("app"));
    let enclave = attest.enclave.as_ref().expect("the enclave's facts");
    assert_eq!(enclave.verified_by, "simulation");
    assert_eq!(enclave.mrenclave.as_deref(), Some(sh_mrenclave().as_str()));
    assert_eq!(enclave.platform.as_deref(), Some(world.las.key_id.as_str()));

    // No value in any log: services', runtime's, audit log.
    let logs = format!(
        "{}{}{}",
        world.service_logs(),
        stderr(&output),
        serde_json::to_string(&events).unwrap()
    );
    assert!(!logs.contains(PASSWORD), "a secret value in a log");
    assert!(!logs.contains(parts[1]), "a secret value in a log");
}

#[test]
fn a_wrong_measurement_and_an_untolerated_debug_enclave_are_denied_with_every_reason() {
    let world = World::start(false, &[]);
    let expected = "ab".repeat(32);
    setup(&world, &expected, "hyperthreading");
    let marker = world.dir.path().join("started");
    let script = format!("touch {}", marker.display());

    let output = world.run("ns/app/app", &["sh", "-c", &script]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(!marker.exists(), "the program must not start");
    let text = stderr(&output);
    assert!(
        text.contains("the CAS denied attestation of ns/app/app"),
        "{text}"
    );
    let actual = sh_mrenclave();
    assert!(
        text.contains(&format!("mrenclave: expected {expected}, actual {actual}")),
        "{text}"
    );
    assert!(
        text.contains("debug: expected a production (non-debug) enclave, or tolerate debug-mode, actual a debug enclave (simulation is always debug)"),
        "{text}"
    );
    assert!(!world.dir.path().join("out/config").exists());

    let events = world.attestations("ns/app", 1);
    let denied = &events[0];
    assert_eq!(denied.outcome.code(), Some("attestation_denied"));
    assert_eq!(denied.outcome.reasons().len(), 2, "{denied:?}");
}

#[test]
fn simulated_evidence_is_refused_by_a_cas_that_trusts_no_platform_key() {
    let dir = tempfile::tempdir().unwrap();
    let launcher = custos_e2e::launcher(dir.path());
    let las = launcher.las(&dir.path().join("las")).unwrap();
    let cas = launcher.cas(&dir.path().join("cas"), &[]).unwrap();
    let owner = custos_client::ClientIdentity::generate("owner").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = cas.client(&owner);
    let app = format!(
        "name: ns/app\nversion: \"0.3\"\nsecurity: {{ attestation: {{ tolerate: [debug-mode] }} }}\nservices:\n  - name: app\n    mrenclaves: [\"{}\"]\n",
        sh_mrenclave()
    );
    for text in ["name: ns\nversion: \"0.3\"\n".to_owned(), app] {
        runtime
            .block_on(client.create_session(&text))
            .expect("created");
    }
    let output = custos_e2e::run(
        &[
            ("CUSTOS_CONFIG_ID", "ns/app/app"),
            ("CUSTOS_CAS_ADDR", &cas.enclave_addr),
            ("CUSTOS_LAS_ADDR", &las.addr),
            ("CUSTOS_MODE", "sim"),
            ("CUSTOS_CAS_KEY_HASH", &cas.key_hash),
        ],
        &["sh", "-c", "true"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("this CAS trusts no simulation platform key"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn imports_are_checked_at_every_start_and_mode_none_serves_anyone_with_the_config_id() {
    let world = World::start(false, &[]);
    world.create("name: ns\nversion: \"0.3\"\n");
    let exporter = |export: &str| {
        format!(
            "name: ns/db\nversion: \"0.3\"\nsecrets:\n  - {{ name: DB_PASSWORD, kind: ascii, size: 20, migrate: true, export: [{export}] }}\n"
        )
    };
    let hash = world.create(&exporter("ns/app"));
    world.create(
        r#"
name: ns/app
version: "0.3"
security: { attestation: { mode: none } }
secrets:
  - { name: DB_PASSWORD, import: { session: ns/db } }
services:
  - name: app
    command: ["sh", "-c", "printf '%s' \"$DB_PASSWORD\""]
    environment: { DB_PASSWORD: $$SCONE::DB_PASSWORD$$ }
"#,
    );
    // mode: none — no evidence is looked at, any runtime with the config id is served.
    let output = world.run("ns/app/app", &["sh"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let password = stdout(&output);
    assert_eq!(password.len(), 20);
    let events = world.attestations("ns/app", 1);
    assert!(events[0].outcome.is_allowed(), "{:?}", events[0]);
    let enclave = events[0].enclave.as_ref().expect("the enclave's facts");
    assert_eq!(enclave.verified_by, "none");

    // The exporter stops exporting: the next start is refused, naming the import.
    let client = world.cas.client(&world.owner);
    let update = format!("{}predecessor: {hash}\n", exporter("ns/other"));
    world
        .block_on(client.update_session("ns/db", &update))
        .expect("updated");
    let output = world.run("ns/app/app", &["sh"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("secret DB_PASSWORD: cannot import DB_PASSWORD from session ns/db: session ns/db does not export DB_PASSWORD to session ns/app"),
        "{}",
        stderr(&output)
    );
    assert!(!world.service_logs().contains(&password));
}

#[test]
fn a_cas_can_trust_the_platform_key_its_las_announces() {
    let dir = tempfile::tempdir().unwrap();
    let launcher = custos_e2e::launcher(dir.path());
    let las = launcher.las(&dir.path().join("las")).unwrap();
    let url = format!("http://{}", las.addr);
    let cas = launcher
        .cas(&dir.path().join("cas"), &["--trust-las".into(), url])
        .unwrap();
    assert!(
        cas.process
            .stderr
            .text()
            .contains(&format!("platform_key={}", las.key_id)),
        "{}",
        cas.process.logs()
    );
    let owner = custos_client::ClientIdentity::generate("owner").unwrap();
    let client = cas.client(&owner);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = format!(
        "name: ns/app\nversion: \"0.3\"\nsecurity: {{ attestation: {{ tolerate: [debug-mode] }} }}\nservices:\n  - name: app\n    mrenclaves: [\"{}\"]\n",
        sh_mrenclave()
    );
    for text in ["name: ns\nversion: \"0.3\"\n".to_owned(), app] {
        runtime
            .block_on(client.create_session(&text))
            .expect("created");
    }
    let output = custos_e2e::run(
        &[
            ("CUSTOS_CONFIG_ID", "ns/app/app"),
            ("CUSTOS_CAS_ADDR", &cas.enclave_addr),
            ("CUSTOS_LAS_ADDR", &las.addr),
            ("CUSTOS_MODE", "sim"),
            ("CUSTOS_CAS_KEY_HASH", &cas.key_hash),
        ],
        &["sh", "-c", "true"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn the_runtime_trusts_the_cas_by_ca_file_or_pin_and_refuses_another_key() {
    let world = World::start(false, &[]);
    setup(&world, &sh_mrenclave(), "debug-mode");
    let vars = world.runtime_vars("ns/app/app");
    let with = |name: &str, value: &str| -> Vec<(String, String)> {
        vars.iter()
            .filter(|(k, _)| *k != "CUSTOS_CAS_KEY_HASH")
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .chain([(name.to_owned(), value.to_owned())])
            .collect()
    };
    let run = |vars: &[(String, String)]| {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        custos_e2e::run(&vars, &["sh", "-c", "true"])
    };
    // The CAS's generated certificate as the CA (it names 127.0.0.1).
    let ca = world.dir.path().join("cas/cas.crt");
    let output = run(&with("CUSTOS_CAS_CA", ca.to_str().unwrap()));
    assert!(output.status.success(), "{}", stderr(&output));
    // A pin of another key: the TLS handshake fails, nothing starts.
    let output = run(&with("CUSTOS_CAS_KEY_HASH", &"00".repeat(32)));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains(&format!("CAS at {}", world.cas.enclave_addr)));
}
