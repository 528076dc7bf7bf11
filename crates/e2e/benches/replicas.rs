//! What the replicated store costs on this machine: creates/s, reads/s and attestations/s of
//! real `custos-cas` processes with the embedded store (one CAS), with PostgreSQL and one
//! replica, and with PostgreSQL and three replicas — each with its ratio to the embedded store —
//! and the failover gap clients see when a replica is killed.
//!
//! - creates: `BENCH_CLIENTS` (16) clients on kept-alive connections, spread over the replicas,
//!   each creating sessions `bench/<n>` for `BENCH_SECONDS` (5);
//! - reads: the same clients reading sessions (`GET /v1/sessions/…`, audited);
//! - attestations: `BENCH_RUNTIMES` (16) runtimes attesting again and again (fresh key and
//!   connection, challenge, LAS quote, attest, delivery), spread over the replicas;
//! - failover: two replicas, 4 clients reading in a loop (a new connection per request, as the
//!   CLI makes), one replica killed with SIGKILL: with the replicas' list (client failover)
//!   every request must succeed; with passive failover (a failed request is not retried, the
//!   client's next one goes to the other replica) the failed requests and how long they went on.
//!
//! Targets (issue #16): attestations/s with PostgreSQL ≥ 0.5× the embedded store; creates ≥
//! 500/s; failover ≤ 1 s of failed requests, none with client failover.
//!
//! `cargo bench -p custos-e2e --bench replicas` (needs Debian's `postgresql`)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use custos_client::{CasClient, ClientIdentity, Method, ServerTrust, StartAt};
use custos_e2e::{NO_ENCLAVE_RATE_LIMITS, launcher, measurement};
use custos_harness::postgres::Postgres;
use custos_harness::services::{Cas, Las, Launcher};
use custos_ids::{KeyHash, MrEnclave};
use custos_runtime::config::{CasTrust, Endpoint};
use custos_runtime::evidence::EvidenceSource;
use custos_runtime::identity::EphemeralKey;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The CASes of one configuration, their LAS, and a session owner.
struct Deployment {
    cas: Vec<Cas>,
    owner: ClientIdentity,
    pin: KeyHash,
}

struct Machine {
    dir: tempfile::TempDir,
    launcher: Launcher,
    las: Las,
    db: Postgres,
    runtime: tokio::runtime::Runtime,
}

impl Machine {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = Postgres::start(dir.path()).unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
        let launcher = launcher(dir.path());
        let las = launcher.las(&dir.path().join("las")).unwrap();
        let key: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(13) ^ 0x5a).collect();
        let key_file = dir.path().join("master.key");
        std::fs::write(
            &key_file,
            format!("custos-cas master key v1\n{}\n", base64(&key)),
        )
        .unwrap();
        std::fs::set_permissions(
            &key_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        Self {
            dir,
            launcher,
            las,
            db,
            runtime,
        }
    }

    /// `replicas` CASes: on PostgreSQL (database `database`), or one on its embedded store.
    fn deploy(&self, label: &str, database: Option<&str>, replicas: usize) -> Deployment {
        let mut flags: Vec<String> = [
            "--log",
            "warn",
            "--trust-platform-key",
            &self.las.key_id,
            "--rate-limit",
            "1000000",
            "--rate-burst",
            "1000000",
            "--master-key-file",
        ]
        .iter()
        .map(|f| (*f).to_owned())
        .collect();
        flags.push(self.dir.path().join("master.key").display().to_string());
        flags.extend(NO_ENCLAVE_RATE_LIMITS.iter().map(|f| (*f).to_owned()));
        if let Some(database) = database {
            self.db
                .psql("postgres", &format!("CREATE DATABASE {database}"))
                .unwrap();
            flags.extend([
                "--store".to_owned(),
                format!("{}?sslmode=disable", self.db.url(database)),
            ]);
        }
        let cas: Vec<Cas> = (0..replicas)
            .map(|i| {
                let data = self.dir.path().join(format!("{label}-{i}"));
                self.launcher.cas(&data, &flags).unwrap()
            })
            .collect();
        let pin = cas[0].key_hash.parse().unwrap();
        let deployment = Deployment {
            cas,
            owner: ClientIdentity::generate("bench owner").unwrap(),
            pin,
        };
        let sh = custos_runtime::launch::resolve_program(std::ffi::OsStr::new("sh")).unwrap();
        let owner = deployment.client(0);
        self.runtime.block_on(async {
            owner
                .create_session("name: bench\nversion: \"0.3\"\n")
                .await
                .unwrap();
            let app = format!(
                "name: bench/app\nversion: \"0.3\"\nsecurity: {{ attestation: {{ mode: hardware, tolerate: [debug-mode] }} }}\nservices:\n  - name: app\n    command: [\"sh\"]\n    environment: {{ GREETING: hello }}\n    mrenclaves: [\"{}\"]\n",
                measurement(&sh)
            );
            owner.create_session(&app).await.unwrap();
        });
        deployment
    }
}

