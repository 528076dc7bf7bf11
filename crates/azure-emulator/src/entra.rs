//! Entra ID (Azure AD) v2.0: the client-credentials token endpoint, tenant OpenID metadata and
//! signing keys — and validation of the access tokens it issued, for the vault.
//!
//! Client authentication: a client secret, a client assertion signed by a registered
//! certificate's key (RS256 or PS256, identified by `x5t` or `x5t#S256`, `aud` = the token
//! endpoint, `iss` = `sub` = the client id), or a federated token (workload identity) from a
//! configured issuer. Errors are `AADSTS` bodies as Entra sends them.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::Shared;
use crate::config::{Config, is_tenant_id};
use crate::http::{json, now, random_guid, random_hex};
use crate::pki::{self, KidStyle, PkiError, SigningKey};
use crate::stats::Counter;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Entra ID tolerates this much clock skew on assertions.
const CLOCK_SKEW_SECS: u64 = 300;

/// The tenants, their apps and the token-signing key.
pub struct Directory {
    authority: String,
    tenants: HashMap<String, Tenant>,
    signing_key: SigningKey,
    token_lifetime_secs: u64,
    managed_identity: Option<crate::config::ManagedIdentityConfig>,
}

struct Tenant {
    apps: HashMap<String, App>,
}

struct App {
    object_id: String,
    secrets: Vec<String>,
    certificates: Vec<RegisteredCertificate>,
    federated: Vec<FederatedCredential>,
}

struct RegisteredCertificate {
    x5t: String,
    x5t_s256: String,
    key: DecodingKey,
}

struct FederatedCredential {
    issuer: String,
    subject: String,
    audiences: Vec<String>,
    key: DecodingKey,
}

/// The claims of the access tokens this emulator issues (a subset of Entra's v1.0 app tokens).
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The resource the token is for, e.g. `https://vault.azure.net`.
    pub aud: String,
    /// `https://sts.windows.net/{tenant}/`.
    pub iss: String,
    /// Issued at.
    pub iat: u64,
    /// Not before.
    pub nbf: u64,
    /// Expiry.
    pub exp: u64,
    /// The client id.
    pub appid: String,
    /// How the client authenticated: "1" secret, "2" certificate or federated assertion.
    pub appidacr: String,
    /// The service principal's object id.
    pub oid: String,
    /// Same as `oid` for app tokens.
    pub sub: String,
    /// The tenant.
    pub tid: String,
    /// A unique token id.
    pub uti: String,
    /// Token version.
    pub ver: String,
}

/// Why an access token was refused by a resource.
#[derive(Debug)]
pub enum TokenRejection {
    /// Not a JWT, bad signature, wrong algorithm.
    Invalid(String),
    /// Expired or not yet valid.
    Expired,
    /// Wrong `aud`.
    Audience { expected: String, found: String },
    /// Wrong issuer (another tenant).
    Issuer { expected: String, found: String },
}

impl Directory {
    /// Loads the configured tenants and makes a signing key.
    pub fn new(config: &Config, authority: &str) -> Result<Self, PkiError> {
        let mut tenants = HashMap::new();
        for tenant in &config.entra.tenants {
            let mut apps = HashMap::new();
            for app in &tenant.applications {
                let mut certificates = Vec::new();
                for source in &app.certificates {
                    let pem = source.read(std::path::Path::new(".")).map_err(|e| {
                        PkiError::Input(format!("app {}: certificate: {e}", app.client_id))
                    })?;
                    certificates.push(registered_certificate(&pem).map_err(|e| {
                        PkiError::Input(format!("app {}: certificate: {e}", app.client_id))
                    })?);
                }
                let mut federated = Vec::new();
                for fed in &app.federated_credentials {
                    let pem = fed.key.read(std::path::Path::new(".")).map_err(|e| {
                        PkiError::Input(format!("app {}: federated key: {e}", app.client_id))
                    })?;
                    federated.push(FederatedCredential {
                        issuer: fed.issuer.clone(),
                        subject: fed.subject.clone(),
                        audiences: fed.audiences.clone(),
                        key: rsa_verification_key(&pem).map_err(|e| {
                            PkiError::Input(format!("app {}: federated key: {e}", app.client_id))
                        })?,
                    });
                }
                apps.insert(
                    app.client_id.clone(),
                    App {
                        object_id: derived_guid(&format!("{}/{}", tenant.id, app.client_id)),
                        secrets: app.client_secrets.clone(),
                        certificates,
                        federated,
                    },
                );
            }
            tenants.insert(tenant.id.to_ascii_lowercase(), Tenant { apps });
        }
        Ok(Self {
            authority: authority.to_owned(),
            tenants,
            signing_key: SigningKey::generate("accounts.emulator.custos", KidStyle::Sha1Base64Url)?,
            token_lifetime_secs: config.entra.token_lifetime_secs,
            managed_identity: config.entra.managed_identity.clone(),
        })
    }

