//! The typed session model: what a valid session says, with defaults applied.
//!
//! Values are only ever built by [`crate::parse`], so every invariant documented here holds:
//! references resolve, names are unique, kinds and formats fit.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use custos_ids::{KeyHash, MrEnclave, MrSigner, TrustedMaaEnclave};
use secrecy::SecretString;

use crate::diagnostic::Position;

use crate::ids::{CertificateThumbprint, SessionHash};
use crate::names::{ImageName, SecretName, ServiceName, SessionName};

/// A session (policy). Namespaces are sessions too: usually with only a name, a version and an
/// access policy.
#[derive(Clone, Debug)]
pub struct Session {
    /// The session's name; its leading components name its namespace.
    pub name: SessionName,
    /// The session-language version it is written in.
    pub version: LanguageVersion,
    /// The hash of the session version this one replaces (updates only; see [`crate::check_update`]).
    pub predecessor: Option<SessionHash>,
    /// Who may read and update the session, and create sessions inside it.
    pub access_policy: AccessPolicy,
    /// How services of this session must attest.
    pub security: Security,
    /// Secrets, in document order; names are unique.
    pub secrets: Vec<Secret>,
    /// Services, in document order; names are unique.
    pub services: Vec<Service>,
    /// Images (files injected into services), in document order; names are unique.
    pub images: Vec<Image>,
    /// SHA-256 of the session's canonical form (see [`crate::canonical_form`]).
    pub hash: SessionHash,
    pub(crate) origin: Origin,
}

/// Where some fields were in the source, for the context checks.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    pub(crate) file: Arc<str>,
    pub(crate) name_at: Position,
    pub(crate) predecessor_at: Option<Position>,
}

impl Session {
    /// The secret called `name`.
    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.iter().find(|s| s.name.as_str() == name)
    }

    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name.as_str() == name)
    }

    /// The image called `name`.
    pub fn image(&self, name: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.name.as_str() == name)
    }

    /// The `config_id` a workload uses to ask for `service`'s configuration:
    /// `<session name>/<service name>`.
    pub fn config_id(&self, service: &ServiceName) -> String {
        format!("{}/{}", self.name, service)
    }
}

/// The session-language version: `0.3` or `0.3.N`. Every 0.3.x is read the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LanguageVersion {
    /// `N` in `0.3.N`, if given.
    pub patch: Option<u32>,
}

impl fmt::Display for LanguageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(n) => write!(f, "0.3.{n}"),
            None => f.write_str("0.3"),
        }
    }
}

/// Who may do what with a session. Each list is non-empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessPolicy {
    /// May read the session. Default: `[CREATOR]`.
    pub read: Vec<Principal>,
    /// May update (replace) the session. Default: `[CREATOR]`.
    pub update: Vec<Principal>,
    /// May create sessions inside this one (as a namespace). Default: the `update` list.
    pub create_sessions: Vec<Principal>,
}

impl AccessPolicy {
    /// Whether `caller` is admitted by `list`, given the session's creator.
    pub fn admits(list: &[Principal], caller: &KeyHash, creator: &KeyHash) -> bool {
        list.iter().any(|p| p.admits(caller, creator))
    }
}

/// An entry of an access-policy list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// `CREATOR`: the client that created the session (by its public key).
    Creator,
    /// `ANY`: every client.
    Any,
    /// `NONE`: nobody (only allowed alone).
    Nobody,
    /// A PEM certificate; its public key is what counts, so renewing it keeps access.
    Certificate(Certificate),
    /// A public-key hash (SHA-256 of the client's SubjectPublicKeyInfo, hex).
    PublicKey(KeyHash),
}

impl Principal {
    /// Whether this entry admits `caller`.
    pub fn admits(&self, caller: &KeyHash, creator: &KeyHash) -> bool {
        match self {
            Principal::Creator => caller == creator,
            Principal::Any => true,
            Principal::Nobody => false,
            Principal::Certificate(c) => c.public_key_hash() == caller,
            Principal::PublicKey(k) => k == caller,
        }
    }
}

/// A parsed X.509 certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    pub(crate) der: Vec<u8>,
    pub(crate) public_key_hash: KeyHash,
}

impl Certificate {
    /// The certificate, DER-encoded.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-256 of the certificate's SubjectPublicKeyInfo.
    pub fn public_key_hash(&self) -> &KeyHash {
        &self.public_key_hash
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("public_key_hash", &self.public_key_hash)
            .field("der_len", &self.der.len())
            .finish()
    }
}

