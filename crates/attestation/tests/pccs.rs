//! Collateral fetched from a real local HTTPS PCCS serving the recorded collateral.
#![cfg(feature = "pccs")]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::data;
use custos_attestation::dcap::pccs::{CollateralCache, PccsClient, PccsConfig};
use custos_attestation::dcap::{Collateral, DcapError, DcapVerifier, RootCa};
use custos_attestation::{TcbStatus, UnixTime};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IN_WINDOW: u64 = 1_751_328_000; // 2025-07-01

fn at(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// A minimal HTTPS/1.1 server: one response per path (with query), counting requests.
struct Pccs {
    base: String,
    ca_der: Vec<u8>,
    hits: Arc<AtomicUsize>,
}

async fn start(routes: HashMap<String, Response>) -> Pccs {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let ca_der = cert.cert.der().to_vec();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let routes = Arc::new(routes);
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, routes, counter) = (acceptor.clone(), routes.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let line = String::from_utf8_lossy(&request);
                let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                let (status, headers, body) = match routes.get(&path) {
                    Some(r) => (r.status, r.headers.clone(), r.body.clone()),
                    None => (404, vec![], b"not found".to_vec()),
                };
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(&body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Pccs {
        base: format!("https://localhost:{port}"),
        ca_der,
        hits,
    }
}

fn recorded() -> Collateral {
    serde_json::from_slice(&data("dcap/sgx_quote_collateral.json")).unwrap()
}

/// The PCS v4 responses that produce the recorded collateral, as a PCCS serves them.
fn routes(c: &Collateral, with_root_crl_endpoint: bool) -> HashMap<String, Response> {
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let ok = |headers, body| Response {
        status: 200,
        headers,
        body,
    };
    let v4 = "/sgx/certification/v4";
    let mut r = HashMap::new();
    r.insert(
        format!("{v4}/pckcrl?ca=processor&encoding=der"),
        ok(
            vec![("SGX-PCK-CRL-Issuer-Chain", enc(&c.pck_crl_issuer_chain))],
            c.pck_crl.clone(),
        ),
    );
    r.insert(
        format!("{v4}/tcb?fmspc=00A067110000"),
        ok(
            vec![("TCB-Info-Issuer-Chain", enc(&c.tcb_info_issuer_chain))],
            format!(
                "{{\"tcbInfo\":{},\"signature\":\"{}\"}}",
                c.tcb_info,
                hex::encode(&c.tcb_info_signature)
            )
            .into_bytes(),
        ),
    );
    r.insert(
        format!("{v4}/qe/identity"),
        ok(
            vec![(
                "SGX-Enclave-Identity-Issuer-Chain",
                enc(&c.qe_identity_issuer_chain),
            )],
            format!(
                "{{\"enclaveIdentity\":{},\"signature\":\"{}\"}}",
                c.qe_identity,
                hex::encode(&c.qe_identity_signature)
            )
            .into_bytes(),
        ),
    );
    if with_root_crl_endpoint {
        // PCCS serves the root CA CRL as hex text.
        r.insert(
            format!("{v4}/rootcacrl"),
            ok(vec![], hex::encode(&c.root_ca_crl).into_bytes()),
        );
    } else {
        r.insert(
            "/IntelSGXRootCA.der".into(),
            ok(vec![], c.root_ca_crl.clone()),
        );
    }
    r
}

fn client(pccs: &Pccs, cache: Arc<CollateralCache>) -> PccsClient {
    let mut config = PccsConfig::new(format!("{}/sgx/certification/v4/", pccs.base));
    config.tls_roots = Some(vec![pccs.ca_der.clone()]);
    config.root_ca_crl_url = format!("{}/IntelSGXRootCA.der", pccs.base);
    PccsClient::new(config, cache).unwrap()
}

#[tokio::test]
async fn fetched_collateral_equals_the_recorded_one_verifies_and_is_cached_on_disk() {
    let recorded = recorded();
    let pccs = start(routes(&recorded, true)).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(CollateralCache::on_disk(dir.path()).unwrap());
    let client = client(&pccs, cache.clone());
    let quote = data("dcap/sgx_quote");

    let fetched = client.ensure(&quote, at(IN_WINDOW)).await.unwrap();
    assert_eq!(*fetched, recorded);
    assert_eq!(pccs.hits.load(Ordering::SeqCst), 4);

    let verifier = DcapVerifier::sgx_quotes(RootCa::intel_production(), cache.clone());
    let claims = verifier.verify_evidence(&quote, at(IN_WINDOW)).unwrap();
    assert_eq!(
        claims.tcb().status,
        TcbStatus::ConfigurationAndSwHardeningNeeded
    );

    // Cached: no more requests, also for a new process reading the same directory.
    client.ensure(&quote, at(IN_WINDOW + 3600)).await.unwrap();
    let reopened = Arc::new(CollateralCache::on_disk(dir.path()).unwrap());
    let again = self::client(&pccs, reopened.clone())
        .ensure(&quote, at(IN_WINDOW))
        .await
        .unwrap();
    assert_eq!(*again, recorded);
    assert_eq!(pccs.hits.load(Ordering::SeqCst), 4);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    DcapVerifier::sgx_quotes(RootCa::intel_production(), reopened)
        .verify_evidence(&quote, at(IN_WINDOW))
        .unwrap();

    // Past the collateral's next update the cache is stale: it is fetched again, and the
    // service has nothing newer, so the caller learns the dates.
    let later = at(1_800_000_000);
    let err = client.ensure(&quote, later).await.unwrap_err();
    assert!(matches!(err, DcapError::CollateralNotValid { .. }), "{err}");
    assert_eq!(pccs.hits.load(Ordering::SeqCst), 8);
    let err = verifier.verify_evidence(&quote, later).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no collateral for FMSPC 00A067110000 (processor CA) valid at 2027-01-15"),
        "{err}"
    );
}

#[tokio::test]
async fn without_a_rootcacrl_endpoint_the_root_crl_comes_from_intel_s_url() {
    let recorded = recorded();
    let pccs = start(routes(&recorded, false)).await;
    let client = client(&pccs, Arc::new(CollateralCache::in_memory()));
    let fetched = client
        .ensure(&data("dcap/sgx_quote"), at(IN_WINDOW))
        .await
        .unwrap();
    assert_eq!(*fetched, recorded);
    assert_eq!(pccs.hits.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn service_errors_and_untrusted_tls_name_the_url() {
    let recorded = recorded();
    let mut r = routes(&recorded, true);
    r.get_mut("/sgx/certification/v4/qe/identity")
        .unwrap()
        .status = 503;
    let pccs = start(r).await;
    let err = client(&pccs, Arc::new(CollateralCache::in_memory()))
        .ensure(&data("dcap/sgx_quote"), at(IN_WINDOW))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "collateral fetch from {}/sgx/certification/v4/qe/identity: HTTP 503 Service Unavailable",
            pccs.base
        )
    );
    // A client that does not trust the server's certificate does not talk to it.
    let mut config = PccsConfig::new(pccs.base.clone());
    config.tls_roots = Some(vec![
        rcgen::generate_simple_self_signed(vec!["x".into()])
            .unwrap()
            .cert
            .der()
            .to_vec(),
    ]);
    let err = PccsClient::new(config, Arc::new(CollateralCache::in_memory()))
        .unwrap()
        .ensure(&data("dcap/sgx_quote"), at(IN_WINDOW))
        .await
        .unwrap_err();
    assert!(matches!(err, DcapError::Fetch { .. }), "{err}");
    // Simulated quotes have no collateral.
    let key = custos_attestation::PlatformKey::generate().unwrap();
    let sim = key
        .create_quote(&custos_attestation::SimReport::new(
            custos_ids::MrEnclave([0; 32]),
            b"",
        ))
        .unwrap();
    let err = client(&pccs, Arc::new(CollateralCache::in_memory()))
        .ensure(&sim, at(IN_WINDOW))
        .await
        .unwrap_err();
    assert!(matches!(err, DcapError::Simulated));
}
