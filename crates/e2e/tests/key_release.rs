//! The master key by Secure Key Release, end to end in simulation against the emulator: real
//! `custos-cas` processes attest to the emulator's MAA (simulated evidence from a platform key
//! it trusts), and the emulator's Key Vault releases the exportable key under the release
//! policy `custos cas release-policy` printed. The CAS keeps no key file; it restarts and
//! reads its sessions again; a CAS of another measurement is refused, naming the claim.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use custos_client::{CasClient, ClientIdentity, ServerTrust};
use custos_e2e::{
    KeyHolder, bin, exportable_key, key_release_config, launcher, release_policy, stdout,
};
use custos_harness::services::Emulator;

/// A LAS, the emulator with an exportable key `custos-kek` under the release policy
/// `custos cas release-policy` prints for this custos-cas binary, and the CAS's configuration.
struct Skr {
    dir: tempfile::TempDir,
    launcher: custos_harness::services::Launcher,
    las: custos_harness::services::Las,
    emulator: Emulator,
    runtime: tokio::runtime::Runtime,
    holder: KeyHolder,
    policy: String,
    config: std::path::PathBuf,
}

impl Skr {
    fn start() -> Self {
        Self::start_with(KeyHolder::Vault)
    }

    fn start_with(holder: KeyHolder) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let launcher = launcher(dir.path());
        let las = launcher.las(&dir.path().join("las")).unwrap();
        let emulator = launcher
            .emulator(&dir.path().join("ca.pem"), &las, &[])
            .unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let policy = release_policy(&emulator);
        let config = key_release_config(dir.path(), &emulator, holder, &las.platform_key_file());
        let skr = Self {
            dir,
            launcher,
            las,
            emulator,
            runtime,
            holder,
            policy,
            config,
        };
        skr.new_key_version();
        skr
    }

    /// A new version of `custos-kek` under the same policy; returns its version.
    fn new_key_version(&self) -> String {
        exportable_key(&self.runtime, &self.emulator, self.holder, &self.policy)
    }

    /// The CAS's flags: the configuration, the LAS's platform key trusted, and `extra`.
    fn flags(&self, extra: &[&str]) -> Vec<String> {
        let mut flags = vec!["--config".to_owned(), self.config.display().to_string()];
        flags.extend(["--trust-platform-key".to_owned(), self.las.key_id.clone()]);
        flags.extend(extra.iter().map(|f| (*f).to_owned()));
        flags
    }
}

/// The key version the envelope in `data` names.
fn envelope_version(data: &Path) -> String {
    let envelope: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("master-key.envelope.json")).unwrap())
            .unwrap();
    envelope["kek"]["version"].as_str().unwrap().to_owned()
}

