//! Challenge nonces: 32 random bytes, issued for one config id, valid for a short time,
//! redeemed at most once.
//!
//! A nonce is what makes an attest request fresh: the evidence binds the runtime data, the
//! runtime data carry the nonce, and the nonce is forgotten the moment it is redeemed, so a
//! recorded attest request cannot be replayed. Memory is bounded: at most `max_pending`
//! nonces wait at once (more challenges are refused until some expire or are used).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A challenge nonce.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce([u8; 32]);

impl Nonce {
    /// 32 fresh random bytes.
    fn random() -> Result<Self, NonceError> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| NonceError::Random)?;
        Ok(Self(bytes))
    }

    /// From its wire form (base64url, 32 bytes).
    pub fn from_base64url(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()?;
        bytes.try_into().ok().map(Self)
    }

    /// The wire form: base64url without padding.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({})", self.to_base64url())
    }
}

/// Why no nonce was issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    /// Too many nonces are waiting to be used.
    #[error(
        "{pending} challenges are waiting for their attest request (the most this CAS keeps); retry shortly"
    )]
    Full {
        /// Nonces pending.
        pending: usize,
    },
    /// The random number generator failed.
    #[error("the random number generator failed")]
    Random,
}

/// Why a nonce was not accepted; each names what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NonceDenial {
    /// Never issued, already redeemed, or forgotten after expiring.
    #[error(
        "nonce: expected one this CAS issued for {config_id} and not used before, actual: unknown or already used (a replayed request?)"
    )]
    Unknown {
        /// The config id of the attest request.
        config_id: String,
    },
    /// Issued, but too long ago.
    #[error("nonce: expected at most {ttl_secs} s old, actual {age_secs} s")]
    Expired {
        /// The validity period.
        ttl_secs: u64,
        /// Its age.
        age_secs: u64,
    },
    /// Issued for another config id.
    #[error("nonce: expected one issued for {expected}, actual one issued for {actual}")]
    OtherConfigId {
        /// The attest request's config id.
        expected: String,
        /// The config id it was issued for.
        actual: String,
    },
    /// Not 32 bytes of base64url.
    #[error("nonce: expected 32 bytes in base64url, actual {0:?}")]
    Malformed(String),
}

#[derive(Debug)]
struct Pending {
    config_id: Box<str>,
    issued: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    pending: HashMap<Nonce, Pending>,
    /// Issue order, for expiry; may hold nonces already redeemed (skipped when reached).
    order: VecDeque<(Nonce, Instant)>,
}

/// The nonces issued and not yet redeemed.
#[derive(Debug)]
pub struct Nonces {
    ttl: Duration,
    max_pending: usize,
    inner: Mutex<Inner>,
}

