//! Challenge nonces, stateless: the CAS keeps nothing per challenge, so no number of
//! challenges can crowd out another client's.
//!
//! A nonce is 32 bytes: `issue time (ms since the Unix epoch, big-endian, 8) ‖ random (8) ‖
//! HMAC-SHA256(key, label ‖ time ‖ random ‖ config id)[..16]`, under a key derived from the
//! master key (HKDF, its own label) — so CAS replicas sharing the master key accept each
//! other's nonces. The runtime treats it as opaque. At attest the CAS checks the MAC (so the
//! nonce was issued by this CAS for this config id), its age, and then *redeems* it: only
//! redeemed nonces are remembered, until they expire, so a recorded attest request cannot be
//! replayed.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_lc_rs::{constant_time, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::seal::{MasterKey, SealError};

/// HKDF info of the nonce key: its own label, so it is independent of every other key the
/// master key yields.
const NONCE_KEY_INFO: &[u8] = b"custos-cas enclave nonce key v1";
/// First input of every nonce MAC: names the format, so a MAC over other data under the
/// same key (there is none today) can never pass as a nonce.
const MAC_LABEL: &[u8] = b"custos-cas enclave nonce v1\0";
/// Bytes of the MAC kept (128 bits: forging one takes 2^128 tries on average).
const MAC_LEN: usize = 16;
/// Length of a nonce.
pub const NONCE_LEN: usize = 32;

/// The key nonces are MACed with, derived from the master key.
#[derive(Clone)]
pub struct NonceKey(hmac::Key);

impl NonceKey {
    /// The nonce key of `master` (HKDF-SHA256, info `custos-cas enclave nonce key v1`).
    pub fn derive(master: &MasterKey) -> Result<Self, SealError> {
        crate::seal::derive_hmac_key(master, NONCE_KEY_INFO).map(Self)
    }

    fn mac(&self, issued_ms: u64, random: &[u8], config_id: &str) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(MAC_LABEL);
        context.update(&issued_ms.to_be_bytes());
        context.update(random);
        // Last and the only variable-length input: no two inputs share an encoding.
        context.update(config_id.as_bytes());
        context.sign()
    }
}

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceKey(redacted)")
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why no nonce was issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    /// The random number generator failed.
    #[error("the random number generator failed")]
    Random,
}

/// Why a nonce was not accepted; each names what was expected and what was found. Client
/// text is quoted with `{:?}`, so it cannot break a log line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NonceDenial {
    /// Not 32 bytes of base64url.
    #[error("nonce: expected 32 bytes in base64url, actual {0:?}")]
    Malformed(String),
    /// The MAC does not match: issued for another config id, by a CAS with another master
    /// key, or altered.
    #[error(
        "nonce: expected one this CAS issued for {config_id:?}, actual: not issued by this CAS for {config_id:?} (issued for another config id or by a CAS with another master key, or altered)"
    )]
    NotIssued {
        /// The attest request's config id.
        config_id: String,
    },
    /// Issued too long ago.
    #[error("nonce: expected at most {ttl_secs} s old, actual {age_secs:.1} s")]
    Expired {
        /// The validity period.
        ttl_secs: u64,
        /// Its age.
        age_secs: f64,
    },
    /// Issued later than now by more than its validity (clocks of replicas apart?).
    #[error(
        "nonce: expected an issue time at most {ttl_secs} s from now, actual {ahead_secs:.1} s in the future (are the CAS replicas' clocks apart?)"
    )]
    Future {
        /// The validity period.
        ttl_secs: u64,
        /// How far ahead.
        ahead_secs: f64,
    },
    /// Redeemed before.
    #[error("nonce: expected one not used before, actual: already used (a replayed request?)")]
    Replayed,
}

impl NonceDenial {
    /// A label for metrics and the rejection log.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "nonce_malformed",
            Self::NotIssued { .. } => "nonce_not_issued",
            Self::Expired { .. } | Self::Future { .. } => "nonce_expired",
            Self::Replayed => "nonce_replayed",
        }
    }
}

