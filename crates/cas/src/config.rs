//! The CAS configuration: a TOML file, overridden by environment variables and flags (the
//! binary does the overriding; see `docs/cas.md` for every setting).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("config file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (line, column, key).
        message: String,
    },
    /// A value is out of range or settings contradict each other.
    #[error("config: {0}")]
    Invalid(String),
}

/// Where the CAS's own evidence comes from (config file `evidence`, flag `--evidence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceMode {
    /// A simulated platform in the CAS process (a platform key in the data directory):
    /// evidence of nothing, for development and tests.
    Simulation,
    /// SGX DCAP quotes from Gramine's attestation files (`gramine_dir`, default
    /// `/dev/attestation`): for a CAS running in a Gramine SGX enclave.
    Gramine,
    /// No evidence: `/v1/attest` answers 503, and `custos cas attest` cannot trust this CAS.
    None,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for the store, the master key (by default), the generated TLS certificate
    /// and the simulated platform key.
    pub data_dir: PathBuf,
    /// Address of the client API.
    pub listen: SocketAddr,
    /// The CAS's TLS certificate.
    pub tls: TlsSettings,
    /// The master key file; default `<data_dir>/master.key`, generated when missing.
    pub master_key_file: Option<PathBuf>,
    /// Where the CAS's evidence comes from.
    pub evidence: EvidenceMode,
    /// The simulated platform key; default `<data_dir>/platform-key.pem`.
    pub platform_key_file: Option<PathBuf>,
    /// Gramine's attestation directory, for `evidence = "gramine"`; default `/dev/attestation`.
    pub gramine_dir: Option<PathBuf>,
    /// Request limits.
    pub limits: Limits,
    /// Who may create sessions where the session language does not say.
    pub sessions: SessionSettings,
    /// Log filter (`info`, `custos_cas=debug`, ...).
    pub log: String,
    /// The enclave API: where runtimes attest and receive their configuration.
    pub enclave: EnclaveSettings,
    /// Local Intel DCAP verification of SGX quotes (`mode: hardware`).
    pub dcap: DcapSettings,
    /// Entra ID, Key Vault and MAA access for sessions' `aad-token`, `import_akv` and `mode: maa`.
    pub azure: AzureSettings,
    /// How long the audit log keeps events.
    pub audit: AuditSettings,
    /// The MAA self-check (`mode: maa`): which MAA enclaves may sign tokens.
    pub maa: MaaSettings,
    /// Where sessions, secrets and the audit log are kept.
    pub store: StoreSettings,
    /// Where the master key comes from.
    pub master_key: MasterKeySettings,
}

/// `[master_key]`: where the master key comes from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MasterKeySettings {
    /// `file` (the key in `master_key_file`) or `azure-skr` (the key wrapped by a Key Vault
    /// key that Key Vault releases only to this CAS, attested by MAA).
    pub provider: MasterKeyProvider,
    /// `[master_key.azure_skr]`, for `provider = "azure-skr"`.
    pub azure_skr: Option<AzureSkrSettings>,
    /// `[master_key.recovery]`: operators who can together recover the master key when it
    /// cannot be released (azure-skr; set up when the store is created).
    pub recovery: Option<RecoverySettings>,
}

/// `[master_key.recovery]`: `threshold` of the operators' RSA keys recover the master key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySettings {
    /// Shares needed.
    pub threshold: usize,
    /// The operators' RSA public keys (PEM, at least 3072 bits), one share each.
    pub keys: Vec<PathBuf>,
}

/// The master key's provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MasterKeyProvider {
    /// A key file (`master_key_file`): whoever reads it reads every secret. For development.
    #[default]
    File,
    /// Azure Key Vault Secure Key Release: only an attested CAS unwraps the master key.
    AzureSkr,
}

