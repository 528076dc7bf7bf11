//! Record-rollback protection (store format v2).
//!
//! A sealed value only proves that the CAS wrote it once, not that it is the current value: a
//! value saved earlier and put back into `cas.redb` would open. So each session and secrets
//! record carries the session revision and hash it belongs to, bound into the associated data,
//! and the store keeps one sealed [`State`] in `meta`: a generation counter, the number of
//! sessions and a keyed digest over every (name, revision, hash) of the revision index, plus
//! the audit log's first and next sequence numbers. At open the index is checked against the
//! state and every record against the index; afterwards the writer maintains an in-memory view
//! ([`Revisions`]) that reads are checked against.
//!
//! The digest is the XOR of one HMAC-SHA256 per entry: an update changes it in O(1), and
//! without the (sealed) digest key nobody can find another set of entries with the same XOR.

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::StoreError;
use crate::seal::Sealer;

/// Format byte of a v2 record value: `0x02 ‖ revision (u64 BE) ‖ hash length (u8) ‖ hash ‖
/// sealed`. The header is in clear so a mismatch can be reported with both revisions; it is
/// authenticated because the value opens only under associated data holding the same revision
/// and hash.
const RECORD_V2: u8 = 2;
/// Where the sealed state and the digest key live in `meta`.
pub(super) const STATE_KEY: &str = "state";
pub(super) const DIGEST_KEY: &str = "digest-key";

/// The session revision and hash a session or secrets record belongs to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) struct Version {
    pub rev: u64,
    pub hash: String,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "revision {} (hash {})", self.rev, self.hash)
    }
}

/// Describes an optional version for error messages.
pub(super) fn describe(v: Option<&Version>) -> String {
    v.map_or_else(|| "no record".to_owned(), ToString::to_string)
}

fn aad(address: &str, v: &Version) -> String {
    // The address is length-prefixed, so no name can make two different bindings collide.
    format!("v2:{}:{address}:{}:{}", address.len(), v.rev, v.hash)
}

/// Seals `plain` for `address`, bound to `version`.
pub(super) fn seal_record(
    sealer: &Sealer,
    address: &str,
    version: &Version,
    plain: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let hash = version.hash.as_bytes();
    let hash_len = u8::try_from(hash.len())
        .map_err(|_| StoreError::Seal(format!("record {address}: session hash too long")))?;
    let sealed = sealer.seal(&aad(address, version), plain)?;
    let mut out = Vec::with_capacity(1 + 8 + 1 + hash.len() + sealed.len());
    out.push(RECORD_V2);
    out.extend_from_slice(&version.rev.to_be_bytes());
    out.push(hash_len);
    out.extend_from_slice(hash);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a v2 record value; the version it returns is authentic.
pub(super) fn open_record(
    sealer: &Sealer,
    address: &str,
    value: &[u8],
) -> Result<(Version, Zeroizing<Vec<u8>>), StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        record: address.to_owned(),
        reason: reason.to_owned(),
    };
    let (&format, rest) = value.split_first().ok_or_else(|| corrupt("empty"))?;
    if format != RECORD_V2 {
        return Err(corrupt(&format!(
            "record format {format}, expected {RECORD_V2}"
        )));
    }
    if rest.len() < 9 {
        return Err(corrupt("shorter than its header"));
    }
    let (rev, rest) = rest.split_at(8);
    let rev = u64::from_be_bytes(rev.try_into().map_err(|_| corrupt("header"))?);
    let (&hash_len, rest) = rest.split_first().ok_or_else(|| corrupt("header"))?;
    if rest.len() < usize::from(hash_len) {
        return Err(corrupt("shorter than its header"));
    }
    let (hash, sealed) = rest.split_at(usize::from(hash_len));
    let hash = std::str::from_utf8(hash)
        .map_err(|_| corrupt("session hash is not text"))?
        .to_owned();
    let version = Version { rev, hash };
    let plain = sealer.open(&aad(address, &version), sealed)?;
    Ok((version, plain))
}

/// The store-wide authenticated state, sealed in `meta` under [`STATE_KEY`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct State {
    /// +1 per committed write transaction.
    pub generation: u64,
    /// Entries of the revision index (= sessions).
    pub sessions: u64,
    /// XOR of [`Digest::entry`] over the revision index.
    pub digest: [u8; 32],
    /// Lowest audit sequence number still stored (= `audit_next` when none is).
    pub audit_first: u64,
    /// The next audit sequence number: never reused, even after pruning everything.
    pub audit_next: u64,
}

pub(super) const STATE_ADDRESS: &str = "meta/state";

impl State {
    pub fn seal(&self, sealer: &Sealer) -> Result<Vec<u8>, StoreError> {
        let plain = serde_json::to_vec(self).map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(sealer.seal(STATE_ADDRESS, &plain)?)
    }

