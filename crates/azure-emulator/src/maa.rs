//! Microsoft Azure Attestation: `attest/SgxEnclave` (`quote`) and `attest/OpenEnclave`
//! (`report`) for simulation quotes from trusted platform keys, signing certificates
//! (`/certs`) and OpenID metadata, as the real service publishes them.
//!
//! Tokens carry the claim set real MAA issues under its default policy (compared with the
//! recorded tokens): the `x-ms-sgx-*` claims, `x-ms-sgx-ehd` for Binary runtime data or
//! `x-ms-runtime` for JSON, `x-ms-sgx-collateral.quotehash` = SHA-256 of the evidence bytes,
//! `exp` = `iat` + 8 h, RS256 with `kid` and `jku`. With `draftPolicyForAttestation` the token
//! is unsigned (`alg: none`), as MAA's is; the draft policy itself is not evaluated.
//! Hardware quotes are refused: the emulator cannot vouch for them.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custos_attestation::maa::signers::key_binding;
use custos_attestation::sim::{PlatformKey, SimQuote, SimReport};
use custos_attestation::{Claims, PlatformPublicKey, ReportData, TrustedPlatforms};
use custos_ids::{HexError, KeyHash};
use jsonwebtoken::{Algorithm, Header};
use rcgen::CustomExtension;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::config::{Config, SigningEvidence, SigningEvidenceKind};
use crate::http::{decode_b64, json, now, random_hex};
use crate::pki::{KidStyle, PkiError, SigningKey};
use crate::stats::Counter;

/// api-versions of the attestation data plane.
const API_VERSIONS: &[&str] = &[
    "2018-09-01-preview",
    "2020-10-01",
    "2022-08-01",
    "2022-09-01-preview",
    "2023-04-01-preview",
];
/// Stands in for MAA's default SGX policy, whose hash tokens carry as `x-ms-policy-hash`.
const DEFAULT_POLICY: &str = "version= 1.0;authorizationrules{c:[type==\"$is-debuggable\"] => permit();};issuancerules{c:[type==\"$is-debuggable\"] => issue(type=\"is-debuggable\", value=c.value);c:[type==\"$sgx-mrsigner\"] => issue(type=\"sgx-mrsigner\", value=c.value);c:[type==\"$sgx-mrenclave\"] => issue(type=\"sgx-mrenclave\", value=c.value);c:[type==\"$product-id\"] => issue(type=\"product-id\", value=c.value);c:[type==\"$svn\"] => issue(type=\"svn\", value=c.value);c:[type==\"$tee\"] => issue(type=\"tee\", value=c.value);};";
/// Bound on request bodies (a quote is a few KiB).
const MAX_BODY: usize = 1 << 20;

/// The MAA instance: its URL (the token issuer), signing key and trusted platform keys.
#[derive(Debug)]
pub struct Maa {
    url: String,
    signing_key: SigningKey,
    token_lifetime_secs: u64,
    trusted: RwLock<BTreeSet<KeyHash>>,
    /// The platform key that signed the evidence in the signing certificate, if any.
    evidence_platform: Option<PlatformPublicKey>,
}

/// Extension carrying a raw SGX quote in a DER OCTET STRING, as MAA's 2020 certificates do
/// (1.2.840.113556.10.1.1).
const OID_MAA_SGX_QUOTE: &[u64] = &[1, 2, 840, 113556, 10, 1, 1];

/// A configured platform key: a key id (64 hex digits) or a PEM public key.
pub fn parse_platform_key(text: &str) -> Result<KeyHash, String> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        PlatformPublicKey::from_spki_pem(text.as_bytes())
            .map(|k| k.id())
            .map_err(|e| e.to_string())
    } else {
        text.parse::<KeyHash>()
            .map_err(|e| format!("not a platform key id (64 hex digits) or PEM public key: {e}"))
    }
}