/// `[master_key.azure_skr]`: the key that wraps the master key, and how to reach it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSkrSettings {
    /// The exportable RSA-HSM key: `https://VAULT.vault.azure.net/keys/NAME` (or a managed
    /// HSM's `https://HSM.managedhsm.azure.net/keys/NAME`).
    pub key: String,
    /// The MAA instance that attests this CAS (the release policy's authority).
    pub maa: String,
    /// Roots the release answer's signing chain must end at; none: any signer (the answer
    /// still only opens with this CAS's one-time wrapping key).
    #[serde(default)]
    pub signer_ca_files: Vec<PathBuf>,
    /// Entra ID tenant of the CAS's identity; default `AZURE_TENANT_ID`.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The CAS's app registration or managed identity; default `AZURE_CLIENT_ID`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// A file holding the app registration's client secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// A federated token file (Kubernetes workload identity); default
    /// `AZURE_FEDERATED_TOKEN_FILE`. Without a secret or a token file: managed identity.
    #[serde(default)]
    pub federated_token_file: Option<PathBuf>,
}

impl std::fmt::Debug for AzureSkrSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureSkrSettings")
            .field("key", &self.key)
            .field("maa", &self.maa)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Where the store is: the embedded file in `data_dir` (one CAS), or a PostgreSQL database
/// that several CAS replicas share.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// The shared PostgreSQL store (`[store.postgres]`); absent: the embedded store.
    pub postgres: Option<PostgresSettings>,
}

/// `[store.postgres]`: the database replicas share.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// libpq URL (`postgres://user:password@host:5432/db?sslmode=verify-full`) or key=value
    /// string. TLS is required unless every host is a loopback address.
    pub url: String,
    /// PEM files of the CAs the database's TLS certificate chains to.
    #[serde(default)]
    pub ca_files: Vec<PathBuf>,
}

impl std::fmt::Debug for PostgresSettings {
    /// The URL may hold a password: never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("url", &"(redacted)")
            .field("ca_files", &self.ca_files)
            .finish()
    }
}

impl PostgresSettings {
    /// The connection settings.
    pub fn settings(&self) -> crate::store::postgres::PgSettings {
        crate::store::postgres::PgSettings {
            url: self.url.clone(),
            ca_files: self.ca_files.clone(),
        }
    }
}

/// Audit retention: the store's writer removes the oldest events beyond either limit.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Events kept at most (0: no count limit).
    pub max_events: u64,
    /// Events older than this many days are removed (0: no age limit).
    pub max_age_days: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        let retention = crate::audit::Retention::default();
        Self {
            max_events: retention.max_events,
            max_age_days: retention.max_age_ms / MS_PER_DAY,
        }
    }
}

const MS_PER_DAY: u64 = 24 * 3600 * 1000;
/// Beyond this, an age limit is no limit (and days in ms would overflow).
const MAX_AUDIT_AGE_DAYS: u64 = 100 * 365;

impl AuditSettings {
    /// The retention the store applies.
    pub fn retention(&self) -> crate::audit::Retention {
        crate::audit::Retention {
            max_events: self.max_events,
            max_age_ms: self.max_age_days.min(MAX_AUDIT_AGE_DAYS) * MS_PER_DAY,
        }
    }
}

/// The enclave API's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnclaveSettings {
    /// Address of the enclave API (port 0: any free port, logged).
    pub listen: SocketAddr,
    /// How long a nonce stays valid after the challenge, in seconds.
    pub nonce_ttl_secs: u64,
    /// Deprecated and ignored (nonces are stateless; see `max_redeemed_nonces`): still
    /// accepted so existing files parse, with a warning at start-up.
    pub max_pending_nonces: Option<usize>,
    /// Simulation platform keys whose `sim-quote`s this CAS accepts in `mode: hardware`: key
    /// ids (64 hex digits, as `custos-las` logs them) or PEM public-key files. Empty: no
    /// simulated evidence is accepted.
    pub trusted_platform_keys: Vec<String>,
    /// LAS base URLs (`http://host:18766`) whose platform key (`GET /v1/platform`) is
    /// trusted like `trusted_platform_keys`; fetched at start-up.
    pub trusted_las: Vec<String>,
    /// Challenges per second allowed per client address (IPv6: per /64); more get 429.
    pub requests_per_second: f64,
    /// Challenges a client address may send at once above its rate.
    pub burst: u32,
    /// Attest requests per second allowed per client address (IPv6: per /64); more get 429.
    pub attests_per_second: f64,
    /// Attest requests a client address may send at once above its rate.
    pub attest_burst: u32,
    /// Attest requests per second allowed per config id (counted once their nonce checks
    /// out); more get 429.
    pub attests_per_second_per_config_id: f64,
    /// Attest requests a config id may receive at once above its rate.
    pub attest_burst_per_config_id: u32,
    /// Redeemed nonces remembered until they expire (to refuse replays), at most; when full,
    /// attest requests get 503 `busy` (fail closed).
    pub max_redeemed_nonces: usize,
}

