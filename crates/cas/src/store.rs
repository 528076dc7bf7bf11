//! The session store: sessions, their secret values and the audit log, every value sealed
//! ([`crate::seal`]), kept by one of two backends behind one interface ([`tables`]): an
//! embedded redb file for a CAS on one machine ([`embedded`]), or a PostgreSQL database that
//! several CAS replicas share ([`postgres`]).
//!
//! Writes go through one writer thread per CAS that groups concurrent requests into one durable
//! transaction (group commit): a caller's [`Store::write`] returns only after the transaction
//! holding its change has been committed durably, so an acknowledged write survives a crash.
//! Each request's closure sees the transaction's state, including earlier requests of the same
//! batch, and its changes are staged: a closure that returns an error leaves nothing behind,
//! and a batch that fails to commit fails every request in it. With PostgreSQL a transaction
//! holds the lock of the store's state row, so the writers of all replicas take turns: a
//! request's closure sees every write any replica acknowledged, which makes a create exactly
//! once and an update a compare-and-set on its predecessor across replicas.
//!
//! Records are bound to their session's revision and hash, and one sealed store-wide state
//! covers the revision index and the audit log's bounds ([`integrity`]): a value put back from
//! an earlier copy is refused ([`view`]).
//!
//! The writer also applies the audit retention ([`Retention`]): oldest events first, at most
//! [`writer::PRUNE_CHUNK`] per transaction, so a batch stays fast; sequence numbers are never
//! reused.

pub mod copy;
mod embedded;
mod integrity;
pub mod postgres;
pub mod rotate;
mod tables;
mod view;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use custos_ids::KeyHash;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use crate::audit::{AuditEntry, AuditEvent, Retention};
use crate::seal::{SealError, Sealer};
use integrity::{Current, Digest, Version};
use postgres::PgSettings;
use tables::{Record, Tables};
use view::{View, check_current};

const KEY_CHECK: &str = "key-check";
/// The key check of a format-v2 store: a v2 store without its sealed state is refused
/// instead of being "migrated" again from whatever its tables hold.
const KEY_CHECK_V2: &[u8] = b"custos-cas store v2";
/// Requests waiting for the writer. When it is full, callers wait: under a flood of audited
/// reads the CAS slows down to what it can audit rather than queueing without bound.
const QUEUE: usize = 4096;

/// Why the store failed. Messages never hold values.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("store {path}: {reason}")]
    Open {
        /// The database file.
        path: String,
        /// What redb said.
        reason: String,
    },
    /// A database operation failed.
    #[error("store: {0}")]
    Database(String),
    /// Sealing or opening a value failed.
    #[error("store: {0}")]
    Seal(String),
    /// A stored record could not be decoded after it opened.
    #[error("store: record {record} is corrupt: {reason}")]
    Corrupt {
        /// The record address.
        record: String,
        /// The decoder's reason.
        reason: String,
    },
    /// A record is not the one the store's sealed state says is current.
    #[error(
        "store: record {record} is not current: expected {expected}, found {found} (an older value was put back, or the store was changed outside the CAS)"
    )]
    Rollback {
        /// The record address (`sessions/<name>`, `secrets/<name>`).
        record: String,
        /// The revision (and session hash) the store's state expects.
        expected: String,
        /// The revision (and session hash) the record holds.
        found: String,
    },
    /// The store as a whole does not match its sealed state.
    #[error("store: {0}")]
    Integrity(String),
    /// The database cannot be reached now (a replicated store): retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The writer thread stopped or the write was dropped (see the CAS log).
    #[error("store: the write was not committed (the store writer stopped; see the CAS log)")]
    WriterGone,
}

impl From<SealError> for StoreError {
    fn from(e: SealError) -> Self {
        Self::Seal(e.to_string())
    }
}

fn db_error(e: impl fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

enum InitError {
    WrongKey,
    Store(StoreError),
}

impl<E: Into<StoreError>> From<E> for InitError {
    fn from(e: E) -> Self {
        Self::Store(e.into())
    }
}

/// A stored session: its text as submitted and who created it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session's name.
    pub name: String,
    /// Its session hash (hex).
    pub hash: String,
    /// The session text as submitted (it may hold literal secret values: never log it).
    pub text: String,
    /// The client that created it.
    pub creator: KeyHash,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Last change, ms since the Unix epoch.
    pub updated_ms: u64,
    /// 1 when created, +1 per update.
    pub revision: u64,
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("name", &self.name)
            .field("hash", &self.hash)
            .field("text_len", &self.text.len())
            .field("creator", &self.creator)
            .field("revision", &self.revision)
            .finish()
    }
}

