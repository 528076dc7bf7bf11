//! Clients of a replicated CAS against two real `custos-cas` processes serving one TLS key
//! and one master key: the `custos` CLI attests both as one CAS, and when one is killed,
//! `custos cas health` and `custos-run` still get through the other; when both are gone,
//! each is named with its reason.
//!
//! The two processes keep separate stores (a shared store is another piece of work), so the
//! session `custos-run` attests against is created in both.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use custos_e2e::{CasClientExt as _, World, measurement, stderr, stdout};

/// The `custos` CLI, built once (it is not among the binaries the e2e helpers build).
fn custos_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = custos_e2e::bin_dir();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .args(["build", "--quiet", "-p", "custos-cli", "--bin", "custos"])
            .current_dir(custos_e2e::workspace_root());
        if dir.file_name().is_some_and(|n| n == "release") {
            command.arg("--release");
        }
        assert!(
            command.status().unwrap().success(),
            "building custos failed"
        );
        dir.join("custos")
    })
}

fn custos(config: &Path, args: &[&str]) -> Output {
    Command::new(custos_bin())
        .args(args)
        .env_clear()
        .env("CUSTOS_CLI_CONFIG", config)
        .output()
        .expect("custos runs")
}

fn session(mrenclave: &str) -> String {
    format!(
        r#"
name: ns/app
version: "0.3"
security: {{ attestation: {{ mode: hardware, tolerate: [debug-mode] }} }}
secrets:
  - {{ name: WORD, kind: ascii, value: "replicated" }}
services:
  - name: app
    command: ["sh", "-c", "printf '%s' \"$WORD\""]
    environment: {{ WORD: $$SCONE::WORD$$ }}
    mrenclaves: ["{mrenclave}"]
"#
    )
}

#[test]
fn with_one_replica_killed_the_cli_and_custos_run_get_through_the_other() {
    let mut world = World::start(false, &[]);
    let first_dir = world.dir.path().join("cas");
    let flag = |path: &str| first_dir.join(path).to_str().unwrap().to_owned();
    let second_flags = [
        "--trust-platform-key".to_owned(),
        world.las.key_id.clone(),
        "--tls-cert".to_owned(),
        flag("cas.crt"),
        "--tls-key".to_owned(),
        flag("cas.key"),
        "--master-key-file".to_owned(),
        flag("master.key"),
    ];
    let second_logs = world.dir.path().join("second");
    let mut second = custos_e2e::launcher(&second_logs)
        .cas(&second_logs.join("cas"), &second_flags)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.key_hash, world.cas.key_hash, "one key for both");

    let sh = custos_runtime::launch::resolve_program(std::ffi::OsStr::new("sh")).unwrap();
    for cas in [&world.cas, &second] {
        let client = cas.client(&world.owner);
        world
            .block_on(client.create_session("name: ns\nversion: \"0.3\"\n"))
            .unwrap();
        world
            .block_on(client.create_session(&session(&measurement(&sh))))
            .unwrap();
    }

    // The CLI attests both as one CAS.
    let config = world.dir.path().join("cli.json");
    let both = format!("{},{}", world.cas.addr, second.addr);
    let cas_mrenclave = measurement(&custos_e2e::bin("custos-cas"));
    let o = custos(
        &config,
        &[
            "cas",
            "attest",
            &both,
            "--only-for-testing-trust-any",
            "--only-for-testing-debug",
            "--mrenclave",
            &cas_mrenclave,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("replicas: "), "{}", stdout(&o));

    // One replica killed: every call gets through the other, wherever it starts.
    let first_addr = world.cas.addr.clone();
    let enclave_apis = format!("{},{}", world.cas.enclave_addr, second.enclave_addr);
    world.cas.process.kill();
    for _ in 0..6 {
        let o = custos(&config, &["cas", "health"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(
            stdout(&o).starts_with(&format!("CAS {}: ok\n", second.addr)),
            "{}",
            stdout(&o)
        );
    }
    let mut vars = world.runtime_vars("ns/app/app");
    for (name, value) in &mut vars {
        if *name == "CUSTOS_CAS_ADDR" {
            value.clone_from(&enclave_apis);
        }
    }
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for _ in 0..3 {
        let output = custos_e2e::run(&vars, &["sh"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert_eq!(stdout(&output), "replicated");
    }

    // Both gone: each named with its reason.
    second.process.kill();
    let o = custos(&config, &["cas", "health"]);
    assert_eq!(o.status.code(), Some(1));
    let text = stderr(&o);
    assert!(
        text.starts_with("no CAS replica could serve the request (2 tried):\n"),
        "{text}"
    );
    for addr in [&first_addr, &second.addr] {
        assert!(
            text.contains(&format!("  {addr}: cannot connect: ")),
            "{text}"
        );
    }
}
