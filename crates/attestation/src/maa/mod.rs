//! Microsoft Azure Attestation (MAA) tokens (`mode: maa`).
//!
//! The CAS forwards an enclave's quote and runtime data to an MAA instance, which verifies
//! the quote under its own policy and returns a JWT. This module decides whether that
//! token can be believed and what it says:
//!
//! - the compact JWS has exactly three base64url parts and a JSON header with
//!   `alg: RS256` — nothing else (`none`, as in draft-policy tokens, `HS256`, `RS384`,
//!   `ES256`, … are rejected by name) — a `kid`, and no `crit`;
//! - the key is chosen by `kid` from the instance's JWKS (`{url}/certs`), using the RSA
//!   key of the certificate `x5c[0]` ([`MaaKeySet`]); keys shorter than the minimum
//!   (2048 bits unless configured lower, never below 1024) are refused;
//! - the signature is RSASSA-PKCS1-v1_5 with SHA-256 over `header.payload`;
//! - `iss` equals the configured instance URL; `exp` and `nbf` hold at the given time,
//!   with a small leeway (60 s by default);
//! - `x-ms-attestation-type` is `sgx`, and the SGX claims are present and well formed;
//! - when the caller knows them: the runtime data are bound — `x-ms-sgx-ehd` equals the
//!   runtime data (sent as `Binary`) or `x-ms-runtime` equals them parsed as JSON (sent as
//!   `JSON`), and in both cases `x-ms-sgx-report-data[0..32] == SHA-256(runtime data)`;
//!   and MAA attested exactly the evidence sent: `x-ms-sgx-collateral.quotehash ==
//!   SHA-256(evidence)`.
//!
//! The claims' TCB status is [`TcbStatus::ManagedByMaa`]: MAA applied its own TCB policy
//! and the token does not say which status the platform had.

pub mod jwks;
pub mod signers;
pub mod trust;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custos_ids::{MrEnclave, MrSigner};
use rustls_pki_types::UnixTime;
use serde::Deserialize;

pub use jwks::{MaaKeySet, MaaSigningKey};

use crate::claims::{Claims, EvidenceKind, ReportData, Tcb, TcbStatus, VerifiedBy, sha256};
use crate::time::format_rfc3339_utc;

