//! Reading the YAML tree with error collection: typed accessors that report what they expected,
//! where, and keep going.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use crate::diagnostic::{FieldPath, Position, Problem, Sink};
use crate::suggest;
use crate::yaml::{Node, Value};

/// A node together with its field path.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Field<'n, 'p> {
    pub(crate) node: &'n Node,
    pub(crate) path: &'p FieldPath,
    /// Where the mapping key naming this node is; `None` for list items and the root.
    pub(crate) key_at: Option<Position>,
}

impl<'n, 'p> Field<'n, 'p> {
    /// A field that no mapping key names (the root, a list item).
    pub(crate) fn unkeyed(node: &'n Node, path: &'p FieldPath) -> Self {
        Field {
            node,
            path,
            key_at: None,
        }
    }

    /// Where the value is.
    pub(crate) fn at(&self) -> Position {
        self.node.at
    }

    /// Where the field is named: its key, or the value for list items. Problems about a
    /// field's presence point here; problems about its value point at the value.
    pub(crate) fn key_or_value_at(&self) -> Position {
        self.key_at.unwrap_or(self.node.at)
    }
}

/// An owned-path variant of [`Field`] for list items and map entries.
#[derive(Debug)]
pub(crate) struct Item<'n> {
    pub(crate) node: &'n Node,
    pub(crate) path: FieldPath,
    pub(crate) key_at: Option<Position>,
}

impl<'n> Item<'n> {
    pub(crate) fn field(&self) -> Field<'n, '_> {
        Field {
            node: self.node,
            path: &self.path,
            key_at: self.key_at,
        }
    }

    pub(crate) fn key_or_value_at(&self) -> Position {
        self.field().key_or_value_at()
    }
}

/// The entries of a mapping whose keys were checked against a known set.
#[derive(Debug)]
pub(crate) struct Fields<'n> {
    /// Key, where the key is, value.
    entries: Vec<(&'n str, Position, &'n Node)>,
    pub(crate) path: FieldPath,
    /// Where the mapping is named (its key), or where it starts: problems about missing
    /// fields point here.
    pub(crate) at: Position,
}

impl<'n> Fields<'n> {
    /// The value of `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<Item<'n>> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, key_at, node)| Item {
                node,
                path: self.path.key(key),
                key_at: Some(*key_at),
            })
    }

    /// Whether `key` is present.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _, _)| *k == key)
    }
}

/// Keys that SCONE defines at some place but Custos does not implement, with why.
pub(crate) type Unsupported = &'static [(&'static str, &'static str)];

pub(crate) struct Reader {
    pub(crate) sink: Sink,
}

impl Reader {
    pub(crate) fn report(
        &mut self,
        at: Position,
        path: &FieldPath,
        problem: Problem,
        message: impl Into<String>,
    ) {
        self.sink.push(at, path, problem, message);
    }

    pub(crate) fn wrong_type(&mut self, f: Field<'_, '_>, expected: &str) {
        self.report(
            f.at(),
            f.path,
            Problem::WrongType,
            format!("expected {expected}, found {}", f.node.value.describe()),
        );
    }

