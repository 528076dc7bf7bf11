//! `custos-las`: the node agent that issues evidence for the workloads on its node.
//!
//! On an SGX node a LAS would turn a workload's report into a quote. Without hardware it runs
//! in **simulation**: it signs a `sim-quote` (`docs/attestation.md` § Simulation) with the node's platform key, for
//! whatever measurement and report data the workload asks for. Such a quote proves nothing
//! about hardware — only that this LAS signed it — so verifiers accept it only from platform
//! keys they were told to trust, and always as a debug enclave.
//!
//! API (HTTP on the node; `docs/enclave-api.md` § The LAS API):
//! - `POST /v1/quote` `{"report_data": hex(64 bytes), "measurement": hex(32 bytes)}`
//!   → `{"type": "sim-quote", "quote": base64url}`
//! - `GET /v1/platform` → `{"mode": "simulation", "key_id": hex, "public_key_pem": "..."}`
//! - `GET /healthz` → `{"status": "ok", "mode": "simulation"}`
//!
//! This crate must never sign without saying it is simulating (start-up log, `/healthz`),
//! and never expose the platform's private key.

#![warn(missing_docs)]

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use custos_attestation::sim::SimReport;
use custos_attestation::{PlatformKey, ReportData};
use custos_ids::{MrEnclave, MrSigner};
use custos_protocol::ErrorBody;
use custos_protocol::las::{Health, Platform, QuoteRequest, QuoteResponse};

/// The LAS's only mode: it signs sim-quotes.
const SIMULATION: &str = "simulation";

/// Requests are two hex fields; anything larger is not a quote request.
const MAX_BODY: usize = 4096;

/// What the LAS needs to answer: the node's platform key.
#[derive(Debug)]
pub struct Las {
    platform: PlatformKey,
}

impl Las {
    /// A LAS signing with `platform`.
    pub fn new(platform: PlatformKey) -> Self {
        Self { platform }
    }

    /// The HTTP routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/v1/quote", post(quote))
            .route("/v1/platform", get(platform))
            .route("/healthz", get(healthz))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(Arc::new(self))
    }
}

async fn quote(
    State(las): State<Arc<Las>>,
    request: Result<Json<QuoteRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match request {
        Ok(request) => request,
        Err(rejection) => {
            return error(rejection.status(), "bad_request", &rejection.body_text());
        }
    };
    let (report_data, measurement) = match (
        request.report_data.parse::<ReportData>(),
        request.measurement.parse::<MrEnclave>(),
    ) {
        (Ok(report_data), Ok(measurement)) => (report_data, measurement),
        (Err(e), _) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("report_data: {e}"),
            );
        }
        (_, Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("measurement: {e}"),
            );
        }
    };
    let report = SimReport {
        mrenclave: measurement,
        mrsigner: MrSigner([0; 32]),
        isvprodid: 0,
        isvsvn: 0,
        report_data,
    };
    match las.platform.create_quote(&report) {
        Ok(quote) => {
            tracing::info!(%measurement, "issued a sim-quote");
            Json(QuoteResponse {
                kind: "sim-quote".into(),
                quote,
            })
            .into_response()
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "quote_failed",
            &e.to_string(),
        ),
    }
}

async fn platform(State(las): State<Arc<Las>>) -> Response {
    let key = las.platform.public_key();
    Json(Platform {
        mode: SIMULATION.into(),
        key_id: key.id().to_string(),
        public_key_pem: key.to_spki_pem(),
    })
    .into_response()
}

async fn healthz() -> Response {
    Json(Health {
        status: "ok".into(),
        mode: SIMULATION.into(),
    })
    .into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}
