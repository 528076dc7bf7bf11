//! `secrets`: kinds, sources (generated, `value`, `import_akv`, `import`), export.

use std::collections::HashMap;

use secrecy::SecretString;

use super::reader::{Field, Fields, Item, shorten};
use super::{Decoder, SecretInfo, values};
use crate::diagnostic::{Position, Problem};
use crate::ids::{CertificateThumbprint, SessionHash};
use crate::model::{
    AadCredential, AadTokenRequest, AkvImport, CertificateRequest, DEFAULT_AAD_SCOPE,
    DEFAULT_SECRET_SIZE, Endpoint, Generation, KeyType, MAX_SECRET_SIZE, Secret, SecretExport,
    SecretKind, SecretSource, SessionImport,
};
use crate::names::{SecretName, SessionName};
use crate::yaml::Value;

const SECRET_KEYS: &[&str] = &[
    "name",
    "kind",
    "value",
    "import_akv",
    "import",
    "export",
    "export_public",
    "migrate",
    "size",
    "key_type",
    "private_key",
    "issuer",
    "common_name",
    "dns",
    "san",
    "valid_for",
    "endpoint",
    "renew_key",
    "tenant_id",
    "client_id",
    "application_secret",
    "certificate_thumbprint",
    "scope",
];

/// Fields that describe how the CAS makes a secret, and the kinds they belong to.
const GENERATION_FIELDS: &[(&str, &[SecretKind])] = {
    use SecretKind::*;
    &[
        ("size", &[Ascii, Binary]),
        ("key_type", &[PrivateKey]),
        ("private_key", &[X509, X509Ca, AadToken]),
        ("issuer", &[X509, X509Ca]),
        ("common_name", &[X509, X509Ca]),
        ("dns", &[X509, X509Ca]),
        ("san", &[X509, X509Ca]),
        ("valid_for", &[X509, X509Ca]),
        ("endpoint", &[X509, X509Ca]),
        ("renew_key", &[X509, X509Ca]),
        ("tenant_id", &[AadToken]),
        ("client_id", &[AadToken]),
        ("application_secret", &[AadToken]),
        ("certificate_thumbprint", &[AadToken]),
        ("scope", &[AadToken]),
    ]
};

const AKV_KEYS: &[&str] = &["vault", "secret_name", "version", "token"];
const IMPORT_KEYS: &[&str] = &["session", "secret", "session_hash"];
const EXPORT_KEYS: &[&str] = &["session", "session_hash"];

/// Which of `value`, `import_akv`, `import` a secret uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Generated,
    Value,
    ImportAkv,
    Import,
}

impl Origin {
    fn key(self) -> &'static str {
        match self {
            Origin::Generated => "(generated)",
            Origin::Value => "value",
            Origin::ImportAkv => "import_akv",
            Origin::Import => "import",
        }
    }
}

