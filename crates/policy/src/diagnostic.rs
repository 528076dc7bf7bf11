//! Errors that point into the session text: file, line, column, field path, and what was expected.

use std::fmt;
use std::sync::Arc;

/// What kind of problem a [`Diagnostic`] reports. Stable names (see [`Problem::as_str`]) for
/// programs and tests; the human explanation is in [`Diagnostic::message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Problem {
    /// The text is not well-formed YAML, or it exceeds a parsing limit.
    Syntax,
    /// A key the session language does not define at this place.
    UnknownKey,
    /// The same key twice in one mapping.
    DuplicateKey,
    /// A value of the wrong YAML type (a list where a string was expected, ...).
    WrongType,
    /// A required field is absent.
    Missing,
    /// A value of the right type that is not allowed: a bad name, an unknown kind, a malformed hash...
    InvalidValue,
    /// Two entries of one list share a name (secrets, services, images, injection files).
    DuplicateName,
    /// A reference to a secret or image that the session does not define, or one of the wrong kind.
    DanglingReference,
    /// A placeholder format that the secret's kind does not provide.
    WrongFormat,
    /// Fields that cannot be used together, or a field that needs another one.
    Conflict,
    /// The `predecessor` does not fit the operation: present on create, absent or stale on update.
    Predecessor,
}

impl Problem {
    /// The stable, kebab-case name of this problem (`unknown-key`, `dangling-reference`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::Syntax => "syntax",
            Problem::UnknownKey => "unknown-key",
            Problem::DuplicateKey => "duplicate-key",
            Problem::WrongType => "wrong-type",
            Problem::Missing => "missing",
            Problem::InvalidValue => "invalid-value",
            Problem::DuplicateName => "duplicate-name",
            Problem::DanglingReference => "dangling-reference",
            Problem::WrongFormat => "wrong-format",
            Problem::Conflict => "conflict",
            Problem::Predecessor => "predecessor",
        }
    }

    /// Every problem, in declaration order.
    pub const ALL: [Problem; 11] = [
        Problem::Syntax,
        Problem::UnknownKey,
        Problem::DuplicateKey,
        Problem::WrongType,
        Problem::Missing,
        Problem::InvalidValue,
        Problem::DuplicateName,
        Problem::DanglingReference,
        Problem::WrongFormat,
        Problem::Conflict,
        Problem::Predecessor,
    ];
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The path of a field inside a session, written like `services[0].environment.AKV_SECRET`.
///
/// Mapping keys that are not plain identifiers are quoted: `environment["MY VAR"]`.
/// The root of the document is the empty path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(String);

impl FieldPath {
    /// The document itself.
    pub fn root() -> Self {
        FieldPath(String::new())
    }

    /// The path of `key` inside the mapping at this path.
    pub fn key(&self, key: &str) -> Self {
        let mut path = self.0.clone();
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if plain {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
        } else {
            path.push('[');
            push_json_string(&mut path, key);
            path.push(']');
        }
        FieldPath(path)
    }

    /// The path of the `index`-th (0-based) entry of the list at this path.
    pub fn index(&self, index: usize) -> Self {
        FieldPath(format!("{}[{index}]", self.0))
    }

    /// The path as text; empty for the document itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A place in the session text: 1-based line and column, counted in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1, in characters (not bytes).
    pub column: u32,
}

impl Position {
    /// The start of the document.
    pub const START: Position = Position { line: 1, column: 1 };
}

