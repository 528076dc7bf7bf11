//! The PostgreSQL backend of the store ([`crate::store`]): the same records as the embedded
//! store, in the tables [`super::schema`] makes, shared by every CAS replica.
//!
//! - The writer has a connection of its own; each batch is one transaction that first locks
//!   the row of the sealed state (`SELECT … FOR UPDATE`), so the writers of all replicas take
//!   turns and each sees every committed write.
//! - Reads take a connection from a small pool and read in one `REPEATABLE READ` snapshot.
//! - The client is the synchronous `postgres` crate: the store's interface is synchronous (the
//!   writer is a thread; reads run inside request handlers, moved off the async runtime's
//!   worker with `block_in_place`), and a pool that only checks out, returns and discards
//!   connections needs no dependency of its own.
//! - A database that cannot be reached makes calls fail at once with
//!   [`StoreError::Unavailable`]; the next call connects again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, Row, Statement};
use zeroize::Zeroizing;

use super::{Connector, PgError, PgSettings, nonces, schema};
use crate::seal::Sealer;
use crate::store::integrity::{self, Current, Digest, State, Version};
use crate::store::tables::{
    AuditBounds, IndexEntry, Record, Tables, Transaction, Visit, WriteTables,
};
use crate::store::view::{self, View};
use crate::store::{KEY_CHECK, KEY_CHECK_V2, StoreError};

/// Connections for reads (and nonce redemptions) kept per CAS.
const POOL_SIZE: usize = 8;
/// How long a read waits for one of them before failing with 503.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// Per connection: a statement that runs longer fails (a stuck database must not hold
/// requests); a lock not granted in time fails the batch; a transaction left idle (its CAS
/// frozen or cut off) is ended by the server, so it cannot hold the state row for ever.
const SESSION_SETTINGS: &str = "SET statement_timeout = '15s'; SET lock_timeout = '10s'; \
     SET idle_in_transaction_session_timeout = '30s'";
/// Key of the advisory lock held while a new store is created.
const INIT_LOCK: i64 = 0x6375_7374_6f74;
/// How often redeemed nonces that expired are purged, at most.
const PURGE_EVERY_MS: u64 = 60_000;

/// One connection and the statements prepared on it.
pub(in crate::store) struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    fn connect(connector: &Connector) -> Result<Self, StoreError> {
        let mut client = connector.connect().map_err(unavailable)?;
        client
            .batch_execute(SESSION_SETTINGS)
            .map_err(|e| pg_error("configure the connection", &e))?;
        Ok(Self {
            client,
            statements: HashMap::new(),
        })
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let statement = self.prepared(sql)?;
        self.client
            .query(&statement, params)
            .map_err(|e| pg_error("query", &e))
    }

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let statement = self.prepared(sql)?;
        self.client
            .execute(&statement, params)
            .map_err(|e| pg_error("statement", &e))
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.client
            .batch_execute(sql)
            .map_err(|e| pg_error("statement", &e))
    }

    fn prepared(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .client
            .prepare(sql)
            .map_err(|e| pg_error("prepare", &e))?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// A connection that cannot be reached, or that the server ended, makes the store
/// unavailable; any other error is the database's answer.
fn pg_error(what: &str, e: &postgres::Error) -> StoreError {
    let reason = format!("{what}: {}", custos_ids::fmt::error_chain(e));
    let connection_lost = match e.as_db_error() {
        None => true,
        // Class 08: connection exception; 57P0x: the server is shutting down or starting;
        // 53: out of resources; 55P03/57014: lock or statement timeout (a stuck peer).
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("53")
                || code == "55P03"
                || code == "57014"
        }
    };
    if connection_lost {
        StoreError::Unavailable(reason)
    } else {
        StoreError::Database(reason)
    }
}

fn unavailable(e: PgError) -> StoreError {
    match e {
        PgError::Settings(reason) => StoreError::Database(reason),
        PgError::Database(reason) => StoreError::Unavailable(reason),
    }
}

