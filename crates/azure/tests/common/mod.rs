//! Shared test setup: an emulator on loopback ports chosen by the kernel, and clients that
//! trust only its CA.

#![allow(dead_code)]

pub mod replay;

use std::time::Duration;

use custos_azure::{AzureCredential, CredentialOptions, CredentialSpec, HttpOptions};
use custos_azure_emulator::config::{
    ApplicationConfig, CertificateConfig, SecretContentType, TenantConfig,
};
use custos_azure_emulator::{Config, Running, demo};
use secrecy::SecretString;

pub const TENANT: &str = demo::TENANT_ID;
pub const CLIENT: &str = demo::CLIENT_ID;

/// The demo's data plus a PKCS#12 certificate and, optionally, an app with certificates.
pub fn config(extra_app: Option<ApplicationConfig>) -> (Config, String) {
    let (mut config, secret) = demo::config();
    config.keyvault.certificates.push(CertificateConfig {
        name: "flask-pfx".into(),
        common_name: Some("pfx.scone.sample".into()),
        dns_names: vec!["pfx.scone.sample".into()],
        validity_days: 30,
        content_type: SecretContentType::Pkcs12,
        import: None,
    });
    if let Some(app) = extra_app {
        config.entra.tenants[0].applications.push(app);
    }
    (config, secret)
}

pub async fn start(config: Config) -> Running {
    custos_azure_emulator::start(config)
        .await
        .expect("the emulator starts")
}

/// Quick retries so that tests of retry behaviour stay fast.
pub fn http(running: &Running) -> HttpOptions {
    HttpOptions {
        initial_retry_delay: Duration::from_millis(20),
        max_retry_delay: Duration::from_millis(200),
        ..HttpOptions::trusting_only_pem(running.ca_pem().as_bytes()).unwrap()
    }
}

pub fn credential_options(running: &Running) -> CredentialOptions {
    CredentialOptions {
        authority_host: running.urls().authority_host.clone(),
        http: http(running),
    }
}

pub fn secret_credential(running: &Running, secret: &str) -> AzureCredential {
    AzureCredential::new(
        CredentialSpec::ClientSecret {
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            secret: SecretString::from(secret.to_owned()),
        },
        &credential_options(running),
    )
    .unwrap()
}

pub fn tenant(id: &str, apps: Vec<ApplicationConfig>) -> TenantConfig {
    TenantConfig {
        id: id.into(),
        applications: apps,
    }
}
