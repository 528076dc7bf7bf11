//! The session store: a redb database whose every value is sealed ([`crate::seal`]).
//!
//! Writes go through one writer thread that groups concurrent requests into one durable
//! transaction (group commit): a caller's [`Store::write`] returns only after the transaction
//! holding its change has been committed with `Durability::Immediate`, so an acknowledged
//! write survives a crash. Each request's closure sees the transaction's state, including
//! earlier requests of the same batch, and its changes are staged: a closure that returns an
//! error leaves nothing behind, and a batch that fails to commit fails every request in it.
//!
//! Tables (keys in clear; values sealed, see [`integrity`] for what they are bound to):
//! - `sessions`: session name → [`SessionRecord`] (JSON), bound to its revision and hash
//! - `secrets`: session name → the session's secret values (opaque to the store), bound to
//!   the owning session's revision and hash
//! - `revisions`: session name → its current revision and hash (the revision index, covered
//!   by the sealed state's digest)
//! - `audit`: sequence number → [`AuditEvent`] (JSON)
//! - `audit_by_session`: (session name, sequence number) → ()
//! - `meta`: `key-check` → a sealed constant, so a wrong master key is refused at start-up;
//!   `state` → the sealed store-wide state; `digest-key` → the sealed digest key
//!
//! The writer also applies the audit retention ([`Retention`]): oldest events first, at most
//! [`PRUNE_CHUNK`] per transaction, so a batch stays fast; sequence numbers are never reused.

mod integrity;
pub mod postgres;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use custos_ids::KeyHash;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use crate::audit::{AuditEntry, AuditEvent, Retention};
use crate::seal::{SealError, Sealer};
use integrity::{Current, Digest, Known, Revisions, State, Version};

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const AUDIT_BY_SESSION: TableDefinition<(&str, u64), ()> = TableDefinition::new("audit_by_session");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const REVISIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("revisions");

const KEY_CHECK: &str = "key-check";
/// The key check of a format-v1 store (records bound to their address only).
const KEY_CHECK_V1: &[u8] = b"custos-cas store v1";
/// The key check of a format-v2 store: a v2 store without its sealed state is refused
/// instead of being "migrated" again from whatever its tables hold.
const KEY_CHECK_V2: &[u8] = b"custos-cas store v2";
/// Most audit events removed by retention in one transaction.
const PRUNE_CHUNK: u64 = 512;
/// Most requests committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Requests waiting for the writer. When it is full, callers wait: under a flood of audited
/// reads the CAS slows down to what it can audit rather than queueing without bound.
const QUEUE: usize = 4096;
/// redb page cache: small, so the CAS stays small; the OS page cache does the rest.
const CACHE_BYTES: usize = 16 << 20;

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

struct Shared {
    db: Database,
    sealer: Sealer,
    /// Every session's current version: verified at open, updated by the writer.
    revisions: RwLock<Revisions>,
}

impl Shared {
    fn revisions(&self) -> Result<std::sync::RwLockReadGuard<'_, Revisions>, StoreError> {
        self.revisions
            .read()
            .map_err(|_| StoreError::Integrity("the revision view is poisoned".into()))
    }
}

/// The durable, sealed session store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
    audit_len: Arc<AtomicU64>,
    writer: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut WriteTx<'_>) -> Completion + Send>;

impl Store {
    /// Opens (or creates) the database at `path` with the default audit retention.
    pub fn open(path: &Path, sealer: Sealer) -> Result<Self, StoreError> {
        Self::open_with_retention(path, sealer, Retention::default())
    }

