//! `custos` invoked as `scone`: the SCONE sample's `attest-cas.sh`, unchanged, run by bash with a
//! `scone` link to the built `custos` on `PATH`, then the sample's `scone session` commands on
//! this repository's templates — against a real CAS (the `custos-cas` library serving mutual TLS
//! on loopback in this test process, with simulated evidence). And the `cas attest` pins SCONE
//! users reach for: `--mrsigner`/`--isvprodid`/`--isvsvn` and `-c CAS_KEY_HASH`.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{code, err, out, start_cas};
use rustls_pki_types::pem::PemObject as _;

/// The sample's variables, as its README exports them before running the CLI.
const VARS: &[(&str, &str)] = &[
    ("CAS_NAMESPACE", "azure-integration-4242"),
    ("PYTHON_SESSION_NAME", "demo"),
    ("AZURE_TENANT_ID", "tenant"),
    ("AZURE_CLIENT_ID", "client"),
    ("AZURE_CLIENT_SECRET", "SCONE-CLI-SECRET-MARKER"),
    ("AKV_VAULT", "https://scone-sample.vault.azure.net/"),
    ("AKV_SECRET_NAME", "sample-secret"),
    ("AKV_CERT_SECRET_NAME", "flask"),
    ("MAA_PROVIDER", "https://sharedcus.cus.attest.azure.net"),
    (
        "REST_API_MRENCLAVE",
        "291645fc02749ef4f895da626d1ffe9bf45d34aad2177507844e1b87d220219f",
    ),
];

/// A directory holding `scone`, a link to the built `custos`, and the CLI configuration.
struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_custos"), dir.path().join("scone")).unwrap();
        Self { dir }
    }

    /// `program` with a clean environment: the sample's variables, `scone` first on `PATH`.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.dir.path().display()),
            )
            .env("CUSTOS_CLI_CONFIG", self.dir.path().join("config.json"))
            .envs(VARS.iter().copied());
        command
    }

    fn scone(&self, args: &[&str]) -> Output {
        self.command("scone")
            .args(args)
            .output()
            .expect("scone runs")
    }

    fn custos(&self, args: &[&str]) -> Output {
        self.command(env!("CARGO_BIN_EXE_custos"))
            .args(args)
            .output()
            .expect("custos runs")
    }
}

