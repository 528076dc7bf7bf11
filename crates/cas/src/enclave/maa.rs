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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use custos_attestation::maa::{
    MaaConfig, MaaExpectations, MaaKeySet, MaaTokenVerifier, RuntimeDataType,
};
use custos_attestation::{Claims, EvidenceKind, UnixTime};
use custos_azure::{HttpOptions, MaaClient, MaaEvidence, RuntimeData, Trust};
use custos_policy::AttestationPolicy;
use rustls_pki_types::CertificateDer;

/// Instances kept before the cache is emptied.
const INSTANCES_MAX: usize = 1024;

/// Token verifiers for one JWKS document, by minimum RSA key size.
type VerifiersFor = (Arc<Vec<u8>>, HashMap<usize, Arc<MaaTokenVerifier>>);

/// An instance URL and the SHA-256 of the extra CA certificates its TLS trusts.
type InstanceKey = (String, [u8; 32]);

/// One MAA instance as one session's TLS trust sees it.
#[derive(Debug)]
struct Instance {
    client: MaaClient,
    /// Token verifiers for the current JWKS.
    verifiers: Mutex<Option<VerifiersFor>>,
}

/// Verifies evidence through MAA for sessions in `mode: maa`.
#[derive(Debug)]
pub struct MaaVerifier {
    base: HttpOptions,
    instances: Mutex<HashMap<InstanceKey, Arc<Instance>>>,
}

impl MaaVerifier {
    /// A verifier whose TLS trusts what `base` trusts (plus each session's certificates).
    pub fn new(base: HttpOptions) -> Self {
        Self {
            base,
            instances: Mutex::default(),
        }
    }

    /// Has MAA verify `evidence` of `kind` with `runtime_data`, then verifies its token as of
    /// `now` for a session whose attestation settings are `policy`.
    pub async fn verify(
        &self,
        kind: EvidenceKind,
        evidence: &[u8],
        runtime_data: &[u8],
        policy: &AttestationPolicy,
        now: UnixTime,
    ) -> Result<Claims, Vec<String>> {
        let fail = |reason: String| vec![format!("maa: {reason}")];
        let url = policy
            .url
            .as_deref()
            .ok_or_else(|| fail("the session has no url".into()))?;
        let instance = self.instance(url, policy).map_err(fail)?;
        let sent = match kind {
            EvidenceKind::SgxQuote | EvidenceKind::SimQuote => MaaEvidence::SgxQuote(evidence),
            EvidenceKind::OeReport => MaaEvidence::OpenEnclaveReport(evidence),
            EvidenceKind::MaaToken => {
                return Err(fail(
                    "evidence: expected sgx-quote, oe-report or sim-quote, actual maa-token (the CAS asks MAA itself)".into(),
                ));
            }
        };
        let token = instance
            .client
            .attest(sent, Some(RuntimeData::Binary(runtime_data)))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let verifier = instance
            .verifier(&token, policy.min_rsa_signing_key_size as usize)
            .await
            .map_err(fail)?;
        let expectations = MaaExpectations {
            runtime_data: Some((runtime_data, RuntimeDataType::Binary)),
            evidence: Some(evidence),
        };
        verifier
            .verify(&token, &expectations, now)
            .map(|verified| verified.claims)
            .map_err(|e| fail(e.to_string()))
    }

    fn instance(&self, url: &str, policy: &AttestationPolicy) -> Result<Arc<Instance>, String> {
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
        let client = MaaClient::new(url, &http).map_err(|e| e.to_string())?;
        let instance = Arc::new(Instance {
            client,
            verifiers: Mutex::new(None),
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
    /// the token names a key not among them) and the session's minimum key size.
    async fn verifier(
        &self,
        token: &str,
        min_rsa_bits: usize,
    ) -> Result<Arc<MaaTokenVerifier>, String> {
        let keys = self
            .client
            .signing_keys_for(token)
            .await
            .map_err(|e| e.to_string())?;
        let mut cached = self.verifiers.lock().unwrap_or_else(|e| e.into_inner());
        let current = match cached.as_mut() {
            Some((jwks, verifiers)) if Arc::ptr_eq(jwks, &keys.jwks) => verifiers,
            _ => &mut cached.insert((keys.jwks.clone(), HashMap::new())).1,
        };
        if let Some(verifier) = current.get(&min_rsa_bits) {
            return Ok(verifier.clone());
        }
        let set = MaaKeySet::from_jwks(&keys.jwks).map_err(|e| e.to_string())?;
        let verifier = Arc::new(MaaTokenVerifier::new(
            set,
            MaaConfig::new(self.client.url()).with_min_rsa_bits(min_rsa_bits),
        ));
        current.insert(min_rsa_bits, verifier.clone());
        Ok(verifier)
    }
}
