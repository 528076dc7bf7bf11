//! Secrets the CAS makes and keeps: generation, migration on update, imports, public values.
//!
//! A session's generated values are kept as one sealed record ([`SecretValues`]) next to
//! the session. They are made in two steps so that slow work stays out of the store's
//! writer: [`prepare`] generates the new private keys (RSA takes a while) outside any
//! transaction; [`materialize`] then, inside the write transaction, keeps what migrates from
//! the previous version, issues certificates (which may need a CA imported from another
//! session) and checks every import.
//!
//! Values given in the session text (`value`), Key Vault imports and Entra ID tokens are not
//! kept here: they are resolved when an enclave asks for its configuration.
//!
//! Nothing here prints a value: errors name secrets and what is wrong with them only.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use aws_lc_rs::rand::SecureRandom;
use custos_policy::{
    CertificateRequest, Endpoint, Generation, KeyType, Secret, SecretKind, SecretName,
    SecretSource, Session, SessionImport,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

/// Why secrets could not be made or resolved. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Key or certificate generation failed.
    #[error("secret {secret}: cannot generate {what}: {reason}")]
    Generate {
        /// The secret.
        secret: String,
        /// What was being made.
        what: &'static str,
        /// The library's reason.
        reason: String,
    },
    /// A secret refers to another one that cannot be used for that purpose.
    #[error("secret {secret}: {reason}")]
    Reference {
        /// The secret.
        secret: String,
        /// What is wrong.
        reason: String,
    },
    /// An `import` cannot be resolved.
    #[error("secret {secret}: cannot import {from_secret} from session {from_session}: {reason}")]
    Import {
        /// The importing secret.
        secret: String,
        /// The exporting session.
        from_session: String,
        /// The secret there.
        from_secret: String,
        /// Why.
        reason: String,
    },
    /// The session asks for more generated keys than one request may make.
    #[error(
        "the session asks for {found} generated private keys; a session may have at most {max}"
    )]
    TooManyKeys {
        /// Keys asked for.
        found: usize,
        /// [`MAX_GENERATED_KEYS`].
        max: usize,
    },
    /// The stored values could not be decoded.
    #[error("stored secret values are corrupt: {0}")]
    Corrupt(String),
}

/// A value the CAS generated and keeps. Zeroized on drop; `Debug` shows no value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SecretValue {
    /// Random printable characters.
    Ascii {
        /// The characters.
        value: String,
    },
    /// Random bytes.
    Binary {
        /// The bytes.
        #[serde(with = "b64")]
        value: Vec<u8>,
    },
    /// A private key.
    PrivateKey {
        /// Its type (`P-256`, ...).
        key_type: String,
        /// PKCS#8 DER.
        #[serde(with = "b64")]
        pkcs8: Vec<u8>,
    },
    /// A certificate (`x509` or `x509-ca`).
    Certificate {
        /// Whether it is a CA certificate.
        ca: bool,
        /// The certificate, DER.
        #[serde(with = "b64")]
        der: Vec<u8>,
        /// Its issuers, nearest first (empty when self-signed).
        #[serde(default, with = "b64_list")]
        chain: Vec<Vec<u8>>,
        /// Its private key, PKCS#8 DER.
        #[serde(with = "b64")]
        pkcs8: Vec<u8>,
    },
}

impl Drop for SecretValue {
    fn drop(&mut self) {
        match self {
            Self::Ascii { value } => value.zeroize(),
            Self::Binary { value } => value.zeroize(),
            Self::PrivateKey { pkcs8, .. } => pkcs8.zeroize(),
            Self::Certificate { pkcs8, .. } => pkcs8.zeroize(),
        }
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ascii { .. } => "SecretValue::Ascii(redacted)",
            Self::Binary { .. } => "SecretValue::Binary(redacted)",
            Self::PrivateKey { .. } => "SecretValue::PrivateKey(redacted)",
            Self::Certificate { .. } => "SecretValue::Certificate(redacted)",
        })
    }
}

