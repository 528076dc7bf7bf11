//! From the YAML tree to the typed model, reporting every problem with its place.
//!
//! Sections are read in dependency order, not document order: secrets are pre-scanned first
//! (names and kinds), so every reference and placeholder can be checked where it is written.

mod reader;
mod refresh;
mod secrets;
mod security;
mod services;
mod values;

use std::collections::HashMap;

use crate::diagnostic::{Diagnostics, FieldPath, Position, Problem, Sink};
use crate::ids::SessionHash;
use crate::model::{AccessPolicy, KeyType, LanguageVersion, Origin, SecretKind, Security, Session};
use crate::names::{SecretName, SessionName};
use crate::placeholder::{self, Format};
use crate::suggest;
use crate::yaml::Node;

use reader::{Field, Reader, Unsupported, shorten};

const ROOT_KEYS: &[&str] = &[
    "name",
    "version",
    "predecessor",
    "access_policy",
    "security",
    "secrets",
    "services",
    "images",
];
const ROOT_UNSUPPORTED: Unsupported = &[
    ("volumes", "encrypted volumes are a SCONE runtime feature"),
    ("global", "SCONE global settings have no equivalent"),
];

/// What the pre-scan learned about a secret.
#[derive(Clone, Copy, Debug)]
struct SecretInfo {
    /// `None` when the kind is not stated (imports) or not valid (reported elsewhere):
    /// checks that need the kind are skipped then.
    kind: Option<SecretKind>,
    key_type: Option<KeyType>,
}

pub(crate) struct Decoder<'n> {
    r: Reader,
    secrets: HashMap<&'n str, SecretInfo>,
    /// Names of the `aad-token` secrets, in document order.
    aad_tokens: Vec<&'n str>,
}

/// Decodes a session (without its hash, which the caller computes from the same tree).
pub(crate) fn decode(root: &Node, file: &str) -> Result<Session, Diagnostics> {
    let mut d = Decoder {
        r: Reader {
            sink: Sink::new(file),
        },
        secrets: HashMap::new(),
        aad_tokens: Vec::new(),
    };
    let session = d.session(root, file);
    match session {
        Some(s) if d.r.sink.is_empty() => Ok(s),
        _ => {
            if d.r.sink.is_empty() {
                // Every `None` above comes with a report; this keeps a bug from passing silently.
                d.r.report(
                    Position::START,
                    &FieldPath::root(),
                    Problem::InvalidValue,
                    "internal error: the session was rejected without a reason",
                );
            }
            Err(d.r.sink.into_diagnostics().expect("non-empty"))
        }
    }
}

impl<'n> Decoder<'n> {
    fn session(&mut self, root: &'n Node, file: &str) -> Option<Session> {
        let path = FieldPath::root();
        let top = self
            .r
            .fields(Field::unkeyed(root, &path), ROOT_KEYS, ROOT_UNSUPPORTED)?;

        let name_item = self
            .r
            .required(&top, "name", "the session's name (`namespace/…/session`)");
        let name = name_item
            .as_ref()
            .and_then(|i| self.r.parsed::<SessionName>(i.field(), "a session name"));
        let version = self
            .r
            .required(&top, "version", "the session-language version, \"0.3\"")
            .and_then(|i| self.version(i.field()));
        let predecessor_item = top.get("predecessor");
        // Outer `Some`: written; inner `None`: invalid (reported).
        let predecessor = predecessor_item
            .as_ref()
            .map(|i| self.r.parsed::<SessionHash>(i.field(), "a session hash"));

        let access_policy = match top.get("access_policy") {
            Some(i) => self.access_policy(i.field()),
            None => Some(AccessPolicy::default()),
        };
        let security = match top.get("security") {
            Some(i) => self.security(i.field()),
            None => Some(Security::default()),
        };
        let mode = security.as_ref().map(|s| s.attestation.mode);

        let secret_items = top.get("secrets");
        let secret_list = secret_items
            .as_ref()
            .and_then(|i| self.r.list(i.field(), "secrets"))
            .unwrap_or_default();
        self.prescan_secrets(&secret_list);
        let secrets: Vec<_> = secret_list
            .iter()
            .filter_map(|i| self.secret(i.field()))
            .collect();

        let image_list = top
            .get("images")
            .and_then(|i| self.r.list(i.field(), "images"))
            .unwrap_or_default();
        let images = self.images(&image_list);
        let image_names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();

        let services = match top.get("services") {
            Some(i) => self.services(i.field(), &image_names, mode),
            None => Vec::new(),
        };

        Some(Session {
            name: name?,
            version: version?,
            predecessor: match predecessor {
                Some(hash) => Some(hash?),
                None => None,
            },
            access_policy: access_policy?,
            security: security?,
            secrets,
            services,
            images,
            hash: SessionHash::from_bytes([0; 32]),
            origin: Origin {
                file: file.into(),
                name_at: name_item.map_or(Position::START, |i| i.node.at),
                predecessor_at: predecessor_item.map(|i| i.node.at),
            },
        })
    }

