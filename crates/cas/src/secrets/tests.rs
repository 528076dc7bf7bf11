use super::*;

struct NoImports;

impl ImportResolver for NoImports {
    fn resolve(&self, _: &Session, _: &SessionImport) -> Result<Option<SecretValue>, String> {
        Err("no imports here".into())
    }
}

fn session(text: &str) -> Session {
    custos_policy::parse("test.yml", text).unwrap()
}

const ALL_KINDS: &str = r#"
name: ns/all
version: "0.3"
security: { attestation: { mode: none } }
secrets:
  - { name: PASSWORD, kind: ascii, size: 40 }
  - { name: BLOB, kind: binary, size: 16 }
  - { name: K256, kind: private-key }
  - { name: K384, kind: private-key, key_type: P-384 }
  - { name: KED, kind: private-key, key_type: Ed25519 }
  - { name: KRSA, kind: private-key, key_type: RSA-2048, export_public: true }
  - { name: ROOT, kind: x509-ca, common_name: "Test Root" }
  - name: INTER
    kind: x509-ca
    issuer: ROOT
    common_name: Test Intermediate
  - name: SERVER
    kind: x509
    private_key: K256
    issuer: INTER
    common_name: api.example
    dns: [api.example, localhost]
    valid_for: 30 days
    endpoint: server
    export_public: true
"#;