impl SecretValue {
    /// The session-language kind this value is of.
    pub fn kind(&self) -> SecretKind {
        match self {
            Self::Ascii { .. } => SecretKind::Ascii,
            Self::Binary { .. } => SecretKind::Binary,
            Self::PrivateKey { .. } => SecretKind::PrivateKey,
            Self::Certificate { ca: false, .. } => SecretKind::X509,
            Self::Certificate { ca: true, .. } => SecretKind::X509Ca,
        }
    }

    /// The part that may be published (`export_public`): a public key or a certificate,
    /// PEM. `None` for ascii and binary values, which have no public part.
    pub fn public_pem(&self) -> Option<String> {
        match self {
            Self::PrivateKey { pkcs8, .. } => {
                let key = KeyPair::try_from(pkcs8.as_slice()).ok()?;
                Some(key.public_key_pem())
            }
            Self::Certificate { der, .. } => Some(custos_ids::pem::encode("CERTIFICATE", der)),
            Self::Ascii { .. } | Self::Binary { .. } => None,
        }
    }
}

/// The generated values of one session version, by secret name.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretValues {
    /// The values.
    pub values: BTreeMap<String, SecretValue>,
}

impl fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl SecretValues {
    /// Serialized for sealing; zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        // Serializing owned strings and byte vectors into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, self);
        out
    }

    /// Reads what [`SecretValues::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretError> {
        serde_json::from_slice(bytes).map_err(|e| SecretError::Corrupt(e.to_string()))
    }
}

/// Private keys generated ahead of a write, by the secret that needs them.
#[derive(Default)]
pub struct PreparedKeys {
    // Keyed by secret name.
    keys: BTreeMap<String, (KeyType, Zeroizing<Vec<u8>>)>,
}

impl fmt::Debug for PreparedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.keys.keys()).finish()
    }
}

/// Whether `secret`'s value carries over unchanged from the previous version of its
/// session (certificates are decided in [`materialize`], where their key and issuer are known).
///
/// As in SCONE: generated `ascii` and `binary` values with the same name and kind are kept;
/// a generated private key is kept only with `migrate: true` (and the same `key_type`).
fn migrates(secret: &Secret, previous: Option<&SecretValue>) -> bool {
    match (&secret.source, previous) {
        (SecretSource::Generated(Generation::Ascii { .. }), Some(SecretValue::Ascii { .. }))
        | (SecretSource::Generated(Generation::Binary { .. }), Some(SecretValue::Binary { .. })) => {
            true
        }
        (
            SecretSource::Generated(Generation::PrivateKey { key_type }),
            Some(SecretValue::PrivateKey { key_type: was, .. }),
        ) => secret.migrate && was == key_type.as_str(),
        _ => false,
    }
}

/// The previous key of an `x509-ca` without `private_key` that says `migrate: true`.
fn migrated_ca_key<'p>(secret: &Secret, previous: Option<&'p SecretValue>) -> Option<&'p [u8]> {
    match previous {
        Some(SecretValue::Certificate {
            ca: true, pkcs8, ..
        }) if secret.migrate => Some(pkcs8),
        _ => None,
    }
}

/// Most private keys one session may have generated: key generation (RSA above all) is the
/// one costly thing a client can ask for.
pub const MAX_GENERATED_KEYS: usize = 64;

/// The private keys a session version needs generated: known before any is made, so the
/// caller can decide where (and whether) the costly work runs.
#[derive(Debug, Default)]
pub struct KeyPlan {
    // (secret name, key type), in the session's order.
    wanted: Vec<(String, KeyType)>,
}

impl KeyPlan {
    /// Whether the plan holds an RSA key: tens to hundreds of milliseconds of CPU each, where
    /// EC and Ed25519 keys take microseconds.
    pub fn is_costly(&self) -> bool {
        self.wanted.iter().any(|(_, key_type)| key_type.is_rsa())
    }

    /// How many keys the plan makes.
    pub fn len(&self) -> usize {
        self.wanted.len()
    }

