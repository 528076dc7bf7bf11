//! Key Vault through the CAS, against the emulator's real HTTPS Entra ID and Key Vault: a
//! secret rotated in the vault reaches the first start after the CAS's cache TTL, and a vault
//! that cannot be reached fails the start with a message naming the vault and the secret.

use std::time::{Duration, Instant};

use custos_e2e::{World, measurement, set_secret, stderr, stdout};

const TTL_SECS: u64 = 2;

/// A session importing `sample-secret` from `vault` with the demo app's credentials, for a
/// service (`sh`) that prints it.
fn session(world: &World, name: &str, vault: &str) -> String {
    let emulator = world.emulator();
    let sh = custos_runtime::launch::resolve_program(std::ffi::OsStr::new("sh")).unwrap();
    format!(
        r#"
name: ns/{name}
version: "0.3"
security: {{ attestation: {{ mode: hardware, tolerate: [debug-mode] }} }}
secrets:
  - name: AAD_TOKEN
    kind: aad-token
    tenant_id: {tenant}
    client_id: {client}
    application_secret: "{secret}"
  - name: MY_AKV_SECRET
    kind: ascii
    import_akv: {{ vault: "{vault}", secret_name: sample-secret, token: $$SCONE::AAD_TOKEN$$ }}
services:
  - name: app
    command: ["sh", "-c", "printf '%s' \"$AKV_SECRET\""]
    environment: {{ AKV_SECRET: $$SCONE::MY_AKV_SECRET$$ }}
    mrenclaves: ["{mrenclave}"]
"#,
        tenant = emulator.var("AZURE_TENANT_ID"),
        client = emulator.var("AZURE_CLIENT_ID"),
        secret = emulator.var("AZURE_CLIENT_SECRET"),
        mrenclave = measurement(&sh),
    )
}

fn start(world: &World, config_id: &str) -> String {
    let output = world.run(config_id, &["sh"]);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

#[test]
fn a_rotated_secret_reaches_the_first_start_after_the_ttl() {
    let ttl = TTL_SECS.to_string();
    let world = World::start(true, &["--azure-cache-ttl", &ttl]);
    world.create("name: ns\nversion: \"0.3\"\n");
    world.create(&session(&world, "app", world.emulator().var("AKV_VAULT")));

    let before = Instant::now();
    assert_eq!(
        start(&world, "ns/app/app"),
        "a13f688c788626380ae1209e31e664891fc19dcdd0cfa29c27ca7e6e16b83a95"
    );
    // The CAS read the vault between `before` and now.
    let fetched = Instant::now();
    let rotated = "rotated-9c1e07d4b1f3";
    world.block_on(set_secret(world.emulator(), "sample-secret", rotated));
    // Within the TTL the CAS still serves what it read.
    let second = start(&world, "ns/app/app");
    if before.elapsed() < Duration::from_secs(TTL_SECS) {
        assert_eq!(
            second, "a13f688c788626380ae1209e31e664891fc19dcdd0cfa29c27ca7e6e16b83a95",
            "cached within the TTL"
        );
    }
    let after = Duration::from_secs(TTL_SECS) + Duration::from_millis(100);
    if let Some(wait) = after.checked_sub(fetched.elapsed()) {
        std::thread::sleep(wait);
    }
    assert_eq!(start(&world, "ns/app/app"), rotated);

    let logs = world.service_logs();
    assert!(!logs.contains(rotated) && !logs.contains("a13f688c7886"));
}

#[test]
fn an_unreachable_vault_fails_the_start_naming_the_vault_and_the_secret() {
    let world = World::start(true, &["--azure-max-retries", "0"]);
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let vault = format!("https://127.0.0.1:{port}/");
    world.create("name: ns\nversion: \"0.3\"\n");
    world.create(&session(&world, "app", &vault));
    let marker = world.dir.path().join("started");
    let script = format!("touch {}", marker.display());
    let output = world.run("ns/app/app", &["sh", "-c", &script]);
    assert_eq!(output.status.code(), Some(1));
    assert!(!marker.exists(), "the program must not start");
    let text = stderr(&output);
    assert!(
        text.contains("secret_unavailable: secret MY_AKV_SECRET: vault https://127.0.0.1:")
            && text.contains(&format!("{port}/: secret \"sample-secret\"")),
        "{text}"
    );
    let events = world.attestations("ns/app", 1);
    assert_eq!(events[0].outcome.code(), Some("secret_unavailable"));
}
