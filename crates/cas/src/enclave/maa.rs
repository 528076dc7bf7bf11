//! `mode: maa`: Microsoft Azure Attestation verifies the quote, the CAS verifies MAA's token.
//!
//! The CAS forwards the evidence (`sgx-quote` and `sim-quote` to `attest/SgxEnclave`,
//! `oe-report` to `attest/OpenEnclave`) with the runtime data as `Binary` to the session's
//! `url`, over TLS trusting the CAS's configured CAs and the session's `certificates`. It then
//! verifies the token with the signing keys from `{url}/certs` (same TLS trust): RS256 only,
//! key of at least `min_rsa_signing_key_size` bits, `iss` = `url`, `exp`/`nbf`,
//! `x-ms-sgx-ehd` = the runtime data, `x-ms-sgx-report-data[0..32]` = their SHA-256, and
//! `x-ms-sgx-collateral.quotehash` = SHA-256 of the evidence sent
//! (`custos_attestation::maa`). The token's claims then go through the session's policy like
//! any other: both MAA's policy and the session's must allow.
//!
//! The MAA self-check (a Custos addition): the token is believed only when the certificate
//! of the key that signed it embeds evidence of a trusted MAA enclave bound to that key
//! (`custos_attestation::maa::trust`). Hardware evidence is DCAP-verified with the same
//! root and collateral as `mode: hardware`; simulated evidence (the Azure emulator's) only
//! against the platform keys the CAS trusts, narrowed by the session's
//! `trusted_platform_keys`. The trusted enclaves are the session's `trusted_maa_enclaves`,
//! else the CAS's `maa.trusted_enclaves` (unless `maa.self_check = false`). Each key is
//! examined once per JWKS document, at the first token that needs it; a token then costs a
//! lookup and a few comparisons more.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use custos_attestation::maa::signers::{SignerReport, check_signer_trusting, embedded_evidence};
use custos_attestation::maa::trust::judge;
use custos_attestation::maa::{
    MaaConfig, MaaExpectations, MaaKeySet, MaaTokenVerifier, RuntimeDataType,
};
use custos_attestation::{Claims, EvidenceKind, UnixTime};
use custos_azure::{HttpOptions, MaaClient, MaaEvidence, RuntimeData, Trust};
use custos_ids::TrustedMaaEnclave;
use custos_policy::AttestationPolicy;
use rustls_pki_types::CertificateDer;

use super::hardware::HardwareVerifier;
use super::unverified::MaaFailure;

/// Instances kept before the cache is emptied.
const INSTANCES_MAX: usize = 1024;

/// What one JWKS document yielded: its keys, the self-check's findings on each (by kid),
/// and token verifiers by minimum RSA key size.
#[derive(Debug)]
struct VerifiersFor {
    jwks: Arc<Vec<u8>>,
    set: MaaKeySet,
    /// Made at the first token that needs them; tokens arriving meanwhile wait for that
    /// one examination instead of starting their own (each may fetch DCAP collateral).
    signers: Arc<tokio::sync::OnceCell<Arc<HashMap<String, SignerReport>>>>,
    verifiers: HashMap<usize, Arc<MaaTokenVerifier>>,
}

/// The CAS-wide side of the self-check (`[maa]` in the configuration).
#[derive(Debug, Clone)]
pub struct SelfCheck {
    /// Whether sessions without `trusted_maa_enclaves` are checked.
    pub enabled: bool,
    /// The enclaves trusted for them.
    pub trusted: Vec<TrustedMaaEnclave>,
}

/// An instance URL and the SHA-256 of the extra CA certificates its TLS trusts.
type InstanceKey = (String, [u8; 32]);

/// One MAA instance as one session's TLS trust sees it.
#[derive(Debug)]
struct Instance {
    client: MaaClient,
    /// Keys, self-check findings and token verifiers for the current JWKS.
    current: Mutex<Option<VerifiersFor>>,
}

/// Verifies evidence through MAA for sessions in `mode: maa`.
#[derive(Debug)]
pub struct MaaVerifier {
    base: HttpOptions,
    self_check: SelfCheck,
    instances: Mutex<HashMap<InstanceKey, Arc<Instance>>>,
}

impl MaaVerifier {
    /// A verifier whose TLS trusts what `base` trusts (plus each session's certificates),
    /// with the CAS-wide self-check settings.
    pub fn new(base: HttpOptions, self_check: SelfCheck) -> Self {
        Self {
            base,
            self_check,
            instances: Mutex::default(),
        }
    }

