//! Parse + validate arbitrary text, and check what must hold for every input:
//! no panic; every problem located in the text; an accepted session's hash is the SHA-256 of
//! its canonical form; placeholder rendering and templating never fail on well-formed input.

#![no_main]

use custos_policy::{
    SessionHash, canonical_form, check_create, check_update, hash_canonical, parse,
};
use custos_policy::{placeholder, template};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // YAML breaks lines at LF, CRLF and a lone CR.
    let lines =
        1 + text.bytes().filter(|b| *b == b'\n').count() as u32 + text.matches('\r').count() as u32
            - text.matches("\r\n").count() as u32;

    match parse("fuzz.yml", text) {
        Ok(session) => {
            let canonical =
                canonical_form("fuzz.yml", text).expect("an accepted session has a canonical form");
            assert_eq!(session.hash, hash_canonical(&canonical));
            let _ = check_create(&session);
            let _ = check_update(&session, &SessionHash::from_bytes([7; 32]));
            // The CAS renders every templated field; a resolver that knows every secret
            // must render them all.
            let resolve = |p: &placeholder::Placeholder<'_>| {
                session
                    .secret(p.secret.as_str())
                    .map(|_| "value")
                    .ok_or(placeholder::Unresolved::UnknownSecret)
            };
            for service in &session.services {
                for value in service.environment.values() {
                    placeholder::render(value, resolve).expect("validated placeholders render");
                }
                for arg in service.command.iter().flatten() {
                    placeholder::render(arg, resolve).expect("validated placeholders render");
                }
            }
            for image in &session.images {
                for file in &image.injection_files {
                    placeholder::render(&file.content, resolve)
                        .expect("validated placeholders render");
                }
            }
        }
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty());
            for d in &diagnostics {
                assert!(d.position.line >= 1 && d.position.column >= 1, "{d}");
                assert!(d.position.line <= lines, "{d} beyond {lines} lines");
            }
        }
    }

    let expanded = template::expand(text, |name| {
        (name.len() % 2 == 0).then(|| name.to_lowercase())
    });
    if let Ok(expanded) = expanded {
        let _ = parse("fuzz.yml", &expanded);
    }
});
