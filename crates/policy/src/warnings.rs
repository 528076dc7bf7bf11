//! Warnings: sessions that are valid but will stop working. A warning never rejects a
//! session; `custos session check` prints them, and the CAS returns them with a create or
//! update (`"warnings"`), which `custos session create|update` prints.

use crate::model::{EXPIRY_WARNING, Generation, SecretSource, Session};

/// The session's warnings, one line each, in secret order.
///
/// A generated certificate whose `valid_for` ends within 30 days ([`EXPIRY_WARNING`]): SCONE
/// renews generated certificates before they expire, Custos does not yet, and the CAS refuses
/// to deliver an expired one.
pub fn warnings(session: &Session) -> Vec<String> {
    session
        .secrets
        .iter()
        .filter_map(|secret| {
            let SecretSource::Generated(Generation::X509(request) | Generation::X509Ca(request)) =
                &secret.source
            else {
                return None;
            };
            let valid_for = request.valid_for?;
            (valid_for <= EXPIRY_WARNING).then(|| {
                format!(
                    "secret {}: `valid_for` {} ends within 30 days of generation; Custos does not renew generated certificates (SCONE does), and once it expires the CAS refuses to deliver it until the session is updated",
                    secret.name,
                    describe(valid_for.as_secs())
                )
            })
        })
        .collect()
}

fn describe(seconds: u64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{s} seconds"),
    }
}
