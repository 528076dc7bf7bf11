//! The emulator's YAML configuration (see `docs/azure.md` for the format).
//!
//! Everything has a default, so an empty file is a valid configuration: three listeners on
//! loopback ports chosen by the kernel, no tenants, an empty vault.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The YAML is malformed or does not match the format (the message has line and column).
    #[error("{origin}: {message}")]
    Yaml {
        /// The file, or `<inline>`.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// The YAML is well-formed but inconsistent.
    #[error("{origin}: {field}: {problem}")]
    Invalid {
        /// The file, or `<inline>`.
        origin: String,
        /// The field path, e.g. `keyvault.secrets[2].name`.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The address every listener binds to.
    pub listen: IpAddr,
    /// The host name used in URLs (endpoints, token issuers, secret ids). Defaults to the
    /// listen address. It is always in the TLS certificate, with `localhost`, `127.0.0.1` and `::1`.
    pub host: Option<String>,
    /// Where the CA certificate (PEM) is written, for clients to trust.
    pub ca_file: Option<PathBuf>,
    /// Entra ID.
    pub entra: EntraConfig,
    /// Key Vault.
    pub keyvault: KeyVaultConfig,
    /// A Managed HSM (keys only).
    pub managed_hsm: ManagedHsmConfig,
    /// Microsoft Azure Attestation.
    pub maa: MaaConfig,
    /// Failures to inject.
    pub faults: Vec<FaultRule>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: IpAddr::from([127, 0, 0, 1]),
            host: None,
            ca_file: None,
            entra: EntraConfig::default(),
            keyvault: KeyVaultConfig::default(),
            managed_hsm: ManagedHsmConfig::default(),
            maa: MaaConfig::default(),
            faults: Vec::new(),
        }
    }
}

/// The Entra ID token endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EntraConfig {
    /// TCP port; 0 lets the kernel choose.
    pub port: u16,
    /// Lifetime of issued access tokens (`expires_in`), in seconds.
    pub token_lifetime_secs: u64,
    /// Directories and their app registrations.
    pub tenants: Vec<TenantConfig>,
    /// A managed identity served at `{authority}/msi/token`, as App Service's
    /// `IDENTITY_ENDPOINT` serves one.
    pub managed_identity: Option<ManagedIdentityConfig>,
}

/// The managed identity of the emulated host: an application of one tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedIdentityConfig {
    /// The tenant.
    pub tenant: String,
    /// The identity's client id: an application of that tenant.
    pub client_id: String,
    /// The secret the host hands its workloads (`IDENTITY_HEADER`), required in `X-IDENTITY-HEADER`.
    pub identity_header: String,
}

impl Default for EntraConfig {
    fn default() -> Self {
        Self {
            port: 0,
            token_lifetime_secs: 3599,
            tenants: Vec::new(),
            managed_identity: None,
        }
    }
}

/// A directory (tenant).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant id (a GUID in Azure; any `[A-Za-z0-9.-]+` here).
    pub id: String,
    /// App registrations (service principals) in this tenant.
    #[serde(default)]
    pub applications: Vec<ApplicationConfig>,
}

/// An app registration and the credentials it accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationConfig {
    /// The application (client) id.
    pub client_id: String,
    /// A name for logs and `/_emulator/stats`.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Client secrets the app accepts.
    #[serde(default)]
    pub client_secrets: Vec<String>,
    /// Certificates (PEM text or a path to a PEM file) whose keys may sign client assertions.
    #[serde(default)]
    pub certificates: Vec<PemSource>,
    /// Federated identity credentials (workload identity).
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredentialConfig>,
}

/// A federated identity credential: tokens from an external issuer exchanged for Entra tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederatedCredentialConfig {
    /// Expected `iss` of the external token.
    pub issuer: String,
    /// Expected `sub` of the external token.
    pub subject: String,
    /// Accepted `aud` values; Azure's default is `api://AzureADTokenExchange`.
    #[serde(default = "default_federated_audiences")]
    pub audiences: Vec<String>,
    /// The issuer's verification key: a PEM public key or certificate (RSA, RS256).
    pub key: PemSource,
}

fn default_federated_audiences() -> Vec<String> {
    vec!["api://AzureADTokenExchange".to_owned()]
}

/// PEM content given inline or as a file path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum PemSource {
    /// The PEM text itself.
    Pem(String),
    /// A file holding the PEM text (relative paths are relative to the configuration file).
    File(PathBuf),
}

