//! Azure for Custos: Entra ID credentials, Key Vault secrets, certificates and keys (with
//! Secure Key Release), and a client for Microsoft Azure Attestation (MAA).
//!
//! Credentials and Key Vault are the official Azure SDK for Rust (`azure_identity`,
//! `azure_security_keyvault_secrets`) over one reqwest/rustls transport on aws-lc-rs with the
//! CAs the caller trusts; certificate credentials sign their own client assertions. The MAA
//! client is a thin HTTPS client (there is no SDK crate): it submits evidence and fetches the
//! signing keys, and hands tokens over — verifying them is `custos-attestation`'s job.
//!
//! This crate must never log, print or put into an error a secret value, a private key, a
//! client secret or a bearer token; those live in `secrecy` types and are zeroized on drop.

#![warn(missing_docs)]

mod assertion;
mod credential;
pub mod http;
pub mod key_release;
mod keys;
mod keyvault;
mod maa;
mod pem;
mod pkcs12;

pub use assertion::{AssertionAlgorithm, CertificateError, ClientCertificate};
pub use credential::{
    AccessToken, AzureCredential, CredentialError, CredentialOptions, CredentialSpec,
    PUBLIC_AUTHORITY_HOST,
};
pub use http::{HttpClientError, HttpOptions, Trust};
pub use key_release::{
    KeyMaterial, KeyWrapAlgorithm, ReleaseError, ReleaseExpectations, SignerTrust, UnwrappedKey,
    WrappingKey, unwrap_released,
};
pub use keys::{
    ExportableKeyType, KeyInfo, KeyVaultKeys, RELEASE_POLICY_CONTENT_TYPE, ReleasedKey,
};
pub use keyvault::{
    CertificateSecretError, CertificateWithKey, KeyVault, KeyVaultError, Secret,
    certificate_from_secret, vault_url,
};
pub use maa::{
    DEFAULT_MAA_API_VERSION, KEY_CACHE_TTL, MaaClient, MaaClientError, MaaEvidence, RuntimeData,
    SigningKeys,
};

/// The scope of Azure Key Vault tokens.
pub const KEY_VAULT_SCOPE: &str = "https://vault.azure.net/.default";
