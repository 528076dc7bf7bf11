//! Secret values for one attested service: only the secrets its command, environment and
//! injection files name, each from where the session says it comes from.
//!
//! - generated: the session's sealed values in the store;
//! - `value`: the text in the session (`binary` as hex, as in SCONE; keys and certificates
//!   as PEM);
//! - `import`: the exporting session's value, after checking — again, now — that it still
//!   exports the secret to this session (and hash);
//! - `import_akv` and `aad-token`: from Azure ([`super::azure`]).
//!
//! A [`Value`] is zeroized when dropped and never shown by `Debug`; errors name secrets,
//! never values.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use custos_ids::pem;
use custos_policy::placeholder::{Format, Unresolved};
use custos_policy::{Generation, Secret, SecretKind, SecretSource, Service, Session};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::renewal::NotRenewed;
use crate::secrets::{SecretValue, SecretValues, check_export};
use crate::store::ReadTx;

/// Why a secret has no value for this attestation. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// An external source (Entra ID, Key Vault) failed or refused: the start should be
    /// retried once it is fixed.
    #[error("secret {secret}: {reason}")]
    Unavailable {
        /// The secret.
        secret: String,
        /// What failed (the vault, the object, the status; never a value).
        reason: String,
    },
    /// The value exists but cannot be used as the secret's kind, or the CAS's own data is
    /// unreadable.
    #[error("secret {secret}: {reason}")]
    Invalid {
        /// The secret.
        secret: String,
        /// What is wrong.
        reason: String,
    },
}

impl ValueError {
    pub(crate) fn invalid(secret: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            secret: secret.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A secret's value.
#[derive(Clone)]
pub enum Value {
    /// `ascii` text or an `aad-token`.
    Text(Zeroizing<String>),
    /// `binary` bytes.
    Bytes(Zeroizing<Vec<u8>>),
    /// A `private-key`, PEM.
    PrivateKey(Zeroizing<String>),
    /// An `x509` or `x509-ca`: certificates PEM, leaf first, and the leaf's key PEM if known.
    Certificate {
        /// PEM `CERTIFICATE` blocks, leaf first.
        chain: Vec<String>,
        /// PEM private key.
        key: Option<Zeroizing<String>>,
    },
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text(_) => "Value::Text(redacted)",
            Self::Bytes(_) => "Value::Bytes(redacted)",
            Self::PrivateKey(_) => "Value::PrivateKey(redacted)",
            Self::Certificate { .. } => "Value::Certificate(redacted)",
        })
    }
}

impl Value {
    /// The value written as `format` for a placeholder; `kind` names the secret's kind in
    /// errors.
    pub fn render(
        &self,
        kind: SecretKind,
        format: Format,
    ) -> Result<Zeroizing<String>, Unresolved> {
        let unsupported = || Unresolved::UnsupportedFormat { kind, format };
        let encode = |bytes: &[u8]| -> Result<Zeroizing<String>, Unresolved> {
            Ok(Zeroizing::new(match format {
                Format::Hex => hex::encode(bytes),
                Format::Base64 => STANDARD.encode(bytes),
                Format::Base64Url => URL_SAFE_NO_PAD.encode(bytes),
                _ => return Err(unsupported()),
            }))
        };
        match self {
            Self::Text(text) if format == Format::Default => Ok(text.clone()),
            Self::Text(text) => encode(text.as_bytes()),
            Self::Bytes(bytes) if format == Format::Default => std::str::from_utf8(bytes)
                .map(|s| Zeroizing::new(s.to_owned()))
                .map_err(|_| {
                    Unresolved::Unavailable(
                        "the binary value is not UTF-8 text: write it with :hex, :base64 or :base64url".into(),
                    )
                }),
            Self::Bytes(bytes) => encode(bytes),
            Self::PrivateKey(key) => match format {
                Format::Default | Format::PrivateKey => Ok(key.clone()),
                _ => Err(unsupported()),
            },
            Self::Certificate { chain, key } => match format {
                Format::Default | Format::Certificate => {
                    Ok(Zeroizing::new(chain.first().cloned().unwrap_or_default()))
                }
                // SCONE: `:chain` is the issuers, first intermediate to root, without the
                // certificate; the legacy `.chain` is root first and the certificate last.
                Format::Chain => Ok(Zeroizing::new(chain[1.min(chain.len())..].concat())),
                Format::LegacyChain => {
                    Ok(Zeroizing::new(chain.iter().rev().cloned().collect()))
                }
                Format::PrivateKey => key.clone().ok_or_else(|| {
                    Unresolved::Unavailable("the certificate's private key is not known".into())
                }),
                _ => Err(unsupported()),
            },
        }
    }

