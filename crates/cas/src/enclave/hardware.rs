//! `mode: hardware`: the CAS verifies the evidence itself.
//!
//! - `sgx-quote` and `oe-report`: Intel DCAP, chained to the configured root (Intel's
//!   production SGX Root CA by default), with collateral from one file or fetched from a
//!   PCCS/THIM into a cache (`custos_attestation::dcap`).
//! - `sim-quote`: accepted only when signed by a platform key the **CAS** trusts
//!   (`enclave.trusted_platform_keys`, `enclave.trusted_las`): trusting simulation is the
//!   operator's decision, which a session cannot widen. A session's `trusted_platform_keys`
//!   narrows it further, and the policy's debug rule applies (simulation is always debug), so
//!   only sessions that tolerate `debug-mode` accept it.
//!
//! Every path fails closed: a verification failure is an [`Unverified`], never claims. The
//! evidence goes to the verifier registered for its type in one [`Verifiers`]: DCAP for
//! `sgx-quote` and `oe-report`, simulation only where the CAS trusts a platform key.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use custos_attestation::dcap::pccs::{CollateralCache, PccsClient, PccsConfig};
use custos_attestation::dcap::{
    CollateralSource, DcapError, DcapVerifier, RootCa, StaticCollateral,
};
use custos_attestation::maa::signers::DcapCheck;
use custos_attestation::sim::SimQuoteVerifier;
use custos_attestation::{
    Claims, EvidenceKind, PlatformPublicKey, TrustedPlatforms, UnixTime, Verifiers, VerifyError,
};
use custos_ids::KeyHash;
use custos_policy::AttestationPolicy;

use super::SetupError;
use super::unverified::Unverified;
use crate::config::Config;

/// Where DCAP collateral comes from.
#[derive(Debug)]
enum Collateral {
    /// One file for every quote.
    Static,
    /// Fetched (and cached) before each verification that needs it.
    Pccs(PccsClient),
}

/// Verifies evidence for sessions in `mode: hardware`.
#[derive(Debug)]
pub struct HardwareVerifier {
    verifiers: Verifiers,
    collateral: Collateral,
    trusted_platforms: TrustedPlatforms,
    /// The root and collateral source, for the MAA self-check's DCAP verification.
    root: RootCa,
    source: Arc<dyn CollateralSource>,
}

impl HardwareVerifier {
    /// Sets up DCAP and the trusted platform keys from the configuration; fetches the
    /// platform keys of `enclave.trusted_las`.
    pub async fn from_config(config: &Config) -> Result<Self, SetupError> {
        let root = match &config.dcap.root_ca {
            Some(path) => {
                let bytes = read(path)?;
                let root = if bytes.starts_with(b"-----BEGIN") {
                    RootCa::from_pem(&bytes)
                } else {
                    RootCa::from_der(&bytes)
                };
                root.map_err(|e| SetupError::Dcap {
                    what: path.display().to_string(),
                    source: e,
                })?
            }
            None => RootCa::intel_production(),
        };
        if !root.is_intel_production() {
            tracing::warn!(
                root_sha256 = root.sha256(),
                "DCAP trusts a root CA other than Intel's production SGX Root CA"
            );
        }
        let (source, collateral): (Arc<dyn CollateralSource>, _) = match &config.dcap.collateral {
            Some(path) => {
                let collateral =
                    StaticCollateral::from_json(&read(path)?).map_err(|e| SetupError::Dcap {
                        what: path.display().to_string(),
                        source: e,
                    })?;
                (Arc::new(collateral), Collateral::Static)
            }
            None => {
                let dir = config.dcap_cache_dir();
                let cache =
                    Arc::new(
                        CollateralCache::on_disk(&dir).map_err(|e| SetupError::Dcap {
                            what: dir.display().to_string(),
                            source: e,
                        })?,
                    );
                let mut pccs = PccsConfig::new(config.dcap.pccs_url.clone());
                if let Some(path) = &config.dcap.pccs_ca {
                    let certs =
                        custos_tls::read_certificates(path).map_err(|e| SetupError::File {
                            path: path.clone(),
                            reason: e.to_string(),
                        })?;
                    pccs.tls_roots = Some(certs.iter().map(|c| c.to_vec()).collect());
                }
                let client =
                    PccsClient::new(pccs, cache.clone()).map_err(|e| SetupError::Dcap {
                        what: config.dcap.pccs_url.clone(),
                        source: e,
                    })?;
                (cache, Collateral::Pccs(client))
            }
        };
        let trusted_platforms = trusted_platforms(
            &config.enclave.trusted_platform_keys,
            &config.enclave.trusted_las,
        )
        .await?;
        if !trusted_platforms.is_empty() {
            tracing::warn!(
                keys = trusted_platforms.len(),
                "SIMULATION: this CAS accepts simulated quotes (sim-quote) from trusted platform keys for sessions that tolerate debug-mode; they prove nothing about hardware"
            );
        }
        Ok(Self::with_parts(
            root,
            source,
            collateral,
            trusted_platforms,
        ))
    }

    /// A verifier with the given parts (tests).
    pub fn new(
        root: RootCa,
        collateral: StaticCollateral,
        trusted_platforms: TrustedPlatforms,
    ) -> Self {
        Self::with_parts(
            root,
            Arc::new(collateral),
            Collateral::Static,
            trusted_platforms,
        )
    }