impl Deployment {
    fn client(&self, i: usize) -> CasClient {
        let addr = &self.cas[i % self.cas.len()].addr;
        CasClient::new(addr, Some(&self.owner), ServerTrust::Pinned(self.pin)).unwrap()
    }

    fn all(&self) -> CasClient {
        let list: Vec<&str> = self.cas.iter().map(|c| c.addr.as_str()).collect();
        CasClient::new(
            &list.join(","),
            Some(&self.owner),
            ServerTrust::Pinned(self.pin),
        )
        .unwrap()
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Runs `clients` loops of `step(client, counter)` on kept-alive connections for `seconds`;
/// returns successes per second (a failure stops the benchmark).
fn rate(
    machine: &Machine,
    deployment: &Deployment,
    clients: u64,
    seconds: u64,
    request: impl Fn(u64, u64) -> (Method, String, Option<Vec<u8>>) + Send + Sync + 'static,
) -> f64 {
    let request = Arc::new(request);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    machine.runtime.block_on(async {
        let mut tasks = Vec::new();
        for worker in 0..clients {
            let client = deployment.client(worker as usize);
            let (request, done, stop) = (request.clone(), done.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut connection = client.connect().await.unwrap();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (method, path, body) = request(worker, n);
                    let answer = connection.send(method, &path, body).await.unwrap();
                    assert!(
                        answer.status.is_success(),
                        "{path}: {} {}",
                        answer.status,
                        String::from_utf8_lossy(&answer.body)
                    );
                    done.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.unwrap();
        }
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn creates(machine: &Machine, deployment: &Deployment, clients: u64, seconds: u64) -> f64 {
    rate(machine, deployment, clients, seconds, |worker, n| {
        let text = format!("name: bench/w{worker}-{n}\nversion: \"0.3\"\n");
        (Method::POST, "/v1/sessions".into(), Some(text.into_bytes()))
    })
}

fn reads(machine: &Machine, deployment: &Deployment, clients: u64, seconds: u64) -> f64 {
    rate(machine, deployment, clients, seconds, |worker, n| {
        // Sessions the create run made (at least one per worker).
        let _ = n;
        (Method::GET, format!("/v1/sessions/bench/w{worker}-0"), None)
    })
}

fn attestations(machine: &Machine, deployment: &Deployment, runtimes: u64, seconds: u64) -> f64 {
    let sh = custos_runtime::launch::resolve_program(std::ffi::OsStr::new("sh")).unwrap();
    let mrenclave: MrEnclave = measurement(&sh).parse().unwrap();
    let trust = CasTrust::Pin(deployment.pin);
    let las = EvidenceSource::Las(format!("http://{}", machine.las.addr));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    machine.runtime.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..runtimes {
            let cas = &deployment.cas[i as usize % deployment.cas.len()];
            let endpoint = Endpoint::parse(&cas.enclave_addr, 0).unwrap();
            let (trust, las, done, stop) = (trust.clone(), las.clone(), done.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let key = EphemeralKey::generate().unwrap();
                    let client =
                        custos_runtime::cas::CasClient::new(&endpoint, &trust, &key, true).unwrap();
                    let request = custos_runtime::attest::request(
                        &client,
                        &key,
                        &las,
                        "bench/app/app",
                        &mrenclave,
                    )
                    .await
                    .unwrap();
                    client.attest(&request).await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.unwrap();
        }
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// What clients reading in a loop saw around the kill of replica 0.
#[derive(Debug, Default)]
struct Gap {
    requests: u64,
    failed: u64,
    /// From the first failed request to the last.
    failing_for: Duration,
    slowest: Duration,
}

fn failover(machine: &Machine, mut deployment: Deployment, client_failover: bool) -> Gap {
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<CasClient> = (0..4)
        .map(|i| {
            if client_failover {
                deployment.all().start_at(StartAt::First)
            } else {
                deployment.client(i)
            }
        })
        .collect();
    let fallback = deployment.client(1);
    machine.runtime.block_on(async {
        let mut tasks = Vec::new();
        for client in clients {
            let (stop, fallback) = (stop.clone(), fallback.clone());
            tasks.push(tokio::spawn(async move {
                let mut gap = Gap::default();
                let mut current = client;
                let mut first_failure: Option<Instant> = None;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let result = current.read_session("bench/app").await;
                    gap.slowest = gap.slowest.max(started.elapsed());
                    gap.requests += 1;
                    if result.is_err() {
                        gap.failed += 1;
                        let first = *first_failure.get_or_insert(started);
                        gap.failing_for = started.elapsed() + (started - first);
                        // Passive failover: the next request goes to the other replica.
                        current = fallback.clone();
                    }
                }
                gap
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        deployment.cas[0].process.kill();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::Relaxed);
        let mut total = Gap::default();
        for task in tasks {
            let gap = task.await.unwrap();
            total.requests += gap.requests;
            total.failed += gap.failed;
            total.failing_for = total.failing_for.max(gap.failing_for);
            total.slowest = total.slowest.max(gap.slowest);
        }
        total
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds = env_number("BENCH_SECONDS", 5);
    let clients = env_number("BENCH_CLIENTS", 16);
    let runtimes = env_number("BENCH_RUNTIMES", 16);
    let machine = Machine::start();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "replicated store: {cores} cores, {seconds} s per measure, {clients} clients, {runtimes} runtimes; every process on this machine"
    );
    let configurations = [
        ("embedded store, 1 CAS", None, 1),
        ("PostgreSQL, 1 replica", Some("bench1"), 1),
        ("PostgreSQL, 3 replicas", Some("bench3"), 3),
    ];
    let mut baseline: Option<(f64, f64, f64)> = None;
    for (label, database, replicas) in configurations {
        let deployment = machine.deploy(&label.replace([' ', ','], ""), database, replicas);
        let created = creates(&machine, &deployment, clients, seconds);
        let read = reads(&machine, &deployment, clients, seconds);
        let attested = attestations(&machine, &deployment, runtimes, seconds);
        let base = *baseline.get_or_insert((created, read, attested));
        println!(
            "{label:<24} creates {created:7.0}/s ({:.2}×)  reads {read:7.0}/s ({:.2}×)  attestations {attested:6.0}/s ({:.2}×)",
            created / base.0,
            read / base.1,
            attested / base.2,
        );
        drop(deployment);
    }
    for client_failover in [false, true] {
        let database = if client_failover {
            "gap_list"
        } else {
            "gap_passive"
        };
        let deployment = machine.deploy(database, Some(database), 2);
        let gap = failover(&machine, deployment, client_failover);
        println!(
            "failover, 1 of 2 replicas killed under 4 reading clients, {}: {} requests, {} failed{}, slowest {:.0} ms",
            if client_failover {
                "client failover (both addresses)"
            } else {
                "passive (a failed request is not retried; the next goes to the other replica)"
            },
            gap.requests,
            gap.failed,
            if gap.failed > 0 {
                format!(" over {:.0} ms", gap.failing_for.as_secs_f64() * 1000.0)
            } else {
                String::new()
            },
            gap.slowest.as_secs_f64() * 1000.0,
        );
    }
}
