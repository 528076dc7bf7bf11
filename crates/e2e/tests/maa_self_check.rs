//! The MAA self-check end to end: the CAS believes an MAA token only when the key that signed
//! it has a certificate embedding evidence of a trusted MAA enclave bound to that key. The
//! emulated MAA embeds a simulated quote of its enclave signed with the LAS's platform key,
//! which the CAS trusts; its enclave identity and whether it embeds evidence at all are
//! set per test. Every denial reaches the runtime and the audit log with its reason.

use std::time::{Duration, Instant};

use custos_e2e::{Process, World, bin, run_command, sample_vars, template, with_local_paths};
use custos_protocol::audit::AuditEvent;

/// The MAA enclave's MRSIGNER in the recorded certificates, which the CAS trusts by default.
const RECORDED_MRSIGNER: &str = "74ba5fba208571cf99e1f7158e6536a05bbb6ce7807eef8f6a97f64a7af64b83";
const OTHER_RECORDED_MRSIGNER: &str =
    "5e5410aaf99a32e32df2a97d579e65f8310f274816ec4f34cedeeb1be410a526";

/// The sample's namespace and session named `name`, the session trusting `trusted` (YAML list
/// items of `trusted_maa_enclaves`) when given.
fn sessions(world: &World, name: &str, trusted: Option<&str>) -> (String, String) {
    let mut vars = sample_vars(world.emulator(), "azure-integration");
    vars.insert("PYTHON_SESSION_NAME".into(), name.into());
    let namespace = template("namespace.template.yml", &vars);
    let mut session = with_local_paths(&template("session.template.yml", &vars), world.dir.path());
    if let Some(trusted) = trusted {
        let tolerate = "    tolerate: [debug-mode, maa-managed-tcb]\n";
        assert!(session.contains(tolerate));
        session = session.replace(
            tolerate,
            &format!("{tolerate}    trusted_maa_enclaves:\n{trusted}"),
        );
    }
    (namespace, session)
}