    /// The issuer of access tokens for `tenant`, as Entra writes it in v1.0 tokens.
    pub fn access_token_issuer(tenant: &str) -> String {
        format!("https://sts.windows.net/{tenant}/")
    }

    /// The token endpoint URL of `tenant`.
    fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.authority)
    }

    /// Checks an access token presented to a resource.
    pub fn validate_access_token(
        &self,
        token: &str,
        audiences: &[&str],
        tenant: &str,
    ) -> Result<AccessClaims, TokenRejection> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| TokenRejection::Invalid(format!("not a JWT: {e}")))?;
        if header.alg != Algorithm::RS256 || header.kid.as_deref() != Some(self.signing_key.kid()) {
            return Err(TokenRejection::Invalid("unknown signing key".into()));
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_SKEW_SECS;
        let claims = jsonwebtoken::decode::<AccessClaims>(
            token,
            self.signing_key.decoding_key(),
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature
            | jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenRejection::Expired,
            _ => TokenRejection::Invalid(e.to_string()),
        })?
        .claims;
        if !audiences.contains(&claims.aud.as_str()) {
            return Err(TokenRejection::Audience {
                expected: audiences[0].to_owned(),
                found: claims.aud,
            });
        }
        let issuer = Self::access_token_issuer(tenant);
        if claims.iss != issuer {
            return Err(TokenRejection::Issuer {
                expected: issuer,
                found: claims.iss,
            });
        }
        Ok(claims)
    }
}

fn registered_certificate(pem: &str) -> Result<RegisteredCertificate, PkiError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| PkiError::Input(format!("no certificate in PEM: {e}")))?;
    let (n, e) = pki::rsa_components(&der)?;
    Ok(RegisteredCertificate {
        x5t: pki::x5t(&der),
        x5t_s256: pki::x5t_s256(&der),
        key: DecodingKey::from_rsa_raw_components(&n, &e),
    })
}

/// An RSA verification key from a PEM certificate or public key.
fn rsa_verification_key(pem: &str) -> Result<DecodingKey, PkiError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
    if let Ok(cert) = CertificateDer::from_pem_slice(pem.as_bytes()) {
        let (n, e) = pki::rsa_components(&cert)?;
        return Ok(DecodingKey::from_rsa_raw_components(&n, &e));
    }
    let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| PkiError::Input("neither a CERTIFICATE nor a PUBLIC KEY PEM block".into()))?;
    let (_, parsed) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki)
        .map_err(|e| PkiError::Input(format!("unreadable public key: {e}")))?;
    let (n, e) = pki::spki_rsa_components(&parsed)?;
    Ok(DecodingKey::from_rsa_raw_components(&n, &e))
}

use x509_parser::prelude::FromDer as _;

/// A stable GUID-shaped id derived from a name (object ids of service principals).
fn derived_guid(name: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, name.as_bytes());
    let first: &[u8; 16] = digest.as_ref()[..16]
        .try_into()
        .expect("SHA-256 is 32 bytes");
    custos_ids::fmt::guid(first)
}

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(keys))
        .route("/msi/token", get(managed_identity_token))
}

