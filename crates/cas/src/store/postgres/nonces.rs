//! Single use of enclave challenges across replicas. A replica redeems a nonce by inserting it
//! under the primary key of `custos_redeemed_nonces`: when two replicas redeem the same nonce
//! at once, the database lets exactly one insert it. A nonce is kept until it expires; then
//! it is purged — an expired nonce is refused by its own expiry before it is ever redeemed,
//! so forgetting it cannot let it be used again.

use postgres::Client;

use super::PgError;

/// Redeems `nonce`, valid until `expires_at` (Unix seconds): `true` the first time, `false`
/// when any replica redeemed it before.
pub fn redeem(client: &mut Client, nonce: &[u8], expires_at: i64) -> Result<bool, PgError> {
    let inserted = client
        .execute(
            "INSERT INTO custos_redeemed_nonces (nonce, expires_at) VALUES ($1, $2)
             ON CONFLICT (nonce) DO NOTHING",
            &[&nonce, &expires_at],
        )
        .map_err(|e| database("redeem a nonce", &e))?;
    Ok(inserted == 1)
}

/// Forgets the nonces that expired before `now` (Unix seconds); returns how many.
pub fn purge_expired(client: &mut Client, now: i64) -> Result<u64, PgError> {
    client
        .execute(
            "DELETE FROM custos_redeemed_nonces WHERE expires_at < $1",
            &[&now],
        )
        .map_err(|e| database("purge expired nonces", &e))
}

fn database(what: &str, e: &postgres::Error) -> PgError {
    PgError::Database(format!(
        "cannot {what}: {}",
        custos_ids::fmt::error_chain(e)
    ))
}