    /// The verifiers this CAS accepts evidence with: DCAP for SGX quotes and OE reports, and
    /// simulated quotes only when it trusts a platform key.
    fn with_parts(
        root: RootCa,
        source: Arc<dyn CollateralSource>,
        collateral: Collateral,
        trusted_platforms: TrustedPlatforms,
    ) -> Self {
        let mut verifiers = Verifiers::new()
            .with(DcapVerifier::sgx_quotes(root.clone(), source.clone()))
            .with(DcapVerifier::oe_reports(root.clone(), source.clone()));
        if !trusted_platforms.is_empty() {
            verifiers = verifiers.with(SimQuoteVerifier::new(trusted_platforms.clone()));
        }
        Self {
            verifiers,
            collateral,
            trusted_platforms,
            root,
            source,
        }
    }

    /// The simulation platform keys this CAS trusts (also for the MAA self-check).
    pub fn trusted_platforms(&self) -> &TrustedPlatforms {
        &self.trusted_platforms
    }

    /// DCAP settings for hardware `evidence` embedded in an MAA signing certificate, with
    /// its collateral fetched first when it comes from a PCCS: the same root and collateral
    /// as `mode: hardware`.
    pub async fn maa_signer_dcap(
        &self,
        evidence: &[u8],
        now: UnixTime,
    ) -> Result<DcapCheck, DcapError> {
        if let Collateral::Pccs(pccs) = &self.collateral {
            pccs.ensure(evidence, now).await?;
        }
        Ok(DcapCheck {
            root: self.root.clone(),
            collateral: self.source.clone(),
            now,
        })
    }

    /// Whether any simulation platform key is trusted.
    pub fn accepts_simulation(&self) -> bool {
        !self.trusted_platforms.is_empty()
    }

    /// Verifies `evidence` of `kind` and its binding to `runtime_data` as of `now`, for a
    /// session whose attestation settings are `policy`.
    pub async fn verify(
        &self,
        kind: EvidenceKind,
        evidence: &[u8],
        runtime_data: &[u8],
        policy: &AttestationPolicy,
        now: UnixTime,
    ) -> Result<Claims, Unverified> {
        if matches!(kind, EvidenceKind::SgxQuote | EvidenceKind::OeReport)
            && let Collateral::Pccs(pccs) = &self.collateral
        {
            pccs.ensure(evidence, now)
                .await
                .map_err(Unverified::Collateral)?;
        }
        let claims = self
            .verifiers
            .verify(kind, evidence, runtime_data, now)
            .map_err(|e| match e {
                VerifyError::NotAccepted {
                    kind: EvidenceKind::SimQuote,
                    ..
                } => Unverified::SimulationNotTrusted,
                VerifyError::NotAccepted {
                    kind: EvidenceKind::MaaToken,
                    ..
                } => Unverified::MaaTokenOffered,
                e => Unverified::Verify(e),
            })?;
        // The session may narrow the platform keys the CAS trusts, never widen them.
        let allowed = &policy.trusted_platform_keys;
        if let Some(platform) = claims.platform()
            && !allowed.is_empty()
            && !allowed.contains(platform)
        {
            return Err(Unverified::PlatformNotAllowed {
                allowed: allowed.clone(),
                actual: *platform,
            });
        }
        Ok(claims)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|e| SetupError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// The platform keys the CAS trusts: ids or PEM files, and the keys of these LAS.
async fn trusted_platforms(
    entries: &[String],
    las_urls: &[String],
) -> Result<TrustedPlatforms, SetupError> {
    let mut trusted = TrustedPlatforms::none();
    for entry in entries {
        let id = match entry.trim().parse::<KeyHash>() {
            Ok(id) => id,
            Err(_) => {
                let pem = read(Path::new(entry.trim()))?;
                PlatformPublicKey::from_spki_pem(&pem)
                    .map_err(|e| SetupError::PlatformKey {
                        entry: entry.clone(),
                        reason: e.to_string(),
                    })?
                    .id()
            }
        };
        tracing::info!(platform_key = %id, "trusting simulation platform key");
        trusted.trust_id(id);
    }
    for url in las_urls {
        let key = las_platform_key(url).await?;
        tracing::warn!(
            platform_key = %key.id(),
            las = url.as_str(),
            "trusting the platform key of a LAS, as it answered over plain HTTP (pin its key id with --trust-platform-key instead where the network is not trusted)"
        );
        trusted.trust(&key);
    }
    Ok(trusted)
}

/// `GET {url}/v1/platform`, retried for up to ten seconds (the LAS may be starting).
async fn las_platform_key(url: &str) -> Result<PlatformPublicKey, SetupError> {
    let error = |reason: String| SetupError::Las {
        url: url.to_owned(),
        reason,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| error(e.to_string()))?;
    let endpoint = format!("{}/v1/platform", url.trim_end_matches('/'));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let platform: custos_protocol::las::Platform = loop {
        let attempt = async {
            let response = http
                .get(&endpoint)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("HTTP {status}"));
            }
            response.json().await.map_err(|e| e.to_string())
        };
        match attempt.await {
            Ok(body) => break body,
            Err(reason) if std::time::Instant::now() >= deadline => return Err(error(reason)),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    PlatformPublicKey::from_spki_pem(platform.public_key_pem.as_bytes())
        .map_err(|e| error(e.to_string()))
}
