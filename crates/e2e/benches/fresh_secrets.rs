//! Fresh secrets (`services[].refresh`), measured with the real release binaries on loopback:
//!
//! 1. rotation latency: the sample (`rest-api-sample`, its secret a file it reads again on
//!    SIGHUP) supervised by `custos-run` with a 1 s interval, against a CAS whose Key Vault
//!    cache TTL is `BENCH_CACHE_TTLS` (1 and 2 s, one run each); `BENCH_ROTATIONS` (20) times a
//!    new value is set in the emulated Key Vault while a client asks `/secret` every 10 ms, and
//!    the time until the first answer carrying it is taken. Prints p50/p90/p99/max, the
//!    requests and the failed ones, and what to expect from the interval and the TTL.
//! 2. the CAS's cost of background refresh: `BENCH_SERVICES` (20, then 100) services, each a
//!    `custos-run` supervising `sleep` with the sample's secrets (`mode: maa`, Key Vault secret
//!    and certificate) and a 1 s interval, against one CAS; over `BENCH_WINDOW_SECONDS` (10) it
//!    reads the attestations the CAS served (`/metrics`) and the CPU time it used (`/proc`),
//!    and prints the CPU one attestation costs and how many services one CAS core sustains
//!    for a 1 min, 10 min and 1 h interval.
//!
//! A failed request, a restarted sample, a denied or failed (re-)attestation or a runtime that
//! exited makes it exit 1. About 2 minutes on 2 cores.
//!
//! `cargo bench -p custos-e2e --bench fresh_secrets`

use std::path::Path;
use std::time::{Duration, Instant};

use custos_e2e::{
    CasClientExt, NO_ENCLAVE_RATE_LIMITS, START_TIMEOUT, World, cpu_time, measurement, run_command,
    sample_vars, set_secret, start_supervised_sample, supervised_sample, vault_certificate,
};
use custos_harness::Process;

/// The refresh interval of every supervised service here.
const INTERVAL: Duration = Duration::from_secs(1);
/// How often the client asks the sample for its secret.
const POLL: Duration = Duration::from_millis(10);
/// How long the CAS's idle CPU is read before the services start.
const IDLE_WINDOW: Duration = Duration::from_secs(2);
/// How many services start at once.
const START_BATCH: usize = 16;
/// How long one rotation may take before the run is called failed.
const ROTATION_LIMIT: Duration = Duration::from_secs(30);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A comma-separated list of numbers.
fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// A supervised `custos-run`, stopped with SIGTERM when dropped (also on a panic): SIGTERM is
/// forwarded to its program, where SIGKILL would leave the program orphaned.
struct Supervised(Process);

impl Drop for Supervised {
    fn drop(&mut self) {
        self.0.stop(Duration::from_secs(5));
    }
}

/// The PIDs of a process's children (`/proc/PID/task/PID/children`).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Rotation latency

/// `GET /secret` trusting the certificate chain the vault holds for the sample.
struct SecretClient {
    http: reqwest::Client,
    url: String,
}

impl SecretClient {
    fn new(world: &World, addr: std::net::SocketAddr) -> Self {
        let (chain, _) = vault_certificate(world);
        let http = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(chain.as_bytes()).unwrap())
            .resolve("rest-api.scone.sample", addr)
            .no_proxy()
            .build()
            .unwrap();
        let url = format!("https://rest-api.scone.sample:{}/secret", addr.port());
        Self { http, url }
    }

    async fn secret(&self) -> Result<String, String> {
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        body["secret"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no secret in {body}"))
    }
}

/// What the client saw over all rotations.
#[derive(Default)]
struct Requests {
    answered: u64,
    /// Errors, and answers holding neither the current value nor the one before it.
    failed: Vec<String>,
}

impl Requests {
    /// One request; the value it carried if it succeeded with `current` or `previous`.
    async fn ask(&mut self, client: &SecretClient, current: &str, previous: &str) -> Option<bool> {
        match client.secret().await {
            Ok(value) if value == current => {
                self.answered += 1;
                Some(true)
            }
            Ok(value) if value == previous => {
                self.answered += 1;
                Some(false)
            }
            // Never print a value: say only that it was neither.
            Ok(_) => {
                self.failed
                    .push("an answer with neither the new nor the previous value".into());
                None
            }
            Err(e) => {
                self.failed.push(e);
                None
            }
        }
    }
}

