//! What a store backend does: keep bytes under keys, in transactions. Everything a backend is
//! given is sealed or public (session names, revisions, hashes, audit sequence numbers); the
//! sealing, the rollback checks and the group commit are the store's ([`super`]), the same
//! for every backend.

use super::StoreError;
use super::integrity::Current;

/// The two kinds of record kept per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Record {
    /// The session itself ([`super::SessionRecord`], sealed).
    Session,
    /// The session's secret values (opaque, sealed).
    Secrets,
}

impl Record {
    /// The record's address, which its sealing is bound to.
    pub fn address(self, name: &str) -> String {
        match self {
            Self::Session => format!("sessions/{name}"),
            Self::Secrets => format!("secrets/{name}"),
        }
    }
}

/// One entry of the revision index, and the generation that last changed it.
#[derive(Debug, Clone)]
pub(super) struct IndexEntry {
    pub name: String,
    pub current: Current,
    /// The store generation that wrote it (0 where the backend does not keep it: redb, whose
    /// single writer never needs to catch up with another's writes).
    pub generation: u64,
}

/// The audit table's extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AuditBounds {
    pub count: u64,
    pub first: Option<u64>,
    pub last: Option<u64>,
}

/// A visitor of records: (session name, sealed value) → whether to go on.
pub(super) type Visit<'v> = dyn FnMut(&str, &[u8]) -> Result<bool, StoreError> + 'v;

/// Reading, in one consistent snapshot (or in a write transaction, its state).
pub(super) trait Tables {
    /// The sealed record of `kind` for session `name`.
    fn record(&self, kind: Record, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every record of `kind` whose session name starts with `prefix`, in name order, until
    /// `visit` returns `false`.
    fn records(&self, kind: Record, prefix: &str, visit: &mut Visit<'_>) -> Result<(), StoreError>;
    /// Every record of `kind`, in name order (for copying and re-sealing a whole store).
    fn all_records(&self, kind: Record) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        self.records(kind, "", &mut |name, value| {
            out.push((name.to_owned(), value.to_vec()));
            Ok(true)
        })?;
        Ok(out)
    }
    /// Number of sessions.
    fn session_count(&self) -> Result<u64, StoreError>;
    /// The value under `key` in the store's metadata.
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The revision-index entries written after generation `after` (every entry, where the
    /// backend keeps no generations).
    fn index_since(&self, after: u64) -> Result<Vec<IndexEntry>, StoreError>;
    /// Up to `limit` sealed audit events numbered above `after`, oldest first; only those
    /// about `session` if given.
    fn audit(
        &self,
        session: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// The sealed audit event numbered `seq`.
    fn audit_event(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// How many audit events there are and their lowest and highest numbers.
    fn audit_bounds(&self) -> Result<AuditBounds, StoreError>;
}

/// Writing, inside a transaction that [`Transaction::commit`] makes durable.
pub(super) trait WriteTables: Tables {
    /// Inserts or replaces the record of `kind` of session `name`.
    fn put_record(&mut self, kind: Record, name: &str, sealed: &[u8]) -> Result<(), StoreError>;
    /// Sets session `name`'s revision-index entry, written in generation `generation`.
    fn put_index(
        &mut self,
        name: &str,
        current: &Current,
        generation: u64,
    ) -> Result<(), StoreError>;
    /// Adds audit event `seq` (about `session`, if any).
    fn put_audit(
        &mut self,
        seq: u64,
        session: Option<&str>,
        sealed: &[u8],
    ) -> Result<(), StoreError>;
    /// Removes audit event `seq` (about `session`, if any).
    fn remove_audit(&mut self, seq: u64, session: Option<&str>) -> Result<(), StoreError>;
    /// Sets `key` in the store's metadata.
    fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError>;
}

/// A write transaction of a backend.
pub(super) trait Transaction: WriteTables {
    /// Commits durably: returns only once the change survives a crash.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
    /// Drops every change.
    fn abort(self: Box<Self>);
    /// Upcast for the reads of requests in the batch.
    fn tables(&self) -> &dyn Tables;
}