impl SessionRecord {
    fn version(&self) -> Version {
        Version {
            rev: self.revision,
            hash: self.hash.clone(),
        }
    }
}

/// Where the records are.
enum Backend {
    Embedded(::redb::Database),
    Postgres(Box<postgres::backend::PgReader>),
}

/// What the store's handles, its readers and its writer share.
struct Shared {
    backend: Backend,
    sealer: Sealer,
    digest: Digest,
    /// Every session's current version: verified at open, kept current by the writer.
    view: RwLock<View>,
    audit_len: AtomicU64,
    /// Transactions the writer committed (batches of requests and retention).
    commits: AtomicU64,
}

impl Shared {
    fn view(&self) -> Result<RwLockReadGuard<'_, View>, StoreError> {
        self.view
            .read()
            .map_err(|_| StoreError::Integrity("the revision view is poisoned".into()))
    }

    /// Brings the view up to `state`, read in the snapshot `tables`, if it is newer.
    fn catch_up(&self, tables: &dyn Tables, state: integrity::State) -> Result<(), StoreError> {
        let seen = self.view()?.state.generation;
        if state.generation > seen {
            view::catch_up(&mut *self.view_mut()?, tables, &self.digest, state)?;
        }
        Ok(())
    }

    fn view_mut(&self) -> Result<RwLockWriteGuard<'_, View>, StoreError> {
        self.view
            .write()
            .map_err(|_| StoreError::Integrity("the revision view is poisoned".into()))
    }
}

/// The durable, sealed session store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
    writer: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("replicated", &self.is_replicated())
            .finish_non_exhaustive()
    }
}

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut WriteTx<'_>) -> Completion + Send>;

impl Store {
    /// Opens (or creates) the embedded database at `path` with the default audit retention.
    pub fn open(path: &Path, sealer: Sealer) -> Result<Self, StoreError> {
        Self::open_with_retention(path, sealer, Retention::default())
    }

    /// Opens (or creates, or migrates from format v1) the embedded database at `path`, checks
    /// that `sealer` opens it and that every record is the current one, and starts the writer
    /// thread, which keeps the audit log within `retention`.
    pub fn open_with_retention(
        path: &Path,
        sealer: Sealer,
        retention: Retention,
    ) -> Result<Self, StoreError> {
        let (db, digest, view) = embedded::open(path, &sealer)?;
        let backend = Backend::Embedded(db);
        Self::start(
            backend,
            writer::Source::Redb,
            sealer,
            digest,
            view,
            retention,
        )
    }

    /// Opens the PostgreSQL store `settings` name, shared with other CAS replicas: migrates
    /// its schema, creates it sealed under `sealer` when empty or checks that `sealer` opens
    /// it, verifies every record, and starts the writer thread.
    pub fn open_postgres(
        settings: &PgSettings,
        sealer: Sealer,
        retention: Retention,
    ) -> Result<Self, StoreError> {
        let opened = postgres::backend::blocking(|| postgres::backend::open(settings, &sealer))?;
        let backend = Backend::Postgres(Box::new(opened.reader));
        let source = writer::Source::Postgres(Box::new(opened.writer));
        Self::start(
            backend,
            source,
            sealer,
            opened.digest,
            opened.view,
            retention,
        )
    }

