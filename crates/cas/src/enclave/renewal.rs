//! Renewal at delivery: before a service's secrets are resolved, the generated certificates
//! it refers to (directly or through the certificates that issued them) that are due
//! ([`crate::secrets::renew`]) are renewed and written to the store.
//!
//! The renewal is decided again inside the write transaction, on the values stored then: two
//! attestations that both saw a certificate due end with one renewal, which every later
//! delivery — and a restarted CAS — delivers. It is written only while the session is the
//! version that was attested (an update in between has made its own values), keeps the
//! session's revision and hash (the policy did not change), and is audited (`secret-renew`,
//! one event per certificate replaced) in the same transaction.
//!
//! A renewal that fails (the store refuses the write, an imported issuer is no longer
//! exported) does not stop the delivery: a certificate still valid is delivered as it is, and
//! an expired one is refused by `values` naming why it was not renewed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use custos_policy::Session;
use time::OffsetDateTime;

use crate::api::TxImports;
use crate::audit::{AuditAction, AuditEvent, Outcome};
use crate::secrets::renew::{self, Renewal};
use crate::secrets::{SecretError, SecretValues};
use crate::store::{Store, StoreError, WriteTx};

/// Why the certificates a delivery could have renewed were not, by secret name. Empty when
/// nothing was due or everything due was renewed.
#[derive(Debug, Default)]
pub struct NotRenewed(BTreeMap<String, String>);

impl NotRenewed {
    /// Why `secret` was not renewed, if its renewal was tried and failed.
    pub fn why(&self, secret: &str) -> Option<&str> {
        self.0.get(secret).map(String::as_str)
    }

    fn all(names: &BTreeSet<String>, why: &str) -> Self {
        Self(names.iter().map(|n| (n.clone(), why.to_owned())).collect())
    }
}

/// Why a renewal was not written. Never holds a value.
#[derive(Debug, thiserror::Error)]
enum RenewError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(
        "session {session} changed while the service attested: expected hash {expected}, found {found}"
    )]
    Changed {
        session: String,
        expected: String,
        found: String,
    },
    #[error("{0}")]
    Secret(#[from] SecretError),
}

/// Renews, as of `now`, the due certificates among those a service referring to `names`
/// receives; says which could not be renewed and why.
pub async fn renew_due(
    store: &Store,
    session: &Arc<Session>,
    names: &BTreeSet<String>,
    now: OffsetDateTime,
) -> NotRenewed {
    let candidates = renew::candidates(session, names);
    if candidates.is_empty() {
        return NotRenewed::default();
    }
    // A read first: almost always nothing is due, and a read does not wait for the writer.
    let due = store
        .read()
        .and_then(|read| read.secrets(session.name.as_str()))
        .map_err(RenewError::from)
        .and_then(|bytes| stored_values(bytes.as_ref().map(|b| b.as_slice())))
        .and_then(|values| Ok(renew::due(&values, &candidates, now)?));
    match due {
        Ok(due) if due.is_empty() => return NotRenewed::default(),
        Ok(_) => {}
        Err(e) => return failed(session, &candidates, &e),
    }
    let written = {
        let (session, candidates) = (session.clone(), candidates.clone());
        store
            .write(move |tx| renew_in(tx, &session, &candidates, now))
            .await
    };
    match written {
        Ok(Some(renewal)) => {
            tracing::info!(
                session = %session.name,
                renewed = ?renewal.renewed,
                reissued = ?renewal.reissued,
                "generated certificates renewed"
            );
            NotRenewed::default()
        }
        // Renewed by a concurrent attestation.
        Ok(None) => NotRenewed::default(),
        Err(e) => failed(session, &candidates, &e),
    }
}

/// In the write transaction: renews what is still due in the stored values, stages them and
/// their audit events. `None` when nothing is due any more.
fn renew_in(
    tx: &mut WriteTx<'_>,
    session: &Session,
    candidates: &BTreeSet<String>,
    now: OffsetDateTime,
) -> Result<Option<Renewal>, RenewError> {
    let name = session.name.as_str();
    let expected = session.hash.to_string();
    let found = tx
        .session(name)?
        .map_or_else(|| "none (deleted)".to_owned(), |r| r.hash);
    if found != expected {
        return Err(RenewError::Changed {
            session: name.to_owned(),
            expected,
            found,
        });
    }
    let values = stored_values(tx.secrets(name)?.as_ref().map(|b| b.as_slice()))?;
    let due = renew::due(&values, candidates, now)?;
    if due.is_empty() {
        return Ok(None);
    }
    let renewal = renew::renew(session, &values, &due, &TxImports(tx), now)?;
    tx.put_secrets(name, renewal.values.to_bytes());
    let time_ms = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    for secret in renewal.renewed.iter().chain(&renewal.reissued) {
        let mut event = AuditEvent::new(time_ms, AuditAction::SecretRenew, Outcome::Allowed);
        event.session = Some(name.to_owned());
        event.hash = Some(expected.clone());
        event.secret = Some(secret.clone());
        tx.append_audit(event);
    }
    Ok(Some(renewal))
}

fn stored_values(bytes: Option<&[u8]>) -> Result<SecretValues, RenewError> {
    match bytes {
        Some(bytes) => Ok(SecretValues::from_bytes(bytes)?),
        None => Ok(SecretValues::default()),
    }
}

fn failed(session: &Session, candidates: &BTreeSet<String>, e: &RenewError) -> NotRenewed {
    tracing::warn!(
        session = %session.name,
        secrets = ?candidates,
        error = %e,
        "generated certificates due for renewal were not renewed"
    );
    NotRenewed::all(candidates, &e.to_string())
}
