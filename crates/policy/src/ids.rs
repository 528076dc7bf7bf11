//! Fixed-size binary values written in hex: hashes, measurements, key identities.

use std::fmt;
use std::str::FromStr;

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

pub(crate) fn decode_hex<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
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
    if text.len() != 2 * N {
        return Err(HexError::Length {
            expected: 2 * N,
            actual: text.chars().count(),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| HexError::Length {
        expected: 2 * N,
        actual: text.len(),
    })?;
    Ok(out)
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        ///
        /// Written as hex (either case accepted; displayed in lower case).
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

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

            /// Lower-case hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl FromStr for $name {
            type Err = HexError;
            fn from_str(s: &str) -> Result<Self, HexError> {
                decode_hex::<$len>(s).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_hex())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_id!(
    /// The session hash: SHA-256 of a session's canonical form (see [`crate::canonical_form`]).
    /// A session's identity in the CAS; `predecessor` names the version an update replaces.
    SessionHash,
    32
);

hex_id!(
    /// An SGX enclave measurement (MRENCLAVE), 32 bytes.
    MrEnclave,
    32
);

hex_id!(
    /// An SGX enclave signer's measurement (MRSIGNER: SHA-256 of the signing key's modulus), 32 bytes.
    MrSigner,
    32
);

hex_id!(
    /// The identity of a public key: SHA-256 of its DER-encoded SubjectPublicKeyInfo, 32 bytes.
    /// Used for clients in access policies and for trusted platform keys.
    PublicKeyHash,
    32
);

/// The thumbprint of an X.509 certificate: SHA-1 (20 bytes, Entra ID's `x5t`) or SHA-256
/// (32 bytes, `x5t#S256`) of its DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificateThumbprint {
    /// SHA-1 of the certificate.
    Sha1([u8; 20]),
    /// SHA-256 of the certificate.
    Sha256([u8; 32]),
}

impl FromStr for CertificateThumbprint {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, HexError> {
        if s.len() == 64 {
            decode_hex::<32>(s).map(CertificateThumbprint::Sha256)
        } else {
            decode_hex::<20>(s).map(CertificateThumbprint::Sha1)
        }
    }
}

impl CertificateThumbprint {
    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            CertificateThumbprint::Sha1(b) => b,
            CertificateThumbprint::Sha256(b) => b,
        }
    }
}

impl fmt::Display for CertificateThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.as_bytes()))
    }
}

impl fmt::Debug for CertificateThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertificateThumbprint::Sha1(_) => write!(f, "Sha1({self})"),
            CertificateThumbprint::Sha256(_) => write!(f, "Sha256({self})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_normalises_case() {
        let h: MrEnclave = "291645FC02749EF4F895DA626D1FFE9BF45D34AAD2177507844E1B87D220219F"
            .parse()
            .unwrap();
        assert_eq!(
            h.to_string(),
            "291645fc02749ef4f895da626d1ffe9bf45d34aad2177507844e1b87d220219f"
        );
    }

    #[test]
    fn hex_errors_say_what_was_expected() {
        assert_eq!(
            "abc".parse::<SessionHash>().unwrap_err(),
            HexError::Length {
                expected: 64,
                actual: 3
            }
        );
        assert_eq!(
            "zz".parse::<SessionHash>().unwrap_err(),
            HexError::NotHex {
                position: 1,
                found: 'z'
            }
        );
        assert!("é".repeat(32).parse::<SessionHash>().is_err());
    }

    #[test]
    fn thumbprints_are_sha1_or_sha256() {
        assert!(matches!(
            "00".repeat(20).parse::<CertificateThumbprint>(),
            Ok(CertificateThumbprint::Sha1(_))
        ));
        assert!(matches!(
            "00".repeat(32).parse::<CertificateThumbprint>(),
            Ok(CertificateThumbprint::Sha256(_))
        ));
        assert!("00".repeat(21).parse::<CertificateThumbprint>().is_err());
    }
}
