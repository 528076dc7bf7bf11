//! The CAS under attack (issue #12): do legitimate clients keep being served while hostile
//! ones hammer it? The real release binaries on loopback — a LAS and a CAS ([`World`]) —
//! with the attackers in this process, speaking only the public wire protocols (TLS,
//! HTTP/1.1, the documented JSON), so the same benchmark runs against any version of the CAS.
//!
//! The attack lasts `UNDER_ATTACK_SECONDS` (20). At once, each attack from its own source
//! address (so a per-address defence against one does not blunt another):
//!
//! - idle TLS: `UNDER_ATTACK_IDLE_CONNECTIONS` (2,000) connections on each listener (client
//!   API without a certificate, enclave API with a self-signed one) that complete the
//!   handshake and then send nothing, re-opened when the server closes them — 127.0.0.2;
//! - a challenge flood: a few tasks sending `POST /v1/enclave/challenge` for the legitimate
//!   service's config id as fast as they can, on keep-alive connections — 127.0.0.3;
//! - a garbage-attest flood: `POST /v1/enclave/attest` for that config id with well-formed JSON,
//!   a made-up nonce and made-up evidence — 127.0.0.4;
//! - key generation: `UNDER_ATTACK_KEYGEN_CLIENTS` (20) clients at once, each creating a
//!   top-level namespace with 64 RSA-3072 keys from a fresh client identity, again and
//!   again — 127.0.0.5.
//!
//! Every error, timeout or refusal on the attackers' side is normal: they keep trying, each
//! loop bounded in count and by the attack's deadline; at the end every task is joined or
//! aborted.
//!
//! The legitimate side, from 127.0.0.1, runs the same workload unloaded
//! (`UNDER_ATTACK_BASELINE_SECONDS`, 10) just before the attack and then under it (after a
//! ramp of at most 2 s that lets the attackers reach full strength):
//!
//! - attested starts: `custos-run` → exec of `true` (the real binary), `mode: hardware`
//!   with the LAS's sim-quote, one every 100 ms (a slower start delays the next);
//! - session creates: small sessions in the owner's namespace, one every 100 ms.
//!
//! Both are paced rather than back to back: latency is measured as a client sees it, and the
//! records the legitimate workload itself writes stay small.
//!
//! Printed: attested starts' success rate and p50/p99, unloaded and under attack; session
//! creates/s and their p50/p99; the CAS's RSS (peak `VmHWM` and current `VmRSS`); the growth
//! of `cas.redb` during the attack, and that growth less the legitimate workload's own share
//! (estimated per successful operation from the unloaded phase); what the attackers
//! achieved. Targets, each with PASS or FAIL: 100 % of attested starts succeed, their p99
//! ≤ 5× the unloaded p99, store growth (less the legitimate share) ≤ 1 MB, peak RSS ≤ 100 MB.
//! It is a measurement, not a test: it exits 0 either way.
//!
//! Needs about 2 × 2 × `UNDER_ATTACK_IDLE_CONNECTIONS` file descriptors (this process and the
//! CAS): `ulimit -n` 20000 is plenty.
//!
//! `cargo bench -p custos-e2e --bench under_attack` (`UNDER_ATTACK_SECONDS=8` for a short run)

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custos_client::{CasClient, ClientIdentity};
use custos_e2e::{CasClientExt as _, World, measurement, run_command};
use custos_protocol::base64url;
use custos_protocol::enclave::{
    ATTEST_PATH, AttestRequest, CHALLENGE_PATH, ChallengeRequest, EvidenceBytes, RuntimeData,
};
use custos_runtime::identity::EphemeralKey;
use rustls::pki_types::ServerName;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

/// Flags added to the CAS's command line: none, so today's defaults are measured. If a new
/// default refuses the legitimate workload (it creates one top-level namespace, `legit`,
/// then sessions inside it), the setting that admits it goes here.
const CAS_FLAGS: &[&str] = &[];

/// Where the idle connections come from.
const IDLE_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Where the challenge flood comes from.
const CHALLENGE_FLOOD_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// Where the garbage-attest flood comes from.
const ATTEST_FLOOD_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
/// Where the key-generation creates come from.
const KEYGEN_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);