impl PemSource {
    /// The PEM text, reading the file if needed.
    pub fn read(&self, base: &Path) -> std::io::Result<String> {
        match self {
            Self::Pem(text) => Ok(text.clone()),
            Self::File(path) => std::fs::read_to_string(base.join(path)),
        }
    }
}

/// The Key Vault.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyVaultConfig {
    /// TCP port; 0 lets the kernel choose.
    pub port: u16,
    /// The tenant whose tokens the vault accepts (named in its 401 challenge). Defaults to the
    /// first configured tenant.
    pub tenant: Option<String>,
    /// Client ids allowed to read; empty: every application of the vault's tenant. Ignored
    /// when `access_policies` is set.
    pub allowed_clients: Vec<String>,
    /// Key Vault access policies: what each application may do. When set, they alone decide.
    pub access_policies: Vec<AccessPolicyConfig>,
    /// Secrets present at start-up.
    pub secrets: Vec<SecretConfig>,
    /// Certificates present at start-up.
    pub certificates: Vec<CertificateConfig>,
}

/// A Managed HSM: keys only (create, get, release), tokens for `https://managedhsm.azure.net`,
/// and local RBAC instead of access policies. It shares the vault's tenant.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagedHsmConfig {
    /// TCP port; 0 lets the kernel choose.
    pub port: u16,
    /// Local RBAC: which application holds which built-in role. Empty: every application of
    /// the tenant may do everything (an emulator convenience; a real Managed HSM denies).
    pub role_assignments: Vec<RoleAssignmentConfig>,
}

/// One local RBAC role assignment (at the HSM's `/` scope).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleAssignmentConfig {
    /// The application (client id).
    pub client_id: String,
    /// A built-in role, by name (`Managed HSM Crypto Service Release User`) or id.
    pub role: String,
}

/// An access policy: the permissions of one application, per object kind, as Key Vault
/// names them (`get`, `list`, `set`, `create`, `import`, `release`, ..., or `all`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessPolicyConfig {
    /// The application (client id).
    pub client_id: String,
    /// Key permissions (`get`, `create`, `release`, ...).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Secret permissions (`get`, `list`, `set`, ...).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Certificate permissions (`get`, `list`, `import`, ...).
    #[serde(default)]
    pub certificates: Vec<String>,
}

/// Key Vault's permission names per object kind (access policies).
const KEY_PERMISSIONS: &[&str] = &[
    "all",
    "get",
    "list",
    "update",
    "create",
    "import",
    "delete",
    "recover",
    "backup",
    "restore",
    "decrypt",
    "encrypt",
    "unwrapKey",
    "wrapKey",
    "verify",
    "sign",
    "purge",
    "release",
    "rotate",
    "getRotationPolicy",
    "setRotationPolicy",
];
const SECRET_PERMISSIONS: &[&str] = &[
    "all", "get", "list", "set", "delete", "recover", "backup", "restore", "purge",
];
const CERTIFICATE_PERMISSIONS: &[&str] = &[
    "all",
    "get",
    "list",
    "update",
    "create",
    "import",
    "delete",
    "recover",
    "backup",
    "restore",
    "managecontacts",
    "manageissuers",
    "getissuers",
    "listissuers",
    "setissuers",
    "deleteissuers",
    "purge",
];

impl AccessPolicyConfig {
    /// Whether this policy grants `operation` on objects of `kind` (`keys`, `secrets`,
    /// `certificates`); names compare case-insensitively.
    pub fn grants(&self, kind: &str, operation: &str) -> bool {
        let list = match kind {
            "keys" => &self.keys,
            "secrets" => &self.secrets,
            "certificates" => &self.certificates,
            _ => return false,
        };
        list.iter()
            .any(|p| p.eq_ignore_ascii_case(operation) || p.eq_ignore_ascii_case("all"))
    }

