//! Secrets from Azure: `aad-token` (an Entra ID token fetched with the session's app
//! credentials) and `import_akv` (a Key Vault secret or certificate read with that token).
//!
//! Credentials and Key Vault clients are kept per (authority, tenant, client, credential) —
//! the credential's material enters the key only as a SHA-256 — so their token caches and
//! connections are reused across attestations; a changed session credential makes a new one.
//! Values read from Key Vault, and tokens, are reused for `azure.cache_ttl_secs` (tokens
//! also no longer than until five minutes before they expire, when the credential's own
//! cache fetches a new one): a secret rotated in Key Vault reaches the first attestation
//! after that, and a supervised service re-attesting in its token's last minutes gets a new
//! token. Errors name the secret, the vault, the object and Azure's answer, never a value.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::digest;
use custos_azure::{
    AssertionAlgorithm, AzureCredential, ClientCertificate, CredentialOptions, CredentialSpec,
    HttpOptions, KeyVault, Trust,
};
use custos_policy::{
    AadCredential, AadTokenRequest, AkvImport, CertificateThumbprint, Generation, Secret,
    SecretKind, SecretSource, Session,
};
use secrecy::ExposeSecret;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::SetupError;
use super::values::{Resolved, Value, ValueError, certificates_pem, local_value};
use crate::config::AzureSettings;
use crate::store::Store;

/// Entries a cache keeps before expired ones are dropped (and, if that is not enough, all).
const CACHE_MAX: usize = 4096;
/// Tokens are not reused closer than this to their expiry (the credential's cache renews
/// them then too).
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

type CredentialKey = [u8; 32];
/// A token and when it expires.
type Token = (Value, OffsetDateTime);

/// Azure access for sessions.
pub struct Azure {
    authority_host: String,
    http: HttpOptions,
    ttl: Duration,
    credentials: Mutex<HashMap<CredentialKey, AzureCredential>>,
    vaults: Mutex<HashMap<(String, CredentialKey), Arc<KeyVault>>>,
    values: Mutex<HashMap<ValueKey, (Instant, Value)>>,
    tokens: Mutex<HashMap<(CredentialKey, String), (Instant, Token)>>,
}

impl std::fmt::Debug for Azure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Azure")
            .field("authority_host", &self.authority_host)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ValueKey {
    vault: String,
    name: String,
    version: Option<String>,
    certificate: bool,
    credential: CredentialKey,
}