/// An `AADSTS` error as Entra ID sends it.
struct AadError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    message: String,
}

impl AadError {
    fn new(status: StatusCode, error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            error,
            code,
            message: message.into(),
        }
    }

    fn invalid_client(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", code, message)
    }

    fn into_response(self, authority: &str) -> Response {
        let trace_id = random_guid();
        let correlation_id = random_guid();
        let timestamp = time::OffsetDateTime::now_utc();
        let timestamp = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
            timestamp.year(),
            u8::from(timestamp.month()),
            timestamp.day(),
            timestamp.hour(),
            timestamp.minute(),
            timestamp.second()
        );
        let body = serde_json::json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
                self.code, self.message
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("{authority}/error?code={}", self.code),
        });
        json(self.status, &body)
    }
}

async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    shared.stats.bump(Counter::TokenRequests);
    let directory = &shared.directory;
    match issue_token(directory, &tenant, &headers, &body) {
        Ok(response) => {
            shared.stats.bump(Counter::TokensIssued);
            let mut response = json(StatusCode::OK, &response);
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                "no-store, no-cache".parse().expect("valid"),
            );
            response
        }
        Err(e) => e.into_response(&directory.authority),
    }
}

#[derive(Serialize)]
struct TokenResponse {
    token_type: &'static str,
    expires_in: u64,
    ext_expires_in: u64,
    access_token: String,
}

fn issue_token(
    directory: &Directory,
    tenant_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<TokenResponse, AadError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        ));
    }
    let form: HashMap<String, String> = form_urlencoded_pairs(body);
    let tenant = is_tenant_id(tenant_id)
        .then(|| directory.tenants.get(&tenant_id.to_ascii_lowercase()))
        .flatten()
        .ok_or_else(|| {
            AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90002,
                format!("Tenant '{tenant_id}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
            )
        })?;
    let param = |name: &'static str| {
        form.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                format!("The request body must contain the following parameter: '{name}'."),
            )
        })
    };
    let grant_type = param("grant_type")?;
    if grant_type != "client_credentials" {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }
    let client_id = param("client_id")?;
    let app = tenant.apps.get(client_id).ok_or_else(|| {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory '{tenant_id}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."),
        )
    })?;
    let scope = param("scope")?;
    let resource = scope.strip_suffix("/.default").filter(|r| !r.is_empty() && !scope.contains(' ')).ok_or_else(|| {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
        )
    })?;

    let endpoint = directory.token_endpoint(tenant_id);
    let appidacr = if let Some(secret) = form.get("client_secret") {
        let known = app
            .secrets
            .iter()
            .any(|s| constant_time_eq(s.as_bytes(), secret.as_bytes()));
        if !known {
            return Err(AadError::invalid_client(
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            ));
        }
        "1"
    } else if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                50027,
                format!("Invalid client_assertion_type; expected '{ASSERTION_TYPE}'."),
            ));
        }
        verify_assertion(
            app,
            client_id,
            assertion,
            &endpoint,
            &directory.authority,
            tenant_id,
        )?;
        "2"
    } else {
        return Err(AadError::invalid_client(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    };

    let access_token = mint(directory, tenant_id, client_id, app, resource, appidacr)?;
    Ok(TokenResponse {
        token_type: "Bearer",
        expires_in: directory.token_lifetime_secs,
        ext_expires_in: directory.token_lifetime_secs,
        access_token,
    })
}

/// An access token for `resource`, issued to `client_id` of `tenant_id`.
fn mint(
    directory: &Directory,
    tenant_id: &str,
    client_id: &str,
    app: &App,
    resource: &str,
    appidacr: &str,
) -> Result<String, AadError> {
    let now = now();
    let claims = AccessClaims {
        aud: resource.to_owned(),
        iss: Directory::access_token_issuer(tenant_id),
        iat: now,
        nbf: now,
        exp: now + directory.token_lifetime_secs,
        appid: client_id.to_owned(),
        appidacr: appidacr.to_owned(),
        oid: app.object_id.clone(),
        sub: app.object_id.clone(),
        tid: tenant_id.to_owned(),
        uti: random_hex(16),
        ver: "1.0".into(),
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(directory.signing_key.kid().to_owned());
    header.x5t = Some(directory.signing_key.kid().to_owned());
    directory
        .signing_key
        .sign_jwt(&header, &claims)
        .map_err(|e| {
            AadError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                50000,
                e.to_string(),
            )
        })
}

/// App Service's managed identity endpoint (`IDENTITY_ENDPOINT`, api-version 2019-08-01).
async fn managed_identity_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    shared.stats.bump(Counter::TokenRequests);
    let directory = &shared.directory;
    let refuse = |status: StatusCode, message: String| {
        json(
            status,
            &serde_json::json!({ "statusCode": status.as_u16(), "message": message }),
        )
    };
    let Some(mi) = &directory.managed_identity else {
        return refuse(
            StatusCode::NOT_FOUND,
            "No managed identity is configured.".into(),
        );
    };
    let presented = headers
        .get("x-identity-header")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !constant_time_eq(presented, mi.identity_header.as_bytes()) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "The X-IDENTITY-HEADER header is missing or wrong.".into(),
        );
    }
    let params: HashMap<String, String> =
        form_urlencoded_pairs(query.unwrap_or_default().as_bytes());
    if params.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "api-version must be 2019-08-01.".into(),
        );
    }
    let Some(resource) = params.get("resource").filter(|r| !r.is_empty()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The resource parameter is required.".into(),
        );
    };
    if params.get("client_id").is_some_and(|c| *c != mi.client_id) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The requested identity has not been assigned to this resource.".into(),
        );
    }
    let app = &directory.tenants[&mi.tenant.to_ascii_lowercase()].apps[&mi.client_id];
    let resource = resource.trim_end_matches("/.default");
    match mint(directory, &mi.tenant, &mi.client_id, app, resource, "2") {
        Ok(token) => {
            shared.stats.bump(Counter::TokensIssued);
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "access_token": token,
                    "expires_on": (now() + directory.token_lifetime_secs).to_string(),
                    "resource": resource,
                    "token_type": "Bearer",
                    "client_id": mi.client_id,
                }),
            )
        }
        Err(e) => e.into_response(&directory.authority),
    }
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    #[serde(default)]
    aud: serde_json::Value,
}