    /// Whether the plan makes no key.
    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty()
    }

    /// Generates the keys (blocking; slow for RSA).
    pub fn generate(self) -> Result<PreparedKeys, SecretError> {
        let mut prepared = PreparedKeys::default();
        for (secret, key_type) in self.wanted {
            let pkcs8 = generate_key(&secret, key_type)?;
            prepared.keys.insert(secret, (key_type, pkcs8));
        }
        Ok(prepared)
    }
}

/// The keys the session's new values need: for each generated `private-key`, and for each
/// generated `x509-ca` without `private_key`, unless `previous` (the values of the version an
/// update replaces) has one that migrates. More than [`MAX_GENERATED_KEYS`] is an error.
pub fn plan(session: &Session, previous: Option<&SecretValues>) -> Result<KeyPlan, SecretError> {
    let previous_value =
        |secret: &Secret| previous.and_then(|p| p.values.get(secret.name.as_str()));
    let wanted: Vec<(String, KeyType)> = session
        .secrets
        .iter()
        .filter(|secret| {
            !migrates(secret, previous_value(secret))
                && migrated_ca_key(secret, previous_value(secret)).is_none()
        })
        .filter_map(|secret| match &secret.source {
            SecretSource::Generated(Generation::PrivateKey { key_type }) => {
                Some((secret.name.as_str().to_owned(), *key_type))
            }
            SecretSource::Generated(Generation::X509Ca(CertificateRequest {
                private_key: None,
                ..
            })) => Some((secret.name.as_str().to_owned(), KeyType::P256)),
            _ => None,
        })
        .collect();
    if wanted.len() > MAX_GENERATED_KEYS {
        return Err(SecretError::TooManyKeys {
            found: wanted.len(),
            max: MAX_GENERATED_KEYS,
        });
    }
    Ok(KeyPlan { wanted })
}

/// Generates the private keys the session's new values need (slow for RSA): [`plan`], then
/// [`KeyPlan::generate`].
pub fn prepare(
    session: &Session,
    previous: Option<&SecretValues>,
) -> Result<PreparedKeys, SecretError> {
    plan(session, previous)?.generate()
}

fn generate_key(secret: &str, key_type: KeyType) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    let error = |e: rcgen::Error| SecretError::Generate {
        secret: secret.to_owned(),
        what: "a private key",
        reason: e.to_string(),
    };
    let key = match key_type {
        KeyType::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        KeyType::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        }
        KeyType::Rsa3072 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072)
        }
    }
    .map_err(error)?;
    Ok(Zeroizing::new(key.serialize_der()))
}

/// What a session may read of other sessions while its values are made: resolves an
/// `import` after checking the exporting session allows it.
pub trait ImportResolver {
    /// The value of `import`, for `importer` (whose hash is `importer_hash`).
    fn resolve(
        &self,
        importer: &Session,
        import: &SessionImport,
    ) -> Result<Option<SecretValue>, String>;
}

/// Checks that `exporter` exports `secret` to `importer` (by name, and by hash when the
/// export names one), and that the importer's expected hash of the exporter matches.
pub fn check_export(
    exporter: &Session,
    secret: &SecretName,
    importer: &Session,
    import: &SessionImport,
) -> Result<(), String> {
    if let Some(expected) = &import.session_hash
        && expected != &exporter.hash
    {
        return Err(format!(
            "the import expects session hash {expected}, the session's hash is {}",
            exporter.hash
        ));
    }
    let exported = exporter
        .secret(secret.as_str())
        .ok_or_else(|| format!("session {} has no secret {secret}", exporter.name))?;
    let allowed = exported
        .export
        .iter()
        .any(|e| e.session == importer.name && e.session_hash.is_none_or(|h| h == importer.hash));
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "session {} does not export {secret} to session {} (with hash {})",
            exporter.name, importer.name, importer.hash
        ))
    }
}

