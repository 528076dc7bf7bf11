//! Errors of the evidence parsers.
//!
//! Verification errors live next to their verifiers ([`crate::sim::SimError`],
//! [`crate::dcap::DcapError`], [`crate::maa::MaaError`]) and are gathered in
//! [`crate::VerifyError`].

/// Why bytes are not a well-formed quote or report. Offsets are from the start of the
/// parsed input (for an OE report: from the start of the report, header included).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The input ends inside a field.
    #[error("{field} at offset {offset}: needs {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where it starts.
        offset: usize,
        /// Its length.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// Bytes are left after a structure whose length is fixed or declared.
    #[error("{count} unexpected trailing bytes after {field} at offset {offset}")]
    TrailingBytes {
        /// The structure that should have ended the input.
        field: &'static str,
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        count: usize,
    },
    /// The quote version is not 3 or 4.
    #[error("quote version: expected 3 or 4, found {0}")]
    UnsupportedQuoteVersion(u16),
    /// A version 4 quote for another TEE (e.g. TDX, 0x81).
    #[error("quote TEE type: expected 0x00000000 (SGX), found {0:#010x}")]
    UnsupportedTeeType(u32),
    /// The attestation key type is not ECDSA P-256 (2) nor the simulation marker.
    #[error("attestation key type: expected 2 (ECDSA-256-with-P-256), found {0}")]
    UnsupportedAttestationKeyType(u16),
    /// The certification data type is not one this parser understands.
    #[error("{field}: certification data type {found} is not supported here (expected {expected})")]
    UnexpectedCertificationDataType {
        /// Which certification data (outer or nested).
        field: &'static str,
        /// What the format requires at this place.
        expected: &'static str,
        /// What the quote has.
        found: u16,
    },
    /// An Open Enclave report header field has an unsupported value.
    #[error("Open Enclave report {field}: expected {expected}, found {found}")]
    OeHeader {
        /// `version` or `report_type`.
        field: &'static str,
        /// The supported value.
        expected: u32,
        /// The value in the report.
        found: u64,
    },
    /// The OE header's size does not match the quote that follows it.
    #[error("Open Enclave report size: header says {declared} bytes, {actual} bytes follow")]
    OeSizeMismatch {
        /// The size in the header.
        declared: u64,
        /// The bytes after the header.
        actual: usize,
    },
}
