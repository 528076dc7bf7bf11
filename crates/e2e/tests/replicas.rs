//! Real `custos-cas` replicas on one real PostgreSQL server (Debian's, started by the
//! harness), with a real LAS and real `custos-run`s: the replicas serve one TLS identity, a
//! session written at one is attested at another (never from a stale parse), a challenge from
//! one is redeemed at another exactly once, a replica killed with SIGKILL during a thousand
//! creates loses none it acknowledged, and a database restart makes requests fail fast with
//! `store_unavailable` and then succeed again, losing nothing acknowledged.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use custos_client::{CasClient, ClientError, ClientIdentity, ServerTrust};
use custos_e2e::{launcher, measurement, stderr, stdout};
use custos_harness::postgres::{self as server, Postgres};
use custos_harness::services::{Cas, Las, Launcher};
use custos_ids::KeyHash;

/// A LAS, a PostgreSQL server and CAS replicas sharing it and one master key.
struct Replicas {
    dir: tempfile::TempDir,
    launcher: Launcher,
    las: Las,
    db: Postgres,
    cas: Vec<Cas>,
    flags: Vec<String>,
    owner: ClientIdentity,
    runtime: tokio::runtime::Runtime,
}

impl Replicas {
    /// Starts `n` replicas, or `None` (said loudly; a failure in CI) without PostgreSQL.
    fn start(test: &str, n: usize) -> Option<Self> {
        Self::start_with(test, n, &[])
    }