impl Maa {
    /// A fresh signing key whose certificate names the instance, as MAA's do.
    pub fn new(config: &Config, url: &str) -> Result<Self, PkiError> {
        let trusted = config
            .maa
            .trusted_platform_keys
            .iter()
            .map(|k| parse_platform_key(k).map_err(PkiError::Input))
            .collect::<Result<_, _>>()?;
        let evidence = &config.maa.signing_evidence;
        let (signing_key, evidence_platform) = match evidence.kind {
            SigningEvidenceKind::None => (SigningKey::generate(url, KidStyle::Sha256Base64)?, None),
            SigningEvidenceKind::Sim => {
                let platform = match &evidence.platform_key_file {
                    Some(path) => PlatformKey::load(path),
                    None => PlatformKey::generate(),
                }
                .map_err(|e| PkiError::Input(format!("MAA signing evidence: {e}")))?;
                let key =
                    SigningKey::generate_with_extension(url, KidStyle::Sha256Base64, |spki| {
                        enclave_evidence(evidence, &platform, spki).map(Some)
                    })?;
                tracing::info!(
                    platform_key = %platform.public_key().id(),
                    mrsigner = evidence.mrsigner.as_str(),
                    "MAA signing certificate embeds a simulated quote of the MAA enclave"
                );
                (key, Some(platform.public_key()))
            }
        };
        Ok(Self {
            url: url.to_owned(),
            signing_key,
            token_lifetime_secs: config.maa.token_lifetime_secs,
            trusted: RwLock::new(trusted),
            evidence_platform,
        })
    }

    /// The platform key that signed the evidence in the signing certificate, if any.
    pub fn evidence_platform(&self) -> Option<&PlatformPublicKey> {
        self.evidence_platform.as_ref()
    }

    /// Trusts one more platform key.
    pub fn trust(&self, id: KeyHash) {
        self.trusted.write().expect("trusted keys lock").insert(id);
    }

    /// The claims of a token this instance issued, after checking what Key Vault checks of an
    /// attestation token: the issuer is this instance, the signature (RS256 under this
    /// instance's signing key, named by `kid`; `alg: none` refused), `exp` and `nbf` (no leeway).
    pub fn verify_token(&self, token: &str) -> Result<Value, String> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| format!("the token is not a JWT: {e}"))?;
        let unverified: Value = token
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("the token's payload is not base64url JSON")?;
        let issuer = unverified["iss"].as_str().unwrap_or("(none)");
        if issuer.trim_end_matches('/') != self.url {
            return Err(format!(
                "issuer {issuer} is not an attestation authority this vault can verify (the emulator verifies tokens of its own MAA, {})",
                self.url
            ));
        }
        if header.alg != Algorithm::RS256 {
            return Err(format!("expected alg RS256, actual {:?}", header.alg));
        }
        let kid = header.kid.as_deref().unwrap_or("(none)");
        if kid != self.signing_key.kid() {
            return Err(format!(
                "expected kid {}, actual {kid}: not a signing key of {}",
                self.signing_key.kid(),
                self.url
            ));
        }
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.set_issuer(&[&self.url]);
        jsonwebtoken::decode::<Value>(token, self.signing_key.decoding_key(), &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    format!("the token expired at {} (now {})", unverified["exp"], now())
                }
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                    format!("the token is not valid before {}", unverified["nbf"])
                }
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    "the token's signature does not verify".to_owned()
                }
                other => format!("the token is invalid: {other:?}"),
            })
    }
}

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/certs", get(certs))
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/attest/{kind}", post(attest))
}

async fn certs(State(shared): State<Arc<Shared>>) -> Response {
    shared.stats.bump(Counter::MaaKeyRequests);
    json(
        StatusCode::OK,
        &json!({ "keys": [shared.maa.signing_key.maa_jwk()] }),
    )
}