/// One problem found in a session, with where it is and what was expected.
///
/// Messages never contain secret values: a field that may hold one (`value`, `application_secret`)
/// is named, never quoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The name of the source, as given to [`crate::parse`] (usually a file name).
    pub file: Arc<str>,
    /// Where in the source the problem is.
    pub position: Position,
    /// The field the problem is about; empty for document-level problems (syntax errors).
    pub path: FieldPath,
    /// The kind of problem.
    pub problem: Problem,
    /// What is wrong and what was expected, in one line.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: ",
            self.file, self.position.line, self.position.column
        )?;
        if !self.path.as_str().is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a session, in source order. Never empty.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    /// Wraps a non-empty list, sorting it by position (stable: equal positions keep their order).
    pub(crate) fn new(mut list: Vec<Diagnostic>) -> Self {
        debug_assert!(!list.is_empty());
        list.sort_by_key(|d| d.position);
        Diagnostics(list)
    }

    /// The problems, in source order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// How many problems there are (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a `Diagnostics` holds at least one problem.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems as a vector.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.0
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// One line per problem.
impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Most problems reported for one session; a text with more gets a last line saying how
/// many were left out (this bounds the memory an adversarial text can make us spend).
pub const MAX_DIAGNOSTICS: usize = 1000;

/// Collects diagnostics for one source.
#[derive(Debug)]
pub(crate) struct Sink {
    file: Arc<str>,
    list: Vec<Diagnostic>,
    /// Reports not kept because [`MAX_DIAGNOSTICS`] were already kept.
    dropped: usize,
}

impl Sink {
    pub(crate) fn new(file: &str) -> Self {
        Sink {
            file: Arc::from(file),
            list: Vec::new(),
            dropped: 0,
        }
    }

    pub(crate) fn push(
        &mut self,
        position: Position,
        path: &FieldPath,
        problem: Problem,
        message: impl Into<String>,
    ) {
        if self.list.len() >= MAX_DIAGNOSTICS {
            self.dropped += 1;
            return;
        }
        self.list.push(Diagnostic {
            file: self.file.clone(),
            position,
            path: path.clone(),
            problem,
            message: message.into(),
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// How many problems were reported so far (kept or not).
    pub(crate) fn len(&self) -> usize {
        self.list.len() + self.dropped
    }

    /// `Ok(value)` when nothing was reported, else every report.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, Diagnostics> {
        match self.into_diagnostics() {
            None => Ok(value),
            Some(d) => Err(d),
        }
    }

    pub(crate) fn into_diagnostics(self) -> Option<Diagnostics> {
        if self.list.is_empty() {
            return None;
        }
        let mut d = Diagnostics::new(self.list);
        if self.dropped > 0 {
            let last = d.0.last().map_or(Position::START, |l| l.position);
            let problem = d.0[0].problem;
            d.0.push(Diagnostic {
                file: self.file,
                position: last,
                path: FieldPath::root(),
                problem,
                message: format!(
                    "{} more problems not shown (at most {MAX_DIAGNOSTICS} are reported)",
                    self.dropped
                ),
            });
        }
        Some(d)
    }
}

/// Appends `s` as a JSON string literal (RFC 8259), escaping only what JSON requires:
/// `"`, `\` and the control characters U+0000..U+001F (short forms where JSON has them,
/// else `\u00xx` in lower-case hex). This is also the string form of the canonical hash text.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut copied = 0;
    // Every character that needs escaping is ASCII, so byte positions are char boundaries.
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&s[copied..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escape);
        }
        copied = i + 1;
    }
    out.push_str(&s[copied..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_accessors() {
        let p = FieldPath::root()
            .key("services")
            .index(0)
            .key("environment")
            .key("AKV_SECRET");
        assert_eq!(p.as_str(), "services[0].environment.AKV_SECRET");
        let q = FieldPath::root().key("environment").key("MY VAR.x");
        assert_eq!(q.as_str(), "environment[\"MY VAR.x\"]");
    }

    #[test]
    fn json_strings_escape_only_what_json_requires() {
        let mut s = String::new();
        push_json_string(&mut s, "a\"b\\c\n\u{1}é/\u{7f}");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u0001é/\u{7f}\"");
    }

    #[test]
    fn display_names_file_line_column_and_path() {
        let mut sink = Sink::new("s.yml");
        sink.push(
            Position { line: 3, column: 7 },
            &FieldPath::root().key("name"),
            Problem::InvalidValue,
            "bad",
        );
        let d = sink.into_diagnostics().unwrap();
        assert_eq!(d.to_string(), "s.yml:3:7: name: bad");
    }
}
