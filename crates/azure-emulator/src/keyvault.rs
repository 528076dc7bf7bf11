//! Azure Key Vault: secrets (get, set, list, versions), certificates (get, list, versions,
//! policy), each certificate also readable as the secret of the same name with its private
//! key, and keys (create, get, release: `keys.rs`) — behind the same 401 challenge, bearer
//! validation, access policies and error bodies as the real vault.
//!
//! The same handler serves a Managed HSM on its own listener: keys only, tokens for its own
//! resource (`https://managedhsm.azure.net`), local RBAC roles instead of access policies.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::config::{AccessPolicyConfig, Config, SecretContentType, is_object_name};
use crate::entra::{AccessClaims, TokenRejection};
use crate::http::{self, now, random_hex};
use crate::keys::Keys;
use crate::managed_hsm::{KeyAction, Role};
use crate::pki::{Ca, CertificateWithKey, PkiError, x5t};
use crate::stats::Counter;

/// Which service a listener is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// A vault: secrets, certificates and keys, access policies.
    Vault,
    /// A Managed HSM: keys only, local RBAC.
    ManagedHsm,
}

impl Flavour {
    /// The resource (token audience) the service names in its challenge and accepts.
    pub fn resource(self) -> &'static str {
        match self {
            Self::Vault => "https://vault.azure.net",
            Self::ManagedHsm => "https://managedhsm.azure.net",
        }
    }
}
/// api-versions the emulator answers (those of the SDKs in use and the recordings).
const API_VERSIONS: &[&str] = &[
    "2016-10-01",
    "7.0",
    "7.1",
    "7.2",
    "7.3",
    "7.4",
    "7.5",
    "7.6",
    "2025-07-01",
    "2026-04-01",
];
const LATEST_API_VERSION: &str = "2026-04-01";
const VAULT_NAME: &str = "custos-emulator";
const HSM_NAME: &str = "custos-emulator-hsm";
const MAX_BODY: usize = 1 << 20;

/// The vault's contents and access rules.
pub struct Vault {
    flavour: Flavour,
    url: String,
    tenant: Option<String>,
    access: Access,
    store: RwLock<Store>,
    keys: Keys,
}

/// Who may do what.
enum Access {
    /// A vault's: access policies when configured, else the allowed clients (empty: all).
    Vault {
        allowed_clients: Vec<String>,
        access_policies: Vec<AccessPolicyConfig>,
    },
    /// A Managed HSM's local RBAC (no assignments: all).
    Roles(Vec<(String, Role)>),
}

#[derive(Default)]
struct Store {
    /// By lowercase name.
    secrets: HashMap<String, Versions<SecretVersion>>,
    certificates: HashMap<String, Versions<CertificateVersion>>,
}

struct Versions<T> {
    name: String,
    /// Oldest first; the last one is current.
    versions: Vec<T>,
}

#[derive(Clone)]
struct SecretVersion {
    version: String,
    value: String,
    content_type: Option<String>,
    created: u64,
    enabled: bool,
    tags: Option<Value>,
    /// Set for the secret backing a certificate.
    managed: Option<Managed>,
}

#[derive(Clone)]
struct Managed {
    nbf: u64,
    exp: u64,
}

struct CertificateVersion {
    version: String,
    cert: CertificateWithKey,
    content_type: SecretContentType,
    subject: String,
    dns_names: Vec<String>,
    validity_months: u32,
    created: u64,
    nbf: u64,
    exp: u64,
}

