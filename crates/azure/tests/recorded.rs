//! The client against replays of real Azure responses (`tests/data`, see PROVENANCE.md):
//! Key Vault's 401 challenge, Entra ID's token bodies, secrets, and certificates' secrets in
//! PEM and PKCS#12 (password-less PFX).

mod common;

use std::time::Duration;

use common::replay::{self, Recorded, Script};
use custos_azure::{
    AzureCredential, CredentialOptions, CredentialSpec, HttpOptions, KeyVault, KeyVaultError,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

// The recording sanitized the tenant to `azure_tenant_id`, which the SDK refuses (`_`).
const TENANT: &str = "azure-tenant-id";

fn data(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The recorded calls of a C++ SDK recording whose URL ends with `suffix`.
fn cpp_record(file: &str, method: &str, suffix: &str) -> Recorded {
    let recording = data(file);
    let call = recording["networkCallRecords"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Method"] == method && c["Url"].as_str().unwrap().ends_with(suffix))
        .unwrap_or_else(|| panic!("{file}: no {method} …{suffix}"));
    Recorded::from_cpp_record(&call["Response"])
}

/// Key Vault's recorded challenge, Entra's recorded token answer, and the given routes.
fn vault_script(token: Recorded, routes: Vec<(&str, &str, Recorded)>) -> Script {
    let flow = data("challenge_flow.json");
    let step1 = &flow["step1_unauthenticated_request"];
    let mut challenge = Recorded::json(401, &step1["response_body"]);
    for (name, value) in step1["response_headers"].as_object().unwrap() {
        if name != "Content-Length" {
            challenge
                .headers
                .push((name.clone(), value.as_str().unwrap().to_owned()));
        }
    }
    challenge.headers.retain(|(n, _)| n != "content-type");
    let mut script = Script {
        challenge: Some((vec!["/secrets".into()], challenge)),
        bearer: Some("Bearer access_token".into()),
        ..Script::default()
    };
    script.routes.insert(
        ("POST".into(), format!("/{TENANT}/oauth2/v2.0/token")),
        token,
    );
    for (method, path, recorded) in routes {
        script.routes.insert((method.into(), path.into()), recorded);
    }
    script
}

fn recorded_token() -> Recorded {
    let flow = data("challenge_flow.json");
    let step2 = &flow["step2_token_request"];
    Recorded::json(200, &step2["response_body"])
}

async fn vault_for(server: &replay::ReplayServer) -> KeyVault {
    let http = HttpOptions {
        initial_retry_delay: Duration::from_millis(10),
        ..HttpOptions::trusting_only_pem(server.ca_pem.as_bytes()).unwrap()
    };
    let credential = AzureCredential::new(
        CredentialSpec::ClientSecret {
            tenant_id: TENANT.into(),
            client_id: "azure_client_id".into(),
            secret: SecretString::from("azure_client_secret".to_owned()),
        },
        &CredentialOptions {
            authority_host: server.url(),
            http: http.clone(),
        },
    )
    .unwrap();
    KeyVault::new(&format!("{}/", server.url()), &credential, &http).unwrap()
}

#[tokio::test]
async fn challenge_token_and_secret_as_recorded() {
    let secret = cpp_record(
        "KeyVaultSecretClientTest.FirstCreateTest.json",
        "GET",
        "/secrets/FirstCreateTest?api-version=7.3",
    );
    let server = replay::start(vault_script(
        recorded_token(),
        vec![("GET", "/secrets/FirstCreateTest", secret)],
    ))
    .await;
    let vault = vault_for(&server).await;

    let got = vault.get_secret("FirstCreateTest", None).await.unwrap();
    assert_eq!(got.value.expose_secret(), "secretValue");
    assert_eq!(
        got.id,
        "https://REDACTED.vault.azure.net/secrets/FirstCreateTest/56aac59e2d59404abf1c2a6bd5e790e1"
    );

    // The SDK's flow: unauthenticated try, token request for the challenge's resource, retry.
    let seen = server.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[0].1.starts_with("/secrets/FirstCreateTest"));
    assert_eq!(seen[1].1, format!("/{TENANT}/oauth2/v2.0/token"));
    let form = url_form(&seen[1].2);
    assert_eq!(form["scope"], "https://vault.azure.net/.default");
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], "azure_client_id");
    assert_eq!(seen[2].1, seen[0].1);

    // Later reads reuse the token.
    vault.get_secret("FirstCreateTest", None).await.unwrap();
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn certificates_from_recorded_pem_and_pkcs12_secrets() {
    let pem_version = "69ad57e677ba4c0597052df3142ed747";
    let pfx_version = "53f7dd3711364168882b48026cb30f80";
    let pem = cpp_record(
        "KeyVaultCertificateClientTest.DownloadImportPem.json",
        "GET",
        &format!("/secrets/DownloadImportPem/{pem_version}?api-version=7.3"),
    );
    let pfx = cpp_record(
        "KeyVaultCertificateClientTest.DownloadImportPkcs.json",
        "GET",
        &format!("/secrets/DownloadImportPkcs/{pfx_version}?api-version=7.3"),
    );
    let pem_cert = cpp_record(
        "KeyVaultCertificateClientTest.DownloadImportPem.json",
        "GET",
        "/certificates/DownloadImportPem?api-version=7.3",
    );
    let pfx_cert = cpp_record(
        "KeyVaultCertificateClientTest.DownloadImportPkcs.json",
        "GET",
        "/certificates/DownloadImportPkcs?api-version=7.3",
    );
    let server = replay::start(vault_script(
        recorded_token(),
        vec![
            (
                "GET",
                &format!("/secrets/DownloadImportPem/{pem_version}"),
                pem,
            ),
            (
                "GET",
                &format!("/secrets/DownloadImportPkcs/{pfx_version}"),
                pfx,
            ),
        ],
    ))
    .await;
    let vault = vault_for(&server).await;

    for (name, version, cert_record, content_type) in [
        (
            "DownloadImportPem",
            pem_version,
            pem_cert,
            "application/x-pem-file",
        ),
        (
            "DownloadImportPkcs",
            pfx_version,
            pfx_cert,
            "application/x-pkcs12",
        ),
    ] {
        let got = vault.get_certificate(name, Some(version)).await.unwrap();
        assert_eq!(got.content_type, content_type);
        // The leaf is the certificate Key Vault returned as `cer` for the same certificate.
        let cer: Value = serde_json::from_slice(&cert_record.body).unwrap();
        let chain =
            custos_tls::parse_certificates(std::path::Path::new("chain"), got.chain_pem.as_bytes())
                .unwrap();
        use base64::Engine as _;
        let cer = base64::engine::general_purpose::STANDARD
            .decode(cer["cer"].as_str().unwrap())
            .unwrap();
        assert_eq!(chain[0].as_ref(), cer.as_slice(), "{name}");
        assert!(
            got.key_pem
                .expose_secret()
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
    }
}

#[tokio::test]
async fn recorded_errors_are_reported_with_vault_name_status_and_code() {
    let not_found = cpp_record(
        "KeyVaultSecretClientTest.FirstCreateTest.json",
        "GET",
        "/deletedsecrets/FirstCreateTest?api-version=7.3",
    );
    assert_eq!(not_found.status, 404);
    let server = replay::start(vault_script(
        recorded_token(),
        vec![("GET", "/secrets/gone", not_found)],
    ))
    .await;
    let vault = vault_for(&server).await;
    let err = vault.get_secret("gone", None).await.unwrap_err();
    let KeyVaultError::Service {
        status,
        code,
        message,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (*status, code.as_deref(), message.as_str()),
        (
            404,
            Some("SecretNotFound"),
            "Deleted Secret not found: FirstCreateTest"
        )
    );
    assert_eq!(
        err.to_string(),
        format!(
            "vault {}/: secret \"gone\": HTTP 404 SecretNotFound: Deleted Secret not found: FirstCreateTest",
            server.url()
        )
    );

    // Entra's recorded invalid_client answer.
    let tokens = data("token_responses.json");
    let refused = Recorded::json(401, &tokens["error_invalid_client_secret"]["body"]);
    let server = replay::start(vault_script(refused, vec![])).await;
    let vault = vault_for(&server).await;
    let err = vault
        .get_secret("anything", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("AADSTS7000215: Invalid client secret is provided."),
        "{err}"
    );
    assert!(!err.contains("azure_client_secret"), "{err}");
}

fn url_form(body: &[u8]) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}
