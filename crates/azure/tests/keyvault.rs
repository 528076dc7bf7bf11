//! Key Vault through the Azure SDK against the emulator over real HTTPS on loopback.

mod common;

use std::time::{Duration, Instant};

use custos_azure::{HttpOptions, KeyVault, KeyVaultError};
use custos_azure_emulator::config::{FaultRule, Service};
use custos_azure_emulator::demo;
use secrecy::ExposeSecret;

#[tokio::test]
async fn reads_secrets_and_certificates_with_keys() {
    let (config, secret) = common::config(None);
    let running = common::start(config).await;
    let credential = common::secret_credential(&running, &secret);
    let vault = KeyVault::new(&running.urls().vault, &credential, &common::http(&running)).unwrap();

    let value = vault.get_secret(demo::SECRET_NAME, None).await.unwrap();
    assert_eq!(value.value.expose_secret(), demo::SECRET_VALUE);
    let version = value.id.rsplit('/').next().unwrap().to_owned();
    let same = vault
        .get_secret(demo::SECRET_NAME, Some(&version))
        .await
        .unwrap();
    assert_eq!(same.id, value.id);

    for (name, content_type, cn) in [
        ("flask", "application/x-pem-file", "rest-api.scone.sample"),
        ("flask-pfx", "application/x-pkcs12", "pfx.scone.sample"),
    ] {
        let cert = vault.get_certificate(name, None).await.unwrap();
        assert_eq!(cert.content_type, content_type);
        assert!(cert.chain_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(
            cert.key_pem
                .expose_secret()
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
        // The TLS stack accepts the pair as a server identity (it checks that they match).
        let chain =
            custos_tls::parse_certificates(std::path::Path::new("c"), cert.chain_pem.as_bytes())
                .unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        assert_eq!(leaf.subject().to_string(), format!("CN={cn}"));
    }
    assert_eq!(running.stats().tokens_issued, 1);
}

#[tokio::test]
async fn errors_name_vault_object_status_and_code() {
    let (config, secret) = common::config(None);
    let running = common::start(config).await;
    let credential = common::secret_credential(&running, &secret);
    let vault = KeyVault::new(&running.urls().vault, &credential, &common::http(&running)).unwrap();

    let err = vault.get_secret("missing", None).await.unwrap_err();
    let KeyVaultError::Service { status, code, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((*status, code.as_deref()), (404, Some("SecretNotFound")));
    let text = err.to_string();
    assert!(text.starts_with(&format!("vault {}/: secret \"missing\": HTTP 404 SecretNotFound: A secret with (name/id) missing was not found", running.urls().vault)), "{text}");

    let requests = running.stats().keyvault_requests;
    let err = vault.get_secret("no_underscores", None).await.unwrap_err();
    assert!(matches!(err, KeyVaultError::InvalidName { .. }), "{err}");
    assert_eq!(
        running.stats().keyvault_requests,
        requests,
        "refused before any request"
    );

    // A secret that is not a certificate.
    let err = vault
        .get_certificate(demo::SECRET_NAME, None)
        .await
        .unwrap_err();
    assert!(err.to_string().ends_with("content type \"\" is not a certificate (expected application/x-pem-file or application/x-pkcs12)"), "{err}");

    // A wrong client secret: Entra's AADSTS error, without the secret.
    let wrong = common::secret_credential(&running, "not-the-secret");
    let vault = KeyVault::new(&running.urls().vault, &wrong, &common::http(&running)).unwrap();
    let err = vault
        .get_secret(demo::SECRET_NAME, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("AADSTS7000215"), "{err}");
    assert!(!err.contains("not-the-secret"), "{err}");

    assert!(matches!(
        KeyVault::new(
            "http://vault.example/",
            &credential,
            &HttpOptions::default()
        ),
        Err(KeyVaultError::InvalidVault { .. })
    ));
    assert_eq!(
        custos_azure::vault_url("scone-sample.vault.azure.net").unwrap(),
        "https://scone-sample.vault.azure.net/"
    );
}

#[tokio::test]
async fn retries_honour_retry_after_and_back_off_on_5xx() {
    let (config, secret) = common::config(None);
    let running = common::start(config).await;
    let credential = common::secret_credential(&running, &secret);
    let vault = KeyVault::new(&running.urls().vault, &credential, &common::http(&running)).unwrap();
    vault.get_secret(demo::SECRET_NAME, None).await.unwrap();

    let rule = |status, retry_after_secs, times| FaultRule {
        service: Service::Keyvault,
        path: "/secrets/sample-secret".into(),
        method: Some("GET".into()),
        status: Some(status),
        retry_after_secs,
        latency_ms: None,
        times: Some(times),
    };
    running.set_faults(vec![rule(429, Some(1), 2)]);
    let started = Instant::now();
    vault.get_secret(demo::SECRET_NAME, None).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "two Retry-After: 1 waits, took {waited:?}"
    );
    assert_eq!(running.stats().injected_faults, 2);

    running.set_faults(vec![rule(503, None, 3)]);
    vault.get_secret(demo::SECRET_NAME, None).await.unwrap();
    assert_eq!(running.stats().injected_faults, 5);

    // More failures than retries: the last status is reported.
    running.set_faults(vec![rule(500, None, 100)]);
    let err = vault.get_secret(demo::SECRET_NAME, None).await.unwrap_err();
    assert!(
        matches!(err, KeyVaultError::Service { status: 500, .. }),
        "{err}"
    );
    assert_eq!(
        running.stats().injected_faults,
        5 + 5,
        "one try and four retries"
    );
}

#[tokio::test]
async fn timeouts_are_bounded() {
    let (config, secret) = common::config(None);
    let running = common::start(config).await;
    let http = HttpOptions {
        timeout: Duration::from_millis(300),
        max_retries: 1,
        ..common::http(&running)
    };
    let credential = common::secret_credential(&running, &secret);
    let vault = KeyVault::new(&running.urls().vault, &credential, &http).unwrap();
    vault.get_secret(demo::SECRET_NAME, None).await.unwrap();
    running.set_faults(vec![FaultRule {
        service: Service::Keyvault,
        path: "/".into(),
        method: None,
        status: None,
        retry_after_secs: None,
        latency_ms: Some(5_000),
        times: None,
    }]);
    let started = Instant::now();
    let err = vault.get_secret(demo::SECRET_NAME, None).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, KeyVaultError::Request { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("timed out"),
        "{err}"
    );
}

#[tokio::test]
async fn an_untrusted_vault_is_refused() {
    let (config, secret) = common::config(None);
    let running = common::start(config).await;
    let other_ca = custos_azure_emulator::pki::Ca::generate().unwrap();
    let trust = HttpOptions::trusting_only_pem(other_ca.pem().as_bytes())
        .unwrap()
        .trust;
    let http = HttpOptions {
        trust,
        ..common::http(&running)
    };
    let credential = common::secret_credential(&running, &secret);
    let vault = KeyVault::new(&running.urls().vault, &credential, &http).unwrap();
    let err = vault.get_secret(demo::SECRET_NAME, None).await.unwrap_err();
    assert!(matches!(err, KeyVaultError::Request { .. }), "{err}");
    assert_eq!(running.stats().keyvault_requests, 0);
}
