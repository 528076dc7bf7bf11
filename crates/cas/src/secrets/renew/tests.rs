use std::time::Duration;

use rcgen::{CertificateParams, KeyPair, PublicKeyData};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;
use crate::secrets::{materialize, prepare};

struct Imports(BTreeMap<String, SecretValue>);

impl ImportResolver for Imports {
    fn resolve(
        &self,
        _: &Session,
        import: &custos_policy::SessionImport,
    ) -> Result<Option<SecretValue>, String> {
        Ok(self.0.get(import.secret.as_str()).cloned())
    }
}

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
}

/// A self-signed certificate valid from `from` to `until` (seconds after [`at`]'s origin).
fn valid(from: i64, until: OffsetDateTime) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["a".into()]).unwrap();
    params.not_before = at(from);
    params.not_after = until;
    params.self_signed(&key).unwrap().der().to_vec()
}

#[test]
fn a_certificate_is_due_from_half_its_validity_on_and_never_without_expiry() {
    let cert = valid(0, at(100));
    assert_eq!(is_due(&cert, at(-10)), Ok(false), "before notBefore");
    assert_eq!(is_due(&cert, at(49)), Ok(false));
    assert_eq!(is_due(&cert, at(50)), Ok(true), "exactly half");
    assert_eq!(is_due(&cert, at(99)), Ok(true));
    assert_eq!(is_due(&cert, at(100_000)), Ok(true), "expired");
    let forever = valid(0, no_expiry());
    assert_eq!(is_due(&forever, at(0)), Ok(false));
    let year_9000 = OffsetDateTime::from_unix_timestamp(221_845_392_000).unwrap();
    assert_eq!(is_due(&forever, year_9000), Ok(false));
    assert!(
        is_due(b"not a certificate", at(0))
            .unwrap_err()
            .contains("does not parse")
    );
}

fn session(text: &str) -> Session {
    custos_policy::parse("test.yml", text).unwrap()
}

const CHAIN: &str = r#"
name: ns/app
version: "0.3"
secrets:
  - { name: CA, kind: x509-ca, common_name: Renewal CA, valid_for: 20 seconds }
  - { name: KEY, kind: private-key }
  - name: TLS
    kind: x509
    private_key: KEY
    issuer: CA
    dns: [app.example, localhost]
    san: [ip:127.0.0.1]
    valid_for: 100 seconds
    endpoint: server
  - { name: OTHER, kind: x509, private_key: KEY, common_name: other }
"#;

fn parsed(value: &SecretValue) -> (Vec<u8>, Vec<Vec<u8>>) {
    match value {
        SecretValue::Certificate { der, chain, .. } => (der.clone(), chain.clone()),
        other => panic!("{other:?}"),
    }
}

fn cert(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).unwrap().1
}

fn spki(der: &[u8]) -> Vec<u8> {
    cert(der).public_key().raw.to_vec()
}

/// The values as the CAS stores them after a create, made now.
fn values_at(s: &Session) -> SecretValues {
    materialize(
        s,
        None,
        &prepare(s, None).unwrap(),
        &Imports(BTreeMap::new()),
    )
    .unwrap()
}

#[test]
fn a_due_leaf_is_renewed_for_the_same_key_subject_and_issuer() {
    let s = session(CHAIN);
    let values = values_at(&s);
    let now = OffsetDateTime::now_utc();
    let names = BTreeSet::from(["TLS".to_owned()]);
    let candidates = candidates(&s, &names);
    assert_eq!(candidates, BTreeSet::from(["CA".into(), "TLS".into()]));
    assert!(due(&values, &candidates, now).unwrap().is_empty());
    // TLS: 100 s, 10 s back → half at 45 s after it was made; CA: 20 s, 2 s back → 9 s.
    let later = now + Duration::from_secs(50);
    assert_eq!(
        due(&values, &BTreeSet::from(["TLS".into()]), later).unwrap(),
        BTreeSet::from(["TLS".into()])
    );
    let renewal = renew(
        &s,
        &values,
        &BTreeSet::from(["TLS".into()]),
        &Imports(BTreeMap::new()),
        later,
    )
    .unwrap();
    assert_eq!(renewal.renewed, ["TLS"]);
    assert!(renewal.reissued.is_empty());
    for kept in ["CA", "KEY", "OTHER"] {
        assert_eq!(renewal.values.values[kept], values.values[kept], "{kept}");
    }
    let (old, old_chain) = parsed(&values.values["TLS"]);
    let (new, chain) = parsed(&renewal.values.values["TLS"]);
    assert_ne!(old, new);
    assert_eq!(chain, old_chain, "the same issuer");
    let (old, new) = (cert(&old), cert(&new));
    assert_eq!(old.public_key().raw, new.public_key().raw, "the same key");
    assert_ne!(old.raw_serial(), new.raw_serial());
    assert_eq!(old.subject(), new.subject());
    assert_eq!(old.issuer(), new.issuer());
    assert_eq!(
        old.subject_alternative_name().unwrap().unwrap().value,
        new.subject_alternative_name().unwrap().unwrap().value
    );
    assert_eq!(
        old.key_usage().unwrap().unwrap().value,
        new.key_usage().unwrap().unwrap().value
    );
    assert_eq!(
        old.extended_key_usage().unwrap().unwrap().value,
        new.extended_key_usage().unwrap().unwrap().value
    );
    assert_eq!(new.is_ca(), old.is_ca());
    let validity = |c: &X509Certificate<'_>| {
        (
            c.validity().not_after.timestamp() - c.validity().not_before.timestamp(),
            c.validity().not_after.timestamp(),
        )
    };
    assert_eq!(validity(&new).0, validity(&old).0, "the same valid_for");
    // Made within a second before `now`, renewed 50 s after `now`.
    let moved = validity(&new).1 - validity(&old).1;
    assert!(
        (50..=51).contains(&moved),
        "counted from the renewal: {moved}"
    );
    new.verify_signature(Some(cert(&chain[0]).public_key()))
        .unwrap();
    assert!(
        !is_due(&new_der(&renewal, "TLS"), later).unwrap(),
        "not due again"
    );
}