    fn check(&self) -> Result<(), (String, String)> {
        for (kind, list, known) in [
            ("keys", &self.keys, KEY_PERMISSIONS),
            ("secrets", &self.secrets, SECRET_PERMISSIONS),
            ("certificates", &self.certificates, CERTIFICATE_PERMISSIONS),
        ] {
            for p in list {
                if !known.iter().any(|k| k.eq_ignore_ascii_case(p)) {
                    return Err((
                        kind.to_owned(),
                        format!("unknown permission {p:?} (one of {})", known.join(", ")),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretConfig {
    /// Name: `[0-9A-Za-z-]{1,127}`.
    pub name: String,
    /// The value.
    pub value: String,
    /// Optional `contentType`.
    #[serde(default)]
    pub content_type: Option<String>,
}

/// How a certificate's secret is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum SecretContentType {
    /// `application/x-pem-file`: PKCS#8 key PEM followed by the certificate chain PEM.
    #[serde(rename = "application/x-pem-file")]
    #[default]
    Pem,
    /// `application/x-pkcs12`: base64 of a PFX without password.
    #[serde(rename = "application/x-pkcs12")]
    Pkcs12,
}

impl SecretContentType {
    /// The MIME type as Key Vault writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pem => "application/x-pem-file",
            Self::Pkcs12 => "application/x-pkcs12",
        }
    }
}

/// A certificate: generated self-signed at start-up, or imported from PEM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// Name: `[0-9A-Za-z-]{1,127}`.
    pub name: String,
    /// Common name of a generated certificate (ignored when importing).
    #[serde(default)]
    pub common_name: Option<String>,
    /// DNS subject alternative names of a generated certificate.
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// Validity of a generated certificate, in days.
    #[serde(default = "default_validity_days")]
    pub validity_days: u32,
    /// How the secret of the same name encodes certificate and key.
    #[serde(default)]
    pub content_type: SecretContentType,
    /// Import instead of generating: PEM with the certificate chain and an unencrypted PKCS#8 key.
    #[serde(default)]
    pub import: Option<PemSource>,
}

fn default_validity_days() -> u32 {
    365
}

/// Microsoft Azure Attestation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaaConfig {
    /// TCP port; 0 lets the kernel choose.
    pub port: u16,
    /// Lifetime of attestation tokens, in seconds (real MAA: 8 hours).
    pub token_lifetime_secs: u64,
    /// Platform keys whose simulation quotes are accepted: key ids (SHA-256 of the public
    /// key's SubjectPublicKeyInfo, 64 hex digits, as `custos-las` prints them) or PEM public keys.
    pub trusted_platform_keys: Vec<String>,
    /// What the signing certificate embeds (MAA's self-check evidence).
    pub signing_evidence: SigningEvidence,
}

impl Default for MaaConfig {
    fn default() -> Self {
        Self {
            port: 0,
            token_lifetime_secs: 8 * 3600,
            trusted_platform_keys: Vec::new(),
            signing_evidence: SigningEvidence::default(),
        }
    }
}

/// The enclave evidence MAA's signing certificate embeds. Real MAA embeds its enclave's
/// quote bound to the key; the emulator embeds a simulated quote (`sim-quote`) with the
/// same binding, signed by a platform key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningEvidence {
    /// `sim` (default) or `none` (a certificate without evidence).
    pub kind: SigningEvidenceKind,
    /// The platform key (PKCS#8 PEM, as `custos-las` keeps `platform-key.pem`) that signs the
    /// quote; default: a fresh key, logged by id at start-up.
    pub platform_key_file: Option<PathBuf>,
    /// The MAA enclave's MRSIGNER, 64 hex digits; default: the shared MAA enclave's, as
    /// recorded (`74ba5fba…`).
    pub mrsigner: String,
    /// Its MRENCLAVE; default: the recorded one (`b3cdb7c6…`).
    pub mrenclave: String,
    /// Its ISVPRODID (default 1).
    pub isvprodid: u16,
    /// Its ISVSVN (default 1).
    pub isvsvn: u16,
}

/// Whether the signing certificate embeds evidence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SigningEvidenceKind {
    /// A simulated quote bound to the key.
    #[default]
    Sim,
    /// None.
    None,
}

/// The shared MAA enclave's identity in the recorded signing certificate of
/// `sharedwus.wus.attest.azure.net` (crates/attestation/tests/data).
pub const RECORDED_MAA_MRSIGNER: &str =
    "74ba5fba208571cf99e1f7158e6536a05bbb6ce7807eef8f6a97f64a7af64b83";
/// See [`RECORDED_MAA_MRSIGNER`].
pub const RECORDED_MAA_MRENCLAVE: &str =
    "b3cdb7c6d8da25088334d8864c06794f0cd7f505708abe44cc074c1e6ae0e283";

