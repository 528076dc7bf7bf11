//! Warnings: sessions that are valid but will stop working. A warning never rejects a
//! session; `custos session check` prints them, and the CAS returns them with a create or
//! update (`"warnings"`), which `custos session create|update` prints.

use crate::model::{EXPIRY_WARNING, Generation, SecretSource, Session};

/// The session's warnings, one line each, in secret order.
///
/// A generated certificate whose `valid_for` ends within 30 days ([`EXPIRY_WARNING`]): the CAS
/// renews it at an attestation once half of its validity has passed, but a program holds the
/// certificate it started with until it attests again.
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
                    "secret {}: `valid_for` {} ends within 30 days of generation; the CAS renews the certificate when a service attests after half of that time, and a running program gets the renewed one only when it attests again (`refresh`)",
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