    /// Opens (or creates, or migrates from format v1) the database at `path`, checks that
    /// `sealer` opens it and that every record is the current one, and starts the writer
    /// thread, which keeps the audit log within `retention`.
    pub fn open_with_retention(
        path: &Path,
        sealer: Sealer,
        retention: Retention,
    ) -> Result<Self, StoreError> {
        let open_error = |e: &dyn fmt::Display| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| open_error(&e))?;
        let (state, digest, revisions) = init_tables(&db, &sealer).map_err(|e| match e {
            InitError::WrongKey => open_error(
                &"the master key does not open this store (another key file, or a damaged store)",
            ),
            InitError::Store(other) => open_error(&other),
        })?;
        let shared = Arc::new(Shared {
            db,
            sealer,
            revisions: RwLock::new(revisions),
        });
        let (jobs, rx) = mpsc::channel(QUEUE);
        let audit_len = Arc::new(AtomicU64::new(state.audit_next - state.audit_first));
        let writer = Writer {
            shared: shared.clone(),
            digest,
            state,
            retention,
            audit_len: audit_len.clone(),
            prune_failed: false,
        };
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| open_error(&e))?;
        Ok(Self {
            shared,
            jobs,
            audit_len,
            writer: Arc::new(std::sync::Mutex::new(Some(writer))),
        })
    }

    /// Closes the store: once every clone is dropped, the writer finishes the writes
    /// queued and the database file is released. Returns when that has happened, or at
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
        result.await.unwrap_or(Err(E::from(StoreError::WriterGone)))
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
        Ok(ReadTx {
            txn: self.shared.db.begin_read().map_err(db_error)?,
            shared: &self.shared,
        })
    }

    /// Number of audit events stored.
    pub fn audit_len(&self) -> u64 {
        self.audit_len.load(Ordering::Relaxed)
    }
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

