use std::path::PathBuf;

use custos_ids::KeyHash;

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

mod pinning {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use super::*;

    /// Serves one TLS connection on loopback with `key`, then connects with a client that pins
    /// `pin`; returns the client's handshake result.
    fn connect_pinned(key: CertifiedKey, pin: KeyHash) -> Result<(), std::io::Error> {
        let server = Arc::new(server_config(key, &[]));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let connection = rustls::ServerConnection::new(server).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, tcp);
            let mut byte = [0u8; 1];
            if tls.read_exact(&mut byte).is_ok() {
                let _ = tls.write_all(&byte);
            }
        });
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(pinned_server_verifier(pin))
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let connection = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, TcpStream::connect(addr).unwrap());
        let result = tls.write_all(b"x").and_then(|()| {
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte)
        });
        drop(tls);
        thread.join().unwrap();
        result
    }

    #[test]
    fn the_pinned_key_is_accepted_whatever_the_name_and_another_is_refused() {
        // The leaf is for rest-api.scone.sample and we connect to 127.0.0.1: names do not matter.
        let key =
            load_certified_key(&fixture("leaf-ec.crt"), &fixture("leaf-ec.sec1.key")).unwrap();
        let pin = KeyHash::of_certificate(&key.cert[0]).unwrap();
        connect_pinned(key, pin).unwrap();

        let other =
            load_certified_key(&fixture("leaf-rsa.crt"), &fixture("leaf-rsa.pkcs1.key")).unwrap();
        let actual = KeyHash::of_certificate(&other.cert[0]).unwrap();
        let error = connect_pinned(other, pin).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!("expected the pinned {pin}")),
            "{message}"
        );
        // Typed, for clients to tell it from other TLS failures.
        let mismatch = PinMismatch::of_handshake(&error)
            .unwrap_or_else(|| panic!("not a PinMismatch: {error:?}"));
        assert_eq!((mismatch.expected, mismatch.actual), (pin, actual));
    }
}

mod client_keys {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use rustls::pki_types::PrivateKeyDer;

    use super::*;

    /// A self-signed certificate and its key, as a CLI or `custos-run` makes them.
    fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (cert.der().clone(), der)
    }

    /// Serves one connection whose client verifier is `any_client_key_verifier(mandatory)`
    /// and connects with `client_cert`; returns the client's result and the key hash of the
    /// certificate the server saw.
    fn connect(
        mandatory: bool,
        client_cert: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    ) -> (Result<(), std::io::Error>, Option<KeyHash>) {
        let key =
            load_certified_key(&fixture("leaf-ec.crt"), &fixture("leaf-ec.sec1.key")).unwrap();
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(any_client_key_verifier(mandatory))
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let connection = rustls::ServerConnection::new(Arc::new(server)).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, tcp);
            let mut byte = [0u8; 1];
            if tls.read_exact(&mut byte).is_ok() {
                let _ = tls.write_all(&byte);
            }
            tls.conn
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| KeyHash::of_certificate(cert).unwrap())
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(unauthenticated_server_verifier());
        let client = match client_cert {
            Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
            None => builder.with_no_client_auth(),
        };
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let connection = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, TcpStream::connect(addr).unwrap());
        let result = tls.write_all(b"x").and_then(|()| {
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte)
        });
        drop(tls);
        (result, thread.join().unwrap())
    }

    #[test]
    fn any_self_signed_client_key_is_accepted_and_seen_by_its_hash() {
        let (cert, key) = self_signed();
        let expected = KeyHash::of_certificate(&cert).unwrap();
        for mandatory in [true, false] {
            let (result, seen) = connect(mandatory, Some((cert.clone(), key.clone_key())));
            result.unwrap();
            assert_eq!(seen, Some(expected));
        }
    }

    #[test]
    fn a_client_without_certificate_is_refused_only_where_one_is_mandatory() {
        let (result, seen) = connect(false, None);
        result.unwrap();
        assert_eq!(seen, None);
        let (result, seen) = connect(true, None);
        assert!(result.is_err());
        assert_eq!(seen, None);
    }
}

mod replacing {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use rustls::HandshakeKind;

    use super::*;

    /// Serves `connections` echo connections one after the other with `identity`'s config.
    fn serve(
        identity: &Arc<ReplaceableIdentity>,
        connections: usize,
    ) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
        let server = Arc::new(identity.server_config(&[]));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            for _ in 0..connections {
                let (tcp, _) = listener.accept().unwrap();
                let connection = rustls::ServerConnection::new(server.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, tcp);
                let mut byte = [0u8; 1];
                if tls.read_exact(&mut byte).is_ok() {
                    let _ = tls.write_all(&byte);
                }
            }
        });
        (addr, thread)
    }

    /// Connects with `client` (its resumption store carries over between calls); returns the
    /// leaf certificate the server presented and whether the session was resumed.
    fn connect(
        client: &Arc<rustls::ClientConfig>,
        addr: std::net::SocketAddr,
    ) -> (CertificateDer<'static>, HandshakeKind) {
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let connection = rustls::ClientConnection::new(client.clone(), name).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, TcpStream::connect(addr).unwrap());
        tls.write_all(b"x").unwrap();
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).unwrap();
        let leaf = tls.conn.peer_certificates().unwrap()[0].clone();
        (leaf, tls.conn.handshake_kind().unwrap())
    }

    #[test]
    fn a_replaced_certificate_is_presented_at_the_next_handshake_and_old_sessions_do_not_resume() {
        let first =
            load_certified_key(&fixture("leaf-ec.crt"), &fixture("leaf-ec.sec1.key")).unwrap();
        let second =
            load_certified_key(&fixture("leaf-rsa.crt"), &fixture("leaf-rsa.pkcs1.key")).unwrap();
        let (first_leaf, second_leaf) = (first.cert[0].clone(), second.cert[0].clone());
        let identity = ReplaceableIdentity::new(first);
        let (addr, server) = serve(&identity, 4);
        let client = Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(unauthenticated_server_verifier())
                .with_no_client_auth(),
        );

        assert_eq!(
            connect(&client, addr),
            (first_leaf.clone(), HandshakeKind::Full)
        );
        assert_eq!(connect(&client, addr), (first_leaf, HandshakeKind::Resumed));
        identity.replace(second);
        assert_eq!(identity.certificate_chain()[0], second_leaf);
        // Resuming would skip the new certificate: the session made before is gone.
        assert_eq!(
            connect(&client, addr),
            (second_leaf.clone(), HandshakeKind::Full)
        );
        assert_eq!(
            connect(&client, addr),
            (second_leaf, HandshakeKind::Resumed)
        );
        server.join().unwrap();
    }
}