/// Runs blocking database I/O from wherever the store is called: on a multi-threaded async
/// runtime the worker hands its other tasks over first; on a current-thread runtime (tests)
/// the call runs on a thread of its own; elsewhere (the writer thread) directly.
pub(in crate::store) fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| match s.spawn(f).join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
        Err(_) => f(),
    }
}

fn hex_decode(hex: &str) -> Result<Vec<u8>, StoreError> {
    let corrupt = || StoreError::Corrupt {
        record: "meta/state".into(),
        reason: "not hex".into(),
    };
    if !hex.len().is_multiple_of(2) {
        return Err(corrupt());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|byte| u8::from_str_radix(byte, 16).ok())
                .ok_or_else(corrupt)
        })
        .collect()
}

fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Database(format!("{what} {value} is too large")))
}

fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        record: what.to_owned(),
        reason: format!("negative number {value}"),
    })
}

fn column<'r, T: postgres::types::FromSql<'r>>(row: &'r Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i)
        .map_err(|e| StoreError::Database(format!("column {i}: {e}")))
}

/// The reads of both kinds of transaction, over one connection.
struct PgTables<C> {
    conn: RefCell<C>,
}

impl<C: std::ops::DerefMut<Target = Conn>> PgTables<C> {
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.borrow_mut();
        let conn: &mut Conn = &mut conn;
        blocking(move || f(conn))
    }
}

fn record_query(kind: Record) -> &'static str {
    match kind {
        Record::Session => "SELECT value FROM custos_sessions WHERE name = $1",
        Record::Secrets => "SELECT value FROM custos_secrets WHERE name = $1",
    }
}

fn optional_value(rows: &[Row]) -> Result<Option<Vec<u8>>, StoreError> {
    rows.first().map(|row| column(row, 0)).transpose()
}

fn sealed_rows(rows: &[Row], what: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    rows.iter()
        .map(|row| Ok((to_u64(column(row, 0)?, what)?, column(row, 1)?)))
        .collect()
}

impl<C: std::ops::DerefMut<Target = Conn>> Tables for PgTables<C> {
    fn record(&self, kind: Record, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| optional_value(&c.query(record_query(kind), &[&name])?))
    }

    fn records(&self, kind: Record, prefix: &str, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let sql = match kind {
            Record::Session => {
                "SELECT name, value FROM custos_sessions WHERE starts_with(name, $1) ORDER BY name"
            }
            Record::Secrets => {
                "SELECT name, value FROM custos_secrets WHERE starts_with(name, $1) ORDER BY name"
            }
        };
        let rows = self.with(|c| c.query(sql, &[&prefix]))?;
        for row in &rows {
            if !visit(column(row, 0)?, column(row, 1)?)? {
                break;
            }
        }
        Ok(())
    }

    fn session_count(&self) -> Result<u64, StoreError> {
        let rows = self.with(|c| c.query("SELECT count(*) FROM custos_sessions", &[]))?;
        let count: i64 = rows.first().map_or(Ok(0), |row| column(row, 0))?;
        to_u64(count, "session count")
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| {
            optional_value(&c.query("SELECT value FROM custos_meta WHERE key = $1", &[&key])?)
        })
    }

    fn index_since(&self, after: u64) -> Result<Vec<IndexEntry>, StoreError> {
        let after = to_i64(after, "generation")?;
        let rows = self.with(|c| {
            c.query(
                "SELECT name, revision, hash, has_secrets, generation FROM custos_index \
                 WHERE generation > $1",
                &[&after],
            )
        })?;
        rows.iter()
            .map(|row| {
                let name: String = column(row, 0)?;
                let what = format!("custos_index/{name}");
                Ok(IndexEntry {
                    current: Current {
                        version: Version {
                            rev: to_u64(column(row, 1)?, &what)?,
                            hash: column(row, 2)?,
                        },
                        secrets: column(row, 3)?,
                    },
                    generation: to_u64(column(row, 4)?, &what)?,
                    name,
                })
            })
            .collect()
    }

    fn audit(
        &self,
        session: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let after = to_i64(after, "audit sequence number")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.with(|c| match session {
            None => c.query(
                "SELECT seq, value FROM custos_audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &limit],
            ),
            Some(session) => c.query(
                "SELECT seq, value FROM custos_audit WHERE session = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3",
                &[&session, &after, &limit],
            ),
        })?;
        sealed_rows(&rows, "custos_audit")
    }

    fn audit_event(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let seq = to_i64(seq, "audit sequence number")?;
        self.with(|c| {
            optional_value(&c.query("SELECT value FROM custos_audit WHERE seq = $1", &[&seq])?)
        })
    }

    fn audit_bounds(&self) -> Result<AuditBounds, StoreError> {
        let rows =
            self.with(|c| c.query("SELECT count(*), min(seq), max(seq) FROM custos_audit", &[]))?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Database("no audit bounds".into()))?;
        let bound = |i| -> Result<Option<u64>, StoreError> {
            column::<Option<i64>>(row, i)?
                .map(|v| to_u64(v, "custos_audit"))
                .transpose()
        };
        Ok(AuditBounds {
            count: to_u64(column(row, 0)?, "custos_audit")?,
            first: bound(1)?,
            last: bound(2)?,
        })
    }
}