/// Why a valid nonce could not be redeemed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RedeemError {
    /// Refused: used before, or expired meanwhile.
    #[error(transparent)]
    Denied(#[from] NonceDenial),
    /// The set of redeemed nonces is full: failing closed.
    #[error(
        "this CAS remembers {max} redeemed nonces until they expire, the most it keeps (enclave.max_redeemed_nonces); retry shortly"
    )]
    Full {
        /// The cap.
        max: usize,
    },
}

/// A nonce whose MAC and age checked out, not yet redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    issued_ms: u64,
    random: u64,
}

impl Verified {
    /// What identifies the nonce among all issued: issue time and randomness (16 bytes).
    pub fn id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.issued_ms.to_be_bytes());
        id[8..].copy_from_slice(&self.random.to_be_bytes());
        id
    }
}

/// The redeemed nonces, by (issue time, random): ordered by issue time, so expired ones are
/// dropped with one split.
#[derive(Debug, Default)]
struct Redeemed {
    set: BTreeSet<(u64, u64)>,
    /// The latest time seen: expiry never goes backwards with the clock, so a nonce once
    /// forgotten as expired can never be redeemed again.
    latest_ms: u64,
}

/// Issues and checks nonces; remembers the redeemed ones until they expire.
#[derive(Debug)]
pub struct Nonces {
    key: NonceKey,
    ttl_ms: u64,
    max_redeemed: usize,
    redeemed: Mutex<Redeemed>,
}

impl Nonces {
    /// Nonces under `key`, valid for `ttl`; at most `max_redeemed` remembered at once.
    pub fn new(key: NonceKey, ttl: Duration, max_redeemed: usize) -> Self {
        Self {
            key,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            max_redeemed,
            redeemed: Mutex::new(Redeemed::default()),
        }
    }

