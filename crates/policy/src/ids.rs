//! The session language's own hex values: the session hash and certificate thumbprints.
//! Key hashes and enclave measurements are `custos_ids`'s, shared with every crate.

use std::fmt;
use std::str::FromStr;

use custos_ids::HexError;
use custos_ids::hex::decode;

custos_ids::hex_id!(
    /// The session hash: SHA-256 of a session's canonical form (see [`crate::canonical_form`]).
    /// A session's identity in the CAS; `predecessor` names the version an update replaces.
    SessionHash,
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
            decode::<32>(s).map(CertificateThumbprint::Sha256)
        } else {
            decode::<20>(s).map(CertificateThumbprint::Sha1)
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
    fn the_session_hash_is_a_hex_id() {
        let hash: SessionHash = "AB".repeat(32).parse().unwrap();
        assert_eq!(hash.to_string(), "ab".repeat(32));
        assert_eq!(
            "abc".parse::<SessionHash>().unwrap_err(),
            HexError::Length {
                expected: 64,
                actual: 3
            }
        );
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