/// Largest token accepted, in bytes (MAA tokens are a few kilobytes).
pub const MAX_TOKEN_LEN: usize = 256 * 1024;
/// Default minimum RSA modulus size of signing keys.
pub const DEFAULT_MIN_RSA_BITS: usize = 2048;
/// Smallest minimum that can be configured.
pub const LOWEST_MIN_RSA_BITS: usize = 1024;
/// Default clock leeway for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Why an MAA token was rejected. Every variant names the check, with expected and
/// actual values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MaaError {
    /// Not a compact JWS, or a part is not base64url/JSON.
    #[error("token format: {0}")]
    Format(String),
    /// The token is larger than [`MAX_TOKEN_LEN`].
    #[error("token size: expected at most {max} bytes, found {found}")]
    TooLarge {
        /// The limit.
        max: usize,
        /// The token's size.
        found: usize,
    },
    /// The header's `alg` is not RS256.
    #[error("token alg: expected RS256, found {found:?}")]
    Algorithm {
        /// The header's `alg`.
        found: String,
    },
    /// The header has `crit` extensions, which this verifier does not implement.
    #[error("token header has critical extensions {0:?}: not supported")]
    CriticalHeader(Vec<String>),
    /// The header has no `kid`.
    #[error("token header has no kid")]
    MissingKid,
    /// No JWKS key has the token's `kid`.
    #[error("token kid {kid:?} is not in the signing keys (known: {known})")]
    UnknownKid {
        /// The token's kid.
        kid: String,
        /// The known kids, comma-separated.
        known: String,
    },
    /// The key with the token's `kid` is not usable.
    #[error("signing key {kid:?} is not usable: {reason}")]
    UnusableKey {
        /// The kid.
        kid: String,
        /// Why.
        reason: String,
    },
    /// The signing key is shorter than allowed.
    #[error("signing key {kid:?} size: expected at least {min} bits, found {bits}")]
    WeakKey {
        /// The kid.
        kid: String,
        /// Its modulus size.
        bits: usize,
        /// The configured minimum.
        min: usize,
    },
    /// The signature does not verify.
    #[error("token signature does not verify under key {kid:?}")]
    BadSignature {
        /// The kid.
        kid: String,
    },
    /// `iss` is not the configured instance.
    #[error("token issuer: expected {expected:?}, found {found:?}")]
    Issuer {
        /// The configured instance URL.
        expected: String,
        /// The token's `iss`.
        found: String,
    },
    /// `exp` has passed.
    #[error("token expired at {exp} (now {now}, leeway {leeway_secs} s)")]
    Expired {
        /// `exp`, RFC 3339.
        exp: String,
        /// The verification time.
        now: String,
        /// The leeway.
        leeway_secs: u64,
    },
    /// `nbf` is in the future.
    #[error("token not valid before {nbf} (now {now}, leeway {leeway_secs} s)")]
    NotYetValid {
        /// `nbf`, RFC 3339.
        nbf: String,
        /// The verification time.
        now: String,
        /// The leeway.
        leeway_secs: u64,
    },
    /// A required claim is missing.
    #[error("token claim {0} is missing")]
    MissingClaim(&'static str),
    /// A claim has the wrong form.
    #[error("token claim {claim}: {reason}")]
    BadClaim {
        /// The claim.
        claim: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The attestation type is not SGX.
    #[error("token x-ms-attestation-type: expected \"sgx\", found {found:?}")]
    AttestationType {
        /// The token's type.
        found: String,
    },
    /// The runtime data in the token are not the ones sent.
    #[error("token {claim} does not match the runtime data: expected {expected}, found {found}")]
    RuntimeData {
        /// `x-ms-sgx-ehd` or `x-ms-runtime`.
        claim: &'static str,
        /// SHA-256 of the expected runtime data (or their JSON), hex.
        expected: String,
        /// The same for the token's value.
        found: String,
    },
    /// `x-ms-sgx-report-data` does not bind the runtime data.
    #[error(
        "token x-ms-sgx-report-data[0..32]: expected SHA-256 of the runtime data {expected}, found {found}"
    )]
    ReportData {
        /// SHA-256 of the runtime data, hex.
        expected: String,
        /// The token's first 32 bytes, hex.
        found: String,
    },
    /// MAA attested other evidence than the one sent.
    #[error(
        "token x-ms-sgx-collateral.quotehash: expected SHA-256 of the evidence sent {expected}, found {found}"
    )]
    QuoteHash {
        /// SHA-256 of the evidence sent, hex.
        expected: String,
        /// The token's quotehash.
        found: String,
    },
    /// The JWKS could not be used.
    #[error("signing keys: {0}")]
    Jwks(String),
}

/// How the runtime data were sent to MAA (`runtimeData.dataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeDataType {
    /// `Binary`: MAA returns them base64url-encoded in `x-ms-sgx-ehd`.
    Binary,
    /// `JSON`: MAA returns them parsed, as the object `x-ms-runtime`.
    Json,
}

/// What the caller knows and wants checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct MaaExpectations<'a> {
    /// The runtime data sent with the evidence, and how.
    pub runtime_data: Option<(&'a [u8], RuntimeDataType)>,
    /// The exact evidence bytes sent (the quote for `SgxEnclave`, the OE report for
    /// `OpenEnclave`).
    pub evidence: Option<&'a [u8]>,
}

/// An MAA instance's trust settings.
#[derive(Debug, Clone)]
pub struct MaaConfig {
    /// The instance URL, which tokens carry as `iss` (e.g. `https://sharedeus.eus.attest.azure.net`).
    pub issuer: String,
    /// Minimum RSA modulus size of signing keys ([`DEFAULT_MIN_RSA_BITS`]; not below
    /// [`LOWEST_MIN_RSA_BITS`]).
    pub min_rsa_bits: usize,
    /// Leeway for `exp` and `nbf`.
    pub leeway: Duration,
}

