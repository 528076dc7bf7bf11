//! Secret placeholders: `$$SCONE::name$$`, `$$SCONE::name:format$$` and the legacy
//! `$$SCONE::name.crt$$`, `.key`, `.chain`.
//!
//! [`scan`] finds them in a text (validation uses it); [`render`] replaces them with values a
//! resolver supplies (the CAS uses it when it builds a service's configuration). Rendering is
//! one pass: a value that itself contains `$$SCONE::` is not expanded again.

use std::fmt;
use std::ops::Range;

use zeroize::Zeroizing;

use crate::model::SecretKind;
use crate::names::{NameError, SecretName};

const OPEN: &str = "$$SCONE::";
const CLOSE: &str = "$$";

/// How a secret's value is written where a placeholder stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// No format given: the value itself (text, bytes, token); for keys the PEM private key,
    /// for certificates the PEM certificate.
    Default,
    /// `:hex`: lower-case hex of the value's bytes.
    Hex,
    /// `:base64`: standard base64 with padding.
    Base64,
    /// `:base64url`: URL-safe base64 without padding.
    Base64Url,
    /// `:crt` or `.crt`: the PEM certificate.
    Certificate,
    /// `:privatekey` or `.key`: the PEM (PKCS#8) private key.
    PrivateKey,
    /// `:chain`: as in SCONE, the issuers' PEM certificates from the first intermediate to
    /// the root; the certificate itself is not included.
    Chain,
    /// `.chain` (legacy): as in SCONE, the reverse — the root first, then the
    /// intermediates, and the certificate itself last.
    LegacyChain,
}

impl Format {
    /// Formats written after `:`.
    const COLON: &'static [(&'static str, Format)] = &[
        ("hex", Format::Hex),
        ("base64", Format::Base64),
        ("base64url", Format::Base64Url),
        ("crt", Format::Certificate),
        ("privatekey", Format::PrivateKey),
        ("chain", Format::Chain),
    ];
    /// Legacy suffixes written after `.`.
    const LEGACY: &'static [(&'static str, Format)] = &[
        ("crt", Format::Certificate),
        ("key", Format::PrivateKey),
        ("chain", Format::LegacyChain),
    ];

    /// The formats a secret of `kind` provides.
    pub fn for_kind(kind: SecretKind) -> &'static [Format] {
        use Format::*;
        match kind {
            SecretKind::Ascii | SecretKind::Binary => &[Default, Hex, Base64, Base64Url],
            SecretKind::PrivateKey => &[Default, PrivateKey],
            SecretKind::X509 | SecretKind::X509Ca => {
                &[Default, Certificate, PrivateKey, Chain, LegacyChain]
            }
            SecretKind::AadToken => &[Default],
        }
    }

    /// Whether a secret of `kind` provides this format.
    pub fn fits(self, kind: SecretKind) -> bool {
        Format::for_kind(kind).contains(&self)
    }

    /// How the format is written after `:` (`""` for [`Format::Default`]; `chain` for the
    /// legacy `.chain`, which [`fmt::Display`] writes with its `.`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Default => "",
            Format::Hex => "hex",
            Format::Base64 => "base64",
            Format::Base64Url => "base64url",
            Format::Certificate => "crt",
            Format::PrivateKey => "privatekey",
            Format::Chain | Format::LegacyChain => "chain",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Default => f.write_str("(none)"),
            Format::LegacyChain => f.write_str(".chain"),
            other => write!(f, ":{}", other.as_str()),
        }
    }
}

/// A well-formed placeholder found in a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placeholder<'t> {
    /// The secret it names.
    pub secret: SecretName,
    /// How the value is to be written.
    pub format: Format,
    /// Its byte range in the text, `$$` delimiters included.
    pub range: Range<usize>,
    /// Its text, `$$` delimiters included (never a secret).
    pub text: &'t str,
}

/// A malformed placeholder.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}`: {problem}")]
pub struct PlaceholderError {
    /// Its byte range in the text.
    pub range: Range<usize>,
    /// Its text (up to the end of the line when unterminated).
    pub text: String,
    /// What is wrong.
    pub problem: PlaceholderProblem,
}