    /// Reads a mapping whose keys must be among `known`; reports non-string, repeated and
    /// unknown keys (with a suggestion) and keeps the rest.
    pub(crate) fn fields<'n>(
        &mut self,
        f: Field<'n, '_>,
        known: &'static [&'static str],
        unsupported: Unsupported,
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &f.node.value else {
            self.wrong_type(f, &format!("a mapping with keys {}", list(known)));
            return None;
        };
        let mut kept: Vec<(&str, Position, &Node)> = Vec::with_capacity(entries.len());
        let mut first_at = FirstSeen::new(entries.len());
        for (k, v) in entries {
            let Value::Scalar(key) = &k.value else {
                self.report(
                    k.at,
                    f.path,
                    Problem::WrongType,
                    format!("mapping keys must be strings, found {}", k.value.describe()),
                );
                continue;
            };
            let path = f.path.key(key);
            if let Some(first) = first_at.insert(key, k.at) {
                self.report(
                    k.at,
                    &path,
                    Problem::DuplicateKey,
                    format!("duplicate key `{key}` (first at line {})", first.line),
                );
                continue;
            }
            if known.contains(&key.as_str()) {
                kept.push((key.as_str(), k.at, v));
            } else if let Some((_, why)) = unsupported.iter().find(|(u, _)| u == key) {
                self.report(
                    k.at,
                    &path,
                    Problem::UnknownKey,
                    format!("`{key}` is not supported by Custos: {why}"),
                );
            } else {
                self.report(
                    k.at,
                    &path,
                    Problem::UnknownKey,
                    format!(
                        "unknown key `{key}`{} (expected one of: {})",
                        suggest::hint(key, known.iter().copied()),
                        known.join(", ")
                    ),
                );
            }
        }
        Some(Fields {
            entries: kept,
            path: f.path.clone(),
            at: f.key_or_value_at(),
        })
    }

    /// The value of a required key, or a `missing` report at the mapping.
    pub(crate) fn required<'n>(
        &mut self,
        fields: &Fields<'n>,
        key: &str,
        what: &str,
    ) -> Option<Item<'n>> {
        let item = fields.get(key);
        if item.is_none() {
            self.report(
                fields.at,
                &fields.path.key(key),
                Problem::Missing,
                format!("missing `{key}`: {what}"),
            );
        }
        item
    }

    /// A scalar's text.
    pub(crate) fn text<'n>(&mut self, f: Field<'n, '_>) -> Option<&'n str> {
        match &f.node.value {
            Value::Scalar(s) => Some(s),
            _ => {
                self.wrong_type(f, "a string");
                None
            }
        }
    }

    /// A non-empty scalar's text.
    pub(crate) fn nonempty_text<'n>(&mut self, f: Field<'n, '_>) -> Option<&'n str> {
        let text = self.text(f)?;
        if text.trim().is_empty() {
            self.invalid(f, "must not be empty");
            return None;
        }
        Some(text)
    }

    pub(crate) fn invalid(&mut self, f: Field<'_, '_>, message: impl Into<String>) {
        self.report(f.at(), f.path, Problem::InvalidValue, message);
    }

    /// A scalar parsed with `FromStr`; the error names the value and what was expected.
    /// Only for values that are not secret.
    pub(crate) fn parsed<T>(&mut self, f: Field<'_, '_>, what: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let text = self.text(f)?;
        match text.parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                self.invalid(f, format!("`{}` is not {what}: {e}", shorten(text)));
                None
            }
        }
    }

    /// `true` or `false`.
    pub(crate) fn boolean(&mut self, f: Field<'_, '_>) -> Option<bool> {
        let text = self.text(f)?;
        match text {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            other => {
                self.invalid(
                    f,
                    format!("expected true or false, found `{}`", shorten(other)),
                );
                None
            }
        }
    }

    /// A decimal integer within `min..=max`.
    pub(crate) fn integer(&mut self, f: Field<'_, '_>, min: u64, max: u64) -> Option<u64> {
        let text = self.text(f)?;
        match text.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.invalid(
                    f,
                    format!(
                        "expected a whole number from {min} to {max}, found `{}`",
                        shorten(text)
                    ),
                );
                None
            }
        }
    }

    /// A duration in the session syntax (`10 minutes`, `59d`; see [`super::values::duration`]).
    pub(crate) fn duration(&mut self, f: Field<'_, '_>) -> Option<Duration> {
        match super::values::duration(self.text(f)?) {
            Ok(d) => Some(d),
            Err(e) => {
                self.invalid(f, e);
                None
            }
        }
    }

    /// One of a fixed set of keywords.
    pub(crate) fn keyword<T>(
        &mut self,
        f: Field<'_, '_>,
        what: &str,
        from_keyword: fn(&str) -> Option<T>,
        keywords: &'static [&'static str],
    ) -> Option<T> {
        let text = self.text(f)?;
        let found = from_keyword(text);
        if found.is_none() {
            self.invalid(
                f,
                format!(
                    "unknown {what} `{}`{} (expected one of: {})",
                    shorten(text),
                    suggest::hint(text, keywords.iter().copied()),
                    keywords.join(", ")
                ),
            );
        }
        found
    }

    /// A list's items.
    pub(crate) fn list<'n>(&mut self, f: Field<'n, '_>, of: &str) -> Option<Vec<Item<'n>>> {
        match &f.node.value {
            Value::Seq(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, node)| Item {
                        node,
                        path: f.path.index(i),
                        key_at: None,
                    })
                    .collect(),
            ),
            _ => {
                self.wrong_type(f, &format!("a list of {of}"));
                None
            }
        }
    }

    /// A list's items, or a single scalar/mapping taken as a list of one.
    pub(crate) fn one_or_list<'n>(&mut self, f: Field<'n, '_>) -> Vec<Item<'n>> {
        match &f.node.value {
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, node)| Item {
                    node,
                    path: f.path.index(i),
                    key_at: None,
                })
                .collect(),
            _ => vec![Item {
                node: f.node,
                path: f.path.clone(),
                key_at: f.key_at,
            }],
        }
    }
}

/// Where each key was first seen: a linear scan for the small mappings sessions are made of,
/// a hash map for large ones (so a mapping with many keys stays linear).
pub(crate) enum FirstSeen<'n> {
    Few(Vec<(&'n str, Position)>),
    Many(HashMap<&'n str, Position>),
}

impl<'n> FirstSeen<'n> {
    const FEW: usize = 16;

    pub(crate) fn new(expected: usize) -> Self {
        if expected <= Self::FEW {
            FirstSeen::Few(Vec::with_capacity(expected))
        } else {
            FirstSeen::Many(HashMap::with_capacity(expected))
        }
    }

    /// Records `key` at `at`, or returns where it was first seen.
    pub(crate) fn insert(&mut self, key: &'n str, at: Position) -> Option<Position> {
        match self {
            FirstSeen::Few(seen) => match seen.iter().find(|(k, _)| *k == key) {
                Some((_, first)) => Some(*first),
                None => {
                    seen.push((key, at));
                    None
                }
            },
            FirstSeen::Many(seen) => match seen.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(at);
                    None
                }
            },
        }
    }
}

/// `a, b or c` in backticks, for "expected" messages.
pub(crate) fn list(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => format!("`{one}`"),
        [init @ .., last] => format!(
            "{} or `{last}`",
            init.iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A value cut to a readable length for a message.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 48;
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= MAX {
        one_line
    } else {
        let mut cut: String = one_line.chars().take(MAX).collect();
        cut.push('…');
        cut
    }
}