impl Vault {
    /// The configured secrets and certificates (certificates are generated or imported now);
    /// released keys are signed under `ca`.
    pub fn new(config: &Config, url: &str, ca: &Ca) -> Result<Self, PkiError> {
        let mut store = Store::default();
        let now = now();
        for secret in &config.keyvault.secrets {
            store.put_secret(
                &secret.name,
                secret.value.clone(),
                secret.content_type.clone(),
                None,
                None,
                now,
            );
        }
        for c in &config.keyvault.certificates {
            let context = |e: PkiError| PkiError::Input(format!("certificate {}: {e}", c.name));
            let cert = match &c.import {
                Some(source) => {
                    let pem = source
                        .read(std::path::Path::new("."))
                        .map_err(|e| PkiError::Input(format!("certificate {}: {e}", c.name)))?;
                    CertificateWithKey::from_pem(&pem).map_err(context)?
                }
                None => CertificateWithKey::generate_self_signed(
                    c.common_name.as_deref().unwrap_or(&c.name),
                    &c.dns_names,
                    c.validity_days,
                )
                .map_err(context)?,
            };
            store
                .put_certificate(
                    &c.name,
                    cert,
                    c.content_type,
                    c.validity_days.div_ceil(30),
                    now,
                )
                .map_err(context)?;
        }
        Ok(Self {
            flavour: Flavour::Vault,
            url: url.to_owned(),
            tenant: config.vault_tenant().map(str::to_owned),
            access: Access::Vault {
                allowed_clients: config.keyvault.allowed_clients.clone(),
                access_policies: config.keyvault.access_policies.clone(),
            },
            store: RwLock::new(store),
            keys: Keys::new(ca, Flavour::Vault)?,
        })
    }

    /// The Managed HSM: no secrets or certificates; keys created through the API.
    pub fn managed_hsm(config: &Config, url: &str, ca: &Ca) -> Result<Self, PkiError> {
        let roles = config
            .managed_hsm
            .role_assignments
            .iter()
            .map(|a| {
                let role = Role::parse(&a.role)
                    .ok_or_else(|| PkiError::Input(format!("unknown role {:?}", a.role)))?;
                Ok((a.client_id.clone(), role))
            })
            .collect::<Result<_, PkiError>>()?;
        Ok(Self {
            flavour: Flavour::ManagedHsm,
            url: url.to_owned(),
            tenant: config.vault_tenant().map(str::to_owned),
            access: Access::Roles(roles),
            store: RwLock::new(Store::default()),
            keys: Keys::new(ca, Flavour::ManagedHsm)?,
        })
    }
}

impl Store {
    fn put_secret(
        &mut self,
        name: &str,
        value: String,
        content_type: Option<String>,
        tags: Option<Value>,
        managed: Option<Managed>,
        now: u64,
    ) -> SecretVersion {
        let version = SecretVersion {
            version: random_hex(16),
            value,
            content_type,
            created: now,
            enabled: true,
            tags,
            managed,
        };
        self.secrets
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Versions {
                name: name.to_owned(),
                versions: Vec::new(),
            })
            .versions
            .push(version.clone());
        version
    }

    fn put_certificate(
        &mut self,
        name: &str,
        cert: CertificateWithKey,
        content_type: SecretContentType,
        validity_months: u32,
        now: u64,
    ) -> Result<(), PkiError> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.leaf())
            .map_err(|e| PkiError::Input(format!("certificate is not valid X.509: {e}")))?;
        let nbf = parsed.validity().not_before.timestamp().max(0) as u64;
        let exp = parsed.validity().not_after.timestamp().max(0) as u64;
        let subject = parsed.subject().to_string();
        let dns_names = parsed
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let value = match content_type {
            SecretContentType::Pem => cert.to_pem_secret(),
            SecretContentType::Pkcs12 => cert.to_pkcs12_secret(name)?,
        };
        let secret = self.put_secret(
            name,
            value,
            Some(content_type.as_str().to_owned()),
            Some(json!({})),
            Some(Managed { nbf, exp }),
            now,
        );
        // A certificate version and its secret version share the version id.
        let version = CertificateVersion {
            version: secret.version,
            cert,
            content_type,
            subject,
            dns_names,
            validity_months,
            created: now,
            nbf,
            exp,
        };
        self.certificates
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Versions {
                name: name.to_owned(),
                versions: Vec::new(),
            })
            .versions
            .push(version);
        Ok(())
    }
}

