//! SCONE's `session create|update` semantics in `custos`, as real processes against a real
//! CAS (the `custos-cas` library serving on loopback in this test process):
//! - a session with a `predecessor` given to `session create` updates the session it names
//!   (SCONE CLI: "If the given session does contain a 'predecessor' field, and a session
//!   with the same name already exists, it will be updated");
//! - certificates ending within 30 days draw a warning from `session check` and, returned
//!   by the CAS, from `session create|update`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{attest_simulated_cas, err, out, start_cas, strs};

fn custos(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(args)
        .env_clear()
        .env("CUSTOS_CLI_CONFIG", config)
        .output()
        .expect("custos runs")
}

fn hash(o: &Output) -> String {
    out(o)
        .lines()
        .find_map(|l| l.strip_prefix("hash: "))
        .expect("a hash line")
        .to_owned()
}

const WARNING: &str = "warning: secret TLS: `valid_for` 7 days ends within 30 days of generation; the CAS renews the certificate when a service attests after half of that time, and a running program gets the renewed one only when it attests again (`refresh`)\n";

fn session(valid_for: &str, predecessor: Option<&str>) -> String {
    let mut text = format!(
        "name: ns/app\nversion: \"0.3\"\nsecrets:\n  - {{ name: KEY, kind: private-key }}\n  - {{ name: TLS, kind: x509, private_key: KEY, valid_for: {valid_for} }}\n"
    );
    if let Some(p) = predecessor {
        text.push_str(&format!("predecessor: {p}\n"));
    }
    text
}

#[test]
fn create_with_a_predecessor_updates_and_expiring_certificates_warn() {
    let dir = tempfile::tempdir().unwrap();
    let cas = start_cas(&dir.path().join("cas"));
    let addr = cas.addr.clone();
    let me = dir.path().join("me.json");
    let o = custos(&me, &strs(&attest_simulated_cas(&addr)));
    assert!(o.status.success(), "{}", err(&o));
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let ns = file("ns.yml", "name: ns\nversion: \"0.3\"\n");
    let o = custos(&me, &["session", "create", &ns]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(err(&o), "", "no warning for a namespace");

    // `check` warns locally; `create` prints the CAS's warnings.
    let first = file("v1.yml", &session("7 days", None));
    let o = custos(&me, &["session", "check", &first]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(err(&o), WARNING);
    let o = custos(&me, &["session", "create", &first]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(err(&o), WARNING);
    let v1 = hash(&o);

    // `create` with a predecessor is SCONE's update; the CAS holds the new version.
    let second = file("v2.yml", &session("1 year", Some(&v1)));
    let o = custos(&me, &["session", "create", &second]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(err(&o), "", "a year is not within 30 days");
    let v2 = hash(&o);
    assert_ne!(v1, v2);
    let o = custos(&me, &["session", "verify", &second]);
    assert_eq!(out(&o).trim(), v2, "{}", err(&o));

    // A stale predecessor is still refused, by the CAS, naming both hashes.
    let stale = file("v3.yml", &session("2 years", Some(&v1)));
    let o = custos(&me, &["session", "create", &stale]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains(&v2) && err(&o).contains(&v1),
        "{}",
        err(&o)
    );

    // With a predecessor but no such session: nothing to update.
    let orphan = file(
        "orphan.yml",
        &session("1 year", Some(&v2)).replace("ns/app", "ns/other"),
    );
    let o = custos(&me, &["session", "create", &orphan]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("session ns/other does not exist"),
        "{}",
        err(&o)
    );
}
