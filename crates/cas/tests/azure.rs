//! Azure secrets for sessions, against the Azure emulator (real HTTPS Entra ID and Key Vault,
//! in this process): an `aad-token` from an app's client secret or from a certificate held by
//! an `x509` secret (checked against its thumbprint), Key Vault secrets and certificates read
//! with it, and failures that name the secret and the cause without any value.

use custos_azure_emulator::config::{ApplicationConfig, PemSource};
use custos_azure_emulator::{Running, demo};
use custos_cas::config::AzureSettings;
use custos_cas::enclave::azure::Azure;
use custos_cas::enclave::values::{Resolved, Value, ValueError};
use custos_cas::seal::{MasterKey, Sealer};
use custos_cas::store::Store;
use custos_policy::Session;

const CERT_APP: &str = "2c7e1f3a-5b6d-4e8f-9a0b-1c2d3e4f5a6b";

struct Setup {
    running: Running,
    client_secret: String,
    app_pem: String,
    thumbprint: String,
    store: Store,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let cert = rcgen::CertificateParams::new(vec!["custos-test-app".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let thumbprint = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        cert.der(),
    ));
    let (mut config, client_secret) = demo::config();
    config.entra.tenants[0]
        .applications
        .push(ApplicationConfig {
            client_id: CERT_APP.into(),
            display_name: None,
            client_secrets: Vec::new(),
            certificates: vec![PemSource::Pem(cert.pem())],
            federated_credentials: Vec::new(),
        });
    let dir = tempfile::tempdir().unwrap();
    config.ca_file = Some(dir.path().join("ca.pem"));
    let running = custos_azure_emulator::start(config).await.unwrap();
    let store = Store::open(
        &dir.path().join("cas.redb"),
        Sealer::new(&MasterKey::from_bytes([9; 32])).unwrap(),
    )
    .unwrap();
    Setup {
        running,
        client_secret,
        app_pem: format!("{}{}", cert.pem(), key.serialize_pem()),
        thumbprint,
        store,
        dir,
    }
}

impl Setup {
    fn azure(&self) -> Azure {
        Azure::from_config(&AzureSettings {
            authority_host: self.running.urls().authority_host.clone(),
            ca_files: vec![self.dir.path().join("ca.pem")],
            trust_system_roots: false,
            max_retries: 0,
            ..AzureSettings::default()
        })
        .unwrap()
    }

    /// A session with a certificate credential (`thumbprint`), a client-secret credential
    /// (`client_secret`), and Key Vault imports through each.
    fn session(&self, thumbprint: &str, client_secret: &str) -> Session {
        let vault = &self.running.urls().vault;
        let pem: String = self
            .app_pem
            .lines()
            .map(|l| format!("      {l}\n"))
            .collect();
        let text = format!(
            r#"
name: ns/app
version: "0.3"
security: {{ attestation: {{ mode: none }} }}
secrets:
  - name: APP_CERT
    kind: x509
    value: |
{pem}
  - name: CERT_TOKEN
    kind: aad-token
    tenant_id: {tenant}
    client_id: {CERT_APP}
    private_key: APP_CERT
    certificate_thumbprint: {thumbprint}
  - name: SECRET_TOKEN
    kind: aad-token
    tenant_id: {tenant}
    client_id: {client}
    application_secret: "{client_secret}"
  - name: VIA_CERT
    kind: ascii
    import_akv: {{ vault: "{vault}", secret_name: sample-secret, token: CERT_TOKEN }}
  - name: VIA_SECRET
    kind: ascii
    import_akv: {{ vault: "{vault}", secret_name: sample-secret, token: SECRET_TOKEN }}
  - name: TLS
    kind: x509
    import_akv: {{ vault: "{vault}", secret_name: flask, token: SECRET_TOKEN }}
services:
  - name: app
"#,
            tenant = demo::TENANT_ID,
            client = demo::CLIENT_ID,
        );
        custos_policy::parse("s.yml", &text).unwrap()
    }
}

async fn resolve(
    azure: &Azure,
    session: &Session,
    name: &str,
    store: &Store,
) -> Result<Resolved, ValueError> {
    azure
        .resolve(session, session.secret(name).unwrap(), store)
        .await
}

fn text(resolved: &Resolved) -> String {
    match &resolved.value {
        Value::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_key_vault_values_come_with_either_credential() {
    let s = setup().await;
    let azure = s.azure();
    let session = s.session(&s.thumbprint, &s.client_secret);
    for token in ["CERT_TOKEN", "SECRET_TOKEN"] {
        let jwt = text(&resolve(&azure, &session, token, &s.store).await.unwrap());
        assert_eq!(jwt.split('.').count(), 3, "a JWT");
    }
    for secret in ["VIA_CERT", "VIA_SECRET"] {
        let value = resolve(&azure, &session, secret, &s.store).await.unwrap();
        assert_eq!(text(&value), demo::SECRET_VALUE);
    }
    let tls = resolve(&azure, &session, "TLS", &s.store).await.unwrap();
    let Value::Certificate { chain, key } = &tls.value else {
        panic!("a certificate")
    };
    assert!(chain[0].starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(key.as_ref().unwrap().contains("PRIVATE KEY-----"));

    // Cached: the second read of the same secret costs the vault nothing.
    let reads = s.running.stats().keyvault_reads;
    resolve(&azure, &session, "VIA_SECRET", &s.store)
        .await
        .unwrap();
    assert_eq!(s.running.stats().keyvault_reads, reads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_thumbprint_and_a_wrong_client_secret_are_named() {
    let s = setup().await;
    let azure = s.azure();
    let wrong = "00".repeat(20);
    let session = s.session(&wrong, "not-the-secret");
    let error = resolve(&azure, &session, "VIA_CERT", &s.store)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        format!(
            "secret CERT_TOKEN: certificate_thumbprint: expected {wrong}, actual {}",
            s.thumbprint
        )
    );
    let error = resolve(&azure, &session, "SECRET_TOKEN", &s.store)
        .await
        .unwrap_err();
    assert!(matches!(error, ValueError::Unavailable { .. }));
    let error = error.to_string();
    assert!(
        error.starts_with("secret SECRET_TOKEN: ") && error.contains("AADSTS7000215"),
        "{error}"
    );
    assert!(!error.contains("not-the-secret"));
}
