//! `custos-cas`: the CAS server. Configuration from a TOML file (`--config`), overridden by
//! environment variables, overridden by flags; see `docs/cas.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use custos_cas::config::{Config, EvidenceMode};
use custos_cas::enclave::EnclaveServer;
use custos_cas::server::Cas;
use custos_serve::daemon::{self, Failure};

#[derive(Debug, Parser)]
#[command(
    name = "custos-cas",
    version,
    about = "The Custos CAS: sessions, secrets, attestation"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML configuration file.
    #[arg(long, env = "CUSTOS_CAS_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (store, master key, TLS certificate, platform key).
    #[arg(long, env = "CUSTOS_CAS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Client API address.
    #[arg(long, env = "CUSTOS_CAS_LISTEN")]
    listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM); with --tls-key. Default: generated in the data directory.
    #[arg(long, env = "CUSTOS_CAS_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "CUSTOS_CAS_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// DNS name or IP address for a generated certificate (repeatable).
    #[arg(long = "tls-name", env = "CUSTOS_CAS_TLS_NAMES", value_delimiter = ',')]
    tls_names: Vec<String>,
    /// Where the master key comes from: `file` (--master-key-file) or `azure-skr` (Key Vault
    /// Secure Key Release to this attested CAS; with --skr-key and --skr-maa, no key file).
    #[arg(long, env = "CUSTOS_CAS_MASTER_KEY_PROVIDER", value_enum)]
    master_key_provider: Option<custos_cas::config::MasterKeyProvider>,
    /// The exportable Key Vault key that wraps the master key (azure-skr):
    /// https://VAULT.vault.azure.net/keys/NAME, or a Managed HSM's
    /// https://HSM.managedhsm.azure.net/keys/NAME. The CAS's Entra ID identity: the config file's
    /// [master_key.azure_skr], or AZURE_TENANT_ID, AZURE_CLIENT_ID and
    /// AZURE_FEDERATED_TOKEN_FILE (workload identity), or the managed identity.
    #[arg(
        long,
        env = "CUSTOS_CAS_SKR_KEY",
        value_name = "URL",
        requires = "skr_maa"
    )]
    skr_key: Option<String>,
    /// The MAA instance that attests this CAS for the release (azure-skr).
    #[arg(
        long,
        env = "CUSTOS_CAS_SKR_MAA",
        value_name = "URL",
        requires = "skr_key"
    )]
    skr_maa: Option<String>,
    /// Master key file (must exist). Default: `<data dir>/master.key`, generated when missing.
    #[arg(long, env = "CUSTOS_CAS_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Where the CAS's own evidence (`/v1/attest`) comes from. Default: `simulation`.
    #[arg(long, env = "CUSTOS_CAS_EVIDENCE", value_enum)]
    evidence: Option<EvidenceMode>,
    /// Gramine's attestation directory (with `--evidence gramine`). Default: `/dev/attestation`.
    #[arg(long, env = "CUSTOS_CAS_GRAMINE_DIR")]
    gramine_dir: Option<PathBuf>,
    /// Simulated platform key file. Default: `<data dir>/platform-key.pem`.
    #[arg(long, env = "CUSTOS_CAS_PLATFORM_KEY_FILE")]
    platform_key_file: Option<PathBuf>,
    /// Largest request body, bytes.
    #[arg(long, env = "CUSTOS_CAS_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Requests per second per client.
    #[arg(long, env = "CUSTOS_CAS_RATE_LIMIT")]
    rate_limit: Option<f64>,
    /// Burst above the rate.
    #[arg(long, env = "CUSTOS_CAS_RATE_BURST")]
    rate_burst: Option<u32>,
    /// Session creates and updates generating RSA keys at once.
    #[arg(long, env = "CUSTOS_CAS_MAX_KEY_GENERATIONS")]
    max_key_generations: Option<usize>,
    /// Namespaces (top-level sessions) one client address may create per hour.
    #[arg(long, env = "CUSTOS_CAS_NAMESPACE_CREATES_PER_HOUR")]
    namespace_creates_per_hour: Option<f64>,
    /// Namespaces an address may create at once above its hourly rate.
    #[arg(long, env = "CUSTOS_CAS_NAMESPACE_CREATE_BURST")]
    namespace_create_burst: Option<u32>,
    /// Who may create namespaces (repeatable; replaces the file's list): `*` (anyone, the
    /// default) or a client key hash (64 hex digits, as `custos self show-key-hash` prints it).
    #[arg(
        long = "top-level-creator",
        env = "CUSTOS_CAS_TOP_LEVEL_CREATORS",
        value_delimiter = ','
    )]
    top_level_creators: Vec<String>,
    /// Connections served at once.
    #[arg(long, env = "CUSTOS_CAS_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Connections one client address may hold at once, per listener.
    #[arg(long, env = "CUSTOS_CAS_MAX_CONNECTIONS_PER_ADDRESS")]
    max_connections_per_address: Option<usize>,
    /// Once both APIs accept, write their addresses and the key hash to this file as JSON
    /// (atomically; removed at start-up). See docs/cas.md.
    #[arg(long, env = "CUSTOS_CAS_READY_FILE")]
    ready_file: Option<PathBuf>,
    /// Seconds for the TLS handshake.
    #[arg(long, env = "CUSTOS_CAS_HANDSHAKE_TIMEOUT")]
    handshake_timeout: Option<u64>,
    /// Seconds from the handshake to a complete first request head.
    #[arg(long, env = "CUSTOS_CAS_FIRST_REQUEST_TIMEOUT")]
    first_request_timeout: Option<u64>,
    /// Seconds a connection may stay open with no request in flight.
    #[arg(long, env = "CUSTOS_CAS_IDLE_TIMEOUT")]
    idle_timeout: Option<u64>,
    /// Seconds to receive an HTTP/1.1 request head once it started.
    #[arg(long, env = "CUSTOS_CAS_HEADER_READ_TIMEOUT")]
    header_read_timeout: Option<u64>,
    /// Seconds to receive a whole request body.
    #[arg(long, env = "CUSTOS_CAS_BODY_TIMEOUT")]
    body_timeout: Option<u64>,
    /// Seconds between HTTP/2 keep-alive pings.
    #[arg(long, env = "CUSTOS_CAS_HTTP2_KEEP_ALIVE_INTERVAL")]
    http2_keep_alive_interval: Option<u64>,
    /// Seconds for an HTTP/2 ping's acknowledgement.
    #[arg(long, env = "CUSTOS_CAS_HTTP2_KEEP_ALIVE_TIMEOUT")]
    http2_keep_alive_timeout: Option<u64>,
    /// Log filter.
    #[arg(long, env = "CUSTOS_CAS_LOG")]
    log: Option<String>,
    /// Enclave API address (port 0: any free port; the address is logged).
    #[arg(long, env = "CUSTOS_CAS_ENCLAVE_LISTEN")]
    enclave_listen: Option<SocketAddr>,
    /// Seconds a challenge nonce stays valid.
    #[arg(long, env = "CUSTOS_CAS_NONCE_TTL")]
    nonce_ttl: Option<u64>,
    /// Challenges per second per client address (IPv6: per /64).
    #[arg(long, env = "CUSTOS_CAS_ENCLAVE_CHALLENGE_RATE")]
    enclave_challenge_rate: Option<f64>,
    /// Challenges a client address may send at once above its rate.
    #[arg(long, env = "CUSTOS_CAS_ENCLAVE_CHALLENGE_BURST")]
    enclave_challenge_burst: Option<u32>,
    /// Attest requests per second per client address (IPv6: per /64).
    #[arg(long, env = "CUSTOS_CAS_ENCLAVE_ATTEST_RATE")]
    enclave_attest_rate: Option<f64>,
    /// Attest requests a client address may send at once above its rate.
    #[arg(long, env = "CUSTOS_CAS_ENCLAVE_ATTEST_BURST")]
    enclave_attest_burst: Option<u32>,
    /// Attest requests per second per config id.
    #[arg(long, env = "CUSTOS_CAS_ENCLAVE_CONFIG_ID_ATTEST_RATE")]
    enclave_config_id_attest_rate: Option<f64>,
    /// Attest requests a config id may receive at once above its rate.
    #[arg(long, env = "CUSTOS_CAS_ENCLAVE_CONFIG_ID_ATTEST_BURST")]
    enclave_config_id_attest_burst: Option<u32>,
    /// Redeemed nonces remembered at most (when full, attest requests get 503).
    #[arg(long, env = "CUSTOS_CAS_ENCLAVE_MAX_REDEEMED_NONCES")]
    enclave_max_redeemed_nonces: Option<usize>,
    /// Trust this simulation platform key for `sim-quote`s (repeatable): a key id (64 hex
    /// digits, as custos-las logs it) or a PEM public-key file.
    #[arg(
        long = "trust-platform-key",
        env = "CUSTOS_CAS_TRUST_PLATFORM_KEYS",
        value_delimiter = ','
    )]
    trust_platform_keys: Vec<String>,
    /// Trust the platform key of the LAS at this URL (repeatable; fetched at start-up).
    #[arg(
        long = "trust-las",
        env = "CUSTOS_CAS_TRUST_LAS",
        value_delimiter = ','
    )]
    trust_las: Vec<String>,
    /// DCAP root CA certificate (PEM or DER). Default: Intel's production SGX Root CA.
    #[arg(long, env = "CUSTOS_CAS_DCAP_ROOT_CA")]
    dcap_root_ca: Option<PathBuf>,
    /// DCAP collateral file (QuoteCollateralV3 JSON) used for every quote instead of a PCCS.
    #[arg(long, env = "CUSTOS_CAS_DCAP_COLLATERAL")]
    dcap_collateral: Option<PathBuf>,
    /// PCCS or THIM URL DCAP collateral is fetched from.
    #[arg(long, env = "CUSTOS_CAS_PCCS_URL")]
    pccs_url: Option<String>,
    /// Entra ID authority host for sessions' aad-token secrets.
    #[arg(long, env = "AZURE_AUTHORITY_HOST")]
    azure_authority_host: Option<String>,
    /// CA certificate file (PEM) trusted for TLS to Entra ID, Key Vault and MAA (repeatable).
    #[arg(long = "azure-ca", env = "CUSTOS_CAS_AZURE_CA", value_delimiter = ',')]
    azure_ca: Vec<PathBuf>,
    /// Seconds Key Vault values and Entra ID tokens are reused (0: never).
    #[arg(long, env = "CUSTOS_CAS_AZURE_CACHE_TTL")]
    azure_cache_ttl: Option<u64>,
    /// Retries of a failed Azure call.
    #[arg(long, env = "CUSTOS_CAS_AZURE_MAX_RETRIES")]
    azure_max_retries: Option<u32>,
    /// The store shared by CAS replicas: a PostgreSQL URL
    /// (`postgres://user:password@db.example:5432/custos?sslmode=verify-full`). Every replica
    /// needs the same master key (--master-key-file). TLS to the database is required unless
    /// every host is a loopback address. Default: the embedded store in the data directory.
    #[arg(long, env = "CUSTOS_CAS_STORE", value_name = "URL")]
    store: Option<StoreUrl>,
    /// CA certificate(s) (PEM) the database's TLS certificate chains to (with --store).
    #[arg(
        long = "store-ca",
        env = "CUSTOS_CAS_STORE_CA",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    store_ca: Vec<std::path::PathBuf>,
    /// Audit events kept at most (0: no count limit).
    #[arg(long, env = "CUSTOS_CAS_AUDIT_MAX_EVENTS")]
    audit_max_events: Option<u64>,
    /// Audit events older than this many days are removed (0: no age limit).
    #[arg(long, env = "CUSTOS_CAS_AUDIT_MAX_AGE_DAYS")]
    audit_max_age_days: Option<u64>,
}