/// The legitimate service; the floods name it too (config ids are not secret).
const APP_SESSION: &str = "legit/app";
const APP_CONFIG_ID: &str = "legit/app/app";

/// One legitimate attested start, and one legitimate create, per interval.
const LEGIT_INTERVAL: Duration = Duration::from_millis(100);
/// A legitimate start or create taking longer is stopped and counted as failed.
const LEGIT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the attackers run before the legitimate side is measured (at most a quarter of
/// the attack).
const RAMP: Duration = Duration::from_secs(2);

/// Tasks per flood, each with its own keep-alive connection.
const FLOOD_TASKS: usize = 4;
/// Bounds on each attacker loop (the attack's deadline comes first in practice).
const FLOOD_MAX_REQUESTS_PER_TASK: u64 = 500_000;
const IDLE_MAX_ATTEMPTS_PER_SLOT: u64 = 1_000;
const KEYGEN_MAX_CREATES_PER_CLIENT: u64 = 100;
/// An idle-connection attempt whose handshake takes longer is abandoned and retried.
const IDLE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before an idle connection is re-opened, and after a failed flood request, so a
/// refused attacker does not spin this process's CPU.
const IDLE_RETRY_PAUSE: Duration = Duration::from_millis(100);
const FLOOD_ERROR_PAUSE: Duration = Duration::from_millis(10);
/// A flood request without an answer for this long is abandoned.
const FLOOD_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Keys in each key-generation create: the most a session may have.
const KEYGEN_KEYS: usize = 64;
/// Bytes of made-up evidence in a garbage attest.
const GARBAGE_QUOTE_BYTES: usize = 1_024;
/// How long stopping attackers may take before they are aborted.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// The CAS commits in batches: wait this long before reading the store's size.
const SETTLE: Duration = Duration::from_secs(1);

/// Targets (issue #12).
const TARGET_P99_FACTOR: f64 = 5.0;
const TARGET_STORE_GROWTH_BYTES: u64 = 1_000_000;
const TARGET_RSS_BYTES: u64 = 100_000_000;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------
// Attackers

/// Whether an attacker loop must end.
#[derive(Debug, Clone)]
struct Stop {
    flag: Arc<AtomicBool>,
    /// The hard bound, should nobody set the flag.
    deadline: Instant,
}

impl Stop {
    fn now(&self) -> bool {
        self.flag.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }
}

/// Outcomes of an attacker's requests, by label (`200`, `429`, `timeout`, …).
#[derive(Debug, Default)]
struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    fn add(&self, outcome: String) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(outcome)
            .or_default() += 1;
    }

    fn count(&self, outcome: &str) -> u64 {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(outcome).copied().unwrap_or(0)
    }

    fn total(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    fn render(&self) -> String {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.is_empty() {
            return "none".into();
        }
        map.iter()
            .map(|(outcome, n)| format!("{outcome} × {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A label for a request that got no HTTP answer.
fn no_answer(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "no answer (timeout)".into()
    } else if error.is_connect() {
        "no answer (connect failed)".into()
    } else {
        "no answer (connection failed)".into()
    }
}

/// What the idle connections on one listener achieved.
#[derive(Debug, Default)]
struct IdleStats {
    handshakes: AtomicU64,
    failed: AtomicU64,
    closed_by_server: AtomicU64,
    open: AtomicUsize,
    peak_open: AtomicUsize,
}

/// Counts a connection as open while it lives (also when its task is aborted).
struct Held<'a>(&'a IdleStats);

impl<'a> Held<'a> {
    fn new(stats: &'a IdleStats) -> Self {
        stats.handshakes.fetch_add(1, Ordering::Relaxed);
        let open = stats.open.fetch_add(1, Ordering::Relaxed) + 1;
        stats.peak_open.fetch_max(open, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TCP connection from `from` (an attacker's source address) to `to`.
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    // Re-opened connections may find their last port in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    socket.connect(to).await
}

/// A TLS client configuration that accepts any server (attackers do not care whom they
/// hit), presenting `identity` if given.
fn attacker_tls(
    identity: Option<(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
) -> rustls::ClientConfig {
    let builder = rustls::ClientConfig::builder_with_provider(custos_tls::provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(custos_tls::unauthenticated_server_verifier());
    match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    }
}

fn certified(
    identity: &ClientIdentity,
) -> (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    (vec![identity.certificate.clone()], identity.key.clone_key())
}

/// One idle-connection slot: connect, complete the handshake, send nothing, read until the
/// server closes, then again — until stopped.
async fn hold_idle(target: SocketAddr, tls: TlsConnector, stats: Arc<IdleStats>, stop: Stop) {
    for _ in 0..IDLE_MAX_ATTEMPTS_PER_SLOT {
        if stop.now() {
            return;
        }
        let handshake = async {
            let tcp = connect_from(IDLE_FROM, target).await?;
            tls.connect(ServerName::IpAddress(target.ip().into()), tcp)
                .await
        };
        let attempt = tokio::time::timeout(IDLE_HANDSHAKE_TIMEOUT, handshake);
        match tokio::time::timeout_at(stop.deadline, attempt).await {
            Err(_) => return,
            Ok(Err(_)) | Ok(Ok(Err(_))) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(Ok(mut stream))) => {
                let _held = Held::new(&stats);
                let mut buffer = [0u8; 4096];
                let closed = tokio::time::timeout_at(stop.deadline, async {
                    // Whatever the server sends (session tickets, an error page) is read
                    // and ignored until it closes.
                    while let Ok(n) = stream.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                    }
                })
                .await;
                if closed.is_err() {
                    return;
                }
                stats.closed_by_server.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(IDLE_RETRY_PAUSE).await;
    }
}

/// An HTTP/1.1 keep-alive client from `from`, with `tls`.
fn attacker_http(from: Ipv4Addr, tls: rustls::ClientConfig, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .local_address(IpAddr::V4(from))
        .http1_only()
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .expect("HTTP client")
}

/// Sends `POST url` with `body()` as fast as answers come, until stopped.
async fn flood(
    client: reqwest::Client,
    url: String,
    mut body: impl FnMut() -> Vec<u8>,
    tally: Arc<Tally>,
    stop: Stop,
) {
    for _ in 0..FLOOD_MAX_REQUESTS_PER_TASK {
        if stop.now() {
            return;
        }
        let request = client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body());
        let exchange = async {
            let response = request.send().await?;
            let status = response.status();
            // Read to the end so the connection is kept alive.
            response.bytes().await?;
            Ok::<_, reqwest::Error>(status)
        };
        match tokio::time::timeout_at(stop.deadline, exchange).await {
            Err(_) => return,
            Ok(Ok(status)) => tally.add(status.as_u16().to_string()),
            Ok(Err(error)) => {
                tally.add(no_answer(&error));
                tokio::time::sleep(FLOOD_ERROR_PAUSE).await;
            }
        }
    }
}

/// Made-up bytes for garbage requests (splitmix64): they only need to differ, not to be
/// unpredictable.
#[derive(Debug)]
struct Garbage(u64);

impl Garbage {
    fn seeded(seed: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self(nanos ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len.div_ceil(8))
            .flat_map(|_| self.next().to_le_bytes())
            .take(len)
            .collect()
    }
}

/// A well-formed attest request with a made-up nonce and made-up evidence; the key is
/// real (the attacker's TLS key), so only the nonce and the evidence are wrong.
fn garbage_attest(garbage: &mut Garbage, key: &EphemeralKey) -> Vec<u8> {
    let runtime_data = serde_json::to_vec(&RuntimeData {
        nonce: base64url::encode(&garbage.bytes(32)),
        jwk: key.jwk(),
    })
    .expect("JSON");
    serde_json::to_vec(&AttestRequest {
        config_id: APP_CONFIG_ID.into(),
        evidence: EvidenceBytes {
            kind: "sim-quote".into(),
            quote: garbage.bytes(GARBAGE_QUOTE_BYTES),
        },
        runtime_data,
    })
    .expect("JSON")
}

/// A top-level namespace with the most keys a session may have, all RSA-3072.
fn keygen_session(name: &str) -> String {
    let mut text = format!("name: {name}\nversion: \"0.3\"\nsecrets:\n");
    for i in 0..KEYGEN_KEYS {
        text.push_str(&format!(
            "  - {{ name: k{i}, kind: private-key, key_type: RSA-3072 }}\n"
        ));
    }
    text
}

/// One key-generation client: create after create, each from a fresh identity (so a
/// per-identity limit never applies), each waiting as long as the attack lasts.
async fn keygen_creates(
    client_number: u64,
    url: String,
    sent: Arc<AtomicU64>,
    tally: Arc<Tally>,
    stop: Stop,
) {
    for n in 0..KEYGEN_MAX_CREATES_PER_CLIENT {
        if stop.now() {
            return;
        }
        let identity = ClientIdentity::generate("attacker").expect("identity");
        let left = stop.deadline.saturating_duration_since(Instant::now());
        let client = attacker_http(KEYGEN_FROM, attacker_tls(Some(certified(&identity))), left);
        let body = keygen_session(&format!("attack-{client_number}-{n}"));
        sent.fetch_add(1, Ordering::Relaxed);
        let exchange = async {
            let response = client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/yaml")
                .body(body)
                .send()
                .await?;
            let status = response.status();
            response.bytes().await?;
            Ok::<_, reqwest::Error>(status)
        };
        match tokio::time::timeout_at(stop.deadline, exchange).await {
            Err(_) => return,
            Ok(Ok(status)) => tally.add(status.as_u16().to_string()),
            Ok(Err(error)) => {
                tally.add(no_answer(&error));
                tokio::time::sleep(FLOOD_ERROR_PAUSE).await;
            }
        }
    }
}

/// The attack's settings.
#[derive(Debug, Clone)]
struct AttackPlan {
    client_api: SocketAddr,
    enclave_api: SocketAddr,
    idle_per_listener: u64,
    keygen_clients: u64,
}

/// What the attackers did.
#[derive(Debug, Default)]
struct AttackFigures {
    idle_client_api: Arc<IdleStats>,
    idle_enclave_api: Arc<IdleStats>,
    challenges: Arc<Tally>,
    attests: Arc<Tally>,
    creates_sent: Arc<AtomicU64>,
    creates: Arc<Tally>,
}

/// Starts every attacker; they run until `stop`.
fn launch_attack(plan: &AttackPlan, figures: &AttackFigures, stop: &Stop) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();

    let plain = TlsConnector::from(Arc::new(attacker_tls(None)));
    let anyone = ClientIdentity::generate("idle attacker").expect("identity");
    let certified_tls = TlsConnector::from(Arc::new(attacker_tls(Some(certified(&anyone)))));
    for (target, tls, stats) in [
        (plan.client_api, plain, &figures.idle_client_api),
        (plan.enclave_api, certified_tls, &figures.idle_enclave_api),
    ] {
        for _ in 0..plan.idle_per_listener {
            tasks.push(tokio::spawn(hold_idle(
                target,
                tls.clone(),
                stats.clone(),
                stop.clone(),
            )));
        }
    }

    let enclave_url = |path: &str| format!("https://{}{path}", plan.enclave_api);
    let flooder = ClientIdentity::generate("challenge flood").expect("identity");
    let challenge_client = attacker_http(
        CHALLENGE_FLOOD_FROM,
        attacker_tls(Some(certified(&flooder))),
        FLOOD_REQUEST_TIMEOUT,
    );
    let challenge = serde_json::to_vec(&ChallengeRequest {
        config_id: APP_CONFIG_ID.into(),
    })
    .expect("JSON");
    let attest_key = Arc::new(EphemeralKey::generate().expect("key"));
    let attest_client = attacker_http(
        ATTEST_FLOOD_FROM,
        attacker_tls(Some(attest_key.client_auth())),
        FLOOD_REQUEST_TIMEOUT,
    );
    for task in 0..FLOOD_TASKS {
        let challenge = challenge.clone();
        tasks.push(tokio::spawn(flood(
            challenge_client.clone(),
            enclave_url(CHALLENGE_PATH),
            move || challenge.clone(),
            figures.challenges.clone(),
            stop.clone(),
        )));
        let (key, mut garbage) = (attest_key.clone(), Garbage::seeded(task as u64));
        tasks.push(tokio::spawn(flood(
            attest_client.clone(),
            enclave_url(ATTEST_PATH),
            move || garbage_attest(&mut garbage, &key),
            figures.attests.clone(),
            stop.clone(),
        )));
    }

    for client in 0..plan.keygen_clients {
        tasks.push(tokio::spawn(keygen_creates(
            client,
            format!("https://{}/v1/sessions", plan.client_api),
            figures.creates_sent.clone(),
            figures.creates.clone(),
            stop.clone(),
        )));
    }
    tasks
}

/// Stops the attackers: they finish their current step within `STOP_GRACE` or are aborted.
async fn stop_attack(stop: &Stop, tasks: Vec<JoinHandle<()>>) -> usize {
    stop.flag.store(true, Ordering::Relaxed);
    let grace_ends = Instant::now() + STOP_GRACE;
    let mut aborted = 0;
    for mut task in tasks {
        if tokio::time::timeout_at(grace_ends, &mut task)
            .await
            .is_err()
        {
            task.abort();
            let _ = task.await;
            aborted += 1;
        }
    }
    aborted
}

// ---------------------------------------------------------------------------------------
// The legitimate side

/// What the legitimate side needs; cheap to clone into its own thread.
#[derive(Debug, Clone)]
struct Legit {
    cas: CasClient,
    vars: Vec<(&'static str, String)>,
    true_path: String,
}

/// One legitimate operation.
#[derive(Debug)]
struct Sample {
    took: Duration,
    /// Why it failed, if it did.
    failure: Option<String>,
}

/// The legitimate side's figures for one phase.
#[derive(Debug)]
struct LegitFigures {
    window: Duration,
    starts: Vec<Sample>,
    creates: Vec<Sample>,
}

/// `custos-run true`, attesting as the legitimate service; bounded by `LEGIT_TIMEOUT`.
async fn attested_start(legit: &Legit) -> Sample {
    let vars: Vec<(&str, &str)> = legit.vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut command = tokio::process::Command::from(run_command(&vars, &[&legit.true_path]));
    command.kill_on_drop(true);
    let started = Instant::now();
    let result = tokio::time::timeout(LEGIT_TIMEOUT, command.output()).await;
    let took = started.elapsed();
    let failure = match result {
        Ok(Ok(output)) if output.status.success() => None,
        Ok(Ok(output)) => Some(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Ok(Err(e)) => Some(format!("cannot run custos-run: {e}")),
        Err(_) => Some(format!("no exec within {LEGIT_TIMEOUT:?}")),
    };
    Sample { took, failure }
}

/// Creates the small session `name` as the owner; bounded by `LEGIT_TIMEOUT`.
async fn legit_create(legit: &Legit, name: &str) -> Sample {
    let text = format!("name: {name}\nversion: \"0.3\"\n");
    let started = Instant::now();
    let result = tokio::time::timeout(LEGIT_TIMEOUT, legit.cas.create_session(&text)).await;
    let took = started.elapsed();
    let failure = match result {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {LEGIT_TIMEOUT:?}")),
    };
    Sample { took, failure }
}

/// Runs `op` once per `LEGIT_INTERVAL` until `end` (one at a time: a slow one delays the
/// next, no burst catches up), so at most `window / LEGIT_INTERVAL + 1` times.
async fn paced<F, Fut>(end: Instant, mut op: F) -> Vec<Sample>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Sample>,
{
    let mut samples = Vec::new();
    let mut next = Instant::now();
    while next < end {
        tokio::time::sleep_until(next).await;
        samples.push(op(samples.len() as u64).await);
        next = (next + LEGIT_INTERVAL).max(Instant::now());
    }
    samples
}

/// The legitimate workload for `window`, on its own thread and runtime so that the
/// attackers' tasks in this process never delay its timing; `tag` keeps session names apart.
fn legit_workload(
    legit: Legit,
    tag: &'static str,
    window: Duration,
) -> std::thread::JoinHandle<LegitFigures> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async {
            let started = Instant::now();
            let end = started + window;
            let (starts, creates) = tokio::join!(
                paced(end, |_| attested_start(&legit)),
                paced(end, |n| {
                    let legit = &legit;
                    async move { legit_create(legit, &format!("legit/{tag}{n}")).await }
                }),
            );
            LegitFigures {
                window: started.elapsed(),
                starts,
                creates,
            }
        })
    })
}

// ---------------------------------------------------------------------------------------
// Figures

/// The `p` percentile of the samples' times, failures ranked slowest (a failed start did
/// not start at all): `None` when it lands on a failure or there are no samples.
fn percentile(samples: &[Sample], p: f64) -> Option<Duration> {
    let mut times: Vec<Option<Duration>> = samples
        .iter()
        .map(|s| s.failure.is_none().then_some(s.took))
        .collect();
    times.sort_by_key(|t| (t.is_none(), *t));
    let index = ((times.len() as f64 - 1.0) * p).round() as usize;
    times.get(index).copied().flatten()
}

fn succeeded(samples: &[Sample]) -> usize {
    samples.iter().filter(|s| s.failure.is_none()).count()
}

fn show_ms(d: Option<Duration>) -> String {
    d.map_or("failed".into(), |d| {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    })
}

fn show_rate(samples: &[Sample]) -> String {
    if samples.is_empty() {
        return "none".into();
    }
    format!(
        "{}/{} ({:.1} %)",
        succeeded(samples),
        samples.len(),
        100.0 * succeeded(samples) as f64 / samples.len() as f64
    )
}

fn show_bytes(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

/// A process's `VmHWM` and `VmRSS` in bytes (`None` once it has exited).
fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The soft limit on open files, from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
}

/// The legitimate service: `true`, attested by the LAS's sim-quote, with a generated secret
/// in its environment.
fn app_session(true_path: &Path) -> String {
    format!(
        r#"
name: {APP_SESSION}
version: "0.3"
security: {{ attestation: {{ mode: hardware, tolerate: [debug-mode] }} }}
secrets:
  - {{ name: TOKEN, kind: ascii }}
services:
  - name: app
    command: ["true"]
    environment: {{ TOKEN: $$SCONE::TOKEN$$ }}
    mrenclaves: ["{mrenclave}"]
"#,
        mrenclave = measurement(true_path),
    )
}

fn print_idle(label: &str, stats: &IdleStats, wanted: u64) {
    println!(
        "  idle TLS, {label:<11} {wanted} wanted: {} handshakes, peak {} open at once, {} closed by the CAS, {} attempts failed or timed out",
        stats.handshakes.load(Ordering::Relaxed),
        stats.peak_open.load(Ordering::Relaxed),
        stats.closed_by_server.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed),
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` lists benchmarks; there is nothing to list here.
        return;
    }
    let attack = Duration::from_secs(env_number("UNDER_ATTACK_SECONDS", 20).max(1));
    let baseline = Duration::from_secs(env_number("UNDER_ATTACK_BASELINE_SECONDS", 10).max(1));
    let idle_per_listener = env_number("UNDER_ATTACK_IDLE_CONNECTIONS", 2_000);
    let keygen_clients = env_number("UNDER_ATTACK_KEYGEN_CLIENTS", 20);
    let ramp = RAMP.min(attack / 4);

    let true_path = custos_runtime::launch::resolve_program(std::ffi::OsStr::new("true"))
        .expect("`true` on PATH");
    let true_str = true_path.to_str().expect("UTF-8 path").to_owned();
    println!(
        "binaries: {}; open files allowed: {}",
        custos_e2e::bin_dir().display(),
        open_files_limit().map_or("unknown".into(), |n| n.to_string())
    );
    if let Some(limit) = open_files_limit()
        && limit < 2 * idle_per_listener + 1_024
    {
        println!(
            "warning: {} idle connections need more open files than the limit {limit}",
            2 * idle_per_listener
        );
    }

    let world = World::start(false, CAS_FLAGS);
    world.create("name: legit\nversion: \"0.3\"\n");
    world.create(&app_session(&true_path));
    // One start to check the setup (and to warm the caches).
    let output = world.run(APP_CONFIG_ID, &[&true_str]);
    assert!(
        output.status.success(),
        "the legitimate service does not start: {}",
        custos_e2e::stderr(&output)
    );
    let legit = Legit {
        cas: world.cas.client(&world.owner),
        vars: world.runtime_vars(APP_CONFIG_ID),
        true_path: true_str,
    };
    let store = world.dir.path().join("cas").join("cas.redb");
    let cas_pid = world.cas.process.id();

    // Unloaded.
    let store_before_baseline = file_size(&store);
    let unloaded = legit_workload(legit.clone(), "u", baseline)
        .join()
        .expect("the unloaded phase");
    std::thread::sleep(SETTLE);
    let store_before = file_size(&store);
    let baseline_growth = store_before.saturating_sub(store_before_baseline);

    // Under attack.
    let plan = AttackPlan {
        client_api: world.cas.addr.parse().expect("client API address"),
        enclave_api: world.cas.enclave_addr.parse().expect("enclave API address"),
        idle_per_listener,
        keygen_clients,
    };
    println!(
        "attack: {} s; idle TLS {idle_per_listener} per listener from {IDLE_FROM}, challenge flood ({FLOOD_TASKS} tasks) from {CHALLENGE_FLOOD_FROM}, garbage-attest flood ({FLOOD_TASKS} tasks) from {ATTEST_FLOOD_FROM}, {keygen_clients} × {KEYGEN_KEYS} RSA-3072 creates from {KEYGEN_FROM}; legitimate side measured after a {} s ramp",
        attack.as_secs(),
        ramp.as_secs_f64(),
    );
    let attack_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let figures = AttackFigures::default();
    let mut sampled_peak_rss = 0;
    let (under_attack, attack_elapsed, aborted) = attack_runtime.block_on(async {
        let started = Instant::now();
        // The hard bound on every attacker: the attack, plus the last legitimate start.
        let stop = Stop {
            flag: Arc::new(AtomicBool::new(false)),
            deadline: started + attack + LEGIT_TIMEOUT + STOP_GRACE,
        };
        let tasks = launch_attack(&plan, &figures, &stop);
        tokio::time::sleep(ramp).await;
        let legit_side = legit_workload(legit.clone(), "a", attack - ramp);
        while !legit_side.is_finished() {
            if let Some((_, rss)) = memory(cas_pid) {
                sampled_peak_rss = sampled_peak_rss.max(rss);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let under_attack = legit_side.join().expect("the attack phase");
        let elapsed = started.elapsed();
        let aborted = stop_attack(&stop, tasks).await;
        (under_attack, elapsed, aborted)
    });
    drop(attack_runtime);
    std::thread::sleep(SETTLE);
    let store_after = file_size(&store);
    let memory_after = memory(cas_pid);

    // Report.
    let seconds = attack_elapsed.as_secs_f64();
    println!(
        "attackers ({seconds:.1} s; at the end {aborted} tasks were aborted — idle connections still held, creates still waiting — the rest stopped by themselves):"
    );
    print_idle("client API", &figures.idle_client_api, idle_per_listener);
    print_idle("enclave API", &figures.idle_enclave_api, idle_per_listener);
    for (label, tally) in [
        ("challenge flood", &figures.challenges),
        ("garbage attest", &figures.attests),
    ] {
        println!(
            "  {label:<17} {:>8} requests ({:.0}/s): {}",
            tally.total(),
            tally.total() as f64 / seconds,
            tally.render()
        );
    }
    println!(
        "  64-key creates    {:>8} sent, {} created, {} still waiting at the end; answers: {}",
        figures.creates_sent.load(Ordering::Relaxed),
        figures.creates.count("201"),
        figures
            .creates_sent
            .load(Ordering::Relaxed)
            .saturating_sub(figures.creates.total()),
        figures.creates.render()
    );

    let (u, a) = (&unloaded, &under_attack);
    let unloaded_p99 = percentile(&u.starts, 0.99);
    let attack_p99 = percentile(&a.starts, 0.99);
    let p99_limit = unloaded_p99.map(|d| d.mul_f64(TARGET_P99_FACTOR));
    let all_started = !a.starts.is_empty() && succeeded(&a.starts) == a.starts.len();
    let p99_ok = matches!((attack_p99, p99_limit), (Some(p), Some(l)) if p <= l);
    let creates_per_second =
        |f: &LegitFigures| succeeded(&f.creates) as f64 / f.window.as_secs_f64();
    let growth = store_after.saturating_sub(store_before);
    // The legitimate workload writes records too (an audit event per start, a session and an
    // event per create): its share is estimated from the unloaded phase, per successful
    // operation, and only the rest counts against the target.
    let operations = |f: &LegitFigures| (succeeded(&f.starts) + succeeded(&f.creates)) as u64;
    let legit_share = baseline_growth * operations(a) / operations(u).max(1);
    let attack_growth = growth.saturating_sub(legit_share);
    let (peak_rss, current_rss) = memory_after.unwrap_or((sampled_peak_rss, 0));

    let ms_pair = |samples: &[Sample]| {
        format!(
            "{} / {}",
            show_ms(percentile(samples, 0.50)),
            show_ms(percentile(samples, 0.99))
        )
    };
    row(
        "legitimate side (127.0.0.1)",
        &format!("unloaded ({:.1} s)", u.window.as_secs_f64()),
        &format!("attacked ({:.1} s)", a.window.as_secs_f64()),
        "target",
        None,
    );
    row(
        "  attested starts succeeded",
        &show_rate(&u.starts),
        &show_rate(&a.starts),
        "100 %",
        Some(all_started),
    );
    row(
        "  attested start p50",
        &show_ms(percentile(&u.starts, 0.50)),
        &show_ms(percentile(&a.starts, 0.50)),
        "",
        None,
    );
    row(
        "  attested start p99",
        &show_ms(unloaded_p99),
        &show_ms(attack_p99),
        &format!("≤ {} (5× unloaded)", show_ms(p99_limit)),
        Some(p99_ok),
    );
    row(
        "  session creates/s (offered 10/s)",
        &format!("{:.1}", creates_per_second(u)),
        &format!("{:.1}", creates_per_second(a)),
        "",
        None,
    );
    row(
        "  session creates succeeded",
        &show_rate(&u.creates),
        &show_rate(&a.creates),
        "",
        None,
    );
    row(
        "  session create p50 / p99",
        &ms_pair(&u.creates),
        &ms_pair(&a.creates),
        "",
        None,
    );
    for (label, samples) in [("start", &a.starts), ("create", &a.creates)] {
        if let Some(reason) = samples.iter().find_map(|s| s.failure.as_deref()) {
            println!("  first failed {label} under attack: {reason}");
        }
    }
    row("CAS", "", "", "", None);
    match memory_after {
        Some(_) => {
            row(
                "  RSS peak (VmHWM)",
                "",
                &show_bytes(peak_rss),
                &format!("≤ {}", show_bytes(TARGET_RSS_BYTES)),
                Some(peak_rss <= TARGET_RSS_BYTES),
            );
            row("  RSS now (VmRSS)", "", &show_bytes(current_rss), "", None);
        }
        None => row(
            "  the CAS has exited; RSS peak seen",
            "",
            &show_bytes(sampled_peak_rss),
            &format!("≤ {}", show_bytes(TARGET_RSS_BYTES)),
            Some(false),
        ),
    }
    row(
        "  store growth (cas.redb), total",
        &format!("+{}", show_bytes(baseline_growth)),
        &format!("+{}", show_bytes(growth)),
        "",
        None,
    );
    row(
        "    minus the legitimate share",
        "",
        &format!("+{}", show_bytes(attack_growth)),
        &format!("≤ {}", show_bytes(TARGET_STORE_GROWTH_BYTES)),
        Some(attack_growth <= TARGET_STORE_GROWTH_BYTES),
    );
    println!(
        "  store size: {} before the attack, {} after",
        show_bytes(store_before),
        show_bytes(store_after)
    );
    if a.starts.len() + a.creates.len() > 0 && operations(a) == 0 {
        println!(
            "note: the CAS served no legitimate request during the attack, so its RSS and store figures say little"
        );
    }
}

/// One line of the report: a figure unloaded and under attack, its target and verdict.
fn row(label: &str, unloaded: &str, attacked: &str, target: &str, pass: Option<bool>) {
    let line = format!(
        "{label:<36} {unloaded:<22} {attacked:<22} {target:<28} {}",
        pass.map_or("", verdict)
    );
    println!("{}", line.trim_end());
}
