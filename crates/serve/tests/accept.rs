//! Where connections are accepted, and TLS session resumption, on real loopback sockets.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use custos_serve::{Client, ConnectionLimits, RequestBody, Server, Transport};
use http_body_util::Full;
use hyper::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, HandshakeKind, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const PATIENCE: Duration = Duration::from_secs(2);

async fn answer(_: Request<RequestBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

async fn plain_server() -> (Server, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(listener, Transport::Plain, ConnectionLimits::default());
    (server, addr)
}

/// One blocking HTTP/1.1 GET: the status line, or why there is none.
fn blocking_get(addr: SocketAddr, patience: Duration) -> Result<String, String> {
    let mut tcp = std::net::TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(patience)).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut response = String::new();
    tcp.read_to_string(&mut response)
        .map_err(|e| format!("no response within {patience:?}: {e}"))?;
    Ok(response.lines().next().unwrap_or_default().to_owned())
}

// Under `block_on` (the CAS's, the sample's main thread) the future `serve` returns is
// polled by a thread that is not a runtime worker. Accepting there costs every connection a
// wake-up of that thread, and while it does not run, nothing is accepted at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_accepted_while_the_thread_awaiting_serve_is_blocked() {
    let (server, addr) = plain_server().await;
    let serve = server.serve(|_: &Client| hyper::service::service_fn(answer));
    let (start, started) = mpsc::channel();
    let (done, answered) = mpsc::channel();
    let client = std::thread::spawn(move || {
        started.recv().unwrap();
        done.send(blocking_get(addr, PATIENCE)).unwrap();
    });
    let blocked = async {
        // Once `serve` has been polled, block the thread polling it until the client is done.
        tokio::task::yield_now().await;
        start.send(()).unwrap();
        answered.recv_timeout(Duration::from_secs(5))
    };
    let outcome = tokio::select! {
        biased;
        () = serve => panic!("serve returned"),
        outcome = blocked => outcome.expect("the client neither got an answer nor gave up"),
    };
    client.join().unwrap();
    assert_eq!(outcome, Ok("HTTP/1.1 200 OK".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_serve_future_stops_accepting() {
    let (server, addr) = plain_server().await;
    let serve = server.serve(|_: &Client| hyper::service::service_fn(answer));
    let served = tokio::time::timeout(Duration::from_millis(500), async {
        tokio::join!(serve, async {
            let get = tokio::task::spawn_blocking(move || blocking_get(addr, PATIENCE));
            assert_eq!(get.await.unwrap(), Ok("HTTP/1.1 200 OK".to_owned()));
        })
    });
    // `serve` never returns: the timeout drops it, with the listener it accepts from.
    assert!(served.await.is_err());
    let since = Instant::now();
    loop {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            outcome => assert!(
                since.elapsed() < Duration::from_secs(2),
                "still accepting 2 s after serve was dropped: {outcome:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_with_the_first_ones_session_resumes_and_is_counted() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(
        listener,
        Transport::Tls(TlsAcceptor::from(Arc::new(config))),
        ConnectionLimits::default(),
    );
    let stats = server.stats().clone();
    tokio::spawn(server.serve(|_: &Client| hyper::service::service_fn(answer)));

    let mut roots = RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    // The default client keeps the sessions it is given, as wrk's OpenSSL does.
    let client = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(client));
    for expected in [HandshakeKind::Full, HandshakeKind::Resumed] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.handshake_kind(), Some(expected));
        tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        // Reading to the end also takes the session tickets the server sent.
        let mut response = String::new();
        tls.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response:?}");
    }
    assert_eq!(stats.accepted(), 2);
    assert_eq!(stats.handshakes_resumed(), 1);
}
