//! The YAML layer: session text to a tree of located nodes, with serde-saphyr.
//!
//! serde-saphyr deserializes straight into Rust types and stops at the first error. A policy
//! language wants every error at once, each with its place, so we deserialize into a small
//! generic tree instead: every node is read through [`serde_saphyr::Spanned`], which gives its
//! line and column (and byte span), and the typed model is built from the tree by
//! [`crate::decode`], which keeps going after an error.
//!
//! Scalars are kept as text. Quoted and block scalars arrive as their decoded string; plain
//! scalars that YAML would resolve to a number or boolean arrive as the text written in the
//! source (recovered from the byte span), so `0x1F`, `1e400`, `0600` and a 64-digit hex
//! measurement all survive exactly as typed.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, MessageFormatter, Spanned};

use crate::diagnostic::Position;

/// Largest session text accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 8 * 1024 * 1024;

/// Deepest nesting of mappings and lists accepted (a session needs six).
const MAX_DEPTH: usize = 24;

/// Most nodes (scalars, lists, mappings; aliases count what they expand to) in a session.
/// A session with 1,000 secrets and 100 services has about 20,000. The bound keeps the work
/// per request small even for alias bombs.
pub const MAX_NODES: usize = 100_000;

/// A located node of the YAML tree.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) value: Value,
    /// Where the node is used (for an alias: the `*alias`, not the anchor).
    pub(crate) at: Position,
}

#[derive(Debug)]
pub(crate) enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// Any other scalar, as text.
    Scalar(String),
    Seq(Vec<Node>),
    /// Entries in document order; keys may repeat (duplicates are reported by the reader).
    Map(Vec<(Node, Node)>),
    /// Only while loading: a plain scalar YAML resolves to a number or boolean, to be replaced
    /// by its source text (`span`, bytes), or by `fallback` (its value printed by Rust) if
    /// the span is unavailable.
    Typed {
        fallback: String,
        span: Option<(usize, usize)>,
    },
}
impl Value {
    /// How a value is called in messages ("a string", "a list", ...).
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Scalar(_) | Value::Typed { .. } => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error or a breached parsing limit.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub(crate) at: Position,
    pub(crate) message: String,
}

/// Parses `text` into a tree. Anchors, aliases and merge keys (`<<`) are expanded; duplicate
/// keys are kept for the reader to report; tags other than YAML's standard ones are rejected.
pub(crate) fn load(text: &str) -> Result<Node, SyntaxError> {
    if text.len() > MAX_SOURCE_BYTES {
        return Err(SyntaxError {
            at: Position::START,
            message: format!(
                "the session is {} bytes long; at most {MAX_SOURCE_BYTES} bytes are accepted",
                text.len()
            ),
        });
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_documents: 1,
            max_nodes: MAX_NODES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_NODES,
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        strict_booleans: true,
        reject_unsupported_tags: true,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        with_snippet: false,
    };
    match serde_saphyr::from_str_with_options::<Node>(text, options) {
        Ok(mut root) => {
            root.resolve_typed(text);
            Ok(root)
        }
        Err(err) => {
            let at = err
                .location()
                .filter(|l| l.line() > 0)
                .map(position)
                .unwrap_or(Position::START);
            let message = serde_saphyr::UserMessageFormatter
                .format_message(err.without_snippet())
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>();
            Err(SyntaxError {
                at,
                message: format!("malformed YAML: {message}"),
            })
        }
    }
}

fn position(l: Location) -> Position {
    Position {
        line: u32::try_from(l.line()).unwrap_or(u32::MAX),
        column: u32::try_from(l.column()).unwrap_or(u32::MAX),
    }
}

