//! The session store: a redb database whose every value is sealed ([`crate::seal`]).
//!
//! Writes go through one writer thread that groups concurrent requests into one durable
//! transaction (group commit): a caller's [`Store::write`] returns only after the transaction
//! holding its change has been committed with `Durability::Immediate`, so an acknowledged
//! write survives a crash. Each request's closure sees the transaction's state, including
//! earlier requests of the same batch, and its changes are staged: a closure that returns an
//! error leaves nothing behind, and a batch that fails to commit fails every request in it.
//!
//! Tables (keys in clear, values sealed with the record address as associated data):
//! - `sessions`: session name → [`SessionRecord`] (JSON)
//! - `secrets`: session name → the session's secret values (opaque to the store)
//! - `audit`: sequence number → [`AuditEvent`] (JSON)
//! - `audit_by_session`: (session name, sequence number) → ()
//! - `meta`: `key-check` → a sealed constant, so a wrong master key is refused at start-up

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use crate::audit::{AuditEntry, AuditEvent};
use crate::identity::ClientId;
use crate::seal::{SealError, Sealer};

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const AUDIT_BY_SESSION: TableDefinition<(&str, u64), ()> = TableDefinition::new("audit_by_session");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const KEY_CHECK: &str = "key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"custos-cas store v1";
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
    pub creator: ClientId,
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

struct Shared {
    db: Database,
    sealer: Sealer,
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
    /// Opens (or creates) the database at `path`, checks that `sealer` opens it, and starts
    /// the writer thread.
    pub fn open(path: &Path, sealer: Sealer) -> Result<Self, StoreError> {
        let open_error = |e: &dyn fmt::Display| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| open_error(&e))?;
        let shared = Arc::new(Shared { db, sealer });
        let next_seq = init_tables(&shared).map_err(|e| match e {
            StoreError::Seal(_) => open_error(
                &"the master key does not open this store (another key file, or a damaged store)",
            ),
            other => open_error(&other),
        })?;
        let (jobs, rx) = mpsc::channel(QUEUE);
        let audit_len = Arc::new(AtomicU64::new(next_seq - 1));
        let writer_shared = shared.clone();
        let writer_len = audit_len.clone();
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run_writer(&writer_shared, rx, next_seq, &writer_len))
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
            sealer: &self.shared.sealer,
        })
    }

    /// Number of audit events stored.
    pub fn audit_len(&self) -> u64 {
        self.audit_len.load(Ordering::Relaxed)
    }
}

fn init_tables(shared: &Shared) -> Result<u64, StoreError> {
    let txn = shared.db.begin_write().map_err(db_error)?;
    let next_seq;
    {
        let mut meta = txn.open_table(META).map_err(db_error)?;
        let check = meta
            .get(KEY_CHECK)
            .map_err(db_error)?
            .map(|v| v.value().to_vec());
        match check {
            Some(sealed) => {
                let plain = shared.sealer.open(KEY_CHECK, &sealed)?;
                if plain.as_slice() != KEY_CHECK_PLAINTEXT {
                    return Err(StoreError::Seal("key check mismatch".into()));
                }
            }
            None => {
                let sealed = shared.sealer.seal(KEY_CHECK, KEY_CHECK_PLAINTEXT)?;
                meta.insert(KEY_CHECK, sealed.as_slice())
                    .map_err(db_error)?;
            }
        }
        txn.open_table(SESSIONS).map_err(db_error)?;
        txn.open_table(SECRETS).map_err(db_error)?;
        txn.open_table(AUDIT_BY_SESSION).map_err(db_error)?;
        let audit = txn.open_table(AUDIT).map_err(db_error)?;
        next_seq = audit
            .last()
            .map_err(db_error)?
            .map_or(1, |(k, _)| k.value() + 1);
    }
    txn.commit().map_err(db_error)?;
    Ok(next_seq)
}

fn run_writer(
    shared: &Shared,
    mut rx: mpsc::Receiver<Job>,
    mut next_seq: u64,
    audit_len: &AtomicU64,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut txn = match shared.db.begin_write() {
            Ok(txn) => txn,
            Err(e) => {
                // Dropping the jobs answers their callers with WriterGone.
                tracing::error!("store: cannot begin a write transaction: {e}");
                continue;
            }
        };
        if let Err(e) = txn.set_durability(Durability::Immediate) {
            tracing::error!("store: cannot set durability: {e}");
            continue;
        }
        let batch_start = next_seq;
        let mut failure: Option<StoreError> = None;
        let mut completions = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mut tx = WriteTx {
                txn: &txn,
                sealer: &shared.sealer,
                staged: Vec::new(),
                failed: failure.is_some(),
            };
            let completion = job(&mut tx);
            if failure.is_none()
                && !tx.staged.is_empty()
                && let Err(e) = apply(&txn, &shared.sealer, tx.staged, &mut next_seq)
            {
                failure = Some(e);
            }
            completions.push(completion);
        }
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
            next_seq = batch_start;
        } else {
            audit_len.store(next_seq - 1, Ordering::Relaxed);
        }
        for completion in completions {
            completion(result.clone());
        }
    }
}

