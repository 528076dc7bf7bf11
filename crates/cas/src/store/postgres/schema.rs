//! The replicated store's schema in PostgreSQL, versioned and migrated at start-up.
//!
//! `custos_schema` holds one row: the schema `version` and `min_reader`, the oldest Custos
//! schema version that can still use the database. A start migrates an older schema forward
//! under a transaction-scoped advisory lock, so replicas starting together migrate once. A
//! release meeting a newer schema runs on it if that schema says it may (`min_reader` at most
//! its own version: an additive migration), which is what lets a rolling upgrade run old and
//! new replicas side by side for one version; otherwise it refuses, naming both versions.
//!
//! Values stay sealed under the master key as in the embedded store: the database sees session
//! names, revisions, hashes, audit sequence numbers and ciphertext. Tables mirror the embedded
//! store's: `custos_sessions`, `custos_secrets`, `custos_index` (the revision index, with the
//! generation that last wrote each entry, so replicas catch up with each other's writes),
//! `custos_audit`, `custos_meta`, plus `custos_redeemed_nonces`. Names sort bytewise
//! (`COLLATE "C"`), as in the embedded store.

use postgres::Client;

use super::PgError;

/// The schema this release writes.
pub const VERSION: i32 = 1;
/// Key of the advisory lock migrations hold (`custos` in ASCII).
const MIGRATION_LOCK: i64 = 0x6375_7374_6f73;

/// Each migration: the version it makes, the oldest schema version that can read its result,
/// and its statements.
const MIGRATIONS: &[(i32, i32, &str)] = &[(
    1,
    1,
    r#"
    CREATE TABLE custos_meta (
        key text COLLATE "C" PRIMARY KEY,
        value bytea NOT NULL
    );
    CREATE TABLE custos_sessions (
        name text COLLATE "C" PRIMARY KEY,
        value bytea NOT NULL
    );
    CREATE TABLE custos_secrets (
        name text COLLATE "C" PRIMARY KEY,
        value bytea NOT NULL
    );
    CREATE TABLE custos_index (
        name text COLLATE "C" PRIMARY KEY,
        revision bigint NOT NULL CHECK (revision > 0),
        hash text NOT NULL,
        has_secrets boolean NOT NULL,
        generation bigint NOT NULL
    );
    CREATE INDEX custos_index_by_generation ON custos_index (generation);
    CREATE TABLE custos_audit (
        seq bigint PRIMARY KEY,
        session text COLLATE "C",
        value bytea NOT NULL
    );
    CREATE INDEX custos_audit_by_session ON custos_audit (session, seq);
    CREATE TABLE custos_redeemed_nonces (
        nonce bytea PRIMARY KEY,
        expires_at bigint NOT NULL
    );
    CREATE INDEX custos_redeemed_nonces_expiry ON custos_redeemed_nonces (expires_at);
    "#,
)];

/// What [`migrate`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The schema version before.
    pub from: i32,
    /// The schema version now (newer than [`VERSION`] when a newer release migrated it).
    pub to: i32,
}

/// Brings the database's schema to [`VERSION`], or checks that a newer one admits this
/// release. Safe to run from several replicas at once.
pub fn migrate(client: &mut Client) -> Result<Migrated, PgError> {
    migrate_to(client, VERSION, MIGRATIONS)
}

fn migrate_to(
    client: &mut Client,
    ours: i32,
    migrations: &[(i32, i32, &str)],
) -> Result<Migrated, PgError> {
    let db = |what: &str, e: postgres::Error| {
        PgError::Database(format!(
            "schema {what}: {}",
            custos_ids::fmt::error_chain(&e)
        ))
    };
    let mut tx = client.transaction().map_err(|e| db("transaction", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(|e| db("lock", e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS custos_schema (
            only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
            version integer NOT NULL,
            min_reader integer NOT NULL
        )",
    )
    .map_err(|e| db("version table", e))?;
    let found = tx
        .query_opt("SELECT version, min_reader FROM custos_schema", &[])
        .map_err(|e| db("version", e))?
        .map(|row| (row.get::<_, i32>(0), row.get::<_, i32>(1)));
    let (from, min_reader) = found.unwrap_or((0, 0));
    if from > ours {
        if min_reader > ours {
            return Err(PgError::Settings(format!(
                "the database's schema is version {from}, which needs Custos schema version {min_reader} or later; this release has version {ours}: upgrade it"
            )));
        }
        tx.commit().map_err(|e| db("commit", e))?;
        return Ok(Migrated { from, to: from });
    }
    let mut to = from;
    let mut reader = min_reader;
    for &(version, min_reader, statements) in migrations {
        if version <= from || version > ours {
            continue;
        }
        tx.batch_execute(statements)
            .map_err(|e| db(&format!("migration to version {version}"), e))?;
        (to, reader) = (version, min_reader);
    }
    if to != from {
        tx.execute(
            "INSERT INTO custos_schema (version, min_reader) VALUES ($1, $2)
             ON CONFLICT (only_row) DO UPDATE SET version = $1, min_reader = $2",
            &[&to, &reader],
        )
        .map_err(|e| db("version update", e))?;
    }
    tx.commit().map_err(|e| db("commit", e))?;
    Ok(Migrated { from, to })
}