impl<C: std::ops::DerefMut<Target = Conn>> WriteTables for PgTables<C> {
    fn put_record(&mut self, kind: Record, name: &str, sealed: &[u8]) -> Result<(), StoreError> {
        let sql = match kind {
            Record::Session => {
                "INSERT INTO custos_sessions (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
            }
            Record::Secrets => {
                "INSERT INTO custos_secrets (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
            }
        };
        self.with(|c| c.execute(sql, &[&name, &sealed]).map(drop))
    }

    fn put_index(
        &mut self,
        name: &str,
        current: &Current,
        generation: u64,
    ) -> Result<(), StoreError> {
        let rev = to_i64(current.version.rev, "revision")?;
        let generation = to_i64(generation, "generation")?;
        let (hash, secrets) = (current.version.hash.as_str(), current.secrets);
        self.with(|c| {
            c.execute(
                "INSERT INTO custos_index (name, revision, hash, has_secrets, generation) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET \
                 revision = EXCLUDED.revision, hash = EXCLUDED.hash, \
                 has_secrets = EXCLUDED.has_secrets, generation = EXCLUDED.generation",
                &[&name, &rev, &hash, &secrets, &generation],
            )
            .map(drop)
        })
    }

    fn put_audit(
        &mut self,
        seq: u64,
        session: Option<&str>,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        let seq = to_i64(seq, "audit sequence number")?;
        self.with(|c| {
            c.execute(
                "INSERT INTO custos_audit (seq, session, value) VALUES ($1, $2, $3)",
                &[&seq, &session, &sealed],
            )
            .map(drop)
        })
    }

    fn remove_audit(&mut self, seq: u64, _session: Option<&str>) -> Result<(), StoreError> {
        let seq = to_i64(seq, "audit sequence number")?;
        self.with(|c| {
            c.execute("DELETE FROM custos_audit WHERE seq = $1", &[&seq])
                .map(drop)
        })
    }

    fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO custos_meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &value],
            )
            .map(drop)
        })
    }
}

/// The writer's connection, (re)made when needed.
pub(in crate::store) struct PgWriter {
    connector: Connector,
    conn: Option<Conn>,
}