#[test]
fn a_cas_gets_its_master_key_only_by_release_and_another_measurement_is_refused() {
    let skr = Skr::start();
    let (launcher, runtime) = (&skr.launcher, &skr.runtime);
    let data = skr.dir.path().join("cas");
    let flags = |extra: &[&str]| skr.flags(extra);
    let mut cas = launcher.cas(&data, &flags(&[])).unwrap();
    let logs = cas.process.logs();
    assert!(
        logs.contains("new master key, wrapped by the Key Vault key; released to this CAS"),
        "{logs}"
    );
    // No key file: the data directory holds the envelope, not a key.
    let files: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!files.iter().any(|f| f.contains("master.key")), "{files:?}");
    assert!(
        files.contains(&"master-key.envelope.json".to_owned()),
        "{files:?}"
    );
    let environ = std::fs::read(format!("/proc/{}/environ", cas.process.id())).unwrap();
    assert!(!String::from_utf8_lossy(&environ).contains("MASTER_KEY"));

    let owner = ClientIdentity::generate("owner").unwrap();
    let pin = cas.key_hash.parse().unwrap();
    let client = CasClient::new(&cas.addr, Some(&owner), ServerTrust::Pinned(pin)).unwrap();
    runtime
        .block_on(client.create_session("name: released\nversion: \"0.3\"\n"))
        .unwrap();
    cas.process.stop(Duration::from_secs(10));

    // Restarted: released again, the session reads.
    let mut cas = launcher.cas(&data, &flags(&[])).unwrap();
    let logs = cas.process.logs();
    let released = logs
        .lines()
        .find(|l| l.contains("master key released to this CAS by Key Vault (Secure Key Release)"))
        .unwrap_or_else(|| panic!("{logs}"));
    // How long release takes at start (shown with --nocapture).
    println!("{released}");
    let client = CasClient::new(&cas.addr, Some(&owner), ServerTrust::Pinned(pin)).unwrap();
    let session = runtime.block_on(client.read_session("released")).unwrap();
    assert_eq!(session.name, "released");

    // A new key version: the master key is re-wrapped under it while the CAS serves.
    let first = envelope_version(&data);
    let second = skr.new_key_version();
    let rewrap = cas_at(&bin("custos-cas"), &data, &flags(&["master-key", "rewrap"]))
        .output()
        .unwrap();
    assert!(
        rewrap.status.success(),
        "{}",
        String::from_utf8_lossy(&rewrap.stderr)
    );
    assert_eq!(
        stdout(&rewrap).trim(),
        format!(
            "master key re-wrapped: key version {first} → {second}; each CAS releases {second} at its next start"
        )
    );
    assert_eq!(envelope_version(&data), second);
    runtime.block_on(client.read_session("released")).unwrap();
    cas.process.stop(Duration::from_secs(10));
    let mut cas = launcher.cas(&data, &flags(&[])).unwrap();
    assert!(
        cas.process
            .logs()
            .contains(&format!("keys/custos-kek/{second}"))
    );
    let client = CasClient::new(&cas.addr, Some(&owner), ServerTrust::Pinned(pin)).unwrap();
    runtime.block_on(client.read_session("released")).unwrap();
    cas.process.stop(Duration::from_secs(10));

    // Another measurement (the same program with one more byte): Key Vault refuses, and the
    // CAS stops, naming the unmet claim.
    let other = skr.dir.path().join("custos-cas");
    let mut binary = std::fs::read(bin("custos-cas")).unwrap();
    binary.push(0);
    std::fs::write(&other, binary).unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let refused = cas_at(&other, &data, &flags(&[]))
        .args(["--listen", "127.0.0.1:0", "--enclave-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("step release of") && said.contains("x-ms-sgx-mrenclave"),
        "{said}"
    );
}

#[test]
fn a_cas_gets_its_master_key_released_by_a_managed_hsm() {
    let skr = Skr::start_with(KeyHolder::ManagedHsm);
    let hsm = KeyHolder::ManagedHsm.url(&skr.emulator).to_owned();
    let data = skr.dir.path().join("cas");
    let mut cas = skr.launcher.cas(&data, &skr.flags(&[])).unwrap();
    let logs = cas.process.logs();
    assert!(
        logs.contains("new master key, wrapped by the Key Vault key; released to this CAS")
            && logs.contains(&format!("{hsm}keys/custos-kek/")),
        "{logs}"
    );
    let owner = ClientIdentity::generate("owner").unwrap();
    let pin = cas.key_hash.parse().unwrap();
    let client = CasClient::new(&cas.addr, Some(&owner), ServerTrust::Pinned(pin)).unwrap();
    skr.runtime
        .block_on(client.create_session("name: hsm-released\nversion: \"0.3\"\n"))
        .unwrap();
    cas.process.stop(Duration::from_secs(10));

    let mut cas = skr.launcher.cas(&data, &skr.flags(&[])).unwrap();
    assert!(
        cas.process
            .logs()
            .contains("master key released to this CAS by Key Vault (Secure Key Release)")
    );
    let client = CasClient::new(&cas.addr, Some(&owner), ServerTrust::Pinned(pin)).unwrap();
    let session = skr
        .runtime
        .block_on(client.read_session("hsm-released"))
        .unwrap();
    assert_eq!(session.name, "hsm-released");
    cas.process.stop(Duration::from_secs(10));
}

/// `program` (a custos-cas) on the data directory `data` with `args`, outside the launcher.
fn cas_at(program: &Path, data: &Path, args: &[String]) -> Command {
    let mut command = Command::new(program);
    command
        .env_remove("CUSTOS_CAS_CONFIG")
        .arg("--data-dir")
        .arg(data)
        .args(args);
    command
}