impl Default for EnclaveSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 18765)),
            nonce_ttl_secs: 60,
            max_pending_nonces: None,
            trusted_platform_keys: Vec::new(),
            trusted_las: Vec::new(),
            // Sized against the ~2,000 attestations/s the CAS does on 2 cores: one address
            // (a node, or a NAT in front of many) gets a tenth of that, a config id a quarter
            // (a 1,000-replica roll-out passes in one burst), so no single client or service
            // can take the whole CAS (docs/enclave-api.md, "Limits").
            requests_per_second: 200.0,
            burst: 400,
            attests_per_second: 200.0,
            attest_burst: 400,
            attests_per_second_per_config_id: 500.0,
            attest_burst_per_config_id: 1_000,
            // Filling it takes valid nonces redeemed faster than 262,144 / 60 s ≈ 4,400/s for
            // a whole TTL: 22 addresses each at its limit (400 + 200/s × 60 s = 12,400 per
            // TTL), over twice what the CAS can attest. About 32 bytes an entry: ≤ 8 MB.
            max_redeemed_nonces: 262_144,
        }
    }
}

/// The MAA self-check: tokens of `mode: maa` are believed only when signed by a key whose
/// certificate embeds authentic evidence of a trusted MAA enclave bound to the key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaaSettings {
    /// Check sessions without `trusted_maa_enclaves` against `trusted_enclaves` (default
    /// true). Sessions with `trusted_maa_enclaves` are always checked against their list.
    pub self_check: bool,
    /// The MAA enclaves trusted by default; default: those in the recorded signing
    /// certificates of Azure's shared providers
    /// (`custos_attestation::maa::trust::observed_maa_enclaves`).
    pub trusted_enclaves: Vec<MaaEnclaveSetting>,
}

impl Default for MaaSettings {
    fn default() -> Self {
        Self {
            self_check: true,
            trusted_enclaves: custos_attestation::maa::trust::observed_maa_enclaves()
                .into_iter()
                .map(|t| MaaEnclaveSetting {
                    mrsigner: t.mrsigner.to_hex(),
                    mrenclave: t.mrenclave.map(|m| m.to_hex()),
                    isvprodid: t.isvprodid,
                    isvsvn_min: t.min_isvsvn,
                    debug_allowed: t.debug_allowed,
                })
                .collect(),
        }
    }
}

/// One trusted MAA enclave (`[[maa.trusted_enclaves]]`): every field given must match.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaaEnclaveSetting {
    /// MRSIGNER, 64 hex digits.
    pub mrsigner: String,
    /// The exact MRENCLAVE.
    #[serde(default)]
    pub mrenclave: Option<String>,
    /// The exact ISVPRODID.
    #[serde(default)]
    pub isvprodid: Option<u16>,
    /// The smallest ISVSVN (`isvsvn_min`, as in a session's signer range).
    #[serde(default)]
    pub isvsvn_min: Option<u16>,
    /// Whether a debug MAA enclave is trusted (default false).
    #[serde(default)]
    pub debug_allowed: bool,
}

impl MaaSettings {
    /// The trusted enclaves, parsed.
    pub fn trusted_enclaves(&self) -> Result<Vec<custos_ids::TrustedMaaEnclave>, ConfigError> {
        self.trusted_enclaves
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let invalid = |field: &str, err: custos_ids::HexError| {
                    ConfigError::Invalid(format!("maa.trusted_enclaves[{i}].{field}: {err}"))
                };
                Ok(custos_ids::TrustedMaaEnclave {
                    mrsigner: e.mrsigner.parse().map_err(|err| invalid("mrsigner", err))?,
                    mrenclave: e
                        .mrenclave
                        .as_deref()
                        .map(str::parse)
                        .transpose()
                        .map_err(|err| invalid("mrenclave", err))?,
                    isvprodid: e.isvprodid,
                    min_isvsvn: e.isvsvn_min,
                    debug_allowed: e.debug_allowed,
                })
            })
            .collect()
    }
}