/// Runs the sample through `custos-run` as `name`'s `rest-api` until it is up (allowed) or has
/// exited (denied); returns the attestation's audit event and the process.
fn attest(world: &World, name: &str) -> (AuditEvent, Process) {
    let config_id = format!("azure-integration/{name}/rest-api");
    let vars = world.runtime_vars(&config_id);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sample = bin("rest-api-sample");
    let mut app = world.spawn(
        "custos-run rest-api-sample",
        &mut run_command(&vars, &[sample.to_str().unwrap()]),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !app.stderr.text().contains("listening on https://") && app.try_wait().is_none() {
        assert!(
            Instant::now() < deadline,
            "neither up nor exited:\n{}",
            app.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let events = world.attestations(&format!("azure-integration/{name}"), 1);
    (events[0].clone(), app)
}

/// A denial with exactly one reason, which contains `needle`, also shown by the runtime.
fn assert_denied(event: &AuditEvent, app: &Process, needle: &str) {
    assert!(!event.outcome.is_allowed(), "{event:?}");
    let reasons = event.outcome.reasons();
    assert_eq!(reasons.len(), 1, "{event:?}");
    assert!(
        reasons[0].starts_with("maa: signing key ") && reasons[0].contains(needle),
        "{reasons:?} lacks {needle:?}"
    );
    assert!(
        app.stderr
            .wait_for(needle, Duration::from_secs(5))
            .is_some(),
        "the runtime does not show {needle:?}:\n{}",
        app.logs()
    );
}

#[test]
fn tokens_signed_by_a_trusted_maa_enclave_are_believed_and_by_an_untrusted_one_denied() {
    let mrsigner = "ab".repeat(32);
    let world = World::start_with(true, &[], &["--maa-mrsigner", &mrsigner]);

    // The session trusts this MAA enclave: allowed.
    let trusted = format!(
        "      - mrsigner: {mrsigner}\n        isvprodid: 1\n        debug_allowed: true\n"
    );
    let (namespace, session) = sessions(&world, "trusting", Some(&trusted));
    world.create(&namespace);
    world.create(&session);
    let (event, app) = attest(&world, "trusting");
    assert!(event.outcome.is_allowed(), "{event:?}\n{}", app.logs());
    assert_eq!(event.enclave.as_ref().unwrap().verified_by, "maa");

    // The sample's session, without the field: the CAS's default list (the MAA enclaves of
    // Azure's shared providers) does not include this one.
    let (_, session) = sessions(&world, "default", None);
    world.create(&session);
    let (event, app) = attest(&world, "default");
    assert_denied(
        &event,
        &app,
        &format!(
            "enclave mrsigner: expected one of [{RECORDED_MRSIGNER}, {OTHER_RECORDED_MRSIGNER}], actual {mrsigner}"
        ),
    );

    // A session trusting the right signer but only a production enclave: the emulated MAA
    // enclave is a debug enclave (simulation always is).
    let production = format!("      - mrsigner: {mrsigner}\n");
    let (_, session) = sessions(&world, "production", Some(&production));
    world.create(&session);
    let (event, app) = attest(&world, "production");
    assert_denied(
        &event,
        &app,
        "enclave debug: expected a production enclave (debug_allowed is false), actual a debug enclave",
    );
    // Three attestations, one JWKS document with one key: examined once.
    assert_eq!(examined(&world), 1);
}

/// How often the CAS has examined an MAA signing key.
fn examined(world: &World) -> usize {
    world
        .cas
        .process
        .logs()
        .matches("MAA signing key examined")
        .count()
}

#[test]
fn the_default_trusts_the_recorded_maa_enclave_and_a_session_can_narrow_it() {
    // The emulated MAA enclave has the identity recorded from Azure's shared provider.
    let world = World::start(true, &[]);
    let (namespace, session) = sessions(&world, "default", None);
    world.create(&namespace);
    world.create(&session);
    let (event, app) = attest(&world, "default");
    assert!(event.outcome.is_allowed(), "{event:?}\n{}", app.logs());

    let other = format!(
        "      - mrsigner: {OTHER_RECORDED_MRSIGNER}\n        debug_allowed: true\n      - mrsigner: {RECORDED_MRSIGNER}\n        isvprodid: 2\n        debug_allowed: true\n"
    );
    let (_, session) = sessions(&world, "narrow", Some(&other));
    world.create(&session);
    let (event, app) = attest(&world, "narrow");
    assert_denied(&event, &app, "enclave isvprodid: expected 2, actual 1");
}

#[test]
fn a_signing_key_without_enclave_evidence_is_denied_unless_the_operator_turns_the_check_off() {
    let world = World::start_with(true, &[], &["--maa-signing-evidence", "none"]);
    let needle = "enclave evidence: expected an Open Enclave report (1.3.6.1.4.1.311.105.1) or an SGX quote (1.2.840.113556.10.1.1) in the signing certificate, actual none";

    // A session naming its trusted MAA enclaves requires the check.
    let trusted = format!("      - mrsigner: {RECORDED_MRSIGNER}\n        debug_allowed: true\n");
    let (namespace, session) = sessions(&world, "requiring", Some(&trusted));
    world.create(&namespace);
    world.create(&session);
    let (event, app) = attest(&world, "requiring");
    assert_denied(&event, &app, needle);

    // So does the CAS's default.
    let (_, session) = sessions(&world, "default", None);
    world.create(&session);
    let (event, app) = attest(&world, "default");
    assert_denied(&event, &app, needle);
    drop(world);

    // With `maa.self_check = false`, sessions without the field are not checked; sessions
    // with it still are.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("cas.toml");
    std::fs::write(&config, "[maa]\nself_check = false\n").unwrap();
    let world = World::start_with(
        true,
        &["--config", config.to_str().unwrap()],
        &["--maa-signing-evidence", "none"],
    );
    let (namespace, session) = sessions(&world, "unchecked", None);
    world.create(&namespace);
    world.create(&session);
    let (event, app) = attest(&world, "unchecked");
    assert!(event.outcome.is_allowed(), "{event:?}\n{}", app.logs());
    // Not needed, so not examined.
    assert_eq!(examined(&world), 0);
    let (_, session) = sessions(&world, "requiring", Some(&trusted));
    world.create(&session);
    let (event, app) = attest(&world, "requiring");
    assert_denied(&event, &app, needle);
}
