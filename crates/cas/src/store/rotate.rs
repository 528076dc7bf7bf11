//! `custos-cas master-key rotate`: re-seals a whole store under a new master key, in one
//! transaction — every session and secrets record (still bound to its revision), every audit
//! event, the sealed state, the digest key, the key check and the values replicas share. The
//! store is verified under the old key before and under the new one after; until the
//! transaction commits the old key still opens everything, and after it only the new one does.
//! Run it with the CAS (every replica) stopped.

use super::copy::{Location, Opened, TLS_IDENTITY};
use super::integrity::{self, DIGEST_KEY_ADDRESS, STATE_ADDRESS};
use super::postgres::backend::blocking;
use super::tables::{Record, Transaction};
use super::{KEY_CHECK, StoreError, audit_address, open_audit};
use crate::seal::Sealer;

/// What was re-sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    /// Session records.
    pub sessions: u64,
    /// Secrets records.
    pub secrets: u64,
    /// Audit events.
    pub audit_events: u64,
}

/// Re-seals the store at `location` from `old` to `new`; `progress(what, done)` is called as
/// records are re-sealed.
pub fn rotate(
    location: &Location,
    old: &Sealer,
    new: &Sealer,
    progress: &mut (dyn FnMut(&str, u64) + Send),
) -> Result<Rotated, StoreError> {
    blocking(|| {
        let mut opened = Opened::open(location, old, false)?;
        let txn = opened.begin()?;
        let rotated = reseal_all(txn, old, new, progress)?;
        drop(opened);
        Opened::open(location, new, false)?;
        Ok(rotated)
    })
}

/// Whether the store at `location` opens, verified, under `sealer` (a rotation interrupted
/// after its re-seal opens under the new key only).
pub fn opens_with(location: &Location, sealer: &Sealer) -> bool {
    blocking(|| Opened::open(location, sealer, false).map(drop)).is_ok()
}

fn reseal(address: &str, old: &Sealer, new: &Sealer, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
    Ok(new.seal(address, &old.open(address, sealed)?)?)
}

fn reseal_all(
    mut txn: Box<dyn Transaction + '_>,
    old: &Sealer,
    new: &Sealer,
    progress: &mut (dyn FnMut(&str, u64) + Send),
) -> Result<Rotated, StoreError> {
    let mut rotated = Rotated {
        sessions: 0,
        secrets: 0,
        audit_events: 0,
    };
    for (key, address) in [
        (KEY_CHECK, KEY_CHECK),
        (integrity::DIGEST_KEY, DIGEST_KEY_ADDRESS),
        (integrity::STATE_KEY, STATE_ADDRESS),
    ] {
        let sealed = txn
            .meta(key)?
            .ok_or_else(|| StoreError::Integrity(format!("the store has no meta/{key}")))?;
        txn.put_meta(key, &reseal(address, old, new, &sealed)?)?;
    }
    let shared = format!("shared/{TLS_IDENTITY}");
    if let Some(sealed) = txn.meta(&shared)? {
        txn.put_meta(
            &shared,
            &reseal(&format!("meta/{shared}"), old, new, &sealed)?,
        )?;
    }
    for kind in [Record::Session, Record::Secrets] {
        let records = txn.all_records(kind)?;
        let what = match kind {
            Record::Session => "sessions",
            Record::Secrets => "secrets records",
        };
        for (done, (name, value)) in records.into_iter().enumerate() {
            let address = kind.address(&name);
            let (version, plain) = integrity::open_record(old, &address, &value)?;
            let sealed = integrity::seal_record(new, &address, &version, &plain)?;
            txn.put_record(kind, &name, &sealed)?;
            progress(what, done as u64 + 1);
            match kind {
                Record::Session => rotated.sessions += 1,
                Record::Secrets => rotated.secrets += 1,
            }
        }
    }
    let mut after = 0;
    loop {
        let events = txn.audit(None, after, 1024)?;
        let Some(&(last, _)) = events.last() else {
            break;
        };
        for (seq, sealed) in events {
            let session = open_audit(old, seq, &sealed)?.event.session;
            let resealed = reseal(&audit_address(seq), old, new, &sealed)?;
            txn.remove_audit(seq, session.as_deref())?;
            txn.put_audit(seq, session.as_deref(), &resealed)?;
            rotated.audit_events += 1;
        }
        progress("audit events", rotated.audit_events);
        after = last;
    }
    txn.commit()?;
    Ok(rotated)
}