impl<T: HasVersion> Versions<T> {
    /// `None`/empty: the current version.
    fn get(&self, version: Option<&str>) -> Option<&T> {
        match version {
            None | Some("") => self.versions.last(),
            Some(v) => self
                .versions
                .iter()
                .find(|x| x.version_id().eq_ignore_ascii_case(v)),
        }
    }
}

trait HasVersion {
    fn version_id(&self) -> &str;
}
impl HasVersion for SecretVersion {
    fn version_id(&self) -> &str {
        &self.version
    }
}
impl HasVersion for CertificateVersion {
    fn version_id(&self) -> &str {
        &self.version
    }
}

pub fn router(flavour: Flavour) -> Router<Arc<Shared>> {
    Router::new().fallback(move |state, request| handle(state, flavour, request))
}

/// A Key Vault error body with its status.
pub(crate) struct KvError {
    status: StatusCode,
    body: Value,
}

impl KvError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": { "code": code, "message": message.into() } }),
        }
    }

    /// 403 `Forbidden` with `innererror.code` = `inner`.
    fn forbidden(message: String, inner: &str) -> Self {
        let mut error = Self::new(StatusCode::FORBIDDEN, "Forbidden", message);
        error.body["error"]["innererror"] = json!({ "code": inner });
        error
    }

    pub(crate) fn bad_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadParameter", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    fn not_found(kind: Kind, name: &str, version: Option<&str>) -> Self {
        let (code, noun) = match kind {
            Kind::Secret => ("SecretNotFound", "secret"),
            Kind::Certificate => ("CertificateNotFound", "certificate"),
        };
        let id = match version {
            Some(v) if !v.is_empty() => format!("{name}/{v}"),
            _ => name.to_owned(),
        };
        Self::new(
            StatusCode::NOT_FOUND,
            code,
            format!(
                "A {noun} with (name/id) {id} was not found in this key vault. If you recently deleted this {noun} you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Secret,
    Certificate,
}

/// What a request asks for, parsed from the path.
enum Operation<'a> {
    List(Kind),
    Get(Kind, &'a str, Option<&'a str>),
    Versions(Kind, &'a str),
    Policy(&'a str),
    SetSecret(&'a str),
    ImportCertificate(&'a str),
    CreateKey(&'a str),
    GetKey(&'a str, Option<&'a str>),
    ReleaseKey(&'a str, Option<&'a str>),
}

impl Operation<'_> {
    /// The Managed HSM data action of a key operation; `None` for secrets and certificates.
    fn key_action(&self) -> Option<KeyAction> {
        match self {
            Operation::CreateKey(_) => Some(KeyAction::Create),
            Operation::GetKey(..) => Some(KeyAction::Read),
            Operation::ReleaseKey(..) => Some(KeyAction::Release),
            _ => None,
        }
    }

    /// The key's name, for key operations.
    fn key_name(&self) -> Option<&str> {
        match self {
            Operation::CreateKey(name)
            | Operation::GetKey(name, _)
            | Operation::ReleaseKey(name, _) => Some(name),
            _ => None,
        }
    }

    /// The permission an access policy must grant: (object kind, operation).
    fn permission(&self) -> (&'static str, &'static str) {
        match self {
            Operation::CreateKey(_) => ("keys", "create"),
            Operation::GetKey(..) => ("keys", "get"),
            Operation::ReleaseKey(..) => ("keys", "release"),
            Operation::List(Kind::Secret) | Operation::Versions(Kind::Secret, _) => {
                ("secrets", "list")
            }
            Operation::Get(Kind::Secret, ..) => ("secrets", "get"),
            Operation::SetSecret(_) => ("secrets", "set"),
            Operation::List(Kind::Certificate) | Operation::Versions(Kind::Certificate, _) => {
                ("certificates", "list")
            }
            Operation::Get(Kind::Certificate, ..) | Operation::Policy(_) => ("certificates", "get"),
            Operation::ImportCertificate(_) => ("certificates", "import"),
        }
    }
}

fn parse_operation<'a>(method: &Method, path: &'a str) -> Result<Operation<'a>, KvError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segments[0] == "keys" {
        return parse_key_operation(method, path, &segments[1..]);
    }
    let kind = match segments[0] {
        "secrets" => Kind::Secret,
        "certificates" => Kind::Certificate,
        _ => return Err(unknown_path(method, path)),
    };
    let op = match (method, kind, &segments[1..]) {
        (&Method::GET, _, [] | [""]) => Operation::List(kind),
        (&Method::GET, _, [name] | [name, ""]) => Operation::Get(kind, name, None),
        (&Method::GET, _, [name, "versions"]) => Operation::Versions(kind, name),
        (&Method::GET, Kind::Certificate, [name, "policy"]) => Operation::Policy(name),
        (&Method::GET, _, [name, version]) => Operation::Get(kind, name, Some(version)),
        (&Method::PUT, Kind::Secret, [name]) => Operation::SetSecret(name),
        (&Method::POST, Kind::Certificate, [name, "import"]) => Operation::ImportCertificate(name),
        _ => return Err(unknown_path(method, path)),
    };
    let name = match &op {
        Operation::List(_) => None,
        Operation::Get(_, n, _)
        | Operation::Versions(_, n)
        | Operation::Policy(n)
        | Operation::SetSecret(n)
        | Operation::ImportCertificate(n) => Some(*n),
        Operation::CreateKey(_) | Operation::GetKey(..) | Operation::ReleaseKey(..) => None,
    };
    check_name(name)?;
    Ok(op)
}

fn check_name(name: Option<&str>) -> Result<(), KvError> {
    match name {
        Some(name) if !is_object_name(name) => Err(KvError::bad_parameter(format!(
            "The request URI contains an invalid name: {name}"
        ))),
        _ => Ok(()),
    }
}

/// `/keys/{name}/create`, `/keys/{name}[/{version}]`, `/keys/{name}[/{version}]/release`
/// (the SDKs send an empty version as `//release` or a trailing slash).
fn parse_key_operation<'a>(
    method: &Method,
    path: &'a str,
    segments: &[&'a str],
) -> Result<Operation<'a>, KvError> {
    let version = |v: &'a str| (!v.is_empty()).then_some(v);
    let op = match (method, segments) {
        (&Method::POST, [name, "create"]) => Operation::CreateKey(name),
        (&Method::GET, [name] | [name, ""]) => Operation::GetKey(name, None),
        (&Method::GET, [name, v]) => Operation::GetKey(name, version(v)),
        (&Method::POST, [name, "release"]) => Operation::ReleaseKey(name, None),
        (&Method::POST, [name, v, "release"]) => Operation::ReleaseKey(name, version(v)),
        _ => return Err(unknown_path(method, path)),
    };
    // Every pattern above put the key's name first.
    check_name(segments.first().copied())?;
    Ok(op)
}