impl PgWriter {
    /// Begins a batch: a transaction holding the lock of the state row.
    pub(in crate::store) fn begin(&mut self) -> Result<Box<dyn Transaction + '_>, StoreError> {
        // A connection the server ended while it sat idle (a restart) fails at its first
        // statement: then one new connection is tried.
        let mut fresh = false;
        loop {
            if self.conn.as_ref().is_none_or(|c| c.client.is_closed()) {
                self.conn = None;
                self.conn = Some(Conn::connect(&self.connector)?);
                fresh = true;
            }
            let conn = self.conn.as_mut().ok_or(StoreError::WriterGone)?;
            let locked = conn.batch("BEGIN").and_then(|()| {
                conn.query(
                    "SELECT value FROM custos_meta WHERE key = 'state' FOR UPDATE",
                    &[],
                )
            });
            match locked {
                Ok(_) => break,
                Err(e) => {
                    // A failed connection is made again.
                    self.conn = None;
                    if fresh || !matches!(e, StoreError::Unavailable(_)) {
                        return Err(e);
                    }
                }
            }
        }
        Ok(Box::new(PgTables {
            conn: RefCell::new(self.conn.as_mut().ok_or(StoreError::WriterGone)?),
        }))
    }
}

/// The writer's transaction: the reads and writes of [`PgTables`] on its connection.
impl Transaction for PgTables<&mut Conn> {
    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        // Returns once the server has committed (synchronous_commit: durable on its disk,
        // and on its synchronous standbys where the server has some).
        self.with(|c| c.batch("COMMIT"))
    }

    fn abort(self: Box<Self>) {
        let _ = self.with(|c| c.batch("ROLLBACK"));
    }

    fn tables(&self) -> &dyn Tables {
        self
    }
}

/// Connections for reads, made on demand, at most [`POOL_SIZE`].
pub(in crate::store) struct PgReader {
    connector: Connector,
    idle: Mutex<Vec<Conn>>,
    /// Connections checked out, and a signal when one comes back.
    busy: Mutex<usize>,
    returned: Condvar,
    /// When expired nonces were last purged (ms since the Unix epoch).
    last_purge_ms: AtomicU64,
}

/// A pooled connection: back to the pool when dropped, unless it broke.
struct Pooled<'a> {
    reader: &'a PgReader,
    conn: Option<Conn>,
    /// In a transaction that dropping must end.
    in_transaction: bool,
    /// Broken: closed when dropped, not returned.
    discard: bool,
    /// Taken from the idle connections (rather than made now).
    reused: bool,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("a pooled connection is present until dropped")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a pooled connection is present until dropped")
    }
}

impl Pooled<'_> {
    /// After an error: a closed connection is not returned to the pool.
    fn check(&mut self) {
        if self.client.is_closed() {
            self.discard = true;
        }
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let (in_transaction, discard) = (self.in_transaction, self.discard);
            let idle = &self.reader.idle;
            // Ending the transaction and closing a connection both block (the client's
            // drop runs its own runtime): never on an async worker.
            blocking(move || {
                let mut conn = conn;
                let ended = !in_transaction || conn.batch("COMMIT").is_ok();
                if ended && !discard && !conn.client.is_closed() {
                    lock(idle).push(conn);
                }
            });
        }
        *lock(&self.reader.busy) -= 1;
        self.reader.returned.notify_one();
    }
}

