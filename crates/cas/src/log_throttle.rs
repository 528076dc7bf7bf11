//! At most one log line per kind of event and interval, with how many were suppressed: for
//! events any client can cause at will (refused requests), so that no client can flood the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The interval every throttled log uses: one line a second per kind of event.
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);

/// The kind of event: e.g. a request kind and a reason.
pub(crate) type Key = (&'static str, &'static str);

/// Lets one event per key through per interval and counts the others.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    interval: Duration,
    /// Per key: when the last line was written, and events suppressed since.
    last: Mutex<HashMap<Key, (Instant, u64)>>,
}

impl LogThrottle {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(suppressed since the last line)` when a line may be written for `key` at `now`.
    pub(crate) fn admit(&self, key: Key, now: Instant) -> Option<u64> {
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