/// Import Certificate (`POST /certificates/{name}/import`): a new version of `name` from
/// PEM text (key and chain), as a vault owner rotates a certificate. The emulator imports
/// PEM only; a PFX is refused with a message saying so.
fn import_certificate(
    vault: &Vault,
    base: &str,
    name: &str,
    body: &[u8],
    now: u64,
) -> Result<Value, KvError> {
    #[derive(Deserialize)]
    struct Import {
        value: Option<String>,
        policy: Option<ImportPolicy>,
    }
    #[derive(Deserialize)]
    struct ImportPolicy {
        secret_props: Option<SecretProps>,
    }
    #[derive(Deserialize)]
    struct SecretProps {
        #[serde(rename = "contentType")]
        content_type: Option<SecretContentType>,
    }
    let request: Import = serde_json::from_slice(body).map_err(|e| {
        KvError::bad_parameter(format!(
            "The request body is not valid JSON for a certificate import: {e}"
        ))
    })?;
    let value = request
        .value
        .ok_or_else(|| KvError::bad_parameter("Property 'value' is required."))?;
    if !value.trim_start().starts_with("-----BEGIN") {
        return Err(KvError::bad_parameter(
            "The emulator imports PEM certificates only (the key and the chain as PEM text in 'value'); a base64 PFX is not supported.",
        ));
    }
    let cert = CertificateWithKey::from_pem(&value).map_err(|e| {
        KvError::bad_parameter(format!("The certificate could not be imported: {e}"))
    })?;
    let mut store = vault.store.write().expect("vault lock");
    let existing = store.certificates.get(&name.to_ascii_lowercase());
    let stored_name = existing.map_or(name.to_owned(), |c| c.name.clone());
    // As Key Vault: the secret's format is the import's policy, else the certificate's.
    let content_type = request
        .policy
        .and_then(|p| p.secret_props)
        .and_then(|p| p.content_type)
        .or_else(|| {
            existing
                .and_then(|c| c.versions.last())
                .map(|v| v.content_type)
        })
        .unwrap_or_default();
    let validity_months = existing
        .and_then(|c| c.versions.last())
        .map_or(12, |v| v.validity_months);
    store
        .put_certificate(&stored_name, cert, content_type, validity_months, now)
        .map_err(|e| {
            KvError::bad_parameter(format!("The certificate could not be imported: {e}"))
        })?;
    let entry = &store.certificates[&stored_name.to_ascii_lowercase()];
    Ok(certificate_bundle(
        base,
        &entry.name,
        entry.versions.last().expect("just stored"),
    ))
}

