//! Simulation evidence (`sim-quote`): SGX-quote-shaped, signed by a platform key.
//!
//! A simulated quote lets the whole system run without SGX hardware. It is evidence of
//! nothing but the word of whoever holds the platform key (a LAS on a node): it is
//! accepted only from platform keys the verifier was told to trust, it always reports a
//! debuggable enclave (so a production policy, which does not tolerate debug mode,
//! rejects it), and it can never pass as hardware evidence: its QE vendor id and
//! attestation key type are not Intel's, so DCAP verification rejects it and the SGX
//! parser refuses it.
//!
//! # Format (564 bytes, little-endian integers)
//!
//! ```text
//! 0    header (48)
//!        version        u16   3
//!        att_key_type   u16   0x8002  (SIM_ATT_KEY_TYPE: "simulated ECDSA P-256")
//!        reserved       u32   0
//!        qe_svn         u16   0
//!        pce_svn        u16   0
//!        qe_vendor_id   [16]  ASCII "CUSTOS-SIMULATED" (SIM_QE_VENDOR_ID)
//!        user_data      [20]  0
//! 48   report body (384)      the SGX report body layout (crate::quote::ReportBody);
//!                             attributes.flags has DEBUG (0x02) set: creators write 0x07
//!                             (INIT | DEBUG | MODE64BIT), xfrm 0x03; mr_enclave is the
//!                             SHA-256 of the executable (`custos mrenclave FILE`)
//! 432  signature_data_len u32 128
//! 436  signature [64]         ECDSA P-256 with SHA-256 over bytes 0..432, r ‖ s (32 bytes each, big-endian)
//! 500  platform key [64]      the signer's public key, x ‖ y (32 bytes each, big-endian)
//! ```
//!
//! A platform's public key is exchanged as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo, DER
//! in base64); its id is its [`KeyHash`]: the SHA-256 of that DER, in hex. Verifiers
//! trust platform keys by id.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    ParsedPublicKey,
};
use custos_ids::spki::{P256Point, P256SpkiError, p256_point, p256_spki};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use zeroize::Zeroizing;

use custos_ids::{KeyHash, MrEnclave, MrSigner};

use crate::claims::{Claims, EvidenceKind, ReportData, Tcb, TcbStatus, VerifiedBy};
use crate::error::ParseError;
use crate::quote::{QuoteHeader, QuoteLayout, ReportBody, SIGNED_LEN};

/// QE vendor id of simulated quotes: ASCII `CUSTOS-SIMULATED`.
pub const SIM_QE_VENDOR_ID: [u8; 16] = *b"CUSTOS-SIMULATED";
/// Attestation key type of simulated quotes: the ECDSA P-256 type (2) with the high bit
/// set, a value Intel does not define.
pub const SIM_ATT_KEY_TYPE: u16 = 0x8002;
/// Length of the signature data of a simulated quote: signature and public key.
pub const SIM_SIGNATURE_DATA_LEN: usize = 128;
/// Total length of a simulated quote.
pub const SIM_QUOTE_LEN: usize = SIGNED_LEN + 4 + SIM_SIGNATURE_DATA_LEN;
/// Attribute flags written by [`PlatformKey::create_quote`]: INIT | DEBUG | MODE64BIT.
pub const SIM_ATTRIBUTES_FLAGS: u64 = 0x07;
/// XFRM written by [`PlatformKey::create_quote`]: x87 and SSE state.
pub const SIM_ATTRIBUTES_XFRM: u64 = 0x03;