async fn openid_configuration(State(shared): State<Arc<Shared>>) -> Response {
    let url = &shared.maa.url;
    json(
        StatusCode::OK,
        &json!({
            "response_types_supported": ["token", "none"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "revocation_endpoint": format!("{url}/revoke"),
            "issuer": url,
            "jwks_uri": format!("{url}/certs"),
            "claims_supported": [
                "cnf", "nonce", "x-ms-ver", "x-ms-attestation-type", "x-ms-policy-hash", "x-ms-policy-signer",
                "x-ms-sgx-is-debuggable", "x-ms-sgx-mrenclave", "x-ms-sgx-mrsigner", "x-ms-sgx-svn", "x-ms-sgx-ehd",
                "x-ms-sgx-collateral", "is-debuggable", "sgx-mrsigner", "sgx-mrenclave", "product-id", "svn", "tee"
            ],
        }),
    )
}

/// An MAA error answer.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    json(
        status,
        &json!({ "error": { "code": code, "message": message.into() } }),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttestRequest {
    quote: Option<String>,
    report: Option<String>,
    runtime_data: Option<DataField>,
    init_time_data: Option<DataField>,
    draft_policy_for_attestation: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataField {
    data: String,
    data_type: Option<String>,
}

async fn attest(
    State(shared): State<Arc<Shared>>,
    Path(kind): Path<String>,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    let api_version = query.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "api-version")
            .map(|(_, v)| v.into_owned())
    });
    match api_version.as_deref() {
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        Some(v) if !API_VERSIONS.contains(&v) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                format!(
                    "The api-version '{v}' is invalid. The supported versions are '{}'.",
                    API_VERSIONS.join(",")
                ),
            );
        }
        Some(_) => {}
    }
    if body.len() > MAX_BODY {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "InvalidParameter",
            "The request body is too large.",
        );
    }
    let request: AttestRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                format!("The request body is not a valid attestation request: {e}"),
            );
        }
    };
    let (field, encoded) = match kind.as_str() {
        "SgxEnclave" => ("quote", request.quote.as_deref()),
        "OpenEnclave" => ("report", request.report.as_deref()),
        other => {
            return error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("The emulator does not implement attest/{other}."),
            );
        }
    };
    let Some(evidence) = encoded.and_then(decode_b64) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("The '{field}' field is missing or not base64url."),
        );
    };
    let quote = if kind == "OpenEnclave" {
        match oe_quote(&evidence) {
            Ok(q) => q,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    format!("The OpenEnclave report is malformed: {e}."),
                );
            }
        }
    } else {
        &evidence[..]
    };
    let claims = match verify_sim_quote(&shared.maa, quote) {
        Ok(claims) => claims,
        Err(e) => return error(StatusCode::BAD_REQUEST, "InvalidParameter", e),
    };
    let runtime = match request
        .runtime_data
        .as_ref()
        .map(|r| decode_runtime(r, "runtimeData"))
        .transpose()
    {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "InvalidParameter", e),
    };
    if let Some((data, _)) = &runtime {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
        if claims.report_data().as_bytes()[..32] != *digest.as_ref() {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                format!(
                    "Runtime data hash mismatch: report_data[0..32] is {}, SHA-256 of the runtime data is {}.",
                    hex::encode(&claims.report_data().as_bytes()[..32]),
                    hex::encode(digest)
                ),
            );
        }
    }
    if let Some(init) = &request.init_time_data
        && let Err(e) = decode_runtime(init, "initTimeData")
    {
        return error(StatusCode::BAD_REQUEST, "InvalidParameter", e);
    }

    let token = match issue_token(
        &shared.maa,
        &claims,
        &evidence,
        runtime.as_ref(),
        request.draft_policy_for_attestation.is_some(),
    ) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e),
    };
    shared.stats.bump(Counter::MaaAttestations);
    json(StatusCode::OK, &json!({ "token": token }))
}

/// The signing certificate's evidence extension: a simulated quote of the MAA enclave whose
/// `report_data[0..32]` binds the key `spki` as real MAA's does, in a DER OCTET STRING.
fn enclave_evidence(
    evidence: &SigningEvidence,
    platform: &PlatformKey,
    spki: &[u8],
) -> Result<CustomExtension, PkiError> {
    let invalid = |e: String| PkiError::Input(format!("MAA signing evidence: {e}"));
    let mut report_data = [0u8; 64];
    report_data[..32].copy_from_slice(&key_binding(spki));
    let report = SimReport {
        mrenclave: evidence
            .mrenclave
            .parse()
            .map_err(|e: HexError| invalid(format!("mrenclave: {e}")))?,
        mrsigner: evidence
            .mrsigner
            .parse()
            .map_err(|e: HexError| invalid(format!("mrsigner: {e}")))?,
        isvprodid: evidence.isvprodid,
        isvsvn: evidence.isvsvn,
        report_data: ReportData(report_data),
    };
    let quote = platform
        .create_quote(&report)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(CustomExtension::from_oid_content(
        OID_MAA_SGX_QUOTE,
        der_octet_string(&quote),
    ))
}

/// DER OCTET STRING (definite length).
fn der_octet_string(content: &[u8]) -> Vec<u8> {
    custos_ids::spki::der(0x04, content)
}