/// What is wrong with a placeholder.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderProblem {
    /// No closing `$$`.
    #[error("no closing `$$`")]
    Unterminated,
    /// The secret name is not a valid name.
    #[error("invalid secret name: {0}")]
    Name(NameError),
    /// A format this implementation does not know.
    #[error("unknown format `{written}` (supported: {supported})")]
    UnknownFormat {
        /// The format as written, with its `:` or `.`.
        written: String,
        /// The supported formats, for the message.
        supported: &'static str,
    },
}

/// Every placeholder in `text`, well-formed or not, in order.
pub fn scan(text: &str) -> Vec<Result<Placeholder<'_>, PlaceholderError>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(rel) = text[from..].find(OPEN) {
        let start = from + rel;
        let body_start = start + OPEN.len();
        let Some(body_len) = text[body_start..].find(CLOSE) else {
            let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
            found.push(Err(PlaceholderError {
                range: start..line_end,
                text: text[start..line_end].to_owned(),
                problem: PlaceholderProblem::Unterminated,
            }));
            break;
        };
        let end = body_start + body_len + CLOSE.len();
        found.push(parse_one(
            &text[start..end],
            start..end,
            &text[body_start..end - CLOSE.len()],
        ));
        from = end;
    }
    found
}

fn parse_one<'t>(
    whole: &'t str,
    range: Range<usize>,
    body: &str,
) -> Result<Placeholder<'t>, PlaceholderError> {
    let fail = |problem| PlaceholderError {
        range: range.clone(),
        text: whole.to_owned(),
        problem,
    };
    let (name, format) = if let Some((name, fmt)) = body.split_once(':') {
        let format = lookup(Format::COLON, fmt).ok_or_else(|| {
            fail(PlaceholderProblem::UnknownFormat {
                written: format!(":{fmt}"),
                supported: ":hex, :base64, :base64url, :crt, :privatekey, :chain",
            })
        })?;
        (name, format)
    } else if let Some((name, suffix)) = body.rsplit_once('.') {
        let format = lookup(Format::LEGACY, suffix).ok_or_else(|| {
            fail(PlaceholderProblem::UnknownFormat {
                written: format!(".{suffix}"),
                supported: ".crt, .key, .chain",
            })
        })?;
        (name, format)
    } else {
        (body, Format::Default)
    };
    let secret = name
        .parse::<SecretName>()
        .map_err(|e| fail(PlaceholderProblem::Name(e)))?;
    Ok(Placeholder {
        secret,
        format,
        range,
        text: whole,
    })
}

fn lookup(table: &[(&str, Format)], written: &str) -> Option<Format> {
    table.iter().find(|(w, _)| *w == written).map(|(_, f)| *f)
}

/// Why a resolver could not supply a placeholder's value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    /// No secret of that name.
    #[error("no secret of that name")]
    UnknownSecret,
    /// The secret exists but does not provide this format.
    #[error("a {kind} secret does not provide the format {format}")]
    UnsupportedFormat {
        /// The secret's kind.
        kind: SecretKind,
        /// The format asked for.
        format: Format,
    },
    /// The value exists but cannot be had now (for example, Key Vault did not answer).
    /// The reason must not contain a secret value.
    #[error("value unavailable: {0}")]
    Unavailable(String),
}

/// A placeholder that could not be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderProblem {
    /// It is malformed.
    #[error(transparent)]
    Malformed(PlaceholderError),
    /// The resolver could not supply it.
    #[error("`{text}` at byte {offset}: {reason}")]
    Unresolved {
        /// The placeholder's text (never a secret).
        text: String,
        /// Its byte offset in the template.
        offset: usize,
        /// Why.
        reason: Unresolved,
    },
}

