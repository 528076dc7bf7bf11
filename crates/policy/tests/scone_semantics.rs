//! Fields that mean what SCONE's session language v0.3 documents (issue #13). Each test
//! names the SCONE rule it pins; the refusals are in the corpus (files 61–69).

use std::time::Duration;

use custos_policy::placeholder::{Format, scan};
use custos_policy::{Generation, SecretSource, Session, parse, warnings};

const SIGNER: &str = "291645fc02749ef4f895da626d1ffe9bf45d34aad2177507844e1b87d220219f";

fn session(body: &str) -> Session {
    let text = format!("name: ns/app\nversion: \"0.3\"\n{body}");
    parse("s.yml", &text).unwrap_or_else(|d| panic!("{d}"))
}

fn signer_range(signer_fields: &str) -> (u16, u16) {
    let s = session(&format!(
        "services:\n  - name: app\n    attestation:\n      - signer: {{mrsigner: \"{SIGNER}\", isvprodid: 1{signer_fields}}}\n"
    ));
    let signer = s.services[0].attestation[0].signer.unwrap();
    (signer.min_isvsvn, signer.max_isvsvn)
}

#[test]
fn isvsvn_is_an_exact_version_and_isvsvn_min_max_a_range() {
    // SCONE: "it can be a specific version (`isvsvn`), or a range of versions (`isvsvn_min`
    // and/or `isvsvn_max`)"; "if omitted, it is not being checked"; bounds are inclusive.
    assert_eq!(signer_range(", isvsvn: 4"), (4, 4));
    assert_eq!(signer_range(", isvsvn_min: 2, isvsvn_max: 5"), (2, 5));
    assert_eq!(signer_range(", isvsvn_min: 13"), (13, u16::MAX));
    assert_eq!(signer_range(", isvsvn_max: 7"), (0, 7));
    assert_eq!(signer_range(""), (0, u16::MAX));
}

#[test]
fn an_explicit_binary_value_is_hex() {
    // SCONE: "explicit secret values have to be specified encoded as a hexadecimal string".
    let s = session("secrets:\n  - {name: K, kind: binary, value: DEADBEEF}\n");
    assert!(matches!(s.secrets[0].source, SecretSource::Value(_)));
    // 64 hex digits are also base64: they are read as hex (checked in the CAS's values).
    session(&format!(
        "secrets:\n  - {{name: K, kind: binary, value: \"{}\"}}\n",
        "ab".repeat(32)
    ));
}

#[test]
fn generated_ascii_and_binary_secrets_default_to_20() {
    // SCONE: `size` "Optional. Default value: `20`" for ascii (characters) and binary (bytes).
    let s = session("secrets:\n  - {name: A, kind: ascii}\n  - {name: B, kind: binary}\n");
    assert!(matches!(
        s.secrets[0].source,
        SecretSource::Generated(Generation::Ascii { size: 20 })
    ));
    assert!(matches!(
        s.secrets[1].source,
        SecretSource::Generated(Generation::Binary { size: 20 })
    ));
}

fn valid_for(spec: &str) -> Option<Duration> {
    let s = session(&format!(
        "secrets:\n  - {{name: K, kind: private-key}}\n  - {{name: C, kind: x509, private_key: K{spec}}}\n"
    ));
    let SecretSource::Generated(Generation::X509(request)) = &s.secrets[1].source else {
        panic!("a generated certificate")
    };
    request.valid_for
}

#[test]
fn a_certificate_without_valid_for_does_not_expire() {
    // SCONE: "If omitted, generated certificates stay valid for a virtually unlimited amount
    // of time"; durations like `1 year` or `59d`.
    assert_eq!(valid_for(""), None);
    assert_eq!(
        valid_for(", valid_for: 59d"),
        Some(Duration::from_secs(59 * 86_400))
    );
    assert_eq!(
        valid_for(", valid_for: 1 year"),
        Some(Duration::from_secs(365 * 86_400))
    );
}

#[test]
fn certificates_ending_within_30_days_draw_a_warning() {
    let with = |spec: &str| {
        warnings(&session(&format!(
            "secrets:\n  - {{name: K, kind: private-key}}\n  - {{name: C, kind: x509, private_key: K{spec}}}\n"
        )))
    };
    assert_eq!(
        with(", valid_for: 7 days"),
        [
            "secret C: `valid_for` 7 days ends within 30 days of generation; the CAS renews the certificate when a service attests after half of that time, and a running program gets the renewed one only when it attests again (`refresh`)"
        ]
    );
    assert_eq!(with(", valid_for: 30 days").len(), 1);
    assert!(with(", valid_for: 31 days").is_empty());
    assert!(with("").is_empty());
}

/// `renew_key` of a generated certificate (a Custos extension; its refusals are corpus
/// files 78–81): false unless stated.
fn renew_key(spec: &str) -> bool {
    let s = session(&format!(
        "secrets:\n  - {{name: CA, kind: x509-ca{spec}}}\n"
    ));
    match &s.secrets[0].source {
        SecretSource::Generated(Generation::X509Ca(request)) => request.renew_key,
        other => panic!("{other:?}"),
    }
}

