//! The SCONE sample's flow with Custos, every piece a real process: the namespace and session
//! from `templates/` with the sample's variables (`mode: maa` against the emulator's MAA, the
//! secret and certificate imported from the emulator's Key Vault with the app's Entra ID
//! credentials); the sample started without attestation exits for lack of its certificate;
//! started through `custos-run` it is attested by MAA via the CAS and serves `/secret` over
//! the vault's certificate. A session naming the MAA instance by another name is denied: the
//! token's issuer is not the one the session trusts.

use std::path::Path;

use custos_e2e::{
    START_TIMEOUT, World, bin, run, run_command, sample_vars, stderr, template, vault_certificate,
    with_local_paths,
};

fn sample_sessions(world: &World, session_name: &str) -> (String, String) {
    let mut vars = sample_vars(world.emulator(), "azure-integration");
    vars.insert("PYTHON_SESSION_NAME".into(), session_name.into());
    let namespace = template("namespace.template.yml", &vars);
    let session = with_local_paths(&template("session.template.yml", &vars), world.dir.path());
    (namespace, session)
}

/// `GET https://rest-api.scone.sample:PORT/secret`, the name resolved to `addr`, trusting only
/// `certificate_pem`.
fn get_secret(world: &World, addr: &str, certificate_pem: &str) -> serde_json::Value {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(certificate_pem.as_bytes()).unwrap())
        .resolve("rest-api.scone.sample", addr)
        .build()
        .unwrap();
    let url = format!("https://rest-api.scone.sample:{}/secret", addr.port());
    world.block_on(async {
        let response = client.get(url).send().await.unwrap();
        assert!(response.status().is_success(), "{:?}", response.status());
        response.json().await.unwrap()
    })
}

#[test]
fn the_sample_serves_the_vaults_secret_over_the_vaults_certificate_only_when_attested() {
    sample_flow(&World::start(true, &[]));
}

/// The same flow on a CAS that has no key file: Key Vault released its master key to it.
#[test]
fn the_sample_flow_runs_on_a_cas_whose_master_key_key_vault_released() {
    let world = World::start_with_key_release(&[]);
    sample_flow(&world);
    let data = world.dir.path().join("cas");
    let files: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!files.iter().any(|f| f == "master.key"), "{files:?}");
    assert!(
        files.iter().any(|f| f == "master-key.envelope.json"),
        "{files:?}"
    );
    let logs = world.service_logs();
    assert!(
        logs.contains("new master key, wrapped by the Key Vault key; released to this CAS"),
        "{logs}"
    );
    let environ = std::fs::read(format!("/proc/{}/environ", world.cas.process.id())).unwrap();
    assert!(!String::from_utf8_lossy(&environ).contains("MASTER_KEY"));
}

/// The sample's flow in `world`: sessions from the templates, the sample refused without
/// attestation, then attested and serving the vault's secret; no secret in any log.
fn sample_flow(world: &World) {
    let (namespace, session) = sample_sessions(world, "rest-api");
    world.create(&namespace);
    world.create(&session);
    let sample = bin("rest-api-sample");
    let tls = world.dir.path().join("tls");
    let sample_path = sample.to_str().unwrap();

    // Without a config id: started unchanged, no certificate, it exits naming the file.
    let crt = tls.join("flask.crt");
    let output = run(
        &[
            ("REST_API_CERT", crt.to_str().unwrap()),
            ("REST_API_KEY", tls.join("flask.key").to_str().unwrap()),
            ("REST_API_LISTEN", "127.0.0.1:0"),
        ],
        &[sample_path],
    );
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains("custos-run: no CUSTOS_CONFIG_ID: starting")
            && text.contains(&format!("rest-api-sample: {}: cannot read", crt.display())),
        "{text}"
    );

    // Attested: MAA (emulated) verified the sim-quote, the CAS its token and the policy.
    let vars = world.runtime_vars("azure-integration/rest-api/rest-api");
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut app = world.spawn(
        "custos-run rest-api-sample",
        &mut run_command(&vars, &[sample_path]),
    );
    let line = app
        .wait_for("listening on https://", START_TIMEOUT)
        .unwrap();
    let addr = line
        .split("listening on https://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let (chain, key) = vault_certificate(world);
    let answer = get_secret(world, &addr, &chain);
    assert_eq!(
        answer["secret"],
        "a13f688c788626380ae1209e31e664891fc19dcdd0cfa29c27ca7e6e16b83a95"
    );
    assert!(answer["access_timestamp"].as_f64().unwrap() > 1.6e9);
    assert_eq!(
        std::fs::read_to_string(tls.join("flask.crt")).unwrap(),
        first_pem(&chain)
    );
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&tls.join("flask.key")), 0o600);

    let events = world.attestations("azure-integration/rest-api", 1);
    assert!(events[0].outcome.is_allowed(), "{:?}", events[0]);
    let enclave = events[0].enclave.as_ref().expect("the enclave's facts");
    assert_eq!(enclave.verified_by, "maa");
    assert_eq!(enclave.debug, Some(true));

    // No secret value in any log: CAS, LAS, emulator, runtime (and the app's own).
    let logs = format!("{}{}", world.service_logs(), app.logs());
    let client_secret = world.emulator().var("AZURE_CLIENT_SECRET");
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    for (what, value) in [
        (
            "the vault's secret",
            "a13f688c788626380ae1209e31e664891fc19dcdd0cfa29c27ca7e6e16b83a95",
        ),
        ("the app's client secret", client_secret),
        ("the certificate's private key", &key_body[..64]),
    ] {
        assert!(!logs.contains(value), "{what} is in a log");
    }
}

fn first_pem(chain: &str) -> String {
    let end = "-----END CERTIFICATE-----";
    let i = chain.find(end).unwrap() + end.len();
    format!("{}\n", &chain[..i])
}

#[test]
fn an_maa_token_from_another_issuer_than_the_sessions_url_is_denied() {
    let world = World::start(true, &[]);
    let (namespace, session) = sample_sessions(&world, "wrong-issuer");
    // The same MAA instance under another name: its tokens say 127.0.0.1, the session
    // trusts the name localhost.
    let maa = world.emulator().var("MAA_PROVIDER");
    let renamed = maa.replace("127.0.0.1", "localhost");
    world.create(&namespace);
    world.create(&session.replace(maa, &renamed));
    let output = world.run(
        "azure-integration/wrong-issuer/rest-api",
        &[bin("rest-api-sample").to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains(&format!(
            "maa: token issuer: expected {renamed:?}, found {maa:?}"
        )),
        "{text}"
    );
    let events = world.attestations("azure-integration/wrong-issuer", 1);
    assert!(!events[0].outcome.is_allowed(), "{:?}", events[0]);
}