/// Work besides serving.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The store, with the CAS stopped.
    #[command(subcommand)]
    Store(StoreCommand),
    /// The master key, with the CAS stopped.
    #[command(subcommand)]
    MasterKey(MasterKeyCommand),
}

#[derive(Debug, clap::Subcommand)]
enum MasterKeyCommand {
    /// Re-seals the whole store under a new master key, in one transaction: every session,
    /// secret value, audit event and the store's own metadata. Afterwards only the new key
    /// opens the store (backups made before still need the old one). Stop the CAS (every
    /// replica) first.
    ///
    /// With key files: start the CAS again with the new one.
    /// Example: custos-cas master-key rotate --store /var/lib/custos-cas
    /// --master-key-file /var/lib/custos-cas/master.key --new-master-key-file /secure/master-2.key
    ///
    /// With master_key.provider = "azure-skr" (no key-file options; the CAS's configuration,
    /// flags before the subcommand or --config): the current master key is released, a new one
    /// is made, wrapped by the Key Vault key's current version (and split for the configured
    /// recovery operators), released back, kept as the pending envelope, the store re-sealed
    /// under it and the envelope replaced. Run it as the CAS runs: the same program, in the
    /// same enclave. If it is interrupted, the CAS refuses to start until it is run again.
    /// Example: custos-cas --config cas.toml master-key rotate
    Rotate(RotateArgs),
    /// Re-wraps the master key under the current version of its Key Vault key
    /// (master_key.provider = "azure-skr"), with this CAS's configuration (flags before the
    /// subcommand, or --config): the key is released under the version the envelope names and
    /// under the current one (so the new version's policy must admit this CAS), and the
    /// envelope is replaced. Running CASes keep serving; each releases the new version at its
    /// next start. Run it as the CAS runs: the same program, in the same enclave.
    ///
    /// Example: az keyvault key create … (a new version); custos-cas --config cas.toml
    /// master-key rewrap
    Rewrap,
}