/// Makes the values of `session`: migrated from `previous` where the rules allow, newly
/// generated otherwise (with the keys from [`prepare`]), certificates issued, imports checked.
pub fn materialize(
    session: &Session,
    previous: Option<&SecretValues>,
    prepared: &PreparedKeys,
    imports: &dyn ImportResolver,
) -> Result<SecretValues, SecretError> {
    let mut out = SecretValues::default();
    // Imports first (they may issue our certificates), then keys and random values, then
    // certificates in an order where issuers come first.
    let mut imported = BTreeMap::new();
    for secret in &session.secrets {
        if let SecretSource::Import(import) = &secret.source {
            let value = imports
                .resolve(session, import)
                .map_err(|reason| SecretError::Import {
                    secret: secret.name.to_string(),
                    from_session: import.session.to_string(),
                    from_secret: import.secret.to_string(),
                    reason,
                })?;
            if let Some(value) = value {
                imported.insert(secret.name.as_str().to_owned(), value);
            }
        }
    }
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let now = time::OffsetDateTime::now_utc();
    for secret in &session.secrets {
        let name = secret.name.as_str();
        let previous_value = previous.and_then(|p| p.values.get(name));
        if migrates(secret, previous_value) {
            if let Some(value) = previous_value {
                out.values.insert(name.to_owned(), value.clone());
            }
            continue;
        }
        let value = match &secret.source {
            SecretSource::Generated(Generation::Ascii { size }) => SecretValue::Ascii {
                value: random_ascii(&rng, *size, name)?,
            },
            SecretSource::Generated(Generation::Binary { size }) => {
                let mut value = vec![0u8; *size as usize];
                rng.fill(&mut value).map_err(|_| SecretError::Generate {
                    secret: name.to_owned(),
                    what: "random bytes",
                    reason: "random number generator failed".into(),
                })?;
                SecretValue::Binary { value }
            }
            SecretSource::Generated(Generation::PrivateKey { key_type }) => {
                let (_, pkcs8) = prepared
                    .keys
                    .get(name)
                    .ok_or_else(|| SecretError::Reference {
                        secret: name.to_owned(),
                        reason: "its key was not prepared".into(),
                    })?;
                SecretValue::PrivateKey {
                    key_type: key_type.as_str().to_owned(),
                    pkcs8: pkcs8.to_vec(),
                }
            }
            _ => continue,
        };
        out.values.insert(name.to_owned(), value);
    }
    let certificates: Vec<(&Secret, &CertificateRequest, bool)> = session
        .secrets
        .iter()
        .filter_map(|s| match &s.source {
            SecretSource::Generated(Generation::X509(r)) => Some((s, r, false)),
            SecretSource::Generated(Generation::X509Ca(r)) => Some((s, r, true)),
            _ => None,
        })
        .collect();
    let mut pending = certificates;
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for (secret, request, ca) in pending {
            let issuer_ready = request.issuer.as_ref().is_none_or(|i| {
                out.values.contains_key(i.as_str()) || imported.contains_key(i.as_str())
            });
            if !issuer_ready {
                rest.push((secret, request, ca));
                continue;
            }
            let before = previous.and_then(|p| p.values.get(secret.name.as_str()));
            let value = issue(
                secret, request, ca, &out, &imported, prepared, before, previous, now,
            )?;
            out.values.insert(secret.name.as_str().to_owned(), value);
        }
        if rest.len() == before {
            let names: Vec<_> = rest.iter().map(|(s, _, _)| s.name.to_string()).collect();
            return Err(SecretError::Reference {
                secret: names.join(", "),
                reason: "their issuers form a cycle or are not x509-ca secrets".into(),
            });
        }
        pending = rest;
    }
    Ok(out)
}