    /// From a value the CAS generated.
    pub fn from_stored(value: &SecretValue) -> Self {
        match value {
            SecretValue::Ascii { value } => Self::Text(Zeroizing::new(value.clone())),
            SecretValue::Binary { value } => Self::Bytes(Zeroizing::new(value.clone())),
            SecretValue::PrivateKey { pkcs8, .. } => {
                Self::PrivateKey(pem::encode_secret("PRIVATE KEY", pkcs8))
            }
            SecretValue::Certificate {
                der, chain, pkcs8, ..
            } => Self::Certificate {
                chain: std::iter::once(der)
                    .chain(chain)
                    .map(|c| pem::encode("CERTIFICATE", c))
                    .collect(),
                key: Some(pem::encode_secret("PRIVATE KEY", pkcs8)),
            },
        }
    }

    /// From a session's `value`: as [`Value::from_text`], except that SCONE writes a
    /// `binary` value in hex (`DEADBEEF`).
    pub fn from_session_value(
        secret: &str,
        kind: SecretKind,
        text: &str,
    ) -> Result<Self, ValueError> {
        if kind != SecretKind::Binary {
            return Self::from_text(secret, kind, text);
        }
        hex::decode(text.trim())
            .map(|b| Self::Bytes(Zeroizing::new(b)))
            .map_err(|_| ValueError::invalid(secret, "a binary `value` must be hex"))
    }

    /// From text as a Key Vault secret holds it (`binary` as base64), for a secret of `kind`.
    pub fn from_text(secret: &str, kind: SecretKind, text: &str) -> Result<Self, ValueError> {
        match kind {
            SecretKind::Ascii | SecretKind::AadToken => {
                Ok(Self::Text(Zeroizing::new(text.to_owned())))
            }
            SecretKind::Binary => {
                let compact: Zeroizing<String> =
                    Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
                STANDARD
                    .decode(compact.as_bytes())
                    .or_else(|_| URL_SAFE_NO_PAD.decode(compact.trim_end_matches('=')))
                    .map(|b| Self::Bytes(Zeroizing::new(b)))
                    .map_err(|_| ValueError::invalid(secret, "a binary value must be base64"))
            }
            SecretKind::PrivateKey => private_key_pem(text.as_bytes())
                .map(Self::PrivateKey)
                .ok_or_else(|| ValueError::invalid(secret, "the value holds no PEM private key")),
            SecretKind::X509 | SecretKind::X509Ca => {
                let chain = certificates_pem(text.as_bytes());
                if chain.is_empty() {
                    return Err(ValueError::invalid(
                        secret,
                        "the value holds no PEM certificate",
                    ));
                }
                Ok(Self::Certificate {
                    chain,
                    key: private_key_pem(text.as_bytes()),
                })
            }
        }
    }
}

/// Every `CERTIFICATE` block of `pem_text`, re-encoded, in order.
pub fn certificates_pem(pem_text: &[u8]) -> Vec<String> {
    CertificateDer::pem_slice_iter(pem_text)
        .filter_map(Result::ok)
        .map(|c| pem::encode("CERTIFICATE", &c))
        .collect()
}

