//! Entra ID credentials on `azure_identity`: client secret, client certificate (our own signed
//! client assertion through `ClientAssertionCredential`), workload identity and managed identity.
//!
//! Every credential caches its tokens per scope until five minutes before expiry, and
//! refreshes under a write lock, so concurrent callers wait for one refresh instead of each
//! sending a token request (the SDK's `TokenCache`; `tests/tokens.rs` counts the requests).

use std::path::PathBuf;
use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_identity::{
    ClientAssertionCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use secrecy::{ExposeSecret, SecretString};

use crate::assertion::{AssertionAlgorithm, CertificateAssertion, ClientCertificate};
use crate::http::{HttpClientError, HttpOptions};

/// Entra ID of the Azure public cloud.
pub const PUBLIC_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// How to authenticate to Entra ID.
pub enum CredentialSpec {
    /// An app registration's client secret.
    ClientSecret {
        /// Directory (tenant) id.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// The secret value.
        secret: SecretString,
    },
    /// An app registration's certificate: each token request carries a fresh client
    /// assertion signed with its key.
    ClientCertificate {
        /// Directory (tenant) id.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// Certificate and private key.
        certificate: ClientCertificate,
        /// PS256 with `x5t#S256` (Entra's current recommendation) or RS256 with `x5t`.
        algorithm: AssertionAlgorithm,
    },
    /// A federated token from a file, re-read for every token request (Kubernetes workload
    /// identity: `AZURE_FEDERATED_TOKEN_FILE`).
    WorkloadIdentity {
        /// Directory (tenant) id.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// The token file.
        token_file: PathBuf,
    },
    /// The host's managed identity (IMDS, or App Service's `IDENTITY_ENDPOINT`).
    ManagedIdentity {
        /// A user-assigned identity's client id; the system-assigned identity when `None`.
        client_id: Option<String>,
    },
}

impl std::fmt::Debug for CredentialSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClientSecret {
                tenant_id,
                client_id,
                ..
            } => f
                .debug_struct("ClientSecret")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            Self::ClientCertificate {
                tenant_id,
                client_id,
                certificate,
                algorithm,
            } => f
                .debug_struct("ClientCertificate")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("certificate", certificate)
                .field("algorithm", algorithm)
                .finish(),
            Self::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => f
                .debug_struct("WorkloadIdentity")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("token_file", token_file)
                .finish(),
            Self::ManagedIdentity { client_id } => f
                .debug_struct("ManagedIdentity")
                .field("client_id", client_id)
                .finish(),
        }
    }
}

/// Where and how credentials talk to Entra ID.
#[derive(Debug, Clone)]
pub struct CredentialOptions {
    /// The authority host, e.g. `https://login.microsoftonline.com` or an emulator's URL.
    pub authority_host: String,
    /// Transport settings.
    pub http: HttpOptions,
}

impl Default for CredentialOptions {
    fn default() -> Self {
        Self {
            authority_host: PUBLIC_AUTHORITY_HOST.to_owned(),
            http: HttpOptions::default(),
        }
    }
}

/// A credential could not be made, or could not get a token.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] HttpClientError),
    /// The SDK refused the configuration (tenant id, authority host...).
    #[error("{kind} for client {client_id}: invalid configuration: {message}")]
    Config {
        /// Which kind of credential.
        kind: &'static str,
        /// The client id.
        client_id: String,
        /// What the SDK said.
        message: String,
    },
    /// Entra ID (or the transport) refused a token request.
    #[error("{kind} for client {client_id}: no token for {scope}: {message}")]
    Token {
        /// Which kind of credential.
        kind: &'static str,
        /// The client id.
        client_id: String,
        /// The requested scope.
        scope: String,
        /// Entra's error (an AADSTS description) or the transport error.
        message: String,
    },
}

/// A token credential for every Azure client of this crate.
#[derive(Clone)]
pub struct AzureCredential {
    inner: Arc<dyn TokenCredential>,
    kind: &'static str,
    client_id: String,
}

