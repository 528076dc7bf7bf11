//! Real TLS on loopback: hostile connections (from 127.0.0.2) are capped, timed out and
//! evicted while a client on 127.0.0.1 is still served. Short limits keep it to seconds.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use custos_serve::{
    Client, ConnectionLimits, ConnectionStats, Deadline, RequestBody, Server, Transport,
};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const LEGITIMATE: &str = "127.0.0.1";
const ATTACKER: &str = "127.0.0.2";
/// Longer than any deadline a test expects to see.
const PATIENCE: Duration = Duration::from_secs(5);

struct TestServer {
    addr: SocketAddr,
    ca: CertificateDer<'static>,
    stats: Arc<ConnectionStats>,
}

/// Answers `ok <n>` with the number of body bytes, or 408 with the body error.
async fn answer(request: Request<RequestBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, text) = match request.into_body().collect().await {
        Ok(body) => (StatusCode::OK, format!("ok {}", body.to_bytes().len())),
        Err(e) => (StatusCode::REQUEST_TIMEOUT, e.to_string()),
    };
    Ok(Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(text)))
        .unwrap())
}

async fn start(limits: ConnectionLimits) -> TestServer {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let ca = cert.cert.der().clone();
    let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![ca.clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let listener = tokio::net::TcpListener::bind((LEGITIMATE, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(
        listener,
        Transport::Tls(TlsAcceptor::from(Arc::new(config))),
        limits,
    );
    let stats = server.stats().clone();
    tokio::spawn(server.serve(|_: &Client| hyper::service::service_fn(answer)));
    TestServer { addr, ca, stats }
}

fn limits() -> ConnectionLimits {
    ConnectionLimits {
        max_connections: 1024,
        max_connections_per_address: 64,
        handshake_timeout: PATIENCE,
        first_request_timeout: PATIENCE,
        idle_timeout: PATIENCE,
        header_read_timeout: PATIENCE,
        body_timeout: PATIENCE,
        http2_keep_alive_interval: PATIENCE,
        http2_keep_alive_timeout: PATIENCE,
    }
}

impl TestServer {
    async fn tcp_from(&self, source: &str) -> TcpStream {
        let socket = TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(source.parse::<IpAddr>().unwrap(), 0))
            .unwrap();
        socket.connect(self.addr).await.unwrap()
    }

    /// A TLS connection from `source` offering `alpn`; an error when the server closed it.
    async fn tls_from(&self, source: &str, alpn: &[u8]) -> std::io::Result<TlsStream<TcpStream>> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let mut config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = self.tcp_from(source).await;
        let connector = TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from("localhost").unwrap();
        tokio::time::timeout(PATIENCE, connector.connect(name, tcp))
            .await
            .expect("the handshake neither completed nor failed")
    }

    /// One HTTP/1.1 GET from `source` on a new connection: the status line.
    async fn get_from(&self, source: &str) -> String {
        let mut tls = self.tls_from(source, b"http/1.1").await.unwrap();
        tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        tls.read_to_string(&mut response).await.unwrap();
        response.lines().next().unwrap_or_default().to_owned()
    }
}

/// Reads until the server closes the connection; how long that took from `since`.
async fn closed_after(tls: &mut TlsStream<TcpStream>, since: Instant) -> Duration {
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE * 2, tls.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return since.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server did not close the connection"),
        }
    }
}