impl Node {
    /// Replaces every [`Value::Typed`] by the scalar's source text.
    fn resolve_typed(&mut self, src: &str) {
        match &mut self.value {
            Value::Typed { fallback, span } => {
                let written = span
                    .and_then(|(start, len)| src.get(start..start.checked_add(len)?))
                    .map(|w| w.trim_end().to_owned());
                self.value = Value::Scalar(written.unwrap_or_else(|| std::mem::take(fallback)));
            }
            Value::Seq(items) => items.iter_mut().for_each(|n| n.resolve_typed(src)),
            Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                k.resolve_typed(src);
                v.resolve_typed(src);
            }),
            Value::Null | Value::Scalar(_) => {}
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned: Spanned<Value> = Spanned::deserialize(d)?;
        let value = match spanned.value {
            // `defined` is the scalar itself, also when it was reached through an alias.
            Value::Typed { fallback, .. } => {
                let span = spanned.defined.span();
                let bytes = span
                    .byte_offset()
                    .zip(span.byte_len())
                    .and_then(|(o, l)| Some((usize::try_from(o).ok()?, usize::try_from(l).ok()?)));
                Value::Typed {
                    fallback,
                    span: bytes,
                }
            }
            other => other,
        };
        Ok(Node {
            value,
            at: position(spanned.referenced),
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawValueVisitor)
    }
}

struct RawValueVisitor;

fn typed<E>(v: impl ToString) -> Result<Value, E> {
    Ok(Value::Typed {
        fallback: v.to_string(),
        span: None,
    })
}

impl<'de> Visitor<'de> for RawValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML node")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Scalar(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Scalar(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        typed(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        typed(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        typed(v)
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        typed(v)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        typed(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        typed(v)
    }
    fn visit_char<E: de::Error>(self, v: char) -> Result<Value, E> {
        Ok(Value::Scalar(v.to_string()))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Value, E> {
        Err(E::custom(
            "binary scalars (!!binary) are not supported; write the value as text",
        ))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(n: &Node) -> &str {
        match &n.value {
            Value::Scalar(s) => s,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    fn entries(n: &Node) -> &[(Node, Node)] {
        match &n.value {
            Value::Map(e) => e,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn plain_numbers_keep_their_spelling() {
        let src =
            "a: 0x1F\nb: 0600\nc: 1e400\nd: 0.30\ne: yes\nf: 123456789012345678901234567890\n";
        let root = load(src).unwrap();
        let texts: Vec<_> = entries(&root).iter().map(|(_, v)| scalar(v)).collect();
        assert_eq!(
            texts,
            [
                "0x1F",
                "0600",
                "1e400",
                "0.30",
                "yes",
                "123456789012345678901234567890"
            ]
        );
    }

    #[test]
    fn nodes_know_their_line_and_column() {
        let root = load("x:\n  - a\n  - b: 'q'\n").unwrap();
        let (k, v) = &entries(&root)[0];
        assert_eq!(k.at, Position { line: 1, column: 1 });
        let Value::Seq(items) = &v.value else {
            panic!()
        };
        assert_eq!(items[1].at, Position { line: 3, column: 5 });
        let (_, q) = &entries(&items[1])[0];
        assert_eq!(q.at, Position { line: 3, column: 8 });
        assert_eq!(scalar(q), "q");
    }

    #[test]
    fn aliases_are_expanded_and_located_at_the_use() {
        let root = load("a: &x 0.3\nb: *x\n").unwrap();
        let (_, b) = &entries(&root)[1];
        assert_eq!(scalar(b), "0.3");
        assert_eq!(b.at, Position { line: 2, column: 4 });
    }

    #[test]
    fn duplicate_keys_are_kept_for_the_reader() {
        let root = load("a: 1\na: 2\n").unwrap();
        assert_eq!(entries(&root).len(), 2);
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = load("a: [1,\nb: 2\n").unwrap_err();
        assert_eq!(err.at, Position { line: 1, column: 4 });
        assert!(err.message.contains("bracket"), "{}", err.message);
    }

    #[test]
    fn custom_tags_and_second_documents_are_rejected() {
        assert!(load("a: !custom x\n").is_err());
        assert!(load("a: 1\n---\nb: 2\n").is_err());
    }

    #[test]
    fn alias_bombs_stop_at_the_node_budget() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                vec![format!("*a{p}"); 10].join(", ")
            ));
        }
        let err = load(&doc).unwrap_err();
        assert!(
            err.message.contains("too large or too complex"),
            "{}",
            err.message
        );
    }

    #[test]
    fn oversized_and_too_deep_input_is_rejected() {
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(load(&deep).is_err());
        let big = "#".repeat(MAX_SOURCE_BYTES + 1);
        assert!(load(&big).unwrap_err().message.contains("bytes"));
    }
}
