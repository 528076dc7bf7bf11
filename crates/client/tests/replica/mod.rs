//! Replicas for failover tests: real TLS servers on 127.0.0.x presenting one shared key, each
//! answering every request the same way and counting what it was asked. Minimal HTTP/1.1 on
//! purpose: a test says exactly how a replica fails (an answer, a reset after reading the
//! request, silence), which a real CAS would not do on demand.
//!
//! Shared by `crates/client/tests` and `crates/runtime/tests` (included by path).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The key all replicas of a test present.
#[derive(Clone)]
pub struct SharedKey {
    pub certificate: CertificateDer<'static>,
    key: Arc<PrivatePkcs8KeyDer<'static>>,
}

impl SharedKey {
    pub fn generate() -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec!["replica.test".to_owned()]).unwrap();
        let certificate = params.self_signed(&key).unwrap().der().clone();
        Self {
            certificate,
            key: Arc::new(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    /// SHA-256 of the public key: the pin.
    pub fn key_hash(&self) -> custos_ids::KeyHash {
        custos_ids::KeyHash::of_certificate(&self.certificate).unwrap()
    }

    fn acceptor(&self) -> TlsAcceptor {
        let certified = custos_tls::certified_key(
            "replica.crt".as_ref(),
            vec![self.certificate.clone()],
            "replica.key".as_ref(),
            PrivateKeyDer::Pkcs8(self.key.as_ref().clone_key()),
        )
        .unwrap();
        TlsAcceptor::from(Arc::new(custos_tls::server_config(
            certified,
            &[b"http/1.1"],
        )))
    }
}

/// How a replica answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// This status and JSON body.
    Answer(u16, String),
    /// Reads the whole request, then closes the connection without answering.
    ResetAfterRequest,
    /// Accepts TCP and never says anything (a TLS handshake that never ends).
    Silent,
}

/// A running replica.
pub struct Replica {
    pub addr: SocketAddr,
    /// `METHOD PATH` of every request it read, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    /// Starts a replica on `ip` (a 127.0.0.x address), any port, on the current runtime.
    pub async fn start(ip: &str, key: &SharedKey, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let acceptor = key.acceptor();
        let seen = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, seen, behaviour) =
                    (acceptor.clone(), seen.clone(), behaviour.clone());
                tokio::spawn(async move {
                    if matches!(behaviour, Behaviour::Silent) {
                        // Hold the socket open, unread, until the client gives up.
                        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                        drop(tcp);
                        return;
                    }
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    while let Some(request) = read_request(&mut tls).await {
                        seen.lock().unwrap().push(request);
                        match &behaviour {
                            Behaviour::Answer(status, body) => {
                                let answer = format!(
                                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                                    body.len()
                                );
                                if tls.write_all(answer.as_bytes()).await.is_err() {
                                    return;
                                }
                            }
                            Behaviour::ResetAfterRequest | Behaviour::Silent => return,
                        }
                    }
                });
            }
        });
        Self { addr, requests }
    }

    /// An address on `ip` where nothing listens: connections are refused. Give each test its
    /// own `ip` for this, so that no replica of a test running alongside gets the port.
    pub async fn refusing(ip: &str) -> SocketAddr {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        listener.local_addr().unwrap()
    }

    /// How many requests it read.
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// Reads one request (head and `content-length` body); `METHOD PATH`, or `None` at the end.
async fn read_request<S: AsyncReadExt + Unpin>(stream: &mut S) -> Option<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.ok()?;
    let mut words = head.split_whitespace();
    Some(format!("{} {}", words.next()?, words.next()?))
}

/// The CAS's error body.
pub fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({ "error": { "code": code, "message": message } }).to_string()
}