fn assert_between(elapsed: Duration, low: Duration, high: Duration, what: &str) {
    assert!(
        elapsed >= low && elapsed <= high,
        "{what}: closed after {elapsed:?}, expected between {low:?} and {high:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_over_the_address_cap_do_not_stop_another_address() {
    let server = start(ConnectionLimits {
        max_connections: 1024,
        max_connections_per_address: 8,
        ..limits()
    })
    .await;
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        match server.tls_from(ATTACKER, b"http/1.1").await {
            Ok(tls) => held.push(tls),
            Err(_) => refused += 1,
        }
    }
    assert_eq!(held.len(), 8, "connections the attacker holds");
    assert_eq!(refused, 32);
    assert_eq!(server.stats.refused_per_address(), 32);
    let started = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(2), server.get_from(LEGITIMATE))
        .await
        .expect("the legitimate client was not served within 2 s");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.stats.open(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_silent_after_the_handshake_is_closed_at_the_first_request_deadline() {
    let server = start(ConnectionLimits {
        first_request_timeout: Duration::from_millis(400),
        ..limits()
    })
    .await;
    for alpn in [b"http/1.1".as_slice(), b"h2"] {
        let mut tls = server.tls_from(ATTACKER, alpn).await.unwrap();
        let elapsed = closed_after(&mut tls, Instant::now()).await;
        assert_between(
            elapsed,
            Duration::from_millis(300),
            Duration::from_millis(2500),
            "silent connection",
        );
    }
    assert_eq!(server.stats.timed_out(Deadline::FirstRequest), 2);
    assert_eq!(server.stats.open(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http1_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = start(ConnectionLimits {
        idle_timeout: Duration::from_millis(400),
        ..limits()
    })
    .await;
    let mut tls = server.tls_from(LEGITIMATE, b"http/1.1").await.unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 4096];
    let n = tls.read(&mut buffer).await.unwrap();
    assert!(buffer[..n].starts_with(b"HTTP/1.1 200 OK"));
    // Before the first-request deadline (5 s): it is the idle timeout that closes it.
    let elapsed = closed_after(&mut tls, Instant::now()).await;
    assert_between(
        elapsed,
        Duration::from_millis(300),
        Duration::from_millis(2500),
        "idle HTTP/1.1 keep-alive",
    );
    assert_eq!(server.stats.timed_out(Deadline::Idle), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let server = start(ConnectionLimits {
        idle_timeout: Duration::from_millis(400),
        ..limits()
    })
    .await;
    let tls = server.tls_from(LEGITIMATE, b"h2").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let driver = tokio::spawn(connection);
    let request = Request::get("https://localhost/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await.unwrap();
    let idle_from = Instant::now();
    tokio::time::timeout(PATIENCE, driver)
        .await
        .expect("the server did not close the idle HTTP/2 connection")
        .unwrap()
        .ok();
    assert_between(
        idle_from.elapsed(),
        Duration::from_millis(300),
        Duration::from_millis(2500),
        "idle HTTP/2",
    );
    assert_eq!(server.stats.timed_out(Deadline::Idle), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_cut_off_after_the_body_timeout() {
    let server = start(ConnectionLimits {
        body_timeout: Duration::from_millis(400),
        ..limits()
    })
    .await;
    let mut tls = server.tls_from(ATTACKER, b"http/1.1").await.unwrap();
    tls.write_all(b"POST / HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let sent = Instant::now();
    let mut response = Vec::new();
    let read = tokio::time::timeout(PATIENCE, tls.read_to_end(&mut response)).await;
    assert!(
        read.is_ok(),
        "the connection stayed open with a stalled body"
    );
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 408"),
        "the handler answers the timeout: {response}"
    );
    assert!(response.contains("body timeout (400 ms)"), "{response}");
    assert_between(
        sent.elapsed(),
        Duration::from_millis(300),
        Duration::from_millis(2500),
        "stalled body",
    );
    assert_eq!(server.stats.timed_out(Deadline::Body), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.stats.open(), 0, "the slot is free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_global_limit_the_longest_idle_connection_is_evicted_for_a_new_one() {
    let server = start(ConnectionLimits {
        max_connections: 4,
        ..limits()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(server.tls_from(ATTACKER, b"http/1.1").await.unwrap());
        // Distinct idle times, so "longest idle" is the first.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = tokio::time::timeout(Duration::from_secs(2), server.get_from(LEGITIMATE))
        .await
        .expect("the new client was not served within 2 s");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(server.stats.evicted_idle(), 1);
    // The oldest was closed; the others are still open.
    let elapsed = closed_after(&mut idle[0], Instant::now()).await;
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    let mut buffer = [0u8; 16];
    for tls in &mut idle[1..] {
        let still_open =
            tokio::time::timeout(Duration::from_millis(100), tls.read(&mut buffer)).await;
        assert!(still_open.is_err(), "a younger idle connection was closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_global_limit_busy_connections_are_not_evicted() {
    let server = start(ConnectionLimits {
        max_connections: 1,
        ..limits()
    })
    .await;
    // A request in flight: its body is still coming.
    let mut busy = server.tls_from(ATTACKER, b"http/1.1").await.unwrap();
    busy.write_all(b"POST / HTTP/1.1\r\nhost: localhost\r\ncontent-length: 4\r\n\r\nab")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = tokio::spawn({
        let (addr, ca) = (server.addr, server.ca.clone());
        async move {
            let other = TestServer {
                addr,
                ca,
                stats: Arc::default(),
            };
            other.get_from(LEGITIMATE).await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the new connection waits");
    assert_eq!(server.stats.evicted_idle(), 0);
    // The busy request completes; then the waiting client is served.
    busy.write_all(b"cd").await.unwrap();
    let mut buffer = [0u8; 256];
    let n = busy.read(&mut buffer).await.unwrap();
    assert!(buffer[..n].starts_with(b"HTTP/1.1 200 OK"));
    let status = tokio::time::timeout(PATIENCE, waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(server.stats.evicted_idle(), 1, "the now idle one made room");
}
