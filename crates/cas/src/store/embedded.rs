//! The embedded backend: one redb file in the data directory, for a CAS on one machine.
//!
//! Tables (keys in clear; values sealed):
//! - `sessions`: session name → [`super::SessionRecord`] (JSON)
//! - `secrets`: session name → the session's secret values
//! - `revisions`: session name → its current revision and hash (the revision index)
//! - `audit`: sequence number → [`crate::audit::AuditEvent`] (JSON)
//! - `audit_by_session`: (session name, sequence number) → ()
//! - `meta`: `key-check` → a sealed constant, so a wrong master key is refused at start-up;
//!   `state` → the sealed store-wide state; `digest-key` → the sealed digest key
//!
//! Its single writer is this CAS's, so the view never has to catch up: the revision index
//! keeps no generations.

use std::collections::HashMap;
use std::path::Path;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

use super::integrity::{self, Current, Digest, State};
use super::tables::{AuditBounds, IndexEntry, Record, Tables, Transaction, Visit, WriteTables};
use super::view::{self, View};
use super::{InitError, KEY_CHECK, KEY_CHECK_V2, StoreError, db_error};
use crate::seal::Sealer;

pub(super) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
pub(super) const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
pub(super) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
pub(super) const AUDIT_BY_SESSION: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("audit_by_session");
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(super) const REVISIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("revisions");

/// The key check of a format-v1 store (records bound to their address only).
pub(super) const KEY_CHECK_V1: &[u8] = b"custos-cas store v1";
/// redb page cache: small, so the CAS stays small; the OS page cache does the rest.
const CACHE_BYTES: usize = 16 << 20;

fn table_of(kind: Record) -> TableDefinition<'static, &'static str, &'static [u8]> {
    match kind {
        Record::Session => SESSIONS,
        Record::Secrets => SECRETS,
    }
}

/// Opens (or creates, or migrates from format v1) the database at `path`, checks that
/// `sealer` opens it and that every record is the current one.
pub(super) fn open(path: &Path, sealer: &Sealer) -> Result<(Database, Digest, View), StoreError> {
    let open_error = |e: &dyn std::fmt::Display| StoreError::Open {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let db = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|e| open_error(&e))?;
    let (digest, view) = init(&db, sealer).map_err(|e| match e {
        InitError::WrongKey => open_error(
            &"the master key does not open this store (another key file, or a damaged store)",
        ),
        InitError::Store(other) => open_error(&other),
    })?;
    Ok((db, digest, view))
}

/// Creates the tables, checks the master key, loads (or creates, or migrates to) the sealed
/// state and verifies every record against it, in one transaction.
fn init(db: &Database, sealer: &Sealer) -> Result<(Digest, View), InitError> {
    let txn = db.begin_write().map_err(db_error)?;
    for table in [SESSIONS, SECRETS, REVISIONS, META] {
        txn.open_table(table).map_err(db_error)?;
    }
    txn.open_table(AUDIT).map_err(db_error)?;
    txn.open_table(AUDIT_BY_SESSION).map_err(db_error)?;
    let mut tables = RedbWrite(txn);
    let format = match tables.meta(KEY_CHECK)? {
        None => None,
        Some(sealed) => {
            let plain = sealer
                .open(KEY_CHECK, &sealed)
                .map_err(|_| InitError::WrongKey)?;
            match plain.as_slice() {
                KEY_CHECK_V1 => Some(1),
                KEY_CHECK_V2 => Some(2),
                _ => return Err(InitError::WrongKey),
            }
        }
    };
    let digest = match tables.meta(integrity::DIGEST_KEY)? {
        Some(sealed) => Digest::open(sealer, &sealed)?,
        None => {
            let (digest, sealed) = Digest::generate(sealer)?;
            tables.put_meta(integrity::DIGEST_KEY, &sealed)?;
            digest
        }
    };
    let state = match (format, tables.meta(integrity::STATE_KEY)?) {
        (Some(2), Some(sealed)) => State::open(sealer, &sealed)?,
        (Some(2), None) => {
            return Err(StoreError::Integrity(
                "the store's sealed state (meta/state) is missing: the store was changed outside the CAS".into(),
            )
            .into());
        }
        // A new store, or a format-v1 store: (re-)seal every record bound to its revision.
        _ => {
            let state = migrate_v1(&tables.0, sealer, &digest)?;
            if format == Some(1) {
                tracing::info!(
                    sessions = state.sessions,
                    "store migrated from format v1 to v2 (records bound to their revision)"
                );
            }
            tables.put_meta(KEY_CHECK, &sealer.seal(KEY_CHECK, KEY_CHECK_V2)?)?;
            tables.put_meta(integrity::STATE_KEY, &state.seal(sealer)?)?;
            state
        }
    };
    let view = view::verify(&tables, sealer, &digest, &state)?;
    tables.0.commit().map_err(db_error)?;
    Ok((digest, view))
}