impl<'n> Decoder<'n> {
    /// Learns every secret's name and kind before anything refers to them, and reports
    /// repeated names.
    pub(super) fn prescan_secrets(&mut self, items: &[Item<'n>]) {
        let mut first_at: HashMap<&str, Position> = HashMap::new();
        for item in items {
            let Value::Map(entries) = &item.node.value else {
                continue;
            };
            let scalar = |key: &str| {
                entries
                    .iter()
                    .find_map(|(k, v)| match (&k.value, &v.value) {
                        (Value::Scalar(k), Value::Scalar(text)) if k == key => {
                            Some((text.as_str(), v))
                        }
                        _ => None,
                    })
            };
            let Some((name, name_node)) = scalar("name") else {
                continue;
            };
            if name.parse::<SecretName>().is_err() {
                continue;
            }
            if let Some(first) = first_at.insert(name, name_node.at) {
                self.r.report(
                    name_node.at,
                    &item.path.key("name"),
                    Problem::DuplicateName,
                    format!(
                        "a secret named `{name}` is already defined at line {}",
                        first.line
                    ),
                );
                continue;
            }
            let kind = scalar("kind").and_then(|(k, _)| SecretKind::from_keyword(k));
            let generated = !entries.iter().any(|(k, _)| {
                matches!(&k.value, Value::Scalar(k) if ["value", "import_akv", "import"].contains(&k.as_str()))
            });
            let key_type = match scalar("key_type") {
                Some((k, _)) => KeyType::from_keyword(k),
                None if generated && kind == Some(SecretKind::PrivateKey) => Some(KeyType::P256),
                None => None,
            };
            if kind == Some(SecretKind::AadToken) {
                self.aad_tokens.push(name);
            }
            self.secrets.insert(name, SecretInfo { kind, key_type });
        }
    }

    pub(super) fn secret(&mut self, f: Field<'n, '_>) -> Option<Secret> {
        let fields = self.r.fields(f, SECRET_KEYS, &[])?;
        let errors_before = self.errors();

        let name = self
            .r
            .required(&fields, "name", "the secret's name")
            .and_then(|i| self.r.parsed::<SecretName>(i.field(), "a secret name"));

        let origins: Vec<Origin> = [Origin::Value, Origin::ImportAkv, Origin::Import]
            .into_iter()
            .filter(|o| fields.has(o.key()))
            .collect();
        let origin = match origins.as_slice() {
            [] => Origin::Generated,
            [one] => *one,
            [_, second, ..] => {
                let item = fields.get(second.key()).expect("present");
                self.r.report(
                    item.key_or_value_at(),
                    &item.path,
                    Problem::Conflict,
                    format!(
                        "a secret takes its value from one place: found {}",
                        origins
                            .iter()
                            .map(|o| format!("`{}`", o.key()))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                );
                return None;
            }
        };

        let kind = match fields.get("kind") {
            Some(item) => self.r.keyword(
                item.field(),
                "secret kind",
                SecretKind::from_keyword,
                SecretKind::KEYWORDS,
            ),
            None if origin == Origin::Import => None,
            None => {
                self.r.required(
                    &fields,
                    "kind",
                    "one of ascii, binary, private-key, x509, x509-ca, aad-token",
                );
                return None;
            }
        };
        if fields.has("kind") && kind.is_none() {
            return None; // reported; nothing else can be checked without the kind
        }

        self.check_field_kinds(&fields, kind, origin);

        let source = match origin {
            Origin::Generated => kind
                .and_then(|k| self.generation(&fields, k))
                .map(SecretSource::Generated),
            Origin::Value => self.value(&fields, kind).map(SecretSource::Value),
            Origin::ImportAkv => {
                let item = fields.get("import_akv").expect("present");
                self.import_akv(item.field(), kind, name.as_ref())
                    .map(SecretSource::ImportAkv)
            }
            Origin::Import => {
                let item = fields.get("import").expect("present");
                self.import(item.field(), name.as_ref())
                    .map(SecretSource::Import)
            }
        };
        if kind == Some(SecretKind::AadToken) && origin != Origin::Generated {
            let item = fields.get(origin.key()).expect("present");
            self.r.report(
                item.key_or_value_at(),
                &item.path,
                Problem::Conflict,
                format!(
                    "an aad-token is always fetched from Entra ID by the CAS; `{}` does not apply",
                    origin.key()
                ),
            );
        }

        let export = match fields.get("export") {
            Some(item) => self.exports(item.field()),
            None => Some(Vec::new()),
        };
        let export_public = match fields.get("export_public") {
            Some(item) => {
                let f = item.field();
                let public = self.r.boolean(f);
                if public == Some(true)
                    && let Some(k) = kind
                    && !matches!(
                        k,
                        SecretKind::PrivateKey | SecretKind::X509 | SecretKind::X509Ca
                    )
                {
                    self.r.report(
                        f.key_or_value_at(),
                        f.path,
                        Problem::Conflict,
                        format!(
                            "`export_public` publishes a public part (certificate or public key); {} {k} secret has none, and publishing it would disclose the secret",
                            super::article(k.as_str())
                        ),
                    );
                }
                public
            }
            None => Some(false),
        };

        let migrate = match fields.get("migrate") {
            Some(item) => {
                let f = item.field();
                let migrate = self.r.boolean(f);
                if migrate == Some(true) && origin != Origin::Generated {
                    self.r.report(
                        f.key_or_value_at(),
                        f.path,
                        Problem::Conflict,
                        format!(
                            "`migrate` keeps a generated value across updates; this secret comes from `{}`",
                            origin.key()
                        ),
                    );
                }
                migrate
            }
            None => Some(false),
        };

        if self.errors() > errors_before {
            return None;
        }
        Some(Secret {
            name: name?,
            kind,
            source: source?,
            export: export?,
            export_public: export_public?,
            migrate: migrate?,
        })
    }

    fn errors(&self) -> usize {
        self.r.sink.len()
    }

    /// Reports generation fields that do not belong to the kind, or that are used with a
    /// value that is not generated.
    fn check_field_kinds(&mut self, fields: &Fields<'_>, kind: Option<SecretKind>, origin: Origin) {
        for (key, kinds) in GENERATION_FIELDS {
            let Some(item) = fields.get(key) else {
                continue;
            };
            if let Some(kind) = kind
                && !kinds.contains(&kind)
            {
                let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                self.r.report(
                    item.key_or_value_at(),
                    &item.path,
                    Problem::Conflict,
                    format!(
                        "`{key}` does not apply to {} {kind} secret (only to {})",
                        super::article(kind.as_str()),
                        names.join(", ")
                    ),
                );
            } else if origin != Origin::Generated && kind != Some(SecretKind::AadToken) {
                self.r.report(
                    item.key_or_value_at(),
                    &item.path,
                    Problem::Conflict,
                    format!(
                        "`{key}` describes a secret the CAS generates; this one comes from `{}`",
                        origin.key()
                    ),
                );
            }
        }
    }

    fn generation(&mut self, fields: &Fields<'n>, kind: SecretKind) -> Option<Generation> {
        let size = |d: &mut Self| match fields.get("size") {
            Some(item) => {
                d.r.integer(item.field(), 1, u64::from(MAX_SECRET_SIZE))
                    .map(|n| n as u32)
            }
            None => Some(DEFAULT_SECRET_SIZE),
        };
        match kind {
            SecretKind::Ascii => size(self).map(|size| Generation::Ascii { size }),
            SecretKind::Binary => size(self).map(|size| Generation::Binary { size }),
            SecretKind::PrivateKey => {
                let key_type = match fields.get("key_type") {
                    Some(item) => self.r.keyword(
                        item.field(),
                        "key type",
                        KeyType::from_keyword,
                        KeyType::KEYWORDS,
                    )?,
                    None => KeyType::P256,
                };
                Some(Generation::PrivateKey { key_type })
            }
            SecretKind::X509 => self.certificate_request(fields, true).map(Generation::X509),
            SecretKind::X509Ca => self
                .certificate_request(fields, false)
                .map(Generation::X509Ca),
            SecretKind::AadToken => self.aad_token(fields).map(Generation::AadToken),
        }
    }

    fn certificate_request(
        &mut self,
        fields: &Fields<'n>,
        key_required: bool,
    ) -> Option<CertificateRequest> {
        let mut ok = true;
        let private_key = match fields.get("private_key") {
            Some(item) => {
                let r = self.secret_ref(
                    item.field(),
                    "a certificate's `private_key`",
                    &[SecretKind::PrivateKey],
                    false,
                );
                ok &= r.is_some();
                r
            }
            None if key_required => {
                self.r.required(
                    fields,
                    "private_key",
                    "the private-key secret whose key the generated x509 certificate certifies",
                );
                ok = false;
                None
            }
            None => None,
        };
        let issuer = match fields.get("issuer") {
            Some(item) => {
                let r = self.secret_ref(item.field(), "`issuer`", &[SecretKind::X509Ca], false);
                ok &= r.is_some();
                r
            }
            None => None,
        };
        let common_name = match fields.get("common_name") {
            Some(item) => {
                let r = self.r.nonempty_text(item.field()).map(str::to_owned);
                ok &= r.is_some();
                r
            }
            None => None,
        };
        let mut dns = Vec::new();
        if let Some(item) = fields.get("dns") {
            for name in self.r.one_or_list(item.field()) {
                match self.r.text(name.field()) {
                    Some(text) => match values::dns_name(text) {
                        Ok(()) => dns.push(text.to_owned()),
                        Err(e) => {
                            self.r.invalid(name.field(), e);
                            ok = false;
                        }
                    },
                    None => ok = false,
                }
            }
        }
        let mut ip = Vec::new();
        if let Some(item) = fields.get("san") {
            for entry in self.r.one_or_list(item.field()) {
                let f = entry.field();
                let Some(text) = self.r.text(f) else {
                    ok = false;
                    continue;
                };
                // SCONE writes `dns:…` and `ip:…`; `DNS:`/`IP:` (OpenSSL's spelling) too.
                let prefixed = |prefix: &str| {
                    text.get(..prefix.len())
                        .filter(|p| p.eq_ignore_ascii_case(prefix))
                        .map(|_| &text[prefix.len()..])
                };
                let (explicit_ip, address) = match prefixed("ip:") {
                    Some(a) => (true, a),
                    None => (false, text),
                };
                if let Ok(addr) = address.parse::<std::net::IpAddr>() {
                    ip.push(addr);
                    continue;
                }
                if explicit_ip {
                    self.r
                        .invalid(f, format!("`{}` is not an IP address", shorten(text)));
                    ok = false;
                    continue;
                }
                let name = prefixed("dns:").unwrap_or(text);
                match values::dns_name(name) {
                    Ok(()) => dns.push(name.to_owned()),
                    Err(e) => {
                        self.r.invalid(
                            f,
                            format!(
                                "{e}; `san` entries are DNS names or IP addresses (`dns:…`, `ip:…`)"
                            ),
                        );
                        ok = false;
                    }
                }
            }
        }
        let valid_for = match fields.get("valid_for") {
            Some(item) => {
                let d = self.r.duration(item.field());
                ok &= d.is_some();
                d
            }
            None => None,
        };
        let endpoint = match fields.get("endpoint") {
            Some(item) => self
                .r
                .keyword(
                    item.field(),
                    "endpoint",
                    Endpoint::from_keyword,
                    Endpoint::KEYWORDS,
                )
                .unwrap_or_else(|| {
                    ok = false;
                    Endpoint::Any
                }),
            None => Endpoint::Any,
        };
        let renew_key = match fields.get("renew_key") {
            Some(item) => {
                let f = item.field();
                let renew_key = self.r.boolean(f);
                // A key named by `private_key` belongs to that secret (other certificates or
                // tokens may use it too): renewing it here would change it under them.
                if renew_key == Some(true)
                    && let Some(key) = &private_key
                {
                    self.r.report(
                        f.key_or_value_at(),
                        f.path,
                        Problem::Conflict,
                        format!(
                            "`renew_key: true` gives the certificate a new key when it is renewed, but its key belongs to the secret `{key}` (`private_key`): only a certificate whose key the CAS makes for it (an x509-ca without `private_key`) can renew its key"
                        ),
                    );
                }
                ok &= renew_key.is_some();
                renew_key.unwrap_or(false)
            }
            None => false,
        };
        ok.then_some(CertificateRequest {
            private_key,
            issuer,
            common_name,
            dns,
            ip,
            valid_for,
            endpoint,
            renew_key,
        })
    }

    fn aad_token(&mut self, fields: &Fields<'n>) -> Option<AadTokenRequest> {
        let mut ok = true;
        let id = |d: &mut Self, key: &str, what: &str| -> Option<String> {
            let item = d.r.required(fields, key, what)?;
            let text = d.r.nonempty_text(item.field())?;
            if text
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
            {
                d.r.invalid(
                    item.field(),
                    format!(
                        "`{}` is not an Entra ID {what} (letters, digits, `-`, `.`)",
                        shorten(text)
                    ),
                );
                return None;
            }
            Some(text.to_owned())
        };
        let tenant_id = id(self, "tenant_id", "directory (tenant) id");
        let client_id = id(self, "client_id", "application (client) id");
        ok &= tenant_id.is_some() && client_id.is_some();

        let credential = match (fields.get("application_secret"), fields.get("private_key")) {
            (Some(secret), None) => {
                if let Some(t) = fields.get("certificate_thumbprint") {
                    self.r.report(
                        t.key_or_value_at(),
                        &t.path,
                        Problem::Conflict,
                        "`certificate_thumbprint` goes with `private_key`, not with `application_secret`",
                    );
                    ok = false;
                }
                // Never echo the value: only its shape is checked.
                match &secret.node.value {
                    Value::Scalar(s) if !s.is_empty() => Some(AadCredential::ApplicationSecret(
                        SecretString::from(s.as_str()),
                    )),
                    Value::Scalar(_) => {
                        self.r.invalid(secret.field(), "must not be empty");
                        None
                    }
                    _ => {
                        self.r.wrong_type(secret.field(), "a string");
                        None
                    }
                }
            }
            (None, Some(key)) => self.aad_certificate(fields, &key),
            (Some(_), Some(key)) => {
                self.r.report(
                    key.key_or_value_at(),
                    &key.path,
                    Problem::Conflict,
                    "an application authenticates with `application_secret` or with `private_key`, not both",
                );
                None
            }
            (None, None) => {
                self.r.report(
                    fields.at,
                    &fields.path.key("application_secret"),
                    Problem::Missing,
                    "an aad-token needs the application's credential: `application_secret`, or `private_key` (and `certificate_thumbprint`)",
                );
                None
            }
        };
        let scope = match fields.get("scope") {
            Some(item) => self.r.nonempty_text(item.field()).map(str::to_owned),
            None => Some(DEFAULT_AAD_SCOPE.to_owned()),
        };
        if !ok {
            return None;
        }
        Some(AadTokenRequest {
            tenant_id: tenant_id?,
            client_id: client_id?,
            credential: credential?,
            scope: scope?,
        })
    }

    fn aad_certificate(&mut self, fields: &Fields<'n>, key: &Item<'_>) -> Option<AadCredential> {
        // SCONE's `private_key` is the PEM key itself. Custos signs the client assertion with
        // a certificate it holds, so it takes an x509 secret; the PEM is refused, unquoted.
        if matches!(&key.node.value, Value::Scalar(text) if text.contains("-----BEGIN")) {
            self.r.report(
                key.key_or_value_at(),
                &key.path,
                Problem::InvalidValue,
                "an inline PEM private key (SCONE's form) is not supported: put the key and the certificate registered with Entra ID into an `x509` secret (`value: <certificate PEM + key PEM>`) and name that secret here",
            );
            return None;
        }
        let private_key = self.secret_ref(
            key.field(),
            "an aad-token's `private_key`",
            &[SecretKind::PrivateKey, SecretKind::X509],
            false,
        )?;
        let info = self.secrets.get(private_key.as_str()).copied();
        if let Some(SecretInfo {
            key_type: Some(t), ..
        }) = info
            && !t.is_rsa()
        {
            self.r.report(
                key.key_or_value_at(),
                &key.path,
                Problem::Conflict,
                format!(
                    "`{private_key}` is a {t} key, but Entra ID client assertions are signed with RSA (RSA-2048 or RSA-3072)"
                ),
            );
            return None;
        }
        if info.and_then(|i| i.kind) == Some(SecretKind::PrivateKey) {
            // The assertion's header carries the certificate's thumbprint and the CAS checks
            // it against the certificate: a bare key has none, and fails at every start.
            self.r.report(
                key.key_or_value_at(),
                &key.path,
                Problem::Conflict,
                format!(
                    "`{private_key}` is a bare private key: Custos authenticates to Entra ID with a certificate and its key, so name an `x509` secret (with `private_key: {private_key}`) holding the certificate registered with Entra ID"
                ),
            );
            return None;
        }
        let thumbprint = match fields.get("certificate_thumbprint") {
            Some(item) => Some(self.r.parsed::<CertificateThumbprint>(
                item.field(),
                "a certificate thumbprint (SHA-1 or SHA-256, hex)",
            )?),
            None => None,
        };
        Some(AadCredential::Certificate {
            private_key,
            certificate_thumbprint: thumbprint,
        })
    }

    /// An explicit `value`, checked for its kind's shape without quoting it.
    fn value(&mut self, fields: &Fields<'n>, kind: Option<SecretKind>) -> Option<SecretString> {
        let item = fields.get("value").expect("present");
        let f = item.field();
        let text = match &f.node.value {
            Value::Scalar(s) => s.as_str(),
            _ => {
                self.r.wrong_type(f, "a string");
                return None;
            }
        };
        let problem = match kind {
            Some(SecretKind::Binary) if hex::decode(text.trim()).is_err() => Some(
                "a binary `value` is written in hex, as in SCONE (`DEADBEEF`: an even number of hex digits)"
                    .to_owned(),
            ),
            Some(SecretKind::X509 | SecretKind::X509Ca) => values::certificates(text)
                .err()
                .map(|e| format!("an x509 `value` holds PEM certificates: {e}")),
            Some(SecretKind::PrivateKey)
                if !(text.contains("-----BEGIN") && text.contains("PRIVATE KEY-----")) =>
            {
                Some(
                    "a private-key `value` is a PEM private key (`-----BEGIN PRIVATE KEY-----`)"
                        .to_owned(),
                )
            }
            _ if text.is_empty() => Some("must not be empty".to_owned()),
            _ => None,
        };
        if let Some(problem) = problem {
            self.r.invalid(f, problem);
            return None;
        }
        Some(SecretString::from(text))
    }

    fn import_akv(
        &mut self,
        f: Field<'_, '_>,
        kind: Option<SecretKind>,
        name: Option<&SecretName>,
    ) -> Option<AkvImport> {
        let fields = self.r.fields(f, AKV_KEYS, &[])?;
        let mut ok = true;
        let vault = self
            .r
            .required(
                &fields,
                "vault",
                "the Key Vault (`https://NAME.vault.azure.net` or its host)",
            )
            .and_then(|item| {
                let text = self.r.text(item.field())?;
                values::vault_url(text)
                    .map_err(|e| self.r.invalid(item.field(), e))
                    .ok()
            });
        ok &= vault.is_some();

        let secret_name = match fields.get("secret_name") {
            Some(item) => self.r.text(item.field()).and_then(|text| {
                if akv_name(text) {
                    Some(text.to_owned())
                } else {
                    self.r.invalid(
                        item.field(),
                        format!(
                            "`{}` is not a Key Vault secret name (1-127 of A-Z a-z 0-9 -)",
                            shorten(text)
                        ),
                    );
                    None
                }
            }),
            None => match name {
                Some(n) if akv_name(n.as_str()) => Some(n.as_str().to_owned()),
                Some(n) => {
                    self.r.report(
                        fields.at,
                        &fields.path.key("secret_name"),
                        Problem::Missing,
                        format!(
                            "`secret_name` defaults to the secret's name, but `{n}` is not a Key Vault name (1-127 of A-Z a-z 0-9 -): set `secret_name`"
                        ),
                    );
                    None
                }
                None => None,
            },
        };
        ok &= secret_name.is_some();

        let version = match fields.get("version") {
            Some(item) => {
                let v = self.r.text(item.field()).and_then(|text| {
                    if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                        Some(text.to_owned())
                    } else {
                        self.r.invalid(
                            item.field(),
                            format!(
                                "`{}` is not a Key Vault secret version (32 hex digits)",
                                shorten(text)
                            ),
                        );
                        None
                    }
                });
                ok &= v.is_some();
                v
            }
            None => None,
        };

        let token = match fields.get("token") {
            Some(item) => self.secret_ref(
                item.field(),
                "`import_akv.token`",
                &[SecretKind::AadToken],
                true,
            ),
            None => match self.aad_tokens.as_slice() {
                [one] => Some(one.parse::<SecretName>().expect("pre-scanned name")),
                [] => {
                    self.r.report(
                        fields.at,
                        &fields.path.key("token"),
                        Problem::Missing,
                        "importing from Key Vault needs an aad-token secret to authenticate, and this session has none",
                    );
                    None
                }
                many => {
                    self.r.report(
                        fields.at,
                        &fields.path.key("token"),
                        Problem::Missing,
                        format!(
                            "this session has {} aad-token secrets ({}): name one in `token: $$SCONE::NAME$$`",
                            many.len(),
                            many.join(", ")
                        ),
                    );
                    None
                }
            },
        };
        ok &= token.is_some();

        if kind == Some(SecretKind::AadToken) {
            // Reported by the caller.
            return None;
        }
        if !ok {
            return None;
        }
        Some(AkvImport {
            vault: vault?,
            secret_name: secret_name?,
            version,
            token: token?,
        })
    }

    fn import(&mut self, f: Field<'_, '_>, name: Option<&SecretName>) -> Option<SessionImport> {
        let fields = self.r.fields(f, IMPORT_KEYS, &[])?;
        let session = self
            .r
            .required(
                &fields,
                "session",
                "the name of the session that exports the secret",
            )
            .and_then(|i| self.r.parsed::<SessionName>(i.field(), "a session name"));
        let secret = match fields.get("secret") {
            Some(i) => self.r.parsed::<SecretName>(i.field(), "a secret name"),
            None => name.cloned(),
        };
        let session_hash = match fields.get("session_hash") {
            Some(i) => Some(self.r.parsed::<SessionHash>(i.field(), "a session hash")),
            None => None,
        };
        Some(SessionImport {
            session: session?,
            secret: secret?,
            session_hash: match session_hash {
                Some(h) => Some(h?),
                None => None,
            },
        })
    }

    fn exports(&mut self, f: Field<'_, '_>) -> Option<Vec<SecretExport>> {
        let mut exports = Vec::new();
        let mut ok = true;
        for item in self.r.one_or_list(f) {
            let f = item.field();
            let export = if let Value::Scalar(_) = &f.node.value {
                self.r
                    .parsed::<SessionName>(f, "a session name")
                    .map(|session| SecretExport {
                        session,
                        session_hash: None,
                    })
            } else {
                self.export(f)
            };
            match export {
                Some(e) => exports.push(e),
                None => ok = false,
            }
        }
        ok.then_some(exports)
    }

    fn export(&mut self, f: Field<'_, '_>) -> Option<SecretExport> {
        let fields = self.r.fields(f, EXPORT_KEYS, &[])?;
        let session = self
            .r
            .required(
                &fields,
                "session",
                "the name of the session allowed to import the secret",
            )
            .and_then(|i| self.r.parsed::<SessionName>(i.field(), "a session name"));
        let session_hash = match fields.get("session_hash") {
            Some(i) => Some(self.r.parsed::<SessionHash>(i.field(), "a session hash")?),
            None => None,
        };
        Some(SecretExport {
            session: session?,
            session_hash,
        })
    }
}

/// Key Vault object names: 1 to 127 of `[0-9A-Za-z-]`.
fn akv_name(text: &str) -> bool {
    (1..=127).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
