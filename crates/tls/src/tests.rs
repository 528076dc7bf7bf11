use std::path::PathBuf;

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn write(dir: &tempfile::TempDir, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn loads_every_supported_key_encoding() {
    // SEC1 EC key with a leaf certificate.
    load_certified_key(&fixture("leaf-ec.crt"), &fixture("leaf-ec.sec1.key")).unwrap();
    // PKCS#1 RSA key.
    load_certified_key(&fixture("leaf-rsa.crt"), &fixture("leaf-rsa.pkcs1.key")).unwrap();
    // PKCS#8, as rcgen writes it.
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["rest-api.scone.sample".into()]).unwrap();
    let crt = write(&dir, "c.crt", cert.cert.pem());
    let key = write(&dir, "c.key", cert.signing_key.serialize_pem());
    load_certified_key(&crt, &key).unwrap();
}

#[test]
fn keeps_the_whole_chain_in_order() {
    let key = load_certified_key(&fixture("chain-ec.crt"), &fixture("leaf-ec.sec1.key")).unwrap();
    assert_eq!(key.cert.len(), 2);
    assert_eq!(
        key.cert,
        read_certificates(&fixture("chain-ec.crt")).unwrap()
    );
    assert_eq!(
        key.cert[0],
        read_certificates(&fixture("leaf-ec.crt")).unwrap()[0]
    );
}

#[test]
fn missing_file_is_named() {
    let err = load_certified_key(
        Path::new("/nonexistent/flask.crt"),
        &fixture("leaf-ec.sec1.key"),
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Read { .. }));
    let msg = err.to_string();
    assert!(
        msg.starts_with("/nonexistent/flask.crt: cannot read:"),
        "{msg}"
    );
}

#[test]
fn key_not_matching_certificate_is_rejected() {
    let err =
        load_certified_key(&fixture("leaf-rsa.crt"), &fixture("leaf-ec.sec1.key")).unwrap_err();
    assert!(matches!(err, LoadError::KeyMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("leaf-ec.sec1.key: private key does not match the certificate in"));
    assert!(msg.contains("leaf-rsa.crt"));
}

#[test]
fn swapped_files_are_explained() {
    // A key file given as the certificate, and a certificate as the key.
    let err =
        load_certified_key(&fixture("leaf-ec.sec1.key"), &fixture("leaf-ec.crt")).unwrap_err();
    assert!(matches!(err, LoadError::NoCertificate { .. }), "{err}");
    let err = read_private_key(&fixture("leaf-ec.crt")).unwrap_err();
    assert!(matches!(err, LoadError::NoPrivateKey { .. }), "{err}");
}

#[test]
fn malformed_pem_is_reported_without_content() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = std::fs::read_to_string(fixture("leaf-ec.sec1.key")).unwrap();
    let truncated = &truncated[..truncated.len() / 2];
    let key = write(&dir, "k.key", truncated);
    let err = read_private_key(&key).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Pem {
                problem: PemProblem::MissingEnd,
                ..
            }
        ),
        "{err}"
    );
    // Not a single line of the key's body is quoted.
    let body_line = truncated.lines().nth(1).unwrap();
    assert!(!err.to_string().contains(body_line));

    let bad_b64 = write(
        &dir,
        "b.crt",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    let err = read_certificates(&bad_b64).unwrap_err();
    assert!(matches!(err, LoadError::Pem { .. }), "{err}");
}

#[test]
fn garbage_certificate_der_is_rejected_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let fake = write(
        &dir,
        "fake.crt",
        "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n",
    );
    let err = load_certified_key(&fake, &fixture("leaf-ec.sec1.key")).unwrap_err();
    assert!(matches!(err, LoadError::BadCertificate { .. }), "{err}");
}

#[test]
fn corrupt_key_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let key = write(
        &dir,
        "bad.key",
        "-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n",
    );
    let err = load_certified_key(&fixture("leaf-ec.crt"), &key).unwrap_err();
    assert!(matches!(err, LoadError::BadPrivateKey { .. }), "{err}");
}

#[test]
fn server_config_offers_h2_then_http11() {
    let key = load_certified_key(&fixture("leaf-ec.crt"), &fixture("leaf-ec.sec1.key")).unwrap();
    let config = server_config(key, ALPN_H2_HTTP11);
    assert_eq!(
        config.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}
