//! Entra ID credentials against the emulator: certificate assertions (PS256 + x5t#S256,
//! RS256 + x5t), workload identity, and the token cache.

mod common;

use std::sync::Arc;

use custos_azure::{
    AssertionAlgorithm, AzureCredential, ClientCertificate, CredentialSpec, KEY_VAULT_SCOPE,
    KeyVault,
};
use custos_azure_emulator::config::{ApplicationConfig, FederatedCredentialConfig, PemSource};
use custos_azure_emulator::demo;
use rustls_pki_types::pem::PemObject;
use secrecy::{ExposeSecret, SecretString};

const CERT_APP: &str = "5d1c9a7e-3f2b-4e8d-9c6a-b1e2f3a4c5d6";

fn rsa_certificate(cn: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec![cn.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

fn cert_app(cert_pem: &str) -> ApplicationConfig {
    ApplicationConfig {
        client_id: CERT_APP.into(),
        display_name: None,
        client_secrets: Vec::new(),
        certificates: vec![PemSource::Pem(cert_pem.to_owned())],
        federated_credentials: Vec::new(),
    }
}

fn certificate_credential(
    running: &custos_azure_emulator::Running,
    cert: &(String, String),
    algorithm: AssertionAlgorithm,
) -> AzureCredential {
    let certificate = ClientCertificate::from_pem(cert.0.as_bytes(), cert.1.as_bytes()).unwrap();
    AzureCredential::new(
        CredentialSpec::ClientCertificate {
            tenant_id: common::TENANT.into(),
            client_id: CERT_APP.into(),
            certificate,
            algorithm,
        },
        &common::credential_options(running),
    )
    .unwrap()
}

#[tokio::test]
async fn certificate_assertions_ps256_and_rs256_get_tokens() {
    let registered = rsa_certificate("custos-client");
    let (config, _) = common::config(Some(cert_app(&registered.0)));
    let running = common::start(config).await;

    for algorithm in [AssertionAlgorithm::Ps256, AssertionAlgorithm::Rs256] {
        let credential = certificate_credential(&running, &registered, algorithm);
        let token = credential.token(KEY_VAULT_SCOPE).await.unwrap();
        assert_eq!(token.token.expose_secret().split('.').count(), 3);
        let vault =
            KeyVault::new(&running.urls().vault, &credential, &common::http(&running)).unwrap();
        let secret = vault.get_secret(demo::SECRET_NAME, None).await.unwrap();
        assert_eq!(secret.value.expose_secret(), demo::SECRET_VALUE);
    }

    // A certificate the app registration does not know.
    let stranger = rsa_certificate("stranger");
    let credential = certificate_credential(&running, &stranger, AssertionAlgorithm::Ps256);
    let err = credential
        .token(KEY_VAULT_SCOPE)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("AADSTS700027"), "{err}");
    assert!(
        err.starts_with(&format!(
            "client certificate credential for client {CERT_APP}: no token for {KEY_VAULT_SCOPE}: "
        )),
        "{err}"
    );
}

#[test]
fn certificate_and_key_must_match() {
    let a = rsa_certificate("a");
    let b = rsa_certificate("b");
    let err = ClientCertificate::from_pem(a.0.as_bytes(), b.1.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the private key does not match the certificate's public key"
    );
    let ec = rcgen::KeyPair::generate().unwrap();
    let err =
        ClientCertificate::from_pem(a.0.as_bytes(), ec.serialize_pem().as_bytes()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("private key: not a usable RSA key"),
        "{err}"
    );
    let cert = ClientCertificate::from_pem(a.0.as_bytes(), a.1.as_bytes()).unwrap();
    assert_eq!(cert.sha1_thumbprint_hex().len(), 40);
    assert!(!format!("{cert:?}").contains("PRIVATE"));
}

#[tokio::test]
async fn workload_identity_exchanges_a_federated_token() {
    let issuer_key = rsa_certificate("oidc-issuer");
    let issuer = "https://oidc.cluster.example/serviceaccount";
    let app = ApplicationConfig {
        client_id: CERT_APP.into(),
        display_name: None,
        client_secrets: Vec::new(),
        certificates: Vec::new(),
        federated_credentials: vec![FederatedCredentialConfig {
            issuer: issuer.into(),
            subject: issuer.into(),
            audiences: vec!["api://AzureADTokenExchange".into()],
            key: PemSource::Pem(issuer_key.0.clone()),
        }],
    };
    let (config, _) = common::config(Some(app));
    let running = common::start(config).await;

    // A projected service-account token: iss = sub = the issuer here, aud = the exchange audience.
    let signer =
        ClientCertificate::from_pem(issuer_key.0.as_bytes(), issuer_key.1.as_bytes()).unwrap();
    let federated = signer
        .sign_assertion(
            issuer,
            "api://AzureADTokenExchange",
            AssertionAlgorithm::Rs256,
            std::time::SystemTime::now(),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &federated).unwrap();

    let credential = AzureCredential::new(
        CredentialSpec::WorkloadIdentity {
            tenant_id: common::TENANT.into(),
            client_id: CERT_APP.into(),
            token_file,
        },
        &common::credential_options(&running),
    )
    .unwrap();
    credential.token(KEY_VAULT_SCOPE).await.unwrap();

    // A token for another audience is refused.
    let wrong = signer
        .sign_assertion(
            issuer,
            "api://SomethingElse",
            AssertionAlgorithm::Rs256,
            std::time::SystemTime::now(),
        )
        .unwrap();
    let wrong_file = dir.path().join("wrong");
    std::fs::write(&wrong_file, &wrong).unwrap();
    let credential = AzureCredential::new(
        CredentialSpec::WorkloadIdentity {
            tenant_id: common::TENANT.into(),
            client_id: CERT_APP.into(),
            token_file: wrong_file,
        },
        &common::credential_options(&running),
    )
    .unwrap();
    let err = credential
        .token(KEY_VAULT_SCOPE)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("AADSTS70021"), "{err}");
}

