//! The emulator over real HTTPS on loopback, spoken to with a plain HTTP client, checked
//! against the wire facts recorded from the real services (`tests/data/PROVENANCE.md`).

use std::time::Duration;

use custos_azure_emulator::config::{FaultRule, Service};
use custos_azure_emulator::{Config, Running, demo};
use serde_json::Value;

const VAULT_SCOPE: &str = "https://vault.azure.net/.default";

async fn start_demo() -> (Running, String, reqwest::Client) {
    let (config, secret) = demo::config();
    let running = custos_azure_emulator::start(config)
        .await
        .expect("emulator starts");
    let ca = reqwest::Certificate::from_pem(running.ca_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    (running, secret, http)
}

async fn token(running: &Running, http: &reqwest::Client, form: &[(&str, &str)]) -> (u16, Value) {
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        running.urls().authority_host,
        demo::TENANT_ID
    );
    let response = http.post(url).form(form).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn secret_token(running: &Running, http: &reqwest::Client, secret: &str) -> String {
    let (status, body) = token(
        running,
        http,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", demo::CLIENT_ID),
            ("client_secret", secret),
            ("scope", VAULT_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn token_endpoint_issues_tokens_and_aadsts_errors() {
    let (running, secret, http) = start_demo().await;
    let (status, body) = token(
        &running,
        &http,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", demo::CLIENT_ID),
            ("client_secret", &secret),
            ("scope", VAULT_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, 200);
    // The shape of Entra's success body (recorded token_responses.json).
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    let claims = jwt_payload(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://vault.azure.net");
    assert_eq!(claims["appid"], demo::CLIENT_ID);
    assert_eq!(claims["tid"], demo::TENANT_ID);

    let (status, body) = token(
        &running,
        &http,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", demo::CLIENT_ID),
            ("client_secret", "wrong"),
            ("scope", VAULT_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"][0], 7000215);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215: ")
    );
    assert!(
        !body.to_string().contains("wrong"),
        "the presented secret is never echoed"
    );

    let (status, body) = token(
        &running,
        &http,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", demo::CLIENT_ID),
            ("client_secret", &secret),
            ("scope", "https://vault.azure.net/secrets.read"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    let (status, body) = token(
        &running,
        &http,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "unknown-app"),
            ("client_secret", &secret),
            ("scope", VAULT_SCOPE),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (400, Some(700016))
    );

    let stats = running.stats();
    assert_eq!((stats.token_requests, stats.tokens_issued), (4, 1));
}

#[tokio::test]
async fn keyvault_challenge_is_exactly_the_real_one() {
    let (running, _, http) = start_demo().await;
    let url = format!(
        "{}/secrets/sample-secret?api-version=7.3",
        running.urls().vault
    );
    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    // Recorded: Bearer authorization="https://login.windows.net/<tenant>", resource="https://vault.azure.net"
    let recorded: Value = serde_json::from_str(include_str!("data/challenge_flow.json")).unwrap();
    let recorded_challenge =
        recorded["step1_unauthenticated_request"]["response_headers"]["WWW-Authenticate"]
            .as_str()
            .unwrap()
            .replace(
                "https://login.windows.net/azure_tenant_id",
                &format!("{}/{}", running.urls().authority_host, demo::TENANT_ID),
            );
    assert_eq!(challenge, recorded_challenge);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Unauthorized");
    assert_eq!(
        body["error"]["message"],
        "AKV10000: Request is missing a Bearer or PoP token."
    );
}

#[tokio::test]
async fn keyvault_serves_secrets_and_certificates_with_real_shapes() {
    let (running, secret, http) = start_demo().await;
    let bearer = secret_token(&running, &http, &secret).await;
    let vault = &running.urls().vault;
    let get = |path: &str| {
        http.get(format!("{vault}{path}"))
            .bearer_auth(&bearer)
            .send()
    };

    let response = get("/secrets/sample-secret?api-version=7.3").await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["value"], demo::SECRET_VALUE);
    let id = body["id"].as_str().unwrap();
    let version = id
        .strip_prefix(&format!("{vault}/secrets/sample-secret/"))
        .unwrap();
    assert_eq!(version.len(), 32);
    assert_eq!(body["attributes"]["recoveryLevel"], "Recoverable+Purgeable");

    // A version, and the SDKs' empty-version form with a trailing slash.
    for path in [
        format!("/secrets/sample-secret/{version}?api-version=7.3"),
        "/secrets/sample-secret/?api-version=7.3".into(),
    ] {
        let body: Value = get(&path).await.unwrap().json().await.unwrap();
        assert_eq!(body["id"], id, "{path}");
    }

    let response = get("/secrets/missing?api-version=7.3").await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "SecretNotFound");

    let response = get("/secrets/sample-secret").await.unwrap();
    assert_eq!(response.status(), 400, "api-version is required");
    let response = get("/secrets/sample-secret?api-version=1.0").await.unwrap();
    assert_eq!(response.status(), 400);

    // The certificate, and its key through the secret of the same name.
    let cert: Value = get("/certificates/flask?api-version=7.3")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        cert["policy"]["secret_props"]["contentType"],
        "application/x-pem-file"
    );
    assert_eq!(
        cert["policy"]["x509_props"]["subject"],
        "CN=rest-api.scone.sample"
    );
    let sid = cert["sid"].as_str().unwrap();
    let cert_secret: Value = get(&format!(
        "{}?api-version=7.3",
        sid.strip_prefix(vault.as_str()).unwrap()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(cert_secret["contentType"], "application/x-pem-file");
    assert_eq!(cert_secret["kid"], cert["kid"]);
    let pem = cert_secret["value"].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let leaf_b64 = cert["cer"].as_str().unwrap();
    assert!(
        pem.replace('\n', "").contains(leaf_b64),
        "the PEM secret holds the certificate"
    );

    // A token for another resource is refused with the challenge.
    let (_, body) = token(
        &running,
        &http,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", demo::CLIENT_ID),
            ("client_secret", &secret),
            ("scope", "https://attest.azure.net/.default"),
        ],
    )
    .await;
    let other = body["access_token"].as_str().unwrap();
    let response = http
        .get(format!("{vault}/secrets/sample-secret?api-version=7.3"))
        .bearer_auth(other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("AKV10022: Invalid audience")
    );
}

#[tokio::test]
async fn importing_a_certificate_makes_its_new_version_current() {
    let (running, secret, http) = start_demo().await;
    let bearer = secret_token(&running, &http, &secret).await;
    let vault = &running.urls().vault;
    let cer = |body: &Value| body["cer"].as_str().unwrap().to_owned();
    let get = || async {
        let response = http
            .get(format!("{vault}/certificates/flask?api-version=7.4"))
            .bearer_auth(&bearer)
            .send()
            .await
            .unwrap();
        response.json::<Value>().await.unwrap()
    };
    let before = get().await;
    let import = |body: Value| {
        http.post(format!("{vault}/certificates/flask/import?api-version=7.4"))
            .bearer_auth(&bearer)
            .json(&body)
            .send()
    };

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["rest-api.scone.sample".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pem = format!("{}{}", key.serialize_pem(), cert.pem());
    let response = import(serde_json::json!({ "value": pem })).await.unwrap();
    assert_eq!(response.status(), 200);
    let imported: Value = response.json().await.unwrap();
    let after = get().await;
    assert_eq!(cer(&after), cer(&imported));
    assert_ne!(
        cer(&after),
        cer(&before),
        "the import is the current version"
    );
    assert_ne!(after["id"], before["id"]);
    // The key travels with it, in the format of the certificate's policy.
    let sid = after["sid"].as_str().unwrap();
    let bundle: Value = http
        .get(format!("{sid}?api-version=7.4"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        bundle["contentType"],
        before["policy"]["secret_props"]["contentType"]
    );
    assert!(
        bundle["value"]
            .as_str()
            .unwrap()
            .contains(&key.serialize_pem().lines().nth(1).unwrap().to_owned())
    );

    for (body, expected) in [
        (serde_json::json!({}), "Property 'value' is required."),
        (
            serde_json::json!({ "value": "TUlJQ..." }),
            "The emulator imports PEM certificates only",
        ),
        (
            serde_json::json!({ "value": cert.pem() }),
            "The certificate could not be imported",
        ),
    ] {
        let response = import(body).await.unwrap();
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(expected), "{message}");
    }
    assert_eq!(
        cer(&get().await),
        cer(&after),
        "a refused import changes nothing"
    );
}

#[tokio::test]
async fn faults_answer_429_with_retry_after_then_stop() {
    let (running, secret, http) = start_demo().await;
    let token = secret_token(&running, &http, &secret).await;
    running.set_faults(vec![FaultRule {
        service: Service::Keyvault,
        path: "/secrets/sample-secret".into(),
        method: Some("GET".into()),
        status: Some(429),
        retry_after_secs: Some(2),
        latency_ms: Some(50),
        times: Some(1),
    }]);
    let url = format!(
        "{}/secrets/sample-secret?api-version=7.3",
        running.urls().vault
    );
    let started = std::time::Instant::now();
    let response = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");
    let response = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(running.stats().injected_faults, 1);

    let stats: Value = http
        .get(format!("{}/_emulator/stats", running.urls().maa))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["keyvault_reads"], 1);
}

#[tokio::test]
async fn configuration_errors_name_the_field() {
    let base = std::path::Path::new(".");
    let err = Config::from_yaml(
        "keyvault:\n  secrets:\n    - name: bad_name\n      value: x\n",
        "cfg.yaml",
        base,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "cfg.yaml: keyvault.secrets[0].name: \"bad_name\" is not a Key Vault object name ([0-9A-Za-z-]{1,127})"
    );
    let err = Config::from_yaml("entra:\n  prot: 1\n", "cfg.yaml", base)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cfg.yaml: ") && err.contains("prot"),
        "{err}"
    );
    let err = Config::from_yaml(
        "faults:\n  - service: keyvault\n    path: /\n    status: 404\n",
        "c",
        base,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(err, "c: faults[0].status: 404 is not 429 or 5xx");
    let err = Config::from_yaml(
        "keyvault:\n  access_policies:\n    - client_id: app\n      keys: [ get, relase ]\n",
        "c",
        base,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "c: keyvault.access_policies[0].keys: unknown permission \"relase\" (one of all, get, "
        ),
        "{err}"
    );
    let err = Config::from_yaml(
        "managed_hsm:\n  role_assignments:\n    - { client_id: app, role: Managed HSM Administrator }\n",
        "c",
        base,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "c: managed_hsm.role_assignments[0].role: unknown role \"Managed HSM Administrator\" (one of Managed HSM Crypto User, Managed HSM Crypto Service Release User, Managed HSM Crypto Auditor)"
    );
}

fn jwt_payload(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_documented_example_configuration_starts() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("emulator.example.yaml");
    let mut config = Config::from_file(&path).unwrap();
    assert_eq!(config.keyvault.certificates[0].name, "flask");
    assert_eq!(config.faults[0].times, Some(3));
    assert!(config.keyvault.access_policies[0].grants("keys", "release"));
    assert!(!config.keyvault.access_policies[0].grants("secrets", "set"));
    assert_eq!(config.managed_hsm.role_assignments.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    config.ca_file = Some(dir.path().join("ca.pem"));
    let running = custos_azure_emulator::start(config).await.unwrap();
    assert!(
        std::fs::read_to_string(dir.path().join("ca.pem"))
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    running.shutdown().await;
}