/// The `security` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Security {
    /// `security.attestation`.
    pub attestation: AttestationPolicy,
}

/// How the services of a session must attest (`security.attestation`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationPolicy {
    /// Who verifies the evidence. Default: [`AttestationMode::Hardware`].
    pub mode: AttestationMode,
    /// The MAA instance (`https://…`), set exactly when `mode` is [`AttestationMode::Maa`].
    pub url: Option<String>,
    /// CA certificates trusted for TLS to the MAA instance (in addition to the system's).
    pub certificates: Vec<Certificate>,
    /// Weaknesses accepted. With `mode: maa` this always holds [`Tolerance::MaaManagedTcb`].
    pub tolerate: BTreeSet<Tolerance>,
    /// TCB advisories that do not cause a denial.
    pub ignore_advisories: IgnoredAdvisories,
    /// Smallest RSA key accepted for MAA token signatures, in bits. Default 2048; 1024 only
    /// when written explicitly.
    pub min_rsa_signing_key_size: u32,
    /// Platform keys trusted to sign evidence (`trusted_scone_qe_pubkeys`, or Custos's
    /// `trusted_platform_keys`): for simulated quotes, the LAS platform keys.
    pub trusted_platform_keys: Vec<KeyHash>,
    /// With `mode: maa`, the MAA enclaves whose signing keys are trusted
    /// (`trusted_maa_enclaves`, a Custos addition). `None`: the CAS's configured default.
    pub trusted_maa_enclaves: Option<Vec<TrustedMaaEnclave>>,
}

/// Default of [`AttestationPolicy::min_rsa_signing_key_size`].
pub const DEFAULT_MIN_RSA_SIGNING_KEY_SIZE: u32 = 2048;

impl Default for AttestationPolicy {
    fn default() -> Self {
        AttestationPolicy {
            mode: AttestationMode::Hardware,
            url: None,
            certificates: Vec::new(),
            tolerate: BTreeSet::new(),
            ignore_advisories: IgnoredAdvisories::List(BTreeSet::new()),
            min_rsa_signing_key_size: DEFAULT_MIN_RSA_SIGNING_KEY_SIZE,
            trusted_platform_keys: Vec::new(),
            trusted_maa_enclaves: None,
        }
    }
}

macro_rules! keyword_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal $(| $alias:literal)*,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The keyword as written in a session.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// Reads a keyword (or one of its aliases).
            pub fn from_keyword(s: &str) -> Option<Self> {
                match s {
                    $($text $(| $alias)* => Some($name::$variant),)*
                    _ => None,
                }
            }

            pub(crate) const KEYWORDS: &'static [&'static str] = &[$($text),*];
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keyword_enum!(
    /// `security.attestation.mode`.
    AttestationMode {
        /// The CAS verifies SGX evidence itself (Intel DCAP), or simulated evidence from trusted
        /// platform keys.
        Hardware = "hardware",
        /// Microsoft Azure Attestation verifies the evidence; the CAS verifies MAA's token.
        Maa = "maa",
        /// No attestation: any caller with the config id gets the configuration.
        None = "none",
    }
);

keyword_enum!(
    /// A weakness a session accepts (`tolerate`).
    Tolerance {
        /// Enclaves running in debug mode (alias `debug`): their memory is readable by the host.
        DebugMode = "debug-mode" | "debug",
        /// Platforms with hyper-threading enabled.
        Hyperthreading = "hyperthreading",
        /// Platforms with an integrated GPU enabled.
        InsecureIgpu = "insecure-igpu",
        /// An out-of-date TCB (`OutOfDate`).
        OutdatedTcb = "outdated-tcb",
        /// `SWHardeningNeeded`.
        SoftwareHardeningNeeded = "software-hardening-needed",
        /// `ConfigurationNeeded`.
        InsecureConfiguration = "insecure-configuration",
        /// The TCB is judged by MAA, not by Custos (MAA tokens carry no TCB status). Required with `mode: maa`.
        MaaManagedTcb = "maa-managed-tcb",
    }
);