fn unknown_path(method: &Method, path: &str) -> KvError {
    KvError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!(
            "The emulator does not implement {method} {path} (see docs/azure.md for what it emulates)."
        ),
    )
}

async fn handle(State(shared): State<Arc<Shared>>, flavour: Flavour, request: Request) -> Response {
    shared.stats.bump(Counter::KeyVaultRequests);
    let vault = match flavour {
        Flavour::Vault => &shared.vault,
        Flavour::ManagedHsm => &shared.managed_hsm,
    };
    let client_request_id = request.headers().get("x-ms-client-request-id").cloned();
    let mut response = match serve(&shared, vault, request).await {
        Ok(response) => response,
        Err(e) => {
            let challenge = e.status == StatusCode::UNAUTHORIZED;
            let mut response = http::json(e.status, &e.body);
            if challenge {
                shared.stats.bump(Counter::KeyVaultChallenges);
                let tenant = vault.tenant.as_deref().unwrap_or("common");
                let value = format!(
                    "Bearer authorization=\"{}/{tenant}\", resource=\"{}\"",
                    shared.urls.authority_host,
                    flavour.resource()
                );
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(&value).expect("challenge is a valid header value"),
                );
            }
            response
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-ms-keyvault-region", HeaderValue::from_static("emulator"));
    headers.insert(
        "x-ms-keyvault-service-version",
        HeaderValue::from_static("1.9.0.0-custos-emulator"),
    );
    headers.insert(
        "x-ms-request-id",
        HeaderValue::from_str(&crate::http::random_guid()).expect("guid"),
    );
    if let Some(id) = client_request_id {
        headers.insert("x-ms-client-request-id", id);
    }
    response
}

async fn serve(shared: &Shared, vault: &Vault, request: Request) -> Result<Response, KvError> {
    let claims = authenticate(shared, vault, request.headers())?;
    let query = request.uri().query().unwrap_or("");
    let api_version = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "api-version")
        .map(|(_, v)| v.into_owned());
    match api_version.as_deref() {
        None | Some("") => {
            return Err(KvError::bad_parameter(
                "The 'api-version' query parameter is missing.",
            ));
        }
        Some(v) if !API_VERSIONS.contains(&v) => {
            return Err(KvError::bad_parameter(format!(
                "The specified version ({v}) is not recognized. Consider using the latest supported version ({LATEST_API_VERSION})."
            )));
        }
        Some(_) => {}
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let op = parse_operation(&method, &path)?;
    if vault.flavour == Flavour::ManagedHsm && op.key_action().is_none() {
        return Err(unknown_path(&method, &path));
    }
    authorize(vault, &claims, &op)?;

    let body = match op {
        Operation::SetSecret(_)
        | Operation::ImportCertificate(_)
        | Operation::CreateKey(_)
        | Operation::ReleaseKey(..) => axum::body::to_bytes(request.into_body(), MAX_BODY)
            .await
            .map_err(|_| KvError::bad_parameter("The request body is too large or unreadable."))?,
        _ => Default::default(),
    };
    let now = now();
    let base = &vault.url;
    let result = match op {
        Operation::Get(Kind::Secret, name, version) => {
            let store = vault.store.read().expect("vault lock");
            let secret = store
                .secrets
                .get(&name.to_ascii_lowercase())
                .and_then(|s| s.get(version).map(|v| (s.name.as_str(), v)))
                .ok_or_else(|| KvError::not_found(Kind::Secret, name, version))?;
            if !secret.1.enabled {
                return Err(KvError::new(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "Operation get is not allowed on a disabled secret.",
                ));
            }
            shared.stats.bump(Counter::KeyVaultReads);
            secret_bundle(base, secret.0, secret.1, true)
        }
        Operation::Get(Kind::Certificate, name, version) => {
            let store = vault.store.read().expect("vault lock");
            let entry = store
                .certificates
                .get(&name.to_ascii_lowercase())
                .ok_or_else(|| KvError::not_found(Kind::Certificate, name, version))?;
            let cert = entry
                .get(version)
                .ok_or_else(|| KvError::not_found(Kind::Certificate, name, version))?;
            shared.stats.bump(Counter::KeyVaultReads);
            certificate_bundle(base, &entry.name, cert)
        }
        Operation::Policy(name) => {
            let store = vault.store.read().expect("vault lock");
            let entry = store
                .certificates
                .get(&name.to_ascii_lowercase())
                .ok_or_else(|| KvError::not_found(Kind::Certificate, name, None))?;
            let cert = entry.versions.last().expect("a certificate has a version");
            policy(base, &entry.name, cert)
        }
        Operation::List(kind) => {
            let store = vault.store.read().expect("vault lock");
            let mut items: Vec<Value> = match kind {
                Kind::Secret => store
                    .secrets
                    .values()
                    .map(|s| {
                        secret_item(
                            &format!("{base}/secrets/{}", s.name),
                            s.versions.last().expect("versioned"),
                        )
                    })
                    .collect(),
                Kind::Certificate => store
                    .certificates
                    .values()
                    .map(|c| {
                        certificate_item(
                            &format!("{base}/certificates/{}", c.name),
                            c.versions.last().expect("versioned"),
                        )
                    })
                    .collect(),
            };
            items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            json!({ "value": items, "nextLink": null })
        }
        Operation::Versions(kind, name) => {
            let store = vault.store.read().expect("vault lock");
            let items: Vec<Value> = match kind {
                Kind::Secret => {
                    let s = store
                        .secrets
                        .get(&name.to_ascii_lowercase())
                        .ok_or_else(|| KvError::not_found(kind, name, None))?;
                    s.versions
                        .iter()
                        .map(|v| {
                            secret_item(&format!("{base}/secrets/{}/{}", s.name, v.version), v)
                        })
                        .collect()
                }
                Kind::Certificate => {
                    let c = store
                        .certificates
                        .get(&name.to_ascii_lowercase())
                        .ok_or_else(|| KvError::not_found(kind, name, None))?;
                    c.versions
                        .iter()
                        .map(|v| {
                            certificate_item(
                                &format!("{base}/certificates/{}/{}", c.name, v.version),
                                v,
                            )
                        })
                        .collect()
                }
            };
            json!({ "value": items, "nextLink": null })
        }
        Operation::SetSecret(name) => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct SetSecret {
                value: Option<String>,
                content_type: Option<String>,
                tags: Option<Value>,
                attributes: Option<SetAttributes>,
            }
            #[derive(Deserialize)]
            struct SetAttributes {
                enabled: Option<bool>,
            }
            let request: SetSecret = serde_json::from_slice(&body).map_err(|e| {
                KvError::bad_parameter(format!(
                    "The request body is not valid JSON for a secret: {e}"
                ))
            })?;
            let value = request
                .value
                .ok_or_else(|| KvError::bad_parameter("Property 'value' is required."))?;
            let mut store = vault.store.write().expect("vault lock");
            if store.certificates.contains_key(&name.to_ascii_lowercase()) {
                return Err(KvError::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "Secret {name} is managed by a certificate and cannot be set; update the certificate instead."
                    ),
                ));
            }
            let stored_name = store
                .secrets
                .get(&name.to_ascii_lowercase())
                .map_or(name.to_owned(), |s| s.name.clone());
            let mut version = store.put_secret(
                &stored_name,
                value,
                request.content_type,
                request.tags,
                None,
                now,
            );
            if let Some(false) = request.attributes.and_then(|a| a.enabled) {
                version.enabled = false;
                let entry = store
                    .secrets
                    .get_mut(&stored_name.to_ascii_lowercase())
                    .expect("just stored");
                entry.versions.last_mut().expect("just stored").enabled = false;
            }
            secret_bundle(base, &stored_name, &version, true)
        }
        Operation::ImportCertificate(name) => import_certificate(vault, base, name, &body, now)?,
        Operation::CreateKey(name) => vault.keys.create(base, name, &body, now)?,
        Operation::GetKey(name, version) => vault.keys.get(base, name, version)?,
        Operation::ReleaseKey(name, version) => vault.keys.release(
            &shared.maa,
            base,
            name,
            version,
            api_version.as_deref().unwrap_or_default(),
            &body,
        )?,
    };
    Ok(http::json(StatusCode::OK, &result))
}