#[test]
fn renew_key_is_false_unless_a_certificate_without_private_key_says_true() {
    assert!(!renew_key(""));
    assert!(!renew_key(", renew_key: false"));
    assert!(renew_key(", renew_key: true"));
    assert!(renew_key(", valid_for: 90 days, renew_key: true"));
}

#[test]
fn chain_and_legacy_chain_are_different_formats() {
    // SCONE: `:chain` starts at the first intermediate and excludes the certificate; the
    // legacy `.chain` is the reverse, root first and the certificate last (included).
    let found: Vec<Format> = scan("$$SCONE::C:chain$$ $$SCONE::C.chain$$")
        .into_iter()
        .map(|p| p.unwrap().format)
        .collect();
    assert_eq!(found, [Format::Chain, Format::LegacyChain]);
}

#[test]
fn refusals_name_the_difference_and_never_quote_a_key() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/67-aad-token-inline-pem.yml"
    ))
    .unwrap();
    let d = parse("s.yml", &text).unwrap_err().to_string();
    assert!(d.contains("inline PEM private key (SCONE's form)"), "{d}");
    assert!(!d.contains("MIIE") && !d.contains("BEGIN"), "{d}");
}

#[test]
fn scone_features_custos_lacks_are_refused_not_ignored() {
    const M: &str = "291645fc02749ef4f895da626d1ffe9bf45d34aad2177507844e1b87d220219f";
    let svc = format!("services:\n  - name: app\n    mrenclaves: [\"{M}\"]\n");
    let cases: Vec<(&str, String)> = vec![
        ("salt", "salt: fa9af327a1100a32fcd1a07e929ec271\n".into()),
        ("namespace_hash", format!("namespace_hash: {M}\n")),
        ("secret_config", "secret_config: {}\n".into()),
        ("singleton_enclaves", "security:\n  singleton_enclaves: true\n".into()),
        ("service_access_token", "security:\n  service_access_token: abc\n".into()),
        (
            "one_time_password_shared_secret",
            "security:\n  attestation:\n    one_time_password_shared_secret: BASE32SECRET3232BASE32SECRET3232\n".into(),
        ),
        (
            "must_be_sgx_local",
            "security:\n  attestation:\n    must_be_sgx_local: true\n".into(),
        ),
        ("aepic-leak", "security:\n  attestation:\n    tolerate: [aepic-leak]\n".into()),
        (
            "local-attestation-trust-cas-tcb",
            "security:\n  attestation:\n    tolerate: [local-attestation-trust-cas-tcb]\n".into(),
        ),
        (
            "provide_secrets",
            "images:\n  - name: i\n    provide_secrets: [A]\n".into(),
        ),
        (
            "decryption_key",
            "secrets:\n  - name: T\n    kind: aad-token\n    tenant_id: t\n    client_id: c\n    application_secret: s\n  - name: A\n    kind: ascii\n    import_akv: {vault: v.vault.azure.net, secret_name: a, decryption_key: K}\n".into(),
        ),
        (
            "export namespace",
            "secrets:\n  - name: A\n    kind: ascii\n    export: [{namespace: other}]\n".into(),
        ),
        (
            "export cas_url",
            "secrets:\n  - name: A\n    kind: ascii\n    export: [{cas_url: cas.example.com, session: s}]\n".into(),
        ),
        ("public-key", "secrets:\n  - {name: P, kind: public-key}\n".into()),
        ("config-fragment", "secrets:\n  - {name: P, kind: config-fragment, value: x}\n".into()),
        ("pgp-key", "secrets:\n  - {name: P, kind: pgp-key}\n".into()),
        (
            "placeholder in attestation",
            "secrets:\n  - {name: L, kind: ascii, value: x}\nservices:\n  - name: app\n    attestation: [{mrenclave: [\"$$SCONE::L$$\"]}]\n".into(),
        ),
        (
            "placeholder in access_policy",
            "secrets:\n  - {name: L, kind: ascii, value: x}\naccess_policy:\n  read: [\"$$SCONE::L$$\"]\n".into(),
        ),
        (
            "signer in access_policy",
            "access_policy:\n  update: [{signer: x}]\n".into(),
        ),
        ("list_sessions", "access_policy:\n  list_sessions: [CREATOR]\n".into()),
        (
            "base32",
            format!("secrets:\n  - {{name: B, kind: binary}}\n{svc}    environment: {{B: \"$$SCONE::B:base32$$\"}}\n"),
        ),
        (
            "escape(json)",
            format!("secrets:\n  - {{name: B, kind: ascii}}\n{svc}    environment: {{B: \"$$SCONE::B|escape(json)$$\"}}\n"),
        ),
    ];
    for (what, body) in cases {
        let text = format!("name: ns/app\nversion: \"0.3\"\n{body}");
        assert!(
            parse("s.yml", &text).is_err(),
            "{what} was accepted:\n{text}"
        );
    }
}