#[derive(Debug, clap::Args)]
struct RotateArgs {
    /// Key files: the store, a CAS data directory or a PostgreSQL URL.
    #[arg(long, value_name = "DIR|URL", requires_all = ["master_key_file", "new_master_key_file"])]
    store: Option<StoreLocation>,
    /// Key files: the master key the store is sealed under now.
    #[arg(long, requires = "store")]
    master_key_file: Option<PathBuf>,
    /// Key files: the new master key, used if the file exists, generated there (mode 0600)
    /// if not.
    #[arg(long, requires = "store")]
    new_master_key_file: Option<PathBuf>,
    /// Key files: CA certificate(s) (PEM) of the database's TLS certificate.
    #[arg(
        long = "store-ca",
        value_delimiter = ',',
        value_name = "FILE",
        requires = "store"
    )]
    store_ca: Vec<PathBuf>,
}

/// Progress on standard error every 1,000 records of a kind.
fn reseal_progress(what: &str, done: u64) {
    if done.is_multiple_of(1000) {
        eprintln!("re-sealed {done} {what}");
    }
}

fn master_key_rotate(args: RotateArgs) -> Result<(), Failure> {
    use custos_cas::seal::{KeyFile, KeyProvider as _, Sealer};
    let sealer = |provider: KeyFile| -> Result<Sealer, Failure> {
        let key = provider
            .master_key()
            .map_err(|e| Failure::Usage(e.to_string()))?;
        Ok(Sealer::new(&key).map_err(|e| e.to_string())?)
    };
    let (Some(store), Some(old_file), Some(new_file)) =
        (args.store, args.master_key_file, args.new_master_key_file)
    else {
        unreachable!("clap requires all three or none");
    };
    let old = sealer(KeyFile::existing(&old_file))?;
    let new = sealer(KeyFile::create_if_missing(&new_file))?;
    let store = store.location(&args.store_ca);
    let rotated = custos_cas::store::rotate::rotate(&store, &old, &new, &mut reseal_progress)
        .map_err(|e| format!("master-key rotate of {store}: {e}"))?;
    println!(
        "re-sealed {} sessions, {} secrets records and {} audit events of {store} under {}; start the CAS with --master-key-file {} (backups made before still need the old key)",
        rotated.sessions,
        rotated.secrets,
        rotated.audit_events,
        new_file.display(),
        new_file.display(),
    );
    Ok(())
}