impl MaaConfig {
    /// Defaults for an instance: 2048-bit keys, 60 s leeway.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            min_rsa_bits: DEFAULT_MIN_RSA_BITS,
            leeway: DEFAULT_LEEWAY,
        }
    }

    /// Sets the minimum key size, clamped to at least [`LOWEST_MIN_RSA_BITS`].
    pub fn with_min_rsa_bits(mut self, bits: usize) -> Self {
        self.min_rsa_bits = bits.max(LOWEST_MIN_RSA_BITS);
        self
    }
}

/// A verified token: the claims, and token details worth showing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaaVerified {
    /// The enclave's claims.
    pub claims: Claims,
    /// `x-ms-attestation-type`.
    pub attestation_type: String,
    /// The signing key's kid.
    pub kid: String,
    /// `iat`, when present.
    pub issued_at: Option<u64>,
    /// `exp`.
    pub expires_at: u64,
    /// `x-ms-sgx-collateral.quotehash`, when present.
    pub quote_hash: Option<String>,
}

/// Verifies MAA tokens of one instance with its signing keys.
#[derive(Debug, Clone)]
pub struct MaaTokenVerifier {
    keys: MaaKeySet,
    config: MaaConfig,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Payload {
    iss: Option<String>,
    exp: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
    iat: Option<serde_json::Value>,
    #[serde(rename = "x-ms-attestation-type")]
    attestation_type: Option<String>,
    #[serde(rename = "x-ms-sgx-mrenclave")]
    mrenclave: Option<String>,
    #[serde(rename = "x-ms-sgx-mrsigner")]
    mrsigner: Option<String>,
    #[serde(rename = "x-ms-sgx-product-id")]
    product_id: Option<serde_json::Value>,
    #[serde(rename = "x-ms-sgx-svn")]
    svn: Option<serde_json::Value>,
    #[serde(rename = "x-ms-sgx-is-debuggable")]
    is_debuggable: Option<bool>,
    #[serde(rename = "x-ms-sgx-report-data")]
    report_data: Option<String>,
    #[serde(rename = "x-ms-sgx-ehd")]
    ehd: Option<String>,
    #[serde(rename = "x-ms-runtime")]
    runtime: Option<serde_json::Value>,
    #[serde(rename = "x-ms-sgx-collateral")]
    collateral: Option<CollateralClaim>,
}

#[derive(Deserialize)]
struct CollateralClaim {
    quotehash: Option<String>,
}

impl MaaTokenVerifier {
    /// A verifier for the instance `config.issuer` with its signing keys.
    pub fn new(keys: MaaKeySet, config: MaaConfig) -> Self {
        Self { keys, config }
    }

    /// The configuration.
    pub fn config(&self) -> &MaaConfig {
        &self.config
    }

