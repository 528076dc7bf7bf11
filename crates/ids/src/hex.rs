//! Fixed-size binary values written in hex: one error type, one decoder and the
//! [`hex_id!`](crate::hex_id) newtype every hash, measurement and key identity is made with.

/// Why a text is not the hex value expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// Wrong number of hex digits.
    #[error("expected {expected} hexadecimal digits, found {actual} characters")]
    Length {
        /// Digits expected (twice the byte length).
        expected: usize,
        /// Characters found.
        actual: usize,
    },
    /// A character that is not a hex digit.
    #[error("expected hexadecimal digits, found {found:?} at position {position}")]
    NotHex {
        /// 1-based position of the first offending character.
        position: usize,
        /// The character.
        found: char,
    },
}

/// Decodes exactly `N` bytes written as `2 * N` hex digits of either case.
pub fn decode<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    if let Some((i, c)) = text
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_hexdigit())
    {
        return Err(HexError::NotHex {
            position: i + 1,
            found: c,
        });
    }
    // Only ASCII digits are left, so bytes are characters.
    let length_error = HexError::Length {
        expected: 2 * N,
        actual: text.len(),
    };
    if text.len() != 2 * N {
        return Err(length_error);
    }
    let mut out = [0u8; N];
    ::hex::decode_to_slice(text, &mut out).map_err(|_| length_error)?;
    Ok(out)
}

/// Defines a fixed-size value written in hex: `hex_id!(/// docs… Name, 32);`.
///
/// It parses either case ([`HexError`] says what is wrong), displays and serializes as
/// lower-case hex (serde as a string; a deserialization error names the type), and shows as
/// `Name(hex)` in `Debug`. Every byte string of the length is a valid value, so the bytes
/// are public.
#[macro_export]
macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        ///
        /// Written as hex (either case accepted; displayed in lower case).
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// From raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                $name(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lower-case hex. By reference, so it maps over iterators of references.
            #[allow(clippy::wrong_self_convention)]
            pub fn to_hex(&self) -> ::std::string::String {
                $crate::__private::hex::encode(self.0)
            }
        }

        impl ::std::convert::From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                $name(bytes)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::HexError;
            fn from_str(s: &str) -> ::std::result::Result<Self, $crate::HexError> {
                $crate::hex::decode::<$len>(s).map($name)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_hex())
            }
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S: $crate::__private::serde::Serializer>(
                &self,
                s: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(
                d: D,
            ) -> ::std::result::Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as $crate::__private::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(|e: $crate::HexError| {
                    <D::Error as $crate::__private::serde::de::Error>::custom(
                        format_args!(concat!(stringify!($name), ": {}"), e),
                    )
                })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::hex_id!(
        /// A 4-byte value for these tests.
        Tag,
        4
    );

    #[test]
    fn either_case_parses_and_lower_case_is_written() {
        let tag: Tag = "DEADbeef".parse().unwrap();
        assert_eq!(Tag::LEN, 4);
        assert_eq!(tag.as_bytes(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(tag.to_string(), "deadbeef");
        assert_eq!(format!("{tag:?}"), "Tag(deadbeef)");
        assert_eq!(serde_json::to_string(&tag).unwrap(), "\"deadbeef\"");
        assert_eq!(
            serde_json::from_str::<Tag>("\"DEADBEEF\"").unwrap(),
            Tag::from_bytes([0xde, 0xad, 0xbe, 0xef])
        );
    }

    #[test]
    fn errors_say_how_many_digits_were_expected_and_found() {
        assert_eq!(
            "abc".parse::<Tag>().unwrap_err(),
            HexError::Length {
                expected: 8,
                actual: 3
            }
        );
        assert_eq!(
            "abc".parse::<Tag>().unwrap_err().to_string(),
            "expected 8 hexadecimal digits, found 3 characters"
        );
        assert_eq!(
            "zz".parse::<Tag>().unwrap_err(),
            HexError::NotHex {
                position: 1,
                found: 'z'
            }
        );
        assert!(matches!(
            "é".repeat(4).parse::<Tag>(),
            Err(HexError::NotHex { position: 1, .. })
        ));
        // Whitespace is not trimmed: callers that read files trim what they read.
        assert!(" deadbeef".parse::<Tag>().is_err());
    }

    #[test]
    fn a_deserialization_error_names_the_type() {
        let error = serde_json::from_str::<Tag>("\"abcd\"").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("Tag: expected 8 hexadecimal digits, found 4 characters"),
            "{error}"
        );
    }
}
