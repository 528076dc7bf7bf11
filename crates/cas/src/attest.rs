//! The CAS's own evidence: proof to a client that it talks to a CAS running the expected
//! code, bound to the CAS's TLS key.
//!
//! `GET /v1/attest?nonce=N` answers with evidence whose runtime data is
//! `SPKI ‖ N` (the CAS certificate's SubjectPublicKeyInfo DER, then the nonce bytes), so
//! `report_data[0..32] = SHA-256(SPKI ‖ N)`. A client that checks the evidence and the binding
//! may pin that key. Where the evidence comes from sits behind [`SelfEvidence`]: a simulated
//! platform in the CAS process ([`SimulatedPlatform`]), or SGX DCAP quotes from Gramine's
//! `/dev/attestation` when the CAS runs in an enclave ([`GramineEnclave`]).

use std::fmt;
use std::path::{Path, PathBuf};

use custos_attestation::ReportData;
use custos_attestation::claims::EvidenceKind;
use custos_attestation::gramine::GramineError;
use custos_attestation::quote::Quote;
use custos_attestation::sim::{PlatformKey, SimError, SimReport};
use custos_ids::MrEnclave;

/// Why evidence could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The simulated platform failed.
    #[error("simulated platform: {0}")]
    Sim(#[from] SimError),
    /// Gramine gave no quote (not in an enclave, or not configured for DCAP).
    #[error("Gramine attestation: {0}")]
    Gramine(#[from] GramineError),
    /// Gramine's quote is not an SGX DCAP quote.
    #[error("Gramine's quote from {path} is not an SGX DCAP quote: {reason}")]
    BadQuote {
        /// The attestation directory.
        path: String,
        /// What the parser found.
        reason: String,
    },
    /// The executable could not be measured.
    #[error("cannot measure the CAS executable {path}: {source}")]
    Measure {
        /// The executable.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Evidence about this CAS.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// Its kind.
    pub kind: EvidenceKind,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Something that produces evidence about this CAS binding given runtime data.
pub trait SelfEvidence: Send + Sync + fmt::Debug {
    /// Evidence with `report_data[0..32] = SHA-256(runtime_data)`.
    fn evidence(&self, runtime_data: &[u8]) -> Result<Evidence, EvidenceError>;
    /// Whether the evidence is simulated (evidence of nothing: said at start-up and in `/healthz`).
    fn is_simulation(&self) -> bool;
    /// The measurement the evidence reports.
    fn mrenclave(&self) -> MrEnclave;
    /// The simulated platform's public key (PEM), for clients that trust it explicitly.
    fn platform_public_key_pem(&self) -> Option<String>;
}

/// A simulated platform inside the CAS: a P-256 platform key kept in the data directory,
/// signing `sim-quote`s whose MRENCLAVE is the SHA-256 of the running executable.
#[derive(Debug)]
pub struct SimulatedPlatform {
    key: PlatformKey,
    mrenclave: MrEnclave,
}

impl SimulatedPlatform {
    /// Loads or creates the platform key at `key_path` and measures `executable`.
    pub fn open(key_path: &Path, executable: &Path) -> Result<Self, EvidenceError> {
        let key = PlatformKey::load_or_generate(key_path)?;
        let mrenclave =
            custos_attestation::sim::measure_executable(executable).map_err(|source| {
                EvidenceError::Measure {
                    path: executable.display().to_string(),
                    source,
                }
            })?;
        Ok(Self { key, mrenclave })
    }
}

impl SelfEvidence for SimulatedPlatform {
    fn evidence(&self, runtime_data: &[u8]) -> Result<Evidence, EvidenceError> {
        let bytes = self
            .key
            .create_quote(&SimReport::new(self.mrenclave, runtime_data))?;
        Ok(Evidence {
            kind: EvidenceKind::SimQuote,
            bytes,
        })
    }

    fn is_simulation(&self) -> bool {
        true
    }

    fn mrenclave(&self) -> MrEnclave {
        self.mrenclave
    }

    fn platform_public_key_pem(&self) -> Option<String> {
        Some(self.key.public_key().to_spki_pem())
    }
}

/// A CAS inside a Gramine SGX enclave: each `/v1/attest` writes the binding to Gramine's
/// `user_report_data` and answers with the DCAP quote Gramine returns. Clients verify it
/// with DCAP collateral (`custos cas attest --pccs|--collateral`).
#[derive(Debug)]
pub struct GramineEnclave {
    dir: PathBuf,
    mrenclave: MrEnclave,
    // Gramine's pseudo-files hold one report-data/quote pair per enclave: a write and the
    // read that follows must not interleave with another request's.
    lock: std::sync::Mutex<()>,
}

impl GramineEnclave {
    /// Takes a first quote from `dir` (so a CAS outside an enclave fails at start-up, naming
    /// the file) and reads the enclave's MRENCLAVE from it.
    pub fn open(dir: &Path) -> Result<Self, EvidenceError> {
        let quote = custos_attestation::gramine::sgx_quote(dir, &ReportData([0; 64]))?;
        let mrenclave = Quote::parse(&quote)
            .map_err(|e| EvidenceError::BadQuote {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?
            .body
            .mr_enclave;
        Ok(Self {
            dir: dir.to_path_buf(),
            mrenclave,
            lock: std::sync::Mutex::new(()),
        })
    }
}

impl SelfEvidence for GramineEnclave {
    fn evidence(&self, runtime_data: &[u8]) -> Result<Evidence, EvidenceError> {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let bytes =
            custos_attestation::gramine::sgx_quote(&self.dir, &ReportData::binding(runtime_data))?;
        Ok(Evidence {
            kind: EvidenceKind::SgxQuote,
            bytes,
        })
    }

    fn is_simulation(&self) -> bool {
        false
    }

    fn mrenclave(&self) -> MrEnclave {
        self.mrenclave
    }

    fn platform_public_key_pem(&self) -> Option<String> {
        None
    }
}

/// The runtime data the CAS's evidence binds: `spki ‖ nonce`.
pub fn runtime_data(spki: &[u8], nonce: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(spki.len() + nonce.len());
    out.extend_from_slice(spki);
    out.extend_from_slice(nonce);
    out
}