    pub fn open(sealer: &Sealer, sealed: &[u8]) -> Result<Self, StoreError> {
        let plain = sealer.open(STATE_ADDRESS, sealed)?;
        serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt {
            record: STATE_ADDRESS.into(),
            reason: e.to_string(),
        })
    }

    /// Adds (or, XOR being its own inverse, removes) an index entry.
    pub fn toggle(&mut self, entry: [u8; 32]) {
        for (d, e) in self.digest.iter_mut().zip(entry) {
            *d ^= e;
        }
    }
}

/// The keyed hash of revision-index entries.
pub(super) struct Digest {
    key: hmac::Key,
}

pub(super) const DIGEST_KEY_ADDRESS: &str = "meta/digest-key";

impl Digest {
    /// A new random key and its sealed form (for `meta`).
    pub fn generate(sealer: &Sealer) -> Result<(Self, Vec<u8>), StoreError> {
        let mut raw = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(raw.as_mut())
            .map_err(|_| StoreError::Seal("no randomness for the digest key".into()))?;
        let sealed = sealer.seal(DIGEST_KEY_ADDRESS, raw.as_ref())?;
        Ok((Self::from_raw(raw.as_ref()), sealed))
    }

    pub fn open(sealer: &Sealer, sealed: &[u8]) -> Result<Self, StoreError> {
        Ok(Self::from_raw(&sealer.open(DIGEST_KEY_ADDRESS, sealed)?))
    }

    fn from_raw(raw: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, raw),
        }
    }

    /// The digest contribution of session `name`'s index entry.
    pub fn entry(&self, name: &str, current: &Current) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&(name.len() as u64).to_be_bytes());
        ctx.update(name.as_bytes());
        ctx.update(&current.version.rev.to_be_bytes());
        ctx.update(&[u8::from(current.secrets)]);
        ctx.update(current.version.hash.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

/// A revision-index entry: the session's version and whether it has a secrets record (so
/// a removed one is noticed).
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) struct Current {
    pub version: Version,
    pub secrets: bool,
}

impl Current {
    /// The version its secrets record must have, if it has one.
    pub fn secrets_version(&self) -> Option<&Version> {
        self.secrets.then_some(&self.version)
    }
}

/// A revision-index value: `revision (u64 BE) ‖ has secrets (0|1) ‖ hash`.
pub(super) fn index_value(current: &Current) -> Vec<u8> {
    let mut out = current.version.rev.to_be_bytes().to_vec();
    out.push(u8::from(current.secrets));
    out.extend_from_slice(current.version.hash.as_bytes());
    out
}

pub(super) fn parse_index_value(name: &str, value: &[u8]) -> Result<Current, StoreError> {
    let corrupt = || StoreError::Corrupt {
        record: format!("revisions/{name}"),
        reason: "malformed".into(),
    };
    if value.len() < 9 {
        return Err(corrupt());
    }
    let (rev, rest) = value.split_at(8);
    let (&secrets, hash) = rest.split_first().ok_or_else(corrupt)?;
    Ok(Current {
        version: Version {
            rev: u64::from_be_bytes(rev.try_into().map_err(|_| corrupt())?),
            hash: std::str::from_utf8(hash).map_err(|_| corrupt())?.to_owned(),
        },
        secrets: match secrets {
            0 => false,
            1 => true,
            _ => return Err(corrupt()),
        },
    })
}

/// What the writer knows about one session: its current entry since generation `since`,
/// and the one before, for read snapshots taken before that generation.
#[derive(Clone, Debug)]
pub(super) struct Known {
    pub current: Current,
    pub since: u64,
    pub prev: Option<(Current, u64)>,
    /// Learned from another replica's writes: what the entry was before `since` is unknown.
    pub gap: bool,
}

/// The in-memory view of every session's current entry, verified at open and updated by
/// the writer before each commit (so a snapshot older than the commit is checked against
/// `prev`, one newer against `current`) and when catching up with other replicas' commits.
#[derive(Debug, Default)]
pub(super) struct Revisions {
    pub map: HashMap<String, Known>,
}

impl Revisions {
    /// The entry session `name` had in the snapshot of generation `generation`.
    /// `Err` when it changed twice since, or in a way only another replica knows: the
    /// snapshot is too old to check.
    pub fn at(&self, name: &str, generation: u64) -> Result<Option<&Current>, ()> {
        match self.map.get(name) {
            None => Ok(None),
            Some(k) if k.since <= generation => Ok(Some(&k.current)),
            Some(k) if k.gap => Err(()),
            Some(k) => match &k.prev {
                None => Ok(None),
                Some((c, since)) if *since <= generation => Ok(Some(c)),
                Some(_) => Err(()),
            },
        }
    }

    /// The current entry of `name`.
    pub fn current(&self, name: &str) -> Option<&Current> {
        self.map.get(name).map(|k| &k.current)
    }
}