/// `master-key rotate` under `azure-skr`, with the CAS's configuration.
fn master_key_rotate_released(args: Args) -> Result<(), Failure> {
    let (config, runtime) = configured(args)?;
    let rotated = runtime
        .block_on(custos_cas::server::rotate_master_key(
            &config,
            &mut reseal_progress,
        ))
        .map_err(|e| e.to_string())?;
    match rotated.resealed {
        Some(r) => println!(
            "master key rotated: re-sealed {} sessions, {} secrets records and {} audit events under a new master key wrapped by {}; start the CAS as before (backups made before need the old envelope)",
            r.sessions, r.secrets, r.audit_events, rotated.kek
        ),
        None => println!(
            "master key rotation finished: the store was re-sealed already; the new master key is wrapped by {}",
            rotated.kek
        ),
    }
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
enum StoreCommand {
    /// Copies a whole store to a new one: from a data directory's embedded store to a
    /// PostgreSQL database (to run several replicas), or back. Sealed values are copied as
    /// they are, with the audit log and the TLS identity (clients keep their pin); both ends
    /// are verified under the master key. Stop the CAS (every replica) first.
    ///
    /// Example: custos-cas store copy --from /var/lib/custos-cas
    /// --to 'postgres://custos@db:5432/custos?sslmode=verify-full' --store-ca db-ca.pem
    /// --master-key-file /var/lib/custos-cas/master.key
    Copy(CopyArgs),
}

#[derive(Debug, clap::Args)]
struct CopyArgs {
    /// The store to copy: a CAS data directory, or a PostgreSQL URL.
    #[arg(long, value_name = "DIR|URL")]
    from: StoreLocation,
    /// Where the copy goes: a new data directory (or one without a store), or a PostgreSQL
    /// database without a store (or with an empty one).
    #[arg(long, value_name = "DIR|URL")]
    to: StoreLocation,
    /// The master key both stores are sealed under.
    #[arg(long, env = "CUSTOS_CAS_MASTER_KEY_FILE")]
    master_key_file: PathBuf,
    /// CA certificate(s) (PEM) of a PostgreSQL end's TLS certificate.
    #[arg(long = "store-ca", value_delimiter = ',', value_name = "FILE")]
    store_ca: Vec<PathBuf>,
}

/// A data directory or a PostgreSQL URL (whose password `Debug` does not show).
#[derive(Clone)]
enum StoreLocation {
    Dir(PathBuf),
    Postgres(StoreUrl),
}

impl std::str::FromStr for StoreLocation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.parse::<StoreUrl>() {
            Ok(url) => Ok(Self::Postgres(url)),
            Err(_) => Ok(Self::Dir(PathBuf::from(s))),
        }
    }
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(dir) => write!(f, "Dir({})", dir.display()),
            Self::Postgres(url) => url.fmt(f),
        }
    }
}