/// How often the CAS reads Key Vault for one lone service: at the first re-attestation after
/// its cached value expired, so every `max(1, ceil(TTL / interval))` intervals.
fn vault_read_period(ttl: Duration) -> Duration {
    let intervals = ttl.as_secs().div_ceil(INTERVAL.as_secs()).max(1);
    INTERVAL * intervals as u32
}

/// The rotation latencies with the CAS's Key Vault cache TTL `ttl`; returns the failed requests.
fn rotation_latency(ttl: Duration, rotations: u64) -> usize {
    let world = World::start(true, &["--azure-cache-ttl", &ttl.as_secs().to_string()]);
    let refresh = format!("{{interval: {} second}}", INTERVAL.as_secs());
    let (namespace, session, secret_name) = supervised_sample(&world, &refresh);
    let (app, addr) = start_supervised_sample(&world, &namespace, &session);
    let app = Supervised(app);
    let app_pid = children(app.0.id());
    assert_eq!(app_pid.len(), 1, "custos-run has one child: {app_pid:?}");
    let client = SecretClient::new(&world, addr);

    // A rotation right after the previous one arrived would always fall at the same point of
    // the re-attestation cycle; waiting a fraction of the Key Vault read period first, spread
    // evenly (golden-ratio steps), samples every point of it.
    let period = vault_read_period(ttl);
    let mut requests = Requests::default();
    let mut latencies = Vec::new();
    let mut previous = world.block_on(client.secret()).expect("the first answer");
    for k in 1..=rotations {
        let pause = period.mul_f64((k as f64 * 0.618_034).fract());
        world.block_on(async {
            let until = Instant::now() + pause;
            while Instant::now() < until {
                requests.ask(&client, &previous, &previous).await;
                tokio::time::sleep(POLL).await;
            }
        });
        let value = format!("rotated-{k}-{:016x}", std::process::id() as u64 * 7919 + k);
        world.block_on(set_secret(world.emulator(), &secret_name, &value));
        let rotated_at = Instant::now();
        let arrived = world.block_on(async {
            loop {
                if requests.ask(&client, &value, &previous).await == Some(true) {
                    return Some(rotated_at.elapsed());
                }
                if rotated_at.elapsed() > ROTATION_LIMIT {
                    return None;
                }
                tokio::time::sleep(POLL).await;
            }
        });
        match arrived {
            Some(latency) => latencies.push(latency),
            None => {
                requests.failed.push(format!(
                    "rotation {k}: the new value did not arrive within {ROTATION_LIMIT:?}"
                ));
                break;
            }
        }
        previous = value;
    }
    let same_process = children(app.0.id()) == app_pid
        && app.0.logs().matches("listening on https://").count() == 1;
    if !same_process {
        requests
            .failed
            .push("the sample was restarted (another PID or a second start)".into());
    }
    drop(app);

    latencies.sort();
    let mean = latencies.iter().sum::<Duration>() / latencies.len().max(1) as u32;
    println!(
        "rotation latency, interval {} s, CAS Key Vault cache TTL {} s: n={} p50 {:6.0} ms  p90 {:6.0} ms  p99 {:6.0} ms  max {:6.0} ms  mean {:6.0} ms",
        INTERVAL.as_secs(),
        ttl.as_secs(),
        latencies.len(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
        ms(mean),
    );
    println!(
        "  requests during the run: {} answered, {} failed; the sample kept PID {} (one start)",
        requests.answered,
        requests.failed.len(),
        app_pid[0],
    );
    println!(
        "  model for one service: the CAS reads Key Vault every {} ms here (the first re-attestation after its cached value expired); a rotation waits for the next read: mean ≈ {} ms, max ≈ {} ms, + one attestation (≈ 5 ms) + the app's reload + the client's {} ms poll",
        period.as_millis(),
        period.as_millis() / 2,
        period.as_millis(),
        POLL.as_millis(),
    );
    // The target: no rotation slower than the model's worst case, with room for a loaded
    // machine (one attestation, the reload, the poll).
    let target = period + Duration::from_millis(250);
    let slowest = latencies.last().copied().unwrap_or(ROTATION_LIMIT);
    println!(
        "  target: every rotation within {} ms, no failed request: {}",
        target.as_millis(),
        if slowest <= target && requests.failed.is_empty() {
            "PASS"
        } else {
            "FAIL"
        }
    );
    for failure in requests.failed.iter().take(5) {
        println!("  FAILED: {failure}");
    }
    requests.failed.len()
}

// ---------------------------------------------------------------------------------------------
// 2. The CAS's cost of background refresh

/// `services` services, each `sleep` supervised every [`INTERVAL`] with the sample's secrets
/// (`mode: maa`, Key Vault secret in the environment, certificate and key as files in its own
/// directory), in the session `refresh/sleepers`.
fn sleepers_session(world: &World, services: u64, sleep: &Path) -> String {
    let vars = sample_vars(world.emulator(), "refresh");
    let mut text = format!(
        r#"
name: refresh/sleepers
version: "0.3"
security: {{ attestation: {{ mode: maa, url: "{maa}", tolerate: [debug-mode, maa-managed-tcb] }} }}
secrets:
  - {{ name: AAD_TOKEN, kind: aad-token, tenant_id: "{tenant}", client_id: "{client}", application_secret: "{secret}" }}
  - {{ name: MY_AKV_SECRET, kind: ascii, import_akv: {{ vault: "{vault}", secret_name: "{secret_name}" }} }}
  - {{ name: MY_AKV_CERT, kind: x509, import_akv: {{ vault: "{vault}", secret_name: "{cert_name}" }} }}
services:
"#,
        maa = vars["MAA_PROVIDER"],
        tenant = vars["AZURE_TENANT_ID"],
        client = vars["AZURE_CLIENT_ID"],
        secret = vars["AZURE_CLIENT_SECRET"],
        vault = vars["AKV_VAULT"],
        secret_name = vars["AKV_SECRET_NAME"],
        cert_name = vars["AKV_CERT_SECRET_NAME"],
    );
    let mrenclave = measurement(sleep);
    for i in 0..services {
        text.push_str(&format!(
            "  - {{ name: s{i}, image_name: s{i}, command: [\"sleep\", \"600\"], environment: {{ AKV_SECRET: $$SCONE::MY_AKV_SECRET$$ }}, mrenclaves: [\"{mrenclave}\"], refresh: {{ interval: {} second }} }}\n",
            INTERVAL.as_secs()
        ));
    }
    text.push_str("images:\n");
    for i in 0..services {
        let files = world.dir.path().join(format!("s{i}"));
        text.push_str(&format!(
            "  - name: s{i}\n    injection_files:\n      - {{ path: {files}/flask.crt, content: $$SCONE::MY_AKV_CERT.crt$$ }}\n      - {{ path: {files}/flask.key, content: $$SCONE::MY_AKV_CERT.key$$ }}\n",
            files = files.display()
        ));
    }
    text
}

/// The CAS's attestations so far by result (`custos_cas_attestations_total`, all modes).
fn attestations(world: &World) -> (u64, u64) {
    let response = world
        .block_on(
            world
                .cas
                .client(&world.owner)
                .request(reqwest::Method::GET, "/metrics", None),
        )
        .expect("the CAS answers /metrics");
    let text = String::from_utf8_lossy(&response.body);
    let (mut allowed, mut other) = (0, 0);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("custos_cas_attestations_total{") {
            let count: u64 = rest
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if rest.contains("result=\"allowed\"") {
                allowed += count;
            } else {
                other += count;
            }
        }
    }
    (allowed, other)
}