keyword_enum!(
    /// The `kind` of a secret.
    SecretKind {
        /// Printable text.
        Ascii = "ascii",
        /// Bytes.
        Binary = "binary",
        /// A private key.
        PrivateKey = "private-key",
        /// An X.509 certificate (with its private key when known).
        X509 = "x509",
        /// An X.509 CA certificate (with its private key when known).
        X509Ca = "x509-ca",
        /// An Entra ID (Azure AD) access token, fetched by the CAS.
        AadToken = "aad-token",
    }
);

keyword_enum!(
    /// The type of a generated private key (`key_type`).
    KeyType {
        /// ECDSA on NIST P-256 (the default).
        P256 = "P-256",
        /// ECDSA on NIST P-384.
        P384 = "P-384",
        /// Ed25519.
        Ed25519 = "Ed25519",
        /// RSA, 2048 bits.
        Rsa2048 = "RSA-2048",
        /// RSA, 3072 bits.
        Rsa3072 = "RSA-3072",
    }
);

impl KeyType {
    /// Whether this is an RSA key type.
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa3072)
    }
}

keyword_enum!(
    /// What a generated certificate is for (`endpoint`): its extended key usage.
    Endpoint {
        /// TLS server authentication.
        Server = "server",
        /// TLS client authentication.
        Client = "client",
        /// No extended key usage extension, so no restriction (the default: SCONE adds no
        /// EKU when `endpoint` is omitted).
        Any = "any",
    }
);

/// Advisories to ignore (`ignore_advisories`): a list of ids, or `"*"` for all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IgnoredAdvisories {
    /// These advisory ids (`INTEL-SA-00289`, ...); empty by default.
    List(BTreeSet<String>),
    /// `"*"`: every advisory.
    All,
}

impl IgnoredAdvisories {
    /// Whether `advisory` is ignored.
    pub fn ignores(&self, advisory: &str) -> bool {
        match self {
            IgnoredAdvisories::All => true,
            IgnoredAdvisories::List(ids) => ids.contains(advisory),
        }
    }
}

/// A service: a program that attests and then receives its configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Service {
    /// Its name, unique in the session.
    pub name: ServiceName,
    /// The image whose injection files it receives.
    pub image_name: Option<ImageName>,
    /// Its argument vector (program first); absent: the program runs with its own arguments.
    /// A `command` string is split like a shell would (quotes and backslashes), before
    /// placeholders are rendered, so a secret value never splits into several arguments.
    /// Arguments may contain placeholders.
    pub command: Option<Vec<String>>,
    /// Environment variables; values may contain placeholders.
    pub environment: BTreeMap<String, String>,
    /// Working directory (absolute).
    pub pwd: Option<String>,
    /// Enclaves admitted: any alternative that matches admits. Empty only with `mode: none`.
    pub attestation: Vec<EnclavePolicy>,
    /// If non-empty: the platform keys the service may run on.
    pub platforms: Vec<KeyHash>,
    /// `refresh` (a Custos extension): keep the delivered secrets fresh by re-attesting on an
    /// interval. Absent: the runtime starts the program once with what it received.
    pub refresh: Option<Refresh>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Arguments and environment values may be literal secrets: show their shape only.
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("image_name", &self.image_name)
            .field("command_args", &self.command.as_ref().map(Vec::len))
            .field("environment", &self.environment.keys().collect::<Vec<_>>())
            .field("pwd", &self.pwd)
            .field("attestation", &self.attestation)
            .field("platforms", &self.platforms)
            .field("refresh", &self.refresh)
            .finish()
    }
}

/// How a service keeps its secrets fresh (`services[].refresh`): `custos-run` supervises the
/// program and re-attests every `interval` (`docs/session-language.md` § `services`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refresh {
    /// Time between re-attestations; at least one second.
    pub interval: Duration,
    /// What the program is told when its delivery changed. Default [`OnChange::Signal`].
    pub on_change: OnChange,
    /// The signal sent with [`OnChange::Signal`]. Default [`RefreshSignal::Sighup`]; only
    /// written in a session together with `on_change: signal`.
    pub signal: RefreshSignal,
    /// Time between SIGTERM and SIGKILL when the program is restarted or stopped. Default
    /// [`DEFAULT_REFRESH_GRACE`], at most [`MAX_REFRESH_GRACE`].
    pub grace: Duration,
    /// What happens when a re-attestation is denied. Default [`OnDenial::Keep`].
    pub on_denial: OnDenial,
}