impl StoreLocation {
    fn location(self, ca_files: &[PathBuf]) -> custos_cas::store::copy::Location {
        use custos_cas::store::copy::Location;
        match self {
            Self::Dir(dir) => Location::Embedded(dir),
            Self::Postgres(url) => Location::Postgres(custos_cas::store::postgres::PgSettings {
                url: url.0,
                ca_files: ca_files.to_vec(),
            }),
        }
    }
}

fn store_copy(args: CopyArgs) -> Result<(), Failure> {
    use custos_cas::seal::{KeyFile, KeyProvider as _, Sealer};
    let key = KeyFile::existing(&args.master_key_file)
        .master_key()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let sealer = Sealer::new(&key).map_err(|e| e.to_string())?;
    drop(key);
    let (from, to) = (
        args.from.location(&args.store_ca),
        args.to.location(&args.store_ca),
    );
    let copied = custos_cas::store::copy::copy(&from, &to, &sealer)
        .map_err(|e| format!("store copy from {from} to {to}: {e}"))?;
    println!(
        "copied {} sessions ({} with secret values), {} audit events{} from {from} to {to}; the copy verifies under the master key",
        copied.sessions,
        copied.secrets,
        copied.audit_events,
        if copied.tls_identity {
            " and the TLS identity"
        } else {
            ""
        },
    );
    Ok(())
}

/// A `--store` URL: it may hold a password, so `Debug` does not show it.
#[derive(Clone)]
struct StoreUrl(String);

