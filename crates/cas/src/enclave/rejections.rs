//! Requests the enclave API refuses before they redeem a nonce: bad JSON, malformed config
//! ids, bad, expired or replayed nonces, rate limits. They are not audited (anyone can send
//! them, and each audit event is kept for good); they are counted in
//! `custos_cas_enclave_rejected_total{request, reason}` and logged at most once per
//! [`LOG_INTERVAL`] per request and reason, with how many were suppressed in between.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::log_throttle::LogThrottle;
use crate::metrics::Metrics;

/// At most one warn line per request kind and reason in this time.
pub const LOG_INTERVAL: Duration = crate::log_throttle::INTERVAL;

/// Counts and logs refused requests.
#[derive(Debug)]
pub struct Rejections {
    metrics: Arc<Metrics>,
    log: LogThrottle,
}

impl Rejections {
    /// Counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            log: LogThrottle::new(LOG_INTERVAL),
        }
    }

    /// Records one refused `request` (`challenge`, `attest`) for `reason` from `peer`.
    /// `config_id` and `detail` may hold client text: they are logged escaped.
    pub fn record(
        &self,
        request: &'static str,
        reason: &'static str,
        peer: IpAddr,
        config_id: Option<&str>,
        detail: &str,
    ) {
        self.metrics.enclave_rejected(request, reason);
        if let Some(suppressed) = self.log.admit((request, reason), Instant::now()) {
            tracing::warn!(
                request,
                reason,
                %peer,
                config_id = ?config_id.unwrap_or("-"),
                detail = ?detail,
                suppressed,
                "enclave request refused"
            );
        }
    }
}