/// The first private key of `pem_text`, re-encoded with its label.
pub fn private_key_pem(pem_text: &[u8]) -> Option<Zeroizing<String>> {
    let key = PrivateKeyDer::from_pem_slice(pem_text).ok()?;
    let (label, der) = match &key {
        PrivateKeyDer::Pkcs8(k) => ("PRIVATE KEY", k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => ("RSA PRIVATE KEY", k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => ("EC PRIVATE KEY", k.secret_sec1_der()),
        _ => return None,
    };
    Some(pem::encode_secret(label, der))
}

/// A resolved secret: its kind, value and, for a token, when it stops being valid.
#[derive(Debug)]
pub struct Resolved {
    /// The kind (the exporter's, for an import that states none).
    pub kind: SecretKind,
    /// The value.
    pub value: Value,
    /// When a token expires (a certificate says it itself: [`Resolved::expiry`]).
    token_expiry: Option<time::OffsetDateTime>,
}

impl Resolved {
    /// `value` as `kind`.
    pub fn new(kind: SecretKind, value: Value) -> Self {
        Self {
            kind,
            value,
            token_expiry: None,
        }
    }

    /// A value that stops being valid at `expires_at` (an Entra ID token).
    pub fn expiring(kind: SecretKind, value: Value, expires_at: time::OffsetDateTime) -> Self {
        Self {
            kind,
            value,
            token_expiry: Some(expires_at),
        }
    }

    /// When the value stops being valid, if it does: a token's expiry, a certificate's
    /// notAfter (the earliest of its chain). Parsed only when asked — only supervised
    /// services are told — not at every delivery.
    pub fn expiry(&self) -> Option<time::OffsetDateTime> {
        match &self.value {
            Value::Certificate { chain, .. } => chain
                .iter()
                .flat_map(|pem| CertificateDer::pem_slice_iter(pem.as_bytes()))
                .filter_map(|der| crate::secrets::not_after(der.ok()?.as_ref()))
                .min(),
            _ => self.token_expiry,
        }
    }
}

/// The names of the secrets `service` refers to: in its command, environment and its
/// image's injection files.
pub fn referenced(session: &Session, service: &Service) -> BTreeSet<String> {
    let mut texts: Vec<&str> = Vec::new();
    if let Some(command) = &service.command {
        texts.extend(command.iter().map(String::as_str));
    }
    texts.extend(service.environment.values().map(String::as_str));
    if let Some(image) = service
        .image_name
        .as_ref()
        .and_then(|n| session.image(n.as_str()))
    {
        texts.extend(image.injection_files.iter().map(|f| f.content.as_str()));
    }
    texts
        .into_iter()
        .flat_map(custos_policy::placeholder::scan)
        .filter_map(Result::ok)
        .map(|p| p.secret.as_str().to_owned())
        .collect()
}

/// What must be fetched from Azure: a secret read by `import_akv`, or an `aad-token`.
#[derive(Debug, Clone, Copy)]
pub struct AzurePending<'s> {
    /// The secret.
    pub secret: &'s Secret,
}

/// Resolves the secrets of `session` named in `names` that live in the CAS: generated,
/// literal and imported ones. Returns them, and the ones that need Azure. `not_renewed` says
/// why due certificates were not renewed, for the refusal of an expired one.
pub fn resolve_local<'s>(
    session: &'s Session,
    names: &BTreeSet<String>,
    read: &ReadTx<'_>,
    not_renewed: &NotRenewed,
) -> Result<(BTreeMap<String, Resolved>, Vec<AzurePending<'s>>), ValueError> {
    let mut stored: Option<SecretValues> = None;
    let mut out = BTreeMap::new();
    let mut pending = Vec::new();
    for name in names {
        let secret = session
            .secret(name)
            .ok_or_else(|| ValueError::invalid(name, "the session has no such secret"))?;
        match &secret.source {
            SecretSource::Generated(Generation::AadToken(_)) | SecretSource::ImportAkv(_) => {
                pending.push(AzurePending { secret });
            }
            _ => {
                let resolved = generated_or_local(session, secret, read, &mut stored, not_renewed)?;
                out.insert(name.clone(), resolved);
            }
        }
    }
    Ok((out, pending))
}

/// The value of a secret kept in the CAS (generated, literal, imported).
pub fn local_value(
    session: &Session,
    secret: &Secret,
    read: &ReadTx<'_>,
    stored: &mut Option<SecretValues>,
) -> Result<Resolved, ValueError> {
    generated_or_local(session, secret, read, stored, &NotRenewed::default())
}

