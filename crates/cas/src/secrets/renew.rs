//! Renewing generated certificates before they expire: when one is due, and its successor.
//!
//! A generated certificate is due once half of its validity (notAfter − notBefore) has
//! passed, or once it has expired ([`is_due`]); one without `valid_for` (notAfter
//! 9999-12-31T23:59:59Z) never is. Its successor is issued as the first one was
//! ([`super::issue`]): same subject, SANs, key usages and CA flag, `valid_for` counted from
//! now, a new serial, the same issuer — for the same key, or with `renew_key: true` a new
//! one. Certificates a renewed CA issued in the session are re-issued too, so every chain the
//! session delivers stays consistent; an issuer imported from another session is used as it
//! is now.
//!
//! Everything here is a function of the stored values and `now`: the single, durable renewal
//! at delivery is `crate::enclave::renewal`.

use std::collections::{BTreeMap, BTreeSet};

use custos_policy::{CertificateRequest, Generation, KeyType, Secret, SecretSource, Session};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{
    ImportResolver, PreparedKeys, SecretError, SecretValue, SecretValues, generate_key, issue,
    no_expiry,
};

/// Whether the certificate `der` is due for renewal as of `now`: half of its validity has
/// passed (so also when it has expired). Never for notAfter 9999-12-31T23:59:59Z.
pub fn is_due(der: &[u8], now: OffsetDateTime) -> Result<bool, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("the stored certificate does not parse: {e}"))?;
    let validity = cert.validity();
    let time = |t: &x509_parser::time::ASN1Time| {
        OffsetDateTime::from_unix_timestamp(t.timestamp())
            .map_err(|e| format!("the stored certificate's validity is out of range: {e}"))
    };
    let (not_before, not_after) = (time(&validity.not_before)?, time(&validity.not_after)?);
    if not_after >= no_expiry() {
        return Ok(false);
    }
    Ok(now >= not_before + (not_after - not_before) / 2)
}

/// A generated certificate of a session.
#[derive(Clone, Copy)]
struct Generated<'s> {
    secret: &'s Secret,
    request: &'s CertificateRequest,
    ca: bool,
}

fn generated(secret: &Secret) -> Option<Generated<'_>> {
    match &secret.source {
        SecretSource::Generated(Generation::X509(request)) => Some(Generated {
            secret,
            request,
            ca: false,
        }),
        SecretSource::Generated(Generation::X509Ca(request)) => Some(Generated {
            secret,
            request,
            ca: true,
        }),
        _ => None,
    }
}

/// The session's generated certificates, each after its issuer when the session generates
/// that too (a cycle, which a create refuses, leaves the rest out).
fn issuers_first(session: &Session) -> Vec<Generated<'_>> {
    let all: Vec<Generated<'_>> = session.secrets.iter().filter_map(generated).collect();
    let is_generated = |name: &str| all.iter().any(|c| c.secret.name.as_str() == name);
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut ordered = Vec::with_capacity(all.len());
    loop {
        let before = ordered.len();
        for cert in &all {
            let name = cert.secret.name.as_str();
            let ready = cert.request.issuer.as_ref().is_none_or(|issuer| {
                !is_generated(issuer.as_str()) || placed.contains(issuer.as_str())
            });
            if ready && !placed.contains(name) {
                placed.insert(name);
                ordered.push(*cert);
            }
        }
        if ordered.len() == before {
            return ordered;
        }
    }
}

/// The generated certificates whose renewal changes what a service referring to `names`
/// receives: those among `names`, and their issuers that the session generates.
pub fn candidates(session: &Session, names: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for name in names {
        let mut next = Some(name.as_str());
        while let Some(cert) = next.and_then(|n| session.secret(n)).and_then(generated) {
            if !out.insert(cert.secret.name.as_str().to_owned()) {
                break;
            }
            next = cert.request.issuer.as_ref().map(|i| i.as_str());
        }
    }
    out
}