/// The quote inside an Open Enclave report: a 16-byte header (version 1, type 2, size).
fn oe_quote(report: &[u8]) -> Result<&[u8], String> {
    let (header, quote) = report
        .split_at_checked(16)
        .ok_or("shorter than its 16-byte header")?;
    let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
    let size = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if word(0) != 1 || word(4) != 2 {
        return Err(format!(
            "header version {} type {} (expected 1 and 2)",
            word(0),
            word(4)
        ));
    }
    if u64::try_from(quote.len()).ok() != Some(size) {
        return Err(format!("declared size {size}, actual {}", quote.len()));
    }
    Ok(quote)
}

fn verify_sim_quote(maa: &Maa, quote: &[u8]) -> Result<Claims, String> {
    let parsed = SimQuote::parse(quote).map_err(|e| {
        format!("The emulator accepts only simulation quotes (sim-quote) from trusted platform keys; this evidence is not one: {e}")
    })?;
    let trusted = TrustedPlatforms::from_ids(
        maa.trusted
            .read()
            .expect("trusted keys lock")
            .iter()
            .cloned(),
    );
    parsed
        .verify(&trusted)
        .map_err(|e| format!("Simulation quote rejected: {e}"))
}

/// The runtime (or init-time) data bytes and whether they were sent as JSON.
fn decode_runtime(field: &DataField, name: &str) -> Result<(Vec<u8>, bool), String> {
    let data = decode_b64(&field.data).ok_or_else(|| format!("{name}.data is not base64url"))?;
    match field.data_type.as_deref() {
        None | Some("Binary") => Ok((data, false)),
        Some("JSON") => Ok((data, true)),
        Some(other) => Err(format!(
            "{name}.dataType {other:?} is neither Binary nor JSON"
        )),
    }
}

fn issue_token(
    maa: &Maa,
    claims: &Claims,
    evidence: &[u8],
    runtime: Option<&(Vec<u8>, bool)>,
    draft: bool,
) -> Result<String, String> {
    let now = now();
    let mrenclave = claims.mrenclave().to_hex();
    let mrsigner = claims.mrsigner().to_hex();
    let quote_hash = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        evidence,
    ));
    let collateral = json!({ "quotehash": quote_hash });
    let policy_claims = json!({
        "is-debuggable": claims.debug(),
        "product-id": claims.isvprodid(),
        "sgx-mrenclave": mrenclave,
        "sgx-mrsigner": mrsigner,
        "svn": claims.isvsvn(),
        "tee": "sgx",
    });
    let mut payload = json!({
        "exp": now + maa.token_lifetime_secs,
        "iat": now,
        "iss": maa.url,
        "jti": random_hex(32),
        "maa-attestationcollateral": collateral,
        "nbf": now,
        "x-ms-attestation-type": "sgx",
        "x-ms-policy-hash": URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, DEFAULT_POLICY.as_bytes())),
        "x-ms-sgx-collateral": collateral,
        "x-ms-sgx-is-debuggable": claims.debug(),
        "x-ms-sgx-mrenclave": mrenclave,
        "x-ms-sgx-mrsigner": mrsigner,
        "x-ms-sgx-product-id": claims.isvprodid(),
        "x-ms-sgx-report-data": claims.report_data().to_hex(),
        "x-ms-sgx-svn": claims.isvsvn(),
        "x-ms-ver": "1.0",
    });
    if !draft {
        // What MAA's default policy issues, also mirrored under x-ms-policy.
        for (k, v) in policy_claims.as_object().expect("object") {
            payload[k] = v.clone();
        }
        payload["x-ms-policy"] = policy_claims;
    }
    match runtime {
        Some((data, false)) => {
            let ehd = URL_SAFE_NO_PAD.encode(data);
            payload["x-ms-sgx-ehd"] = json!(ehd);
            if !draft {
                payload["maa-ehd"] = json!(ehd);
                payload["aas-ehd"] = json!(ehd);
            }
        }
        Some((data, true)) => {
            // MAA parses the JSON (enclaves often send it NUL-terminated).
            let text = data.strip_suffix(&[0]).unwrap_or(data);
            let value: Value = serde_json::from_slice(text)
                .map_err(|e| format!("runtimeData is not JSON: {e}"))?;
            payload["x-ms-runtime"] = value;
        }
        None => {}
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(maa.signing_key.kid().to_owned());
    header.jku = Some(format!("{}/certs", maa.url));
    if draft {
        let header = json!({ "alg": "none", "jku": header.jku, "kid": header.kid, "typ": "JWT" });
        return Ok(format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        ));
    }
    maa.signing_key
        .sign_jwt(&header, &payload)
        .map_err(|e| e.to_string())
}