impl Nonces {
    /// Nonces valid for `ttl`, at most `max_pending` at once.
    pub fn new(ttl: Duration, max_pending: usize) -> Self {
        Self {
            ttl,
            max_pending,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Issues a nonce for `config_id` at `now`.
    pub fn issue(&self, config_id: &str, now: Instant) -> Result<Nonce, NonceError> {
        let nonce = Nonce::random()?;
        let mut inner = self.lock();
        self.expire(&mut inner, now);
        if inner.pending.len() >= self.max_pending {
            return Err(NonceError::Full {
                pending: inner.pending.len(),
            });
        }
        inner.pending.insert(
            nonce,
            Pending {
                config_id: config_id.into(),
                issued: now,
            },
        );
        inner.order.push_back((nonce, now));
        // Redeemed nonces stay in `order` until they expire; compact when that grows large.
        if inner.order.len() > 4 * self.max_pending {
            let Inner { pending, order } = &mut *inner;
            order.retain(|(n, _)| pending.contains_key(n));
        }
        Ok(nonce)
    }

    /// Redeems `nonce` (base64url) for `config_id` at `now`: it is forgotten whether or not
    /// it is accepted, so it can be tried once only.
    pub fn redeem(&self, nonce: &str, config_id: &str, now: Instant) -> Result<(), NonceDenial> {
        let parsed = Nonce::from_base64url(nonce)
            .ok_or_else(|| NonceDenial::Malformed(nonce.chars().take(64).collect()))?;
        let pending = self.lock().pending.remove(&parsed);
        let Some(pending) = pending else {
            return Err(NonceDenial::Unknown {
                config_id: config_id.to_owned(),
            });
        };
        let age = now.saturating_duration_since(pending.issued);
        if age > self.ttl {
            return Err(NonceDenial::Expired {
                ttl_secs: self.ttl.as_secs(),
                age_secs: age.as_secs(),
            });
        }
        if &*pending.config_id != config_id {
            return Err(NonceDenial::OtherConfigId {
                expected: config_id.to_owned(),
                actual: pending.config_id.into(),
            });
        }
        Ok(())
    }

    /// Nonces waiting.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Forgets nonces issued more than `ttl` before `now`.
    fn expire(&self, inner: &mut Inner, now: Instant) {
        while let Some(&(nonce, issued)) = inner.order.front() {
            if now.saturating_duration_since(issued) <= self.ttl {
                break;
            }
            inner.order.pop_front();
            inner.pending.remove(&nonce);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn a_nonce_is_redeemed_once_for_its_config_id() {
        let nonces = Nonces::new(TTL, 10);
        let now = Instant::now();
        let n = nonces.issue("ns/app/svc", now).unwrap().to_base64url();
        assert_eq!(n.len(), 43, "32 bytes in base64url");
        nonces.redeem(&n, "ns/app/svc", now).unwrap();
        let again = nonces.redeem(&n, "ns/app/svc", now).unwrap_err();
        assert!(
            again
                .to_string()
                .contains("actual: unknown or already used"),
            "{again}"
        );
        assert_eq!(nonces.pending(), 0);
    }

    #[test]
    fn other_config_ids_expired_and_malformed_nonces_are_named() {
        let nonces = Nonces::new(TTL, 10);
        let now = Instant::now();
        let n = nonces.issue("ns/a/svc", now).unwrap().to_base64url();
        assert_eq!(
            nonces.redeem(&n, "ns/b/svc", now).unwrap_err().to_string(),
            "nonce: expected one issued for ns/b/svc, actual one issued for ns/a/svc"
        );
        // Tried once, gone: the right config id cannot use it afterwards.
        assert!(matches!(
            nonces.redeem(&n, "ns/a/svc", now),
            Err(NonceDenial::Unknown { .. })
        ));

        let n = nonces.issue("ns/a/svc", now).unwrap().to_base64url();
        let late = now + TTL + Duration::from_secs(15);
        assert_eq!(
            nonces.redeem(&n, "ns/a/svc", late).unwrap_err().to_string(),
            "nonce: expected at most 60 s old, actual 75 s"
        );
        assert!(matches!(
            nonces.redeem("short", "ns/a/svc", now),
            Err(NonceDenial::Malformed(_))
        ));
    }

    #[test]
    fn memory_is_bounded_and_expired_nonces_make_room() {
        let nonces = Nonces::new(TTL, 3);
        let now = Instant::now();
        for _ in 0..3 {
            nonces.issue("ns/a/svc", now).unwrap();
        }
        assert_eq!(
            nonces.issue("ns/a/svc", now),
            Err(NonceError::Full { pending: 3 })
        );
        let later = now + TTL + Duration::from_secs(1);
        nonces.issue("ns/a/svc", later).unwrap();
        assert_eq!(nonces.pending(), 1);
    }

    #[test]
    fn redeemed_nonces_do_not_grow_the_issue_order_without_bound() {
        let nonces = Nonces::new(TTL, 2);
        let now = Instant::now();
        for _ in 0..100 {
            let n = nonces.issue("ns/a/svc", now).unwrap().to_base64url();
            nonces.redeem(&n, "ns/a/svc", now).unwrap();
        }
        assert!(nonces.lock().order.len() <= 4 * 2 + 1);
    }
}