fn repo(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_samples_attest_script_and_session_commands_run_unchanged_with_scone_linked_to_custos() {
    let cas_dir = tempfile::tempdir().unwrap();
    let cas = start_cas(cas_dir.path());
    let addr = cas.addr.clone();
    let cli = Cli::new();

    // The seed's script, byte for byte: `scone cas attest -G -C -S --only_for_testing-debug
    // --only_for_testing-ignore-signer --only_for_testing-trust-any "$CAS_ADDR"`. With
    // host:port it uses the address as it is (no /etc/hosts entry).
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/scone-attest-cas.sh");
    let attest = cli
        .command("bash")
        .arg(&script)
        .env("SCONE_CAS_ADDR", &addr)
        .output()
        .unwrap();
    assert_eq!(code(&attest), 0, "{}{}", out(&attest), err(&attest));
    assert!(
        out(&attest).starts_with(&format!("CAS {addr} attested and pinned (default CAS)")),
        "{}",
        out(&attest)
    );
    assert!(out(&attest).contains("evidence: sim-quote (SIMULATED"));
    let listed = out(&cli.scone(&["cas", "list"]));
    assert!(
        listed.starts_with(&format!("* {addr} key_hash=")),
        "{listed}"
    );
    let o = cli.scone(&["cas", "set-default", &addr]);
    assert_eq!(
        (code(&o), out(&o)),
        (0, format!("default CAS: {addr}\n")),
        "{}",
        err(&o)
    );

    // The sample's README, inside the CLI container.
    let namespace = repo("templates/namespace.template.yml");
    let session = repo("templates/session.template.yml");
    let o = cli.scone(&["session", "create", "--use-env", &namespace]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let o = cli.scone(&["session", "create", "--use-env", &session]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let created = out(&o);

    // `create` and `verify` print the hash alone, as SCONE documents.
    let o = cli.scone(&["session", "verify", "--use-env", &session]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let hash = out(&o).trim().to_owned();
    assert_eq!(hash.len(), 64, "{hash}");
    assert_eq!(created.trim(), hash);

    // `read` prints the session as stored: templated, with the secret in it for its owner.
    let name = "azure-integration-4242/demo";
    let o = cli.scone(&["session", "read", name]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out(&o).contains(&format!("name: {name}")), "{}", out(&o));
    assert!(out(&o).contains("SCONE-CLI-SECRET-MARKER"));
    // SCONE's `-c/--cas` selects the CAS.
    let o = cli.scone(&["session", "read", "-c", &addr, name]);
    assert_eq!(code(&o), 0, "{}", err(&o));

    // `update` without `predecessor`: the CLI fills in the CAS's current hash.
    let changed = cli.dir.path().join("session.changed.yml");
    let text = std::fs::read_to_string(&session)
        .unwrap()
        .replace("pwd: /", "pwd: /app");
    std::fs::write(&changed, text).unwrap();
    let changed = changed.to_str().unwrap();
    let o = cli.scone(&["session", "update", "--use-env", changed]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let updated = out(&o).trim().to_owned();
    let o = cli.scone(&["session", "verify", "--use-env", changed]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(out(&o).trim(), updated);
    assert_ne!(updated, hash);
    let o = cli.scone(&["session", "read", "--cas", &addr, name]);
    assert!(
        out(&o).contains(&format!("predecessor: {hash}")),
        "{}",
        out(&o)
    );

    // SCONE's `-e VAR=VALUE` templates too; `--verbatim` does not, so the template is refused.
    let o = cli.scone(&[
        "session",
        "verify",
        "-e",
        "PYTHON_SESSION_NAME=demo",
        "--use-env",
        changed,
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let o = cli.scone(&["session", "create", "--verbatim", &namespace]);
    assert_eq!(code(&o), 1, "{}", err(&o));

    // `self show`: the certificate (PEM) and the key hash — the identity the CAS saw as the
    // namespace's creator, so the session is readable above.
    let shown = cli.scone(&["self", "show"]);
    assert_eq!(code(&shown), 0, "{}", err(&shown));
    let key_hash = out(&cli.scone(&["self", "show-key-hash"]))
        .trim()
        .to_owned();
    let certificate = out(&cli.scone(&["self", "show-certificate"]));
    assert_eq!(out(&shown), format!("{certificate}key hash: {key_hash}\n"));
    assert_eq!(out(&cli.custos(&["self", "show"])), out(&shown));
    let der = rustls_pki_types::CertificateDer::from_pem_slice(certificate.as_bytes()).unwrap();
    assert_eq!(
        custos_ids::KeyHash::of_certificate(&der)
            .unwrap()
            .to_string(),
        key_hash
    );

    // What Custos does not implement is refused, naming it.
    for (args, named) in [
        (
            &["fspf", "create", "x.fspf"][..],
            "scone fspf: not supported by Custos",
        ),
        (
            &["self", "show-session-signing-key"][..],
            "scone self show-session-signing-key: not supported",
        ),
        (
            &["cas", "show-identification"][..],
            "scone cas show-identification: not supported",
        ),
        (
            &["session", "list"][..],
            "scone session list: not supported",
        ),
        (
            &["session", "create", "--identity", "id.pem", &namespace][..],
            "--identity: not supported by Custos",
        ),
        (
            &["session", "update", "--retries", "3", &namespace][..],
            "--retries: not supported by Custos",
        ),
        (
            &["session", "verify", "-n", "other", &namespace][..],
            "-n/--name: not supported by Custos",
        ),
        (
            &["session", "create", "--fail-on-warning", &namespace][..],
            "--fail-on-warning: not supported by Custos",
        ),
        (
            &[
                "session",
                "read",
                "--only_for_testing-disable-attestation-verification",
                "x",
            ][..],
            "--only_for_testing-disable-attestation-verification: not supported by Custos",
        ),
        (
            &["-c", "config.json", "cas", "list"][..],
            "-c/--config, -o: not supported by Custos",
        ),
        (
            &["-o", "out.txt", "self", "show"][..],
            "-c/--config, -o: not supported by Custos",
        ),
        (
            &["cas", "attest", &addr, "--offline-report", "r.json"][..],
            "--offline-report/--nonce: not supported by Custos",
        ),
    ] {
        let o = cli.scone(args);
        assert_eq!(code(&o), 2, "{args:?}: {}", err(&o));
        assert!(err(&o).contains(named), "{args:?}: {}", err(&o));
    }
}

#[test]
fn cas_attest_pins_the_signer_and_the_key_hash() {
    let cas_dir = tempfile::tempdir().unwrap();
    let cas = start_cas(cas_dir.path());
    let addr = cas.addr.clone();
    let cli = Cli::new();
    // A simulated CAS reports a zero MRSIGNER, product id 0 and security version 0.
    let zero = "00".repeat(32);
    let attest = |extra: &[&str]| {
        let mut args = vec![
            "cas",
            "attest",
            addr.as_str(),
            "--only_for_testing-trust-any",
            "--only_for_testing-debug",
        ];
        args.extend(extra);
        cli.scone(&args)
    };
    let refused = |extra: &[&str], reason: &str| {
        let o = attest(extra);
        assert_eq!(code(&o), 1, "{extra:?}: {}", err(&o));
        assert!(
            err(&o).contains(&format!("CAS {addr}: {reason}")),
            "{extra:?}: {}",
            err(&o)
        );
        assert!(
            out(&cli.scone(&["cas", "list"])).is_empty(),
            "nothing pinned"
        );
    };
    let other = "5a".repeat(32);
    refused(
        &["--mrsigner", &other, "--isvprodid", "0", "--isvsvn", "0"],
        &format!("mrsigner: expected {other}, actual {zero}"),
    );
    refused(
        &["--mrsigner", &zero, "--isvprodid", "3", "--isvsvn", "0"],
        "isvprodid: expected 3, actual 0",
    );
    refused(
        &["--mrsigner", &zero, "--isvprodid", "0", "--isvsvn", "1"],
        "isvsvn: expected >= 1, actual 0",
    );
    refused(&["-c", &zero], "key hash (-c): expected 0000");

    let o = attest(&["--mrsigner", &zero, "--isvprodid", "0", "--isvsvn", "0"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let key_hash = out(&o)
        .lines()
        .find_map(|l| l.strip_prefix("key hash: "))
        .unwrap()
        .to_owned();
    let o = attest(&["-c", &key_hash]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let o = cli.custos(&[
        "cas",
        "attest",
        &addr,
        "--only-for-testing-trust-any",
        "--only-for-testing-debug",
        "-c",
        &key_hash,
    ]);
    assert_eq!(code(&o), 0, "the custos spellings: {}", err(&o));

    // Usage errors, before any connection.
    for (extra, named) in [
        (
            &["--mrsigner", zero.as_str()][..],
            "--mrsigner needs --isvprodid and --isvsvn",
        ),
        (
            &["--isvsvn", "1"][..],
            "--isvprodid and --isvsvn need --mrsigner",
        ),
        (
            &[
                "--only_for_testing-ignore-signer",
                "--mrsigner",
                zero.as_str(),
                "--isvprodid",
                "0",
                "--isvsvn",
                "0",
            ][..],
            "--only-for-testing-ignore-signer contradicts --mrsigner",
        ),
        (
            &["-s", "4USPZDGq2FjrE2wh7FEErbrirCFZcu8nR7YaSjH3NjfJtEAfCc"][..],
            "-s: not supported by Custos",
        ),
        (
            &["-c", "42ku6fcMt8fzj8br84Xg1ZmForSJDTuj6wt1pURRcYpVzJiCSL"][..],
            "not SCONE's encoded key hash",
        ),
    ] {
        let o = attest(extra);
        assert_eq!(code(&o), 2, "{extra:?}: {}", err(&o));
        assert!(err(&o).contains(named), "{extra:?}: {}", err(&o));
    }
}

/// The repository's own `templates/attest-cas.sh` (what `custos demo` runs): `custos cas attest`
/// with the sample's flags, under their Custos spellings.
#[test]
fn the_repositorys_attest_script_attests_with_custos() {
    let cas_dir = tempfile::tempdir().unwrap();
    let cas = start_cas(cas_dir.path());
    let addr = cas.addr.clone();
    let cli = Cli::new();
    let o = cli
        .command("bash")
        .arg(repo("templates/attest-cas.sh"))
        .env("SCONE_CAS_ADDR", &addr)
        .env("CUSTOS", env!("CARGO_BIN_EXE_custos"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(
        out(&o).starts_with(&format!("CAS {addr} attested and pinned")),
        "{}",
        out(&o)
    );
}