/// [`local_value`], knowing why due certificates of `session` were not renewed.
fn generated_or_local(
    session: &Session,
    secret: &Secret,
    read: &ReadTx<'_>,
    stored: &mut Option<SecretValues>,
    not_renewed: &NotRenewed,
) -> Result<Resolved, ValueError> {
    let name = secret.name.as_str();
    let kind = secret.kind;
    match &secret.source {
        SecretSource::Generated(Generation::AadToken(_)) | SecretSource::ImportAkv(_) => Err(
            ValueError::invalid(name, "its value comes from Azure, not from the CAS"),
        ),
        SecretSource::Value(text) => {
            let kind = kind.unwrap_or(SecretKind::Ascii);
            let value = Value::from_session_value(name, kind, text.expose_secret())?;
            Ok(Resolved::new(kind, value))
        }
        SecretSource::Generated(_) => {
            if stored.is_none() {
                *stored = Some(session_values(read, session.name.as_str(), name)?);
            }
            let value = stored
                .as_ref()
                .and_then(|v| v.values.get(name))
                .ok_or_else(|| {
                    ValueError::invalid(name, "the CAS holds no generated value for it")
                })?;
            refuse_expired(
                name,
                value,
                time::OffsetDateTime::now_utc(),
                not_renewed.why(name),
            )?;
            Ok(Resolved::new(value.kind(), Value::from_stored(value)))
        }
        SecretSource::Import(import) => {
            let from = import.session.as_str();
            let fail = |reason: String| {
                ValueError::invalid(
                    name,
                    format!(
                        "cannot import {} from session {from}: {reason}",
                        import.secret
                    ),
                )
            };
            let record = read
                .session(from)
                .map_err(|e| fail(e.to_string()))?
                .ok_or_else(|| fail(format!("session {from} does not exist")))?;
            let exporter = custos_policy::parse(&record.name, &record.text)
                .map_err(|_| fail(format!("the stored session {from} does not parse")))?;
            check_export(&exporter, &import.secret, session, import).map_err(fail)?;
            let exported = exporter
                .secret(import.secret.as_str())
                .ok_or_else(|| fail("no such secret".into()))?;
            match &exported.source {
                SecretSource::Generated(Generation::AadToken(_))
                | SecretSource::ImportAkv(_)
                | SecretSource::Import(_) => Err(fail(
                    "only values the exporting session generates or states can be imported (import Key Vault secrets and tokens in this session)".into(),
                )),
                _ => {
                    let mut exporter_values = None;
                    local_value(&exporter, exported, read, &mut exporter_values)
                }
            }
        }
    }
}

/// Refuses a generated certificate (or one of its issuers) whose notAfter has passed. The
/// CAS renews a certificate before delivering it once half of its validity has passed
/// (`super::renewal`), so this is the last line of defence: the renewal failed (`not_renewed`
/// says why), or was not the attested session's to make (an issuer or a value imported from
/// another session). An expired certificate is never delivered silently.
fn refuse_expired(
    name: &str,
    value: &SecretValue,
    now: time::OffsetDateTime,
    not_renewed: Option<&str>,
) -> Result<(), ValueError> {
    let SecretValue::Certificate { der, chain, .. } = value else {
        return Ok(());
    };
    for (i, cert) in std::iter::once(der).chain(chain).enumerate() {
        let not_after = crate::secrets::not_after(cert)
            .ok_or_else(|| ValueError::invalid(name, "a stored certificate does not parse"))?;
        if not_after < now {
            let which = if i == 0 {
                "the generated certificate".to_owned()
            } else {
                format!("its issuer certificate {i} (1 = the direct issuer)")
            };
            let why = match not_renewed {
                Some(reason) => format!("renewing it failed: {reason}"),
                None => "it was not renewed: the CAS renews a generated certificate when a service of its own session that refers to it attests".to_owned(),
            };
            return Err(ValueError::invalid(
                name,
                format!(
                    "{which} expired: notAfter {}, now {}; {why}",
                    crate::secrets::utc(not_after),
                    crate::secrets::utc(now)
                ),
            ));
        }
    }
    Ok(())
}

