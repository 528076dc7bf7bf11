//! Microsoft Azure Attestation: signing certificates (`/certs`) and OpenID metadata, as the
//! real service publishes them.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::json;

use crate::Shared;
use crate::config::Config;
use crate::http::json;
use crate::pki::{KidStyle, PkiError, SigningKey};

/// The MAA instance: its URL (the token issuer) and signing key.
pub struct Maa {
    url: String,
    signing_key: SigningKey,
}

impl Maa {
    /// A fresh signing key whose certificate names the instance, as MAA's do.
    pub fn new(_config: &Config, url: &str) -> Result<Self, PkiError> {
        Ok(Self {
            url: url.to_owned(),
            signing_key: SigningKey::generate(url, KidStyle::Sha256Base64)?,
        })
    }
}

pub fn router() -> Router<Arc<Shared>> {
    Router::new().route("/certs", get(certs)).route(
        "/.well-known/openid-configuration",
        get(openid_configuration),
    )
}

async fn certs(State(shared): State<Arc<Shared>>) -> Response {
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
