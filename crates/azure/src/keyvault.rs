//! Azure Key Vault on `azure_security_keyvault_secrets`: secrets, and certificates with their
//! private keys through the secret of the same name (`application/x-pem-file` or
//! `application/x-pkcs12`), as certificate chain PEM and PKCS#8 key PEM.
//!
//! The SDK discovers the tenant and resource from the vault's 401 challenge, retries 429/5xx
//! with back-off (a `Retry-After` header wins) and authorizes with the credential's cached
//! token. Errors name the vault, the object, the HTTP status and Key Vault's error code.

use azure_core::http::ClientOptions;
use azure_security_keyvault_secrets::models::SecretClientGetSecretOptions;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::credential::AzureCredential;
use crate::http::{HttpClientError, HttpOptions};

/// A Key Vault request failed. No variant carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum KeyVaultError {
    /// The vault is not a usable URL or host name.
    #[error("vault {vault:?}: {reason}")]
    InvalidVault {
        /// The vault as given.
        vault: String,
        /// What is wrong.
        reason: String,
    },
    /// The object's name or version is not one Key Vault could hold.
    #[error(
        "vault {vault}: {kind} name {name:?} is not a Key Vault name ([0-9A-Za-z-]{{1,127}}, versions in hex)"
    )]
    InvalidName {
        /// The vault URL.
        vault: String,
        /// `secret` or `certificate`.
        kind: &'static str,
        /// The name (and version) as given.
        name: String,
    },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] HttpClientError),
    /// The vault (or Entra ID, while authorizing) answered with an error.
    #[error("vault {vault}: {kind} {name:?}: HTTP {status}{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Service {
        /// The vault URL.
        vault: String,
        /// `secret` or `certificate`.
        kind: &'static str,
        /// The object's name (and version, if one was asked for).
        name: String,
        /// The HTTP status.
        status: u16,
        /// Key Vault's error code, e.g. `SecretNotFound`, `Forbidden`.
        code: Option<String>,
        /// Key Vault's message.
        message: String,
    },
    /// No answer: connection, TLS, timeout, or a token that could not be had.
    #[error("vault {vault}: {kind} {name:?}: {message}")]
    Request {
        /// The vault URL.
        vault: String,
        /// `secret` or `certificate`.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// The answer could not be used (not a certificate, key missing, key and certificate differ).
    #[error("vault {vault}: {kind} {name:?}: {reason}")]
    Content {
        /// The vault URL.
        vault: String,
        /// `secret` or `certificate`.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// What is wrong, without any of the content.
        reason: String,
    },
}

/// A secret's value and metadata.
pub struct Secret {
    /// The value.
    pub value: SecretString,
    /// Its `contentType`, if set.
    pub content_type: Option<String>,
    /// The secret's full id (`{vault}/secrets/{name}/{version}`).
    pub id: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("id", &self.id)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// A certificate with its private key, read from the secret backing it.
pub struct CertificateWithKey {
    /// The chain, leaf first, as PEM `CERTIFICATE` blocks.
    pub chain_pem: String,
    /// The leaf's private key, PEM `PRIVATE KEY` (PKCS#8).
    pub key_pem: SecretString,
    /// How the vault stored it.
    pub content_type: String,
    /// The secret's full id.
    pub id: String,
}

impl std::fmt::Debug for CertificateWithKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateWithKey")
            .field("id", &self.id)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// A client for one vault.
pub struct KeyVault {
    vault: String,
    client: SecretClient,
}

impl std::fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVault")
            .field("vault", &self.vault)
            .finish_non_exhaustive()
    }
}

