//! The malformed-session corpus: each file in `tests/corpus` states, in its header, the
//! problems it must be rejected with:
//!
//! ```text
//! # expect: LINE:COLUMN FIELD-PATH PROBLEM     (one line per problem; `-` for no path)
//! # context: create | update HASH              (optional: the predecessor check to apply)
//! ```
//!
//! The reported problems must be exactly the expected ones, each at its place.

use std::collections::BTreeSet;
use std::path::Path;

use custos_policy::{Diagnostics, SessionHash, check_create, check_update, parse};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Expected {
    line: u32,
    column: u32,
    path: String,
    problem: String,
}

enum Context {
    None,
    Create,
    Update(SessionHash),
}

fn header(name: &str, text: &str) -> (BTreeSet<Expected>, Context) {
    let mut expected = BTreeSet::new();
    let mut context = Context::None;
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        if let Some(rest) = line.strip_prefix("# expect: ") {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            let [place, path, problem] = parts[..] else {
                panic!("{name}: malformed expectation `{line}`");
            };
            let (l, c) = place.split_once(':').expect("LINE:COLUMN");
            expected.insert(Expected {
                line: l.parse().unwrap(),
                column: c.parse().unwrap(),
                path: if path == "-" {
                    String::new()
                } else {
                    path.into()
                },
                problem: problem.into(),
            });
        } else if let Some(rest) = line.strip_prefix("# context: ") {
            context = match rest.split_whitespace().collect::<Vec<_>>()[..] {
                ["create"] => Context::Create,
                ["update", hash] => Context::Update(hash.parse().unwrap()),
                _ => panic!("{name}: malformed context `{line}`"),
            };
        }
    }
    assert!(!expected.is_empty(), "{name}: no `# expect:` line");
    (expected, context)
}

fn reported(d: &Diagnostics) -> BTreeSet<Expected> {
    d.iter()
        .map(|d| Expected {
            line: d.position.line,
            column: d.position.column,
            path: d.path.to_string(),
            problem: d.problem.to_string(),
        })
        .collect()
}

#[test]
fn every_malformed_session_is_rejected_at_the_right_place() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 30,
        "the corpus has only {} files",
        files.len()
    );

    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        let (expected, context) = header(&name, &text);
        let result = parse(&name, &text).and_then(|session| match &context {
            Context::None => Ok(()),
            Context::Create => check_create(&session),
            Context::Update(current) => check_update(&session, current),
        });
        match result {
            Ok(()) => failures.push(format!("{name}: accepted, expected {expected:?}")),
            Err(diagnostics) => {
                let got = reported(&diagnostics);
                if got != expected {
                    failures.push(format!(
                        "{name}:\n  expected {expected:?}\n  reported {got:?}\n  messages:\n    {}",
                        diagnostics.to_string().replace('\n', "\n    ")
                    ));
                }
                for d in &diagnostics {
                    assert_eq!(d.file.as_ref(), name, "diagnostics name the file");
                    assert!(!d.message.is_empty());
                    assert!(
                        !d.message.contains("not-a-real-secret"),
                        "{name}: a message quotes a secret: {d}"
                    );
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
