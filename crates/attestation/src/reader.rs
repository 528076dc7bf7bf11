//! A bounds-checked cursor over untrusted bytes.
//!
//! Every read names the field it is for, so a truncated input is reported as
//! "`qe_auth_data`: needs 32 bytes, 7 left" rather than an index panic. Nothing here
//! allocates: fields borrow from the input.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use crate::error::ParseError;

/// A forward-only cursor over a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    /// Offset of `rest` in the original input, for error messages.
    offset: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            offset: 0,
        }
    }

    /// Bytes not yet consumed.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn bytes(
        &mut self,
        field: &'static str,
        len: usize,
    ) -> Result<&'a [u8], ParseError> {
        let Some((head, tail)) = self.rest.split_at_checked(len) else {
            return Err(ParseError::Truncated {
                field,
                offset: self.offset,
                needed: len,
                available: self.rest.len(),
            });
        };
        self.rest = tail;
        self.offset = self.offset.saturating_add(len);
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<&'a [u8; N], ParseError> {
        let bytes = self.bytes(field, N)?;
        // `bytes` has exactly N elements, so the conversion cannot fail.
        bytes.try_into().map_err(|_| ParseError::Truncated {
            field,
            offset: self.offset,
            needed: N,
            available: bytes.len(),
        })
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ParseError> {
        self.array::<2>(field).map(|b| u16::from_le_bytes(*b))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ParseError> {
        self.array::<4>(field).map(|b| u32::from_le_bytes(*b))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ParseError> {
        self.array::<8>(field).map(|b| u64::from_le_bytes(*b))
    }

    /// A length-prefixed field whose length was read as a wider integer.
    pub(crate) fn bytes_with_len(
        &mut self,
        field: &'static str,
        len: u64,
    ) -> Result<&'a [u8], ParseError> {
        // A length larger than the input cannot be satisfied; report it without
        // converting a huge u64 into usize on 32-bit targets.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.bytes(field, len)
    }

    /// Fails if any input is left: formats here are exact, trailing bytes are an error.
    pub(crate) fn finish(self, field: &'static str) -> Result<(), ParseError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ParseError::TrailingBytes {
                field,
                offset: self.offset,
                count: self.rest.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_reports_truncation_with_offsets() {
        let mut r = Reader::new(&[1, 0, 2, 0, 0, 0, 9]);
        assert_eq!(r.u16("a").unwrap(), 1);
        assert_eq!(r.u32("b").unwrap(), 2);
        let err = r.u16("c").unwrap_err();
        assert_eq!(
            err,
            ParseError::Truncated {
                field: "c",
                offset: 6,
                needed: 2,
                available: 1
            }
        );
        let err = r.clone().bytes_with_len("d", u64::MAX).unwrap_err();
        assert!(matches!(
            err,
            ParseError::Truncated {
                field: "d",
                available: 1,
                ..
            }
        ));
        assert_eq!(r.remaining(), 1);
        assert!(matches!(
            r.finish("e"),
            Err(ParseError::TrailingBytes { count: 1, .. })
        ));
    }
}