const ASCII_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `size` characters from `[A-Za-z0-9]`, uniformly (rejection sampling), so the value is safe
/// in a command line, an environment variable and a file.
fn random_ascii(rng: &dyn SecureRandom, size: u32, secret: &str) -> Result<String, SecretError> {
    let mut out = String::with_capacity(size as usize);
    let mut buf = Zeroizing::new([0u8; 64]);
    // 248 = 4 × 62: bytes at or above it are rejected to keep the choice uniform.
    while out.len() < size as usize {
        rng.fill(buf.as_mut()).map_err(|_| SecretError::Generate {
            secret: secret.to_owned(),
            what: "random characters",
            reason: "random number generator failed".into(),
        })?;
        for &b in buf.iter() {
            if out.len() == size as usize {
                break;
            }
            if b < 248 {
                out.push(ASCII_ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

fn key_of(
    secret: &str,
    name: &str,
    out: &SecretValues,
    imported: &BTreeMap<String, SecretValue>,
) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    match out.values.get(name).or_else(|| imported.get(name)) {
        Some(SecretValue::PrivateKey { pkcs8, .. }) => Ok(Zeroizing::new(pkcs8.clone())),
        Some(SecretValue::Certificate { pkcs8, .. }) => Ok(Zeroizing::new(pkcs8.clone())),
        Some(other) => Err(SecretError::Reference {
            secret: secret.to_owned(),
            reason: format!(
                "private_key {name} is a {} secret, not a private key",
                other.kind()
            ),
        }),
        None => Err(SecretError::Reference {
            secret: secret.to_owned(),
            reason: format!(
                "private_key {name} has no key the CAS holds (only generated or imported keys can sign certificates)"
            ),
        }),
    }
}

/// Issues the certificate of `secret` as of `now`, or keeps the previous one when the secret
/// says `migrate: true` and its key and issuer did not change.
#[allow(clippy::too_many_arguments)]
fn issue(
    secret: &Secret,
    request: &CertificateRequest,
    ca: bool,
    out: &SecretValues,
    imported: &BTreeMap<String, SecretValue>,
    prepared: &PreparedKeys,
    before: Option<&SecretValue>,
    previous: Option<&SecretValues>,
    now: time::OffsetDateTime,
) -> Result<SecretValue, SecretError> {
    let name = secret.name.as_str();
    let generate_error = |e: rcgen::Error| SecretError::Generate {
        secret: name.to_owned(),
        what: "a certificate",
        reason: e.to_string(),
    };
    let pkcs8 = match &request.private_key {
        Some(key) => key_of(name, key.as_str(), out, imported)?,
        None => match (prepared.keys.get(name), migrated_ca_key(secret, before)) {
            (Some((_, pkcs8)), _) => pkcs8.clone(),
            (None, Some(pkcs8)) => Zeroizing::new(pkcs8.to_vec()),
            (None, None) => {
                return Err(SecretError::Reference {
                    secret: name.to_owned(),
                    reason: "an x509 certificate needs a private_key".into(),
                });
            }
        },
    };
    if secret.migrate
        && let Some(
            kept @ SecretValue::Certificate {
                ca: was_ca,
                pkcs8: was_key,
                ..
            },
        ) = before
        && *was_ca == ca
        && was_key.as_slice() == pkcs8.as_slice()
        && request.issuer.as_ref().is_none_or(|issuer| {
            let now = out
                .values
                .get(issuer.as_str())
                .or_else(|| imported.get(issuer.as_str()));
            let then = previous.and_then(|p| p.values.get(issuer.as_str()));
            now.is_some() && now == then
        })
    {
        return Ok(kept.clone());
    }
    let key = KeyPair::try_from(pkcs8.as_slice()).map_err(generate_error)?;
    let params = certificate_params(name, request, ca, now).map_err(generate_error)?;
    let (cert, chain) = match &request.issuer {
        None => (
            params.self_signed(&key).map_err(generate_error)?,
            Vec::new(),
        ),
        Some(issuer) => {
            let issuer_name = issuer.as_str();
            let Some(SecretValue::Certificate {
                ca: true,
                der,
                chain,
                pkcs8: issuer_pkcs8,
            }) = out
                .values
                .get(issuer_name)
                .or_else(|| imported.get(issuer_name))
            else {
                return Err(SecretError::Reference {
                    secret: name.to_owned(),
                    reason: format!("issuer {issuer_name} is not an x509-ca secret the CAS holds"),
                });
            };
            let issuer_key = KeyPair::try_from(issuer_pkcs8.as_slice()).map_err(generate_error)?;
            let issuer_der = CertificateDer::from(der.as_slice());
            let signer =
                Issuer::from_ca_cert_der(&issuer_der, &issuer_key).map_err(generate_error)?;
            let cert = params.signed_by(&key, &signer).map_err(generate_error)?;
            let mut full_chain = vec![der.clone()];
            full_chain.extend(chain.iter().cloned());
            (cert, full_chain)
        }
    };
    debug_assert_eq!(
        key.subject_public_key_info(),
        custos_ids::spki_of_certificate(cert.der())
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    );
    Ok(SecretValue::Certificate {
        ca,
        der: cert.der().to_vec(),
        chain,
        pkcs8: pkcs8.to_vec(),
    })
}

/// A DER certificate's notAfter, if it parses.
pub(crate) fn not_after(der: &[u8]) -> Option<time::OffsetDateTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    time::OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok()
}

/// `time` as `YYYY-MM-DDTHH:MM:SSZ` (UTC), for messages.
pub(crate) fn utc(time: time::OffsetDateTime) -> String {
    let t = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// 9999-12-31T23:59:59Z: RFC 5280's notAfter for "no well-defined expiration date", which is
/// what SCONE gives a certificate without `valid_for` ("virtually unlimited").
pub(crate) fn no_expiry() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(253_402_300_799).expect("a valid date")
}

/// How far before it is made a certificate's notBefore lies: a minute, so a peer whose clock
/// is slightly behind accepts it at once — but at most a tenth of `valid_for`, so that the
/// half of its validity after which the CAS renews it ([`renew`]) ends after it was made
/// (with a minute back, a certificate valid for 90 seconds would be due when made).
fn backdating(valid_for: Option<Duration>) -> Duration {
    const MINUTE: Duration = Duration::from_secs(60);
    valid_for.map_or(MINUTE, |v| (v / 10).min(MINUTE))
}

/// `time`, or the next whole second if it is not one.
fn whole_second_up(time: time::OffsetDateTime) -> Option<time::OffsetDateTime> {
    if time.nanosecond() == 0 {
        return Some(time);
    }
    time.replace_nanosecond(0)
        .ok()?
        .checked_add(time::Duration::SECOND)
}

/// The certificate `request` describes, made at `now`.
fn certificate_params(
    name: &str,
    request: &CertificateRequest,
    ca: bool,
    now: time::OffsetDateTime,
) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(request.dns.clone())?;
    params
        .subject_alt_names
        .extend(request.ip.iter().map(|ip| SanType::IpAddress(*ip)));
    // SCONE: without `common_name`, the first `dns` name, else the secret's name.
    let common_name = request
        .common_name
        .as_deref()
        .or(request.dns.first().map(String::as_str))
        .unwrap_or(name);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = now - backdating(request.valid_for);
    // Beyond 9999-12-31 (or beyond what the clock type holds) is "no expiry" as well. Rounded
    // up: a certificate holds whole seconds, and truncating could end a short one at once.
    params.not_after = request
        .valid_for
        .and_then(|d| time::Duration::try_from(d).ok())
        .and_then(|d| now.checked_add(d))
        .and_then(whole_second_up)
        .map_or_else(no_expiry, |t| t.min(no_expiry()));
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| rcgen::Error::RingUnspecified)?;
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
    } else {
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = match request.endpoint {
            Endpoint::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Endpoint::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            // As SCONE without `endpoint`: no EKU extension.
            Endpoint::Any => Vec::new(),
        };
    }
    Ok(params)
}

/// The public values of `session` (`export_public` secrets), by name: PEM public keys
/// and certificates.
pub fn public_values(
    session: &Session,
    values: &SecretValues,
) -> BTreeMap<String, (SecretKind, String)> {
    session
        .secrets
        .iter()
        .filter(|s| s.export_public)
        .filter_map(|s| {
            let value = values.values.get(s.name.as_str())?;
            Some((
                s.name.as_str().to_owned(),
                (value.kind(), value.public_pem()?),
            ))
        })
        .collect()
}

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

mod b64_list {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|b| STANDARD.encode(b)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let list = Vec::<String>::deserialize(d)?;
        list.iter()
            .map(|s| {
                STANDARD
                    .decode(s.as_bytes())
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

pub mod renew;

#[cfg(test)]
mod tests;