/// `custos-cas master-key rotate` with the CAS's flags and `data`.
fn rotate(skr: &Skr, data: &Path) -> std::process::Output {
    cas_at(
        &bin("custos-cas"),
        data,
        &skr.flags(&["master-key", "rotate"]),
    )
    .output()
    .unwrap()
}

#[test]
fn the_master_key_itself_is_rotated_by_release_and_an_interrupted_rotation_is_finished() {
    let skr = Skr::start();
    let (launcher, runtime) = (&skr.launcher, &skr.runtime);
    let data = skr.dir.path().join("cas");
    let mut cas = launcher.cas(&data, &skr.flags(&[])).unwrap();
    let owner = ClientIdentity::generate("owner").unwrap();
    let pin = cas.key_hash.parse().unwrap();
    let client = CasClient::new(&cas.addr, Some(&owner), ServerTrust::Pinned(pin)).unwrap();
    runtime
        .block_on(client.create_session(
            "name: rotated\nversion: \"0.3\"\nsecrets:\n  - { name: KEY, kind: ascii, size: 24 }\n",
        ))
        .unwrap();
    cas.process.stop(Duration::from_secs(10));

    let (envelope, pending) = (
        data.join("master-key.envelope.json"),
        data.join("master-key.envelope.pending.json"),
    );
    let (first, store_before) = (
        std::fs::read(&envelope).unwrap(),
        std::fs::read(data.join("cas.redb")).unwrap(),
    );
    let out = rotate(&skr, &data);
    let said = stdout(&out);
    assert!(
        out.status.success()
            && said.starts_with("master key rotated: re-sealed 1 sessions, 1 secrets records and ")
            && said.contains("keys/custos-kek/"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = std::fs::read(&envelope).unwrap();
    assert_ne!(first, second, "a new master key, a new envelope");
    assert!(!pending.exists());
    // The CAS starts and reads the session under the envelope's master key.
    let reads = || {
        let mut cas = launcher.cas(&data, &skr.flags(&[])).unwrap();
        let client = CasClient::new(&cas.addr, Some(&owner), ServerTrust::Pinned(pin)).unwrap();
        let session = runtime.block_on(client.read_session("rotated")).unwrap();
        assert_eq!(session.name, "rotated");
        cas.process.stop(Duration::from_secs(10));
    };
    reads();

    // Interrupted after the re-seal: the old envelope current, the new one pending. The CAS
    // refuses to start; rotate again finishes.
    let interrupted = |store: Option<&[u8]>| {
        std::fs::write(&envelope, &first).unwrap();
        std::fs::write(&pending, &second).unwrap();
        if let Some(store) = store {
            std::fs::write(data.join("cas.redb"), store).unwrap();
        }
    };
    interrupted(None);
    let refused = cas_at(&bin("custos-cas"), &data, &skr.flags(&[]))
        .args(["--listen", "127.0.0.1:0", "--enclave-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && said.contains("was interrupted: run `custos-cas master-key rotate` again"),
        "{said}"
    );
    let out = rotate(&skr, &data);
    assert!(
        stdout(&out).starts_with("master key rotation finished: the store was re-sealed already"),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&envelope).unwrap(), second);
    assert!(!pending.exists());
    reads();

    // Interrupted before the re-seal (the store still under the old key): rotate again
    // re-seals it under the pending envelope's key, not a newer one.
    interrupted(Some(&store_before));
    let out = rotate(&skr, &data);
    assert!(
        stdout(&out).starts_with("master key rotated: re-sealed 1 sessions"),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&envelope).unwrap(), second);
    reads();
}

#[test]
fn replicas_on_postgresql_each_unlock_by_release_with_no_key_file() {
    let skr = Skr::start();
    let Some(db) = custos_harness::postgres::require(module_path!(), skr.dir.path()) else {
        return;
    };
    let (launcher, runtime, dir) = (&skr.launcher, &skr.runtime, &skr.dir);
    let url = format!("{}?sslmode=disable", db.url("postgres"));
    let replicas: Vec<_> = (0..2)
        .map(|i| {
            let flags = skr.flags(&["--store", &url]);
            launcher
                .cas(&dir.path().join(format!("cas-{i}")), &flags)
                .unwrap()
        })
        .collect();
    assert_eq!(replicas[0].key_hash, replicas[1].key_hash, "one identity");
    // The envelope is in the database; no replica has a key file or an envelope file.
    for i in 0..2 {
        let files: Vec<String> = std::fs::read_dir(dir.path().join(format!("cas-{i}")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!files.iter().any(|f| f.contains("master")), "{files:?}");
    }
    let stored = db
        .psql(
            "postgres",
            "SELECT count(*) FROM custos_meta WHERE key = 'unsealed/key-envelope'",
        )
        .unwrap();
    assert_eq!(stored.trim(), "1");
    // A session written at one replica reads at the other: one master key.
    let owner = ClientIdentity::generate("owner").unwrap();
    let pin = replicas[0].key_hash.parse().unwrap();
    let at = |i: usize| {
        CasClient::new(&replicas[i].addr, Some(&owner), ServerTrust::Pinned(pin)).unwrap()
    };
    runtime
        .block_on(at(0).create_session("name: shared\nversion: \"0.3\"\n"))
        .unwrap();
    let session = runtime.block_on(at(1).read_session("shared")).unwrap();
    assert_eq!(session.name, "shared");

    // The master key rotated with every replica stopped: the envelope in the database is
    // replaced, the pending one gone, and a replica reads the session under the new key.
    for mut replica in replicas {
        replica.process.stop(Duration::from_secs(10));
    }
    let envelope = "SELECT value FROM custos_meta WHERE key = 'unsealed/key-envelope'";
    let before = db.psql("postgres", envelope).unwrap();
    let out = cas_at(
        &bin("custos-cas"),
        &dir.path().join("cas-0"),
        &skr.flags(&["--store", &url, "master-key", "rotate"]),
    )
    .output()
    .unwrap();
    assert!(
        stdout(&out).starts_with("master key rotated: re-sealed 1 sessions"),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(db.psql("postgres", envelope).unwrap(), before);
    let pending = db
        .psql(
            "postgres",
            "SELECT count(*) FROM custos_meta WHERE key = 'unsealed/key-envelope-pending'",
        )
        .unwrap();
    assert_eq!(pending.trim(), "0");
    let mut replica = launcher
        .cas(&dir.path().join("cas-1"), &skr.flags(&["--store", &url]))
        .unwrap();
    let client = CasClient::new(&replica.addr, Some(&owner), ServerTrust::Pinned(pin)).unwrap();
    let session = runtime.block_on(client.read_session("shared")).unwrap();
    assert_eq!(session.name, "shared");
    replica.process.stop(Duration::from_secs(10));
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An operator's RSA-3072 recovery key pair, made with openssl: (private PKCS#8, public).
fn operator_key(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:3072",
            "-out",
        ])
        .arg(&private)
        .output()
        .unwrap()
        .status
        .success()
        && Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .output()
            .unwrap()
            .status
            .success();
    assert!(ok, "openssl made the key pair");
    (private, public)
}

#[test]
fn two_of_three_operators_recover_a_cas_whose_key_cannot_be_released() {
    let skr = Skr::start();
    let (launcher, runtime, dir, emulator) = (&skr.launcher, &skr.runtime, &skr.dir, &skr.emulator);
    let operators: Vec<_> = ["alice", "bob", "carol"]
        .iter()
        .map(|name| operator_key(dir.path(), name))
        .collect();
    let config = &skr.config;
    let recovery = format!(
        "[master_key.recovery]\nthreshold = 2\nkeys = [{}]\n",
        operators
            .iter()
            .map(|(_, public)| format!("\"{}\"", public.display()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let text = std::fs::read_to_string(config).unwrap() + &recovery;
    std::fs::write(config, &text).unwrap();
    let data = dir.path().join("cas");
    let flags = skr.flags(&[]);
    let mut cas = launcher.cas(&data, &flags).unwrap();
    let owner = ClientIdentity::generate("owner").unwrap();
    let pin = cas.key_hash.parse().unwrap();
    let client = CasClient::new(&cas.addr, Some(&owner), ServerTrust::Pinned(pin)).unwrap();
    runtime
        .block_on(client.create_session("name: kept\nversion: \"0.3\"\n"))
        .unwrap();
    cas.process.stop(Duration::from_secs(10));

    // MAA is gone for good: nothing can be released. The CAS starts locked.
    std::fs::write(
        config,
        text.replace(emulator.var("MAA_PROVIDER"), "https://127.0.0.1:9"),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let ready = dir.path().join("locked.ready");
    let mut locked = launcher
        .spawn(
            "cas-locked",
            cas_at(&bin("custos-cas"), &data, &flags)
                .args(["--listen", &addr, "--enclave-listen", "127.0.0.1:0"])
                .arg("--ready-file")
                .arg(&ready),
        )
        .unwrap();
    locked
        .wait_for("custos-cas LOCKED", Duration::from_secs(60))
        .unwrap();
    let cli_config = dir.path().join("cli.json");
    let custos = |args: &[&str]| {
        Command::new(bin("custos"))
            .args(args)
            .env_remove("CUSTOS_CAS_ADDR")
            .env("CUSTOS_CLI_CONFIG", &cli_config)
            .output()
            .unwrap()
    };
    let attested = custos(&[
        "cas",
        "attest",
        &addr,
        "--only-for-testing-trust-any",
        "--only-for-testing-debug",
    ]);
    assert!(
        attested.status.success(),
        "{}",
        String::from_utf8_lossy(&attested.stderr)
    );

    // A stranger's key has no share here.
    let (stranger, _) = operator_key(dir.path(), "mallory");
    let refused = custos(&["cas", "recover", "--key", stranger.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("no share of this CAS was made for your key"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // A wrong share (index 1, another value): refused, naming it and its recovery key.
    // (The locked CAS serves the identity of its data directory: the key clients pinned.)
    let locked_client = CasClient::new(&addr, Some(&owner), ServerTrust::Pinned(pin)).unwrap();
    let wrong = serde_json::json!({ "share": base64_of(&[1u8; 33]) }).to_string();
    let answer = runtime
        .block_on(locked_client.request(
            custos_client::Method::POST,
            "/v1/recovery/share",
            Some(wrong.into_bytes()),
        ))
        .unwrap();
    assert_eq!(answer.status.as_u16(), 403);
    let error = answer.error().unwrap();
    assert_eq!(error.code, "wrong_share");
    assert!(
        error
            .message
            .starts_with("share 1: expected the share made for recovery key"),
        "{}",
        error.message
    );

    // One share: still locked.
    let alice = custos(&["cas", "recover", "--key", operators[0].0.to_str().unwrap()]);
    assert!(
        alice.status.success(),
        "{}",
        String::from_utf8_lossy(&alice.stderr)
    );
    assert_eq!(
        stdout(&alice).trim(),
        "share 1 accepted (1 of 2): 1 more needed"
    );
    assert!(!ready.exists(), "still locked after one share");
    // The same share again counts once.
    let again = custos(&["cas", "recover", "--key", operators[0].0.to_str().unwrap()]);
    assert_eq!(
        stdout(&again).trim(),
        "share 1 accepted (1 of 2): 1 more needed"
    );

    // The second operator unlocks it: the CAS starts with its store, session and all.
    let carol = custos(&["cas", "recover", "--key", operators[2].0.to_str().unwrap()]);
    assert!(
        carol.status.success(),
        "{}",
        String::from_utf8_lossy(&carol.stderr)
    );
    assert_eq!(
        stdout(&carol).trim(),
        "share 3 accepted (2 of 2): the CAS is unlocked and starts"
    );
    let started = locked
        .wait_ready::<custos_harness::ready::CasReady>(&ready, Duration::from_secs(60))
        .unwrap();
    let client = CasClient::new(
        &started.client_api.to_string(),
        Some(&owner),
        ServerTrust::Pinned(pin),
    )
    .unwrap();
    let session = runtime.block_on(client.read_session("kept")).unwrap();
    assert_eq!(session.name, "kept");
}