impl Azure {
    /// Azure access as `settings` say.
    pub fn from_config(settings: &AzureSettings) -> Result<Self, SetupError> {
        let mut cas = Vec::new();
        for path in &settings.ca_files {
            cas.extend(
                custos_tls::read_certificates(path).map_err(|e| SetupError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?,
            );
        }
        let trust = match (cas.is_empty(), settings.trust_system_roots) {
            (true, _) => Trust::System,
            (false, true) => Trust::SystemAnd(cas),
            (false, false) => Trust::Only(cas),
        };
        let http = HttpOptions {
            trust,
            timeout: Duration::from_secs(settings.timeout_secs),
            connect_timeout: Duration::from_secs(settings.timeout_secs.min(10)),
            max_retries: settings.max_retries,
            ..HttpOptions::default()
        };
        // Fail at start-up, not at the first attestation, if the transport cannot be built.
        http.reqwest_client()
            .map_err(|e| SetupError::Azure(e.to_string()))?;
        Ok(Self {
            authority_host: settings.authority_host.trim_end_matches('/').to_owned(),
            http,
            ttl: Duration::from_secs(settings.cache_ttl_secs),
            credentials: Mutex::default(),
            vaults: Mutex::default(),
            values: Mutex::default(),
            tokens: Mutex::default(),
        })
    }

    /// The transport settings (also for MAA).
    pub fn http_options(&self) -> HttpOptions {
        self.http.clone()
    }

    /// The value of `secret` (an `aad-token` or an `import_akv`) of `session`.
    pub async fn resolve(
        &self,
        session: &Session,
        secret: &Secret,
        store: &Store,
    ) -> Result<Resolved, ValueError> {
        let name = secret.name.as_str();
        match &secret.source {
            SecretSource::Generated(Generation::AadToken(request)) => {
                let (key, credential) = self.credential(session, name, request, store)?;
                let (value, expires_at) =
                    self.token(name, key, &credential, &request.scope).await?;
                Ok(Resolved::expiring(SecretKind::AadToken, value, expires_at))
            }
            SecretSource::ImportAkv(import) => {
                let kind = secret.kind.unwrap_or(SecretKind::Ascii);
                let token = session.secret(import.token.as_str()).ok_or_else(|| {
                    ValueError::invalid(name, format!("no aad-token secret {}", import.token))
                })?;
                let SecretSource::Generated(Generation::AadToken(request)) = &token.source else {
                    return Err(ValueError::invalid(
                        name,
                        format!(
                            "import_akv.token {} is not an aad-token secret",
                            import.token
                        ),
                    ));
                };
                let (key, credential) =
                    self.credential(session, import.token.as_str(), request, store)?;
                let value = self.key_vault(name, kind, import, key, &credential).await?;
                Ok(Resolved::new(kind, value))
            }
            _ => Err(ValueError::invalid(
                name,
                "its value does not come from Azure",
            )),
        }
    }

    /// The credential of an `aad-token` request, made once per distinct credential.
    fn credential(
        &self,
        session: &Session,
        token_secret: &str,
        request: &AadTokenRequest,
        store: &Store,
    ) -> Result<(CredentialKey, AzureCredential), ValueError> {
        let invalid = |reason: String| ValueError::invalid(token_secret, reason);
        let mut key = digest::Context::new(&digest::SHA256);
        for part in [&self.authority_host, &request.tenant_id, &request.client_id] {
            key.update(&(part.len() as u64).to_be_bytes());
            key.update(part.as_bytes());
        }
        let spec = match &request.credential {
            AadCredential::ApplicationSecret(secret) => {
                key.update(b"secret");
                key.update(secret.expose_secret().as_bytes());
                CredentialSpec::ClientSecret {
                    tenant_id: request.tenant_id.clone(),
                    client_id: request.client_id.clone(),
                    secret: secret.clone(),
                }
            }
            AadCredential::Certificate {
                private_key,
                certificate_thumbprint,
            } => {
                let holder = session
                    .secret(private_key.as_str())
                    .ok_or_else(|| invalid(format!("private_key {private_key}: no such secret")))?;
                let read = store.read().map_err(|e| invalid(e.to_string()))?;
                let resolved = local_value(session, holder, &read, &mut None)?;
                let Value::Certificate {
                    chain,
                    key: Some(pem_key),
                } = &resolved.value
                else {
                    return Err(invalid(format!(
                        "private_key {private_key}: an Entra ID certificate credential needs an x509 secret with its certificate and key (a private-key secret with certificate_thumbprint alone is not supported)"
                    )));
                };
                let leaf = chain.first().cloned().unwrap_or_default();
                let certificate = ClientCertificate::from_pem(leaf.as_bytes(), pem_key.as_bytes())
                    .map_err(|e| invalid(format!("private_key {private_key}: {e}")))?;
                let algorithm = match certificate_thumbprint {
                    Some(expected) => {
                        check_thumbprint(&leaf, expected).map_err(invalid)?;
                        match expected {
                            CertificateThumbprint::Sha1(_) => AssertionAlgorithm::Rs256,
                            CertificateThumbprint::Sha256(_) => AssertionAlgorithm::Ps256,
                        }
                    }
                    None => AssertionAlgorithm::Ps256,
                };
                key.update(b"certificate");
                key.update(leaf.as_bytes());
                key.update(pem_key.as_bytes());
                CredentialSpec::ClientCertificate {
                    tenant_id: request.tenant_id.clone(),
                    client_id: request.client_id.clone(),
                    certificate,
                    algorithm,
                }
            }
        };
        let key: CredentialKey = key
            .finish()
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let mut credentials = lock(&self.credentials);
        if let Some(credential) = credentials.get(&key) {
            return Ok((key, credential.clone()));
        }
        let options = CredentialOptions {
            authority_host: self.authority_host.clone(),
            http: self.http.clone(),
        };
        let credential =
            AzureCredential::new(spec, &options).map_err(|e| invalid(e.to_string()))?;
        if credentials.len() >= CACHE_MAX {
            credentials.clear();
        }
        credentials.insert(key, credential.clone());
        Ok((key, credential))
    }

    async fn token(
        &self,
        secret: &str,
        key: CredentialKey,
        credential: &AzureCredential,
        scope: &str,
    ) -> Result<Token, ValueError> {
        let cache_key = (key, scope.to_owned());
        if let Some(token) = fresh(&self.tokens, &cache_key) {
            return Ok(token);
        }
        let token = credential
            .token(scope)
            .await
            .map_err(|e| ValueError::Unavailable {
                secret: secret.to_owned(),
                reason: e.to_string(),
            })?;
        let value = Value::Text(Zeroizing::new(token.token.expose_secret().to_owned()));
        let until_margin = token
            .expires_on
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .saturating_sub(TOKEN_MARGIN);
        let fetched = (value, OffsetDateTime::from(token.expires_on));
        remember(
            &self.tokens,
            cache_key,
            self.ttl.min(until_margin),
            &fetched,
        );
        Ok(fetched)
    }

    async fn key_vault(
        &self,
        secret: &str,
        kind: SecretKind,
        import: &AkvImport,
        credential_key: CredentialKey,
        credential: &AzureCredential,
    ) -> Result<Value, ValueError> {
        let certificate = matches!(kind, SecretKind::X509 | SecretKind::X509Ca);
        let cache_key = ValueKey {
            vault: import.vault.clone(),
            name: import.secret_name.clone(),
            version: import.version.clone(),
            certificate,
            credential: credential_key,
        };
        if let Some(value) = fresh(&self.values, &cache_key) {
            return Ok(value);
        }
        let vault = self.vault(secret, &import.vault, credential_key, credential)?;
        let unavailable = |e: custos_azure::KeyVaultError| ValueError::Unavailable {
            secret: secret.to_owned(),
            reason: e.to_string(),
        };
        let version = import.version.as_deref();
        let value = if certificate {
            let found = vault
                .get_certificate(&import.secret_name, version)
                .await
                .map_err(unavailable)?;
            let chain = certificates_pem(found.chain_pem.as_bytes());
            if chain.is_empty() {
                return Err(ValueError::invalid(
                    secret,
                    format!(
                        "vault {}: certificate {:?} holds no PEM certificate",
                        vault.url(),
                        import.secret_name
                    ),
                ));
            }
            Value::Certificate {
                chain,
                key: Some(Zeroizing::new(found.key_pem.expose_secret().to_owned())),
            }
        } else {
            let found = vault
                .get_secret(&import.secret_name, version)
                .await
                .map_err(unavailable)?;
            Value::from_text(secret, kind, found.value.expose_secret())?
        };
        remember(&self.values, cache_key, self.ttl, &value);
        Ok(value)
    }

    fn vault(
        &self,
        secret: &str,
        vault: &str,
        key: CredentialKey,
        credential: &AzureCredential,
    ) -> Result<Arc<KeyVault>, ValueError> {
        let mut vaults = lock(&self.vaults);
        if let Some(client) = vaults.get(&(vault.to_owned(), key)) {
            return Ok(client.clone());
        }
        let client = Arc::new(KeyVault::new(vault, credential, &self.http).map_err(|e| {
            ValueError::Unavailable {
                secret: secret.to_owned(),
                reason: e.to_string(),
            }
        })?);
        if vaults.len() >= CACHE_MAX {
            vaults.clear();
        }
        vaults.insert((vault.to_owned(), key), client.clone());
        Ok(client)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A cached value that has not expired.
fn fresh<K: std::hash::Hash + Eq, V: Clone>(
    cache: &Mutex<HashMap<K, (Instant, V)>>,
    key: &K,
) -> Option<V> {
    let cache = lock(cache);
    let (until, value) = cache.get(key)?;
    (Instant::now() < *until).then(|| value.clone())
}

/// Keeps `value` for `ttl` (not at all when it is zero).
fn remember<K: std::hash::Hash + Eq, V: Clone>(
    cache: &Mutex<HashMap<K, (Instant, V)>>,
    key: K,
    ttl: Duration,
    value: &V,
) {
    if ttl.is_zero() {
        return;
    }
    let now = Instant::now();
    let mut cache = lock(cache);
    if cache.len() >= CACHE_MAX {
        cache.retain(|_, (until, _)| *until > now);
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
    }
    cache.insert(key, (now + ttl, value.clone()));
}

/// Checks the certificate (PEM) against a SHA-1 or SHA-256 thumbprint.
fn check_thumbprint(leaf_pem: &str, expected: &CertificateThumbprint) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(leaf_pem.as_bytes())
        .map_err(|e| format!("certificate: {e}"))?;
    let algorithm = match expected {
        CertificateThumbprint::Sha1(_) => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        CertificateThumbprint::Sha256(_) => &digest::SHA256,
    };
    let actual = digest::digest(algorithm, &der);
    if actual.as_ref() == expected.as_bytes() {
        Ok(())
    } else {
        Err(format!(
            "certificate_thumbprint: expected {expected}, actual {}",
            hex::encode(actual.as_ref())
        ))
    }
}