/// Default [`Refresh::grace`].
pub const DEFAULT_REFRESH_GRACE: Duration = Duration::from_secs(10);
/// Largest [`Refresh::grace`]: a longer wait would let a stopped program linger with
/// secrets it may no longer be entitled to.
pub const MAX_REFRESH_GRACE: Duration = Duration::from_secs(3600);

keyword_enum!(
    /// `refresh.on_change`: what the program is told when a refresh changed its delivery.
    OnChange {
        /// Changed files are rewritten and the program gets [`Refresh::signal`].
        Signal = "signal",
        /// The program is restarted gracefully with the new delivery.
        Restart = "restart",
        /// Changed files are rewritten; the program is not told.
        None = "none",
    }
);

keyword_enum!(
    /// `refresh.signal`: the signal that tells a program its files changed.
    RefreshSignal {
        /// SIGHUP (the default).
        Sighup = "SIGHUP",
        /// SIGUSR1.
        Sigusr1 = "SIGUSR1",
        /// SIGUSR2.
        Sigusr2 = "SIGUSR2",
    }
);

keyword_enum!(
    /// `refresh.on_denial`: what happens when the CAS denies a re-attestation.
    OnDenial {
        /// The program keeps running with what it has; the runtime retries.
        Keep = "keep",
        /// The program is stopped gracefully.
        Stop = "stop",
    }
);

/// One admitted kind of enclave. Every condition given must hold; at least one is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnclavePolicy {
    /// If non-empty: the enclave's MRENCLAVE is one of these.
    pub mrenclaves: Vec<MrEnclave>,
    /// If given: the enclave's signer, product and minimum security version.
    pub signer: Option<SignerPolicy>,
}

/// An enclave signer's identity (`signer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignerPolicy {
    /// MRSIGNER.
    pub mrsigner: MrSigner,
    /// ISVPRODID: the product (required: a signer alone would admit all its products).
    pub isvprodid: u16,
    /// Smallest ISVSVN admitted: `isvsvn` (an exact version sets both bounds) or
    /// `isvsvn_min`; 0 when neither is given.
    pub min_isvsvn: u16,
    /// Largest ISVSVN admitted: `isvsvn` or `isvsvn_max`; 65535 when neither is given.
    pub max_isvsvn: u16,
}

/// An image: files injected into the services that use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Its name, unique in the session.
    pub name: ImageName,
    /// Files written before the program starts; paths are unique.
    pub injection_files: Vec<InjectionFile>,
}

/// A file injected into a service.
#[derive(Clone, PartialEq, Eq)]
pub struct InjectionFile {
    /// Absolute path, without `.` or `..` components.
    pub path: String,
    /// Content; may contain placeholders.
    pub content: String,
    /// Permission bits (`permission: "0600"`), if given.
    pub mode: Option<u32>,
}

impl fmt::Debug for InjectionFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Content may be a literal secret: show its size only.
        f.debug_struct("InjectionFile")
            .field("path", &self.path)
            .field("content_len", &self.content.len())
            .field("mode", &self.mode)
            .finish()
    }
}

/// A secret of the session.
#[derive(Clone, Debug)]
pub struct Secret {
    /// Its name, unique in the session.
    pub name: SecretName,
    /// Its kind; `None` only for an [`SecretSource::Import`] that states none (the exporting
    /// session's kind then applies).
    pub kind: Option<SecretKind>,
    /// Where its value comes from.
    pub source: SecretSource,
    /// Sessions allowed to import it.
    pub export: Vec<SecretExport>,
    /// Whether its public part (certificate, public key) may be read without attestation.
    /// Only for `private-key`, `x509` and `x509-ca`.
    pub export_public: bool,
    /// `migrate: true`: when the session is updated, the value generated for the previous
    /// version is kept rather than made anew. Only for generated secrets.
    pub migrate: bool,
}

/// Where a secret's value comes from.
#[derive(Clone, Debug)]
pub enum SecretSource {
    /// The CAS makes it: generates it once, or for `aad-token` fetches a token from Entra ID.
    Generated(Generation),
    /// Given in the session (`value`). For x509 kinds: PEM certificate(s), optionally followed by
    /// the PEM private key.
    Value(SecretString),
    /// Read from Azure Key Vault (`import_akv`).
    ImportAkv(AkvImport),
    /// Imported from another session that exports it (`import`).
    Import(SessionImport),
}