    fn start(
        backend: Backend,
        source: writer::Source,
        sealer: Sealer,
        digest: Digest,
        view: View,
        retention: Retention,
    ) -> Result<Self, StoreError> {
        let state = view.state.clone();
        let shared = Arc::new(Shared {
            backend,
            sealer,
            digest,
            audit_len: AtomicU64::new(state.audit_next - state.audit_first),
            commits: AtomicU64::new(0),
            view: RwLock::new(view),
        });
        let (jobs, rx) = mpsc::channel(QUEUE);
        let writer = writer::Writer {
            shared: shared.clone(),
            source,
            state,
            retention,
            prune_failed: false,
        };
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Database(format!("cannot start the store writer: {e}")))?;
        Ok(Self {
            shared,
            jobs,
            writer: Arc::new(std::sync::Mutex::new(Some(writer))),
        })
    }

    /// Whether the store is shared with other CAS replicas (PostgreSQL).
    pub fn is_replicated(&self) -> bool {
        matches!(self.shared.backend, Backend::Postgres(_))
    }

    /// Closes the store: once every clone is dropped, the writer finishes the writes
    /// queued and the database is released. Returns when that has happened, or at
    /// once if other clones are still alive.
    pub fn close(self) {
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        let last = Arc::strong_count(&self.writer) == 1;
        drop(self);
        if let (Some(handle), true) = (handle, last) {
            let _ = handle.join();
        }
    }

    /// Runs `f` in a write transaction and returns its result once the transaction has
    /// been committed durably. If `f` fails, none of its staged changes are written.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move |tx| {
            let out = tx.run(f);
            Box::new(move |committed| {
                let _ = reply.send(match (out, committed) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Ok(_), Err(e)) => Err(E::from(e)),
                    (Err(e), _) => Err(e),
                });
            })
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| E::from(StoreError::WriterGone))?;
        result
            .await
            .unwrap_or_else(|_| Err(E::from(StoreError::WriterGone)))
    }

    /// Appends `event` to the audit log without waiting for the commit: it is committed with
    /// the next batch of writes. Waits only while the writer's queue is full.
    pub async fn record(&self, event: AuditEvent) {
        let job: Job = Box::new(move |tx| {
            tx.append_audit(event);
            Box::new(|committed| {
                if let Err(e) = committed {
                    tracing::error!("audit event not stored: {e}");
                }
            })
        });
        if self.jobs.send(job).await.is_err() {
            tracing::error!("audit event not stored: the store writer stopped");
        }
    }

    /// A consistent snapshot for reading.
    pub fn read(&self) -> Result<ReadTx<'_>, StoreError> {
        let tables = match &self.shared.backend {
            Backend::Embedded(db) => embedded::snapshot(db)?,
            Backend::Postgres(reader) => {
                // Other replicas write too: the view catches up with the snapshot's state, so
                // a record put back is refused whichever version this replica saw last.
                let (tables, sealed) = reader.snapshot()?;
                let state = integrity::State::open(&self.shared.sealer, &sealed)?;
                self.shared.catch_up(tables.as_ref(), state)?;
                tables
            }
        };
        Ok(ReadTx {
            tables,
            shared: &self.shared,
        })
    }

    /// Transactions this CAS's writer committed since it started: with the audit events
    /// appended, how well group commit shares each fsync.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Number of audit events stored (as of this CAS's last write or catch-up).
    pub fn audit_len(&self) -> u64 {
        self.shared.audit_len.load(Ordering::Relaxed)
    }

    /// Redeems the enclave challenge `nonce` (its unique part), valid until `expires_ms`:
    /// `true` the first time across every CAS sharing this store. The embedded store has one
    /// CAS, whose own memory of redeemed nonces decides: always `true`.
    pub fn redeem_nonce(&self, nonce: &[u8], expires_ms: u64) -> Result<bool, StoreError> {
        match &self.shared.backend {
            Backend::Embedded(_) => Ok(true),
            Backend::Postgres(reader) => reader.redeem_nonce(nonce, expires_ms),
        }
    }

    /// The value stored under `name` for every replica (sealed; the TLS identity): the one
    /// a replica stored first, or `create`'s, stored now. Only for a replicated store.
    pub fn shared_value(
        &self,
        name: &str,
        create: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, StoreError>,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        match &self.shared.backend {
            Backend::Embedded(_) => Err(StoreError::Database(
                "shared values are kept in a replicated store only".into(),
            )),
            Backend::Postgres(reader) => reader.shared_value(&self.shared.sealer, name, create),
        }
    }
}

/// A change staged by a request, applied by the writer if the request succeeds.
enum Staged {
    Session(SessionRecord),
    Secrets(String, Zeroizing<Vec<u8>>),
    Audit(Box<AuditEvent>),
    /// Bytes written as they are, as someone with access to the database would.
    #[cfg(test)]
    Raw(Record, String, Vec<u8>),
}

fn audit_address(seq: u64) -> String {
    format!("audit/{seq}")
}

fn decode_session(address: &str, name: &str, plain: &[u8]) -> Result<SessionRecord, StoreError> {
    let record: SessionRecord = serde_json::from_slice(plain).map_err(|e| StoreError::Corrupt {
        record: address.to_owned(),
        reason: e.to_string(),
    })?;
    if record.name != name {
        return Err(StoreError::Corrupt {
            record: address.to_owned(),
            reason: format!("holds session {:?}", record.name),
        });
    }
    Ok(record)
}