    /// A nonce for `config_id`, issued at `now_ms`. Keeps no state.
    pub fn issue(&self, config_id: &str, now_ms: u64) -> Result<String, NonceError> {
        let mut random = [0u8; 8];
        aws_lc_rs::rand::fill(&mut random).map_err(|_| NonceError::Random)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&now_ms.to_be_bytes());
        nonce[8..16].copy_from_slice(&random);
        let tag = self.key.mac(now_ms, &random, config_id);
        nonce[16..].copy_from_slice(&tag.as_ref()[..MAC_LEN]);
        Ok(URL_SAFE_NO_PAD.encode(nonce))
    }

    /// Checks that `nonce` (base64url) was issued by this CAS for `config_id` and is not
    /// expired at `now_ms`. Does not redeem it.
    pub fn verify(
        &self,
        nonce: &str,
        config_id: &str,
        now_ms: u64,
    ) -> Result<Verified, NonceDenial> {
        let bytes: [u8; NONCE_LEN] = URL_SAFE_NO_PAD
            .decode(nonce.trim_end_matches('='))
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| NonceDenial::Malformed(nonce.chars().take(64).collect()))?;
        let (issued, rest) = bytes.split_at(8);
        let (random, mac) = rest.split_at(8);
        let issued_ms = u64::from_be_bytes(issued.try_into().unwrap_or_default());
        // The MAC first: until it holds, the time is the client's word. Constant time; not
        // `hmac::verify`, which compares whole tags and ours is truncated.
        let expected = self.key.mac(issued_ms, random, config_id);
        constant_time::verify_slices_are_equal(&expected.as_ref()[..MAC_LEN], mac).map_err(
            |_| NonceDenial::NotIssued {
                config_id: config_id.to_owned(),
            },
        )?;
        self.check_age(issued_ms, now_ms)?;
        Ok(Verified {
            issued_ms,
            random: u64::from_be_bytes(random.try_into().unwrap_or_default()),
        })
    }

    /// Redeems a verified nonce at `now_ms`: the first time it succeeds, afterwards it is
    /// [`NonceDenial::Replayed`] until the nonce expires.
    pub fn redeem(&self, nonce: Verified, now_ms: u64) -> Result<(), RedeemError> {
        let mut redeemed = self.lock();
        redeemed.latest_ms = redeemed.latest_ms.max(now_ms);
        let latest = redeemed.latest_ms;
        // Forget what has expired: such nonces fail the age check anyway.
        let floor = latest.saturating_sub(self.ttl_ms);
        if redeemed.set.first().is_some_and(|&(t, _)| t < floor) {
            redeemed.set = redeemed.set.split_off(&(floor, 0));
        }
        self.check_age(nonce.issued_ms, latest)?;
        if redeemed.set.contains(&(nonce.issued_ms, nonce.random)) {
            return Err(NonceDenial::Replayed.into());
        }
        if redeemed.set.len() >= self.max_redeemed {
            return Err(RedeemError::Full {
                max: self.max_redeemed,
            });
        }
        redeemed.set.insert((nonce.issued_ms, nonce.random));
        Ok(())
    }

    /// When `nonce` expires, ms since the Unix epoch.
    pub fn expires_ms(&self, nonce: Verified) -> u64 {
        nonce.issued_ms.saturating_add(self.ttl_ms)
    }

    /// Nonces remembered as redeemed.
    pub fn redeemed(&self) -> usize {
        self.lock().set.len()
    }

    fn check_age(&self, issued_ms: u64, now_ms: u64) -> Result<(), NonceDenial> {
        let ttl_secs = self.ttl_ms / 1000;
        let secs = |ms: u64| ms as f64 / 1000.0;
        if issued_ms > now_ms.saturating_add(self.ttl_ms) {
            return Err(NonceDenial::Future {
                ttl_secs,
                ahead_secs: secs(issued_ms - now_ms),
            });
        }
        let age = now_ms.saturating_sub(issued_ms);
        if age > self.ttl_ms {
            return Err(NonceDenial::Expired {
                ttl_secs,
                age_secs: secs(age),
            });
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Redeemed> {
        self.redeemed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);
    const NOW: u64 = 1_800_000_000_000;

    fn key(byte: u8) -> NonceKey {
        NonceKey::derive(&MasterKey::from_bytes([byte; 32])).unwrap()
    }

    fn nonces(max: usize) -> Nonces {
        Nonces::new(key(1), TTL, max)
    }

    fn use_once(n: &Nonces, nonce: &str, config_id: &str, now: u64) -> Result<(), RedeemError> {
        let verified = n.verify(nonce, config_id, now)?;
        n.redeem(verified, now)
    }

    #[test]
    fn a_nonce_is_redeemed_once_for_its_config_id() {
        let n = nonces(10);
        let nonce = n.issue("ns/app/svc", NOW).unwrap();
        assert_eq!(nonce.len(), 43, "32 bytes in base64url");
        use_once(&n, &nonce, "ns/app/svc", NOW + 5).unwrap();
        assert_eq!(
            use_once(&n, &nonce, "ns/app/svc", NOW + 6),
            Err(RedeemError::Denied(NonceDenial::Replayed))
        );
        assert_eq!(n.redeemed(), 1);
        // Two nonces for the same id at the same time differ.
        assert_ne!(n.issue("a/b", NOW).unwrap(), n.issue("a/b", NOW).unwrap());
    }

    #[test]
    fn another_config_id_and_another_key_fail_the_mac() {
        let n = nonces(10);
        let nonce = n.issue("ns/a/svc", NOW).unwrap();
        assert_eq!(
            n.verify(&nonce, "ns/b/svc", NOW).unwrap_err().to_string(),
            "nonce: expected one this CAS issued for \"ns/b/svc\", actual: not issued by this CAS for \"ns/b/svc\" (issued for another config id or by a CAS with another master key, or altered)"
        );
        // Refused, not spent: its own config id can still use it.
        use_once(&n, &nonce, "ns/a/svc", NOW).unwrap();

        let foreign = Nonces::new(key(2), TTL, 10).issue("ns/a/svc", NOW).unwrap();
        assert!(matches!(
            n.verify(&foreign, "ns/a/svc", NOW),
            Err(NonceDenial::NotIssued { .. })
        ));
        // A replica with the same master key accepts it.
        let replica = nonces(10);
        let shared = n.issue("ns/a/svc", NOW).unwrap();
        use_once(&replica, &shared, "ns/a/svc", NOW).unwrap();
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let n = nonces(10);
        let nonce = n.issue("ns/a/svc", NOW).unwrap();
        let bytes = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                let denial = n
                    .verify(&URL_SAFE_NO_PAD.encode(&bad), "ns/a/svc", NOW)
                    .unwrap_err();
                assert!(
                    matches!(denial, NonceDenial::NotIssued { .. }),
                    "byte {i} bit {bit}: {denial}"
                );
            }
        }
        for bad in ["short", "", &format!("{nonce}AA"), "!!!!"] {
            assert!(matches!(
                n.verify(bad, "ns/a/svc", NOW),
                Err(NonceDenial::Malformed(_))
            ));
        }
    }

    #[test]
    fn expired_and_future_nonces_are_named_with_their_age() {
        let n = nonces(10);
        let nonce = n.issue("ns/a/svc", NOW).unwrap();
        assert_eq!(
            n.verify(&nonce, "ns/a/svc", NOW + 75_000)
                .unwrap_err()
                .to_string(),
            "nonce: expected at most 60 s old, actual 75.0 s"
        );
        n.verify(&nonce, "ns/a/svc", NOW + 60_000).unwrap();
        assert!(matches!(
            n.verify(&nonce, "ns/a/svc", NOW - 61_000),
            Err(NonceDenial::Future { .. })
        ));
        // Verified in time, redeemed too late.
        let verified = n.verify(&nonce, "ns/a/svc", NOW).unwrap();
        assert!(matches!(
            n.redeem(verified, NOW + 61_000),
            Err(RedeemError::Denied(NonceDenial::Expired { .. }))
        ));
    }

    #[test]
    fn a_clock_moving_back_does_not_revive_forgotten_nonces() {
        let n = nonces(10);
        let nonce = n.issue("ns/a/svc", NOW).unwrap();
        use_once(&n, &nonce, "ns/a/svc", NOW).unwrap();
        // Much later the entry is purged; then the clock jumps back.
        let later = n.issue("ns/a/svc", NOW + 120_000).unwrap();
        use_once(&n, &later, "ns/a/svc", NOW + 120_000).unwrap();
        assert_eq!(n.redeemed(), 1);
        let verified = n.verify(&nonce, "ns/a/svc", NOW + 1).unwrap();
        assert!(matches!(
            n.redeem(verified, NOW + 1),
            Err(RedeemError::Denied(NonceDenial::Expired { .. }))
        ));
    }

    #[test]
    fn the_redeemed_set_is_bounded_fails_closed_and_expires() {
        let n = nonces(3);
        for _ in 0..3 {
            let nonce = n.issue("ns/a/svc", NOW).unwrap();
            use_once(&n, &nonce, "ns/a/svc", NOW).unwrap();
        }
        let nonce = n.issue("ns/a/svc", NOW).unwrap();
        let full = use_once(&n, &nonce, "ns/a/svc", NOW).unwrap_err();
        assert_eq!(full, RedeemError::Full { max: 3 });
        assert!(full.to_string().contains("enclave.max_redeemed_nonces"));
        // Not redeemed while full: usable once room is made, here by expiry.
        let fresh = n.issue("ns/a/svc", NOW + 60_001).unwrap();
        use_once(&n, &fresh, "ns/a/svc", NOW + 60_001).unwrap();
        assert_eq!(n.redeemed(), 1);
    }
}