impl std::fmt::Debug for AzureCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureCredential")
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// An access token: the bearer value, and when it expires.
pub struct AccessToken {
    /// The bearer token.
    pub token: SecretString,
    /// Expiry, as reported by Entra ID (`expires_in`).
    pub expires_on: std::time::SystemTime,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_on", &self.expires_on)
            .finish_non_exhaustive()
    }
}

impl AzureCredential {
    /// Builds the credential; no request is sent until a token is needed.
    pub fn new(spec: CredentialSpec, options: &CredentialOptions) -> Result<Self, CredentialError> {
        let mut client_options = options.http.client_options()?;
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = options.authority_host.trim_end_matches('/').to_owned();
        client_options.cloud = Some(Arc::new(CloudConfiguration::Custom(cloud)));
        let config_error = |kind: &'static str, client_id: &str| {
            let client_id = client_id.to_owned();
            move |e: azure_core::Error| CredentialError::Config {
                kind,
                client_id,
                message: e.to_string(),
            }
        };
        let (inner, kind, client_id): (Arc<dyn TokenCredential>, _, _) = match spec {
            CredentialSpec::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => {
                const KIND: &str = "client secret credential";
                let credential = ClientSecretCredential::new(
                    &tenant_id,
                    client_id.clone(),
                    Secret::new(secret.expose_secret().to_owned()),
                    Some(ClientSecretCredentialOptions { client_options }),
                )
                .map_err(config_error(KIND, &client_id))?;
                (credential, KIND, client_id)
            }
            CredentialSpec::ClientCertificate {
                tenant_id,
                client_id,
                certificate,
                algorithm,
            } => {
                const KIND: &str = "client certificate credential";
                let token_endpoint = format!(
                    "{}/{tenant_id}/oauth2/v2.0/token",
                    options.authority_host.trim_end_matches('/')
                );
                let assertion = CertificateAssertion::new(
                    certificate,
                    client_id.clone(),
                    token_endpoint,
                    algorithm,
                );
                let credential = ClientAssertionCredential::new(
                    tenant_id,
                    client_id.clone(),
                    assertion,
                    Some(ClientAssertionCredentialOptions { client_options }),
                )
                .map_err(config_error(KIND, &client_id))?;
                (credential, KIND, client_id)
            }
            CredentialSpec::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => {
                const KIND: &str = "workload identity credential";
                let credential =
                    WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                        credential_options: ClientAssertionCredentialOptions { client_options },
                        client_id: Some(client_id.clone()),
                        tenant_id: Some(tenant_id),
                        token_file_path: Some(token_file),
                    }))
                    .map_err(config_error(KIND, &client_id))?;
                (credential, KIND, client_id)
            }
            CredentialSpec::ManagedIdentity { client_id } => {
                const KIND: &str = "managed identity credential";
                let credential =
                    ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                        user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                        client_options,
                    }))
                    .map_err(config_error(
                        KIND,
                        client_id.as_deref().unwrap_or("system-assigned"),
                    ))?;
                (
                    credential,
                    KIND,
                    client_id.unwrap_or_else(|| "system-assigned".into()),
                )
            }
        };
        Ok(Self {
            inner,
            kind,
            client_id,
        })
    }

    /// A token for `scope` (e.g. `https://vault.azure.net/.default`), from the cache while it
    /// has more than five minutes left.
    pub async fn token(&self, scope: &str) -> Result<AccessToken, CredentialError> {
        let token =
            self.inner
                .get_token(&[scope], None)
                .await
                .map_err(|e| CredentialError::Token {
                    kind: self.kind,
                    client_id: self.client_id.clone(),
                    scope: scope.to_owned(),
                    message: e.to_string(),
                })?;
        let unix = token.expires_on.unix_timestamp().max(0) as u64;
        Ok(AccessToken {
            token: SecretString::from(token.token.secret().to_owned()),
            expires_on: std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix),
        })
    }

    /// The SDK credential, for SDK clients.
    pub fn token_credential(&self) -> Arc<dyn TokenCredential> {
        self.inner.clone()
    }

    /// The client id (or `system-assigned`), for messages.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}