/// Decodes a session whose record header said `version`; the JSON must agree with it.
fn decode_session_checked(
    address: &str,
    name: &str,
    version: &Version,
    plain: &[u8],
) -> Result<SessionRecord, StoreError> {
    let record = decode_session(address, name, plain)?;
    if record.version() != *version {
        return Err(StoreError::Corrupt {
            record: address.to_owned(),
            reason: format!("holds {} under a header of {version}", record.version()),
        });
    }
    Ok(record)
}

/// Where a read's expected versions come from.
enum Expect<'a> {
    /// A write transaction: the view (current: the transaction holds the store) plus this
    /// batch's changes, exactly.
    Writer(&'a HashMap<String, Current>),
    /// A read snapshot, which may be older or (another replica wrote) newer than the view.
    Snapshot(&'a dyn Tables),
}

/// Checks the version `found` in the record of `kind` of session `name` against the version
/// the view expects.
fn check_read(
    shared: &Shared,
    expect: &Expect<'_>,
    kind: Record,
    name: &str,
    found: Option<&Version>,
) -> Result<(), StoreError> {
    let address = kind.address(name);
    fn pick(kind: Record, c: Option<&Current>) -> Option<&Version> {
        c.and_then(|c| view::expected(kind, c))
    }
    let tables = {
        let view = shared.view()?;
        let current = match expect {
            Expect::Writer(pending) => pending.get(name).or_else(|| view.revisions.current(name)),
            Expect::Snapshot(_) => view.revisions.current(name),
        };
        if pick(kind, current) == found {
            return Ok(());
        }
        match expect {
            Expect::Writer(_) => return check_current(&address, pick(kind, current), found),
            Expect::Snapshot(tables) => *tables,
        }
    };
    // The snapshot is older than the view (a write committed since it began), or newer
    // (another replica wrote): check against the version current at its generation.
    let state = view::stored_state(tables, &shared.sealer)?;
    let mut view = shared.view_mut()?;
    if state.generation > view.state.generation {
        view::catch_up(&mut view, tables, &shared.digest, state)?;
        return check_current(&address, pick(kind, view.revisions.current(name)), found);
    }
    match view.revisions.at(name, state.generation) {
        Ok(expected) => check_current(&address, pick(kind, expected), found),
        Err(()) => Err(StoreError::Integrity(format!(
            "record {address:?} changed while this read was open; retry"
        ))),
    }
}

/// A record's version and its plaintext.
type Opened = (Version, Zeroizing<Vec<u8>>);

/// The record of `kind` of session `name`, opened and checked.
fn get_record(
    shared: &Shared,
    expect: &Expect<'_>,
    tables: &dyn Tables,
    kind: Record,
    name: &str,
) -> Result<Option<Opened>, StoreError> {
    let Some(value) = tables.record(kind, name)? else {
        check_read(shared, expect, kind, name, None)?;
        return Ok(None);
    };
    let (version, plain) = integrity::open_record(&shared.sealer, &kind.address(name), &value)?;
    check_read(shared, expect, kind, name, Some(&version))?;
    Ok(Some((version, plain)))
}

fn get_session(
    shared: &Shared,
    expect: &Expect<'_>,
    tables: &dyn Tables,
    name: &str,
) -> Result<Option<SessionRecord>, StoreError> {
    let address = Record::Session.address(name);
    get_record(shared, expect, tables, Record::Session, name)?
        .map(|(version, plain)| decode_session_checked(&address, name, &version, &plain))
        .transpose()
}

fn get_secrets(
    shared: &Shared,
    expect: &Expect<'_>,
    tables: &dyn Tables,
    name: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
    Ok(get_record(shared, expect, tables, Record::Secrets, name)?.map(|(_, plain)| plain))
}

/// A write transaction as seen by one request: reads see the transaction's state; writes
/// are staged and applied only if the request's closure succeeds.
pub struct WriteTx<'a> {
    /// `None` when the transaction could not begin (`failed` says why).
    tables: Option<&'a dyn Tables>,
    shared: &'a Shared,
    pending: &'a HashMap<String, Current>,
    staged: Vec<Staged>,
    /// Set when the batch already failed: the request is answered with it, unrun.
    failed: Option<StoreError>,
}

impl fmt::Debug for WriteTx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteTx")
            .field("staged", &self.staged.len())
            .finish()
    }
}