fn session_values(
    read: &ReadTx<'_>,
    session: &str,
    secret: &str,
) -> Result<SecretValues, ValueError> {
    match read
        .secrets(session)
        .map_err(|e| ValueError::invalid(secret, e.to_string()))?
    {
        Some(bytes) => {
            SecretValues::from_bytes(&bytes).map_err(|e| ValueError::invalid(secret, e.to_string()))
        }
        None => Ok(SecretValues::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(Zeroizing::new(s.into()))
    }

    #[test]
    fn formats_write_each_kind_as_documented() {
        let v = text("hi");
        let r = |v: &Value, k, f| v.render(k, f).map(|s| s.to_string());
        assert_eq!(r(&v, SecretKind::Ascii, Format::Default).unwrap(), "hi");
        assert_eq!(r(&v, SecretKind::Ascii, Format::Hex).unwrap(), "6869");
        assert_eq!(r(&v, SecretKind::Ascii, Format::Base64).unwrap(), "aGk=");
        assert!(matches!(
            r(&v, SecretKind::Ascii, Format::Chain),
            Err(Unresolved::UnsupportedFormat { .. })
        ));
        let b = Value::Bytes(Zeroizing::new(vec![0xff, 0xfe]));
        assert_eq!(r(&b, SecretKind::Binary, Format::Base64Url).unwrap(), "__4");
        let error = r(&b, SecretKind::Binary, Format::Default).unwrap_err();
        assert!(error.to_string().contains("not UTF-8"), "{error}");
        let c = Value::Certificate {
            chain: vec!["LEAF\n".into(), "INT\n".into(), "ROOT\n".into()],
            key: None,
        };
        assert_eq!(r(&c, SecretKind::X509, Format::Default).unwrap(), "LEAF\n");
        // SCONE's orders: `:chain` without the leaf, `.chain` root first and leaf last.
        assert_eq!(
            r(&c, SecretKind::X509, Format::Chain).unwrap(),
            "INT\nROOT\n"
        );
        assert_eq!(
            r(&c, SecretKind::X509, Format::LegacyChain).unwrap(),
            "ROOT\nINT\nLEAF\n"
        );
        assert!(
            r(&c, SecretKind::X509, Format::PrivateKey)
                .unwrap_err()
                .to_string()
                .contains("private key is not known")
        );
    }

    #[test]
    fn literal_values_are_parsed_by_kind_and_errors_show_no_value() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let both = format!("{}{}", cert.pem(), key.serialize_pem());
        let Value::Certificate { chain, key: k } =
            Value::from_text("C", SecretKind::X509, &both).unwrap()
        else {
            panic!("a certificate")
        };
        assert_eq!(chain.len(), 1);
        assert!(k.unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
        let Value::Bytes(bytes) = Value::from_text("B", SecretKind::Binary, "AAEC\n").unwrap()
        else {
            panic!("bytes")
        };
        assert_eq!(bytes.as_slice(), &[0, 1, 2]);
        let error = Value::from_text("B", SecretKind::Binary, "not base64 SECRET!")
            .unwrap_err()
            .to_string();
        assert_eq!(error, "secret B: a binary value must be base64");
        let error = Value::from_text("K", SecretKind::PrivateKey, "SECRET")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("SECRET"), "{error}");
    }

    #[test]
    fn an_expired_generated_certificate_is_refused_with_its_dates() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a".into()]).unwrap();
        let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        params.not_before = now - std::time::Duration::from_secs(7200);
        params.not_after = now - std::time::Duration::from_secs(3600);
        let cert = params.self_signed(&key).unwrap();
        let value = SecretValue::Certificate {
            ca: false,
            der: cert.der().to_vec(),
            chain: Vec::new(),
            pkcs8: key.serialize_der(),
        };
        let why = "session ns/app changed while the service attested: expected hash 1f, found 2e";
        let error = refuse_expired("TLS", &value, now, Some(why))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!(
                "secret TLS: the generated certificate expired: notAfter 2027-01-15T07:00:00Z, now 2027-01-15T08:00:00Z; renewing it failed: {why}"
            )
        );
        let error = refuse_expired("TLS", &value, now, None)
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with("; it was not renewed: the CAS renews a generated certificate when a service of its own session that refers to it attests"),
            "{error}"
        );
        let earlier = now - std::time::Duration::from_secs(7000);
        assert!(refuse_expired("TLS", &value, earlier, Some(why)).is_ok());
    }

    #[test]
    fn a_binary_session_value_is_hex_as_in_scone() {
        // 64 hex digits are also valid base64: read as base64 they would be 48 other bytes.
        let hex_text = "00".repeat(31) + "ff";
        let Value::Bytes(bytes) =
            Value::from_session_value("B", SecretKind::Binary, &hex_text).unwrap()
        else {
            panic!("bytes")
        };
        assert_eq!(bytes.len(), 32);
        assert_eq!(bytes[31], 0xff);
        let Value::Bytes(bytes) =
            Value::from_session_value("B", SecretKind::Binary, "DEADBEEF\n").unwrap()
        else {
            panic!("bytes")
        };
        assert_eq!(bytes.as_slice(), &[0xde, 0xad, 0xbe, 0xef]);
        let error = Value::from_session_value("B", SecretKind::Binary, "3q2+7w==")
            .unwrap_err()
            .to_string();
        assert_eq!(error, "secret B: a binary `value` must be hex");
    }

    #[test]
    fn debug_never_shows_a_value() {
        let v = text("hunter2");
        assert!(!format!("{v:?}").contains("hunter2"));
    }
}
