//! Open Enclave remote reports: a 16-byte header followed by an SGX quote.
//!
//! ```text
//! 0   version u32      1
//! 4   report_type u32  2 (OE_REPORT_TYPE_SGX_REMOTE)
//! 8   report_size u64  the length of the quote that follows
//! 16  quote            an SGX ECDSA quote (see `crate::quote`)
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use crate::error::ParseError;
use crate::quote::Quote;
use crate::reader::Reader;

/// Header length.
pub const OE_HEADER_LEN: usize = 16;
/// The only header version.
pub const OE_REPORT_VERSION: u32 = 1;
/// Report type of a remote (quote-bearing) SGX report.
pub const OE_REPORT_TYPE_SGX_REMOTE: u32 = 2;

/// A parsed Open Enclave remote report.
#[derive(Debug, Clone, Copy)]
pub struct OeReport<'a> {
    /// The embedded SGX quote bytes (what MAA verifies; its hash is not the report's).
    pub quote_bytes: &'a [u8],
    /// The embedded quote, parsed.
    pub quote: Quote<'a>,
}

impl<'a> OeReport<'a> {
    /// Parses the header and the embedded quote. The declared size must match exactly.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new(bytes);
        let version = r.u32("oe.version")?;
        if version != OE_REPORT_VERSION {
            return Err(ParseError::OeHeader {
                field: "version",
                expected: OE_REPORT_VERSION,
                found: version.into(),
            });
        }
        let report_type = r.u32("oe.report_type")?;
        if report_type != OE_REPORT_TYPE_SGX_REMOTE {
            return Err(ParseError::OeHeader {
                field: "report_type",
                expected: OE_REPORT_TYPE_SGX_REMOTE,
                found: report_type.into(),
            });
        }
        let declared = r.u64("oe.report_size")?;
        let actual = r.remaining();
        if u64::try_from(actual).ok() != Some(declared) {
            return Err(ParseError::OeSizeMismatch { declared, actual });
        }
        let quote_bytes = r.bytes("oe.quote", actual)?;
        let quote = Quote::parse(quote_bytes).map_err(|e| offset_by(e, OE_HEADER_LEN))?;
        Ok(Self { quote_bytes, quote })
    }

    /// Whether `bytes` start like an OE report (version 1 header) rather than a quote
    /// (whose first u16 is its version, 3 or 4, followed by a key type).
    pub fn looks_like(bytes: &[u8]) -> bool {
        bytes.get(..4) == Some(&OE_REPORT_VERSION.to_le_bytes()[..])
    }
}

/// Makes offsets of errors in the embedded quote relative to the whole report.
fn offset_by(err: ParseError, by: usize) -> ParseError {
    match err {
        ParseError::Truncated {
            field,
            offset,
            needed,
            available,
        } => ParseError::Truncated {
            field,
            offset: offset.saturating_add(by),
            needed,
            available,
        },
        ParseError::TrailingBytes {
            field,
            offset,
            count,
        } => ParseError::TrailingBytes {
            field,
            offset: offset.saturating_add(by),
            count,
        },
        other => other,
    }
}
