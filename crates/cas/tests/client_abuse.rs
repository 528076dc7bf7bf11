//! The client API under hostile clients, against a real `custos-cas` process: who may create
//! namespaces and how many per address, the bound on key generation, what the unauthenticated
//! values route tells, exports to namespaces nobody owns yet, and log lines. Loopback only:
//! the legitimate side on 127.0.0.1, the "attacker" on 127.0.0.2.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{CasProcess, create, get, update};
use custos_cas::client::ClientIdentity;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// One request over a TLS connection whose client socket is bound to `source`.
async fn request_from(
    source: IpAddr,
    cas: &CasProcess,
    identity: &ClientIdentity,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> (StatusCode, serde_json::Value, Option<String>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let tcp = socket.connect(cas.addr.parse().unwrap()).await.unwrap();
    let config = rustls::ClientConfig::builder_with_provider(custos_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(custos_tls::pinned_server_verifier(cas.key_hash))
        .with_client_auth_cert(vec![identity.certificate.clone()], identity.key.clone_key())
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("custos-cas").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, cas.addr.as_str())
        .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json, retry_after)
}

fn namespace(name: &str) -> String {
    format!("name: {name}\nversion: \"0.3\"\n")
}

fn message(json: &serde_json::Value) -> String {
    json["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_listed_clients_may_create_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let operator = ClientIdentity::generate("operator").unwrap();
    let stranger = ClientIdentity::generate("stranger").unwrap();
    let listed = operator.id().unwrap().to_string();
    let cas = CasProcess::start(dir.path(), &["--top-level-creator", &listed]);

    let r = create(&cas.client(Some(&stranger)), &namespace("squat")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.json());
    assert_eq!(r.json()["error"]["code"], "access_denied");
    let text = message(&r.json());
    assert!(
        text.contains("sessions.top_level_creators")
            && text.contains(&stranger.id().unwrap().to_string()),
        "{text}"
    );

    let as_operator = cas.client(Some(&operator));
    let r = create(&as_operator, &namespace("team")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    // Inside a namespace its own create_sessions decides, as before.
    let open = "name: shared\nversion: \"0.3\"\naccess_policy: { create_sessions: [ANY] }\n";
    assert_eq!(create(&as_operator, open).await.status, StatusCode::CREATED);
    let r = create(
        &cas.client(Some(&stranger)),
        "name: shared/mine\nversion: \"0.3\"\n",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());

    // A list entry that is not a key hash stops the CAS at start-up, named.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_custos-cas"))
        .arg("--data-dir")
        .arg(dir.path().join("other"))
        .args(["--listen", "127.0.0.1:0", "--top-level-creator", "alice"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sessions.top_level_creators") && stderr.contains("\"alice\""),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_quota_holds_per_address_whatever_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cas = CasProcess::start(
        dir.path(),
        &[
            "--namespace-creates-per-hour",
            "1",
            "--namespace-create-burst",
            "2",
        ],
    );
    // Fresh keys for every create: the quota is by address, not by identity.
    let mut first = None;
    for i in 0..2 {
        let id = ClientIdentity::generate("attacker").unwrap();
        let (status, json, _) = request_from(
            ATTACKER,
            &cas,
            &id,
            Method::POST,
            "/v1/sessions",
            Some(&namespace(&format!("a{i}"))),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{json:?}");
        first.get_or_insert(id);
    }
    let fresh = ClientIdentity::generate("attacker").unwrap();
    let (status, json, retry_after) = request_from(
        ATTACKER,
        &cas,
        &fresh,
        Method::POST,
        "/v1/sessions",
        Some(&namespace("a2")),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{json:?}");
    assert_eq!(json["error"]["code"], "namespace_quota_exceeded");
    let text = message(&json);
    assert!(
        text.contains("127.0.0.2") && text.contains("limits.namespace_creates_per_hour = 1"),
        "{text}"
    );
    // One namespace an hour: the next is about an hour away.
    let secs: u64 = retry_after.unwrap().parse().unwrap();
    assert!((3000..=3601).contains(&secs), "Retry-After {secs}");

    // Sessions inside an existing namespace are not namespaces: no quota.
    let (status, json, _) = request_from(
        ATTACKER,
        &cas,
        first.as_ref().unwrap(),
        Method::POST,
        "/v1/sessions",
        Some(&namespace("a0/inner")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{json:?}");

    // Another address still creates namespaces.
    let legitimate = ClientIdentity::generate("legitimate").unwrap();
    let r = create(&cas.client(Some(&legitimate)), &namespace("mine")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    let metrics =
        String::from_utf8(get(&cas.client(None), "/metrics").await.body.to_vec()).unwrap();
    assert!(
        metrics.contains("custos_cas_namespace_quota_exceeded_total 1"),
        "{metrics}"
    );
}

fn rsa_session(name: &str, keys: usize) -> String {
    let mut text = format!(
        "name: {name}\nversion: \"0.3\"\nsecurity: {{ attestation: {{ mode: none }} }}\nsecrets:\n"
    );
    for i in 0..keys {
        text.push_str(&format!(
            "  - {{ name: K{i}, kind: private-key, key_type: RSA-2048 }}\n"
        ));
    }
    text
}

fn gauge(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_generation_is_bounded_and_cheap_requests_stay_prompt() {
    const CREATES: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let cas = CasProcess::start(
        dir.path(),
        &[
            "--max-key-generations",
            "1",
            "--namespace-create-burst",
            "1000",
        ],
    );
    let anonymous = cas.client(None);
    let started = Instant::now();
    let mut creates = Vec::new();
    for i in 0..CREATES {
        // Fresh identities, as an attacker evading the per-identity rate limit would use.
        let client = cas.client(Some(&ClientIdentity::generate("heavy").unwrap()));
        creates.push(tokio::spawn(async move {
            create(&client, &rsa_session(&format!("heavy{i}"), 2)).await
        }));
    }
    // While they run: never more than one at once, and cheap requests are answered at once.
    let mut seen_running = false;
    let mut slowest_cheap = Duration::ZERO;
    let small = cas.client(Some(&ClientIdentity::generate("small").unwrap()));
    let mut n = 0;
    while !creates.iter().all(|c| c.is_finished()) {
        assert!(started.elapsed() < Duration::from_secs(120), "creates hang");
        let metrics = String::from_utf8(get(&anonymous, "/metrics").await.body.to_vec()).unwrap();
        let running = gauge(&metrics, "custos_cas_key_generations_running");
        assert!(running <= 1, "{running} key generations at once");
        if running == 1 && n < 20 {
            seen_running = true;
            let t = Instant::now();
            assert_eq!(get(&anonymous, "/healthz").await.status, StatusCode::OK);
            let r = create(&small, &namespace(&format!("small{n}"))).await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
            slowest_cheap = slowest_cheap.max(t.elapsed());
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = started.elapsed();
    for c in creates {
        let r = c.await.unwrap();
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    }
    assert!(
        seen_running && n > 0,
        "no cheap request ran during key generation"
    );
    let metrics = String::from_utf8(get(&anonymous, "/metrics").await.body.to_vec()).unwrap();
    assert_eq!(
        gauge(&metrics, "custos_cas_key_generations_running_peak"),
        1
    );
    assert_eq!(gauge(&metrics, "custos_cas_key_generations_running"), 0);
    eprintln!(
        "{CREATES} creates of 2 RSA-2048 keys took {total:?}; {n} healthz + small creates meanwhile, the slowest pair {slowest_cheap:?}"
    );
    assert!(
        slowest_cheap < Duration::from_secs(2),
        "a cheap request took {slowest_cheap:?} while keys were generated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_generation_beyond_the_queue_gets_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cas.toml");
    std::fs::write(
        &config,
        "[limits]\nmax_concurrent_key_generations = 1\nmax_queued_key_generations = 0\nkey_generation_wait_secs = 7\nnamespace_create_burst = 100\n",
    )
    .unwrap();
    let cas = CasProcess::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let mut creates = Vec::new();
    for i in 0..3 {
        let client = cas.client(Some(&ClientIdentity::generate("heavy").unwrap()));
        creates.push(tokio::spawn(async move {
            create(&client, &rsa_session(&format!("heavy{i}"), 3)).await
        }));
    }
    let mut statuses = Vec::new();
    for c in creates {
        let r = c.await.unwrap();
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(r.json()["error"]["code"], "busy");
            assert_eq!(r.retry_after.as_deref(), Some("7"));
            assert!(
                message(&r.json()).contains("limits.max_queued_key_generations"),
                "{:?}",
                r.json()
            );
        }
        statuses.push(r.status.as_u16());
    }
    statuses.sort_unstable();
    // One runs; with no queue the others, arriving while it runs, are refused at once.
    assert_eq!(statuses[0], 201, "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_do_not_tell_whether_a_session_exists() {
    let dir = tempfile::tempdir().unwrap();
    let cas = CasProcess::start(dir.path(), &[]);
    let owner = cas.client(Some(&ClientIdentity::generate("owner").unwrap()));
    let private = "name: alpha\nversion: \"0.3\"\nsecrets:\n  - { name: KEY, kind: private-key }\n";
    assert_eq!(create(&owner, private).await.status, StatusCode::CREATED);
    let public = "name: beta\nversion: \"0.3\"\nsecrets:\n  - { name: KEY, kind: private-key, export_public: true }\n  - { name: OTHER, kind: private-key }\n";
    assert_eq!(create(&owner, public).await.status, StatusCode::CREATED);

    let anonymous = cas.client(None);
    let answer = |name: &str, json: serde_json::Value| {
        // The same answer with the session's name swapped for a placeholder.
        json.to_string().replace(name, "NAME")
    };
    for suffix in ["", ",secret=KEY"] {
        let existing = get(&anonymous, &format!("/v1/values/session=alpha{suffix}")).await;
        let missing = get(&anonymous, &format!("/v1/values/session=nosuch{suffix}")).await;
        assert_eq!(
            existing.status,
            StatusCode::NOT_FOUND,
            "{:?}",
            existing.json()
        );
        assert_eq!(missing.status, existing.status);
        assert_eq!(
            answer("alpha", existing.json()),
            answer("nosuch", missing.json())
        );
        assert!(!existing.json().to_string().contains("hash"));
    }
    // A session with public values: a secret it does not publish is answered as above too.
    let r = get(&anonymous, "/v1/values/session=beta,secret=OTHER").await;
    let missing = get(&anonymous, "/v1/values/session=nosuch,secret=OTHER").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(answer("beta", r.json()), answer("nosuch", missing.json()));
    // Its public values are still served, without the session's hash.
    let r = get(&anonymous, "/v1/values/session=beta").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    assert!(
        r.json()["values"]["KEY"]["value"]
            .as_str()
            .unwrap()
            .contains("PUBLIC KEY")
    );
    assert_eq!(r.json()["values"].as_object().unwrap().len(), 1);
    assert!(r.json().get("hash").is_none(), "{:?}", r.json());
}

fn exporter(name: &str, export: &str) -> String {
    format!(
        "name: {name}\nversion: \"0.3\"\nsecrets:\n  - {{ name: TOKEN, kind: ascii, export: [{export}] }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_to_a_namespace_nobody_owns_need_a_pinned_hash() {
    let dir = tempfile::tempdir().unwrap();
    let cas = CasProcess::start(dir.path(), &[]);
    let c = cas.client(Some(&ClientIdentity::generate("owner").unwrap()));

    let r = create(&c, &exporter("db", "{ session: later/app }")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.json());
    assert_eq!(r.json()["error"]["code"], "export_namespace_missing");
    let text = message(&r.json());
    for needle in ["TOKEN", "later/app", "namespace later", "session_hash"] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    // A top-level importer is its own namespace.
    let r = create(&c, &exporter("db", "{ session: app }")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.json());

    // Pinned: whoever creates `later` cannot make a session with that hash but the intended one.
    let pinned = format!(
        "{{ session: later/app, session_hash: {} }}",
        "ab".repeat(32)
    );
    let r = create(&c, &exporter("db", &pinned)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    let hash = r.json()["hash"].as_str().unwrap().to_owned();

    // Inside the exporter's own namespace, or to one that exists: allowed.
    let r = create(&c, &exporter("own", "{ session: own/app }")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    assert_eq!(
        create(&c, &namespace("apps")).await.status,
        StatusCode::CREATED
    );
    let r = create(&c, &exporter("db2", "{ session: apps/app }")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());

    // Updates are checked the same way.
    let r = update(
        &c,
        "db",
        &format!("{}predecessor: {hash}\n", exporter("db", "later/app")),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.json());
    assert_eq!(r.json()["error"]["code"], "export_namespace_missing");
    let r = get(&c, "/v1/sessions/db").await;
    assert_eq!(
        r.json()["hash"],
        hash.as_str(),
        "the refused update changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_strings_do_not_forge_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let cas = CasProcess::start(dir.path(), &["--namespace-create-burst", "1"]);
    let c = cas.client(Some(&ClientIdentity::generate("mallory").unwrap()));
    let forged = "FORGED custos_cas: session created session=root";
    let encoded = forged.replace(' ', "%20");
    // Paths and queries (hyper refuses raw control characters; percent-encoded ones reach
    // the handlers), and session texts whose names or secrets carry line breaks.
    for path in [
        format!("/v1/sessions/x%0A{encoded}"),
        format!("/v1/sessions?prefix=%0A{encoded}"),
        format!("/v1/values/session=x%0A{encoded}"),
        format!("/v1/audit?session=x%0A{encoded}"),
        format!("/v1/attest?nonce=%0A{encoded}"),
    ] {
        get(&c, &path).await;
    }
    let r = create(&c, &format!("name: \"a\\n{forged}\"\nversion: \"0.3\"\n")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = update(
        &c,
        &format!("x%0A{encoded}"),
        &format!(
            "name: x\nversion: \"0.3\"\npredecessor: {}\n",
            "0".repeat(64)
        ),
    )
    .await;
    assert!(r.status.is_client_error());
    // A create that is logged, then one refused by the quota (logged as a warning).
    assert_eq!(
        create(&c, &namespace("ok")).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        create(&c, &namespace("over")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    common::wait_until("the quota warning in the log", || {
        cas.log().contains("namespace quota exceeded")
    });
    let log = cas.log();
    assert!(
        log.lines().all(|line| !line.starts_with("FORGED")),
        "a client forged a log line:\n{log}"
    );
    assert!(log.contains("session=\"ok\""), "{log}");
}