fn authenticate(
    shared: &Shared,
    vault: &Vault,
    headers: &HeaderMap,
) -> Result<AccessClaims, KvError> {
    let unauthorized =
        |message: String| KvError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            unauthorized("AKV10000: Request is missing a Bearer or PoP token.".into())
        })?;
    let tenant = vault.tenant.as_deref().unwrap_or("common");
    let resource = vault.flavour.resource();
    let audiences = [resource, &format!("{resource}/")];
    shared
        .directory
        .validate_access_token(token, &audiences, tenant)
        .map_err(|rejection| match rejection {
            TokenRejection::Invalid(why) => {
                unauthorized(format!("AKV10016: Token validation failed: {why}."))
            }
            TokenRejection::Expired => {
                unauthorized("AKV10013: Token has expired or is not yet valid.".into())
            }
            TokenRejection::Audience { expected, found } => unauthorized(format!(
                "AKV10022: Invalid audience. Expected {expected}, found: {found}."
            )),
            TokenRejection::Issuer { expected, found } => unauthorized(format!(
                "AKV10032: Invalid issuer. Expected one of {expected}, found {found}."
            )),
        })
}

/// Access policies when configured (the app's policy must list the permission, or `all`),
/// else `allowed_clients` (empty: every app of the tenant may do everything).
fn authorize(vault: &Vault, claims: &AccessClaims, op: &Operation) -> Result<(), KvError> {
    match &vault.access {
        Access::Vault {
            allowed_clients,
            access_policies,
        } => {
            let (kind, operation) = op.permission();
            let allowed = if access_policies.is_empty() {
                allowed_clients.is_empty() || allowed_clients.contains(&claims.appid)
            } else {
                access_policies
                    .iter()
                    .filter(|p| p.client_id.eq_ignore_ascii_case(&claims.appid))
                    .any(|p| p.grants(kind, operation))
            };
            if allowed {
                return Ok(());
            }
            Err(KvError::forbidden(
                format!(
                    "The user, group or application 'appid={};oid={};iss={}' does not have {kind} {operation} permission on key vault '{VAULT_NAME};location=emulator'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                    claims.appid, claims.oid, claims.iss
                ),
                "AccessDenied",
            ))
        }
        Access::Roles(assignments) => {
            let action = op
                .key_action()
                .expect("a Managed HSM serves key operations only");
            let allowed = assignments.is_empty()
                || assignments.iter().any(|(client, role)| {
                    client.eq_ignore_ascii_case(&claims.appid) && role.allows(action)
                });
            if allowed {
                return Ok(());
            }
            Err(KvError::forbidden(
                format!(
                    "Caller is not authorized to perform action on resource.\r\nCaller: appid={};oid={};iss={}\r\nAction: '{}'\r\nResource: '/keys/{}'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC'\r\nVault: {HSM_NAME};location=emulator\r\n",
                    claims.appid,
                    claims.oid,
                    claims.iss,
                    action.data_action(),
                    op.key_name().unwrap_or_default().to_ascii_lowercase(),
                ),
                "ForbiddenByRbac",
            ))
        }
    }
}