/// Why simulation evidence or a platform key was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The bytes are not quote-shaped.
    #[error("simulated quote is malformed: {0}")]
    Parse(#[from] ParseError),
    /// A quote, but not a simulated one (e.g. a real SGX quote).
    #[error(
        "not a simulated quote: expected QE vendor id {expected_vendor} and attestation key type {expected_key_type:#06x}, found {found_vendor} and {found_key_type:#06x}"
    )]
    NotSimulated {
        /// The simulation vendor id, hex.
        expected_vendor: String,
        /// [`SIM_ATT_KEY_TYPE`].
        expected_key_type: u16,
        /// The quote's vendor id, hex.
        found_vendor: String,
        /// The quote's key type.
        found_key_type: u16,
    },
    /// A header field that must be fixed in simulated quotes has another value.
    #[error("simulated quote {field}: expected {expected}, found {found}")]
    Header {
        /// The field.
        field: &'static str,
        /// Its required value.
        expected: String,
        /// The quote's value.
        found: String,
    },
    /// Simulated quotes always declare a debuggable enclave.
    #[error(
        "simulated quote attributes: expected the DEBUG flag (0x02) set, found flags {flags:#x}"
    )]
    NotDebug {
        /// The quote's attribute flags.
        flags: u64,
    },
    /// The signing platform key is not among the trusted ones.
    #[error(
        "simulated quote signed by untrusted platform key {key_id} ({trusted} platform keys trusted)"
    )]
    UntrustedPlatform {
        /// The id of the key in the quote.
        key_id: KeyHash,
        /// How many keys the verifier trusts.
        trusted: usize,
    },
    /// The embedded key is not a valid P-256 point.
    #[error("simulated quote platform key is not a valid P-256 public key")]
    InvalidPlatformKey,
    /// The signature does not verify under the embedded (trusted) key.
    #[error("simulated quote signature does not verify under platform key {key_id}")]
    BadSignature {
        /// The key that should have signed.
        key_id: KeyHash,
    },
    /// A platform key file could not be read or written.
    #[error("platform key file {}: {source}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A private or public key is not a P-256 key in the documented encoding.
    #[error("{what}: {reason}")]
    KeyEncoding {
        /// Which key or file.
        what: String,
        /// What is wrong (never key material).
        reason: &'static str,
    },
    /// The system random generator or signer failed.
    #[error("platform key operation failed: {0}")]
    Crypto(&'static str),
}

/// The public half of a platform key: a P-256 point.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlatformPublicKey {
    /// x ‖ y, 32 bytes each, big-endian.
    xy: P256Point,
}

impl PlatformPublicKey {
    /// From the 64-byte x ‖ y form used inside simulated quotes. The point is checked
    /// when a signature is verified, not here.
    pub fn from_xy(xy: P256Point) -> Self {
        Self { xy }
    }

    /// x ‖ y.
    pub fn xy(&self) -> &P256Point {
        &self.xy
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn to_spki_der(&self) -> Vec<u8> {
        p256_spki(&self.xy)
    }

    /// PEM `PUBLIC KEY`: the documented exchange format (`GET /v1/platform` of the LAS).
    pub fn to_spki_pem(&self) -> String {
        custos_ids::pem::encode("PUBLIC KEY", &self.to_spki_der())
    }

    /// From a P-256 SubjectPublicKeyInfo DER with an uncompressed point.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, SimError> {
        let encoding_error = |reason| SimError::KeyEncoding {
            what: "platform public key".into(),
            reason,
        };
        let xy = p256_point(der).map_err(|e| match e {
            P256SpkiError::NotP256 => {
                encoding_error("not a P-256 SubjectPublicKeyInfo with an uncompressed point")
            }
            P256SpkiError::Length(_) => encoding_error("wrong SubjectPublicKeyInfo length"),
        })?;
        let key = Self { xy: *xy };
        // Reject points not on the curve now rather than at first use.
        ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.sec1())
            .map_err(|_| encoding_error("not a valid P-256 point"))?;
        Ok(key)
    }

    /// From a PEM `PUBLIC KEY`.
    pub fn from_spki_pem(pem: &[u8]) -> Result<Self, SimError> {
        let der =
            SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|_| SimError::KeyEncoding {
                what: "platform public key".into(),
                reason: "no PEM PUBLIC KEY block",
            })?;
        Self::from_spki_der(der.as_ref())
    }

    /// SHA-256 of the SubjectPublicKeyInfo DER.
    pub fn id(&self) -> KeyHash {
        KeyHash::of_spki(&self.to_spki_der())
    }

    /// SEC1 uncompressed point: 0x04 ‖ x ‖ y.
    fn sec1(&self) -> [u8; 65] {
        let mut out = [0x04; 65];
        if let Some(rest) = out.get_mut(1..) {
            rest.copy_from_slice(&self.xy);
        }
        out
    }
}