impl Drop for PgReader {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut *lock(&self.idle));
        blocking(move || drop(idle));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl PgReader {
    fn new(connector: Connector) -> Self {
        Self {
            connector,
            idle: Mutex::new(Vec::new()),
            busy: Mutex::new(0),
            returned: Condvar::new(),
            last_purge_ms: AtomicU64::new(0),
        }
    }

    fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let busy = lock(&self.busy);
        let (mut busy, waited) = self
            .returned
            .wait_timeout_while(busy, POOL_WAIT, |busy| *busy >= POOL_SIZE)
            .unwrap_or_else(|e| e.into_inner());
        if waited.timed_out() && *busy >= POOL_SIZE {
            return Err(StoreError::Unavailable(format!(
                "all {POOL_SIZE} database connections of this CAS stayed busy for {} s",
                POOL_WAIT.as_secs()
            )));
        }
        *busy += 1;
        drop(busy);
        let mut pooled = Pooled {
            reader: self,
            conn: None,
            in_transaction: false,
            discard: false,
            reused: false,
        };
        let idle = lock(&self.idle).pop();
        pooled.reused = idle.is_some();
        pooled.conn = Some(match idle {
            Some(conn) => conn,
            None => blocking(|| Conn::connect(&self.connector))?,
        });
        Ok(pooled)
    }

    /// Runs `f` on a pooled connection. When the connection sat idle and turns out lost
    /// (the server restarted), every idle connection is dropped and `f` runs once more on a
    /// new one: a restart costs no request.
    fn run<'a, T>(
        &'a self,
        mut f: impl FnMut(&mut Pooled<'a>) -> Result<T, StoreError>,
    ) -> Result<(Pooled<'a>, T), StoreError> {
        loop {
            let mut pooled = self.get()?;
            match f(&mut pooled) {
                Ok(out) => return Ok((pooled, out)),
                Err(e) => {
                    pooled.check();
                    if !(pooled.reused && matches!(e, StoreError::Unavailable(_))) {
                        return Err(e);
                    }
                    pooled.discard = true;
                    let idle = std::mem::take(&mut *lock(&self.idle));
                    blocking(move || drop(idle));
                }
            }
        }
    }

    /// A read snapshot, and the sealed state it holds (read in the same round trip as the
    /// snapshot begins, so every read can be checked against the state it belongs to).
    pub(in crate::store) fn snapshot(&self) -> Result<(Box<dyn Tables + '_>, Vec<u8>), StoreError> {
        let (pooled, state) = self.run(|pooled| {
            pooled.in_transaction = true;
            blocking(|| {
                let messages = pooled
                    .client
                    .simple_query(
                        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                         SELECT encode(value, 'hex') FROM custos_meta WHERE key = 'state'",
                    )
                    .map_err(|e| pg_error("begin a read", &e))?;
                let hex = messages.iter().find_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                });
                let hex = hex.ok_or_else(|| {
                    StoreError::Integrity("the store's sealed state is missing".into())
                })?;
                hex_decode(&hex)
            })
        })?;
        let tables = Box::new(PgTables {
            conn: RefCell::new(pooled),
        });
        Ok((tables, state))
    }

    /// Redeems `nonce` once across replicas (see [`nonces`]); purges expired ones now and
    /// then.
    pub(in crate::store) fn redeem_nonce(
        &self,
        nonce: &[u8],
        expires_ms: u64,
    ) -> Result<bool, StoreError> {
        let expires_at = to_i64(expires_ms.div_ceil(1000), "nonce expiry")?;
        let now_ms = crate::audit::now_ms();
        let purge =
            now_ms.saturating_sub(self.last_purge_ms.load(Ordering::Relaxed)) >= PURGE_EVERY_MS;
        let (_, redeemed) = self.run(|pooled| {
            blocking(|| {
                if purge {
                    let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
                    nonces::purge_expired(&mut pooled.client, now)?;
                }
                nonces::redeem(&mut pooled.client, nonce, expires_at)
            })
            .map_err(unavailable)
        })?;
        if purge {
            self.last_purge_ms.store(now_ms, Ordering::Relaxed);
        }
        Ok(redeemed)
    }

    /// The value stored under `name` for every replica, if any.
    pub(in crate::store) fn stored_shared_value(
        &self,
        sealer: &Sealer,
        name: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let key = format!("shared/{name}");
        let (_, stored) = self.run(|pooled| {
            blocking(|| {
                let rows = pooled.query("SELECT value FROM custos_meta WHERE key = $1", &[&key])?;
                optional_value(&rows)
            })
        })?;
        stored
            .map(|sealed| Ok(sealer.open(&format!("meta/{key}"), &sealed)?))
            .transpose()
    }

    /// The value every replica shares under `name`: the first one stored, or `create`'s.
    pub(in crate::store) fn shared_value(
        &self,
        sealer: &Sealer,
        name: &str,
        create: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, StoreError>,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let key = format!("shared/{name}");
        let address = format!("meta/{key}");
        let (mut pooled, stored) = self.run(|pooled| {
            blocking(|| {
                let rows = pooled.query("SELECT value FROM custos_meta WHERE key = $1", &[&key])?;
                optional_value(&rows)
            })
        })?;
        if let Some(sealed) = stored {
            return Ok(sealer.open(&address, &sealed)?);
        }
        let sealed = sealer.seal(&address, &create()?)?;
        // Another replica may have stored one meanwhile: the first one stays.
        let stored = blocking(|| {
            pooled.execute(
                "INSERT INTO custos_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &sealed],
            )?;
            optional_value(&pooled.query("SELECT value FROM custos_meta WHERE key = $1", &[&key])?)
        })?
        .ok_or_else(|| StoreError::Database(format!("{key} vanished after it was stored")))?;
        Ok(sealer.open(&address, &stored)?)
    }
}