fn secret_attributes(v: &SecretVersion) -> Value {
    let mut attributes = json!({
        "enabled": v.enabled,
        "created": v.created,
        "updated": v.created,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    });
    if let Some(m) = &v.managed {
        attributes["nbf"] = json!(m.nbf);
        attributes["exp"] = json!(m.exp);
    }
    attributes
}

fn secret_bundle(base: &str, name: &str, v: &SecretVersion, with_value: bool) -> Value {
    let mut bundle = json!({});
    if with_value {
        bundle["value"] = json!(v.value);
    }
    if let Some(ct) = &v.content_type {
        bundle["contentType"] = json!(ct);
    }
    bundle["id"] = json!(format!("{base}/secrets/{name}/{}", v.version));
    if v.managed.is_some() {
        bundle["managed"] = json!(true);
    }
    bundle["attributes"] = secret_attributes(v);
    if let Some(tags) = &v.tags {
        bundle["tags"] = tags.clone();
    }
    if v.managed.is_some() {
        bundle["kid"] = json!(format!("{base}/keys/{name}/{}", v.version));
    }
    bundle
}

fn secret_item(id: &str, v: &SecretVersion) -> Value {
    let mut item = json!({ "id": id, "attributes": secret_attributes(v) });
    if let Some(ct) = &v.content_type {
        item["contentType"] = json!(ct);
    }
    if v.managed.is_some() {
        item["managed"] = json!(true);
    }
    item
}