/// Where DCAP verification gets its trust anchor and collateral.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DcapSettings {
    /// Root CA certificate (PEM or DER); default Intel's production SGX Root CA.
    pub root_ca: Option<PathBuf>,
    /// One collateral file (`QuoteCollateralV3` JSON) used for every quote, instead of a PCCS.
    pub collateral: Option<PathBuf>,
    /// PCCS or Azure THIM base URL collateral is fetched from (and cached).
    pub pccs_url: String,
    /// CA certificates (PEM) trusted for TLS to the PCCS instead of the system's.
    pub pccs_ca: Option<PathBuf>,
    /// Collateral cache directory; default `<data_dir>/dcap-collateral`.
    pub cache_dir: Option<PathBuf>,
}

/// Azure's THIM: Intel collateral cached by Azure.
pub const AZURE_THIM_URL: &str = "https://global.acccache.azure.net/sgx/certification/v4/";

impl Default for DcapSettings {
    fn default() -> Self {
        Self {
            root_ca: None,
            collateral: None,
            pccs_url: AZURE_THIM_URL.into(),
            pccs_ca: None,
            cache_dir: None,
        }
    }
}

/// How the CAS reaches Azure for sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureSettings {
    /// Entra ID authority host (`https://login.microsoftonline.com`, or an emulator's URL).
    pub authority_host: String,
    /// CA certificates (PEM files) trusted for TLS to Entra ID, Key Vault and MAA, in
    /// addition to the system's (and, for MAA, the session's `certificates`).
    pub ca_files: Vec<PathBuf>,
    /// Whether the system's trust store is used too.
    pub trust_system_roots: bool,
    /// How long Key Vault values and Entra ID tokens are reused, in seconds (0: fetched
    /// for every attestation). A rotated Key Vault secret reaches the next start after this.
    pub cache_ttl_secs: u64,
    /// Retries of a failed Azure call (429, 5xx, transport errors), with back-off.
    pub max_retries: u32,
    /// Bound on one Azure HTTP exchange, in seconds.
    pub timeout_secs: u64,
}

impl Default for AzureSettings {
    fn default() -> Self {
        Self {
            authority_host: "https://login.microsoftonline.com".into(),
            ca_files: Vec::new(),
            trust_system_roots: true,
            cache_ttl_secs: 60,
            max_retries: 3,
            timeout_secs: 30,
        }
    }
}

/// The TLS certificate: given (both files), or generated into the data directory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first.
    pub certificate: Option<PathBuf>,
    /// PEM private key of the leaf.
    pub private_key: Option<PathBuf>,
    /// DNS names and IP addresses of a generated certificate.
    pub names: Vec<String>,
}

/// Session settings the session language leaves to the operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// Who may create top-level sessions (namespaces): `["*"]` (anyone, as in SCONE) or client
    /// key hashes (64 hex digits, as `custos self show` prints them). Empty: nobody.
    pub top_level_creators: Vec<String>,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            top_level_creators: vec![ANYONE.into()],
        }
    }
}

/// The `top_level_creators` entry that admits every client.
pub const ANYONE: &str = "*";