impl WriteTx<'_> {
    fn run<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        if let Some(e) = &self.failed {
            return Err(E::from(e.clone()));
        }
        let out = f(self);
        if out.is_err() {
            self.staged.clear();
        }
        out
    }

    fn tables(&self) -> Result<&dyn Tables, StoreError> {
        self.tables.ok_or(StoreError::WriterGone)
    }

    /// The session called `name`, as of this transaction (not counting this request's
    /// staged changes).
    pub fn session(&self, name: &str) -> Result<Option<SessionRecord>, StoreError> {
        let expect = Expect::Writer(self.pending);
        get_session(self.shared, &expect, self.tables()?, name)
    }

    /// The secret values of session `name` (opaque bytes), zeroized on drop.
    pub fn secrets(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let expect = Expect::Writer(self.pending);
        get_secrets(self.shared, &expect, self.tables()?, name)
    }

    /// Stages writing `record` (insert or replace). Its revision must be above the stored
    /// one, or the batch fails.
    pub fn put_session(&mut self, record: SessionRecord) {
        self.staged.push(Staged::Session(record));
    }

    /// Stages writing the secret values of session `name`, bound to the session's revision
    /// (the one this request writes, or else the stored one).
    pub fn put_secrets(&mut self, name: &str, plaintext: Zeroizing<Vec<u8>>) {
        self.staged
            .push(Staged::Secrets(name.to_owned(), plaintext));
    }

    /// Stages appending `event` to the audit log.
    pub fn append_audit(&mut self, event: AuditEvent) {
        self.staged.push(Staged::Audit(Box::new(event)));
    }

    /// Stages writing `value` as the record of `kind` of `name` directly, as someone with
    /// access to the database would.
    #[cfg(test)]
    fn raw_insert(&mut self, kind: Record, name: &str, value: &[u8]) {
        self.staged
            .push(Staged::Raw(kind, name.to_owned(), value.to_vec()));
    }
}

/// A read snapshot.
pub struct ReadTx<'a> {
    tables: Box<dyn Tables + 'a>,
    shared: &'a Shared,
}

impl fmt::Debug for ReadTx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReadTx")
    }
}

impl ReadTx<'_> {
    fn expect(&self) -> Expect<'_> {
        Expect::Snapshot(self.tables.as_ref())
    }

    /// The session called `name`.
    pub fn session(&self, name: &str) -> Result<Option<SessionRecord>, StoreError> {
        get_session(self.shared, &self.expect(), self.tables.as_ref(), name)
    }

    /// The secret values of session `name`, zeroized on drop.
    pub fn secrets(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        get_secrets(self.shared, &self.expect(), self.tables.as_ref(), name)
    }

    /// Every session whose name starts with `prefix`, in name order.
    pub fn sessions_with_prefix(&self, prefix: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let mut out = Vec::new();
        let expect = self.expect();
        self.tables
            .records(Record::Session, prefix, &mut |name, value| {
                let address = Record::Session.address(name);
                let (version, plain) =
                    integrity::open_record(&self.shared.sealer, &address, value)?;
                check_read(self.shared, &expect, Record::Session, name, Some(&version))?;
                out.push(decode_session_checked(&address, name, &version, &plain)?);
                Ok(true)
            })?;
        Ok(out)
    }

    /// Number of sessions.
    pub fn session_count(&self) -> Result<u64, StoreError> {
        self.tables.session_count()
    }

    /// Audit events about `session` with a sequence number above `after`, oldest first, at
    /// most `limit`. Events removed by retention are simply absent.
    pub fn audit_for_session(
        &self,
        session: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.open_events(self.tables.audit(Some(session), after, limit)?)
    }

    /// Every audit event with a sequence number above `after`, oldest first, at most `limit`.
    /// Events removed by retention are simply absent.
    pub fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.open_events(self.tables.audit(None, after, limit)?)
    }

    fn open_events(&self, sealed: Vec<(u64, Vec<u8>)>) -> Result<Vec<AuditEntry>, StoreError> {
        sealed
            .into_iter()
            .map(|(seq, value)| open_audit(&self.shared.sealer, seq, &value))
            .collect()
    }

    /// The raw record of `kind` of `name`, as someone copying it out of the database would.
    #[cfg(test)]
    fn raw_get(&self, kind: Record, name: &str) -> Option<Vec<u8>> {
        self.tables.record(kind, name).unwrap()
    }
}

fn open_audit(sealer: &Sealer, seq: u64, sealed: &[u8]) -> Result<AuditEntry, StoreError> {
    let address = audit_address(seq);
    let plain = sealer.open(&address, sealed)?;
    let event = serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt {
        record: address,
        reason: e.to_string(),
    })?;
    Ok(AuditEntry { seq, event })
}

#[cfg(test)]
mod tests;
