//! The client API with arbitrary requests from arbitrary callers, against a real store:
//! never a panic, never a 500 other than a store error, always a JSON error shape.
//!
//! Input: byte 0 picks the method, byte 1 the caller (none, or one of two identities), then
//! the path up to the first newline, then the body.

#![no_main]

use std::sync::{Arc, OnceLock};

use custos_ids::KeyHash;
use bytes::Bytes;
use custos_cas::api::ClientApi;
use custos_cas::config::Limits;
use custos_cas::http::Peer;
use custos_cas::metrics::Metrics;
use custos_cas::seal::{MasterKey, Sealer};
use custos_cas::store::Store;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use libfuzzer_sys::fuzz_target;

struct World {
    runtime: tokio::runtime::Runtime,
    api: Arc<ClientApi>,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sealer = Sealer::new(&MasterKey::from_bytes([3; 32])).unwrap();
        let store = Store::open(&dir.path().join("cas.redb"), sealer).unwrap();
        let limits = Limits {
            requests_per_second: 1e9,
            burst: 1_000_000_000,
            namespace_create_burst: 1_000_000_000,
            ..Limits::default()
        };
        let api = Arc::new(ClientApi::new(
            store,
            limits,
            None,
            vec![0x30, 0x00],
            String::new(),
            Arc::new(Metrics::default()),
        ));
        World {
            runtime,
            api,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let [m, who, rest @ ..] = data else { return };
    let method =
        [Method::GET, Method::POST, Method::PUT, Method::DELETE][usize::from(*m % 4)].clone();
    let client = match who % 3 {
        0 => None,
        1 => Some(KeyHash::from_bytes([1; 32])),
        _ => Some(KeyHash::from_bytes([2; 32])),
    };
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let (path, body) = rest.split_at(split);
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let path = format!("/{}", path.trim_start_matches('/'));
    let Ok(request) = Request::builder()
        .method(method)
        .uri(path.as_str())
        .body(Full::new(Bytes::copy_from_slice(
            body.get(1..).unwrap_or_default(),
        )))
    else {
        return;
    };
    let w = world();
    let peer = Peer {
        addr: "127.0.0.1:9".parse().unwrap(),
        client,
    };
    let response = w
        .runtime
        .block_on(w.api.clone().handle(request, peer))
        .unwrap();
    let status = response.status();
    let bytes = w
        .runtime
        .block_on(response.into_body().collect())
        .unwrap()
        .to_bytes();
    if path.starts_with("/metrics") && status.is_success() {
        return;
    }
    let json: serde_json::Value = serde_json::from_slice(&bytes).expect("every answer is JSON");
    if !status.is_success() {
        let code = json["error"]["code"].as_str().expect("errors have a code");
        assert!(json["error"]["message"].is_string());
        assert!(
            status.as_u16() < 500 || ["store_error", "no_evidence"].contains(&code),
            "{status} {json}"
        );
    }
});
