//! Managed identity through App Service's endpoint protocol (`IDENTITY_ENDPOINT` +
//! `IDENTITY_HEADER`), served by the emulator. The SDK reads those variables from the process
//! environment, so the credential runs in a child process of this test with them set.

mod common;

use custos_azure::{AzureCredential, CredentialSpec, KeyVault};
use custos_azure_emulator::config::ManagedIdentityConfig;
use custos_azure_emulator::demo;
use secrecy::ExposeSecret;

const TEST: &str = "a_managed_identity_reads_the_vault";

#[tokio::test]
async fn a_managed_identity_reads_the_vault() {
    if let Ok(vault) = std::env::var("CUSTOS_TEST_MI_VAULT") {
        return child(&vault).await;
    }
    let (mut config, _) = common::config(None);
    config.entra.managed_identity = Some(ManagedIdentityConfig {
        tenant: common::TENANT.into(),
        client_id: common::CLIENT.into(),
        identity_header: "host-secret".into(),
    });
    let running = common::start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, running.ca_pem()).unwrap();

    let run = |header: &'static str| {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env(
                "IDENTITY_ENDPOINT",
                format!("{}/msi/token", running.urls().authority_host),
            )
            .env("IDENTITY_HEADER", header)
            .env("CUSTOS_TEST_MI_VAULT", &running.urls().vault)
            .env("CUSTOS_TEST_MI_CA", &ca);
        tokio::task::spawn_blocking(move || command.output().unwrap())
    };
    let output = run("host-secret").await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(running.stats().tokens_issued, 1);

    let output = run("wrong").await.unwrap();
    assert!(!output.status.success());
    assert_eq!(running.stats().tokens_issued, 1);
}

async fn child(vault: &str) {
    let ca = std::fs::read(std::env::var("CUSTOS_TEST_MI_CA").unwrap()).unwrap();
    let http = custos_azure::HttpOptions::trusting_only_pem(&ca).unwrap();
    let options = custos_azure::CredentialOptions {
        authority_host: "https://unused.invalid".into(),
        http: http.clone(),
    };
    let credential = AzureCredential::new(
        CredentialSpec::ManagedIdentity {
            client_id: Some(common::CLIENT.into()),
        },
        &options,
    )
    .unwrap();
    let vault = KeyVault::new(vault, &credential, &http).unwrap();
    let secret = vault.get_secret(demo::SECRET_NAME, None).await.unwrap();
    assert_eq!(secret.value.expose_secret(), demo::SECRET_VALUE);
}
