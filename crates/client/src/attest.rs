//! Attesting a CAS before trusting it (`docs/cas.md` § The CAS's own evidence): fetch its
//! evidence over a connection that trusts any key, check the evidence binds the key of that
//! very connection and a fresh nonce (`report_data[0..32] = SHA-256(SPKI ‖ nonce)`), verify it,
//! check it against the caller's [`Expectations`] and hand back the key hash to pin
//! ([`ServerTrust::Pinned`](crate::ServerTrust::Pinned)).
//!
//! Nothing said over the unpinned connection is believed but what the verified evidence binds.

use custos_attestation::claims::{Claims, EvidenceKind};
use custos_attestation::policy::{Decision, Denial, ServicePolicy, evaluate};
use custos_attestation::sim::{PlatformPublicKey, SimQuoteVerifier, TrustedPlatforms};
use custos_attestation::{UnixTime, Verifier as _};
use custos_ids::KeyHash;
use custos_protocol::client::CasEvidence;

use crate::candidates::StartAt;
use crate::cas::{CasClient, ClientError, ServerTrust};

/// What a caller accepts of a CAS. The `custos` CLI builds it from `custos cas attest`'s flags.
pub trait Expectations {
    /// The CAS's key hash, when the caller knows it already (any other key is refused).
    fn key_hash(&self) -> Option<KeyHash> {
        None
    }

    /// Whether simulated evidence is accepted. It proves nothing (the CAS names the key that
    /// signs it): for testing only.
    fn accepts_simulation(&self) -> bool;

    /// Verifies an SGX quote and its binding to `runtime_data` (with DCAP and the caller's
    /// collateral; `custos_attestation::dcap`).
    fn verify_sgx_quote(&self, quote: &[u8], runtime_data: &[u8]) -> Result<Claims, HardwareError>;

    /// What the CAS's verified `claims` must satisfy. Some expectations depend on the claims
    /// (SCONE's "any MRENCLAVE of a CAS in debug mode"); a refusal is said in words.
    fn policy(&self, claims: &Claims) -> Result<ServicePolicy, String>;
}

/// Why hardware evidence was not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HardwareError {
    /// It could not be checked: what is missing (collateral, a reachable PCCS, a root CA).
    Unverifiable(String),
    /// It was checked and is not genuine or not bound: every reason.
    Rejected(Vec<String>),
}

/// Why a CAS was not attested. Each names the CAS and the failed check, expected and actual.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// Its evidence could not be fetched.
    #[error("CAS {addr} did not give evidence: {source}")]
    Fetch {
        /// The CAS.
        addr: String,
        /// Why (boxed: it is the largest).
        source: Box<ClientError>,
    },
    /// Its key is not the one the caller expected.
    #[error("CAS {addr}: key hash: expected {expected}, actual {actual}")]
    KeyHash {
        /// The CAS.
        addr: String,
        /// The expected key hash.
        expected: KeyHash,
        /// The key hash of the certificate it presented.
        actual: KeyHash,
    },
    /// It gave simulated evidence, which the caller does not accept.
    #[error("CAS {addr} gave simulated evidence (sim-quote), which proves nothing")]
    SimulationRefused {
        /// The CAS.
        addr: String,
    },
    /// Its simulated evidence came without a platform key that parses.
    #[error("CAS {addr}: simulated evidence without a usable platform key")]
    NoPlatformKey {
        /// The CAS.
        addr: String,
    },
    /// Its evidence did not verify.
    #[error("CAS {addr}: evidence rejected: {}", reasons.join("; "))]
    Rejected {
        /// The CAS.
        addr: String,
        /// Every reason.
        reasons: Vec<String>,
    },
    /// Its hardware evidence could not be checked.
    #[error("CAS {addr}: {reason}")]
    Unverifiable {
        /// The CAS.
        addr: String,
        /// What is missing.
        reason: String,
    },
    /// It gave evidence a CAS does not attest with.
    #[error(
        "CAS {addr} gave {kind} evidence; a CAS attests with sgx-quote (hardware) or sim-quote (simulation)"
    )]
    UnexpectedEvidence {
        /// The CAS.
        addr: String,
        /// The evidence type it named.
        kind: String,
    },
    /// The caller's expectations refused its claims before any check.
    #[error("CAS {addr}: {refusal}")]
    Refused {
        /// The CAS.
        addr: String,
        /// Why.
        refusal: String,
    },
    /// Its verified claims fail the caller's policy: every failed check.
    #[error("CAS {addr}: {}", denials.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Denied {
        /// The CAS.
        addr: String,
        /// The failed checks, with expected and actual values.
        denials: Vec<Denial>,
    },
}

