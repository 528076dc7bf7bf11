//! A small HTTPS server that answers with recorded real responses (status, headers, body),
//! so the client is tested against what Azure actually sent — over real HTTP and TLS.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

/// One recorded answer.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: body.to_string().into_bytes(),
        }
    }

    /// From an Azure SDK for C++ test-proxy record (`networkCallRecords[i].Response`).
    pub fn from_cpp_record(response: &Value) -> Self {
        let status = response["STATUS_CODE"].as_str().unwrap().parse().unwrap();
        let headers = response
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "BODY" | "STATUS_CODE" | "REASON_PHRASE" | "content-length"
                )
            })
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        Self {
            status,
            headers,
            body: response["BODY"].as_str().unwrap().as_bytes().to_vec(),
        }
    }
}

/// What the server answers and what it saw.
#[derive(Default)]
pub struct Script {
    /// By (method, path without query and trailing slash).
    pub routes: HashMap<(String, String), Recorded>,
    /// For requests to a path starting with one of these prefixes without `Authorization`.
    pub challenge: Option<(Vec<String>, Recorded)>,
    /// The bearer value the routes require, if any.
    pub bearer: Option<String>,
    /// Requests seen: method, path and query, body.
    pub seen: Mutex<Vec<(String, String, Vec<u8>)>>,
}

pub struct ReplayServer {
    pub addr: SocketAddr,
    pub ca_pem: String,
    pub script: Arc<Script>,
}

impl ReplayServer {
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<(String, String, Vec<u8>)> {
        self.script.seen.lock().unwrap().clone()
    }
}

pub async fn start(script: Script) -> ReplayServer {
    let ca = custos_azure_emulator::pki::Ca::generate().unwrap();
    let (chain, key) = ca
        .server_certificate(&["127.0.0.1".into(), "localhost".into()])
        .unwrap();
    let path = std::path::Path::new("replay");
    let key = custos_tls::certified_key(path, chain, path, key).unwrap();
    let tls = Arc::new(custos_tls::server_config(key, &[b"http/1.1"]));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let script = Arc::new(script);
    let served = script.clone();
    tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let script = served.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |request| answer(script.clone(), request));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    ReplayServer {
        addr,
        ca_pem: ca.pem().to_owned(),
        script,
    }
}

async fn answer(
    script: Arc<Script>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let method = request.method().to_string();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = request.into_body().collect().await?.to_bytes().to_vec();
    script
        .seen
        .lock()
        .unwrap()
        .push((method.clone(), path_and_query, body));

    let recorded = match (&script.challenge, &authorization) {
        (Some((prefixes, challenge)), None) if prefixes.iter().any(|p| path.starts_with(p)) => {
            challenge.clone()
        }
        _ if script.bearer.is_some()
            && !path.contains("/oauth2/")
            && authorization.as_deref() != script.bearer.as_deref() =>
        {
            Recorded::json(
                401,
                &serde_json::json!({"error": {"code": "Unauthorized", "message": "replay: wrong bearer"}}),
            )
        }
        _ => script
            .routes
            .get(&(method, path.clone()))
            .cloned()
            .unwrap_or_else(|| {
                Recorded::json(
                    599,
                    &serde_json::json!({"error": {"code": "NotRecorded", "message": path}}),
                )
            }),
    };
    let mut response = Response::builder().status(recorded.status);
    for (name, value) in &recorded.headers {
        response = response.header(name, value);
    }
    Ok(response
        .body(Full::new(Bytes::from(recorded.body)))
        .unwrap())
}
