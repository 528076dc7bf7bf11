//! The demo's Azure: one tenant with one app registration (client secret), a vault holding
//! the secret `sample-secret` and the certificate `flask` for `rest-api.scone.sample` (PEM),
//! as the SCONE sample's README sets them up in a real subscription.

use crate::config::{
    ApplicationConfig, CertificateConfig, Config, SecretConfig, SecretContentType, TenantConfig,
};

/// The demo tenant.
pub const TENANT_ID: &str = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f";
/// The demo app registration.
pub const CLIENT_ID: &str = "0b6d2f4a-9c8e-4d1f-a2b3-c4d5e6f7a8b9";
/// The secret the sample reads.
pub const SECRET_NAME: &str = "sample-secret";
/// Its value (from the design's demo description).
pub const SECRET_VALUE: &str = "a13f688c788626380ae1209e31e664891fc19dcdd0cfa29c27ca7e6e16b83a95";
/// The certificate the sample serves HTTPS with.
pub const CERT_NAME: &str = "flask";
/// Its common name and DNS name.
pub const CERT_COMMON_NAME: &str = "rest-api.scone.sample";

/// The demo configuration with a fresh client secret; returns it with the secret.
pub fn config() -> (Config, String) {
    let client_secret = format!("demo~{}", crate::http::random_hex(16));
    let mut config = Config::default();
    config.entra.tenants = vec![TenantConfig {
        id: TENANT_ID.into(),
        applications: vec![ApplicationConfig {
            client_id: CLIENT_ID.into(),
            display_name: Some("custos-demo".into()),
            client_secrets: vec![client_secret.clone()],
            certificates: Vec::new(),
            federated_credentials: Vec::new(),
        }],
    }];
    config.keyvault.secrets = vec![SecretConfig {
        name: SECRET_NAME.into(),
        value: SECRET_VALUE.into(),
        content_type: None,
    }];
    config.keyvault.certificates = vec![CertificateConfig {
        name: CERT_NAME.into(),
        common_name: Some(CERT_COMMON_NAME.into()),
        dns_names: vec![CERT_COMMON_NAME.into()],
        validity_days: 365,
        content_type: SecretContentType::Pem,
        import: None,
    }];
    (config, client_secret)
}

/// What a client needs, as environment variables (the names of the SCONE sample's README):
/// with `demo_secret`, the demo's tenant, app, secret and object names too.
pub fn client_env(
    running: &crate::Running,
    demo_secret: Option<&str>,
) -> Vec<(&'static str, String)> {
    let urls = running.urls();
    let ca = running
        .ca_file()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut vars = Vec::new();
    if let Some(secret) = demo_secret {
        vars.push(("AZURE_TENANT_ID", TENANT_ID.to_owned()));
        vars.push(("AZURE_CLIENT_ID", CLIENT_ID.to_owned()));
        vars.push(("AZURE_CLIENT_SECRET", secret.to_owned()));
    }
    vars.push(("AZURE_AUTHORITY_HOST", urls.authority_host.clone()));
    vars.push(("AKV_VAULT", format!("{}/", urls.vault)));
    if demo_secret.is_some() {
        vars.push(("AKV_SECRET_NAME", SECRET_NAME.to_owned()));
        vars.push(("AKV_CERT_SECRET_NAME", CERT_NAME.to_owned()));
    }
    vars.push(("AZURE_MANAGEDHSM_URL", format!("{}/", urls.managed_hsm)));
    vars.push(("MAA_PROVIDER", urls.maa.clone()));
    vars.push(("SSL_CERT_FILE", ca.clone()));
    vars.push(("REQUESTS_CA_BUNDLE", ca));
    vars
}