impl std::str::FromStr for StoreUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let is_postgres =
            s.starts_with("postgres://") || s.starts_with("postgresql://") || s.contains("host=");
        if !is_postgres {
            return Err("expected a PostgreSQL URL (postgres://user:password@host:5432/db?sslmode=verify-full); without --store the CAS uses the embedded store in its data directory".into());
        }
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreUrl(redacted)")
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

impl Args {
    fn into_config(self) -> Result<Config, custos_cas::config::ConfigError> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        set(&mut c.data_dir, self.data_dir);
        set(&mut c.listen, self.listen);
        if self.tls_cert.is_some() {
            c.tls.certificate = self.tls_cert;
            c.tls.private_key = self.tls_key;
        }
        if !self.tls_names.is_empty() {
            c.tls.names = self.tls_names;
        }
        if self.master_key_file.is_some() {
            c.master_key_file = self.master_key_file;
        }
        if let Some(mode) = self.evidence {
            c.evidence = mode;
        }
        if self.platform_key_file.is_some() {
            c.platform_key_file = self.platform_key_file;
        }
        if self.gramine_dir.is_some() {
            c.gramine_dir = self.gramine_dir;
        }
        set(&mut c.limits.max_body_bytes, self.max_body_bytes);
        set(&mut c.limits.requests_per_second, self.rate_limit);
        set(&mut c.limits.burst, self.rate_burst);
        set(
            &mut c.limits.max_concurrent_key_generations,
            self.max_key_generations,
        );
        set(
            &mut c.limits.namespace_creates_per_hour,
            self.namespace_creates_per_hour,
        );
        set(
            &mut c.limits.namespace_create_burst,
            self.namespace_create_burst,
        );
        if !self.top_level_creators.is_empty() {
            c.sessions.top_level_creators = self.top_level_creators;
        }
        set(&mut c.limits.max_connections, self.max_connections);
        set(
            &mut c.limits.max_connections_per_address,
            self.max_connections_per_address,
        );
        set(&mut c.limits.handshake_timeout_secs, self.handshake_timeout);
        set(
            &mut c.limits.first_request_timeout_secs,
            self.first_request_timeout,
        );
        set(&mut c.limits.idle_timeout_secs, self.idle_timeout);
        set(
            &mut c.limits.header_read_timeout_secs,
            self.header_read_timeout,
        );
        set(&mut c.limits.body_timeout_secs, self.body_timeout);
        set(
            &mut c.limits.http2_keep_alive_interval_secs,
            self.http2_keep_alive_interval,
        );
        set(
            &mut c.limits.http2_keep_alive_timeout_secs,
            self.http2_keep_alive_timeout,
        );
        set(&mut c.log, self.log);
        set(&mut c.enclave.listen, self.enclave_listen);
        set(&mut c.enclave.nonce_ttl_secs, self.nonce_ttl);
        set(
            &mut c.enclave.requests_per_second,
            self.enclave_challenge_rate,
        );
        set(&mut c.enclave.burst, self.enclave_challenge_burst);
        set(&mut c.enclave.attests_per_second, self.enclave_attest_rate);
        set(&mut c.enclave.attest_burst, self.enclave_attest_burst);
        set(
            &mut c.enclave.attests_per_second_per_config_id,
            self.enclave_config_id_attest_rate,
        );
        set(
            &mut c.enclave.attest_burst_per_config_id,
            self.enclave_config_id_attest_burst,
        );
        set(
            &mut c.enclave.max_redeemed_nonces,
            self.enclave_max_redeemed_nonces,
        );
        c.enclave
            .trusted_platform_keys
            .extend(self.trust_platform_keys);
        c.enclave.trusted_las.extend(self.trust_las);
        if self.dcap_root_ca.is_some() {
            c.dcap.root_ca = self.dcap_root_ca;
        }
        if self.dcap_collateral.is_some() {
            c.dcap.collateral = self.dcap_collateral;
        }
        set(&mut c.dcap.pccs_url, self.pccs_url);
        set(&mut c.azure.authority_host, self.azure_authority_host);
        c.azure.ca_files.extend(self.azure_ca);
        set(&mut c.azure.cache_ttl_secs, self.azure_cache_ttl);
        set(&mut c.azure.max_retries, self.azure_max_retries);
        set(&mut c.audit.max_events, self.audit_max_events);
        set(&mut c.audit.max_age_days, self.audit_max_age_days);
        if let Some(provider) = self.master_key_provider {
            c.master_key.provider = provider;
        }
        if let (Some(key), Some(maa)) = (self.skr_key, self.skr_maa) {
            match &mut c.master_key.azure_skr {
                Some(skr) => (skr.key, skr.maa) = (key, maa),
                None => {
                    c.master_key.azure_skr = Some(custos_cas::config::AzureSkrSettings {
                        key,
                        maa,
                        signer_ca_files: Vec::new(),
                        tenant_id: None,
                        client_id: None,
                        client_secret_file: None,
                        federated_token_file: None,
                    });
                }
            }
        }
        if let Some(url) = self.store {
            c.store.postgres = Some(custos_cas::config::PostgresSettings {
                url: url.0,
                ca_files: Vec::new(),
            });
        }
        match &mut c.store.postgres {
            Some(postgres) => postgres.ca_files.extend(self.store_ca),
            None if !self.store_ca.is_empty() => {
                return Err(custos_cas::config::ConfigError::Invalid(
                    "--store-ca is for the PostgreSQL store: give --store postgres://… too".into(),
                ));
            }
            None => {}
        }
        c.validate()?;
        Ok(c)
    }
}