/// Re-seals every record of a format-v1 store (bound to its address only) bound to its
/// session's revision and hash, builds the revision index and returns the new state.
fn migrate_v1(
    txn: &redb::WriteTransaction,
    sealer: &Sealer,
    digest: &Digest,
) -> Result<State, StoreError> {
    let mut state = State {
        generation: 0,
        sessions: 0,
        digest: [0; 32],
        audit_first: 1,
        audit_next: 1,
    };
    let mut index: HashMap<String, Current> = HashMap::new();
    let mut sessions = txn.open_table(SESSIONS).map_err(db_error)?;
    for (name, value) in all_entries(&sessions)? {
        let address = Record::Session.address(&name);
        let plain = sealer.open(&address, &value)?;
        let version = super::decode_session(&address, &name, &plain)?.version();
        let sealed = integrity::seal_record(sealer, &address, &version, &plain)?;
        sessions
            .insert(name.as_str(), sealed.as_slice())
            .map_err(db_error)?;
        index.insert(
            name,
            Current {
                version,
                secrets: false,
            },
        );
    }
    let mut secrets = txn.open_table(SECRETS).map_err(db_error)?;
    for (name, value) in all_entries(&secrets)? {
        let address = Record::Secrets.address(&name);
        let current = index.get_mut(&name).ok_or_else(|| {
            StoreError::Integrity(format!(
                "migration: record {address:?} belongs to no stored session"
            ))
        })?;
        let plain = sealer.open(&address, &value)?;
        let sealed = integrity::seal_record(sealer, &address, &current.version, &plain)?;
        secrets
            .insert(name.as_str(), sealed.as_slice())
            .map_err(db_error)?;
        current.secrets = true;
    }
    let mut table = txn.open_table(REVISIONS).map_err(db_error)?;
    for (name, current) in &index {
        table
            .insert(name.as_str(), integrity::index_value(current).as_slice())
            .map_err(db_error)?;
        state.sessions += 1;
        state.toggle(digest.entry(name, current));
    }
    let audit = txn.open_table(AUDIT).map_err(db_error)?;
    if let (Some((first, _)), Some((last, _))) = (
        audit.first().map_err(db_error)?,
        audit.last().map_err(db_error)?,
    ) {
        state.audit_first = first.value();
        state.audit_next = last.value() + 1;
    }
    Ok(state)
}

fn all_entries(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    for entry in table.iter().map_err(db_error)? {
        let (key, value) = entry.map_err(db_error)?;
        out.push((key.value().to_owned(), value.value().to_vec()));
    }
    Ok(out)
}

/// A read snapshot.
pub(super) struct RedbRead(pub redb::ReadTransaction);

/// A write transaction, committed with `Durability::Immediate`.
pub(super) struct RedbWrite(pub redb::WriteTransaction);

/// Begins a durable write transaction.
pub(super) fn begin(db: &Database) -> Result<Box<dyn Transaction + '_>, StoreError> {
    let mut txn = db.begin_write().map_err(db_error)?;
    txn.set_durability(Durability::Immediate)
        .map_err(db_error)?;
    Ok(Box::new(RedbWrite(txn)))
}

/// Begins a read snapshot.
pub(super) fn snapshot(db: &Database) -> Result<Box<dyn Tables + '_>, StoreError> {
    Ok(Box::new(RedbRead(db.begin_read().map_err(db_error)?)))
}

