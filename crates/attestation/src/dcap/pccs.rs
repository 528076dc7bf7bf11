//! Collateral from a PCCS or Azure THIM (`https://global.acccache.azure.net/sgx/certification/v4/`),
//! cached in memory and on disk.
//!
//! The PCS v4 API: `GET {base}/sgx/certification/v4/`
//! - `pckcrl?ca={processor|platform}&encoding=der` → the PCK CRL, issuer chain in the
//!   `SGX-PCK-CRL-Issuer-Chain` header;
//! - `tcb?fmspc={FMSPC}` → `{"tcbInfo": {...}, "signature": hex}`, chain in
//!   `TCB-Info-Issuer-Chain` (or `SGX-TCB-Info-Issuer-Chain`);
//! - `qe/identity` → `{"enclaveIdentity": {...}, "signature": hex}`, chain in
//!   `SGX-Enclave-Identity-Issuer-Chain`;
//! - `rootcacrl` → the root CA CRL (DER, or hex as PCCS serves it); when the service has
//!   no such endpoint (Intel PCS), Intel's published root CRL URL is used.
//!
//! Headers carry URL-encoded PEM. The signed `tcbInfo`/`enclaveIdentity` JSON is kept
//! byte for byte as served, so its signature verifies. Nothing fetched is trusted: every
//! item is verified against the root CA at use, and cached collateral is used only
//! within its validity window.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls_pki_types::UnixTime;
use serde_json::value::RawValue;

use super::{Collateral, CollateralSource, CollateralValidity, DcapError, PlatformId};
use crate::evidence::ParsedEvidence;
use crate::quote::Quote;
use crate::time::format_rfc3339_utc;

/// Intel's published root CA CRL, used when the PCCS has no `rootcacrl` endpoint.
pub const INTEL_ROOT_CA_CRL_URL: &str =
    "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";

/// Collateral by platform, in memory and optionally in a directory (one JSON file per
/// platform, `{FMSPC}-{ca}.json`, in `QuoteCollateralV3` form).
#[derive(Debug, Default)]
pub struct CollateralCache {
    dir: Option<PathBuf>,
    entries: RwLock<HashMap<PlatformId, Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    collateral: Arc<Collateral>,
    validity: CollateralValidity,
}

impl Entry {
    fn new(collateral: Collateral) -> Result<Self, DcapError> {
        let validity = CollateralValidity::of(&collateral)?;
        Ok(Self {
            collateral: Arc::new(collateral),
            validity,
        })
    }

    fn valid_at(&self, now: UnixTime) -> bool {
        self.validity.check(now).is_ok()
    }
}

impl CollateralCache {
    /// A cache in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A cache backed by `dir`: created mode 0700 if missing; an existing one open to
    /// group or others is tightened to 0700 (nobody else needs to read or plant files there).
    pub fn on_disk(dir: &Path) -> Result<Self, DcapError> {
        private_dir(dir).map_err(|e| DcapError::Cache {
            path: dir.display().to_string(),
            reason: e,
        })?;
        Ok(Self {
            dir: Some(dir.to_owned()),
            entries: RwLock::default(),
        })
    }

    fn file(&self, platform: &PlatformId) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{}-{}.json", platform.fmspc, platform.ca)))
    }

    /// Cached collateral for `platform` valid at `now`, from memory or disk.
    pub fn get(&self, platform: &PlatformId, now: UnixTime) -> Option<Arc<Collateral>> {
        if let Some(entry) = self
            .entries
            .read()
            .ok()?
            .get(platform)
            .filter(|e| e.valid_at(now))
        {
            return Some(entry.collateral.clone());
        }
        // A file another process (or an earlier run) wrote. Unreadable or stale files
        // are ignored: the collateral is fetched again.
        let json = std::fs::read(self.file(platform)?).ok()?;
        let entry = Entry::new(serde_json::from_slice(&json).ok()?).ok()?;
        if !entry.valid_at(now) {
            return None;
        }
        let collateral = entry.collateral.clone();
        self.entries.write().ok()?.insert(platform.clone(), entry);
        Some(collateral)
    }

    /// Stores collateral for `platform` (in memory, and on disk atomically).
    pub fn put(
        &self,
        platform: &PlatformId,
        collateral: Collateral,
    ) -> Result<Arc<Collateral>, DcapError> {
        let entry = Entry::new(collateral)?;
        if let Some(path) = self.file(platform) {
            let cache_error = |e: std::io::Error| DcapError::Cache {
                path: path.display().to_string(),
                reason: e.to_string(),
            };
            let json = serde_json::to_vec(&*entry.collateral).map_err(|e| DcapError::Cache {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, json).map_err(cache_error)?;
            std::fs::rename(&tmp, &path).map_err(cache_error)?;
        }
        let collateral = entry.collateral.clone();
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(platform.clone(), entry);
        }
        Ok(collateral)
    }
}

