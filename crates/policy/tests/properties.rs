//! Property tests: the session hash ignores key order and formatting, and changes when any
//! value changes; templating and rendering leave text without variables or placeholders alone.

use proptest::prelude::*;

use custos_policy::{canonical_form, parse, placeholder, template};

/// A YAML data tree with string scalars and unique keys.
#[derive(Clone, Debug)]
enum Tree {
    Scalar(String),
    List(Vec<Tree>),
    Map(Vec<(String, Tree)>),
}

/// Scalar text: printable ASCII, some non-ASCII, some control characters.
fn scalar_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9][A-Za-z0-9._-]{0,10}",
        3 => "[ -~]{0,12}",
        1 => "[a-zé€😀\n\t\"' ]{0,8}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    "k[a-z0-9_]{0,7}"
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = scalar_text().prop_map(Tree::Scalar);
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Tree::List),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Tree::Map(m.into_iter().collect())),
        ]
    })
}

fn document() -> impl Strategy<Value = Tree> {
    prop::collection::btree_map(key(), tree(), 1..6)
        .prop_map(|m| Tree::Map(m.into_iter().collect()))
}

/// Deterministic choices for one rendering.
struct Choices(u64);

impl Choices {
    fn next(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.next(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

fn plain_ok(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !matches!(s, "null" | "Null" | "NULL")
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn scalar(s: &str, c: &mut Choices) -> String {
    let single_ok = !s.chars().any(|c| c.is_control());
    match c.next(3) {
        0 if plain_ok(s) => s.to_owned(),
        1 if single_ok => format!("'{}'", s.replace('\'', "''")),
        _ => double_quoted(s),
    }
}

fn flow(t: &Tree, c: &mut Choices) -> String {
    match t {
        Tree::Scalar(s) => scalar(s, c),
        Tree::List(items) => {
            let parts: Vec<String> = items.iter().map(|i| flow(i, c)).collect();
            format!("[{}]", parts.join(", "))
        }
        Tree::Map(entries) => {
            let mut entries: Vec<&(String, Tree)> = entries.iter().collect();
            c.shuffle(&mut entries);
            let parts: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k}: {}", flow(v, c)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

fn comment(c: &mut Choices) -> &'static str {
    if c.next(3) == 0 { "  # a comment" } else { "" }
}

/// Block style, key order shuffled, some values in flow style, comments sprinkled.
fn block(t: &Tree, indent: usize, c: &mut Choices, out: &mut String) {
    let pad = " ".repeat(indent);
    match t {
        Tree::Scalar(_) => unreachable!("scalars are written by their parent"),
        Tree::List(items) => {
            for item in items {
                match item {
                    Tree::Scalar(s) => {
                        out.push_str(&format!("{pad}- {}{}\n", scalar(s, c), comment(c)));
                    }
                    nested if is_empty(nested) || c.next(4) == 0 => {
                        out.push_str(&format!("{pad}- {}\n", flow(nested, c)));
                    }
                    nested => {
                        out.push_str(&format!("{pad}-{}\n", comment(c)));
                        block(nested, indent + 2, c, out);
                    }
                }
            }
        }
        Tree::Map(entries) => {
            let mut entries: Vec<&(String, Tree)> = entries.iter().collect();
            c.shuffle(&mut entries);
            for (k, v) in entries {
                if c.next(5) == 0 {
                    out.push_str(&format!("{pad}# between entries\n\n"));
                }
                match v {
                    Tree::Scalar(s) => {
                        out.push_str(&format!("{pad}{k}: {}{}\n", scalar(s, c), comment(c)));
                    }
                    nested if is_empty(nested) || c.next(4) == 0 => {
                        out.push_str(&format!("{pad}{k}: {}\n", flow(nested, c)));
                    }
                    nested => {
                        out.push_str(&format!("{pad}{k}:{}\n", comment(c)));
                        block(nested, indent + 2, c, out);
                    }
                }
            }
        }
    }
}

fn is_empty(t: &Tree) -> bool {
    matches!(t, Tree::List(v) if v.is_empty()) || matches!(t, Tree::Map(v) if v.is_empty())
}

fn render(t: &Tree, seed: u64) -> String {
    let mut c = Choices(seed | 1);
    if c.next(4) == 0 {
        return flow(t, &mut c);
    }
    let mut out = String::from("# rendering\n");
    block(t, 0, &mut c, &mut out);
    out
}

/// Changes the `n`-th scalar (in a fixed walk order), wrapping around; returns whether one was changed.
fn mutate(t: &mut Tree, n: &mut usize) -> bool {
    match t {
        Tree::Scalar(s) => {
            if *n == 0 {
                s.push('x');
                true
            } else {
                *n -= 1;
                false
            }
        }
        Tree::List(items) => items.iter_mut().any(|i| mutate(i, n)),
        Tree::Map(entries) => entries.iter_mut().any(|(_, v)| mutate(v, n)),
    }
}

fn count_scalars(t: &Tree) -> usize {
    match t {
        Tree::Scalar(_) => 1,
        Tree::List(items) => items.iter().map(count_scalars).sum(),
        Tree::Map(entries) => entries.iter().map(|(_, v)| count_scalars(v)).sum(),
    }
}

const M: &str = "291645fc02749ef4f895da626d1ffe9bf45d34aad2177507844e1b87d220219f";

/// A valid session as a tree: secrets, and services whose environment refers to them.
fn session() -> impl Strategy<Value = Tree> {
    let secrets =
        prop::collection::btree_map("S[A-Z0-9_]{0,6}", (prop::bool::ANY, 1u32..100), 0..5);
    let env_literal = "[a-z0-9 /:.-]{0,12}";
    (
        "[a-z][a-z0-9-]{0,7}",
        secrets,
        prop::collection::vec(
            prop::collection::btree_map("V[A-Z_]{0,5}", (env_literal, 0usize..8), 1..5),
            1..4,
        ),
    )
        .prop_map(|(name, secrets, services)| {
            let s = |v: &str| Tree::Scalar(v.to_owned());
            let names: Vec<&String> = secrets.keys().collect();
            let secret_list = secrets
                .iter()
                .map(|(n, (binary, size))| {
                    Tree::Map(vec![
                        ("name".into(), s(n)),
                        ("kind".into(), s(if *binary { "binary" } else { "ascii" })),
                        ("size".into(), s(&size.to_string())),
                    ])
                })
                .collect();
            let service_list = services
                .iter()
                .enumerate()
                .map(|(i, env)| {
                    let env = env
                        .iter()
                        .map(|(k, (literal, pick))| {
                            let value = match names.get(*pick) {
                                Some(secret) if pick % 2 == 0 => format!("$$SCONE::{secret}$$"),
                                _ => literal.clone(),
                            };
                            (k.clone(), s(&value))
                        })
                        .collect();
                    Tree::Map(vec![
                        ("name".into(), s(&format!("svc-{i}"))),
                        ("mrenclaves".into(), Tree::List(vec![s(M)])),
                        ("environment".into(), Tree::Map(env)),
                    ])
                })
                .collect();
            Tree::Map(vec![
                ("name".into(), s(&format!("ns/{name}"))),
                ("version".into(), s("0.3")),
                ("secrets".into(), Tree::List(secret_list)),
                ("services".into(), Tree::List(service_list)),
            ])
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn canonical_form_ignores_order_and_formatting(doc in document(), a: u64, b: u64) {
        let (ra, rb) = (render(&doc, a), render(&doc, b));
        let ca = canonical_form("a", &ra).map_err(|e| TestCaseError::fail(format!("{e}\n{ra}")))?;
        let cb = canonical_form("b", &rb).map_err(|e| TestCaseError::fail(format!("{e}\n{rb}")))?;
        prop_assert_eq!(ca, cb, "\n{}\n---\n{}", ra, rb);
    }

    #[test]
    fn canonical_form_is_the_compact_sorted_json_serde_json_writes(doc in document(), seed: u64) {
        // An independent encoder: serde_json's maps are sorted by key, its strings escape
        // exactly `"`, `\\` and control characters.
        let canonical = canonical_form("a", &render(&doc, seed)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&canonical)
            .map_err(|e| TestCaseError::fail(format!("not JSON: {e}: {canonical}")))?;
        prop_assert_eq!(serde_json::to_string(&value).unwrap(), canonical);
    }

    #[test]
    fn canonical_form_changes_with_any_value(doc in document(), pick: usize, seed: u64) {
        let scalars = count_scalars(&doc);
        prop_assume!(scalars > 0);
        let mut changed = doc.clone();
        prop_assert!(mutate(&mut changed, &mut (pick % scalars)));
        let before = canonical_form("a", &render(&doc, seed)).unwrap();
        let after = canonical_form("b", &render(&changed, seed)).unwrap();
        prop_assert_ne!(before, after);
    }

    #[test]
    fn session_hash_ignores_order_and_formatting(s in session(), a: u64, b: u64) {
        let (ra, rb) = (render(&s, a), render(&s, b));
        let sa = parse("a.yml", &ra).map_err(|e| TestCaseError::fail(format!("{e}\n{ra}")))?;
        let sb = parse("b.yml", &rb).map_err(|e| TestCaseError::fail(format!("{e}\n{rb}")))?;
        prop_assert_eq!(sa.hash, sb.hash);
    }

    #[test]
    fn session_hash_changes_with_any_value(s in session(), pick: usize, seed: u64) {
        // Every scalar of the generated sessions can change and stay valid, except names
        // that others refer to and the fixed ones; retry until a valid variant is found.
        let scalars = count_scalars(&s);
        let before = parse("a.yml", &render(&s, seed)).unwrap().hash;
        let mut tried = 0;
        for offset in 0..scalars {
            let mut changed = s.clone();
            mutate(&mut changed, &mut ((pick + offset) % scalars));
            if let Ok(after) = parse("b.yml", &render(&changed, seed)) {
                prop_assert_ne!(before, after.hash);
                tried += 1;
            }
        }
        prop_assert!(tried > 0);
    }

    #[test]
    fn templating_leaves_text_without_variables_alone(text in "[^$]{0,64}", dollars in "(\\$\\$[A-Za-z:]{0,6}){0,3}") {
        let t = format!("{text}{dollars}");
        let expanded = template::expand(&t, |_| None).unwrap();
        prop_assert_eq!(expanded.as_str(), t.as_str());
    }

    #[test]
    fn rendering_with_the_placeholder_text_is_the_identity(
        parts in prop::collection::vec(("[^$]{0,10}", "[A-Z_]{1,6}", prop::sample::select(vec!["", ":hex", ".crt", ":chain"])), 0..5)
    ) {
        let text: String = parts.iter().map(|(t, n, f)| format!("{t}$$SCONE::{n}{f}$$")).collect();
        let out = placeholder::render(&text, |p| Ok::<_, placeholder::Unresolved>(p.text.to_owned())).unwrap();
        prop_assert_eq!(out.as_str(), text.as_str());
        prop_assert_eq!(placeholder::scan(&text).len(), parts.len());
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse("any.yml", &text);
        let _ = canonical_form("any.yml", &text);
    }
}