fn new_der(renewal: &Renewal, name: &str) -> Vec<u8> {
    parsed(&renewal.values.values[name]).0
}

#[test]
fn a_renewed_ca_reissues_what_it_issued_and_renew_key_gives_it_a_new_key() {
    for renew_key in [false, true] {
        let text = CHAIN.replace(
            "valid_for: 20 seconds }",
            &format!("valid_for: 20 seconds, renew_key: {renew_key} }}"),
        );
        let s = session(&text);
        let values = values_at(&s);
        let later = OffsetDateTime::now_utc() + Duration::from_secs(10);
        let candidates = candidates(&s, &BTreeSet::from(["TLS".into()]));
        let due_now = due(&values, &candidates, later).unwrap();
        assert_eq!(
            due_now,
            BTreeSet::from(["CA".into()]),
            "only the CA is past half"
        );
        let renewal = renew(&s, &values, &due_now, &Imports(BTreeMap::new()), later).unwrap();
        assert_eq!(
            (renewal.renewed.as_slice(), renewal.reissued.as_slice()),
            (&["CA".to_owned()][..], &["TLS".to_owned()][..])
        );
        assert_eq!(
            renewal.values.values["OTHER"], values.values["OTHER"],
            "self-signed: untouched"
        );
        let (ca, _) = parsed(&renewal.values.values["CA"]);
        let (old_ca, _) = parsed(&values.values["CA"]);
        assert_eq!(
            spki(&ca) != spki(&old_ca),
            renew_key,
            "renew_key: {renew_key}"
        );
        let (tls, chain) = parsed(&renewal.values.values["TLS"]);
        let (old_tls, _) = parsed(&values.values["TLS"]);
        assert_eq!(
            chain,
            std::slice::from_ref(&ca),
            "the chain names the renewed CA"
        );
        assert_eq!(spki(&tls), spki(&old_tls), "the leaf keeps its key");
        cert(&tls)
            .verify_signature(Some(cert(&ca).public_key()))
            .unwrap();
        cert(&ca).verify_signature(None).unwrap();
        let SecretValue::Certificate { pkcs8, .. } = &renewal.values.values["CA"] else {
            unreachable!()
        };
        assert_eq!(
            KeyPair::try_from(pkcs8.as_slice())
                .unwrap()
                .subject_public_key_info(),
            spki(&ca),
            "the stored key is the certificate's"
        );
    }
}

#[test]
fn an_imported_issuer_is_used_as_it_is_now() {
    let text = r#"
name: ns/app
version: "0.3"
secrets:
  - { name: CA, import: { session: ns/ca } }
  - { name: KEY, kind: private-key }
  - { name: TLS, kind: x509, private_key: KEY, issuer: CA, valid_for: 10 seconds }
"#;
    let s = session(text);
    let ca = |name: &str| {
        let exporter = session(&format!(
            "name: ns/ca\nversion: \"0.3\"\nsecrets:\n  - {{ name: CA, kind: x509-ca, common_name: {name} }}\n"
        ));
        let values = values_at(&exporter);
        values.values["CA"].clone()
    };
    let first = ca("first");
    let values = materialize(
        &s,
        None,
        &prepare(&s, None).unwrap(),
        &Imports(BTreeMap::from([("CA".into(), first.clone())])),
    )
    .unwrap();
    let candidates = candidates(&s, &BTreeSet::from(["TLS".into()]));
    assert_eq!(
        candidates,
        BTreeSet::from(["TLS".into()]),
        "an imported CA is not ours to renew"
    );
    let later = OffsetDateTime::now_utc() + Duration::from_secs(6);
    let due_now = due(&values, &candidates, later).unwrap();
    let second = ca("second");
    let renewal = renew(
        &s,
        &values,
        &due_now,
        &Imports(BTreeMap::from([("CA".into(), second.clone())])),
        later,
    )
    .unwrap();
    let (tls, chain) = parsed(&renewal.values.values["TLS"]);
    assert_eq!(chain, [parsed(&second).0]);
    cert(&tls)
        .verify_signature(Some(cert(&parsed(&second).0).public_key()))
        .unwrap();
    // An import that fails now fails the renewal, naming it.
    struct Refused;
    impl ImportResolver for Refused {
        fn resolve(
            &self,
            _: &Session,
            _: &custos_policy::SessionImport,
        ) -> Result<Option<SecretValue>, String> {
            Err("session ns/ca does not export CA to session ns/app".into())
        }
    }
    let error = renew(&s, &values, &due_now, &Refused, later)
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "secret CA: cannot import CA from session ns/ca: session ns/ca does not export CA to session ns/app"
    );
}
