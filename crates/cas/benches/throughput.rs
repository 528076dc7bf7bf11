//! CAS throughput and memory: creates/s and reads/s with concurrent clients over mutual
//! TLS, and the CAS process's resident memory idle and under load.
//!
//! `cargo bench -p custos-cas --bench throughput` (release build of `custos-cas`).
//! Environment: `BENCH_CLIENTS` (default 16), `BENCH_SECONDS` per phase (default 5).
//! Targets on 2 cores: ≥ 500 creates/s, ≥ 5,000 reads/s, RSS < 50 MB idle.
//! The clients run on the same machine, so they take CPU from the CAS: the figures are a
//! lower bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use custos_cas::metrics::resident_bytes_of;
use custos_client::{CasClient, ClientIdentity, ServerTrust};
use hyper::{Method, StatusCode};

/// A CAS started by the one orchestrator (`custos-harness`), its log in `dir/logs`.
fn start(dir: &std::path::Path) -> custos_harness::Cas {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_custos-cas"));
    let launcher = custos_harness::Launcher::new(bin.parent().unwrap(), dir.join("logs"));
    let flags = [
        "--log",
        "warn,custos_cas=info",
        "--rate-limit",
        "1000000",
        "--rate-burst",
        "1000000",
        // Every bench session is a namespace, all from one address.
        "--namespace-create-burst",
        "1000000000",
    ];
    let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
    launcher
        .cas(&dir.join("cas"), &flags)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn session(name: &str) -> Vec<u8> {
    format!(
        "name: {name}\nversion: \"0.3\"\nsecurity: {{ attestation: {{ mode: none }} }}\nsecrets:\n  - {{ name: PASSWORD, kind: ascii }}\nservices:\n  - name: app\n    command: [\"/app\", \"$$SCONE::PASSWORD$$\"]\n"
    )
    .into_bytes()
}

async fn phase(
    clients: &[CasClient],
    seconds: u64,
    pid: u32,
    request: impl Fn(usize, u64) -> (Method, String, Option<Vec<u8>>) + Send + Sync + 'static,
    expect: StatusCode,
) -> (f64, u64, u64) {
    let request = Arc::new(request);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let (client, request, done, stop) =
            (client.clone(), request.clone(), done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = client.connect().await.expect("connect");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (method, path, body) = request(c, n);
                let r = conn.send(method, &path, body).await.expect("request");
                assert_eq!(r.status, expect, "{path}: {:?}", r.json());
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    let mut peak_rss = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_rss = peak_rss.max(resident_bytes_of(&pid.to_string()).unwrap_or(0));
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for t in tasks {
        t.await.unwrap();
    }
    let count = done.load(Ordering::Relaxed);
    (count as f64 / elapsed, count, peak_rss)
}

fn main() {
    let clients: usize = std::env::var("BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let cas = start(dir.path());
    let pid = cas.process.id();
    let addr = cas.addr.clone();
    let key: custos_ids::KeyHash = cas.key_hash.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let identities: Vec<_> = (0..clients)
            .map(|i| ClientIdentity::generate(&format!("bench-{i}")).unwrap())
            .collect();
        let pool: Vec<_> = identities
            .iter()
            .map(|id| CasClient::new(&addr, Some(id), ServerTrust::Pinned(key)).unwrap())
            .collect();
        // One request so the store and TLS are warm, then let the CAS settle.
        let r = pool[0].request(Method::GET, "/healthz", None).await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_rss = resident_bytes_of(&pid.to_string()).unwrap_or(0);

        let (creates, created, create_rss) = phase(
            &pool,
            seconds,
            pid,
            |c, n| (Method::POST, "/v1/sessions".into(), Some(session(&format!("bench-{c}-{n}")))),
            StatusCode::CREATED,
        )
        .await;
        let (reads, read, read_rss) = phase(
            &pool,
            seconds,
            pid,
            |c, n| (Method::GET, format!("/v1/sessions/bench-{c}-{}", n % 50), None),
            StatusCode::OK,
        )
        .await;
        // Reads are audited asynchronously: how far behind is the audit log?
        let audited = |metrics: &str| {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix("custos_cas_audit_events "))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let metrics = |pool: &[CasClient]| {
            let client = pool[0].clone();
            async move {
                let r = client.request(Method::GET, "/metrics", None).await.unwrap();
                String::from_utf8_lossy(&r.body).into_owned()
            }
        };
        let audited_at_end = audited(&metrics(&pool).await);
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let audited_later = audited(&metrics(&pool).await);
        let after_rss = resident_bytes_of(&pid.to_string()).unwrap_or(0);
        let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mark = |ok: bool| if ok { "ok" } else { "BELOW TARGET" };
        println!("custos-cas throughput ({clients} concurrent mutual-TLS clients, {seconds} s per phase, clients on the same machine)");
        println!("  creates/s          {creates:>9.0}   target >= 500     {}", mark(creates >= 500.0));
        println!("  reads/s            {reads:>9.0}   target >= 5000    {}", mark(reads >= 5000.0));
        println!("  RSS idle           {:>9.1} MB target < 50 MB   {}", mb(idle_rss), mark(mb(idle_rss) < 50.0));
        println!("  RSS peak, creates  {:>9.1} MB", mb(create_rss));
        println!("  RSS peak, reads    {:>9.1} MB", mb(read_rss));
        println!("  RSS after load     {:>9.1} MB", mb(after_rss));
        println!(
            "  audit events       {audited_at_end} when the load stopped, {audited_later} 2 s later ({} requests audited)",
            created + read
        );
    });
    drop(cas);
}
