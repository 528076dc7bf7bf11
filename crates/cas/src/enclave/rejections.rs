//! Requests the enclave API refuses before they redeem a nonce: bad JSON, malformed config
//! ids, bad, expired or replayed nonces, rate limits. They are not audited (anyone can send
//! them, and each audit event is kept for good); they are counted in
//! `custos_cas_enclave_rejected_total{request, reason}` and logged at most once per
//! [`LOG_INTERVAL`] per request and reason, with how many were suppressed in between.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// At most one warn line per request kind and reason in this time.
pub const LOG_INTERVAL: Duration = Duration::from_secs(1);

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

/// A request kind and a reason.
type Key = (&'static str, &'static str);

/// Lets one event per key through per interval and counts the others.
#[derive(Debug)]
struct LogThrottle {
    interval: Duration,
    /// Per key: when the last line was written, and events suppressed since.
    last: Mutex<HashMap<Key, (Instant, u64)>>,
}

impl LogThrottle {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(suppressed since the last line)` when a line may be written for `key` at `now`.
    fn admit(&self, key: Key, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get_mut(&key) {
            Some((at, suppressed)) if now.saturating_duration_since(*at) < self.interval => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                *at = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                last.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_key_with_the_suppressed_count() {
        let throttle = LogThrottle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let key = ("attest", "bad_request");
        assert_eq!(throttle.admit(key, t0), Some(0));
        for i in 0..100 {
            assert_eq!(throttle.admit(key, t0 + Duration::from_millis(i)), None);
        }
        // Another reason has its own line.
        assert_eq!(throttle.admit(("attest", "nonce_replayed"), t0), Some(0));
        assert_eq!(throttle.admit(key, t0 + Duration::from_secs(1)), Some(100));
        assert_eq!(throttle.admit(key, t0 + Duration::from_millis(1500)), None);
    }
}