    /// Verifies `token` as of `now` and checks what `expected` names.
    pub fn verify(
        &self,
        token: &str,
        expected: &MaaExpectations<'_>,
        now: UnixTime,
    ) -> Result<MaaVerified, MaaError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(MaaError::TooLarge {
                max: MAX_TOKEN_LEN,
                found: token.len(),
            });
        }
        let token = token.trim();
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MaaError::Format(
                "expected three dot-separated parts (compact JWS)".into(),
            ));
        };
        let header: Header = json_part("header", header_b64)?;
        let alg = header.alg.unwrap_or_default();
        if alg != "RS256" {
            return Err(MaaError::Algorithm { found: alg });
        }
        if let Some(crit) = header.crit {
            return Err(MaaError::CriticalHeader(crit));
        }
        let kid = header.kid.ok_or(MaaError::MissingKid)?;
        let key = self.keys.get(&kid)?;
        if key.modulus_bits() < self.config.min_rsa_bits {
            return Err(MaaError::WeakKey {
                kid,
                bits: key.modulus_bits(),
                min: self.config.min_rsa_bits,
            });
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| MaaError::Format("signature is not base64url".into()))?;
        let signed_len = header_b64.len() + 1 + payload_b64.len();
        let signed = token.get(..signed_len).unwrap_or_default();
        if !key.verify(signed.as_bytes(), &signature) {
            return Err(MaaError::BadSignature { kid });
        }

        let payload: Payload = json_part("payload", payload_b64)?;
        self.check_issuer(payload.iss.as_deref())?;
        let expires_at = self.check_times(&payload, now)?;
        let verified = self.claims(payload, expected, kid, expires_at)?;
        Ok(verified)
    }

    fn check_issuer(&self, iss: Option<&str>) -> Result<(), MaaError> {
        let iss = iss.ok_or(MaaError::MissingClaim("iss"))?;
        if iss.trim_end_matches('/') != self.config.issuer.trim_end_matches('/') {
            return Err(MaaError::Issuer {
                expected: self.config.issuer.clone(),
                found: iss.to_owned(),
            });
        }
        Ok(())
    }

    fn check_times(&self, p: &Payload, now: UnixTime) -> Result<u64, MaaError> {
        let leeway = self.config.leeway.as_secs();
        let now = now.as_secs();
        let exp = numeric_date("exp", p.exp.as_ref())?.ok_or(MaaError::MissingClaim("exp"))?;
        if now > exp.saturating_add(leeway) {
            return Err(MaaError::Expired {
                exp: format_rfc3339_utc(exp),
                now: format_rfc3339_utc(now),
                leeway_secs: leeway,
            });
        }
        if let Some(nbf) = numeric_date("nbf", p.nbf.as_ref())?
            && now.saturating_add(leeway) < nbf
        {
            return Err(MaaError::NotYetValid {
                nbf: format_rfc3339_utc(nbf),
                now: format_rfc3339_utc(now),
                leeway_secs: leeway,
            });
        }
        Ok(exp)
    }

    fn claims(
        &self,
        p: Payload,
        expected: &MaaExpectations<'_>,
        kid: String,
        expires_at: u64,
    ) -> Result<MaaVerified, MaaError> {
        let attestation_type = p
            .attestation_type
            .clone()
            .ok_or(MaaError::MissingClaim("x-ms-attestation-type"))?;
        if attestation_type != "sgx" {
            return Err(MaaError::AttestationType {
                found: attestation_type,
            });
        }
        let mrenclave: MrEnclave = hex_claim("x-ms-sgx-mrenclave", p.mrenclave.as_deref())?;
        let mrsigner: MrSigner = hex_claim("x-ms-sgx-mrsigner", p.mrsigner.as_deref())?;
        let report_data: ReportData = hex_claim("x-ms-sgx-report-data", p.report_data.as_deref())?;
        let isvprodid = u16_claim("x-ms-sgx-product-id", p.product_id.as_ref())?;
        let isvsvn = u16_claim("x-ms-sgx-svn", p.svn.as_ref())?;
        let debug = p
            .is_debuggable
            .ok_or(MaaError::MissingClaim("x-ms-sgx-is-debuggable"))?;
        let ehd = p
            .ehd
            .as_deref()
            .map(|e| {
                URL_SAFE_NO_PAD
                    .decode(e.trim_end_matches('='))
                    .map_err(|_| MaaError::BadClaim {
                        claim: "x-ms-sgx-ehd",
                        reason: "not base64url".into(),
                    })
            })
            .transpose()?;

        let runtime_data = match expected.runtime_data {
            Some((data, kind)) => {
                check_runtime_data(data, kind, ehd.as_deref(), p.runtime.as_ref())?;
                let want = sha256(data);
                if report_data.hash_part() != &want {
                    return Err(MaaError::ReportData {
                        expected: hex::encode(want),
                        found: hex::encode(report_data.hash_part()),
                    });
                }
                Some(data.to_vec())
            }
            None => ehd,
        };
        let quote_hash = p.collateral.and_then(|c| c.quotehash);
        if let Some(evidence) = expected.evidence {
            let want = hex::encode(sha256(evidence));
            let found = quote_hash
                .clone()
                .ok_or(MaaError::MissingClaim("x-ms-sgx-collateral.quotehash"))?;
            if !found.eq_ignore_ascii_case(&want) {
                return Err(MaaError::QuoteHash {
                    expected: want,
                    found,
                });
            }
        }
        let issuer = p.iss.unwrap_or_default();
        Ok(MaaVerified {
            claims: Claims {
                evidence: EvidenceKind::MaaToken,
                verified_by: VerifiedBy::Maa { issuer },
                mrenclave,
                mrsigner,
                isvprodid,
                isvsvn,
                debug,
                report_data,
                runtime_data,
                tcb: Tcb {
                    status: TcbStatus::ManagedByMaa,
                    advisory_ids: Vec::new(),
                },
            },
            attestation_type,
            kid,
            issued_at: numeric_date("iat", p.iat.as_ref()).ok().flatten(),
            expires_at,
            quote_hash,
        })
    }
}

