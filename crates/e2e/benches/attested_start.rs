//! Attested start-up, measured with the real release binaries on this machine:
//!
//! 1. cold start: `custos-run` started → the app (`true`) exec'd and done, `BENCH_STARTS`
//!    (200) times one after another, for the sample's session (`mode: maa` against the
//!    emulator's MAA, the Key Vault secret and certificate rendered into the environment and
//!    two files), with the CAS's Key Vault cache on (values reused) and off (`--azure-cache-ttl
//!    0`: Key Vault read at every start); and for the same secrets in `mode: hardware`
//!    (the CAS verifies the LAS's sim-quote itself). Prints p50, p90, p99 and the mean.
//! 2. throughput: `BENCH_RUNTIMES` (32) runtimes at once, each attesting again and again for
//!    `BENCH_SECONDS` (5) — fresh ephemeral key, TLS connection, challenge, LAS quote, attest,
//!    delivery — in this process through `custos-runtime`'s library; prints attestations/s
//!    for `mode: hardware` and `mode: maa`, and the CPU one attestation costs in each
//!    process (runtimes, CAS, LAS, emulator).
//!
//! Targets (printed next to the figures): cold start p50 ≤ 10 ms and p99 ≤ 20 ms with Key
//! Vault cached; CPU per attestation in the CAS ≤ 400 µs in mode hardware and ≤ 500 µs in
//! mode maa, in each runtime ≤ 600 µs. CPU per attestation is what sizes a CAS on any machine.
//!
//! `cargo bench -p custos-e2e --bench attested_start`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use custos_e2e::{
    NO_ENCLAVE_RATE_LIMITS, World, bin, cpu_time, measurement, run_command, sample_vars,
};
use custos_ids::MrEnclave;
use custos_runtime::cas::CasClient;
use custos_runtime::config::{CasTrust, Endpoint};
use custos_runtime::evidence::EvidenceSource;
use custos_runtime::identity::EphemeralKey;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The sample's secrets (Entra ID token, Key Vault secret and certificate) for a service that
/// runs `true`, in `mode` (`maa` or `hardware`).
fn session(world: &World, name: &str, mode: &str, true_path: &std::path::Path) -> String {
    let vars = sample_vars(world.emulator(), "bench");
    let files = world.dir.path().join(name);
    let security = match mode {
        "maa" => format!(
            "{{ attestation: {{ mode: maa, url: \"{}\", tolerate: [debug-mode, maa-managed-tcb] }} }}",
            vars["MAA_PROVIDER"]
        ),
        _ => "{ attestation: { mode: hardware, tolerate: [debug-mode] } }".to_owned(),
    };
    format!(
        r#"
name: bench/{name}
version: "0.3"
security: {security}
secrets:
  - {{ name: AAD_TOKEN, kind: aad-token, tenant_id: "{tenant}", client_id: "{client}", application_secret: "{secret}" }}
  - {{ name: MY_AKV_SECRET, kind: ascii, import_akv: {{ vault: "{vault}", secret_name: sample-secret }} }}
  - {{ name: MY_AKV_CERT, kind: x509, import_akv: {{ vault: "{vault}", secret_name: flask }} }}
services:
  - name: app
    image_name: files
    command: ["true"]
    environment: {{ AKV_SECRET: $$SCONE::MY_AKV_SECRET$$ }}
    mrenclaves: ["{mrenclave}"]
images:
  - name: files
    injection_files:
      - {{ path: {files}/flask.crt, content: $$SCONE::MY_AKV_CERT.crt$$ }}
      - {{ path: {files}/flask.key, content: $$SCONE::MY_AKV_CERT.key$$ }}
"#,
        tenant = vars["AZURE_TENANT_ID"],
        client = vars["AZURE_CLIENT_ID"],
        secret = vars["AZURE_CLIENT_SECRET"],
        vault = vars["AKV_VAULT"],
        mrenclave = measurement(true_path),
        files = files.display(),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `starts` cold starts of `custos-run true` as `config_id`, one after another.
fn cold_starts(world: &World, config_id: &str, true_path: &str, starts: u64) -> Vec<Duration> {
    let vars = world.runtime_vars(config_id);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // One start to warm the caches the label promises (and to fail early).
    let output = run_command(&vars, &[true_path]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut times = Vec::new();
    for _ in 0..starts {
        let mut command = run_command(&vars, &[true_path]);
        // custos-run's one line per start would flood the figures (and cost a terminal write).
        let started = Instant::now();
        let output = command.output().unwrap();
        times.push(started.elapsed());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    times.sort();
    times
}

fn mark(ok: bool) -> &'static str {
    if ok { "ok" } else { "ABOVE TARGET" }
}

/// Prints the figures of `times`; with `cached`, against the cold-start targets.
fn report_starts(label: &str, times: &[Duration], cached: bool) {
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    let (p50, p99) = (ms(percentile(times, 0.50)), ms(percentile(times, 0.99)));
    let target = if cached {
        format!(
            "  target p50 ≤ 10, p99 ≤ 20: {}",
            mark(p50 <= 10.0 && p99 <= 20.0)
        )
    } else {
        String::new()
    };
    println!(
        "cold start {label:<44} n={:<4} p50 {p50:6.2} ms  p90 {:6.2} ms  p99 {p99:6.2} ms  mean {:6.2} ms{target}",
        times.len(),
        ms(percentile(times, 0.90)),
        ms(mean),
    );
}

/// The processes an attestation costs CPU in, by role.
fn participants(world: &World) -> Vec<(&'static str, u32)> {
    vec![
        ("runtimes", std::process::id()),
        ("CAS", world.cas.process.id()),
        ("LAS", world.las.process.id()),
        ("emulator", world.emulator().process.id()),
    ]
}

/// What `runtimes` runtimes attesting in a loop for `seconds` achieved.
struct Throughput {
    per_second: f64,
    /// Audit events (one per attestation) per store transaction: how many share an fsync.
    events_per_commit: f64,
    /// CPU per attestation in each participant.
    cpu: Vec<(&'static str, Duration)>,
}

/// Attestations per second with `runtimes` runtimes attesting in a loop for `seconds`.
fn throughput(
    world: &World,
    config_id: &str,
    measurement: &str,
    runtimes: u64,
    seconds: u64,
) -> Throughput {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cas = Endpoint::parse(&world.cas.enclave_addr, 0).unwrap();
    let trust = CasTrust::Pin(world.cas.key_hash.parse().unwrap());
    let las = EvidenceSource::Las(format!("http://{}", world.las.addr));
    let measurement: MrEnclave = measurement.parse().unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let store_before = (
        world.metric("custos_cas_audit_events"),
        world.metric("custos_cas_store_commits_total"),
    );
    let cpu_before: Vec<Duration> = participants(world)
        .iter()
        .map(|(_, pid)| cpu_time(*pid))
        .collect();
    let started = Instant::now();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..runtimes {
            let (cas, trust, las, config_id) = (
                cas.clone(),
                trust.clone(),
                las.clone(),
                config_id.to_owned(),
            );
            let (done, failed, stop) = (done.clone(), failed.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    // What one custos-run does: a fresh key and connection every time.
                    let key = EphemeralKey::generate().unwrap();
                    let client = CasClient::new(&cas, &trust, &key, true).unwrap();
                    let result = async {
                        let request = custos_runtime::attest::request(
                            &client,
                            &key,
                            &las,
                            &config_id,
                            &measurement,
                        )
                        .await?;
                        client.attest(&request).await
                    }
                    .await;
                    match result {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("attestation failed: {e}");
                            }
                            0
                        }
                    };
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            let _ = task.await;
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let failed = failed.load(Ordering::Relaxed);
    assert_eq!(failed, 0, "attestations failed");
    let done = done.load(Ordering::Relaxed).max(1);
    let cpu = participants(world)
        .iter()
        .zip(cpu_before)
        .map(|((role, pid), before)| (*role, (cpu_time(*pid) - before) / done as u32))
        .collect();
    // The last events are committed within milliseconds of their answers.
    std::thread::sleep(Duration::from_millis(100));
    let events = world.metric("custos_cas_audit_events") - store_before.0;
    let commits = world.metric("custos_cas_store_commits_total") - store_before.1;
    Throughput {
        per_second: done as f64 / elapsed,
        events_per_commit: events as f64 / commits.max(1) as f64,
        cpu,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` lists benchmarks; there is nothing to list here.
        return;
    }
    let starts = env_number("BENCH_STARTS", 200);
    let runtimes = env_number("BENCH_RUNTIMES", 32);
    let seconds = env_number("BENCH_SECONDS", 5);
    let true_path = custos_runtime::launch::resolve_program(std::ffi::OsStr::new("true")).unwrap();
    let true_str = true_path.to_str().unwrap();
    println!(
        "binaries: {} (custos-run {} bytes)",
        custos_e2e::bin_dir().display(),
        std::fs::metadata(bin("custos-run"))
            .map(|m| m.len())
            .unwrap_or(0)
    );

    let flags = [&["--azure-cache-ttl", "3600"][..], &NO_ENCLAVE_RATE_LIMITS].concat();
    let cached = World::start(true, &flags);
    cached.create("name: bench\nversion: \"0.3\"\n");
    cached.create(&session(&cached, "maa", "maa", &true_path));
    cached.create(&session(&cached, "hardware", "hardware", &true_path));
    let uncached = World::start(true, &["--azure-cache-ttl", "0"]);
    uncached.create("name: bench\nversion: \"0.3\"\n");
    uncached.create(&session(&uncached, "maa", "maa", &true_path));

    report_starts(
        "mode maa, Key Vault cached",
        &cold_starts(&cached, "bench/maa/app", true_str, starts),
        true,
    );
    report_starts(
        "mode maa, Key Vault uncached (TTL 0)",
        &cold_starts(&uncached, "bench/maa/app", true_str, starts),
        false,
    );
    report_starts(
        "mode hardware (sim-quote), Key Vault cached",
        &cold_starts(&cached, "bench/hardware/app", true_str, starts),
        true,
    );

    let mrenclave = measurement(&true_path);
    for (label, config_id, cas_target_us) in [
        (
            "mode hardware (sim-quote), Key Vault cached",
            "bench/hardware/app",
            400.0,
        ),
        (
            "mode maa (emulated MAA), Key Vault cached",
            "bench/maa/app",
            500.0,
        ),
    ] {
        let result = throughput(&cached, config_id, &mrenclave, runtimes, seconds);
        println!(
            "throughput {label:<44} {runtimes} runtimes: {:8.0} attestations/s",
            result.per_second
        );
        // CPU per attestation is what a faster or slower machine scales; the ceiling is what
        // this machine's cores would allow if nothing else ran.
        let total: Duration = result.cpu.iter().map(|(_, d)| *d).sum();
        let parts: Vec<String> = result
            .cpu
            .iter()
            .map(|(role, d)| format!("{role} {:.0}", d.as_secs_f64() * 1e6))
            .collect();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "  CPU per attestation (µs): {}; total {:.0} → ceiling {:.0}/s on {cores} cores",
            parts.join(", "),
            total.as_secs_f64() * 1e6,
            cores as f64 / total.as_secs_f64().max(1e-9),
        );
        let us = |role: &str| {
            result
                .cpu
                .iter()
                .find(|(r, _)| *r == role)
                .map_or(0.0, |(_, d)| d.as_secs_f64() * 1e6)
        };
        println!(
            "  target CAS ≤ {cas_target_us:.0} µs: {}; runtime ≤ 600 µs: {}",
            mark(us("CAS") <= cas_target_us),
            mark(us("runtimes") <= 600.0)
        );
        println!(
            "  audit events per store commit: {:.1}",
            result.events_per_commit
        );
    }
    let rss = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
            })
            .unwrap_or_default()
    };
    println!("peak RSS: custos-cas {} kB", rss(cached.cas.process.id()));
}