/// Creates `dir` (and missing parents) mode 0700, or makes an existing one 0700.
fn private_dir(dir: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| e.to_string())?;
        let mode = std::fs::metadata(dir)
            .map_err(|e| e.to_string())?
            .permissions()
            .mode()
            & 0o7777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                format!("mode {mode:04o}, expected 0700, and it cannot be changed: {e}")
            })?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())
    }
}

impl CollateralSource for CollateralCache {
    fn collateral_for(
        &self,
        quote: &Quote<'_>,
        now: UnixTime,
    ) -> Result<Arc<Collateral>, DcapError> {
        let platform = PlatformId::of_quote(quote)?;
        self.get(&platform, now)
            .ok_or_else(|| DcapError::CollateralUnavailable {
                fmspc: platform.fmspc,
                ca: platform.ca.to_owned(),
                now: format_rfc3339_utc(now.as_secs()),
                hint: match &self.dir {
                    Some(dir) => format!(" in the cache {} (fetch it first)", dir.display()),
                    None => " in the cache (fetch it first)".into(),
                },
            })
    }
}

/// How to reach a PCCS/THIM.
#[derive(Debug, Clone)]
pub struct PccsConfig {
    /// Base URL, with or without the `/sgx/certification/v4` suffix.
    pub url: String,
    /// CA certificates (DER) to trust for the service's TLS instead of the system's.
    pub tls_roots: Option<Vec<Vec<u8>>>,
    /// Where Intel's root CA CRL is, when the service has no `rootcacrl` endpoint.
    pub root_ca_crl_url: String,
    /// Request timeout.
    pub timeout: Duration,
}

impl PccsConfig {
    /// Defaults for `url`: system TLS roots, Intel's root CRL URL, a 30-second timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls_roots: None,
            root_ca_crl_url: INTEL_ROOT_CA_CRL_URL.into(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Fetches collateral into a [`CollateralCache`].
#[derive(Debug, Clone)]
pub struct PccsClient {
    base: String,
    root_ca_crl_url: String,
    http: reqwest::Client,
    cache: Arc<CollateralCache>,
}

impl PccsClient {
    /// A client filling `cache` (give the same cache to the [`super::DcapVerifier`]).
    pub fn new(config: PccsConfig, cache: Arc<CollateralCache>) -> Result<Self, DcapError> {
        let trimmed = config.url.trim_end_matches('/');
        let base = trimmed
            .strip_suffix("/sgx/certification/v4")
            .unwrap_or(trimmed);
        let mut builder = reqwest::Client::builder().timeout(config.timeout);
        if let Some(roots) = &config.tls_roots {
            let certs = roots
                .iter()
                .map(|der| reqwest::Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| DcapError::Fetch {
                    url: config.url.clone(),
                    reason: format!("TLS root: {e}"),
                })?;
            builder = builder.tls_certs_only(certs);
        }
        let http = builder.build().map_err(|e| DcapError::Fetch {
            url: config.url.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            base: format!("{base}/sgx/certification/v4"),
            root_ca_crl_url: config.root_ca_crl_url,
            http,
            cache,
        })
    }

    /// The cache this client fills.
    pub fn cache(&self) -> Arc<CollateralCache> {
        self.cache.clone()
    }

    /// Makes sure collateral valid at `now` is cached for the platform of `evidence`
    /// (an SGX quote or OE report), fetching it if needed.
    pub async fn ensure(
        &self,
        evidence: &[u8],
        now: UnixTime,
    ) -> Result<Arc<Collateral>, DcapError> {
        let platform = match ParsedEvidence::parse(evidence) {
            Ok(ParsedEvidence::SgxQuote(q)) => PlatformId::of_quote(&q)?,
            Ok(ParsedEvidence::OeReport(r)) => PlatformId::of_quote(&r.quote)?,
            Ok(ParsedEvidence::SimQuote(_)) => return Err(DcapError::Simulated),
            Err(crate::VerifyError::Parse(e)) => return Err(e.into()),
            Err(e) => return Err(DcapError::Rejected(e.to_string())),
        };
        if let Some(collateral) = self.cache.get(&platform, now) {
            return Ok(collateral);
        }
        let collateral = self.fetch(&platform).await?;
        CollateralValidity::of(&collateral)?.check(now)?;
        self.cache.put(&platform, collateral)
    }

    /// Fetches the collateral of `platform` (no cache).
    pub async fn fetch(&self, platform: &PlatformId) -> Result<Collateral, DcapError> {
        let pck = self
            .get(&format!("pckcrl?ca={}&encoding=der", platform.ca))
            .await?;
        let pck_crl_issuer_chain = pck.header(&["SGX-PCK-CRL-Issuer-Chain"])?;
        let pck_crl = crl_der(&pck.url, &pck.body)?;

        let tcb = self.get(&format!("tcb?fmspc={}", platform.fmspc)).await?;
        let tcb_info_issuer_chain =
            tcb.header(&["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"])?;
        let (tcb_info, tcb_info_signature) = signed_json(&tcb, "tcbInfo")?;

        let qe = self.get("qe/identity").await?;
        let qe_identity_issuer_chain = qe.header(&["SGX-Enclave-Identity-Issuer-Chain"])?;
        let (qe_identity, qe_identity_signature) = signed_json(&qe, "enclaveIdentity")?;

        let root = match self.get("rootcacrl").await {
            Ok(root) => root,
            Err(_) => self.get_url(&self.root_ca_crl_url).await?,
        };
        let root_ca_crl = crl_der(&root.url, &root.body)?;

        Ok(Collateral {
            pck_crl_issuer_chain,
            root_ca_crl,
            pck_crl,
            tcb_info_issuer_chain,
            tcb_info,
            tcb_info_signature,
            qe_identity_issuer_chain,
            qe_identity,
            qe_identity_signature,
            pck_certificate_chain: None,
        })
    }

    async fn get(&self, path: &str) -> Result<Fetched, DcapError> {
        self.get_url(&format!("{}/{path}", self.base)).await
    }

    async fn get_url(&self, url: &str) -> Result<Fetched, DcapError> {
        let fetch_error = |reason: String| DcapError::Fetch {
            url: url.to_owned(),
            reason,
        };
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| fetch_error(custos_ids::fmt::error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fetch_error(format!("HTTP {status}")));
        }
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| fetch_error(custos_ids::fmt::error_chain(&e)))?
            .to_vec();
        Ok(Fetched {
            url: url.to_owned(),
            headers,
            body,
        })
    }
}

