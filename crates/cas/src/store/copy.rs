//! `custos-cas store copy`: moves a whole store between the embedded file and PostgreSQL (for
//! a CAS that grows out of one machine, or back).
//!
//! Sealed values are copied as they are — their sealing binds each to its record and
//! revision, not to a backend — with the sealed state and digest key, so the copy is the same
//! store: same master key, same rollback protection, same audit numbering. The source is
//! verified in full before, the destination after. The destination must be new (an embedded
//! file that does not exist yet, or a database holding no store or an empty one). The CAS's
//! TLS identity moves with it (the data directory's `cas.crt`/`cas.key` ↔ the identity
//! replicas share), so clients that pinned it need not attest again.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::integrity::{self, State};
use super::postgres::PgSettings;
use super::postgres::backend::{self, blocking};
use super::tables::{IndexEntry, Record, Tables, Transaction};
use super::{KEY_CHECK, StoreError, embedded, open_audit};
use crate::seal::Sealer;

/// The name the replicas' shared TLS identity is kept under.
pub const TLS_IDENTITY: &str = "tls-identity";

/// One end of a copy.
#[derive(Debug, Clone)]
pub enum Location {
    /// A CAS data directory (its `cas.redb`, `cas.crt` and `cas.key`).
    Embedded(PathBuf),
    /// A PostgreSQL database.
    Postgres(PgSettings),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded(dir) => write!(f, "{}", dir.display()),
            Self::Postgres(_) => f.write_str("the PostgreSQL database"),
        }
    }
}

/// What was copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Sessions.
    pub sessions: u64,
    /// Sessions with secret values.
    pub secrets: u64,
    /// Audit events.
    pub audit_events: u64,
    /// Whether the TLS identity came along.
    pub tls_identity: bool,
}

/// Copies the store at `from` to the new store at `to`; both are verified with `sealer`.
pub fn copy(from: &Location, to: &Location, sealer: &Sealer) -> Result<Copied, StoreError> {
    blocking(|| {
        let source = Opened::open(from, sealer, false)?;
        let destination = Opened::open(to, sealer, true)?;
        let copied = destination.fill(&source, sealer)?;
        // Opening again verifies every record of the copy against its sealed state.
        Opened::open(to, sealer, false)?;
        Ok(copied)
    })
}

/// An opened store of either kind, verified.
pub(super) enum Opened {
    Embedded { dir: PathBuf, db: ::redb::Database },
    Postgres(Box<backend::Opened>),
}

impl Opened {
    pub(super) fn open(
        location: &Location,
        sealer: &Sealer,
        new: bool,
    ) -> Result<Self, StoreError> {
        let refused = |why: &str| StoreError::Integrity(format!("{location}: {why}"));
        match location {
            Location::Embedded(dir) => {
                let path = dir.join("cas.redb");
                match (new, path.exists()) {
                    (true, true) => {
                        return Err(refused(
                            "a store exists there already; the copy goes to a new one",
                        ));
                    }
                    (false, false) => return Err(refused("no store (cas.redb) there")),
                    _ => {}
                }
                std::fs::create_dir_all(dir).map_err(|e| refused(&e.to_string()))?;
                let (db, _, _) = embedded::open(&path, sealer)?;
                Ok(Self::Embedded {
                    dir: dir.clone(),
                    db,
                })
            }
            Location::Postgres(settings) => {
                let opened = backend::open(settings, sealer)?;
                let state = &opened.view.state;
                if new && (state.generation > 0 || state.audit_next > 1) {
                    return Err(refused(&format!(
                        "it holds a store already (generation {}, {} sessions); the copy goes to a new one",
                        state.generation, state.sessions
                    )));
                }
                Ok(Self::Postgres(Box::new(opened)))
            }
        }
    }