impl SessionSettings {
    /// The client key hashes `top_level_creators` lists, or `None` when it admits anyone.
    pub fn top_level_creator_ids(&self) -> Result<Option<Vec<custos_ids::KeyHash>>, ConfigError> {
        let list = &self.top_level_creators;
        if list.iter().any(|e| e == ANYONE) {
            if list.len() > 1 {
                return Err(ConfigError::Invalid(format!(
                    "sessions.top_level_creators: \"{ANYONE}\" admits anyone and is given alone; found {} entries",
                    list.len()
                )));
            }
            return Ok(None);
        }
        list.iter()
            .map(|entry| {
                entry.parse().map_err(|_| {
                    ConfigError::Invalid(format!(
                        "sessions.top_level_creators: expected \"{ANYONE}\" or a client key hash (64 hex digits, as `custos self show` prints it), found {entry:?}"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// Request limits.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body, in bytes (a larger one gets 413).
    pub max_body_bytes: usize,
    /// Requests per second allowed per client (by identity, or by address without a
    /// certificate); more get 429.
    pub requests_per_second: f64,
    /// Requests a client may send at once above its rate.
    pub burst: u32,
    /// Key generations with RSA keys running at once (each RSA key costs tens to hundreds of
    /// milliseconds of CPU; the rest of the CPU stays with attestations).
    pub max_concurrent_key_generations: usize,
    /// Requests waiting for a key generation slot, at most; more get 503 `busy`.
    pub max_queued_key_generations: usize,
    /// How long a request waits for a key generation slot before it gets 503 `busy`, in seconds.
    pub key_generation_wait_secs: u64,
    /// Top-level sessions (namespaces) one client address may create per hour (IPv6: per /64);
    /// more get 429 `namespace_quota_exceeded`.
    pub namespace_creates_per_hour: f64,
    /// Namespaces an address may create at once above its hourly rate.
    pub namespace_create_burst: u32,
    /// Connections served at once, per listener. At the limit the longest-idle connection
    /// is closed for a new one; only when every connection has a request in flight do new
    /// ones wait in the accept queue.
    pub max_connections: usize,
    /// Connections one client address (IPv6: one /64) may hold at once, per listener; more
    /// are closed at once.
    pub max_connections_per_address: usize,
    /// Seconds for the TLS handshake.
    pub handshake_timeout_secs: u64,
    /// Seconds from the handshake to a complete first request head.
    pub first_request_timeout_secs: u64,
    /// Seconds a connection may stay open with no request in flight (HTTP/1.1 keep-alive,
    /// HTTP/2 with no stream open).
    pub idle_timeout_secs: u64,
    /// Seconds to receive an HTTP/1.1 request head once it started.
    pub header_read_timeout_secs: u64,
    /// Seconds to receive a whole request body; a stalled body gets 400.
    pub body_timeout_secs: u64,
    /// Seconds between HTTP/2 keep-alive pings.
    pub http2_keep_alive_interval_secs: u64,
    /// Seconds for a ping's acknowledgement before the HTTP/2 connection is closed.
    pub http2_keep_alive_timeout_secs: u64,
}

impl Limits {
    /// The connection limits each listener applies.
    pub fn connections(&self) -> custos_serve::ConnectionLimits {
        let secs = std::time::Duration::from_secs;
        custos_serve::ConnectionLimits {
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            handshake_timeout: secs(self.handshake_timeout_secs),
            first_request_timeout: secs(self.first_request_timeout_secs),
            idle_timeout: secs(self.idle_timeout_secs),
            header_read_timeout: secs(self.header_read_timeout_secs),
            body_timeout: secs(self.body_timeout_secs),
            http2_keep_alive_interval: secs(self.http2_keep_alive_interval_secs),
            http2_keep_alive_timeout: secs(self.http2_keep_alive_timeout_secs),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            requests_per_second: 100.0,
            burst: 200,
            max_concurrent_key_generations: 1,
            max_queued_key_generations: 16,
            key_generation_wait_secs: 30,
            namespace_creates_per_hour: 10.0,
            namespace_create_burst: 5,
            max_connections: 1024,
            max_connections_per_address: 64,
            handshake_timeout_secs: 10,
            first_request_timeout_secs: 10,
            idle_timeout_secs: 60,
            header_read_timeout_secs: 10,
            body_timeout_secs: 30,
            http2_keep_alive_interval_secs: 20,
            http2_keep_alive_timeout_secs: 10,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/custos-cas"),
            listen: SocketAddr::from(([0, 0, 0, 0], 8081)),
            tls: TlsSettings {
                names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
                ..TlsSettings::default()
            },
            master_key_file: None,
            evidence: EvidenceMode::Simulation,
            platform_key_file: None,
            gramine_dir: None,
            limits: Limits::default(),
            sessions: SessionSettings::default(),
            log: "info".into(),
            enclave: EnclaveSettings::default(),
            dcap: DcapSettings::default(),
            azure: AzureSettings::default(),
            audit: AuditSettings::default(),
            maa: MaaSettings::default(),
            store: StoreSettings::default(),
            master_key: MasterKeySettings::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file; settings it does not mention keep their defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(path, &text)
    }

    /// Parses TOML text that came from `path`.
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })
    }

    /// Checks ranges and combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (self.master_key.provider, &self.master_key.azure_skr) {
            (MasterKeyProvider::AzureSkr, None) => {
                return Err(ConfigError::Invalid(
                    "master_key.provider = \"azure-skr\" needs [master_key.azure_skr] (key, maa)"
                        .into(),
                ));
            }
            (MasterKeyProvider::AzureSkr, Some(_)) if self.master_key_file.is_some() => {
                return Err(ConfigError::Invalid(
                    "master_key_file is for master_key.provider = \"file\"; with azure-skr there is no key file".into(),
                ));
            }
            (MasterKeyProvider::AzureSkr, Some(_)) if self.evidence == EvidenceMode::None => {
                return Err(ConfigError::Invalid(
                    "master_key.provider = \"azure-skr\" needs evidence (simulation or gramine): Key Vault releases the key only to an attested CAS".into(),
                ));
            }
            _ => {}
        }
        if self.tls.certificate.is_some() != self.tls.private_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls.certificate and tls.private_key are given together or not at all".into(),
            ));
        }
        if self.limits.max_body_bytes == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_body_bytes must be above 0".into(),
            ));
        }
        let rate = self.limits.requests_per_second;
        if !rate.is_finite() || rate <= 0.0 {
            return Err(ConfigError::Invalid(
                "limits.requests_per_second must be above 0".into(),
            ));
        }
        if self.limits.burst == 0 || self.limits.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "limits.burst and limits.max_connections must be above 0".into(),
            ));
        }
        if let Err(problem) = self.limits.connections().validate() {
            // The serve crate names its field; the operator's key is `limits.<name>[_secs]`.
            let field = problem.split(' ').next().unwrap_or_default();
            let key = if field.starts_with("max_") {
                field.to_owned()
            } else {
                format!("{field}_secs")
            };
            return Err(ConfigError::Invalid(format!(
                "limits.{key} must be above 0 (got 0)"
            )));
        }
        let l = &self.limits;
        if l.max_concurrent_key_generations == 0 || l.key_generation_wait_secs == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_concurrent_key_generations and limits.key_generation_wait_secs must be above 0"
                    .into(),
            ));
        }
        let namespace_rate = l.namespace_creates_per_hour;
        if !namespace_rate.is_finite() || namespace_rate <= 0.0 || l.namespace_create_burst == 0 {
            return Err(ConfigError::Invalid(
                "limits.namespace_creates_per_hour and limits.namespace_create_burst must be above 0 (sessions.top_level_creators restricts who may create namespaces)"
                    .into(),
            ));
        }
        self.sessions.top_level_creator_ids()?;
        let e = &self.enclave;
        if e.nonce_ttl_secs == 0 || e.burst == 0 {
            return Err(ConfigError::Invalid(
                "enclave.nonce_ttl_secs and enclave.burst must be above 0".into(),
            ));
        }
        if !e.requests_per_second.is_finite() || e.requests_per_second <= 0.0 {
            return Err(ConfigError::Invalid(
                "enclave.requests_per_second must be above 0".into(),
            ));
        }
        for (name, rate, burst) in [
            ("attests_per_second", e.attests_per_second, e.attest_burst),
            (
                "attests_per_second_per_config_id",
                e.attests_per_second_per_config_id,
                e.attest_burst_per_config_id,
            ),
        ] {
            if !rate.is_finite() || rate <= 0.0 || burst == 0 {
                return Err(ConfigError::Invalid(format!(
                    "enclave.{name} and its burst must be above 0, found {rate} and {burst}"
                )));
            }
        }
        if e.max_redeemed_nonces == 0 {
            return Err(ConfigError::Invalid(
                "enclave.max_redeemed_nonces must be above 0".into(),
            ));
        }
        if !self.azure.trust_system_roots && self.azure.ca_files.is_empty() {
            return Err(ConfigError::Invalid(
                "azure.trust_system_roots = false needs azure.ca_files".into(),
            ));
        }
        if self.azure.timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "azure.timeout_secs must be above 0".into(),
            ));
        }
        let trusted = self.maa.trusted_enclaves()?;
        if self.maa.self_check && trusted.is_empty() {
            return Err(ConfigError::Invalid(
                "maa.trusted_enclaves is empty, which trusts no MAA enclave (maa.self_check = false turns the check off for sessions without trusted_maa_enclaves)".into(),
            ));
        }
        if self.audit.max_age_days > MAX_AUDIT_AGE_DAYS {
            return Err(ConfigError::Invalid(format!(
                "audit.max_age_days must be at most {MAX_AUDIT_AGE_DAYS} (0: no age limit), not {}",
                self.audit.max_age_days
            )));
        }
        Ok(())
    }

    /// The master key file.
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// The simulated platform key file.
    pub fn platform_key_path(&self) -> PathBuf {
        self.platform_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("platform-key.pem"))
    }

    /// Gramine's attestation directory.
    pub fn gramine_path(&self) -> PathBuf {
        self.gramine_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(custos_attestation::gramine::ATTESTATION_DIR))
    }

    /// The store file.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("cas.redb")
    }

    /// The DCAP collateral cache directory.
    pub fn dcap_cache_dir(&self) -> PathBuf {
        self.dcap
            .cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("dcap-collateral"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_settings_override_defaults() {
        let c = Config::from_toml(
            Path::new("cas.toml"),
            "data_dir = \"/tmp/x\"\nlisten = \"127.0.0.1:9000\"\n[limits]\nburst = 5\n",
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.limits.burst, 5);
        assert_eq!(c.limits.max_body_bytes, Limits::default().max_body_bytes);
        c.validate().unwrap();
    }

    #[test]
    fn enclave_dcap_and_azure_sections_parse_and_are_checked() {
        let c = Config::from_toml(
            Path::new("cas.toml"),
            r#"
[enclave]
listen = "127.0.0.1:0"
nonce_ttl_secs = 30
attests_per_second = 50.0
trusted_platform_keys = ["0ce07ab035b11b0c17f2783513d2a7ef31d40aadb4dee2ea2f48195c0f892d63"]
trusted_las = ["http://127.0.0.1:18766"]
[dcap]
collateral = "collateral.json"
[azure]
authority_host = "https://127.0.0.1:4000"
ca_files = ["emulator-ca.pem"]
cache_ttl_secs = 0
"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.enclave.nonce_ttl_secs, 30);
        assert_eq!(c.enclave.attests_per_second, 50.0);
        // Deprecated, still parsed.
        let old = Config::from_toml(
            Path::new("cas.toml"),
            "[enclave]\nmax_pending_nonces = 10\n",
        )
        .unwrap();
        assert_eq!(old.enclave.max_pending_nonces, Some(10));
        old.validate().unwrap();
        assert_eq!(c.enclave.max_pending_nonces, None);
        assert_eq!(c.enclave.max_redeemed_nonces, 262_144);
        assert_eq!(c.dcap.pccs_url, AZURE_THIM_URL);
        assert_eq!(c.azure.cache_ttl_secs, 0);
        assert_eq!(c.dcap_cache_dir(), c.data_dir.join("dcap-collateral"));

        let mut bad = c.clone();
        bad.enclave.nonce_ttl_secs = 0;
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("nonce_ttl_secs")
        );
        let mut bad = c.clone();
        bad.enclave.attest_burst_per_config_id = 0;
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "config: enclave.attests_per_second_per_config_id and its burst must be above 0, found 500 and 0"
        );
        let mut bad = c;
        bad.azure.trust_system_roots = false;
        bad.azure.ca_files.clear();
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("trust_system_roots = false needs azure.ca_files")
        );
        let err = Config::from_toml(
            Path::new("cas.toml"),
            "[enclave]
lisen = 1
",
        )
        .unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn audit_retention_defaults_parse_and_are_checked() {
        let c = Config::default();
        assert_eq!(c.audit.max_events, 1_000_000);
        assert_eq!(c.audit.max_age_days, 365);
        assert_eq!(c.audit.retention(), crate::audit::Retention::default());
        let c = Config::from_toml(
            Path::new("cas.toml"),
            "[audit]\nmax_events = 0\nmax_age_days = 30\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.audit.retention().max_events, 0);
        assert_eq!(c.audit.retention().max_age_ms, 30 * 86_400_000);
        let mut bad = c;
        bad.audit.max_age_days = 1_000_000;
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("audit.max_age_days must be at most 36500"),
            "{err}"
        );
        let err = Config::from_toml(Path::new("cas.toml"), "[audit]\nmax_event = 1\n").unwrap_err();
        assert!(err.to_string().contains("max_event"), "{err}");
    }

    #[test]
    fn connection_limits_parse_and_zero_is_named_by_its_key() {
        let c = Config::from_toml(
            Path::new("cas.toml"),
            "[limits]\nmax_connections_per_address = 8\nidle_timeout_secs = 5\n",
        )
        .unwrap();
        c.validate().unwrap();
        let limits = c.limits.connections();
        assert_eq!(limits.max_connections_per_address, 8);
        assert_eq!(limits.idle_timeout, std::time::Duration::from_secs(5));
        assert_eq!(limits.max_connections, 1024);
        assert_eq!(limits.body_timeout, std::time::Duration::from_secs(30));
        let mut bad = c.clone();
        bad.limits.body_timeout_secs = 0;
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "config: limits.body_timeout_secs must be above 0 (got 0)"
        );
        let mut bad = c;
        bad.limits.max_connections_per_address = 0;
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "config: limits.max_connections_per_address must be above 0 (got 0)"
        );
    }

    #[test]
    fn session_creation_settings_parse_and_are_checked() {
        let c = Config::default();
        assert_eq!(c.sessions.top_level_creator_ids().unwrap(), None);
        assert_eq!(c.limits.max_concurrent_key_generations, 1);
        let hash = "ab".repeat(32);
        let c = Config::from_toml(
            Path::new("cas.toml"),
            &format!("[sessions]\ntop_level_creators = [\"{hash}\"]\n[limits]\nmax_queued_key_generations = 0\nnamespace_creates_per_hour = 2.5\n"),
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.sessions.top_level_creator_ids().unwrap(),
            Some(vec![hash.parse().unwrap()])
        );
        assert_eq!(c.limits.max_queued_key_generations, 0);
        let mut bad = c.clone();
        bad.sessions.top_level_creators = vec!["*".into(), hash.clone()];
        assert!(bad.validate().unwrap_err().to_string().contains("alone"));
        bad.sessions.top_level_creators = vec!["alice".into()];
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("top_level_creators") && err.contains("\"alice\""),
            "{err}"
        );
        let mut bad = c.clone();
        bad.limits.max_concurrent_key_generations = 0;
        assert!(bad.validate().is_err());
        let mut bad = c;
        bad.limits.namespace_creates_per_hour = f64::NAN;
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("namespace_creates_per_hour")
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = Config::from_toml(Path::new("cas.toml"), "listn = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
        let err = Config::from_toml(Path::new("cas.toml"), "[limits]\nburst = -1\n").unwrap_err();
        assert!(
            err.to_string().starts_with("config file cas.toml:"),
            "{err}"
        );
        let mut c = Config::default();
        c.tls.certificate = Some("a.crt".into());
        assert!(c.validate().unwrap_err().to_string().contains("together"));
    }

    #[test]
    fn the_maa_section_defaults_to_the_observed_enclaves_and_is_checked() {
        let defaults = Config::default().maa.trusted_enclaves().unwrap();
        assert_eq!(
            defaults,
            custos_attestation::maa::trust::observed_maa_enclaves()
        );
        assert!(Config::default().maa.self_check);

        let c = Config::from_toml(
            Path::new("cas.toml"),
            r#"
[maa]
trusted_enclaves = [{ mrsigner = "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB", isvsvn_min = 3 }]
"#,
        )
        .unwrap();
        c.validate().unwrap();
        let list = c.maa.trusted_enclaves().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].mrsigner.to_hex(), "ab".repeat(32));
        assert_eq!(
            (list[0].min_isvsvn, list[0].debug_allowed),
            (Some(3), false)
        );

        let bad = Config::from_toml(
            Path::new("cas.toml"),
            "[maa]\ntrusted_enclaves = [{ mrsigner = \"xyz\" }]\n",
        )
        .unwrap();
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("maa.trusted_enclaves[0].mrsigner")
        );
        let empty =
            Config::from_toml(Path::new("cas.toml"), "[maa]\ntrusted_enclaves = []\n").unwrap();
        assert!(
            empty
                .validate()
                .unwrap_err()
                .to_string()
                .contains("trusts no MAA enclave")
        );
        let off = Config::from_toml(
            Path::new("cas.toml"),
            "[maa]\nself_check = false\ntrusted_enclaves = []\n",
        )
        .unwrap();
        off.validate().unwrap();
    }
}