impl Default for SigningEvidence {
    fn default() -> Self {
        Self {
            kind: SigningEvidenceKind::Sim,
            platform_key_file: None,
            mrsigner: RECORDED_MAA_MRSIGNER.into(),
            mrenclave: RECORDED_MAA_MRENCLAVE.into(),
            isvprodid: 1,
            isvsvn: 1,
        }
    }
}

/// Which listener a fault rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// Entra ID.
    Entra,
    /// Key Vault.
    Keyvault,
    /// The Managed HSM.
    Managedhsm,
    /// MAA.
    Maa,
}

/// A failure to inject: matching requests are delayed and/or answered with an error status.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// The listener.
    pub service: Service,
    /// Path prefix to match (e.g. `/secrets/sample-secret`); `/` matches everything.
    pub path: String,
    /// HTTP method to match; any when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Answer with this status (429 or 5xx) instead of handling the request.
    #[serde(default)]
    pub status: Option<u16>,
    /// `Retry-After` header value in seconds, sent with `status`.
    #[serde(default)]
    pub retry_after_secs: Option<u32>,
    /// Delay before answering (or handling), in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Apply to the first N matching requests only; forever when absent.
    #[serde(default)]
    pub times: Option<u32>,
}

impl Config {
    /// Parses and validates YAML text. `origin` names it in errors; relative file paths in it
    /// are resolved against `base`.
    pub fn from_yaml(text: &str, origin: &str, base: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = serde_saphyr::from_str(text).map_err(|e| ConfigError::Yaml {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        config.resolve_paths(base);
        config.validate(origin)?;
        Ok(config)
    }

    /// Reads, parses and validates a YAML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_yaml(&text, &path.display().to_string(), base)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |source: &mut PemSource| {
            if let PemSource::File(path) = source {
                *path = base.join(&*path);
            }
        };
        for tenant in &mut self.entra.tenants {
            for app in &mut tenant.applications {
                app.certificates.iter_mut().for_each(fix);
                app.federated_credentials
                    .iter_mut()
                    .for_each(|f| fix(&mut f.key));
            }
        }
        for cert in &mut self.keyvault.certificates {
            cert.import.iter_mut().for_each(fix);
        }
        if let Some(ca) = &mut self.ca_file {
            *ca = base.join(&*ca);
        }
    }