    /// Has MAA verify `evidence` of `kind` with `runtime_data`, then verifies its token as of
    /// `now` for a session whose attestation settings are `policy`, and the MAA enclave that
    /// signed it; `hardware` verifies the evidence in MAA's signing certificates.
    pub async fn verify(
        &self,
        kind: EvidenceKind,
        evidence: &[u8],
        runtime_data: &[u8],
        policy: &AttestationPolicy,
        hardware: &HardwareVerifier,
        now: UnixTime,
    ) -> Result<Claims, MaaFailure> {
        let url = policy.url.as_deref().ok_or(MaaFailure::NoUrl)?;
        let instance = self.instance(url, policy)?;
        let sent = match kind {
            EvidenceKind::SgxQuote | EvidenceKind::SimQuote => MaaEvidence::SgxQuote(evidence),
            EvidenceKind::OeReport => MaaEvidence::OpenEnclaveReport(evidence),
            EvidenceKind::MaaToken => return Err(MaaFailure::TokenOffered),
        };
        let token = instance
            .client
            .attest(sent, Some(RuntimeData::Binary(runtime_data)))
            .await?;
        let (verifier, jwks) = instance
            .verifier(&token, policy.min_rsa_signing_key_size as usize)
            .await?;
        let expectations = MaaExpectations {
            runtime_data: Some((runtime_data, RuntimeDataType::Binary)),
            evidence: Some(evidence),
        };
        let verified = verifier.verify(&token, &expectations, now)?;
        let trusted: Cow<'_, [TrustedMaaEnclave]> = match &policy.trusted_maa_enclaves {
            Some(list) => Cow::Borrowed(list.as_slice()),
            None if self.self_check.enabled => Cow::Borrowed(&self.self_check.trusted),
            None => return Ok(verified.claims),
        };
        let signers = instance.signers(&jwks, hardware, now).await;
        check_signer(&verified.kid, &signers, &trusted, policy)?;
        Ok(verified.claims)
    }

    fn instance(&self, url: &str, policy: &AttestationPolicy) -> Result<Arc<Instance>, MaaFailure> {
        let mut fingerprint = digest::Context::new(&digest::SHA256);
        let mut extra: Vec<CertificateDer<'static>> = Vec::new();
        for certificate in &policy.certificates {
            fingerprint.update(&(certificate.der().len() as u64).to_be_bytes());
            fingerprint.update(certificate.der());
            extra.push(CertificateDer::from(certificate.der().to_vec()));
        }
        let key = (
            url.to_owned(),
            fingerprint
                .finish()
                .as_ref()
                .try_into()
                .expect("SHA-256 is 32 bytes"),
        );
        let mut instances = self.instances.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(instance) = instances.get(&key) {
            return Ok(instance.clone());
        }
        let mut http = self.base.clone();
        if !extra.is_empty() {
            http.trust = match http.trust {
                Trust::System => Trust::SystemAnd(extra),
                Trust::SystemAnd(mut cas) => {
                    cas.extend(extra);
                    Trust::SystemAnd(cas)
                }
                Trust::Only(mut cas) => {
                    cas.extend(extra);
                    Trust::Only(cas)
                }
            };
        }
        let client = MaaClient::new(url, &http)?;
        let instance = Arc::new(Instance {
            client,
            current: Mutex::new(None),
        });
        if instances.len() >= INSTANCES_MAX {
            instances.clear();
        }
        instances.insert(key, instance.clone());
        Ok(instance)
    }
}

impl Instance {
    /// A verifier for `token` with the instance's current signing keys (fetched again when
    /// the token names a key not among them) and the session's minimum key size; and the
    /// JWKS document it is for.
    async fn verifier(
        &self,
        token: &str,
        min_rsa_bits: usize,
    ) -> Result<(Arc<MaaTokenVerifier>, Arc<Vec<u8>>), MaaFailure> {
        let keys = self.client.signing_keys_for(token).await?;
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let current = match current.as_mut() {
            Some(c) if Arc::ptr_eq(&c.jwks, &keys.jwks) => c,
            _ => current.insert(VerifiersFor {
                jwks: keys.jwks.clone(),
                set: MaaKeySet::from_jwks(&keys.jwks)?,
                signers: Arc::default(),
                verifiers: HashMap::new(),
            }),
        };
        let verifier = current
            .verifiers
            .entry(min_rsa_bits)
            .or_insert_with(|| {
                Arc::new(MaaTokenVerifier::new(
                    current.set.clone(),
                    MaaConfig::new(self.client.url()).with_min_rsa_bits(min_rsa_bits),
                ))
            })
            .clone();
        Ok((verifier, keys.jwks))
    }

    /// The self-check's findings on the keys of `jwks`: made once per JWKS document, at the
    /// first token that needs them (so a CAS with the check off never fetches collateral
    /// for MAA's evidence).
    async fn signers(
        &self,
        jwks: &Arc<Vec<u8>>,
        hardware: &HardwareVerifier,
        now: UnixTime,
    ) -> Arc<HashMap<String, SignerReport>> {
        let current = {
            let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            match current.as_ref().filter(|c| Arc::ptr_eq(&c.jwks, jwks)) {
                Some(c) => match c.signers.get() {
                    Some(found) => return found.clone(),
                    None => Some((c.set.clone(), c.signers.clone())),
                },
                None => None,
            }
        };
        match current {
            Some((set, signers)) => signers
                .get_or_init(|| async { Arc::new(examine(&set, hardware, now).await) })
                .await
                .clone(),
            // Replaced meanwhile: examine the document the token was verified with.
            None => {
                let set = MaaKeySet::from_jwks(jwks).unwrap_or_default();
                Arc::new(examine(&set, hardware, now).await)
            }
        }
    }
}