enum Staged {
    Session(SessionRecord),
    Secrets(String, Zeroizing<Vec<u8>>),
    Audit(Box<AuditEvent>),
}

fn apply(
    txn: &redb::WriteTransaction,
    sealer: &Sealer,
    staged: Vec<Staged>,
    next_seq: &mut u64,
) -> Result<(), StoreError> {
    for change in staged {
        match change {
            Staged::Session(record) => {
                let address = session_address(&record.name);
                let plain = Zeroizing::new(serde_json::to_vec(&record).map_err(db_error)?);
                let sealed = sealer.seal(&address, &plain)?;
                let mut table = txn.open_table(SESSIONS).map_err(db_error)?;
                table
                    .insert(record.name.as_str(), sealed.as_slice())
                    .map_err(db_error)?;
            }
            Staged::Secrets(name, plain) => {
                let sealed = sealer.seal(&secrets_address(&name), &plain)?;
                let mut table = txn.open_table(SECRETS).map_err(db_error)?;
                table
                    .insert(name.as_str(), sealed.as_slice())
                    .map_err(db_error)?;
            }
            Staged::Audit(event) => {
                let seq = *next_seq;
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
                *next_seq = seq + 1;
            }
        }
    }
    Ok(())
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

fn open_session(sealer: &Sealer, name: &str, sealed: &[u8]) -> Result<SessionRecord, StoreError> {
    let address = session_address(name);
    let plain = sealer.open(&address, sealed)?;
    let record: SessionRecord =
        serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt {
            record: address.clone(),
            reason: e.to_string(),
        })?;
    if record.name != name {
        return Err(StoreError::Corrupt {
            record: address,
            reason: format!("holds session {}", record.name),
        });
    }
    Ok(record)
}

fn get_session(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    sealer: &Sealer,
    name: &str,
) -> Result<Option<SessionRecord>, StoreError> {
    match table.get(name).map_err(db_error)? {
        Some(sealed) => open_session(sealer, name, sealed.value()).map(Some),
        None => Ok(None),
    }
}

fn get_secrets(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    sealer: &Sealer,
    name: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
    match table.get(name).map_err(db_error)? {
        Some(sealed) => Ok(Some(sealer.open(&secrets_address(name), sealed.value())?)),
        None => Ok(None),
    }
}

/// A write transaction as seen by one request: reads see the transaction's state; writes
/// are staged and applied only if the request's closure succeeds.
pub struct WriteTx<'a> {
    txn: &'a redb::WriteTransaction,
    sealer: &'a Sealer,
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
        get_session(&table, self.sealer, name)
    }

    /// The secret values of session `name` (opaque bytes), zeroized on drop.
    pub fn secrets(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let table = self.txn.open_table(SECRETS).map_err(db_error)?;
        get_secrets(&table, self.sealer, name)
    }

    /// Stages writing `record` (insert or replace).
    pub fn put_session(&mut self, record: SessionRecord) {
        self.staged.push(Staged::Session(record));
    }

    /// Stages writing the secret values of session `name`.
    pub fn put_secrets(&mut self, name: &str, plaintext: Zeroizing<Vec<u8>>) {
        self.staged
            .push(Staged::Secrets(name.to_owned(), plaintext));
    }

    /// Stages appending `event` to the audit log.
    pub fn append_audit(&mut self, event: AuditEvent) {
        self.staged.push(Staged::Audit(Box::new(event)));
    }
}

/// A read snapshot.
pub struct ReadTx<'a> {
    txn: redb::ReadTransaction,
    sealer: &'a Sealer,
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
        get_session(&table, self.sealer, name)
    }

    /// The secret values of session `name`, zeroized on drop.
    pub fn secrets(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let table = self.txn.open_table(SECRETS).map_err(db_error)?;
        get_secrets(&table, self.sealer, name)
    }

    /// Every session whose name starts with `prefix`, in name order.
    pub fn sessions_with_prefix(&self, prefix: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let table = self.txn.open_table(SESSIONS).map_err(db_error)?;
        let mut out = Vec::new();
        for entry in table.range(prefix..).map_err(db_error)? {
            let (key, value) = entry.map_err(db_error)?;
            let name = key.value();
            if !name.starts_with(prefix) {
                break;
            }
            out.push(open_session(self.sealer, name, value.value())?);
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
    /// most `limit`.
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
            out.push(open_audit(self.sealer, seq, sealed.value())?);
        }
        Ok(out)
    }

    /// Every audit event with a sequence number above `after`, oldest first, at most `limit`.
    pub fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let audit = self.txn.open_table(AUDIT).map_err(db_error)?;
        let mut out = Vec::new();
        for entry in audit.range(after.saturating_add(1)..).map_err(db_error)? {
            if out.len() >= limit {
                break;
            }
            let (seq, sealed) = entry.map_err(db_error)?;
            out.push(open_audit(self.sealer, seq.value(), sealed.value())?);
        }
        Ok(out)
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