    /// [`Replicas::start`] with `flags` added to each replica's.
    fn start_with(test: &str, n: usize, flags: &[&str]) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let db = server::require(test, dir.path())?;
        let launcher = launcher(dir.path());
        let las = launcher.las(&dir.path().join("las")).unwrap();
        let key = dir.path().join("master.key");
        let bytes: Vec<u8> = (0..32).map(|i| i * 7 + 3).collect();
        std::fs::write(
            &key,
            format!("custos-cas master key v1\n{}\n", base64(&bytes)),
        )
        .unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let mut replicas = Self {
            dir,
            launcher,
            las,
            db,
            cas: Vec::new(),
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
            owner: ClientIdentity::generate("session owner").unwrap(),
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        };
        for i in 0..n {
            let cas = replicas.start_replica(i);
            replicas.cas.push(cas);
        }
        Some(replicas)
    }

    fn start_replica(&self, i: usize) -> Cas {
        let flags: Vec<String> = [
            "--log",
            "info",
            "--trust-platform-key",
            &self.las.key_id,
            "--store",
            &format!("{}?sslmode=disable", self.db.url("postgres")),
            "--master-key-file",
        ]
        .iter()
        .map(|f| (*f).to_owned())
        .chain([self.dir.path().join("master.key").display().to_string()])
        .chain(self.flags.iter().cloned())
        .collect();
        let data = self.dir.path().join(format!("cas-{i}"));
        self.launcher.cas(&data, &flags).unwrap()
    }

    fn client(&self, i: usize) -> CasClient {
        let pin: KeyHash = self.cas[i].key_hash.parse().unwrap();
        CasClient::new(
            &self.cas[i].addr,
            Some(&self.owner),
            ServerTrust::Pinned(pin),
        )
        .unwrap()
    }

    fn create(&self, i: usize, text: &str) {
        let written = self.runtime.block_on(self.client(i).create_session(text));
        written.unwrap_or_else(|e| panic!("create at replica {i}: {e}"));
    }

    fn update(&self, i: usize, name: &str, text: &str) {
        let written = self
            .runtime
            .block_on(self.client(i).update_session(name, text));
        written.unwrap_or_else(|e| panic!("update at replica {i}: {e}"));
    }

    /// `custos-run sh -c 'echo $GREETING'` as `ns/app/app`, attesting at replica `i`.
    fn greeting_at(&self, i: usize) -> String {
        let vars = [
            ("CUSTOS_CONFIG_ID", "ns/app/app".to_owned()),
            ("CUSTOS_CAS_ADDR", self.cas[i].enclave_addr.clone()),
            ("CUSTOS_LAS_ADDR", self.las.addr.clone()),
            ("CUSTOS_MODE", "sim".to_owned()),
            ("CUSTOS_CAS_KEY_HASH", self.cas[i].key_hash.clone()),
        ];
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let output = custos_e2e::run(&vars, &["sh"]);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn session(greeting: &str) -> String {
    let sh = custos_runtime::launch::resolve_program(std::ffi::OsStr::new("sh")).unwrap();
    format!(
        r#"
name: ns/app
version: "0.3"
security:
  attestation:
    mode: hardware
    tolerate: [debug-mode]
services:
  - name: app
    command: ["sh", "-c", "printf %s \"$GREETING\""]
    environment:
      GREETING: "{greeting}"
    mrenclaves: ["{}"]
"#,
        measurement(&sh)
    )
}

#[test]
fn replicas_share_one_identity_sessions_and_challenges() {
    let Some(world) = Replicas::start(module_path!(), 3) else {
        return;
    };
    let keys: BTreeSet<&str> = world.cas.iter().map(|c| c.key_hash.as_str()).collect();
    assert_eq!(keys.len(), 1, "one TLS identity for all replicas: {keys:?}");

    // Written at replica 0, attested at replica 1 (which parses and caches it) ...
    world.create(0, "name: ns\nversion: \"0.3\"\n");
    world.create(0, &session("hello"));
    assert_eq!(world.greeting_at(1), "hello");
    // ... updated at replica 2: replica 1 delivers the new version at once, never its parse
    // of the old one.
    let hash = world
        .runtime
        .block_on(world.client(2).read_session("ns/app"))
        .unwrap()
        .hash;
    let update = format!("{}predecessor: {hash}\n", session("bonjour"));
    world.update(2, "ns/app", &update);
    assert_eq!(world.greeting_at(1), "bonjour");
    assert_eq!(world.greeting_at(0), "bonjour");

    // A challenge from replica 0 redeemed at replica 1; the same request replayed at
    // replica 2 is refused as a replay.
    let sh = custos_runtime::launch::resolve_program(std::ffi::OsStr::new("sh")).unwrap();
    let mrenclave: custos_ids::MrEnclave = measurement(&sh).parse().unwrap();
    let key = custos_runtime::identity::EphemeralKey::generate().unwrap();
    let source =
        custos_runtime::evidence::EvidenceSource::Las(format!("http://{}", world.las.addr));
    let pin = custos_runtime::config::CasTrust::Pin(world.cas[0].key_hash.parse().unwrap());
    let client = |i: usize| {
        let endpoint =
            custos_runtime::config::Endpoint::parse(&world.cas[i].enclave_addr, 18765).unwrap();
        custos_runtime::cas::CasClient::new(&endpoint, &pin, &key, true).unwrap()
    };
    let (a, b, c) = (client(0), client(1), client(2));
    world.runtime.block_on(async {
        let request = custos_runtime::attest::request(&a, &key, &source, "ns/app/app", &mrenclave)
            .await
            .unwrap();
        let delivery = b.attest(&request).await.unwrap();
        assert_eq!(
            delivery.env.get("GREETING").map(String::as_str),
            Some("bonjour")
        );
        let replay = format!("{:?}", c.attest(&request).await.unwrap_err());
        assert!(
            replay.contains("nonce: expected one not used before, actual: already used"),
            "{replay}"
        );
    });
}

/// Creates `n` sessions `load/<i>` spread over the replicas from 6 concurrent clients; a
/// client whose replica fails moves on to the next one (as the CLI does with several
/// addresses). Returns the names each create was acknowledged for.
async fn creates(
    addrs: Vec<(String, KeyHash)>,
    owner: ClientIdentity,
    n: usize,
    done: Arc<AtomicUsize>,
) -> (Vec<String>, Vec<String>) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..6 {
        let (addrs, owner, next, done) = (addrs.clone(), owner.clone(), next.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut failures = Vec::new();
            let mut replica = worker % addrs.len();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return (acknowledged, failures);
                }
                let name = format!("load/{i}");
                let text = format!("name: {name}\nversion: \"0.3\"\n");
                // At most one try per replica for each create.
                for _ in 0..addrs.len() {
                    let (addr, pin) = &addrs[replica];
                    let client =
                        CasClient::new(addr, Some(&owner), ServerTrust::Pinned(*pin)).unwrap();
                    match client.create_session(&text).await {
                        Ok(_) => {
                            acknowledged.push(name.clone());
                            done.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Err(ClientError::Refused { status, .. }) if status.as_u16() == 409 => {
                            // A create whose answer was lost, retried elsewhere: it is there.
                            acknowledged.push(name.clone());
                            break;
                        }
                        Err(e) => {
                            failures.push(format!("{name} at {addr}: {e}"));
                            replica = (replica + 1) % addrs.len();
                        }
                    }
                }
            }
        }));
    }
    let mut acknowledged = Vec::new();
    let mut failures = Vec::new();
    for task in tasks {
        let (a, f) = task.await.unwrap();
        acknowledged.extend(a);
        failures.extend(f);
    }
    (acknowledged, failures)
}

fn stored_names(world: &Replicas, i: usize) -> BTreeSet<String> {
    let list = world
        .runtime
        .block_on(world.client(i).list_sessions("load/"))
        .unwrap();
    list.sessions.into_iter().collect()
}