/// Creates the tables, checks the master key, loads (or creates, or migrates to) the sealed
/// state and verifies every record against it, in one transaction.
fn init_tables(db: &Database, sealer: &Sealer) -> Result<(State, Digest, Revisions), InitError> {
    let txn = db.begin_write().map_err(db_error)?;
    for table in [SESSIONS, SECRETS, REVISIONS] {
        txn.open_table(table).map_err(db_error)?;
    }
    txn.open_table(AUDIT).map_err(db_error)?;
    txn.open_table(AUDIT_BY_SESSION).map_err(db_error)?;
    let mut meta = txn.open_table(META).map_err(db_error)?;
    let get = |meta: &redb::Table<&str, &[u8]>, key: &str| {
        meta.get(key)
            .map(|v| v.map(|v| v.value().to_vec()))
            .map_err(db_error)
    };
    let format = match get(&meta, KEY_CHECK)? {
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
    let digest = match get(&meta, integrity::DIGEST_KEY)? {
        Some(sealed) => Digest::open(sealer, &sealed)?,
        None => {
            let (digest, sealed) = Digest::generate(sealer)?;
            meta.insert(integrity::DIGEST_KEY, sealed.as_slice())
                .map_err(db_error)?;
            digest
        }
    };
    let state = match (format, get(&meta, integrity::STATE_KEY)?) {
        (Some(2), Some(sealed)) => State::open(sealer, &sealed)?,
        (Some(2), None) => {
            return Err(StoreError::Integrity(
                "the store's sealed state (meta/state) is missing: the store was changed outside the CAS".into(),
            )
            .into());
        }
        // A new store, or a format-v1 store: (re-)seal every record bound to its revision.
        _ => {
            let state = migrate_v1(&txn, sealer, &digest)?;
            if format == Some(1) {
                tracing::info!(
                    sessions = state.sessions,
                    "store migrated from format v1 to v2 (records bound to their revision)"
                );
            }
            let check = sealer.seal(KEY_CHECK, KEY_CHECK_V2)?;
            meta.insert(KEY_CHECK, check.as_slice()).map_err(db_error)?;
            meta.insert(integrity::STATE_KEY, state.seal(sealer)?.as_slice())
                .map_err(db_error)?;
            state
        }
    };
    drop(meta);
    let revisions = verify(&txn, sealer, &digest, &state)?;
    txn.commit().map_err(db_error)?;
    Ok((state, digest, revisions))
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
        let address = session_address(&name);
        let plain = sealer.open(&address, &value)?;
        let version = decode_session(&address, &name, &plain)?.version();
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
        let address = secrets_address(&name);
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

/// Checks the audit table's bounds, the revision index against the sealed state, and every
/// session and secrets record against the index; returns the verified view.
fn verify(
    txn: &redb::WriteTransaction,
    sealer: &Sealer,
    digest: &Digest,
    state: &State,
) -> Result<Revisions, StoreError> {
    let audit = txn.open_table(AUDIT).map_err(db_error)?;
    let stored = audit.len().map_err(db_error)?;
    let first = audit.first().map_err(db_error)?.map(|(k, _)| k.value());
    let last = audit.last().map_err(db_error)?.map(|(k, _)| k.value());
    let expected_len = state.audit_next - state.audit_first;
    let bounds_ok = match (first, last) {
        (Some(first), Some(last)) => first == state.audit_first && last + 1 == state.audit_next,
        _ => expected_len == 0,
    };
    if stored != expected_len || !bounds_ok {
        let found = match (first, last) {
            (Some(first), Some(last)) => format!("{stored} events numbered {first} to {last}"),
            _ => "no events".into(),
        };
        return Err(StoreError::Integrity(format!(
            "audit log: the sealed state expects {expected_len} events numbered {} to {}, the table holds {found}: events were removed or added outside the CAS",
            state.audit_first,
            state.audit_next.saturating_sub(1),
        )));
    }

    let mut revisions = Revisions::default();
    let mut check = state.clone();
    check.digest = [0; 32];
    check.sessions = 0;
    for (name, value) in all_entries(&txn.open_table(REVISIONS).map_err(db_error)?)? {
        let current = integrity::parse_index_value(&name, &value)?;
        check.toggle(digest.entry(&name, &current));
        check.sessions += 1;
        revisions.map.insert(
            name,
            Known {
                current,
                since: state.generation,
                prev: None,
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

    let sessions = txn.open_table(SESSIONS).map_err(db_error)?;
    let secrets = txn.open_table(SECRETS).map_err(db_error)?;
    for (table, address_of, select, is_sessions) in [
        (
            &sessions,
            session_address as fn(&str) -> String,
            SESSION_VERSION,
            true,
        ),
        (&secrets, secrets_address, SECRETS_VERSION, false),
    ] {
        for entry in table.iter().map_err(db_error)? {
            let (key, value) = entry.map_err(db_error)?;
            let name = key.value();
            let address = address_of(name);
            let (found, plain) = integrity::open_record(sealer, &address, value.value())?;
            if is_sessions {
                decode_session_checked(&address, name, &found, &plain)?;
            }
            check_current(
                &address,
                revisions.current(name).and_then(select),
                Some(&found),
            )?;
        }
        // A record removed (rolled back to before it existed) is missing here.
        for (name, known) in &revisions.map {
            if let Some(expected) = select(&known.current)
                && table.get(name.as_str()).map_err(db_error)?.is_none()
            {
                check_current(&address_of(name), Some(expected), None)?;
            }
        }
    }
    Ok(revisions)
}

/// Which version of an index entry a session record must have.
const SESSION_VERSION: fn(&Current) -> Option<&Version> = |c| Some(&c.version);
/// Which version of an index entry a secrets record must have (none: no secrets record).
const SECRETS_VERSION: fn(&Current) -> Option<&Version> = Current::secrets_version;

fn check_current(
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

/// The writer thread's state: the store-wide state as of the last commit.
struct Writer {
    shared: Arc<Shared>,
    digest: Digest,
    state: State,
    retention: Retention,
    audit_len: Arc<AtomicU64>,
    /// Set after a pruning error (logged once): retention stops until the next start.
    prune_failed: bool,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        // Retention is applied at start-up too (limits may have been lowered).
        let mut behind = true;
        loop {
            let first = if behind {
                match rx.try_recv() {
                    Ok(job) => Some(job),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                match rx.blocking_recv() {
                    Some(job) => Some(job),
                    None => break,
                }
            };
            let mut jobs: Vec<Job> = first.into_iter().collect();
            while !jobs.is_empty() && jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            behind = self.batch(jobs);
        }
    }

    /// Runs `jobs` and one chunk of retention in one transaction. Returns whether more audit
    /// events are due for removal.
    fn batch(&mut self, jobs: Vec<Job>) -> bool {
        let shared = self.shared.clone();
        let mut txn = match shared.db.begin_write() {
            Ok(txn) => txn,
            Err(e) => {
                // Dropping the jobs answers their callers with WriterGone.
                tracing::error!("store: cannot begin a write transaction: {e}");
                return false;
            }
        };
        if let Err(e) = txn.set_durability(Durability::Immediate) {
            tracing::error!("store: cannot set durability: {e}");
            return false;
        }
        let before = self.state.clone();
        let only_pruning = jobs.is_empty();
        let mut pending: HashMap<String, Current> = HashMap::new();
        let mut failure: Option<StoreError> = None;
        let mut completions = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mut tx = WriteTx {
                txn: &txn,
                shared: &shared,
                pending: &pending,
                staged: Vec::new(),
                failed: failure.is_some(),
            };
            let completion = job(&mut tx);
            let staged = std::mem::take(&mut tx.staged);
            if failure.is_none()
                && !staged.is_empty()
                && let Err(e) = self.apply(&txn, staged, &mut pending)
            {
                failure = Some(e);
            }
            completions.push(completion);
        }
        let mut pruned = 0;
        if failure.is_none() {
            pruned = self.prune(&txn);
        }
        if only_pruning && pruned == 0 {
            let _ = txn.abort();
            self.state = before;
            return false;
        }
        self.state.generation += 1;
        if failure.is_none()
            && let Err(e) = self.write_state(&txn)
        {
            failure = Some(e);
        }
        // Published before the commit: a snapshot older than it is checked against `prev`.
        let undo = match failure {
            None => self.publish(pending),
            Some(_) => Vec::new(),
        };
        let result = match failure {
            Some(e) => {
                let _ = txn.abort();
                Err(e)
            }
            None => txn.commit().map_err(db_error),
        };
        if let Err(e) = &result {
            tracing::error!(
                "store: batch of {} writes not committed: {e}",
                completions.len()
            );
            self.state = before;
            self.unpublish(undo);
        } else {
            self.audit_len.store(
                self.state.audit_next - self.state.audit_first,
                Ordering::Relaxed,
            );
        }
        for completion in completions {
            completion(result.clone());
        }
        result.is_ok() && pruned == PRUNE_CHUNK
    }

    fn apply(
        &mut self,
        txn: &redb::WriteTransaction,
        staged: Vec<Staged>,
        pending: &mut HashMap<String, Current>,
    ) -> Result<(), StoreError> {
        let shared = self.shared.clone();
        let sealer = &shared.sealer;
        // Sessions first: a request's secrets are bound to the session revision it writes.
        let (sessions, others): (Vec<_>, Vec<_>) = staged
            .into_iter()
            .partition(|s| matches!(s, Staged::Session(_)));
        let rewrites_secrets = |name: &str| {
            others
                .iter()
                .any(|s| matches!(s, Staged::Secrets(n, _) if n == name))
        };
        for change in sessions {
            let Staged::Session(record) = change else {
                continue;
            };
            let name = record.name.as_str();
            let version = record.version();
            let old = self.lookup(pending, name)?;
            if let Some(old) = &old
                && version.rev <= old.version.rev
            {
                return Err(StoreError::Integrity(format!(
                    "session {name:?}: a write of revision {} does not follow the stored revision {}",
                    version.rev, old.version.rev
                )));
            }
            let address = session_address(name);
            let plain = Zeroizing::new(serde_json::to_vec(&record).map_err(db_error)?);
            let sealed = integrity::seal_record(sealer, &address, &version, &plain)?;
            txn.open_table(SESSIONS)
                .map_err(db_error)?
                .insert(name, sealed.as_slice())
                .map_err(db_error)?;
            let secrets = old.as_ref().is_some_and(|o| o.secrets);
            if let Some(old) = old.as_ref().filter(|o| o.secrets)
                && !rewrites_secrets(name)
            {
                // Kept secrets follow their session to its new revision.
                let address = secrets_address(name);
                let mut table = txn.open_table(SECRETS).map_err(db_error)?;
                let value = table
                    .get(name)
                    .map_err(db_error)?
                    .map(|v| v.value().to_vec());
                let (found, plain) = match value {
                    Some(v) => integrity::open_record(sealer, &address, &v)?,
                    None => return check_current(&address, Some(&old.version), None),
                };
                check_current(&address, Some(&old.version), Some(&found))?;
                let sealed = integrity::seal_record(sealer, &address, &version, &plain)?;
                table.insert(name, sealed.as_slice()).map_err(db_error)?;
            }
            self.set_current(txn, pending, name, old, Current { version, secrets })?;
        }
        for change in others {
            match change {
                Staged::Session(_) => {}
                Staged::Secrets(name, plain) => {
                    let address = secrets_address(&name);
                    let current = self.lookup(pending, &name)?.ok_or_else(|| {
                        StoreError::Integrity(format!(
                            "record {address:?}: its session does not exist"
                        ))
                    })?;
                    let sealed =
                        integrity::seal_record(sealer, &address, &current.version, &plain)?;
                    txn.open_table(SECRETS)
                        .map_err(db_error)?
                        .insert(name.as_str(), sealed.as_slice())
                        .map_err(db_error)?;
                    if !current.secrets {
                        let new = Current {
                            version: current.version.clone(),
                            secrets: true,
                        };
                        self.set_current(txn, pending, &name, Some(current), new)?;
                    }
                }
                Staged::Audit(event) => {
                    let seq = self.state.audit_next;
                    let plain = serde_json::to_vec(&event).map_err(db_error)?;
                    let sealed = sealer.seal(&audit_address(seq), &plain)?;
                    txn.open_table(AUDIT)
                        .map_err(db_error)?
                        .insert(seq, sealed.as_slice())
                        .map_err(db_error)?;
                    if let Some(session) = &event.session {
                        txn.open_table(AUDIT_BY_SESSION)
                            .map_err(db_error)?
                            .insert((session.as_str(), seq), ())
                            .map_err(db_error)?;
                    }
                    self.state.audit_next = seq + 1;
                }
            }
        }
        Ok(())
    }

    /// Session `name`'s entry as of this batch.
    fn lookup(
        &self,
        pending: &HashMap<String, Current>,
        name: &str,
    ) -> Result<Option<Current>, StoreError> {
        Ok(match pending.get(name) {
            Some(c) => Some(c.clone()),
            None => self.shared.revisions()?.current(name).cloned(),
        })
    }

    /// Replaces session `name`'s index entry `old` by `new`, in the table and the digest.
    fn set_current(
        &mut self,
        txn: &redb::WriteTransaction,
        pending: &mut HashMap<String, Current>,
        name: &str,
        old: Option<Current>,
        new: Current,
    ) -> Result<(), StoreError> {
        txn.open_table(REVISIONS)
            .map_err(db_error)?
            .insert(name, integrity::index_value(&new).as_slice())
            .map_err(db_error)?;
        match &old {
            Some(old) => self.state.toggle(self.digest.entry(name, old)),
            None => self.state.sessions += 1,
        }
        self.state.toggle(self.digest.entry(name, &new));
        pending.insert(name.to_owned(), new);
        Ok(())
    }

    /// Removes the oldest audit events beyond the retention limits, at most [`PRUNE_CHUNK`].
    /// Returns how many were removed. A failure is logged once and stops retention (it
    /// would fail every batch otherwise); the events removed before it stay consistent.
    fn prune(&mut self, txn: &redb::WriteTransaction) -> u64 {
        if self.prune_failed {
            return 0;
        }
        match self.prune_chunk(txn) {
            Ok(n) => n,
            Err((n, e)) => {
                tracing::error!(
                    "store: audit retention stopped until the next start: {e} (removed {n} events in this batch)"
                );
                self.prune_failed = true;
                n
            }
        }
    }

    fn prune_chunk(&mut self, txn: &redb::WriteTransaction) -> Result<u64, (u64, StoreError)> {
        let Retention {
            max_events,
            max_age_ms,
        } = self.retention;
        if max_events == 0 && max_age_ms == 0 {
            return Ok(0);
        }
        let cutoff = crate::audit::now_ms().saturating_sub(max_age_ms);
        let mut removed = 0;
        let fail = |removed, e| (removed, e);
        let mut audit = txn
            .open_table(AUDIT)
            .map_err(|e| fail(removed, db_error(e)))?;
        let mut index = txn
            .open_table(AUDIT_BY_SESSION)
            .map_err(|e| fail(removed, db_error(e)))?;
        while removed < PRUNE_CHUNK && self.state.audit_first < self.state.audit_next {
            let seq = self.state.audit_first;
            let over_count =
                max_events > 0 && self.state.audit_next - self.state.audit_first > max_events;
            let sealed = audit
                .get(seq)
                .map_err(|e| fail(removed, db_error(e)))?
                .map(|v| v.value().to_vec())
                .ok_or_else(|| {
                    fail(
                        removed,
                        StoreError::Integrity(format!("audit event {seq} is missing")),
                    )
                })?;
            let entry =
                open_audit(&self.shared.sealer, seq, &sealed).map_err(|e| fail(removed, e))?;
            let too_old = max_age_ms > 0 && entry.event.time_ms < cutoff;
            if !over_count && !too_old {
                break;
            }
            audit.remove(seq).map_err(|e| fail(removed, db_error(e)))?;
            if let Some(session) = &entry.event.session {
                index
                    .remove((session.as_str(), seq))
                    .map_err(|e| fail(removed, db_error(e)))?;
            }
            self.state.audit_first = seq + 1;
            removed += 1;
        }
        Ok(removed)
    }

    fn write_state(&self, txn: &redb::WriteTransaction) -> Result<(), StoreError> {
        let sealed = self.state.seal(&self.shared.sealer)?;
        txn.open_table(META)
            .map_err(db_error)?
            .insert(integrity::STATE_KEY, sealed.as_slice())
            .map_err(db_error)?;
        Ok(())
    }

    /// Makes this batch's versions current (as of the new generation); returns what they
    /// replaced, for [`Self::unpublish`].
    fn publish(&self, pending: HashMap<String, Current>) -> Vec<(String, Option<Known>)> {
        let Ok(mut revisions) = self.shared.revisions.write() else {
            return Vec::new();
        };
        let mut undo = Vec::with_capacity(pending.len());
        for (name, current) in pending {
            let old = revisions.map.get(&name).cloned();
            let known = Known {
                current,
                since: self.state.generation,
                prev: old.clone().map(|k| (k.current, k.since)),
            };
            revisions.map.insert(name.clone(), known);
            undo.push((name, old));
        }
        undo
    }

    fn unpublish(&self, undo: Vec<(String, Option<Known>)>) {
        let Ok(mut revisions) = self.shared.revisions.write() else {
            return;
        };
        for (name, old) in undo {
            match old {
                Some(known) => revisions.map.insert(name, known),
                None => revisions.map.remove(&name),
            };
        }
    }
}

enum Staged {
    Session(SessionRecord),
    Secrets(String, Zeroizing<Vec<u8>>),
    Audit(Box<AuditEvent>),
}

fn session_address(name: &str) -> String {
    format!("sessions/{name}")
}

fn secrets_address(name: &str) -> String {
    format!("secrets/{name}")
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
    /// A write transaction: the writer's view plus this batch's changes, exactly.
    Writer(&'a HashMap<String, Current>),
    /// A read snapshot, which may be older than the writer's view.
    Snapshot(&'a redb::ReadTransaction),
}

/// Checks the version `found` in the record at `address` of session `name` against the
/// index entry's version chosen by `select`.
fn check_read(
    shared: &Shared,
    expect: &Expect<'_>,
    select: fn(&Current) -> Option<&Version>,
    address: &str,
    name: &str,
    found: Option<&Version>,
) -> Result<(), StoreError> {
    let revisions = shared.revisions()?;
    let current = match expect {
        Expect::Writer(pending) => pending.get(name).or_else(|| revisions.current(name)),
        Expect::Snapshot(_) => revisions.current(name),
    }
    .and_then(select);
    if current == found {
        return Ok(());
    }
    let Expect::Snapshot(txn) = expect else {
        return check_current(address, current, found);
    };
    // The snapshot may predate the last change of this session: check it against the
    // version current at the snapshot's generation.
    let sealed = txn
        .open_table(META)
        .map_err(db_error)?
        .get(integrity::STATE_KEY)
        .map_err(db_error)?
        .map(|v| v.value().to_vec())
        .ok_or_else(|| StoreError::Integrity("the store's sealed state is missing".into()))?;
    let generation = State::open(&shared.sealer, &sealed)?.generation;
    match revisions.at(name, generation) {
        Ok(expected) => check_current(address, expected.and_then(select), found),
        Err(()) => Err(StoreError::Integrity(format!(
            "record {address:?} changed twice while this read was open; retry"
        ))),
    }
}

fn get_session(
    shared: &Shared,
    expect: &Expect<'_>,
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<SessionRecord>, StoreError> {
    let address = session_address(name);
    let Some(value) = table.get(name).map_err(db_error)? else {
        check_read(shared, expect, SESSION_VERSION, &address, name, None)?;
        return Ok(None);
    };
    let (version, plain) = integrity::open_record(&shared.sealer, &address, value.value())?;
    check_read(
        shared,
        expect,
        SESSION_VERSION,
        &address,
        name,
        Some(&version),
    )?;
    decode_session_checked(&address, name, &version, &plain).map(Some)
}

fn get_secrets(
    shared: &Shared,
    expect: &Expect<'_>,
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
    let address = secrets_address(name);
    let Some(value) = table.get(name).map_err(db_error)? else {
        check_read(shared, expect, SECRETS_VERSION, &address, name, None)?;
        return Ok(None);
    };
    let (version, plain) = integrity::open_record(&shared.sealer, &address, value.value())?;
    check_read(
        shared,
        expect,
        SECRETS_VERSION,
        &address,
        name,
        Some(&version),
    )?;
    Ok(Some(plain))
}

/// A write transaction as seen by one request: reads see the transaction's state; writes
/// are staged and applied only if the request's closure succeeds.
pub struct WriteTx<'a> {
    txn: &'a redb::WriteTransaction,
    shared: &'a Shared,
    pending: &'a HashMap<String, Current>,
    staged: Vec<Staged>,
    failed: bool,
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
        if self.failed {
            // An earlier request of this batch failed to apply: the batch will be aborted.
            return Err(E::from(StoreError::WriterGone));
        }
        let out = f(self);
        if out.is_err() {
            self.staged.clear();
        }
        out
    }

    /// The session called `name`, as of this transaction (not counting this request's
    /// staged changes).
    pub fn session(&self, name: &str) -> Result<Option<SessionRecord>, StoreError> {
        let table = self.txn.open_table(SESSIONS).map_err(db_error)?;
        get_session(self.shared, &Expect::Writer(self.pending), &table, name)
    }

    /// The secret values of session `name` (opaque bytes), zeroized on drop.
    pub fn secrets(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let table = self.txn.open_table(SECRETS).map_err(db_error)?;
        get_secrets(self.shared, &Expect::Writer(self.pending), &table, name)
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

    /// Writes `value` under `key` in `table` directly, as someone editing the file would.
    #[cfg(test)]
    fn raw_insert(&self, table: TableDefinition<&str, &[u8]>, key: &str, value: &[u8]) {
        self.txn
            .open_table(table)
            .unwrap()
            .insert(key, value)
            .unwrap();
    }
}

/// A read snapshot.
pub struct ReadTx<'a> {
    txn: redb::ReadTransaction,
    shared: &'a Shared,
}

impl fmt::Debug for ReadTx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReadTx")
    }
}

impl ReadTx<'_> {
    /// The session called `name`.
    pub fn session(&self, name: &str) -> Result<Option<SessionRecord>, StoreError> {
        let table = self.txn.open_table(SESSIONS).map_err(db_error)?;
        get_session(self.shared, &Expect::Snapshot(&self.txn), &table, name)
    }

    /// The secret values of session `name`, zeroized on drop.
    pub fn secrets(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let table = self.txn.open_table(SECRETS).map_err(db_error)?;
        get_secrets(self.shared, &Expect::Snapshot(&self.txn), &table, name)
    }

    /// Every session whose name starts with `prefix`, in name order.
    pub fn sessions_with_prefix(&self, prefix: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let table = self.txn.open_table(SESSIONS).map_err(db_error)?;
        let expect = Expect::Snapshot(&self.txn);
        let mut out = Vec::new();
        for entry in table.range(prefix..).map_err(db_error)? {
            let (key, value) = entry.map_err(db_error)?;
            let name = key.value();
            if !name.starts_with(prefix) {
                break;
            }
            let address = session_address(name);
            let (version, plain) =
                integrity::open_record(&self.shared.sealer, &address, value.value())?;
            check_read(
                self.shared,
                &expect,
                SESSION_VERSION,
                &address,
                name,
                Some(&version),
            )?;
            out.push(decode_session_checked(&address, name, &version, &plain)?);
        }
        Ok(out)
    }

    /// Number of sessions.
    pub fn session_count(&self) -> Result<u64, StoreError> {
        self.txn
            .open_table(SESSIONS)
            .map_err(db_error)?
            .len()
            .map_err(db_error)
    }

    /// Audit events about `session` with a sequence number above `after`, oldest first, at
    /// most `limit`. Events removed by retention are simply absent.
    pub fn audit_for_session(
        &self,
        session: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let index = self.txn.open_table(AUDIT_BY_SESSION).map_err(db_error)?;
        let audit = self.txn.open_table(AUDIT).map_err(db_error)?;
        let mut out = Vec::new();
        let start = after.saturating_add(1);
        for entry in index
            .range((session, start)..=(session, u64::MAX))
            .map_err(db_error)?
        {
            if out.len() >= limit {
                break;
            }
            let (key, _) = entry.map_err(db_error)?;
            let (_, seq) = key.value();
            let sealed = audit
                .get(seq)
                .map_err(db_error)?
                .ok_or_else(|| StoreError::Corrupt {
                    record: audit_address(seq),
                    reason: "indexed but missing".into(),
                })?;
            out.push(open_audit(&self.shared.sealer, seq, sealed.value())?);
        }
        Ok(out)
    }

    /// Every audit event with a sequence number above `after`, oldest first, at most `limit`.
    /// Events removed by retention are simply absent.
    pub fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let audit = self.txn.open_table(AUDIT).map_err(db_error)?;
        let mut out = Vec::new();
        for entry in audit.range(after.saturating_add(1)..).map_err(db_error)? {
            if out.len() >= limit {
                break;
            }
            let (seq, sealed) = entry.map_err(db_error)?;
            out.push(open_audit(
                &self.shared.sealer,
                seq.value(),
                sealed.value(),
            )?);
        }
        Ok(out)
    }

    /// The raw value under `key` in `table`, as someone copying it out of the file would.
    #[cfg(test)]
    fn raw_get(&self, table: TableDefinition<&str, &[u8]>, key: &str) -> Option<Vec<u8>> {
        self.txn
            .open_table(table)
            .unwrap()
            .get(key)
            .unwrap()
            .map(|v| v.value().to_vec())
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
