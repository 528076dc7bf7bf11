//! The client API against a real `custos-cas` process.

mod common;

use base64::Engine as _;
use common::{CasProcess, create, get, update};
use custos_attestation::sim::{PlatformPublicKey, TrustedPlatforms, verify_sim_quote};
use custos_attestation::{ReportData, Verifier as _};
use custos_cas::client::{CasClient, ClientIdentity, ServerTrust};
use hyper::{Method, StatusCode};

fn sample(file: &str, namespace: &str) -> String {
    let text = std::fs::read_to_string(format!(
        "{}/tests/data/sample/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let vars = [
        ("CAS_NAMESPACE", namespace),
        ("PYTHON_SESSION_NAME", "demo"),
        ("MAA_PROVIDER", "https://sharedcus.cus.attest.azure.net"),
        ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
        ("AZURE_CLIENT_ID", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
        ("AZURE_CLIENT_SECRET", "CLIENT-SECRET-MARKER-9f8e7d"),
        ("AKV_VAULT", "https://scone-sample.vault.azure.net/"),
        ("AKV_SECRET_NAME", "sample-secret"),
        ("AKV_CERT_SECRET_NAME", "flask"),
    ];
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    custos_policy::template::expand(&text, lookup)
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_namespace_and_session_are_created_read_and_protected() {
    let dir = tempfile::tempdir().unwrap();
    let cas = CasProcess::start(dir.path(), &[]);
    let alice = ClientIdentity::generate("alice").unwrap();
    let bob = ClientIdentity::generate("bob").unwrap();
    let as_alice = cas.client(Some(&alice));
    let as_bob = cas.client(Some(&bob));

    let namespace = sample("namespace.template.yml", "azure-integration-42");
    let session = sample("session.template.yml", "azure-integration-42");
    let r = create(&as_alice, &namespace).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    let r = create(&as_alice, &session).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    let hash = r.json()["hash"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["name"], "azure-integration-42/demo");
    let expected = custos_policy::parse("s", &session)
        .unwrap()
        .hash
        .to_string();
    assert_eq!(
        hash, expected,
        "the CAS's hash is the session language's hash"
    );

    let r = get(&as_alice, "/v1/sessions/azure-integration-42/demo").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["session"], session.as_str());
    assert_eq!(r.json()["hash"], hash.as_str());
    assert_eq!(r.json()["creator"], alice.id().unwrap().to_string());

    // Creating it again: 409.
    let r = create(&as_alice, &session).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json()["error"]["code"], "session_exists");

    // Another identity: denied, and the denial says which list.
    let r = get(&as_bob, "/v1/sessions/azure-integration-42/demo").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("read policy") && message.contains(&bob.id().unwrap().to_string()),
        "{message}"
    );
    let r = update(
        &as_bob,
        "azure-integration-42/demo",
        &format!("{session}\npredecessor: {hash}\n"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // The namespace's create_sessions admits only its creator.
    let other = session.replace("azure-integration-42/demo", "azure-integration-42/intruder");
    let r = create(&as_bob, &other).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.json());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("create_sessions")
    );
    // A namespace that does not exist.
    let r = create(
        &as_bob,
        &session.replace("azure-integration-42/demo", "nowhere/demo"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Listing shows only what the caller may read.
    let r = get(&as_alice, "/v1/sessions?prefix=azure-integration-42").await;
    assert_eq!(
        r.json()["sessions"],
        serde_json::json!(["azure-integration-42", "azure-integration-42/demo"])
    );
    let r = get(&as_bob, "/v1/sessions?prefix=azure").await;
    assert_eq!(r.json()["sessions"], serde_json::json!([]));

    // The audit log: the owner sees creates, reads and the denials; others may not read it.
    let r = get(&as_bob, "/v1/audit?session=azure-integration-42/demo").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    common::wait_until("the audit log to hold the denials", || {
        let log = futures_lite_block(get(
            &as_alice,
            "/v1/audit?session=azure-integration-42/demo",
        ));
        log.json()["events"].as_array().unwrap().len() >= 5
    });
    let r = get(&as_alice, "/v1/audit?session=azure-integration-42/demo").await;
    let events = r.json()["events"].as_array().unwrap().clone();
    let actions: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(actions[0], ("session-create".into(), "allowed".into()));
    assert!(
        actions.contains(&("session-read".into(), "denied".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("session-update".into(), "denied".into())),
        "{actions:?}"
    );
    let denied = events.iter().find(|e| e["result"] == "denied").unwrap();
    assert_eq!(denied["client"], bob.id().unwrap().to_string());
    assert!(denied["time_ms"].as_u64().unwrap() > 1_600_000_000_000);

    // The client secret in the session text is in neither the log nor the audit log.
    let audit = r.body.clone();
    assert!(!String::from_utf8_lossy(&audit).contains("CLIENT-SECRET-MARKER"));
    assert!(!cas.log().contains("CLIENT-SECRET-MARKER"), "{}", cas.log());
}

fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_need_the_current_hash_as_predecessor() {
    let dir = tempfile::tempdir().unwrap();
    let cas = CasProcess::start(dir.path(), &[]);
    let alice = ClientIdentity::generate("alice").unwrap();
    let c = cas.client(Some(&alice));
    let v1 = "name: solo\nversion: \"0.3\"\nsecurity: { attestation: { mode: none } }\n";
    let hash1 = create(&c, v1).await.json()["hash"]
        .as_str()
        .unwrap()
        .to_owned();

    let v2 = format!("{v1}secrets:\n  - {{ name: TOKEN, kind: ascii }}\n");
    let r = update(&c, "solo", &v2).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], "predecessor_required");

    let wrong = "ab".repeat(32);
    let r = update(&c, "solo", &format!("{v2}predecessor: {wrong}\n")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains(&wrong) && message.contains(&hash1),
        "{message}"
    );

    let r = update(&c, "other", &format!("{v2}predecessor: {hash1}\n")).await;
    assert_eq!(r.json()["error"]["code"], "name_mismatch");

    let r = update(&c, "solo", &format!("{v2}predecessor: {hash1}\n")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let hash2 = r.json()["hash"].as_str().unwrap().to_owned();
    assert_ne!(hash1, hash2);
    // The old hash is no longer current.
    let r = update(&c, "solo", &format!("{v2}predecessor: {hash1}\n")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = get(&c, "/v1/sessions/solo").await;
    assert_eq!(r.json()["hash"], hash2.as_str());
    assert_eq!(r.json()["revision"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cas = CasProcess::start(dir.path(), &["--max-body-bytes", "4096"]);
    let alice = ClientIdentity::generate("alice").unwrap();
    let c = cas.client(Some(&alice));

    let r = create(&c, "name: broken\nversion: \"0.3\"\nservices: [\n").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], "invalid_session");
    assert!(!r.json()["error"]["details"].as_array().unwrap().is_empty());

    let r = create(&c, "name: typo\nversion: \"0.3\"\nacess_policy: {}\n").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let details = r.json()["error"]["details"].to_string();
    assert!(details.contains("acess_policy"), "{details}");

    let big = format!("name: big\nversion: \"0.3\"\n# {}\n", "x".repeat(5000));
    let r = create(&c, &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 4096")
    );

    let r = create(&c, "name: pred\nversion: \"0.3\"\npredecessor: 0000000000000000000000000000000000000000000000000000000000000000\n").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], "predecessor_not_allowed");

    let anonymous = cas.client(None);
    let r = create(&anonymous, "name: anon\nversion: \"0.3\"\n").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"]["code"], "client_certificate_required");
    let r = get(&anonymous, "/v1/sessions?prefix=").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = c
        .request(Method::DELETE, "/v1/sessions/x", None)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = get(&c, "/v1/nothing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = get(&c, "/v1/sessions?prefix=").await;
    assert_eq!(
        r.json()["sessions"],
        serde_json::json!([]),
        "nothing was stored"
    );
    let metrics = String::from_utf8(get(&anonymous, "/metrics").await.body.to_vec()).unwrap();
    assert!(metrics.contains("custos_cas_sessions 0"), "{metrics}");
    assert!(
        metrics.contains("custos_cas_body_too_large_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("custos_cas_requests_total{route=\"session_create\",status=\"400\"} 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_above_the_rate_get_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let cas = CasProcess::start(dir.path(), &["--rate-limit", "1", "--rate-burst", "3"]);
    let c = cas.client(Some(&ClientIdentity::generate("eager").unwrap()));
    let mut conn = c.connect().await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = conn.send(Method::GET, "/v1/version", None).await.unwrap();
        statuses.push(r.status.as_u16());
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.retry_after.as_deref(), Some("1"));
            assert_eq!(r.json()["error"]["code"], "rate_limited");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    // Another client has its own budget.
    let other = cas.client(Some(&ClientIdentity::generate("patient").unwrap()));
    assert_eq!(get(&other, "/v1/version").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_secrets_public_values_and_imports() {
    let dir = tempfile::tempdir().unwrap();
    let mut cas = CasProcess::start(dir.path(), &[]);
    let alice = ClientIdentity::generate("alice").unwrap();
    let c = cas.client(Some(&alice));
    let app = r#"name: app
version: "0.3"
security: { attestation: { mode: none } }
secrets:
  - { name: ROOT, import: { session: pki, secret: ROOT } }
  - { name: KEY, kind: private-key }
  - name: SERVER
    kind: x509
    private_key: KEY
    issuer: ROOT
    common_name: api.example
    dns: [api.example]
    export_public: true
  - { name: PASSWORD, kind: ascii, size: 24 }
"#;
    // `app` does not exist yet: the export pins its hash (an unpinned export to a missing
    // namespace is refused).
    let app_hash = custos_policy::parse("app", app).unwrap().hash;
    let ca = format!(
        r#"name: pki
version: "0.3"
security: {{ attestation: {{ mode: none }} }}
secrets:
  - name: ROOT
    kind: x509-ca
    common_name: Demo Root
    export_public: true
    export: [{{ session: app, session_hash: {app_hash} }}]
  - name: LITERAL
    kind: ascii
    value: LITERAL-SECRET-MARKER-1234
"#
    );
    assert_eq!(create(&c, &ca).await.status, StatusCode::CREATED);
    let r = create(&c, app).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());

    // An import the exporter does not allow.
    let thief = app.replace("name: app", "name: thief");
    let r = create(&c, &thief).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.json());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not export ROOT to session thief")
    );

    // Public values need no client certificate.
    let anonymous = cas.client(None);
    let r = get(&anonymous, "/v1/values/session=app,secret=SERVER").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let cert_pem = r.json()["values"]["SERVER"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = get(&anonymous, "/v1/values/session=pki").await;
    let root_pem = r.json()["values"]["ROOT"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        r.json()["values"].as_object().unwrap().len(),
        1,
        "LITERAL is not public"
    );
    let der = |pem: &str| {
        rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
            .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
            .unwrap()
    };
    let (cert_der, root_der) = (der(&cert_pem), der(&root_pem));
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
    let (_, root) = x509_parser::parse_x509_certificate(&root_der).unwrap();
    cert.verify_signature(Some(root.public_key()))
        .expect("issued by the imported CA");
    let r = get(&anonymous, "/v1/values/session=app,secret=PASSWORD").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The generated values are sealed in the store and appear in no log or audit record.
    let audit = get(&c, "/v1/audit?session=app").await.body;
    cas.kill();
    let sealer = custos_cas::seal::Sealer::new(
        &custos_cas::seal::KeyProvider::master_key(&custos_cas::seal::KeyFile::existing(
            dir.path().join("master.key"),
        ))
        .unwrap(),
    )
    .unwrap();
    let store = custos_cas::store::Store::open(&dir.path().join("cas.redb"), sealer).unwrap();
    let values = custos_cas::secrets::SecretValues::from_bytes(
        &store.read().unwrap().secrets("app").unwrap().unwrap(),
    )
    .unwrap();
    let custos_cas::secrets::SecretValue::Ascii { value: password } = &values.values["PASSWORD"]
    else {
        panic!("no password")
    };
    assert_eq!(password.len(), 24);
    let raw = std::fs::read(dir.path().join("cas.redb")).unwrap();
    for needle in [password.as_bytes(), b"LITERAL-SECRET-MARKER-1234"] {
        let text = String::from_utf8_lossy(needle).to_string();
        assert!(!cas.log().contains(&text), "secret in the log");
        assert!(
            !String::from_utf8_lossy(&audit).contains(&text),
            "secret in the audit log"
        );
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle),
            "secret in clear in the store"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cas_attests_its_own_tls_key() {
    let dir = tempfile::tempdir().unwrap();
    let cas = CasProcess::start(dir.path(), &[]);
    // Before trusting the CAS: any certificate, bound through the evidence.
    let c = CasClient::new(&cas.addr, None, ServerTrust::AttestationOnly).unwrap();
    let nonce = [0x5au8; 32];
    let r = get(&c, &format!("/v1/attest?nonce={}", hex::encode(nonce))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let body = r.json();
    assert_eq!(body["evidence"]["type"], "sim-quote");
    assert_eq!(body["simulation"], true);
    let quote = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body["evidence"]["quote"].as_str().unwrap())
        .unwrap();
    let platform =
        PlatformPublicKey::from_spki_pem(body["platform_key"].as_str().unwrap().as_bytes())
            .unwrap();
    let mut runtime_data = r.server_spki.clone();
    runtime_data.extend_from_slice(&nonce);
    let claims =
        custos_attestation::sim::SimQuoteVerifier::new(TrustedPlatforms::from_ids([platform.id()]))
            .verify(&quote, &runtime_data, rustls_pki_types::UnixTime::now())
            .unwrap();
    assert!(claims.debug() && claims.is_simulation());
    assert_eq!(
        claims.mrenclave().to_hex(),
        body["mrenclave"].as_str().unwrap()
    );
    let exe = custos_attestation::sim::measure_executable(std::path::Path::new(env!(
        "CARGO_BIN_EXE_custos-cas"
    )))
    .unwrap();
    assert_eq!(
        claims.mrenclave(),
        exe,
        "MRENCLAVE is the CAS executable's hash"
    );
    assert_eq!(custos_ids::KeyHash::of_spki(&r.server_spki), cas.key_hash);
    // Another nonce does not verify against this quote.
    let mut other = r.server_spki.clone();
    other.extend_from_slice(&[0u8; 32]);
    assert!(
        verify_sim_quote(&quote, &TrustedPlatforms::from_ids([platform.id()]))
            .unwrap()
            .report_data()
            != ReportData::binding(&other)
    );

    let r = get(&c, "/v1/attest?nonce=abcd").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], "bad_nonce");
    let r = get(&c, "/healthz").await;
    assert_eq!(r.json()["simulation"], true);
    assert!(
        r.json()["warnings"][0]
            .as_str()
            .unwrap()
            .contains("SIMULATION")
    );

    // A client pinned to another key refuses the CAS.
    let wrong = CasClient::new(
        &cas.addr,
        None,
        ServerTrust::Pinned(custos_ids::KeyHash::from_bytes([9; 32])),
    )
    .unwrap();
    let err = wrong
        .request(Method::GET, "/healthz", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expected the pinned"), "{err}");
    assert!(err.to_string().contains("attest the CAS again"), "{err}");
}

#[test]
fn a_store_without_its_master_key_is_refused_not_rekeyed() {
    let dir = tempfile::tempdir().unwrap();
    drop(CasProcess::start(dir.path(), &[]));
    std::fs::remove_file(dir.path().join("master.key")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_custos-cas"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("master.key") && stderr.contains("No such file"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("master.key").exists(),
        "no new key was made"
    );

    // A bad configuration file is named, with exit code 2.
    let config = dir.path().join("cas.toml");
    std::fs::write(&config, "listen = 8081\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_custos-cas"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cas.toml") && stderr.contains("listen"),
        "{stderr}"
    );
}
