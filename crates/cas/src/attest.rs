//! The CAS's own evidence: proof to a client that it talks to a CAS running the expected
//! code, bound to the CAS's TLS key.
//!
//! `GET /v1/attest?nonce=N` answers with evidence whose runtime data is
//! `SPKI ‖ N` (the CAS certificate's SubjectPublicKeyInfo DER, then the nonce bytes), so
//! `report_data[0..32] = SHA-256(SPKI ‖ N)`. A client that checks the evidence and the binding
//! may pin that key. Where the evidence comes from sits behind [`EvidenceSource`]: today a
//! simulated platform in the CAS process ([`SimulatedPlatform`]); later a LAS or the TEE.

use std::fmt;
use std::path::Path;

use custos_attestation::claims::{EvidenceKind, MrEnclave};
use custos_attestation::sim::{PlatformKey, SimError, SimReport};

/// Why evidence could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The simulated platform failed.
    #[error("simulated platform: {0}")]
    Sim(#[from] SimError),
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
pub trait EvidenceSource: Send + Sync + fmt::Debug {
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

impl EvidenceSource for SimulatedPlatform {
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

/// The runtime data the CAS's evidence binds: `spki ‖ nonce`.
pub fn runtime_data(spki: &[u8], nonce: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(spki.len() + nonce.len());
    out.extend_from_slice(spki);
    out.extend_from_slice(nonce);
    out
}