struct Fetched {
    url: String,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Fetched {
    /// The first present header of `names`, URL-decoded.
    fn header(&self, names: &[&str]) -> Result<String, DcapError> {
        let value = names
            .iter()
            .find_map(|n| self.headers.get(*n))
            .ok_or_else(|| DcapError::Fetch {
                url: self.url.clone(),
                reason: format!("no {} header", names.join(" or ")),
            })?;
        percent_encoding::percent_decode(value.as_bytes())
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| DcapError::Fetch {
                url: self.url.clone(),
                reason: format!("{} is not UTF-8", names.join("/")),
            })
    }
}

/// `{"<field>": {...}, "signature": "<hex>"}` → the field's exact JSON text and the signature.
fn signed_json(fetched: &Fetched, field: &str) -> Result<(String, Vec<u8>), DcapError> {
    let bad = |reason: String| DcapError::Fetch {
        url: fetched.url.clone(),
        reason,
    };
    let object: HashMap<String, Box<RawValue>> = serde_json::from_slice(&fetched.body)
        .map_err(|e| bad(format!("not a JSON object: {e}")))?;
    let value = object
        .get(field)
        .ok_or_else(|| bad(format!("no {field:?} field")))?;
    let signature = object
        .get("signature")
        .and_then(|s| serde_json::from_str::<String>(s.get()).ok())
        .ok_or_else(|| bad("no \"signature\" string".into()))?;
    let signature = hex::decode(signature).map_err(|_| bad("signature is not hex".into()))?;
    Ok((value.get().to_owned(), signature))
}

/// A CRL body: DER, hex text (PCCS `rootcacrl`), or PEM.
fn crl_der(url: &str, body: &[u8]) -> Result<Vec<u8>, DcapError> {
    if body.first() == Some(&0x30) {
        return Ok(body.to_vec());
    }
    let text = std::str::from_utf8(body).unwrap_or_default().trim();
    if let Ok(der) = hex::decode(text) {
        return Ok(der);
    }
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateRevocationListDer::from_pem_slice(body)
        .map(|c| c.as_ref().to_vec())
        .map_err(|_| DcapError::Fetch {
            url: url.to_owned(),
            reason: "CRL is neither DER, hex nor PEM".into(),
        })
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn the_cache_directory_is_created_0700_and_a_wider_one_is_tightened() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("data").join("dcap-collateral");
        CollateralCache::on_disk(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);

        let wide = base.path().join("wide");
        std::fs::create_dir(&wide).unwrap();
        std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o755)).unwrap();
        CollateralCache::on_disk(&wide).unwrap();
        assert_eq!(mode(&wide), 0o700);
    }
}