/// Every placeholder of a text that could not be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct RenderError(pub Vec<RenderProblem>);

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Replaces every placeholder in `template` with the value `resolve` gives for it.
///
/// Text outside placeholders (including a lone `$$`) is copied unchanged. If any placeholder
/// is malformed or unresolved, the result is an error listing all of them, and nothing
/// rendered is returned. The rendered text holds secrets: it is zeroized when dropped.
pub fn render<V, F>(template: &str, mut resolve: F) -> Result<Zeroizing<String>, RenderError>
where
    V: AsRef<str>,
    F: FnMut(&Placeholder<'_>) -> Result<V, Unresolved>,
{
    let mut out = Zeroizing::new(String::with_capacity(template.len()));
    let mut problems = Vec::new();
    let mut copied = 0;
    for found in scan(template) {
        match found {
            Ok(p) => {
                out.push_str(&template[copied..p.range.start]);
                copied = p.range.end;
                match resolve(&p) {
                    Ok(value) => out.push_str(value.as_ref()),
                    Err(reason) => problems.push(RenderProblem::Unresolved {
                        text: p.text.to_owned(),
                        offset: p.range.start,
                        reason,
                    }),
                }
            }
            Err(e) => problems.push(RenderProblem::Malformed(e)),
        }
    }
    if !problems.is_empty() {
        return Err(RenderError(problems));
    }
    out.push_str(&template[copied..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<(String, Format)> {
        scan(text)
            .into_iter()
            .map(|r| {
                let p = r.unwrap();
                (p.secret.to_string(), p.format)
            })
            .collect()
    }

    #[test]
    fn finds_all_syntaxes() {
        assert_eq!(
            ok(
                "a $$SCONE::A$$ b $$SCONE::C.crt$$ $$SCONE::C.key$$ $$SCONE::C:chain$$ $$SCONE::B:base64url$$ $$SCONE::C.chain$$"
            ),
            vec![
                ("A".into(), Format::Default),
                ("C".into(), Format::Certificate),
                ("C".into(), Format::PrivateKey),
                ("C".into(), Format::Chain),
                ("B".into(), Format::Base64Url),
                ("C".into(), Format::LegacyChain),
            ]
        );
        assert!(scan("price: $$ 5 $$").is_empty());
    }

    #[test]
    fn reports_malformed_placeholders() {
        let r = scan("x $$SCONE::A:pem$$ $$SCONE::B.pfx$$ $$SCONE::$$ $$SCONE::C");
        assert_eq!(r.len(), 4);
        assert!(matches!(
            &r[0],
            Err(PlaceholderError { problem: PlaceholderProblem::UnknownFormat { written, .. }, .. }) if written == ":pem"
        ));
        assert!(matches!(
            &r[1],
            Err(PlaceholderError { problem: PlaceholderProblem::UnknownFormat { written, .. }, .. }) if written == ".pfx"
        ));
        assert!(matches!(
            &r[2],
            Err(PlaceholderError {
                problem: PlaceholderProblem::Name(NameError::Empty),
                ..
            })
        ));
        assert!(matches!(
            &r[3],
            Err(PlaceholderError { problem: PlaceholderProblem::Unterminated, range, .. }) if range.start == 48
        ));
    }

    #[test]
    fn renders_and_reports_every_failure() {
        let out = render("k=$$SCONE::A$$;$$SCONE::B:hex$$ $$", |p| {
            match p.secret.as_str() {
                "A" => Ok("alpha".to_owned()),
                "B" => Ok(format!("hex-of-b{}", p.format.as_str().len())),
                _ => Err(Unresolved::UnknownSecret),
            }
        })
        .unwrap();
        assert_eq!(out.as_str(), "k=alpha;hex-of-b3 $$");

        let err = render("$$SCONE::A$$ $$SCONE::X$$ $$SCONE::Y:pem$$", |p| {
            if p.secret.as_str() == "A" {
                Ok("v")
            } else {
                Err(Unresolved::UnknownSecret)
            }
        })
        .unwrap_err();
        assert_eq!(err.0.len(), 2);
        assert_eq!(
            err.to_string(),
            "`$$SCONE::X$$` at byte 13: no secret of that name; `$$SCONE::Y:pem$$`: unknown format `:pem` (supported: :hex, :base64, :base64url, :crt, :privatekey, :chain)"
        );
    }

    #[test]
    fn values_are_not_expanded_twice() {
        let out = render("$$SCONE::A$$", |_| Ok("$$SCONE::A$$")).unwrap();
        assert_eq!(out.as_str(), "$$SCONE::A$$");
    }

    #[test]
    fn formats_fit_kinds() {
        assert!(Format::Certificate.fits(SecretKind::X509));
        assert!(Format::PrivateKey.fits(SecretKind::X509Ca));
        assert!(!Format::Certificate.fits(SecretKind::Ascii));
        assert!(!Format::Hex.fits(SecretKind::AadToken));
        assert!(Format::Hex.fits(SecretKind::Binary));
    }
}
