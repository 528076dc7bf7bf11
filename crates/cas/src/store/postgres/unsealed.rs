//! Values kept in the database's `custos_meta` in clear, read before the store opens: the
//! master key's envelope (wrapped, so readable by anyone) is needed to open the store.

use super::{Connector, PgError, PgSettings, schema};
use crate::store::postgres::backend::blocking;

const PREFIX: &str = "unsealed/";

fn connect(settings: &PgSettings) -> Result<postgres::Client, PgError> {
    let mut client = Connector::new(settings)?.connect()?;
    schema::migrate(&mut client)?;
    Ok(client)
}

fn database(what: &str, e: &postgres::Error) -> PgError {
    PgError::Database(format!("{what}: {}", custos_ids::fmt::error_chain(e)))
}

/// The value under `key`, if any.
pub fn load(settings: &PgSettings, key: &str) -> Result<Option<Vec<u8>>, PgError> {
    Ok(load_many(settings, &[key])?.pop().flatten())
}

/// The values under `keys` (each if any), read over one connection.
pub fn load_many(settings: &PgSettings, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, PgError> {
    blocking(|| {
        let mut client = connect(settings)?;
        keys.iter()
            .map(|key| {
                let key = format!("{PREFIX}{key}");
                let row = client
                    .query_opt("SELECT value FROM custos_meta WHERE key = $1", &[&key])
                    .map_err(|e| database("read", &e))?;
                Ok(row.map(|row| row.get::<_, Vec<u8>>(0)))
            })
            .collect()
    })
}

/// Stores `value` under `key` unless a value is there already; returns the value stored (the
/// first writer's, when several race).
pub fn store_first(settings: &PgSettings, key: &str, value: &[u8]) -> Result<Vec<u8>, PgError> {
    let key = format!("{PREFIX}{key}");
    blocking(|| {
        let mut client = connect(settings)?;
        client
            .execute(
                "INSERT INTO custos_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )
            .map_err(|e| database("store", &e))?;
        let row = client
            .query_one("SELECT value FROM custos_meta WHERE key = $1", &[&key])
            .map_err(|e| database("read back", &e))?;
        Ok(row.get::<_, Vec<u8>>(0))
    })
}

/// Replaces `old` by `new` under `key` if `old` is what is stored; returns whether it was.
pub fn replace(settings: &PgSettings, key: &str, old: &[u8], new: &[u8]) -> Result<bool, PgError> {
    let key = format!("{PREFIX}{key}");
    blocking(|| {
        let mut client = connect(settings)?;
        let updated = client
            .execute(
                "UPDATE custos_meta SET value = $3 WHERE key = $1 AND value = $2",
                &[&key, &old, &new],
            )
            .map_err(|e| database("replace", &e))?;
        Ok(updated == 1)
    })
}

/// Removes the value under `key`, if any.
pub fn remove(settings: &PgSettings, key: &str) -> Result<(), PgError> {
    let key = format!("{PREFIX}{key}");
    blocking(|| {
        let mut client = connect(settings)?;
        client
            .execute("DELETE FROM custos_meta WHERE key = $1", &[&key])
            .map_err(|e| database("remove", &e))?;
        Ok(())
    })
}
