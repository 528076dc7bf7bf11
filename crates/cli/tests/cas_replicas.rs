//! `custos` with a CAS named by its replicas, as real processes against real `custos-cas`
//! processes: `custos cas attest a,b` attests and pins each replica and refuses one with
//! another key (both key hashes named); the pin lookup wants every replica pinned to one key;
//! `custos cas health` and session commands go through the list.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{attest_simulated_cas, code, err, out, start_cas, strs};

fn custos(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(args)
        .env_clear()
        .env("CUSTOS_CLI_CONFIG", config)
        .output()
        .expect("custos runs")
}

/// The key hash `custos cas list` shows for `addr`.
fn listed_key(config: &Path, addr: &str) -> String {
    let list = out(&custos(config, &["cas", "list"]));
    list.lines()
        .find(|l| l[2..].starts_with(&format!("{addr} ")))
        .and_then(|l| l.split("key_hash=").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{addr} not in {list}"))
        .to_owned()
}

#[test]
fn replicas_are_attested_each_pinned_and_used_as_one_cas() {
    let dir = tempfile::tempdir().unwrap();
    let cas = start_cas(&dir.path().join("cas"));
    // One CAS under two names: the same key behind both entries.
    let port = cas.addr.rsplit_once(':').unwrap().1;
    let by_name = format!("localhost:{port}");
    let list = format!("{},{by_name}", cas.addr);
    let alice = dir.path().join("alice.json");

    let o = custos(&alice, &strs(&attest_simulated_cas(&list)));
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(
        out(&o).starts_with(&format!("CAS {list} attested and pinned (default CAS)\n")),
        "{}",
        out(&o)
    );
    assert!(
        out(&o).contains(&format!(
            "replicas: {}, {by_name} ({}) (each attested, one key)",
            cas.addr, cas.addr
        )),
        "{}",
        out(&o)
    );
    let listed = out(&custos(&alice, &["cas", "list"]));
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.lines().all(|l| l.starts_with("* ")), "{listed}");
    assert_eq!(listed_key(&alice, &cas.addr), listed_key(&alice, &by_name));

    // The default CAS is the list: health and sessions go through it.
    let o = custos(&alice, &["cas", "health"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out(&o).contains(": ok\n"), "{}", out(&o));
    assert!(out(&o).contains("version: custos-cas "), "{}", out(&o));
    let ns = dir.path().join("ns.yml");
    std::fs::write(&ns, "name: replicated-ns\nversion: \"0.3\"\n").unwrap();
    let o = custos(&alice, &["session", "create", ns.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let o = custos(
        &alice,
        &["session", "read", "--cas", &by_name, "replicated-ns"],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));

    // A list with a replica not attested yet: refused, naming it and what to attest.
    let other = "127.0.0.1:9";
    let o = custos(
        &alice,
        &["session", "read", "--cas", &format!("{list},{other}"), "x"],
    );
    assert_eq!(code(&o), 1);
    assert_eq!(
        err(&o).trim(),
        format!("CAS {other} is not attested: run `custos cas attest {list},{other}` first")
    );
    let o = custos(
        &alice,
        &["cas", "set-default", &format!("{by_name},{other}")],
    );
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("is not attested"), "{}", err(&o));
    let reversed = format!("{by_name},{}", cas.addr);
    let o = custos(&alice, &["cas", "set-default", &reversed]);
    assert_eq!(
        (code(&o), out(&o).trim()),
        (0, format!("default CAS: {reversed}").as_str())
    );
    let o = custos(&alice, &["cas", "health"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let o = custos(&alice, &["cas", "set-default", &cas.addr]);
    assert_eq!(
        (code(&o), out(&o).trim()),
        (0, format!("default CAS: {}", cas.addr).as_str())
    );
}

#[test]
fn a_replica_with_another_key_is_refused_at_attestation_and_at_use() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_cas(&dir.path().join("first"));
    let second = start_cas(&dir.path().join("second"));
    let alice = dir.path().join("alice.json");

    // Attested together: the second's key is not the first's.
    let list = format!("{},{}", first.addr, second.addr);
    let o = custos(&alice, &strs(&attest_simulated_cas(&list)));
    assert_eq!(code(&o), 1, "{}", out(&o));
    let line = err(&o);
    assert!(
        line.starts_with(&format!("CAS {}: key hash: expected ", second.addr)),
        "{line}"
    );
    assert!(line.contains("(the first replica's), actual "), "{line}");
    assert!(
        out(&custos(&alice, &["cas", "list"])).is_empty(),
        "nothing is pinned"
    );

    // Attested one by one, then used as one CAS: refused naming both pins.
    for addr in [&first.addr, &second.addr] {
        let o = custos(&alice, &strs(&attest_simulated_cas(addr)));
        assert_eq!(code(&o), 0, "{}", err(&o));
    }
    let (first_key, second_key) = (
        listed_key(&alice, &first.addr),
        listed_key(&alice, &second.addr),
    );
    assert_ne!(first_key, second_key);
    let o = custos(&alice, &["cas", "health", "--cas", &list]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        err(&o).trim(),
        format!(
            "CAS {}: pinned key hash {second_key}, expected {first_key} as pinned for {}: replicas of one CAS serve one key; attest them together: `custos cas attest {list}`",
            second.addr, first.addr
        )
    );
    let o = custos(&alice, &["cas", "set-default", &list]);
    assert_eq!(code(&o), 1);
    // Each alone still works.
    let o = custos(&alice, &["cas", "health", "--cas", &second.addr]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(
        out(&o).starts_with(&format!("CAS {}: ok\n", second.addr)),
        "{}",
        out(&o)
    );
}

#[test]
fn bad_lists_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.json");
    let o = custos(&config, &["cas", "health", "--cas", "a,,b"]);
    assert_eq!(code(&o), 2);
    assert_eq!(
        err(&o).trim(),
        "CAS address list \"a,,b\": empty CAS address"
    );
    let o = custos(&config, &["cas", "set-default", "a,a:8081"]);
    assert_eq!(code(&o), 2);
    assert!(err(&o).contains("a:8081 is listed twice"), "{}", err(&o));
}
