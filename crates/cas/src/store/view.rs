//! The store's verified view of every session's current version, which reads are checked
//! against ([`super::integrity`] says why).
//!
//! It is verified in full at open ([`verify`]). Afterwards this CAS's writer updates it with
//! each commit; and where other replicas write to the same database, it catches up with their
//! commits ([`catch_up`]): the entries they changed are read, and the result must match the
//! sealed state's digest before the view moves on. A state older than one already seen is a
//! database put back in time, and is refused.

use super::StoreError;
use super::integrity::{self, Current, Digest, Known, Revisions, State, Version};
use super::tables::{Record, Tables};
use crate::seal::Sealer;

/// Every session's verified current version, as of the sealed `state`.
#[derive(Debug)]
pub(super) struct View {
    pub revisions: Revisions,
    pub state: State,
}

/// Which version of an index entry a record of `kind` must have (`None`: no record).
pub(super) fn expected(kind: Record, current: &Current) -> Option<&Version> {
    match kind {
        Record::Session => Some(&current.version),
        Record::Secrets => current.secrets_version(),
    }
}

/// `Ok` when `found` is the `expected` version of the record at `address`.
pub(super) fn check_current(
    address: &str,
    expected: Option<&Version>,
    found: Option<&Version>,
) -> Result<(), StoreError> {
    if expected == found {
        return Ok(());
    }
    Err(StoreError::Rollback {
        record: address.to_owned(),
        expected: integrity::describe(expected),
        found: integrity::describe(found),
    })
}

/// The sealed state in `tables`.
pub(super) fn stored_state(tables: &dyn Tables, sealer: &Sealer) -> Result<State, StoreError> {
    let sealed = tables
        .meta(integrity::STATE_KEY)?
        .ok_or_else(|| StoreError::Integrity("the store's sealed state is missing".into()))?;
    State::open(sealer, &sealed)
}

/// Checks the audit table's bounds, the revision index against the sealed `state`, and every
/// session and secrets record against the index; returns the verified view.
pub(super) fn verify(
    tables: &dyn Tables,
    sealer: &Sealer,
    digest: &Digest,
    state: &State,
) -> Result<View, StoreError> {
    check_audit_bounds(tables, state)?;

    let mut revisions = Revisions::default();
    let mut check = state.clone();
    check.digest = [0; 32];
    check.sessions = 0;
    for entry in tables.index_since(0)? {
        check.toggle(digest.entry(&entry.name, &entry.current));
        check.sessions += 1;
        revisions.map.insert(
            entry.name,
            Known {
                current: entry.current,
                since: state.generation,
                prev: None,
                gap: false,
            },
        );
    }
    if check != *state {
        return Err(StoreError::Integrity(format!(
            "the revision index does not match the store's sealed state (generation {}): expected {} sessions with the sealed digest, found {} sessions{}: records were rolled back, removed or added outside the CAS",
            state.generation,
            state.sessions,
            check.sessions,
            if check.digest == state.digest {
                ""
            } else {
                " and another digest"
            },
        )));
    }

    for kind in [Record::Session, Record::Secrets] {
        tables.records(kind, "", &mut |name, value| {
            let address = kind.address(name);
            let (found, plain) = integrity::open_record(sealer, &address, value)?;
            if kind == Record::Session {
                super::decode_session_checked(&address, name, &found, &plain)?;
            }
            let current = revisions.current(name);
            check_current(
                &address,
                current.and_then(|c| expected(kind, c)),
                Some(&found),
            )?;
            Ok(true)
        })?;
        // A record removed (rolled back to before it existed) is missing here.
        for (name, known) in &revisions.map {
            if let Some(version) = expected(kind, &known.current)
                && tables.record(kind, name)?.is_none()
            {
                check_current(&kind.address(name), Some(version), None)?;
            }
        }
    }
    Ok(View {
        revisions,
        state: state.clone(),
    })
}

fn check_audit_bounds(tables: &dyn Tables, state: &State) -> Result<(), StoreError> {
    let bounds = tables.audit_bounds()?;
    let expected_len = state.audit_next - state.audit_first;
    let bounds_ok = match (bounds.first, bounds.last) {
        (Some(first), Some(last)) => first == state.audit_first && last + 1 == state.audit_next,
        _ => expected_len == 0,
    };
    if bounds.count == expected_len && bounds_ok {
        return Ok(());
    }
    let found = match (bounds.first, bounds.last) {
        (Some(first), Some(last)) => format!("{} events numbered {first} to {last}", bounds.count),
        _ => "no events".into(),
    };
    Err(StoreError::Integrity(format!(
        "audit log: the sealed state expects {expected_len} events numbered {} to {}, the table holds {found}: events were removed or added outside the CAS",
        state.audit_first,
        state.audit_next.saturating_sub(1),
    )))
}

/// Brings `view` up to `state`, read from `tables` in the same snapshot: applies the index
/// entries written since the view's generation, and moves on only if they add up to the
/// state's digest. A state older than the view's is refused (the database went back in time).
pub(super) fn catch_up(
    view: &mut View,
    tables: &dyn Tables,
    digest: &Digest,
    state: State,
) -> Result<(), StoreError> {
    let seen = view.state.generation;
    if state.generation < seen {
        return Err(StoreError::Integrity(format!(
            "the store's sealed state is generation {}, but this CAS has seen generation {seen}: the database was put back in time (restored from a backup while CASes ran, or changed outside the CAS); restart the CASes after a restore",
            state.generation
        )));
    }
    if state.generation == seen {
        if state != view.state {
            return Err(StoreError::Integrity(format!(
                "the store's sealed state changed without a new generation ({seen}): changed outside the CAS"
            )));
        }
        return Ok(());
    }
    let changed = tables.index_since(seen)?;
    let mut check = view.state.clone();
    for entry in &changed {
        match view.revisions.current(&entry.name) {
            Some(old) => check.toggle(digest.entry(&entry.name, old)),
            None => check.sessions += 1,
        }
        check.toggle(digest.entry(&entry.name, &entry.current));
    }
    if check.digest != state.digest || check.sessions != state.sessions {
        return Err(StoreError::Integrity(format!(
            "the revision index written between generations {seen} and {} does not match the store's sealed state ({} sessions expected, {} found{}): records were rolled back, removed or added outside the CAS",
            state.generation,
            state.sessions,
            check.sessions,
            if check.digest == state.digest {
                ""
            } else {
                ", another digest"
            },
        )));
    }
    for entry in changed {
        // What the entry was between `seen` and its write is unknown (another replica may
        // have written it more than once): snapshots from before are not checked but retried.
        let known = Known {
            current: entry.current,
            since: entry.generation,
            prev: None,
            gap: true,
        };
        view.revisions.map.insert(entry.name, known);
    }
    view.state = state;
    Ok(())
}