    fn version(&mut self, f: Field<'_, '_>) -> Option<LanguageVersion> {
        let text = self.r.text(f)?;
        let patch = match text.strip_prefix("0.3") {
            Some("") => Some(None),
            Some(rest) => rest
                .strip_prefix('.')
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok())
                .map(Some),
            None => None,
        };
        match patch {
            Some(patch) => Some(LanguageVersion { patch }),
            None => {
                self.r.invalid(
                    f,
                    format!(
                        "unsupported version `{}`: Custos reads version \"0.3\" (or \"0.3.N\")",
                        shorten(text)
                    ),
                );
                None
            }
        }
    }

    /// Checks a reference to a secret, written as a bare name or (when `placeholder_ok`) as
    /// `$$SCONE::name$$`, that must be one of `kinds`.
    fn secret_ref(
        &mut self,
        f: Field<'_, '_>,
        role: &str,
        kinds: &[SecretKind],
        placeholder_ok: bool,
    ) -> Option<SecretName> {
        let text = self.r.text(f)?;
        let name_text = match text
            .strip_prefix("$$SCONE::")
            .and_then(|t| t.strip_suffix("$$"))
        {
            Some(inner) if placeholder_ok => inner,
            _ => text,
        };
        let name = match name_text.parse::<SecretName>() {
            Ok(name) => name,
            Err(e) => {
                let form = if placeholder_ok {
                    "a secret name or `$$SCONE::name$$`"
                } else {
                    "a secret name"
                };
                self.r
                    .invalid(f, format!("`{}` is not {form}: {e}", shorten(text)));
                return None;
            }
        };
        self.check_secret_kind(f, name.as_str(), role, kinds)?;
        Some(name)
    }

    /// Reports a reference to a missing secret, or to one of a kind not in `kinds`.
    fn check_secret_kind(
        &mut self,
        f: Field<'_, '_>,
        name: &str,
        role: &str,
        kinds: &[SecretKind],
    ) -> Option<()> {
        let Some(info) = self.secrets.get(name).copied() else {
            let hint = suggest::hint(name, self.secrets.keys().copied());
            self.r.report(
                f.at(),
                f.path,
                Problem::DanglingReference,
                format!("`{name}` names no secret of this session{hint}"),
            );
            return None;
        };
        if let Some(kind) = info.kind
            && !kinds.contains(&kind)
        {
            let wanted: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            self.r.report(
                f.at(),
                f.path,
                Problem::DanglingReference,
                format!(
                    "`{name}` is {} {kind} secret, but {role} must be {}",
                    article(kind.as_str()),
                    wanted.join(" or ")
                ),
            );
            return None;
        }
        Some(())
    }

    /// Checks every placeholder in a text that the CAS will render.
    fn templated(&mut self, f: Field<'_, '_>, text: &str) {
        for found in placeholder::scan(text) {
            match found {
                Err(e) => self.r.invalid(f, format!("malformed placeholder {e}")),
                Ok(p) => {
                    let name = p.secret.as_str();
                    let Some(info) = self.secrets.get(name).copied() else {
                        let hint = suggest::hint(name, self.secrets.keys().copied());
                        self.r.report(
                            f.at(),
                            f.path,
                            Problem::DanglingReference,
                            format!("`{}` names no secret of this session{hint}", p.text),
                        );
                        continue;
                    };
                    if let Some(kind) = info.kind
                        && !p.format.fits(kind)
                    {
                        let formats: Vec<String> = Format::for_kind(kind)
                            .iter()
                            .map(|f| f.to_string())
                            .collect();
                        self.r.report(
                            f.at(),
                            f.path,
                            Problem::WrongFormat,
                            format!(
                                "`{}`: `{name}` is {} {kind} secret, which provides the formats {}",
                                p.text,
                                article(kind.as_str()),
                                formats.join(", ")
                            ),
                        );
                    }
                }
            }
        }
    }

    /// Reports a placeholder in a field the CAS does not render.
    fn not_templated(&mut self, f: Field<'_, '_>, text: &str) {
        if text.contains("$$SCONE::") {
            self.r.invalid(
                f,
                "placeholders are only rendered in `command`, `environment` values and injection-file `content`",
            );
        }
    }
}

impl Default for AccessPolicy {
    fn default() -> Self {
        use crate::model::Principal::Creator;
        AccessPolicy {
            read: vec![Creator],
            update: vec![Creator],
            create_sessions: vec![Creator],
        }
    }
}

/// "a" or "an" before a kind name (`an ascii`, `an x509`, `a binary`).
pub(crate) fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u', 'x']) {
        "an"
    } else {
        "a"
    }
}