fn main() -> ExitCode {
    daemon::exit("custos-cas", run(Args::parse()))
}

/// The configuration `args` give, logging set up by it, and the runtime to run in.
fn configured(args: Args) -> Result<(Config, tokio::runtime::Runtime), Failure> {
    let config = args
        .into_config()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    daemon::init_logging(Some(&config.log));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    Ok((config, runtime))
}

fn run(mut args: Args) -> Result<(), Failure> {
    let rewrap = match args.command.take() {
        Some(Command::Store(StoreCommand::Copy(copy))) => return store_copy(copy),
        Some(Command::MasterKey(MasterKeyCommand::Rotate(rotate))) => {
            if rotate.store.is_some() {
                return master_key_rotate(rotate);
            }
            return master_key_rotate_released(args);
        }
        Some(Command::MasterKey(MasterKeyCommand::Rewrap)) => true,
        None => false,
    };
    if rewrap {
        let (config, runtime) = configured(args)?;
        let (from, to) = runtime
            .block_on(custos_cas::server::rewrap_master_key(&config))
            .map_err(|e| e.to_string())?;
        println!(
            "master key re-wrapped: key version {from} → {to}; each CAS releases {to} at its next start"
        );
        return Ok(());
    }
    let ready_file = args.ready_file.take();
    // A ready file from an earlier run must not announce this one.
    if let Some(path) = &ready_file {
        custos_harness::ready::remove(path)
            .map_err(|e| Failure::Usage(format!("--ready-file {}: {e}", path.display())))?;
    }
    let (config, runtime) = configured(args)?;
    runtime.block_on(async {
        let cas = Cas::start(&config).await.map_err(|e| e.to_string())?;
        let enclave = EnclaveServer::start(&config, &cas)
            .await
            .map_err(|e| format!("enclave API: {e}"))?;
        tracing::info!(listen = %enclave.local_addr, "custos-cas enclave API ready");
        // The last start-up line: both listeners accept connections once it is written.
        tracing::info!(
            listen = %cas.local_addr,
            key_hash = %cas.key_hash,
            data_dir = %config.data_dir.display(),
            "custos-cas client API ready"
        );
        if let Some(path) = &ready_file {
            let ready = custos_harness::ready::CasReady {
                client_api: cas.local_addr,
                enclave_api: enclave.local_addr,
                key_hash: cas.key_hash.to_string(),
            };
            custos_harness::ready::write(path, &ready)
                .map_err(|e| format!("--ready-file {}: {e}", path.display()))?;
        }
        // Every acknowledged write is already durable: stopping needs no flush.
        tokio::select! {
            () = cas.serve() => {}
            () = enclave.serve() => {}
            () = daemon::stop_signal() => tracing::info!("stop signal: stopping"),
        }
        Ok(())
    })
}