/// The reads, the same for both transaction types (each has its own `open_table`).
macro_rules! redb_tables {
    ($type:ty) => {
        impl Tables for $type {
            fn record(&self, kind: Record, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
                let table = self.0.open_table(table_of(kind)).map_err(db_error)?;
                let value = table.get(name).map_err(db_error)?;
                Ok(value.map(|v| v.value().to_vec()))
            }

            fn records(
                &self,
                kind: Record,
                prefix: &str,
                visit: &mut Visit<'_>,
            ) -> Result<(), StoreError> {
                let table = self.0.open_table(table_of(kind)).map_err(db_error)?;
                for entry in table.range(prefix..).map_err(db_error)? {
                    let (key, value) = entry.map_err(db_error)?;
                    if !key.value().starts_with(prefix) || !visit(key.value(), value.value())? {
                        break;
                    }
                }
                Ok(())
            }

            fn session_count(&self) -> Result<u64, StoreError> {
                let table = self.0.open_table(SESSIONS).map_err(db_error)?;
                table.len().map_err(db_error)
            }

            fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
                let table = self.0.open_table(META).map_err(db_error)?;
                let value = table.get(key).map_err(db_error)?;
                Ok(value.map(|v| v.value().to_vec()))
            }

            fn index_since(&self, _after: u64) -> Result<Vec<IndexEntry>, StoreError> {
                let table = self.0.open_table(REVISIONS).map_err(db_error)?;
                let mut out = Vec::new();
                for (name, value) in all_entries(&table)? {
                    let current = integrity::parse_index_value(&name, &value)?;
                    out.push(IndexEntry {
                        name,
                        current,
                        generation: 0,
                    });
                }
                Ok(out)
            }

            fn audit(
                &self,
                session: Option<&str>,
                after: u64,
                limit: usize,
            ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
                let audit = self.0.open_table(AUDIT).map_err(db_error)?;
                let start = after.saturating_add(1);
                let mut out = Vec::new();
                let Some(session) = session else {
                    for entry in audit.range(start..).map_err(db_error)?.take(limit) {
                        let (seq, sealed) = entry.map_err(db_error)?;
                        out.push((seq.value(), sealed.value().to_vec()));
                    }
                    return Ok(out);
                };
                let index = self.0.open_table(AUDIT_BY_SESSION).map_err(db_error)?;
                let range = (session, start)..=(session, u64::MAX);
                for entry in index.range(range).map_err(db_error)?.take(limit) {
                    let (key, _) = entry.map_err(db_error)?;
                    let (_, seq) = key.value();
                    let sealed =
                        audit
                            .get(seq)
                            .map_err(db_error)?
                            .ok_or_else(|| StoreError::Corrupt {
                                record: super::audit_address(seq),
                                reason: "indexed but missing".into(),
                            })?;
                    out.push((seq, sealed.value().to_vec()));
                }
                Ok(out)
            }

            fn audit_event(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
                let audit = self.0.open_table(AUDIT).map_err(db_error)?;
                let value = audit.get(seq).map_err(db_error)?;
                Ok(value.map(|v| v.value().to_vec()))
            }

            fn audit_bounds(&self) -> Result<AuditBounds, StoreError> {
                let audit = self.0.open_table(AUDIT).map_err(db_error)?;
                Ok(AuditBounds {
                    count: audit.len().map_err(db_error)?,
                    first: audit.first().map_err(db_error)?.map(|(k, _)| k.value()),
                    last: audit.last().map_err(db_error)?.map(|(k, _)| k.value()),
                })
            }
        }
    };
}

redb_tables!(RedbRead);
redb_tables!(RedbWrite);

impl WriteTables for RedbWrite {
    fn put_record(&mut self, kind: Record, name: &str, sealed: &[u8]) -> Result<(), StoreError> {
        let mut table = self.0.open_table(table_of(kind)).map_err(db_error)?;
        table.insert(name, sealed).map_err(db_error)?;
        Ok(())
    }

    fn put_index(
        &mut self,
        name: &str,
        current: &Current,
        _generation: u64,
    ) -> Result<(), StoreError> {
        let mut table = self.0.open_table(REVISIONS).map_err(db_error)?;
        table
            .insert(name, integrity::index_value(current).as_slice())
            .map_err(db_error)?;
        Ok(())
    }

    fn put_audit(
        &mut self,
        seq: u64,
        session: Option<&str>,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        let mut audit = self.0.open_table(AUDIT).map_err(db_error)?;
        audit.insert(seq, sealed).map_err(db_error)?;
        if let Some(session) = session {
            let mut index = self.0.open_table(AUDIT_BY_SESSION).map_err(db_error)?;
            index.insert((session, seq), ()).map_err(db_error)?;
        }
        Ok(())
    }

    fn remove_audit(&mut self, seq: u64, session: Option<&str>) -> Result<(), StoreError> {
        let mut audit = self.0.open_table(AUDIT).map_err(db_error)?;
        audit.remove(seq).map_err(db_error)?;
        if let Some(session) = session {
            let mut index = self.0.open_table(AUDIT_BY_SESSION).map_err(db_error)?;
            index.remove((session, seq)).map_err(db_error)?;
        }
        Ok(())
    }

    fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut meta = self.0.open_table(META).map_err(db_error)?;
        meta.insert(key, value).map_err(db_error)?;
        Ok(())
    }
}

impl Transaction for RedbWrite {
    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.0.commit().map_err(db_error)
    }

    fn abort(self: Box<Self>) {
        let _ = self.0.abort();
    }

    fn tables(&self) -> &dyn Tables {
        self
    }
}