/// The CAS's cost of `services` supervised services over `window`; returns the failures.
fn refresh_cost(services: u64, window: Duration) -> usize {
    // Every runtime connects from 127.0.0.1: the per-address limits are lifted (connections
    // too, docs/cas.md § Limits and abuse) so a large BENCH_SERVICES measures the CAS's work.
    let flags = [
        &["--max-connections-per-address", "1024"][..],
        &NO_ENCLAVE_RATE_LIMITS,
    ]
    .concat();
    let world = World::start(true, &flags);
    let sleep = custos_runtime::launch::resolve_program(std::ffi::OsStr::new("sleep")).unwrap();
    world.create("name: refresh\nversion: \"0.3\"\n");
    world.create(&sleepers_session(&world, services, &sleep));
    // What the CAS spends with nothing to do, to tell it from what refresh costs.
    let cas_pid = world.cas.process.id();
    let idle_before = cpu_time(cas_pid);
    std::thread::sleep(IDLE_WINDOW);
    let idle = cpu_time(cas_pid) - idle_before;
    // Started a batch at a time, as a roll-out would be: all at once from one address, they
    // would meet the LAS's and the CAS's per-address connection caps.
    let mut runtimes = Vec::new();
    for i in 0..services {
        let vars = world.runtime_vars(&format!("refresh/sleepers/s{i}"));
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        runtimes.push(Supervised(world.spawn(
            &format!("custos-run sleep s{i}"),
            &mut run_command(&vars, &[sleep.to_str().unwrap()]),
        )));
        if runtimes.len() % START_BATCH == 0 || i + 1 == services {
            for runtime in &mut runtimes[(i as usize / START_BATCH) * START_BATCH..] {
                runtime.0.wait_for("supervised", START_TIMEOUT).unwrap();
            }
        }
    }
    // Let the start-ups' attestations pass, and the re-attestations spread over the interval.
    std::thread::sleep(INTERVAL * 2);

    let runtime_pids: Vec<u32> = runtimes.iter().map(|r| r.0.id()).collect();
    let runtime_cpu = |pids: &[u32]| pids.iter().map(|p| cpu_time(*p)).sum::<Duration>();
    let (allowed_before, other_before) = attestations(&world);
    let (cas_before, runtimes_before) = (cpu_time(cas_pid), runtime_cpu(&runtime_pids));
    let started = Instant::now();
    std::thread::sleep(window);
    let (cas_after, runtimes_after) = (cpu_time(cas_pid), runtime_cpu(&runtime_pids));
    let (allowed_after, other_after) = attestations(&world);
    let elapsed = started.elapsed().as_secs_f64();

    let served = allowed_after - allowed_before;
    let not_allowed = other_after - other_before;
    // A re-attestation that failed (the CAS or the LAS refused a connection, say) is retried by
    // custos-run and never reaches the CAS's counters: its log says so.
    let (mut exited, mut retried) = (0, 0);
    for runtime in &mut runtimes {
        exited += usize::from(runtime.0.try_wait().is_some());
        retried += runtime.0.logs().matches("re-attestation failed").count();
    }
    let cas_cpu = cas_after - cas_before;
    let per_attestation = cas_cpu.as_secs_f64() / served.max(1) as f64;
    let runtime_per_attestation =
        (runtimes_after - runtimes_before).as_secs_f64() / served.max(1) as f64;
    println!(
        "background refresh: {services} services (custos-run supervising sleep, mode maa, Key Vault secret + certificate), interval {} s, one CAS (Key Vault cache TTL 60 s, the default), {:.1} s window",
        INTERVAL.as_secs(),
        elapsed
    );
    println!(
        "  CAS served {served} attestations ({:.1}/s; {services} services / {} s interval = {:.1}/s expected), {not_allowed} denied or failed, {retried} failed re-attestations in the runtimes' logs, {exited} runtimes exited",
        served as f64 / elapsed,
        INTERVAL.as_secs(),
        services as f64 / INTERVAL.as_secs_f64(),
    );
    println!(
        "  CAS CPU {:.0} ms in the window (read in 10 ms ticks: ±20 ms; idle before the services started: {:.0} ms in {} s) → {:.0} µs per attestation → capacity {:.0} attestations/s per core; the custos-runs spent ≈ {:.0} µs per re-attestation",
        ms(cas_cpu),
        ms(idle),
        IDLE_WINDOW.as_secs(),
        per_attestation * 1e6,
        1.0 / per_attestation.max(1e-9),
        runtime_per_attestation * 1e6,
    );
    println!("  services one CAS core sustains (N_max = interval × capacity):");
    for (label, seconds) in [("1 min", 60.0), ("10 min", 600.0), ("1 h", 3600.0)] {
        println!(
            "    interval {label:>6}: {:>12.0}",
            seconds / per_attestation.max(1e-9)
        );
    }
    drop(runtimes);
    let mut failures = not_allowed as usize + exited + retried;
    if served == 0 {
        println!("  FAILED: the CAS served no attestation in the window");
        failures += 1;
    }
    failures
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` lists benchmarks; there is nothing to list here.
        return;
    }
    let rotations = env_number("BENCH_ROTATIONS", 20);
    let window = Duration::from_secs(env_number("BENCH_WINDOW_SECONDS", 10));
    let ttls = env_list("BENCH_CACHE_TTLS", "1,2");
    println!("binaries: {}", custos_e2e::bin_dir().display());
    let mut failed = 0;
    for ttl in ttls {
        failed += rotation_latency(Duration::from_secs(ttl), rotations);
    }
    for services in env_list("BENCH_SERVICES", "20,100") {
        failed += refresh_cost(services, window);
    }
    if failed > 0 {
        println!("FAILED: {failed} failed requests or checks");
        std::process::exit(1);
    }
}