/// A store opened: its reader and writer connections, the digest key and the verified view.
pub(in crate::store) struct Opened {
    pub reader: PgReader,
    pub writer: PgWriter,
    pub digest: Digest,
    pub view: View,
}

/// Connects, migrates the schema, creates the store when empty (under an advisory lock, so
/// replicas starting together create it once) or checks that `sealer` opens it, and verifies
/// every record.
pub(in crate::store) fn open(settings: &PgSettings, sealer: &Sealer) -> Result<Opened, StoreError> {
    let connector = Connector::new(settings).map_err(|e| StoreError::Open {
        path: "store.postgres".into(),
        reason: e.to_string(),
    })?;
    let location = connector.location();
    let open_error = |reason: String| StoreError::Open {
        path: location.clone(),
        reason,
    };
    let mut conn = Conn::connect(&connector).map_err(|e| open_error(e.to_string()))?;
    let migrated = schema::migrate(&mut conn.client).map_err(|e| open_error(e.to_string()))?;
    if migrated.from != migrated.to {
        tracing::info!(
            from = migrated.from,
            to = migrated.to,
            "store schema migrated"
        );
    }
    let (digest, view) = init(&mut conn, sealer).map_err(|e| open_error(e.to_string()))?;
    Ok(Opened {
        reader: PgReader::new(connector.clone()),
        writer: PgWriter {
            connector,
            conn: Some(conn),
        },
        digest,
        view,
    })
}

fn init(conn: &mut Conn, sealer: &Sealer) -> Result<(Digest, View), StoreError> {
    conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ")?;
    conn.execute("SELECT pg_advisory_xact_lock($1)", &[&INIT_LOCK])?;
    let opened = {
        let mut tables = PgTables {
            conn: RefCell::new(&mut *conn),
        };
        (|| {
            match tables.meta(KEY_CHECK)? {
                Some(sealed) => {
                    let plain = sealer.open(KEY_CHECK, &sealed).ok();
                    if plain.as_deref().map(Vec::as_slice) != Some(KEY_CHECK_V2) {
                        return Err(StoreError::Integrity(
                        "the master key does not open this store: every replica must use the same master key file".into(),
                    ));
                    }
                }
                None => {
                    let (_, sealed) = Digest::generate(sealer)?;
                    tables.put_meta(integrity::DIGEST_KEY, &sealed)?;
                    let state = State {
                        generation: 0,
                        sessions: 0,
                        digest: [0; 32],
                        audit_first: 1,
                        audit_next: 1,
                    };
                    tables.put_meta(integrity::STATE_KEY, &state.seal(sealer)?)?;
                    tables.put_meta(KEY_CHECK, &sealer.seal(KEY_CHECK, KEY_CHECK_V2)?)?;
                    tracing::info!("a new store was created in the database");
                }
            }
            let digest = match tables.meta(integrity::DIGEST_KEY)? {
                Some(sealed) => Digest::open(sealer, &sealed)?,
                None => {
                    return Err(StoreError::Integrity(
                    "the store's digest key is missing: the database was changed outside the CAS"
                        .into(),
                ));
                }
            };
            let state = view::stored_state(&tables, sealer)?;
            let view = view::verify(&tables, sealer, &digest, &state)?;
            Ok((digest, view))
        })()
    };
    match opened {
        Ok(opened) => {
            conn.batch("COMMIT")?;
            Ok(opened)
        }
        Err(e) => {
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
}