/// The self-check for the key `kid` that signed a verified token, against `trusted`.
fn check_signer(
    kid: &str,
    signers: &HashMap<String, SignerReport>,
    trusted: &[TrustedMaaEnclave],
    policy: &AttestationPolicy,
) -> Result<(), MaaFailure> {
    let report = signers.get(kid).ok_or_else(|| MaaFailure::NotExamined {
        kid: kid.to_owned(),
    })?;
    Ok(judge(report, trusted, &policy.trusted_platform_keys)?)
}

/// The self-check's findings on every signing key: its embedded evidence, the binding, and
/// the evidence's authenticity (DCAP for hardware evidence, collateral fetched as for
/// `mode: hardware`; the CAS's trusted platform keys for simulated evidence).
async fn examine(
    set: &MaaKeySet,
    hardware: &HardwareVerifier,
    now: UnixTime,
) -> HashMap<String, SignerReport> {
    let mut out = HashMap::new();
    for key in set.keys() {
        let hardware_evidence = embedded_evidence(key.certificate())
            .map(|(_, e)| e)
            .filter(|e| custos_attestation::sim::SimQuote::parse(e).is_err());
        let report = match hardware_evidence {
            Some(evidence) => match hardware.maa_signer_dcap(&evidence, now).await {
                Ok(dcap) => check_signer_trusting(key, Some(&dcap), hardware.trusted_platforms()),
                Err(e) => {
                    let mut report = check_signer_trusting(key, None, hardware.trusted_platforms());
                    report.dcap = Some(Err(format!("collateral: {e}")));
                    report
                }
            },
            None => check_signer_trusting(key, None, hardware.trusted_platforms()),
        };
        tracing::info!(
            kid = report.kid.as_str(),
            enclave = report.enclave,
            binding_ok = report.binding_ok,
            mrsigner = report
                .identity
                .map(|i| i.mrsigner.to_hex())
                .unwrap_or_default(),
            "MAA signing key examined"
        );
        out.insert(key.kid().to_owned(), report);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use custos_attestation::TrustedPlatforms;
    use custos_attestation::dcap::{RootCa, StaticCollateral};
    use custos_attestation::maa::trust::observed_maa_enclaves;

    use super::*;
    use crate::config::Config;

    const KID: &str = "XxRc2vLh1E5FrsNawnRH3PzuFgqg3q7NvCdnjoJHBGE=";

    fn data(path: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../attestation/tests/data")
            .join(path)
    }

    /// The JWKS Azure's shared West US provider served (recorded): its own key embeds an
    /// Open Enclave report of the MAA enclave.
    fn recorded_keys() -> MaaKeySet {
        let recording: serde_json::Value = serde_json::from_slice(
            &std::fs::read(data(
                "maa/recordings/Attestation-MetadataTests.GetSigningCertificates-Shared.json",
            ))
            .unwrap(),
        )
        .unwrap();
        let calls = recording["networkCallRecords"].as_array().unwrap();
        let jwks = calls
            .iter()
            .find(|c| c["Url"].as_str().unwrap().ends_with("/certs"))
            .unwrap()["Response"]["BODY"]
            .as_str()
            .unwrap();
        MaaKeySet::from_jwks(jwks.as_bytes()).unwrap()
    }

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    #[tokio::test]
    async fn real_maa_evidence_without_collateral_is_refused_naming_why() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        // A PCCS that does not answer: no collateral for the MAA platform.
        config.dcap.pccs_url = "http://127.0.0.1:9".into();
        let hardware = HardwareVerifier::from_config(&config).await.unwrap();
        let found = examine(&recorded_keys(), &hardware, at(1_751_328_000)).await;
        let err = judge(&found[KID], &observed_maa_enclaves(), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("signing key {KID}: DCAP: collateral: ")),
            "{err}"
        );
    }

    #[test]
    fn real_maa_evidence_dcap_cannot_verify_is_refused() {
        // Collateral of another platform: DCAP verification is attempted and fails.
        let collateral = StaticCollateral::from_json(
            &std::fs::read(data("dcap/sgx_quote_collateral.json")).unwrap(),
        )
        .unwrap();
        let hardware = HardwareVerifier::new(
            RootCa::intel_production(),
            collateral,
            TrustedPlatforms::none(),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let found = runtime.block_on(examine(&recorded_keys(), &hardware, at(1_751_328_000)));
        let err = judge(&found[KID], &observed_maa_enclaves(), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "signing key {KID}: DCAP: DCAP verification failed"
            )),
            "{err}"
        );
        // The keys issued by Microsoft's PCA carry no evidence at all.
        let err = judge(
            &found["5n95sus8qrcBcVLXZu3lPYgdMlM"],
            &observed_maa_enclaves(),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("enclave evidence: expected"), "{err}");
    }
}