#[test]
fn every_kind_is_generated_and_chains_verify() {
    let s = session(ALL_KINDS);
    let prepared = prepare(&s, None).unwrap();
    let values = materialize(&s, None, &prepared, &NoImports).unwrap();
    let Some(SecretValue::Ascii { value }) = values.values.get("PASSWORD") else {
        panic!("no ascii")
    };
    assert_eq!(value.len(), 40);
    assert!(value.bytes().all(|b| b.is_ascii_alphanumeric()));
    let Some(SecretValue::Binary { value }) = values.values.get("BLOB") else {
        panic!("no binary")
    };
    assert_eq!(value.len(), 16);
    for (name, key_type) in [
        ("K256", "P-256"),
        ("K384", "P-384"),
        ("KED", "Ed25519"),
        ("KRSA", "RSA-2048"),
    ] {
        match values.values.get(name) {
            Some(SecretValue::PrivateKey { key_type: t, pkcs8 }) => {
                assert_eq!(t, key_type);
                KeyPair::try_from(pkcs8.as_slice()).unwrap();
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    let Some(SecretValue::Certificate {
        ca: false,
        der,
        chain,
        pkcs8,
    }) = values.values.get("SERVER")
    else {
        panic!("no server certificate")
    };
    assert_eq!(chain.len(), 2, "intermediate and root");
    let Some(SecretValue::PrivateKey { pkcs8: k256, .. }) = values.values.get("K256") else {
        panic!()
    };
    assert_eq!(pkcs8, k256, "the certificate holds the named key");
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let (_, inter) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let (_, root) = x509_parser::parse_x509_certificate(&chain[1]).unwrap();
    cert.verify_signature(Some(inter.public_key())).unwrap();
    inter.verify_signature(Some(root.public_key())).unwrap();
    root.verify_signature(None).unwrap();
    assert_eq!(cert.issuer(), inter.subject());
    assert!(cert.subject().to_string().contains("api.example"));
    let validity = cert.validity().time_to_expiration().unwrap();
    assert!(validity.whole_days() >= 29 && validity.whole_days() <= 30);
    let sans = cert.subject_alternative_name().unwrap().unwrap();
    assert_eq!(sans.value.general_names.len(), 2);
    assert!(inter.is_ca() && root.is_ca() && !cert.is_ca());

    let public = public_values(&s, &values);
    assert_eq!(public.keys().collect::<Vec<_>>(), ["KRSA", "SERVER"]);
    assert!(public["KRSA"].1.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert!(
        public["SERVER"]
            .1
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(!format!("{values:?}").contains(value_text(&values)));
}

fn value_text(values: &SecretValues) -> &str {
    match values.values.get("PASSWORD") {
        Some(SecretValue::Ascii { value }) => value,
        _ => unreachable!(),
    }
}

#[test]
fn update_keeps_random_values_and_renews_keys_and_certificates() {
    let s = session(ALL_KINDS);
    let first = materialize(&s, None, &prepare(&s, None).unwrap(), &NoImports).unwrap();
    let second = materialize(
        &s,
        Some(&first),
        &prepare(&s, Some(&first)).unwrap(),
        &NoImports,
    )
    .unwrap();
    assert_eq!(first.values["PASSWORD"], second.values["PASSWORD"]);
    assert_eq!(first.values["BLOB"], second.values["BLOB"]);
    assert_ne!(first.values["K256"], second.values["K256"]);
    assert_ne!(first.values["SERVER"], second.values["SERVER"]);

    // A kind change does not migrate.
    let changed = session(&ALL_KINDS.replace(
        "{ name: BLOB, kind: binary, size: 16 }",
        "{ name: BLOB, kind: ascii, size: 16 }",
    ));
    let third = materialize(
        &changed,
        Some(&second),
        &prepare(&changed, Some(&second)).unwrap(),
        &NoImports,
    )
    .unwrap();
    assert_eq!(third.values["BLOB"].kind(), SecretKind::Ascii);
}

#[test]
fn values_round_trip_through_bytes() {
    let s = session(ALL_KINDS);
    let values = materialize(&s, None, &prepare(&s, None).unwrap(), &NoImports).unwrap();
    assert_eq!(
        SecretValues::from_bytes(&values.to_bytes()).unwrap(),
        values
    );
    assert!(SecretValues::from_bytes(b"{").is_err());
}

#[test]
fn key_generation_per_session_is_bounded() {
    let mut text = String::from(
        "name: many\nversion: \"0.3\"\nsecurity: { attestation: { mode: none } }\nsecrets:\n",
    );
    for i in 0..=MAX_GENERATED_KEYS {
        text.push_str(&format!("  - {{ name: K{i}, kind: private-key }}\n"));
    }
    let err = prepare(&session(&text), None).unwrap_err();
    assert_eq!(
        err,
        SecretError::TooManyKeys {
            found: MAX_GENERATED_KEYS + 1,
            max: MAX_GENERATED_KEYS
        }
    );
}

const MIGRATING: &str = r#"
name: ns/migrating
version: "0.3"
security: { attestation: { mode: none } }
secrets:
  - { name: KEY, kind: private-key, migrate: true }
  - { name: ROOT, kind: x509-ca, common_name: Root, migrate: true }
  - { name: LEAF, kind: x509, private_key: KEY, issuer: ROOT, common_name: leaf, migrate: true }
  - { name: FRESH, kind: x509, private_key: KEY, issuer: ROOT, common_name: fresh }
  - { name: OTHER, kind: private-key }
"#;

fn update(text: &str, previous: &SecretValues) -> SecretValues {
    let s = session(text);
    let prepared = prepare(&s, Some(previous)).unwrap();
    materialize(&s, Some(previous), &prepared, &NoImports).unwrap()
}

fn key_of_value(value: &SecretValue) -> &[u8] {
    match value {
        SecretValue::PrivateKey { pkcs8, .. } | SecretValue::Certificate { pkcs8, .. } => pkcs8,
        _ => panic!("no key"),
    }
}

#[test]
fn migrate_keeps_keys_and_certificates_whose_key_and_issuer_are_unchanged() {
    let s = session(MIGRATING);
    let first = materialize(&s, None, &prepare(&s, None).unwrap(), &NoImports).unwrap();
    // Only OTHER needs a new key on update: KEY and ROOT's key migrate.
    assert_eq!(prepare(&s, Some(&first)).unwrap().keys.len(), 1);
    let second = update(MIGRATING, &first);
    for kept in ["KEY", "ROOT", "LEAF"] {
        assert_eq!(first.values[kept], second.values[kept], "{kept}");
    }
    assert_ne!(first.values["OTHER"], second.values["OTHER"]);
    assert_ne!(
        first.values["FRESH"], second.values["FRESH"],
        "re-issued without migrate"
    );
    assert_eq!(
        key_of_value(&first.values["FRESH"]),
        key_of_value(&second.values["FRESH"]),
        "with the migrated key"
    );

    // A new key type makes a new key, so the certificate on it is re-issued.
    let changed = MIGRATING.replace(
        "{ name: KEY, kind: private-key, migrate: true }",
        "{ name: KEY, kind: private-key, key_type: P-384, migrate: true }",
    );
    let third = update(&changed, &second);
    assert_ne!(second.values["KEY"], third.values["KEY"]);
    assert_ne!(second.values["LEAF"], third.values["LEAF"]);
    assert_eq!(second.values["ROOT"], third.values["ROOT"]);
    assert_eq!(
        key_of_value(&third.values["KEY"]),
        key_of_value(&third.values["LEAF"])
    );
}

#[test]
fn the_key_plan_says_what_is_costly_before_anything_is_made() {
    let s = session(ALL_KINDS);
    let plan = plan(&s, None).unwrap();
    // K256, K384, KED, KRSA, ROOT's and INTER's keys.
    assert_eq!(plan.len(), 6);
    assert!(plan.is_costly(), "RSA-2048 is costly");
    let cheap = session(
        "name: ec\nversion: \"0.3\"\nsecrets:\n  - { name: K, kind: private-key }\n  - { name: CA, kind: x509-ca }\n",
    );
    let cheap_plan = super::plan(&cheap, None).unwrap();
    assert_eq!(cheap_plan.len(), 2);
    assert!(!cheap_plan.is_costly());
    let none = super::plan(&session("name: n\nversion: \"0.3\"\n"), None).unwrap();
    assert!(none.is_empty() && !none.is_costly());
    let prepared = cheap_plan.generate().unwrap();
    assert_eq!(prepared.keys.len(), 2);
}

#[test]
fn certificate_defaults_are_scones() {
    // SCONE: without `common_name`, "the first `dns` name ... If no DNS name has been
    // specified, the secret's `name`"; without `endpoint`, "no EKU extension"; without
    // `valid_for`, "valid for a virtually unlimited amount of time".
    let s = session(
        r#"
name: ns/defaults
version: "0.3"
secrets:
  - { name: K, kind: private-key }
  - { name: NAMED, kind: x509, private_key: K, san: ["dns:db.example", "ip:192.168.1.2"] }
  - { name: BARE, kind: x509, private_key: K }
  - { name: HUGE, kind: x509, private_key: K, valid_for: 100000 years }
"#,
    );
    let prepared = prepare(&s, None).unwrap();
    let values = materialize(&s, None, &prepared, &NoImports).unwrap();
    let cert = |name: &str| match values.values.get(name) {
        Some(SecretValue::Certificate { der, .. }) => der.clone(),
        other => panic!("{name}: {other:?}"),
    };
    for (name, cn) in [("NAMED", "db.example"), ("BARE", "BARE"), ("HUGE", "HUGE")] {
        let der = cert(name);
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        let subject_cn = c.subject().iter_common_name().next().unwrap();
        assert_eq!(subject_cn.as_str().unwrap(), cn);
        assert!(c.extended_key_usage().unwrap().is_none(), "{name}: no EKU");
        assert_eq!(
            c.validity().not_after.to_datetime(),
            no_expiry(),
            "{name}: notAfter 9999-12-31T23:59:59Z"
        );
    }
    let named_der = cert("NAMED");
    let (_, named) = x509_parser::parse_x509_certificate(&named_der).unwrap();
    let sans = named.subject_alternative_name().unwrap().unwrap();
    assert_eq!(sans.value.general_names.len(), 2, "dns: and ip: entries");
}

#[test]
fn a_certificate_is_backdated_a_tenth_of_valid_for_at_most_a_minute_and_ends_on_a_whole_second() {
    let s = session(
        r#"
name: ns/dates
version: "0.3"
secrets:
  - { name: SHORT, kind: x509-ca, valid_for: 20 seconds }
  - { name: LONG, kind: x509-ca, valid_for: 90 days }
  - { name: FOREVER, kind: x509-ca }
"#,
    );
    let made = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
        + time::Duration::milliseconds(300);
    let dates = |name: &str| {
        let Some(SecretSource::Generated(Generation::X509Ca(request))) =
            s.secret(name).map(|s| &s.source)
        else {
            panic!("{name}")
        };
        let params = certificate_params(name, request, true, made).unwrap();
        (
            params.not_before.unix_timestamp_nanos() - made.unix_timestamp_nanos(),
            params.not_after.unix_timestamp_nanos() - made.unix_timestamp_nanos(),
        )
    };
    const S: i128 = 1_000_000_000;
    // Half of 22 s after notBefore is 9 s after it was made, not before.
    assert_eq!(dates("SHORT"), (-2 * S, 20 * S + 7 * S / 10));
    assert_eq!(dates("LONG"), (-60 * S, 90 * 86_400 * S + 7 * S / 10));
    let (before, after) = dates("FOREVER");
    assert_eq!(before, -60 * S);
    assert_eq!(
        made.unix_timestamp_nanos() + after,
        no_expiry().unix_timestamp_nanos()
    );
}