    /// Checks what the types cannot: names, uniqueness, references.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |field: String, problem: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            field,
            problem,
        };
        if self.entra.token_lifetime_secs == 0 {
            return Err(invalid(
                "entra.token_lifetime_secs".into(),
                "must be at least 1 (a token that is expired when issued is useless)".into(),
            ));
        }
        let mut tenant_ids = Vec::new();
        for (t, tenant) in self.entra.tenants.iter().enumerate() {
            if !is_tenant_id(&tenant.id) {
                return Err(invalid(
                    format!("entra.tenants[{t}].id"),
                    format!("{:?} is not a tenant id ([A-Za-z0-9.-]+)", tenant.id),
                ));
            }
            if tenant_ids.contains(&tenant.id) {
                return Err(invalid(
                    format!("entra.tenants[{t}].id"),
                    format!("duplicate tenant {:?}", tenant.id),
                ));
            }
            tenant_ids.push(tenant.id.clone());
            let mut clients = Vec::new();
            for (a, app) in tenant.applications.iter().enumerate() {
                if app.client_id.is_empty() || clients.contains(&app.client_id) {
                    return Err(invalid(
                        format!("entra.tenants[{t}].applications[{a}].client_id"),
                        format!("empty or duplicate client id {:?}", app.client_id),
                    ));
                }
                clients.push(app.client_id.clone());
            }
        }
        if let Some(mi) = &self.entra.managed_identity {
            let app_known = self.entra.tenants.iter().any(|t| {
                t.id == mi.tenant && t.applications.iter().any(|a| a.client_id == mi.client_id)
            });
            if !app_known {
                return Err(invalid(
                    "entra.managed_identity".into(),
                    format!(
                        "client {:?} is not an application of tenant {:?}",
                        mi.client_id, mi.tenant
                    ),
                ));
            }
            if mi.identity_header.is_empty() {
                return Err(invalid(
                    "entra.managed_identity.identity_header".into(),
                    "empty".into(),
                ));
            }
        }
        if let Some(tenant) = &self.keyvault.tenant
            && !tenant_ids.contains(tenant)
        {
            return Err(invalid(
                "keyvault.tenant".into(),
                format!("tenant {tenant:?} is not in entra.tenants"),
            ));
        }
        for (i, policy) in self.keyvault.access_policies.iter().enumerate() {
            if policy.client_id.is_empty() {
                return Err(invalid(
                    format!("keyvault.access_policies[{i}].client_id"),
                    "empty".into(),
                ));
            }
            policy.check().map_err(|(kind, problem)| {
                invalid(format!("keyvault.access_policies[{i}].{kind}"), problem)
            })?;
        }
        for (i, assignment) in self.managed_hsm.role_assignments.iter().enumerate() {
            if assignment.client_id.is_empty() {
                return Err(invalid(
                    format!("managed_hsm.role_assignments[{i}].client_id"),
                    "empty".into(),
                ));
            }
            if crate::managed_hsm::Role::parse(&assignment.role).is_none() {
                return Err(invalid(
                    format!("managed_hsm.role_assignments[{i}].role"),
                    format!(
                        "unknown role {:?} (one of {})",
                        assignment.role,
                        crate::managed_hsm::Role::names()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        let mut names: Vec<&str> = Vec::new();
        for (i, secret) in self.keyvault.secrets.iter().enumerate() {
            check_object_name(&secret.name, &names)
                .map_err(|p| invalid(format!("keyvault.secrets[{i}].name"), p))?;
            names.push(&secret.name);
        }
        for (i, cert) in self.keyvault.certificates.iter().enumerate() {
            check_object_name(&cert.name, &names)
                .map_err(|p| invalid(format!("keyvault.certificates[{i}].name"), p))?;
            names.push(&cert.name);
            if cert.import.is_none() && cert.common_name.is_none() {
                return Err(invalid(
                    format!("keyvault.certificates[{i}]"),
                    "either common_name (generate) or import is required".into(),
                ));
            }
        }
        for (i, rule) in self.faults.iter().enumerate() {
            if !rule.path.starts_with('/') {
                return Err(invalid(
                    format!("faults[{i}].path"),
                    "must start with '/'".into(),
                ));
            }
            if let Some(status) = rule.status
                && !(status == 429 || (500..=599).contains(&status))
            {
                return Err(invalid(
                    format!("faults[{i}].status"),
                    format!("{status} is not 429 or 5xx"),
                ));
            }
            if rule.status.is_none() && rule.latency_ms.is_none() {
                return Err(invalid(
                    format!("faults[{i}]"),
                    "needs status and/or latency_ms".into(),
                ));
            }
        }
        for (i, key) in self.maa.trusted_platform_keys.iter().enumerate() {
            crate::maa::parse_platform_key(key)
                .map_err(|p| invalid(format!("maa.trusted_platform_keys[{i}]"), p))?;
        }
        let evidence = &self.maa.signing_evidence;
        if let Err(e) = evidence.mrsigner.parse::<custos_ids::MrSigner>() {
            return Err(invalid(
                "maa.signing_evidence.mrsigner".into(),
                e.to_string(),
            ));
        }
        if let Err(e) = evidence.mrenclave.parse::<custos_ids::MrEnclave>() {
            return Err(invalid(
                "maa.signing_evidence.mrenclave".into(),
                e.to_string(),
            ));
        }
        Ok(())
    }

    /// The tenant whose tokens the vault accepts.
    pub fn vault_tenant(&self) -> Option<&str> {
        self.keyvault
            .tenant
            .as_deref()
            .or(self.entra.tenants.first().map(|t| t.id.as_str()))
    }
}

/// Key Vault object names: 1-127 characters of `[0-9A-Za-z-]`.
pub fn is_object_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn check_object_name(name: &str, taken: &[&str]) -> Result<(), String> {
    if !is_object_name(name) {
        return Err(format!(
            "{name:?} is not a Key Vault object name ([0-9A-Za-z-]{{1,127}})"
        ));
    }
    // A certificate owns the secret of the same name, so the namespaces overlap.
    if taken.iter().any(|t| t.eq_ignore_ascii_case(name)) {
        return Err(format!(
            "duplicate name {name:?} (names are case-insensitive)"
        ));
    }
    Ok(())
}

/// Tenant ids as the Azure SDKs accept them.
pub fn is_tenant_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}