#[tokio::test]
async fn one_token_request_for_a_thousand_concurrent_then_serial_reads() {
    let (config, secret) = common::config(None);
    let running = common::start(config).await;
    let credential = common::secret_credential(&running, &secret);
    let vault = Arc::new(
        KeyVault::new(&running.urls().vault, &credential, &common::http(&running)).unwrap(),
    );

    let reads: Vec<_> = (0..1000)
        .map(|_| {
            let vault = vault.clone();
            tokio::spawn(async move {
                vault
                    .get_secret(demo::SECRET_NAME, None)
                    .await
                    .map(|s| s.id)
            })
        })
        .collect();
    for read in reads {
        read.await.unwrap().unwrap();
    }
    for _ in 0..1000 {
        vault.get_secret(demo::SECRET_NAME, None).await.unwrap();
    }
    let stats = running.stats();
    assert_eq!(stats.token_requests, 1, "{stats:?}");
    assert_eq!(stats.keyvault_reads, 2000);

    // And a thousand concurrent token requests on a fresh credential: one request.
    let credential = Arc::new(common::secret_credential(&running, &secret));
    let gets: Vec<_> = (0..1000)
        .map(|_| {
            let credential = credential.clone();
            tokio::spawn(async move { credential.token(KEY_VAULT_SCOPE).await.map(drop) })
        })
        .collect();
    for get in gets {
        get.await.unwrap().unwrap();
    }
    assert_eq!(running.stats().token_requests, 2);
}

#[test]
fn debug_output_holds_no_secret() {
    let spec = CredentialSpec::ClientSecret {
        tenant_id: "t".into(),
        client_id: "c".into(),
        secret: SecretString::from("hunter2".to_owned()),
    };
    assert!(!format!("{spec:?}").contains("hunter2"));
}

#[tokio::test]
async fn pfx_client_certificates_and_assertion_checks() {
    let registered = rsa_certificate("custos-client");
    let (config, _) = common::config(Some(cert_app(&registered.0)));
    let running = common::start(config).await;

    // The same certificate and key as a password-protected PFX.
    let cert_der =
        rustls_pki_types::CertificateDer::from_pem_slice(registered.0.as_bytes()).unwrap();
    let key_der =
        rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(registered.1.as_bytes()).unwrap();
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "client",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            &[1u8; 20][..],
            p12_keystore::PrivateKey::from_der(key_der.secret_pkcs8_der()).unwrap(),
            [p12_keystore::Certificate::from_der(&cert_der).unwrap()],
        )),
    );
    let pfx = store.writer("pfx-password").write().unwrap();
    let password = SecretString::from("pfx-password".to_owned());
    let certificate = ClientCertificate::from_pkcs12(&pfx, &password).unwrap();
    let credential = AzureCredential::new(
        CredentialSpec::ClientCertificate {
            tenant_id: common::TENANT.into(),
            client_id: CERT_APP.into(),
            certificate,
            algorithm: AssertionAlgorithm::Ps256,
        },
        &common::credential_options(&running),
    )
    .unwrap();
    credential.token(KEY_VAULT_SCOPE).await.unwrap();
    let wrong = SecretString::from("not-it".to_owned());
    assert!(ClientCertificate::from_pkcs12(&pfx, &wrong).is_err());

    // The emulator checks the assertion's time range and audience.
    let signer =
        ClientCertificate::from_pem(registered.0.as_bytes(), registered.1.as_bytes()).unwrap();
    let endpoint = format!(
        "{}/{}/oauth2/v2.0/token",
        running.urls().authority_host,
        common::TENANT
    );
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let http = common::http(&running).reqwest_client().unwrap();
    for (assertion, code) in [
        (
            signer
                .sign_assertion(CERT_APP, &endpoint, AssertionAlgorithm::Ps256, an_hour_ago)
                .unwrap(),
            700024,
        ),
        (
            signer
                .sign_assertion(
                    CERT_APP,
                    "https://login.microsoftonline.com/x/oauth2/v2.0/token",
                    AssertionAlgorithm::Rs256,
                    std::time::SystemTime::now(),
                )
                .unwrap(),
            700212,
        ),
    ] {
        let body = format!(
            "grant_type=client_credentials&client_id={CERT_APP}&scope=https%3A%2F%2Fvault.azure.net%2F.default&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
        );
        let answer: serde_json::Value = http
            .post(&endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["error_codes"][0], code, "{answer}");
    }
}
