//! One client must not take the CAS offline with idle connections: 1,100 TLS connections
//! from 127.0.0.2 that send nothing after the handshake, on the client API and on the
//! enclave API, and a legitimate client on 127.0.0.1 is still served on each within seconds.
//! And the enclave API resumes no TLS session: every connection proves its client key.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{CasProcess, get};
use custos_client::{CasClient, ClientIdentity, ServerTrust};
use hyper::Method;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, HandshakeKind};

const ATTACKER: [u8; 4] = [127, 0, 0, 2];
const IDLE_CONNECTIONS: usize = 1_100;
/// Handshakes the attacker runs at once.
const PARALLEL: usize = 50;
/// How long the legitimate client may wait for each answer.
const SERVED_WITHIN: Duration = Duration::from_secs(5);

/// A TLS client with a self-signed client certificate (the enclave API wants one; any will
/// do for the handshake), trusting any server.
fn attacker_tls() -> TlsConnector {
    let cert = rcgen::generate_simple_self_signed(vec!["attacker".into()]).unwrap();
    let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let mut config = ClientConfig::builder_with_provider(custos_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(custos_tls::unauthenticated_server_verifier())
        .with_client_auth_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// One idle TLS connection from 127.0.0.2, or `None` if the CAS closed or never finished it.
async fn idle_connection(
    connector: TlsConnector,
    target: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::from((ATTACKER, 0))).ok()?;
    let attempt = async {
        let tcp = socket.connect(target).await.ok()?;
        let name = ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await.ok()
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .ok()
        .flatten()
}

/// Opens `IDLE_CONNECTIONS` connections to `target`; returns the ones the CAS kept.
async fn flood(target: SocketAddr) -> Vec<TlsStream<TcpStream>> {
    let connector = attacker_tls();
    let mut held = Vec::new();
    for _ in 0..IDLE_CONNECTIONS / PARALLEL {
        let batch: Vec<_> = (0..PARALLEL)
            .map(|_| tokio::spawn(idle_connection(connector.clone(), target)))
            .collect();
        for task in batch {
            held.extend(task.await.unwrap());
        }
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_address_do_not_take_either_listener_offline() {
    let dir = tempfile::tempdir().unwrap();
    // The first-request and idle deadlines stay far beyond the test: only the per-address
    // cap and idle eviction can keep the CAS reachable.
    let cas = CasProcess::start(
        dir.path(),
        &["--first-request-timeout", "300", "--idle-timeout", "300"],
    );
    let client_api: SocketAddr = cas.addr.parse().unwrap();
    let enclave_api: SocketAddr = cas.enclave_addr.parse().unwrap();
    let started = Instant::now();
    let held_client = flood(client_api).await;
    let held_enclave = flood(enclave_api).await;
    eprintln!(
        "attacker holds {} + {} connections after {:?}",
        held_client.len(),
        held_enclave.len(),
        started.elapsed()
    );

    let client = CasClient::new(&cas.addr, None, ServerTrust::Pinned(cas.key_hash)).unwrap();
    let metrics = tokio::time::timeout(SERVED_WITHIN, get(&client, "/metrics"))
        .await
        .expect("the client API did not answer a legitimate client within 5 s");
    assert_eq!(metrics.status, 200);

    let runtime = ClientIdentity::generate("runtime").unwrap();
    let enclave = CasClient::new(
        &cas.enclave_addr,
        Some(&runtime),
        ServerTrust::Pinned(cas.key_hash),
    )
    .unwrap();
    let body = br#"{"config_id":"no-such-session/service"}"#.to_vec();
    let challenge = tokio::time::timeout(
        SERVED_WITHIN,
        enclave.request(Method::POST, "/v1/enclave/challenge", Some(body)),
    )
    .await
    .expect("the enclave API did not answer a legitimate client within 5 s")
    .unwrap();
    assert!(
        challenge.status.is_client_error() || challenge.status.is_success(),
        "enclave API answered {}",
        challenge.status
    );

    assert!(
        held_client.len() <= 64 && held_enclave.len() <= 64,
        "one address holds {} client-API and {} enclave-API connections; the default cap is 64",
        held_client.len(),
        held_enclave.len()
    );
    // The refusals are visible to the operator.
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    for listener in ["client", "enclave"] {
        let line =
            format!("custos_cas_connections_refused_per_address_total{{listener=\"{listener}\"}} ");
        let refused: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {line} in /metrics:\n{text}"))
            .parse()
            .unwrap();
        let held = if listener == "client" {
            held_client.len()
        } else {
            held_enclave.len()
        };
        let expected = IDLE_CONNECTIONS - held;
        assert_eq!(refused as usize, expected, "{listener} refusals");
    }
    drop((held_client, held_enclave));
}

#[tokio::test]
async fn the_enclave_api_gives_no_session_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let cas = CasProcess::start(dir.path(), &[]);
    // One client configuration, so its session store would resume whatever it was given.
    let connector = attacker_tls();
    for listener in [&cas.enclave_addr, &cas.addr] {
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let tcp = TcpStream::connect(listener.as_str()).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            // Reading the answer processes any session ticket the server sent.
            tls.write_all(b"GET /v1/version HTTP/1.1\r\nHost: cas\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            let _ = tls.read_to_end(&mut answer).await;
            kinds.push(tls.get_ref().1.handshake_kind().unwrap());
        }
        let expected = if *listener == cas.enclave_addr {
            [HandshakeKind::Full, HandshakeKind::Full]
        } else {
            // The control: the client API keeps rustls's tickets, and this client resumes.
            [HandshakeKind::Full, HandshakeKind::Resumed]
        };
        assert_eq!(kinds, expected, "{listener}");
    }
}