fn certificate_attributes(c: &CertificateVersion) -> Value {
    json!({
        "enabled": true,
        "nbf": c.nbf,
        "exp": c.exp,
        "created": c.created,
        "updated": c.created,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    })
}

fn certificate_item(id: &str, c: &CertificateVersion) -> Value {
    json!({ "id": id, "x5t": x5t(c.cert.leaf()), "attributes": certificate_attributes(c), "tags": {} })
}

fn certificate_bundle(base: &str, name: &str, c: &CertificateVersion) -> Value {
    json!({
        "id": format!("{base}/certificates/{name}/{}", c.version),
        "kid": format!("{base}/keys/{name}/{}", c.version),
        "sid": format!("{base}/secrets/{name}/{}", c.version),
        "x5t": x5t(c.cert.leaf()),
        "cer": STANDARD.encode(c.cert.leaf()),
        "attributes": certificate_attributes(c),
        "tags": {},
        "policy": policy(base, name, c),
    })
}

fn policy(base: &str, name: &str, c: &CertificateVersion) -> Value {
    let mut x509 = json!({
        "subject": c.subject,
        "ekus": ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"],
        "key_usage": ["digitalSignature", "keyEncipherment"],
        "validity_months": c.validity_months,
        "basic_constraints": { "ca": false },
    });
    if !c.dns_names.is_empty() {
        x509["sans"] = json!({ "dns_names": c.dns_names });
    }
    json!({
        "id": format!("{base}/certificates/{name}/policy"),
        "key_props": { "exportable": true, "kty": "RSA", "key_size": 2048, "reuse_key": false },
        "secret_props": { "contentType": c.content_type.as_str() },
        "x509_props": x509,
        "lifetime_actions": [ { "trigger": { "lifetime_percentage": 80 }, "action": { "action_type": "AutoRenew" } } ],
        "issuer": { "name": "Self" },
        "attributes": { "enabled": true, "created": c.created, "updated": c.created },
    })
}