/// A CAS whose evidence verified and met the expectations: pin `key_hash`.
#[derive(Debug, Clone)]
pub struct AttestedCas {
    /// The CAS's address.
    pub addr: String,
    /// SHA-256 of its TLS key, bound by the evidence: the pin.
    pub key_hash: KeyHash,
    /// Its TLS certificate (PEM), as it sent it.
    pub certificate: String,
    /// What its verified evidence says.
    pub claims: Claims,
}

/// The CAS's evidence, fetched over a connection that trusts any key, not yet verified.
#[derive(Debug, Clone)]
pub struct FetchedEvidence {
    addr: String,
    nonce: [u8; 32],
    server_spki: Vec<u8>,
    /// The CAS's answer; nothing in it is believed until [`FetchedEvidence::verify`].
    pub answer: CasEvidence,
}

/// Fetches the evidence of the CAS at `addr` (`host:port`; of a list, from the first replica
/// that answers) over a fresh nonce.
pub async fn fetch_evidence(addr: &str) -> Result<FetchedEvidence, AttestError> {
    let fetch = |source| AttestError::Fetch {
        addr: addr.to_owned(),
        source: Box::new(source),
    };
    let nonce = fresh_nonce().map_err(fetch)?;
    let client = CasClient::new(addr, None, ServerTrust::AttestationOnly).map_err(fetch)?;
    let (answer, server_spki, answered) = client.evidence_from(&nonce).await.map_err(fetch)?;
    Ok(FetchedEvidence {
        addr: answered,
        nonce,
        server_spki,
        answer,
    })
}

/// Fetches the evidence of every replica `addrs` names (`host:port[,host:port...]`; a name
/// that resolves to several addresses, from each of them), each over its own fresh nonce. All
/// must answer: a replica that cannot be attested is not one to pin.
pub async fn fetch_evidence_from_each(addrs: &str) -> Result<Vec<FetchedEvidence>, AttestError> {
    let fetch = |addr: &str, source| AttestError::Fetch {
        addr: addr.to_owned(),
        source: Box::new(source),
    };
    // In the list's order: the first replica's key is the one the others must have.
    let client = CasClient::new(addrs, None, ServerTrust::AttestationOnly)
        .map_err(|e| fetch(addrs, e))?
        .start_at(StartAt::First);
    let (candidates, unresolved) = client.candidates().await;
    if let Some((entry, error)) = unresolved.into_iter().next() {
        return Err(fetch(&entry, error));
    }
    let mut fetched = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let addr = candidate.to_string();
        let nonce = fresh_nonce().map_err(|e| fetch(&addr, e))?;
        let (answer, server_spki) = client
            .only(candidate)
            .evidence(&nonce)
            .await
            .map_err(|e| fetch(&addr, e))?;
        fetched.push(FetchedEvidence {
            addr,
            nonce,
            server_spki,
            answer,
        });
    }
    Ok(fetched)
}

/// A nonce for one evidence request.
fn fresh_nonce() -> Result<[u8; 32], ClientError> {
    let mut nonce = [0u8; 32];
    aws_lc_rs::rand::fill(&mut nonce)
        .map_err(|_| ClientError::Identity("the random generator failed".into()))?;
    Ok(nonce)
}

/// Verifies the evidence of each replica of one CAS: the first as `expectations` want, every
/// other also with the first one's key — replicas share one key, and one with another is
/// refused with [`AttestError::KeyHash`] (expected: the first's).
pub fn verify_replicas(
    fetched: Vec<FetchedEvidence>,
    expectations: &dyn Expectations,
) -> Result<Vec<AttestedCas>, AttestError> {
    let mut attested: Vec<AttestedCas> = Vec::with_capacity(fetched.len());
    for evidence in fetched {
        let cas = match attested.first() {
            None => evidence.verify(expectations)?,
            Some(first) => evidence.verify(&SameKey {
                key_hash: first.key_hash,
                inner: expectations,
            })?,
        };
        attested.push(cas);
    }
    Ok(attested)
}