/// Verifies a client assertion: the app's own certificate-signed JWT, or a federated token.
fn verify_assertion(
    app: &App,
    client_id: &str,
    assertion: &str,
    endpoint: &str,
    authority: &str,
    tenant_id: &str,
) -> Result<(), AadError> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| {
        AadError::invalid_client(
            50027,
            format!("Invalid JWT token. The token is malformed: {e}."),
        )
    })?;
    let unverified: AssertionClaims = unverified_claims(assertion).ok_or_else(|| {
        AadError::invalid_client(50027, "Invalid JWT token. The token is missing iss or sub.")
    })?;
    if unverified.iss != client_id {
        return verify_federated(app, assertion, &header, &unverified);
    }
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(AadError::invalid_client(
            5002738,
            format!(
                "Invalid JWT token. The signing algorithm {:?} is not supported; use RS256 or PS256.",
                header.alg
            ),
        ));
    }
    let presented = header
        .x5t_s256
        .as_deref()
        .map(|t| (t, true))
        .or(header.x5t.as_deref().map(|t| (t, false)));
    let Some((thumbprint, is_sha256)) = presented else {
        return Err(AadError::invalid_client(
            700027,
            "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: 'none' (the JWT header has neither x5t nor x5t#S256)]",
        ));
    };
    let cert = app
        .certificates
        .iter()
        // MSAL sends the thumbprint base64url *with* padding; Entra accepts both forms.
        .find(|c| {
            let thumbprint = thumbprint.trim_end_matches('=');
            if is_sha256 { c.x5t_s256 == thumbprint } else { c.x5t == thumbprint }
        })
        .ok_or_else(|| {
            AadError::invalid_client(
                700027,
                format!("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"),
            )
        })?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = CLOCK_SKEW_SECS;
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    let audiences = [
        endpoint.to_owned(),
        format!("{authority}/{tenant_id}/oauth2/token"),
        format!("{authority}/{tenant_id}/v2.0"),
    ];
    validation.set_audience(&audiences);
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_owned());
    jsonwebtoken::decode::<serde_json::Value>(assertion, &cert.key, &validation)
        .map(drop)
        .map_err(|e| assertion_error(e, &unverified, endpoint))
}