#[test]
fn a_replica_killed_during_a_thousand_creates_loses_nothing_acknowledged() {
    // One client makes all the creates: no per-client rate limit here.
    let unlimited = ["--rate-limit", "1000000", "--rate-burst", "1000000"];
    let Some(mut world) = Replicas::start_with(module_path!(), 3, &unlimited) else {
        return;
    };
    let addrs: Vec<(String, KeyHash)> = world
        .cas
        .iter()
        .map(|c| (c.addr.clone(), c.key_hash.parse().unwrap()))
        .collect();
    world.create(0, "name: load\nversion: \"0.3\"\n");
    let done = Arc::new(AtomicUsize::new(0));
    let load = world
        .runtime
        .spawn(creates(addrs, world.owner.clone(), 1000, done.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::Relaxed) < 300 {
        assert!(Instant::now() < deadline, "300 creates within a minute");
        std::thread::sleep(Duration::from_millis(5));
    }
    world.cas[2].process.kill();
    let (acknowledged, failures) = world.runtime.block_on(load).unwrap();
    assert_eq!(
        acknowledged.len(),
        1000,
        "each create lands somewhere: {failures:?}"
    );
    // Only the killed replica failed requests (connection errors), never the others.
    let killed = &world.cas[2].addr;
    assert!(
        failures.iter().all(|f| f.contains(killed.as_str())),
        "{failures:?}"
    );

    // Every acknowledged create is at both surviving replicas, and at a restarted one.
    let expected: BTreeSet<String> = acknowledged.into_iter().collect();
    assert_eq!(stored_names(&world, 0), expected);
    assert_eq!(stored_names(&world, 1), expected);
    world.cas[2] = world.start_replica(2);
    assert_eq!(stored_names(&world, 2), expected);
}

#[test]
fn a_database_restart_fails_requests_fast_and_they_recover() {
    let Some(mut world) = Replicas::start(module_path!(), 2) else {
        return;
    };
    world.create(0, "name: before\nversion: \"0.3\"\n");
    world.db.stop();
    for i in 0..2 {
        let started = Instant::now();
        let error = world
            .runtime
            .block_on(
                world
                    .client(i)
                    .create_session("name: during\nversion: \"0.3\"\n"),
            )
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{:?}",
            started.elapsed()
        );
        let ClientError::Refused { status, error, .. } = &error else {
            let logs = world.dir.path().join("logs");
            for entry in std::fs::read_dir(&logs).unwrap() {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                eprintln!("== {}\n{text}", path.display());
            }
            panic!("{error}");
        };
        assert_eq!(
            (status.as_u16(), error.code.as_str()),
            (503, "store_unavailable"),
            "{error:?}"
        );
        let health = world.runtime.block_on(world.client(i).health());
        assert!(
            health.is_err(),
            "readiness is false while the database is down"
        );
    }
    world.db.restart(world.dir.path()).unwrap();
    world.create(1, "name: after\nversion: \"0.3\"\n");
    let list = world
        .runtime
        .block_on(world.client(0).list_sessions(""))
        .unwrap();
    let names: Vec<String> = list.sessions.into_iter().collect();
    assert_eq!(names, ["after", "before"]);
}

#[test]
fn a_single_cas_moves_to_replicas_with_store_copy_and_clients_keep_their_pin() {
    let Some(mut world) = Replicas::start(module_path!(), 0) else {
        return;
    };
    let key_file = world.dir.path().join("master.key").display().to_string();
    let single_dir = world.dir.path().join("single");
    let mut single = world
        .launcher
        .cas(
            &single_dir,
            &["--master-key-file".to_owned(), key_file.clone()],
        )
        .unwrap();
    let pin: KeyHash = single.key_hash.parse().unwrap();
    let client =
        CasClient::new(&single.addr, Some(&world.owner), ServerTrust::Pinned(pin)).unwrap();
    world
        .runtime
        .block_on(client.create_session("name: moved\nversion: \"0.3\"\n"))
        .unwrap();
    single.process.stop(Duration::from_secs(10));

    let url = format!("{}?sslmode=disable", world.db.url("postgres"));
    let output = std::process::Command::new(custos_e2e::bin("custos-cas"))
        .env_remove("CUSTOS_CAS_MASTER_KEY_FILE")
        .args(["store", "copy", "--from"])
        .arg(&single_dir)
        .args(["--to", &url, "--master-key-file", &key_file])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let said = stdout(&output);
    assert!(
        said.starts_with(
            "copied 1 sessions (1 with secret values), 1 audit events and the TLS identity from"
        ),
        "{said}"
    );
    assert!(!said.contains(&url), "the URL is not printed");

    for i in 0..2 {
        let cas = world.start_replica(i);
        assert_eq!(
            cas.key_hash, single.key_hash,
            "the same identity: the pin holds"
        );
        world.cas.push(cas);
    }
    // The client of the single CAS, pinned as before, reads the session at either replica.
    for i in 0..2 {
        let client = CasClient::new(
            &world.cas[i].addr,
            Some(&world.owner),
            ServerTrust::Pinned(pin),
        )
        .unwrap();
        let session = world
            .runtime
            .block_on(client.read_session("moved"))
            .unwrap();
        assert_eq!(session.name, "moved");
    }
}