/// `inner`'s expectations, and this key.
struct SameKey<'a> {
    key_hash: KeyHash,
    inner: &'a dyn Expectations,
}

impl Expectations for SameKey<'_> {
    fn key_hash(&self) -> Option<KeyHash> {
        Some(self.key_hash)
    }
    fn accepts_simulation(&self) -> bool {
        self.inner.accepts_simulation()
    }
    fn verify_sgx_quote(&self, quote: &[u8], runtime_data: &[u8]) -> Result<Claims, HardwareError> {
        self.inner.verify_sgx_quote(quote, runtime_data)
    }
    fn policy(&self, claims: &Claims) -> Result<ServicePolicy, String> {
        self.inner.policy(claims)
    }
}

/// Attests the CAS at `addr`: [`fetch_evidence`], then [`FetchedEvidence::verify`].
pub async fn attest(
    addr: &str,
    expectations: &dyn Expectations,
) -> Result<AttestedCas, AttestError> {
    fetch_evidence(addr).await?.verify(expectations)
}

impl FetchedEvidence {
    /// The evidence type the CAS named (unverified), if Custos knows it.
    pub fn kind(&self) -> Option<EvidenceKind> {
        self.answer.evidence.kind.parse().ok()
    }

    /// Checks the evidence: bound to the key of the connection it came on and the nonce,
    /// genuine, and as `expectations` want.
    pub fn verify(self, expectations: &dyn Expectations) -> Result<AttestedCas, AttestError> {
        let addr = self.addr;
        let key_hash = KeyHash::of_spki(&self.server_spki);
        if let Some(expected) = expectations.key_hash()
            && expected != key_hash
        {
            return Err(AttestError::KeyHash {
                addr,
                expected,
                actual: key_hash,
            });
        }
        let mut runtime_data = self.server_spki;
        runtime_data.extend_from_slice(&self.nonce);
        let evidence = &self.answer.evidence;
        let kind = evidence
            .kind
            .parse::<EvidenceKind>()
            .map_err(|e| AttestError::Refused {
                addr: addr.clone(),
                refusal: e.to_string(),
            })?;
        let claims = match kind {
            EvidenceKind::SimQuote => {
                if !expectations.accepts_simulation() {
                    return Err(AttestError::SimulationRefused { addr });
                }
                // The CAS names the key that signs its simulated evidence: this proves nothing,
                // which is why only callers that accept simulation get here.
                let Some(platform) = self
                    .answer
                    .platform_key
                    .as_deref()
                    .and_then(|p| PlatformPublicKey::from_spki_pem(p.as_bytes()).ok())
                else {
                    return Err(AttestError::NoPlatformKey { addr });
                };
                SimQuoteVerifier::new(TrustedPlatforms::from_ids([platform.id()]))
                    .verify(&evidence.quote, &runtime_data, UnixTime::now())
                    .map_err(|e| AttestError::Rejected {
                        addr: addr.clone(),
                        reasons: vec![e.to_string()],
                    })?
            }
            EvidenceKind::SgxQuote => expectations
                .verify_sgx_quote(&evidence.quote, &runtime_data)
                .map_err(|e| match e {
                    HardwareError::Unverifiable(reason) => AttestError::Unverifiable {
                        addr: addr.clone(),
                        reason,
                    },
                    HardwareError::Rejected(reasons) => AttestError::Rejected {
                        addr: addr.clone(),
                        reasons,
                    },
                })?,
            other => {
                return Err(AttestError::UnexpectedEvidence {
                    addr,
                    kind: other.to_string(),
                });
            }
        };
        let policy = expectations
            .policy(&claims)
            .map_err(|refusal| AttestError::Refused {
                addr: addr.clone(),
                refusal,
            })?;
        if let Decision::Deny(denials) = evaluate(&claims, &policy) {
            return Err(AttestError::Denied { addr, denials });
        }
        Ok(AttestedCas {
            addr,
            key_hash,
            certificate: self.answer.certificate,
            claims,
        })
    }
}

#[cfg(test)]
mod tests {
    use custos_attestation::policy::{IdentityPolicy, Toleration, Tolerations};
    use custos_attestation::sim::{PlatformKey, SimReport};
    use custos_ids::MrEnclave;
    use custos_protocol::enclave::EvidenceBytes;

    use super::*;

