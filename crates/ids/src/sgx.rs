//! SGX enclave identities: measurements, and the MAA enclaves trusted to sign tokens.

use std::fmt;

crate::hex_id!(
    /// MRENCLAVE: the SHA-256 measurement of an enclave's initial contents, 32 bytes. In
    /// simulation, the SHA-256 of the executable that `custos-run` execs (`custos mrenclave
    /// FILE`).
    MrEnclave,
    32
);

crate::hex_id!(
    /// MRSIGNER: the SHA-256 of the modulus of the key that signed the enclave, 32 bytes.
    MrSigner,
    32
);

/// An MAA enclave identity trusted to sign tokens (a `trusted_maa_enclaves` entry of a
/// session or of the CAS's configuration). Every condition given must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedMaaEnclave {
    /// MRSIGNER (required).
    pub mrsigner: MrSigner,
    /// If given: the exact MRENCLAVE.
    pub mrenclave: Option<MrEnclave>,
    /// If given: the exact ISVPRODID.
    pub isvprodid: Option<u16>,
    /// If given: the smallest ISVSVN admitted.
    pub min_isvsvn: Option<u16>,
    /// Whether a debug MAA enclave is admitted (`debug_allowed`, default false).
    pub debug_allowed: bool,
}

impl fmt::Display for TrustedMaaEnclave {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{mrsigner {}", self.mrsigner)?;
        if let Some(m) = self.mrenclave {
            write!(f, ", mrenclave {m}")?;
        }
        if let Some(p) = self.isvprodid {
            write!(f, ", isvprodid {p}")?;
        }
        if let Some(s) = self.min_isvsvn {
            write!(f, ", isvsvn >= {s}")?;
        }
        let debug = if self.debug_allowed {
            "debug allowed"
        } else {
            "production only"
        };
        write!(f, ", {debug}}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurements_normalise_case() {
        let h: MrEnclave = "291645FC02749EF4F895DA626D1FFE9BF45D34AAD2177507844E1B87D220219F"
            .parse()
            .unwrap();
        assert_eq!(
            h.to_string(),
            "291645fc02749ef4f895da626d1ffe9bf45d34aad2177507844e1b87d220219f"
        );
        assert_eq!(
            "abcd".parse::<MrSigner>().unwrap_err().to_string(),
            "expected 64 hexadecimal digits, found 4 characters"
        );
    }

    #[test]
    fn a_trusted_maa_enclave_shows_every_condition() {
        let only_signer = TrustedMaaEnclave {
            mrsigner: MrSigner([0xab; 32]),
            mrenclave: None,
            isvprodid: None,
            min_isvsvn: None,
            debug_allowed: false,
        };
        assert_eq!(
            only_signer.to_string(),
            format!("{{mrsigner {}, production only}}", "ab".repeat(32))
        );
        let all = TrustedMaaEnclave {
            mrenclave: Some(MrEnclave([0xcd; 32])),
            isvprodid: Some(1),
            min_isvsvn: Some(2),
            debug_allowed: true,
            ..only_signer
        };
        assert_eq!(
            all.to_string(),
            format!(
                "{{mrsigner {}, mrenclave {}, isvprodid 1, isvsvn >= 2, debug allowed}}",
                "ab".repeat(32),
                "cd".repeat(32)
            )
        );
    }
}