/// `https://name.vault.azure.net/` from a URL or a bare host name.
pub fn vault_url(vault: &str) -> Result<String, KeyVaultError> {
    let invalid = |reason: &str| KeyVaultError::InvalidVault {
        vault: vault.to_owned(),
        reason: reason.to_owned(),
    };
    let with_scheme = if vault.contains("://") {
        vault.to_owned()
    } else {
        format!("https://{vault}")
    };
    let url = azure_core::http::Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "https" {
        return Err(invalid("Key Vault is reached over HTTPS only"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(invalid(
            "a vault URL has no path or query (e.g. https://NAME.vault.azure.net/)",
        ));
    }
    Ok(url.to_string())
}

/// Whether the vault runs on this machine (an emulator or a proxy), where the challenge's
/// resource (`https://vault.azure.net`) cannot match the host and is not checked.
fn is_local(url: &str) -> bool {
    let Ok(url) = azure_core::http::Url::parse(url) else {
        return false;
    };
    match url.host_str() {
        Some(host) if host.eq_ignore_ascii_case("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// A Key Vault SDK client (secrets or keys) for `vault` (URL or bare host name), made by
/// `build` from the vault URL, the shared transport options and whether the challenge's
/// resource is checked; the vault URL with it.
pub(crate) fn build_client<C>(
    vault: &str,
    http: &HttpOptions,
    build: impl FnOnce(&str, ClientOptions, bool) -> azure_core::Result<C>,
) -> Result<(String, C), KeyVaultError> {
    let vault = vault_url(vault)?;
    let client = build(&vault, http.client_options()?, !is_local(&vault)).map_err(|e| {
        KeyVaultError::InvalidVault {
            vault: vault.clone(),
            reason: e.to_string(),
        }
    })?;
    Ok((vault, client))
}

impl KeyVault {
    /// A client for `vault` (URL or bare host name) authorized by `credential`.
    pub fn new(
        vault: &str,
        credential: &AzureCredential,
        http: &HttpOptions,
    ) -> Result<Self, KeyVaultError> {
        let (vault, client) = build_client(
            vault,
            http,
            |url, client_options, verify_challenge_resource| {
                let options = SecretClientOptions {
                    client_options,
                    verify_challenge_resource: Some(verify_challenge_resource),
                    ..SecretClientOptions::default()
                };
                SecretClient::new(url, credential.token_credential(), Some(options))
            },
        )?;
        Ok(Self { vault, client })
    }

    /// The vault URL.
    pub fn url(&self) -> &str {
        &self.vault
    }

    /// A secret: the current version, or `version`.
    pub async fn get_secret(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Secret, KeyVaultError> {
        self.fetch("secret", name, version).await
    }

    /// A certificate with its private key, from the secret of the same name.
    pub async fn get_certificate(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<CertificateWithKey, KeyVaultError> {
        let secret = self.fetch("certificate", name, version).await?;
        let content_error = |reason: String| KeyVaultError::Content {
            vault: self.vault.clone(),
            kind: "certificate",
            name: display_name(name, version),
            reason,
        };
        let content_type = secret.content_type.clone().unwrap_or_default();
        let (chain_pem, key_pem) = certificate_from_secret(&content_type, &secret.value)
            .map_err(|e| content_error(e.0))?;
        Ok(CertificateWithKey {
            chain_pem,
            key_pem,
            content_type,
            id: secret.id,
        })
    }

    async fn fetch(
        &self,
        kind: &'static str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Secret, KeyVaultError> {
        check_object_name(&self.vault, kind, name, version)?;
        let options = SecretClientGetSecretOptions {
            secret_version: version.map(str::to_owned),
            ..Default::default()
        };
        let response = self
            .client
            .get_secret(name, Some(options))
            .await
            .map_err(|e| self.error(kind, name, version, e))?;
        let secret = response
            .into_model()
            .map_err(|e| self.error(kind, name, version, e))?;
        let value = secret.value.ok_or_else(|| KeyVaultError::Content {
            vault: self.vault.clone(),
            kind,
            name: display_name(name, version),
            reason: "the answer has no value".into(),
        })?;
        Ok(Secret {
            value: SecretString::from(value),
            content_type: secret.content_type,
            id: secret.id.unwrap_or_default(),
        })
    }

    fn error(
        &self,
        kind: &'static str,
        name: &str,
        version: Option<&str>,
        e: azure_core::Error,
    ) -> KeyVaultError {
        service_error(&self.vault, kind, display_name(name, version), e)
    }
}

/// An SDK error as a [`KeyVaultError`]: Key Vault's code and message when it answered.
pub(crate) fn service_error(
    vault: &str,
    kind: &'static str,
    name: String,
    e: azure_core::Error,
) -> KeyVaultError {
    match e.kind() {
        azure_core::error::ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let body: Option<serde_json::Value> = raw_response
                .as_ref()
                .and_then(|r| serde_json::from_slice(r.body().as_ref()).ok());
            let code = body
                .as_ref()
                .and_then(|b| b["error"]["code"].as_str().map(str::to_owned))
                .or_else(|| error_code.clone());
            let message = body
                .as_ref()
                .and_then(|b| b["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| e.to_string());
            KeyVaultError::Service {
                vault: vault.to_owned(),
                kind,
                name,
                status: u16::from(*status),
                code,
                message,
            }
        }
        _ => KeyVaultError::Request {
            vault: vault.to_owned(),
            kind,
            name,
            message: custos_ids::fmt::error_chain(&e),
        },
    }
}

/// A certificate secret that cannot be used; says why without any of its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertificateSecretError(String);

/// The certificate chain PEM and PKCS#8 key PEM in the value of a certificate's secret
/// (`application/x-pem-file`, or `application/x-pkcs12` with Key Vault's password-less PFX),
/// after checking that the key belongs to the leaf.
pub fn certificate_from_secret(
    content_type: &str,
    value: &SecretString,
) -> Result<(String, SecretString), CertificateSecretError> {
    let fail = |reason: String| CertificateSecretError(reason);
    let (chain, key) = match content_type {
        "application/x-pem-file" => {
            crate::pem::chain_and_key(value.expose_secret()).map_err(fail)?
        }
        "application/x-pkcs12" => {
            let der = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(value.expose_secret().trim())
                    .map_err(|_| fail("the PKCS#12 secret is not base64".into()))?,
            );
            crate::pkcs12::open(&der, "").map_err(|e| fail(format!("PKCS#12: {e}")))?
        }
        other => {
            return Err(fail(format!(
                "content type {other:?} is not a certificate (expected application/x-pem-file or application/x-pkcs12)"
            )));
        }
    };
    crate::pem::check_key_matches(&chain[0], &key).map_err(fail)?;
    Ok((
        chain
            .iter()
            .map(|c| custos_ids::pem::encode("CERTIFICATE", c))
            .collect(),
        SecretString::from(custos_ids::pem::encode("PRIVATE KEY", &key)),
    ))
}

/// Refuses a name (or version) Key Vault could not hold before asking the vault.
pub(crate) fn check_object_name(
    vault: &str,
    kind: &'static str,
    name: &str,
    version: Option<&str>,
) -> Result<(), KeyVaultError> {
    let bad_version =
        version.is_some_and(|v| v.is_empty() || !v.bytes().all(|b| b.is_ascii_hexdigit()));
    if !is_object_name(name) || bad_version {
        return Err(KeyVaultError::InvalidName {
            vault: vault.to_owned(),
            kind,
            name: display_name(name, version),
        });
    }
    Ok(())
}

pub(crate) fn display_name(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("{name}/{v}"),
        None => name.to_owned(),
    }
}

fn is_object_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