impl fmt::Debug for PlatformPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlatformPublicKey({})", self.id())
    }
}

/// A platform's P-256 signing key (kept by the LAS in its data directory).
///
/// The private key never appears in `Debug` output or errors and is zeroized on drop.
pub struct PlatformKey {
    key_pair: EcdsaKeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for PlatformKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PlatformKey({}, private key redacted)",
            self.public_key().id()
        )
    }
}

impl PlatformKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, SimError> {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| SimError::Crypto("key generation failed"))?;
        Self::from_pkcs8_der(doc.as_ref(), "generated key")
    }

    /// From PKCS#8 DER.
    pub fn from_pkcs8_der(der: &[u8], what: &str) -> Result<Self, SimError> {
        let key_pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(|_| {
                SimError::KeyEncoding {
                    what: what.to_owned(),
                    reason: "not a PKCS#8 P-256 private key",
                }
            })?;
        Ok(Self {
            key_pair,
            pkcs8: Zeroizing::new(der.to_vec()),
        })
    }

    /// From a PEM `PRIVATE KEY` (PKCS#8).
    pub fn from_pkcs8_pem(pem: &[u8], what: &str) -> Result<Self, SimError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|_| SimError::KeyEncoding {
            what: what.to_owned(),
            reason: "no PEM PRIVATE KEY (PKCS#8) block",
        })?;
        Self::from_pkcs8_der(der.secret_pkcs8_der(), what)
    }

    /// PEM `PRIVATE KEY` (PKCS#8), zeroized on drop.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        custos_ids::pem::encode_secret("PRIVATE KEY", &self.pkcs8)
    }

    /// Reads a key saved by [`PlatformKey::save`].
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let pem = Zeroizing::new(std::fs::read(path).map_err(|source| SimError::KeyFile {
            path: path.to_owned(),
            source,
        })?);
        Self::from_pkcs8_pem(&pem, &format!("platform key file {}", path.display()))
    }

    /// Writes the key as PKCS#8 PEM, readable by the owner only, replacing the file
    /// atomically.
    pub fn save(&self, path: &Path) -> Result<(), SimError> {
        let file_error = |source| SimError::KeyFile {
            path: path.to_owned(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(file_error)?;
        file.write_all(self.to_pkcs8_pem().as_bytes())
            .map_err(file_error)?;
        file.sync_all().map_err(file_error)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(file_error)
    }

    /// Loads the key at `path`, or generates and saves one if there is no file.
    pub fn load_or_generate(path: &Path) -> Result<Self, SimError> {
        match std::fs::metadata(path) {
            Ok(_) => Self::load(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                key.save(path)?;
                Ok(key)
            }
            Err(source) => Err(SimError::KeyFile {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The public key.
    pub fn public_key(&self) -> PlatformPublicKey {
        let sec1 = self.key_pair.public_key().as_ref();
        let mut xy = [0u8; 64];
        if let Some(point) = sec1.get(1..65) {
            xy.copy_from_slice(point);
        }
        PlatformPublicKey { xy }
    }

    /// Creates a simulated quote for `report`, signed by this key (see the module
    /// documentation for the format).
    pub fn create_quote(&self, report: &SimReport) -> Result<Vec<u8>, SimError> {
        let header = QuoteHeader {
            version: 3,
            att_key_type: SIM_ATT_KEY_TYPE,
            tee_type: 0,
            qe_svn: 0,
            pce_svn: 0,
            qe_vendor_id: SIM_QE_VENDOR_ID,
            user_data: [0; 20],
        };
        let body = ReportBody {
            cpu_svn: [0; 16],
            misc_select: 0,
            isv_ext_prod_id: [0; 16],
            attributes_flags: SIM_ATTRIBUTES_FLAGS,
            attributes_xfrm: SIM_ATTRIBUTES_XFRM,
            mr_enclave: report.mrenclave,
            mr_signer: report.mrsigner,
            config_id: [0; 64],
            isv_prod_id: report.isvprodid,
            isv_svn: report.isvsvn,
            config_svn: 0,
            isv_family_id: [0; 16],
            report_data: report.report_data,
        };
        let mut quote = Vec::with_capacity(SIM_QUOTE_LEN);
        quote.extend_from_slice(&header.to_bytes());
        quote.extend_from_slice(&body.to_bytes());
        let signature = self
            .key_pair
            .sign(&SystemRandom::new(), &quote)
            .map_err(|_| SimError::Crypto("signing failed"))?;
        quote.extend_from_slice(&(SIM_SIGNATURE_DATA_LEN as u32).to_le_bytes());
        quote.extend_from_slice(signature.as_ref());
        quote.extend_from_slice(self.public_key().xy());
        Ok(quote)
    }
}

/// What a simulated quote asserts about the enclave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimReport {
    /// SHA-256 of the executable ([`measure_executable`]).
    pub mrenclave: MrEnclave,
    /// The signer identity to report (zero when there is none).
    pub mrsigner: MrSigner,
    /// ISV product id.
    pub isvprodid: u16,
    /// ISV security version.
    pub isvsvn: u16,
    /// Report data: `SHA-256(runtime_data) ‖ 0^32` by Custos convention ([`ReportData::binding`]).
    pub report_data: ReportData,
}

impl SimReport {
    /// A report for `mrenclave` binding `runtime_data`, with zero signer, product id and SVN.
    pub fn new(mrenclave: MrEnclave, runtime_data: &[u8]) -> Self {
        Self {
            mrenclave,
            mrsigner: MrSigner([0; 32]),
            isvprodid: 0,
            isvsvn: 0,
            report_data: ReportData::binding(runtime_data),
        }
    }
}

/// A parsed simulated quote; its signature is not checked yet.
#[derive(Debug, Clone, Copy)]
pub struct SimQuote<'a> {
    /// The header.
    pub header: QuoteHeader,
    /// The report body.
    pub body: ReportBody,
    /// The signed bytes (header and body).
    pub signed: &'a [u8],
    /// The signature, r ‖ s.
    pub signature: &'a [u8; 64],
    /// The platform key that claims to have signed.
    pub platform_key: PlatformPublicKey,
}

impl<'a> SimQuote<'a> {
    /// Parses a simulated quote, checking its fixed fields.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, SimError> {
        Self::from_layout(QuoteLayout::parse(bytes)?)
    }

    /// Parses the simulation part of an already split quote.
    pub fn from_layout(layout: QuoteLayout<'a>) -> Result<Self, SimError> {
        let QuoteLayout {
            header,
            body,
            signed,
            signature_data,
        } = layout;
        if header.qe_vendor_id != SIM_QE_VENDOR_ID || header.att_key_type != SIM_ATT_KEY_TYPE {
            return Err(SimError::NotSimulated {
                expected_vendor: hex::encode(SIM_QE_VENDOR_ID),
                expected_key_type: SIM_ATT_KEY_TYPE,
                found_vendor: hex::encode(header.qe_vendor_id),
                found_key_type: header.att_key_type,
            });
        }
        let fixed: [(&'static str, u64, u64); 4] = [
            ("version", 3, header.version.into()),
            ("reserved (tee_type)", 0, header.tee_type.into()),
            ("qe_svn", 0, header.qe_svn.into()),
            ("pce_svn", 0, header.pce_svn.into()),
        ];
        for (field, expected, found) in fixed {
            if expected != found {
                return Err(SimError::Header {
                    field,
                    expected: expected.to_string(),
                    found: found.to_string(),
                });
            }
        }
        if header.user_data != [0; 20] {
            return Err(SimError::Header {
                field: "user_data",
                expected: "20 zero bytes".into(),
                found: hex::encode(header.user_data),
            });
        }
        if !body.is_debug() {
            return Err(SimError::NotDebug {
                flags: body.attributes_flags,
            });
        }
        let (signature, key) = signature_data
            .split_first_chunk::<64>()
            .and_then(|(sig, rest)| Some((sig, <&[u8; 64]>::try_from(rest).ok()?)))
            .ok_or(SimError::Header {
                field: "signature_data_len",
                expected: SIM_SIGNATURE_DATA_LEN.to_string(),
                found: signature_data.len().to_string(),
            })?;
        Ok(Self {
            header,
            body,
            signed,
            signature,
            platform_key: PlatformPublicKey::from_xy(*key),
        })
    }

    /// Checks the platform key is trusted and the signature verifies; returns the claims.
    pub fn verify(&self, trusted: &TrustedPlatforms) -> Result<Claims, SimError> {
        let key_id = self.platform_key.id();
        if !trusted.contains(&key_id) {
            return Err(SimError::UntrustedPlatform {
                key_id,
                trusted: trusted.len(),
            });
        }
        let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.platform_key.sec1())
            .map_err(|_| SimError::InvalidPlatformKey)?;
        key.verify_sig(self.signed, self.signature)
            .map_err(|_| SimError::BadSignature { key_id })?;
        let mut claims = Claims::from_report_body(
            EvidenceKind::SimQuote,
            VerifiedBy::Simulation { platform: key_id },
            &self.body,
            Tcb {
                status: TcbStatus::NotApplicable,
                advisory_ids: Vec::new(),
            },
        );
        claims.debug = true;
        Ok(claims)
    }
}

/// Whether a quote header claims to be simulated: it carries either simulation marker.
/// (A quote with only one of them is then rejected by [`SimQuote::parse`]; it is never
/// handed to a hardware verifier.)
pub fn claims_simulation(header: &QuoteHeader) -> bool {
    header.qe_vendor_id == SIM_QE_VENDOR_ID || header.att_key_type == SIM_ATT_KEY_TYPE
}

/// Parses and verifies a simulated quote against trusted platform keys. The result
/// always has `debug = true`, TCB status `NotApplicable` and
/// `verified_by = Simulation { platform }`.
///
/// This checks authenticity only; binding to runtime data is checked by
/// [`SimQuoteVerifier`] (through [`crate::Verifier`]) or [`crate::check_binding`].
pub fn verify_sim_quote(quote: &[u8], trusted: &TrustedPlatforms) -> Result<Claims, SimError> {
    SimQuote::parse(quote)?.verify(trusted)
}

/// The platform keys a verifier trusts, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedPlatforms {
    ids: BTreeSet<KeyHash>,
}

impl TrustedPlatforms {
    /// Trusts nothing: every simulated quote is rejected.
    pub fn none() -> Self {
        Self::default()
    }

    /// Trusts these key ids.
    pub fn from_ids(ids: impl IntoIterator<Item = KeyHash>) -> Self {
        Self {
            ids: ids.into_iter().collect(),
        }
    }

    /// Adds a key.
    pub fn trust(&mut self, key: &PlatformPublicKey) {
        self.ids.insert(key.id());
    }

    /// Adds a key id.
    pub fn trust_id(&mut self, id: KeyHash) {
        self.ids.insert(id);
    }

    /// Whether `id` is trusted.
    pub fn contains(&self, id: &KeyHash) -> bool {
        self.ids.contains(id)
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Verifies `sim-quote` evidence against trusted platform keys (see [`crate::Verifier`]).
#[derive(Debug, Clone)]
pub struct SimQuoteVerifier {
    trusted: TrustedPlatforms,
}

impl SimQuoteVerifier {
    /// A verifier trusting these platform keys.
    pub fn new(trusted: TrustedPlatforms) -> Self {
        Self { trusted }
    }
}

impl crate::Verifier for SimQuoteVerifier {
    fn kind(&self) -> EvidenceKind {
        EvidenceKind::SimQuote
    }

    fn verify(
        &self,
        evidence: &[u8],
        runtime_data: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<Claims, crate::VerifyError> {
        let claims = verify_sim_quote(evidence, &self.trusted)?;
        crate::check_binding(claims, runtime_data)
    }
}

/// The simulation measurement of an executable: SHA-256 of its bytes.
pub fn measure_executable(path: &Path) -> io::Result<MrEnclave> {
    let mut file = std::fs::File::open(path)?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
            break;
        };
        ctx.update(chunk);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(MrEnclave(out))
}