    /// A write transaction on it.
    pub(super) fn begin(&mut self) -> Result<Box<dyn Transaction + '_>, StoreError> {
        match self {
            Self::Embedded { db, .. } => embedded::begin(db),
            Self::Postgres(opened) => opened.writer.begin(),
        }
    }

    fn snapshot(&self) -> Result<Box<dyn Tables + '_>, StoreError> {
        match self {
            Self::Embedded { db, .. } => embedded::snapshot(db),
            Self::Postgres(opened) => Ok(opened.reader.snapshot()?.0),
        }
    }

    /// The TLS identity (certificate and key PEM), if the store has one.
    fn tls_identity(&self, sealer: &Sealer) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        match self {
            Self::Embedded { dir, .. } => {
                let read = |name| std::fs::read(dir.join(name)).ok();
                Ok(match (read("cas.crt"), read("cas.key")) {
                    (Some(cert), Some(key)) => {
                        let mut both = Zeroizing::new(cert);
                        both.extend_from_slice(&Zeroizing::new(key));
                        Some(both)
                    }
                    _ => None,
                })
            }
            Self::Postgres(opened) => opened.reader.stored_shared_value(sealer, TLS_IDENTITY),
        }
    }

    /// Writes everything `source` holds into this (new) store, in one transaction.
    fn fill(self, source: &Self, sealer: &Sealer) -> Result<Copied, StoreError> {
        let read = source.snapshot()?;
        let state = super::view::stored_state(read.as_ref(), sealer)?;
        let identity = source.tls_identity(sealer)?;
        let copied = match self {
            Self::Embedded { ref dir, ref db } => {
                let txn = embedded::begin(db)?;
                let copied = write_all(read.as_ref(), txn, &state, sealer)?;
                if let Some(pem) = &identity {
                    write_identity_files(dir, pem)?;
                }
                copied
            }
            Self::Postgres(mut opened) => {
                let txn = opened.writer.begin()?;
                let copied = write_all(read.as_ref(), txn, &state, sealer)?;
                if let Some(pem) = &identity {
                    opened
                        .reader
                        .shared_value(sealer, TLS_IDENTITY, || Ok(pem.clone()))?;
                }
                copied
            }
        };
        Ok(Copied {
            tls_identity: identity.is_some(),
            ..copied
        })
    }
}

/// Copies every record, index entry, audit event and the store's metadata from `read` into
/// `txn`, and commits.
fn write_all(
    read: &dyn Tables,
    mut txn: Box<dyn Transaction + '_>,
    state: &State,
    sealer: &Sealer,
) -> Result<Copied, StoreError> {
    let mut copied = Copied {
        sessions: 0,
        secrets: 0,
        audit_events: 0,
        tls_identity: false,
    };
    for key in [KEY_CHECK, integrity::DIGEST_KEY, integrity::STATE_KEY] {
        let value = read
            .meta(key)?
            .ok_or_else(|| StoreError::Integrity(format!("the source store has no meta/{key}")))?;
        txn.put_meta(key, &value)?;
    }
    for IndexEntry {
        name,
        current,
        generation,
    } in read.index_since(0)?
    {
        // The embedded store keeps no generations: its entries date from its state's.
        let generation = if generation == 0 {
            state.generation
        } else {
            generation
        };
        txn.put_index(&name, &current, generation)?;
    }
    for kind in [Record::Session, Record::Secrets] {
        let records = read.all_records(kind)?;
        for (name, value) in records {
            txn.put_record(kind, &name, &value)?;
            match kind {
                Record::Session => copied.sessions += 1,
                Record::Secrets => copied.secrets += 1,
            }
        }
    }
    let mut after = 0;
    loop {
        let events = read.audit(None, after, 1024)?;
        let Some(&(last, _)) = events.last() else {
            break;
        };
        for (seq, sealed) in events {
            // The per-session index needs the event's session: it is inside the seal.
            let session = open_audit(sealer, seq, &sealed)?.event.session;
            txn.put_audit(seq, session.as_deref(), &sealed)?;
            copied.audit_events += 1;
        }
        after = last;
    }
    txn.commit()?;
    Ok(copied)
}

fn write_identity_files(dir: &Path, pem: &[u8]) -> Result<(), StoreError> {
    let text = std::str::from_utf8(pem).map_err(|_| StoreError::Corrupt {
        record: format!("meta/shared/{TLS_IDENTITY}"),
        reason: "not PEM".into(),
    })?;
    let key_start = text
        .find("-----BEGIN PRIVATE KEY-----")
        .or_else(|| text.find("-----BEGIN EC PRIVATE KEY-----"));
    let Some(key_start) = key_start else {
        return Err(StoreError::Corrupt {
            record: format!("meta/shared/{TLS_IDENTITY}"),
            reason: "no private key".into(),
        });
    };
    let (cert, key) = text.split_at(key_start);
    write_private(&dir.join("cas.key"), key.as_bytes(), 0o600)?;
    write_private(&dir.join("cas.crt"), cert.as_bytes(), 0o644)
}

fn write_private(path: &Path, content: &[u8], mode: u32) -> Result<(), StoreError> {
    use std::io::Write;
    let error = |e: std::io::Error| StoreError::Database(format!("{}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(path).map_err(error)?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(error)
}