fn check_runtime_data(
    data: &[u8],
    kind: RuntimeDataType,
    ehd: Option<&[u8]>,
    runtime: Option<&serde_json::Value>,
) -> Result<(), MaaError> {
    match kind {
        RuntimeDataType::Binary => {
            let ehd = ehd.ok_or(MaaError::MissingClaim("x-ms-sgx-ehd"))?;
            if ehd != data {
                return Err(MaaError::RuntimeData {
                    claim: "x-ms-sgx-ehd",
                    expected: hex::encode(sha256(data)),
                    found: hex::encode(sha256(ehd)),
                });
            }
        }
        RuntimeDataType::Json => {
            let runtime = runtime.ok_or(MaaError::MissingClaim("x-ms-runtime"))?;
            // Enclaves often send C strings: trailing NULs and whitespace are not JSON.
            let text = data.strip_suffix(&[0]).unwrap_or(data);
            let sent: serde_json::Value =
                serde_json::from_slice(text).map_err(|e| MaaError::RuntimeData {
                    claim: "x-ms-runtime",
                    expected: format!("runtime data that are JSON (they are not: {e})"),
                    found: "an object".into(),
                })?;
            if &sent != runtime {
                return Err(MaaError::RuntimeData {
                    claim: "x-ms-runtime",
                    expected: hex::encode(sha256(sent.to_string().as_bytes())),
                    found: hex::encode(sha256(runtime.to_string().as_bytes())),
                });
            }
        }
    }
    Ok(())
}

fn json_part<T: for<'de> Deserialize<'de>>(part: &str, b64: &str) -> Result<T, MaaError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| MaaError::Format(format!("{part} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| MaaError::Format(format!("{part} is not a JSON object: {e}")))
}

fn numeric_date(
    claim: &'static str,
    v: Option<&serde_json::Value>,
) -> Result<Option<u64>, MaaError> {
    v.map(|v| {
        v.as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .ok_or(MaaError::BadClaim {
                claim,
                reason: format!("expected a NumericDate, found {v}"),
            })
    })
    .transpose()
}

fn hex_claim<T: std::str::FromStr<Err = custos_ids::HexError>>(
    claim: &'static str,
    v: Option<&str>,
) -> Result<T, MaaError> {
    v.ok_or(MaaError::MissingClaim(claim))?
        .parse()
        .map_err(|e: custos_ids::HexError| MaaError::BadClaim {
            claim,
            reason: e.to_string(),
        })
}

fn u16_claim(claim: &'static str, v: Option<&serde_json::Value>) -> Result<u16, MaaError> {
    let v = v.ok_or(MaaError::MissingClaim(claim))?;
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or(MaaError::BadClaim {
            claim,
            reason: format!("expected an integer 0..=65535, found {v}"),
        })
}