/// How the CAS makes a secret; the variant matches the secret's kind.
#[derive(Clone, Debug)]
pub enum Generation {
    /// `size` random characters (the CAS draws them from `[A-Za-z0-9]`).
    Ascii {
        /// Default [`DEFAULT_SECRET_SIZE`].
        size: u32,
    },
    /// `size` random bytes.
    Binary {
        /// Default [`DEFAULT_SECRET_SIZE`].
        size: u32,
    },
    /// A new private key.
    PrivateKey {
        /// Default P-256.
        key_type: KeyType,
    },
    /// A certificate.
    X509(CertificateRequest),
    /// A CA certificate.
    X509Ca(CertificateRequest),
    /// An Entra ID token.
    AadToken(AadTokenRequest),
}

/// Default `size` of generated `ascii` and `binary` secrets.
pub const DEFAULT_SECRET_SIZE: u32 = 20;
/// Largest `size` of a generated secret.
pub const MAX_SECRET_SIZE: u32 = 65536;
/// A generated certificate whose validity ends within this time draws a warning at
/// create and update: a program holding it must attest again to get the renewed one.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// What a generated certificate contains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRequest {
    /// The `private-key` secret holding the certificate's key. Required for `x509`; for
    /// `x509-ca`, absent means the CAS makes a P-256 key for it.
    pub private_key: Option<SecretName>,
    /// The `x509-ca` secret that signs it; absent: self-signed.
    pub issuer: Option<SecretName>,
    /// Subject common name.
    pub common_name: Option<String>,
    /// DNS subject alternative names (`dns`), plus any `DNS:` entries of `san`.
    pub dns: Vec<String>,
    /// IP address subject alternative names (`IP:` entries of `san`, or addresses in `san`).
    pub ip: Vec<std::net::IpAddr>,
    /// How long it is valid (`valid_for`). Absent: as in SCONE, "virtually unlimited" — the
    /// certificate's notAfter is 9999-12-31T23:59:59Z (RFC 5280's "no well-defined
    /// expiration date").
    pub valid_for: Option<Duration>,
    /// What it is for. Default both server and client.
    pub endpoint: Endpoint,
    /// `renew_key: true` (a Custos extension): a renewal gives the certificate a new key
    /// instead of certifying the same one again. Only without `private_key` (the key is then
    /// the certificate's own).
    pub renew_key: bool,
}

/// How the CAS gets an Entra ID token.
#[derive(Clone, Debug)]
pub struct AadTokenRequest {
    /// Directory (tenant) id or domain.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// The application's credential.
    pub credential: AadCredential,
    /// The scope asked for. Default `https://vault.azure.net/.default` (Key Vault).
    pub scope: String,
}

/// Default [`AadTokenRequest::scope`].
pub const DEFAULT_AAD_SCOPE: &str = "https://vault.azure.net/.default";

/// An application credential for Entra ID.
#[derive(Clone, Debug)]
pub enum AadCredential {
    /// A client secret (`application_secret`).
    ApplicationSecret(SecretString),
    /// A certificate: the CAS signs a client assertion with `private_key`, a `private-key` or
    /// `x509` secret; `certificate_thumbprint` names the certificate to Entra ID (it can be
    /// omitted when `private_key` is an x509 secret: the CAS computes it).
    Certificate {
        /// The secret holding the key.
        private_key: SecretName,
        /// The certificate's thumbprint.
        certificate_thumbprint: Option<CertificateThumbprint>,
    },
}

/// Where in Azure Key Vault a secret is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AkvImport {
    /// The vault, normalised to `https://host[:port]` (no trailing slash).
    pub vault: String,
    /// The Key Vault secret (or certificate) name; defaults to the secret's own name.
    pub secret_name: String,
    /// A specific version; absent: the current one.
    pub version: Option<String>,
    /// The `aad-token` secret used to authenticate (written `token: $$SCONE::NAME$$`, or
    /// implied when the session has exactly one `aad-token`).
    pub token: SecretName,
}

/// Import of a secret another session exports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionImport {
    /// The exporting session.
    pub session: SessionName,
    /// The secret's name there; defaults to this secret's name.
    pub secret: SecretName,
    /// If given, the exporting session must have exactly this hash.
    pub session_hash: Option<SessionHash>,
}

/// A session allowed to import a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretExport {
    /// The importing session.
    pub session: SessionName,
    /// If given, the importing session must have exactly this hash.
    pub session_hash: Option<SessionHash>,
}
