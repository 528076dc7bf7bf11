//! The canonical form of a session and its hash.
//!
//! The canonical form is a JSON text built from the YAML document's data, so key order,
//! comments, quoting style, block or flow style and indentation do not change it:
//!
//! - a mapping is `{` entries `}`, entries sorted by the UTF-8 bytes of their keys, each
//!   `"key":value`, separated by `,`;
//! - a sequence is `[` items `]` in document order, separated by `,`;
//! - a null (`~`, `null`, or nothing) is `null`;
//! - every other scalar is a JSON string of its text: quoted and block scalars by their value,
//!   plain scalars as written (`0x1F` stays `"0x1F"`, `yes` stays `"yes"`);
//! - anchors, aliases and merge keys are expanded first;
//! - strings escape `"` and `\` and the characters U+0000 to U+001F (as `\b \t \n \f \r` where
//!   JSON has a short form, else `\u00xx` with lower-case hex); nothing else is escaped;
//! - no whitespace outside strings; UTF-8; no trailing newline.
//!
//! The session hash is SHA-256 of those bytes, written as 64 lower-case hex digits.

use crate::diagnostic::{Diagnostics, FieldPath, Problem, Sink, push_json_string};
use crate::ids::SessionHash;
use crate::yaml::{self, Node, Value};

/// The canonical form of a YAML document (see the module documentation and
/// `docs/session-language.md`). Works on any single YAML document whose mapping keys are
/// unique scalars; it does not check that the document is a valid session.
pub fn canonical_form(source_name: &str, text: &str) -> Result<String, Diagnostics> {
    let mut sink = Sink::new(source_name);
    let root = match yaml::load(text) {
        Ok(root) => root,
        Err(e) => {
            sink.push(e.at, &FieldPath::root(), Problem::Syntax, e.message);
            return Err(sink.into_diagnostics().expect("one diagnostic"));
        }
    };
    check_keys(&root, &FieldPath::root(), &mut sink);
    sink.finish(())?;
    Ok(canonical(&root))
}

/// The session hash of a canonical form.
pub fn hash_canonical(canonical: &str) -> SessionHash {
    SessionHash::from_bytes(sha256(canonical.as_bytes()))
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    bytes
}

pub(crate) fn canonical(root: &Node) -> String {
    let mut out = String::new();
    write(root, &mut out);
    out
}

fn write(node: &Node, out: &mut String) {
    match &node.value {
        Value::Null => out.push_str("null"),
        Value::Scalar(s) | Value::Typed { fallback: s, .. } => push_json_string(out, s),
        Value::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let mut sorted: Vec<&(Node, Node)> = entries.iter().collect();
            sorted.sort_by(|a, b| key_text(&a.0).cmp(key_text(&b.0)));
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, key_text(k));
                out.push(':');
                write(v, out);
            }
            out.push('}');
        }
    }
}

/// Keys are checked to be scalars before a canonical form is made; this fallback only keeps
/// the function total.
fn key_text(key: &Node) -> &str {
    match &key.value {
        Value::Scalar(s) => s,
        _ => "",
    }
}

/// Reports mapping keys that are not scalars, and repeated keys, anywhere in the tree.
fn check_keys(node: &Node, path: &FieldPath, sink: &mut Sink) {
    match &node.value {
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                check_keys(item, &path.index(i), sink);
            }
        }
        Value::Map(entries) => {
            let mut seen = std::collections::HashMap::new();
            for (k, v) in entries {
                let Value::Scalar(key) = &k.value else {
                    sink.push(
                        k.at,
                        path,
                        Problem::WrongType,
                        format!("mapping keys must be strings, found {}", k.value.describe()),
                    );
                    continue;
                };
                if let Some(first) = seen.insert(key.as_str(), k.at) {
                    sink.push(
                        k.at,
                        &path.key(key),
                        Problem::DuplicateKey,
                        format!("duplicate key `{key}` (first at line {})", first.line),
                    );
                }
                check_keys(v, &path.key(key), sink);
            }
        }
        Value::Null | Value::Scalar(_) | Value::Typed { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_ignores_order_comments_and_style() {
        let a = "# a comment\nb: [1, 'two', ~]\na: {y: \"x\", x: 0x1F}\n";
        let b = "a:\n  x: 0x1F   # inline\n  y: x\nb:\n- \"1\"\n- two\n-\n";
        let ca = canonical_form("a", a).unwrap();
        assert_eq!(ca, r#"{"a":{"x":"0x1F","y":"x"},"b":["1","two",null]}"#);
        assert_eq!(canonical_form("b", b).unwrap(), ca);
    }

    #[test]
    fn block_scalars_and_escapes() {
        let c = canonical_form("t", "k: |\n  line \"1\"\n  \\ tab\there\n").unwrap();
        assert_eq!(c, r#"{"k":"line \"1\"\n\\ tab\there\n"}"#);
    }

    #[test]
    fn known_hash() {
        // SHA-256 of the 2 bytes `{}`.
        assert_eq!(
            hash_canonical(&canonical_form("e", "{}").unwrap()).to_string(),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn rejects_duplicate_and_complex_keys() {
        let err = canonical_form("d", "a: 1\nb:\n  c: 1\n  c: 2\n? [x]\n: 3\n").unwrap_err();
        let got: Vec<_> = err
            .iter()
            .map(|d| (d.position.line, d.path.to_string(), d.problem))
            .collect();
        assert_eq!(
            got,
            vec![
                (4, "b.c".to_string(), Problem::DuplicateKey),
                (5, String::new(), Problem::WrongType)
            ]
        );
    }
}