fn verify_federated(
    app: &App,
    assertion: &str,
    header: &Header,
    claims: &AssertionClaims,
) -> Result<(), AadError> {
    let audiences: Vec<String> = match &claims.aud {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let no_match = || {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            70021,
            format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'.",
                claims.iss,
                claims.sub,
                audiences.join(",")
            ),
        )
    };
    let fed = app
        .federated
        .iter()
        .find(|f| {
            f.issuer == claims.iss
                && f.subject == claims.sub
                && audiences.iter().any(|a| f.audiences.contains(a))
        })
        .ok_or_else(no_match)?;
    if header.alg != Algorithm::RS256 {
        return Err(AadError::invalid_client(
            5002738,
            format!(
                "Federated token algorithm {:?} is not supported here; use RS256.",
                header.alg
            ),
        ));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = CLOCK_SKEW_SECS;
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    validation.set_audience(&fed.audiences);
    validation.set_issuer(&[&fed.issuer]);
    jsonwebtoken::decode::<serde_json::Value>(assertion, &fed.key, &validation)
        .map(drop)
        .map_err(|e| assertion_error(e, claims, &fed.audiences.join(",")))
}

fn assertion_error(
    e: jsonwebtoken::errors::Error,
    claims: &AssertionClaims,
    expected_aud: &str,
) -> AadError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => AadError::invalid_client(
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}.",
                now()
            ),
        ),
        ErrorKind::InvalidAudience => AadError::invalid_client(
            700212,
            format!(
                "Client assertion audience claim does not match the expected audience. Expected '{expected_aud}', found '{}'.",
                claims.aud
            ),
        ),
        ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => AadError::invalid_client(
            700023,
            "Client assertion issuer and subject must both be the client id.",
        ),
        ErrorKind::InvalidSignature => {
            AadError::invalid_client(7000274, "Client assertion failed signature validation.")
        }
        other => AadError::invalid_client(50027, format!("Invalid JWT token: {other:?}.")),
    }
}

fn unverified_claims<T: serde::de::DeserializeOwned>(jwt: &str) -> Option<T> {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// Decodes `application/x-www-form-urlencoded` (later duplicates win).
fn form_urlencoded_pairs(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

async fn openid_configuration(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
) -> Response {
    let directory = &shared.directory;
    if !directory.tenants.contains_key(&tenant.to_ascii_lowercase()) {
        return AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
            format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        )
        .into_response(&directory.authority);
    }
    let a = &directory.authority;
    json(
        StatusCode::OK,
        &serde_json::json!({
            "token_endpoint": format!("{a}/{tenant}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{a}/{tenant}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{a}/{tenant}/v2.0"),
            "request_uri_parameter_supported": false,
            "authorization_endpoint": format!("{a}/{tenant}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{a}/{tenant}/oauth2/v2.0/devicecode"),
            "end_session_endpoint": format!("{a}/{tenant}/oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
            "tenant_region_scope": null,
            "cloud_instance_name": "emulator.custos",
        }),
    )
}

async fn keys(State(shared): State<Arc<Shared>>, Path(tenant): Path<String>) -> Response {
    let key = shared
        .directory
        .signing_key
        .entra_jwk(&format!("{}/{tenant}/v2.0", shared.directory.authority));
    json(StatusCode::OK, &serde_json::json!({ "keys": [key] }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let form =
            form_urlencoded_pairs(b"scope=https%3A%2F%2Fvault.azure.net%2F.default&a=b+c&a=d");
        assert_eq!(form["scope"], "https://vault.azure.net/.default");
        assert_eq!(form["a"], "d");
    }
}