/// Of `candidates`, those whose stored certificate is due as of `now`.
pub fn due(
    values: &SecretValues,
    candidates: &BTreeSet<String>,
    now: OffsetDateTime,
) -> Result<BTreeSet<String>, SecretError> {
    let mut out = BTreeSet::new();
    for name in candidates {
        if let Some(SecretValue::Certificate { der, .. }) = values.values.get(name)
            && is_due(der, now).map_err(|reason| SecretError::Reference {
                secret: name.clone(),
                reason,
            })?
        {
            out.insert(name.clone());
        }
    }
    Ok(out)
}

/// What [`renew`] made.
pub struct Renewal {
    /// The session's values with the new certificates.
    pub values: SecretValues,
    /// The certificates renewed because they were due, issuers first.
    pub renewed: Vec<String>,
    /// The certificates re-issued because their issuer was renewed, issuers first.
    pub reissued: Vec<String>,
}

impl std::fmt::Debug for Renewal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renewal")
            .field("renewed", &self.renewed)
            .field("reissued", &self.reissued)
            .finish_non_exhaustive()
    }
}

/// `values` with the certificates in `due` renewed as of `now`, and every certificate of the
/// session they issued (directly or not) re-issued for its same key.
pub fn renew(
    session: &Session,
    values: &SecretValues,
    due: &BTreeSet<String>,
    imports: &dyn ImportResolver,
    now: OffsetDateTime,
) -> Result<Renewal, SecretError> {
    let mut out = values.clone();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    let (mut renewed, mut reissued) = (Vec::new(), Vec::new());
    for cert in issuers_first(session) {
        let name = cert.secret.name.as_str();
        let is_due = due.contains(name);
        let issuer_changed = cert
            .request
            .issuer
            .as_ref()
            .is_some_and(|i| changed.contains(i.as_str()));
        if !is_due && !issuer_changed {
            continue;
        }
        let Some(SecretValue::Certificate { pkcs8, .. }) = values.values.get(name) else {
            return Err(SecretError::Reference {
                secret: name.to_owned(),
                reason: "the CAS holds no certificate for it to renew".into(),
            });
        };
        let mut prepared = PreparedKeys::default();
        if cert.request.private_key.is_none() {
            // The certificate's own key: the P-256 key the CAS made for an x509-ca, the only
            // kind of key made here — an EC key takes microseconds, so no gate is needed.
            let key = if is_due && cert.request.renew_key {
                generate_key(name, KeyType::P256)?
            } else {
                Zeroizing::new(pkcs8.clone())
            };
            prepared.keys.insert(name.to_owned(), (KeyType::P256, key));
        }
        let imported = imported_for(session, cert.request, imports)?;
        let value = issue(
            cert.secret,
            cert.request,
            cert.ca,
            &out,
            &imported,
            &prepared,
            None,
            None,
            now,
        )?;
        out.values.insert(name.to_owned(), value);
        changed.insert(name.to_owned());
        if is_due {
            renewed.push(name.to_owned());
        } else {
            reissued.push(name.to_owned());
        }
    }
    Ok(Renewal {
        values: out,
        renewed,
        reissued,
    })
}

/// The current values of the secrets `request` signs or certifies with that the session
/// imports from other sessions (after checking, again, that they are still exported to it).
fn imported_for(
    session: &Session,
    request: &CertificateRequest,
    imports: &dyn ImportResolver,
) -> Result<BTreeMap<String, SecretValue>, SecretError> {
    let mut out = BTreeMap::new();
    for name in [&request.issuer, &request.private_key]
        .into_iter()
        .flatten()
    {
        let Some(SecretSource::Import(import)) = session.secret(name.as_str()).map(|s| &s.source)
        else {
            continue;
        };
        let value = imports
            .resolve(session, import)
            .map_err(|reason| SecretError::Import {
                secret: name.to_string(),
                from_session: import.session.to_string(),
                from_secret: import.secret.to_string(),
                reason,
            })?;
        if let Some(value) = value {
            out.insert(name.as_str().to_owned(), value);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
