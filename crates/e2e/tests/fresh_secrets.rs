//! Secrets that stay fresh without restarting the app (`services[].refresh`): `custos-run`
//! supervises the sample, re-attests every second, and the sample follows a secret rotated
//! in Key Vault — same process, no failed request — and keeps serving while the CAS is down.
//! Supervision itself: signals are forwarded and the program's status is custos-run's.

use std::time::{Duration, Instant};

use custos_e2e::{
    CasClientExt, START_TIMEOUT, World, bin, import_certificate, measurement, run_command,
    set_secret, start_supervised_sample, supervised_sample, vault_certificate,
};

const FIRST: &str = "a13f688c788626380ae1209e31e664891fc19dcdd0cfa29c27ca7e6e16b83a95";

/// A client of the sample trusting the certificate chain the vault holds for it.
fn client(world: &World, addr: std::net::SocketAddr) -> reqwest::Client {
    let (chain, _) = vault_certificate(world);
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(chain.as_bytes()).unwrap())
        .resolve("rest-api.scone.sample", addr)
        .build()
        .unwrap()
}

async fn secret(client: &reqwest::Client, port: u16) -> Result<String, String> {
    let url = format!("https://rest-api.scone.sample:{port}/secret");
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    Ok(body["secret"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn a_secret_rotated_in_key_vault_reaches_the_running_sample_and_a_cas_outage_leaves_it_serving() {
    let mut world = World::start(true, &["--azure-cache-ttl", "1"]);
    let (namespace, session, secret_name) = supervised_sample(&world, "{interval: 1 second}");
    let (mut app, addr) = start_supervised_sample(&world, &namespace, &session);
    let client = client(&world, addr);
    assert_eq!(
        world.block_on(secret(&client, addr.port())),
        Ok(FIRST.to_owned())
    );

    // Rotate in the vault while a client asks again and again: every answer succeeds, and the
    // new value arrives within interval + cache TTL (+ margin), from the same process.
    let rotated = "rotated-5be07c91d2a4";
    world.block_on(set_secret(world.emulator(), &secret_name, rotated));
    let log = until_served(&world, &app, "the rotated secret", || async {
        Ok(secret(&client, addr.port()).await? == rotated)
    });
    assert!(log.contains("file(s) rewritten"), "{log}");

    // The CAS goes away: the app keeps serving what it has, custos-run says why and retries.
    world.cas.process.stop(Duration::from_secs(5));
    app.wait_for(
        "re-attestation failed, the program keeps what it has",
        START_TIMEOUT,
    )
    .unwrap();
    assert_eq!(
        world.block_on(secret(&client, addr.port())),
        Ok(rotated.to_owned())
    );
    assert!(app.try_wait().is_none(), "custos-run is still running");

    let logs = format!("{}{}", world.service_logs(), app.logs());
    assert!(
        !logs.contains(rotated) && !logs.contains(FIRST),
        "a secret reached a log"
    );
}

#[test]
fn a_certificate_rotated_in_key_vault_is_served_by_the_running_sample_from_its_next_handshake() {
    let world = World::start(true, &["--azure-cache-ttl", "1"]);
    let (namespace, session, _) = supervised_sample(&world, "{interval: 1 second}");
    let (app, addr) = start_supervised_sample(&world, &namespace, &session);
    let (old_chain, _) = vault_certificate(&world);

    // The vault's owner rotates the certificate: a new key and certificate for the same name.
    let key = rcgen::KeyPair::generate().unwrap();
    let new_leaf = rcgen::CertificateParams::new(vec!["rest-api.scone.sample".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    // A client trusting both, on a new connection for every request, sees which one is served.
    let client = reqwest::Client::builder()
        .tls_certs_only(
            reqwest::Certificate::from_pem_bundle(
                format!("{old_chain}{}", new_leaf.pem()).as_bytes(),
            )
            .unwrap(),
        )
        .resolve("rest-api.scone.sample", addr)
        .pool_max_idle_per_host(0)
        .tls_info(true)
        .build()
        .unwrap();
    let served = || async {
        let response = client
            .get(format!(
                "https://rest-api.scone.sample:{}/secret",
                addr.port()
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        Ok(response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .expect("TLS info")
            .to_vec())
    };
    let first = world.block_on(served()).unwrap();
    assert_ne!(first, new_leaf.der().to_vec());

    world.block_on(import_certificate(
        world.emulator(),
        world.emulator().var("AKV_CERT_SECRET_NAME"),
        &format!("{}{}", key.serialize_pem(), new_leaf.pem()),
    ));
    let log = until_served(&world, &app, "the rotated certificate", || async {
        Ok(served().await? == new_leaf.der().to_vec())
    });
    assert!(log.contains("certificate reloaded"), "{log}");
}

/// Asks `rotated` every 50 ms until it says the rotated value is served (at most 20 s);
/// asserts that no request failed meanwhile and that the sample was not restarted, prints how
/// long it took, and returns custos-run's log.
fn until_served<F: std::future::Future<Output = Result<bool, String>>>(
    world: &World,
    app: &custos_harness::Process,
    what: &str,
    rotated: impl Fn() -> F,
) -> String {
    let rotated_at = Instant::now();
    let (answers, failures) = world.block_on(async {
        let (mut answers, mut failures) = (0, Vec::new());
        loop {
            match rotated().await {
                Ok(true) => break (answers + 1, failures),
                Ok(false) => answers += 1,
                Err(e) => failures.push(e),
            }
            assert!(
                rotated_at.elapsed() < Duration::from_secs(20),
                "{what} was not served within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert!(
        failures.is_empty(),
        "failed requests during the rotation: {failures:?}"
    );
    eprintln!(
        "{what} was served after {:?} ({answers} answers, none failed)",
        rotated_at.elapsed()
    );
    let log = app.logs();
    assert_eq!(
        log.matches("listening on https://").count(),
        1,
        "the sample was not restarted: {log}"
    );
    log
}

/// The `exp` claim of a JWT (not verified: the test only reads when it says it expires).
fn jwt_expiry(jwt: &str) -> u64 {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["exp"].as_u64().expect("exp")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn an_entra_token_file_is_replaced_before_the_token_expires() {
    // Tokens live 9 s; the interval is an hour: only the delivered expiry can bring the
    // re-attestations forward.
    let world = World::start_with(
        true,
        &["--azure-cache-ttl", "60"],
        &["--token-lifetime", "9"],
    );
    let (namespace, session, _) = supervised_sample(&world, "{interval: 1 hour}");
    let token_file = world.dir.path().join("aad-token");
    let session = session.replace(
        "    injection_files:\n",
        &format!(
            "    injection_files:\n      - path: {}\n        content: $$SCONE::AAD_TOKEN$$\n",
            token_file.display()
        ),
    );
    let (app, _) = start_supervised_sample(&world, &namespace, &session);
    let read = || std::fs::read_to_string(&token_file).unwrap();
    let mut token = read();
    for round in 0..2 {
        let expiry = jwt_expiry(&token);
        let fresh = loop {
            let now = unix_now();
            assert!(
                now < expiry,
                "round {round}: the token expired at {expiry} (now {now}) and was not replaced: {}",
                app.logs()
            );
            let current = read();
            if current != token {
                break current;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            jwt_expiry(&fresh) > expiry,
            "round {round}: the new token expires later"
        );
        token = fresh;
    }
    let log = app.logs();
    assert!(log.contains("before a delivered value expires"), "{log}");
    assert_eq!(log.matches("listening on https://").count(), 1, "{log}");
    assert!(!log.contains(&token), "a token reached the log");
}

/// A session without Azure whose service (`sh -c SCRIPT`) is supervised with `refresh`, with
/// `VALUE` in its environment.
fn supervised_shell(
    name: &str,
    script: &str,
    refresh: &str,
    value: &str,
    predecessor: Option<&str>,
) -> String {
    let sh = custos_runtime::launch::resolve_program(std::ffi::OsStr::new("sh")).unwrap();
    let predecessor = predecessor
        .map(|hash| format!("predecessor: {hash}\n"))
        .unwrap_or_default();
    format!(
        r#"
name: {name}
version: "0.3"
{predecessor}security: {{ attestation: {{ mode: hardware, tolerate: [debug-mode] }} }}
services:
  - name: app
    command: ["sh", "-c", {script:?}]
    environment: {{ VALUE: {value} }}
    mrenclaves: ["{mrenclave}"]
    refresh: {refresh}
"#,
        mrenclave = measurement(&sh),
    )
}

/// Replaces the session `name` by `text` as its owner.
fn update(world: &World, name: &str, text: &str) {
    world
        .block_on(world.cas.client(&world.owner).update_session(name, text))
        .unwrap();
}

fn start_shell(world: &World, session: &str) -> custos_harness::Process {
    let vars = world.runtime_vars(&format!("{session}/app"));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut app = world.spawn(
        "custos-run sh (supervised)",
        &mut run_command(&vars, &["sh"]),
    );
    app.wait_for("supervised", START_TIMEOUT).unwrap();
    app
}

#[test]
fn signals_reach_the_program_and_its_status_is_custos_runs() {
    let world = World::start(false, &[]);
    world.create(&supervised_shell(
        "signals",
        "trap 'exit 5' TERM; echo started >&2; while :; do sleep 0.05; done",
        "{interval: 1 hour}",
        "one",
        None,
    ));
    let mut app = start_shell(&world, "signals");
    app.wait_for("started", START_TIMEOUT).unwrap(); // the trap is set
    app.stop(Duration::from_secs(5)); // SIGTERM to custos-run, forwarded to the program
    let status = app.try_wait().expect("custos-run ended");
    assert_eq!(status.code(), Some(5), "{}", app.logs());
}

#[test]
fn a_changed_environment_restarts_the_program_with_on_change_restart_and_waits_otherwise() {
    let world = World::start(false, &[]);
    let script =
        "echo \"value=$VALUE pid=$$\" >&2; trap 'exit 0' TERM; while :; do sleep 0.05; done";
    for (on_change, restarts) in [("restart", true), ("signal", false)] {
        let refresh = format!("{{interval: 1 second, on_change: {on_change}, grace: 5 seconds}}");
        let name = format!("on-change-{on_change}");
        let hash = world.create(&supervised_shell(&name, script, &refresh, "one", None));
        let mut app = start_shell(&world, &name);
        app.wait_for("value=one", START_TIMEOUT).unwrap();
        let changed = supervised_shell(&name, script, &refresh, "two", Some(&hash));
        update(&world, &name, &changed);
        if restarts {
            app.wait_for("value=two", START_TIMEOUT).unwrap();
            let log = app.logs();
            assert!(
                log.contains("on_change restart: restarting the program"),
                "{log}"
            );
        } else {
            app.wait_for("wait for the next start", START_TIMEOUT)
                .unwrap();
            assert!(!app.logs().contains("value=two"), "{}", app.logs());
        }
        app.stop(Duration::from_secs(5));
        assert_eq!(
            app.try_wait().and_then(|s| s.code()),
            Some(0),
            "{}",
            app.logs()
        );
    }
}

#[test]
fn a_denied_re_attestation_keeps_or_stops_the_program_as_on_denial_says() {
    let world = World::start(false, &[]);
    let script = "echo started >&2; trap 'exit 0' TERM; while :; do sleep 0.05; done";
    for on_denial in ["keep", "stop"] {
        let name = format!("on-denial-{on_denial}");
        let refresh = format!("{{interval: 1 second, on_denial: {on_denial}}}");
        let hash = world.create(&supervised_shell(&name, script, &refresh, "one", None));
        let mut app = start_shell(&world, &name);
        app.wait_for("started", START_TIMEOUT).unwrap();
        // The session stops admitting this program's measurement.
        let other = "00".repeat(32);
        let sh = measurement(
            &custos_runtime::launch::resolve_program(std::ffi::OsStr::new("sh")).unwrap(),
        );
        let denying =
            supervised_shell(&name, script, &refresh, "one", Some(&hash)).replace(&sh, &other);
        update(&world, &name, &denying);
        if on_denial == "stop" {
            let status = app.wait(START_TIMEOUT).expect("custos-run exits");
            assert_eq!(status.code(), Some(1), "{}", app.logs());
            let log = app.logs();
            assert!(
                log.contains("on_denial is stop: stopping the program")
                    && log.contains("mrenclave")
                    && log.contains(&other),
                "{log}"
            );
        } else {
            app.wait_for(
                "re-attestation failed, the program keeps what it has",
                START_TIMEOUT,
            )
            .unwrap();
            assert!(app.logs().contains("denied"), "{}", app.logs());
            assert!(app.try_wait().is_none(), "the program keeps running");
            app.stop(Duration::from_secs(5));
        }
    }
}

/// In a container `custos-run` is PID 1: orphans become its children, and it must reap them.
/// Run as PID 1 of a new PID namespace (`unshare --pid --fork --mount-proc`, as root), the
/// program leaves orphans behind and then counts the zombies it can see.
#[test]
fn as_pid_1_of_a_pid_namespace_it_reaps_the_orphans_left_behind() {
    let world = World::start(false, &[]);
    let script = "for i in 1 2 3; do (sleep 0.1 &); done; sleep 1; \
                  echo \"zombies=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l) pid1=$(cat /proc/1/comm)\" >&2";
    world.create(&supervised_shell(
        "reaper",
        script,
        "{interval: 1 hour}",
        "one",
        None,
    ));
    let vars = world.runtime_vars("reaper/app");
    let mut command = std::process::Command::new("unshare");
    command
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(bin("custos-run"))
        .args(["--", "sh"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())));
    let output = command.output().expect("unshare runs");
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(log.contains("zombies=0 pid1=custos-run"), "{log}");
}