    /// Accepts simulated evidence of `mrenclave` in debug mode, pinned to `key_hash` if given.
    struct Simulated {
        mrenclave: MrEnclave,
        key_hash: Option<KeyHash>,
        simulation: bool,
    }

    impl Expectations for Simulated {
        fn key_hash(&self) -> Option<KeyHash> {
            self.key_hash
        }
        fn accepts_simulation(&self) -> bool {
            self.simulation
        }
        fn verify_sgx_quote(&self, _: &[u8], _: &[u8]) -> Result<Claims, HardwareError> {
            Err(HardwareError::Unverifiable(
                "no collateral in this test".into(),
            ))
        }
        fn policy(&self, _: &Claims) -> Result<ServicePolicy, String> {
            Ok(ServicePolicy {
                identities: vec![IdentityPolicy::mrenclave(self.mrenclave)],
                tolerations: Tolerations::of([Toleration::DebugMode]),
                platforms: Vec::new(),
            })
        }
    }

    const MEASURED: MrEnclave = MrEnclave([0x29; 32]);
    const SPKI: &[u8] = b"the CAS's SubjectPublicKeyInfo";

    /// What a simulated CAS measured as [`MEASURED`] answers for `nonce`, its quote binding
    /// `bound_nonce`.
    fn fetched(nonce: [u8; 32], bound_nonce: [u8; 32]) -> FetchedEvidence {
        let platform = PlatformKey::generate().unwrap();
        let mut runtime_data = SPKI.to_vec();
        runtime_data.extend_from_slice(&bound_nonce);
        let quote = platform
            .create_quote(&SimReport::new(MEASURED, &runtime_data))
            .unwrap();
        FetchedEvidence {
            addr: "127.0.0.1:8081".into(),
            nonce,
            server_spki: SPKI.to_vec(),
            answer: CasEvidence {
                evidence: EvidenceBytes {
                    kind: "sim-quote".into(),
                    quote,
                },
                mrenclave: MEASURED.to_hex(),
                simulation: true,
                platform_key: Some(platform.public_key().to_spki_pem()),
                certificate: "-----BEGIN CERTIFICATE-----\n".into(),
            },
        }
    }

    fn expecting(mrenclave: MrEnclave) -> Simulated {
        Simulated {
            mrenclave,
            key_hash: None,
            simulation: true,
        }
    }

    #[test]
    fn evidence_bound_to_the_key_and_nonce_and_as_expected_gives_the_pin() {
        let cas = fetched([7; 32], [7; 32])
            .verify(&expecting(MEASURED))
            .unwrap();
        assert_eq!(cas.key_hash, KeyHash::of_spki(SPKI));
        assert_eq!(cas.claims.mrenclave(), MEASURED);
        let pinned = Simulated {
            key_hash: Some(KeyHash::of_spki(SPKI)),
            ..expecting(MEASURED)
        };
        assert!(fetched([7; 32], [7; 32]).verify(&pinned).is_ok());
    }

    #[test]
    fn every_failed_check_is_its_own_typed_error() {
        match fetched([7; 32], [8; 32]).verify(&expecting(MEASURED)) {
            Err(AttestError::Rejected { reasons, .. }) => assert_eq!(reasons.len(), 1),
            other => panic!("another nonce must not verify: {other:?}"),
        }
        let other_key = KeyHash([1; 32]);
        let pinned = Simulated {
            key_hash: Some(other_key),
            ..expecting(MEASURED)
        };
        match fetched([7; 32], [7; 32]).verify(&pinned) {
            Err(AttestError::KeyHash {
                expected, actual, ..
            }) => assert_eq!((expected, actual), (other_key, KeyHash::of_spki(SPKI))),
            other => panic!("expected a key hash mismatch: {other:?}"),
        }
        let strict = Simulated {
            simulation: false,
            ..expecting(MEASURED)
        };
        assert!(matches!(
            fetched([7; 32], [7; 32]).verify(&strict),
            Err(AttestError::SimulationRefused { .. })
        ));
        match fetched([7; 32], [7; 32]).verify(&expecting(MrEnclave([0xab; 32]))) {
            Err(AttestError::Denied { denials, .. }) => {
                let text = denials[0].to_string();
                assert!(text.contains(&MEASURED.to_hex()), "{text}");
            }
            other => panic!("another MRENCLAVE must be denied: {other:?}"),
        }
    }
}
