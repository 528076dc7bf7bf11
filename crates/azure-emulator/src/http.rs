//! What every listener shares: the stats endpoint, fault injection, JSON responses, ids, time.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Shared;
use crate::config::Service;
use crate::faults::{self, FaultLayerState};

/// Adds `GET /_emulator/stats` and the fault rules to a service's router.
pub fn with_common(router: Router<Arc<Shared>>, service: Service, shared: &Arc<Shared>) -> Router {
    let fault_state = FaultLayerState {
        service,
        faults: shared.faults.clone(),
        stats: shared.stats.clone(),
    };
    router
        .route("/_emulator/stats", get(stats))
        .layer(axum::middleware::from_fn_with_state(
            fault_state,
            faults::inject,
        ))
        .with_state(shared.clone())
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    json(StatusCode::OK, &shared.stats.snapshot())
}

/// A JSON response with the content type Azure services send.
pub fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(body).expect("responses serialize");
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG works");
    hex::encode(bytes)
}

/// A random GUID-shaped id (for trace and correlation ids).
pub fn random_guid() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG works");
    custos_ids::fmt::guid(&bytes)
}

/// base64url, padded or not (Azure's wire format for MAA and Key Vault); standard base64 is
/// tolerated.
pub fn decode_b64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
        .or_else(|| STANDARD.decode(text).ok())
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_guids_are_guid_shaped_and_differ() {
        let random = super::random_guid();
        assert_eq!(random.len(), 36);
        assert_ne!(random, super::random_guid());
    }
}
