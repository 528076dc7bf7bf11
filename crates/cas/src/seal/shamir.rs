//! Shamir's secret sharing of a 32-byte key over GF(2⁸): any `threshold` of the shares
//! rebuild the key, fewer reveal nothing about it (every value of the key is equally likely
//! given them).
//!
//! Each byte of the key is the constant term of its own random polynomial of degree
//! `threshold − 1`; share `x` (1..=255) holds the 32 polynomials' values at `x`. Rebuilding is
//! Lagrange interpolation at 0. The field is GF(2⁸) with the AES polynomial x⁸+x⁴+x³+x+1;
//! multiplication and inversion run in a fixed number of steps whatever the operands.

use zeroize::Zeroizing;

/// Bytes of a shared key.
pub const KEY_LEN: usize = 32;

/// One share: its x coordinate (1..=255) and the 32 values there.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    /// The x coordinate, never 0 (the key is the value at 0).
    pub index: u8,
    /// The polynomials' values at `index`.
    pub value: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Share({}, redacted)", self.index)
    }
}

/// Why shares were not made or not combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    /// `threshold` and `shares` out of range.
    #[error("expected 1 ≤ threshold ≤ shares ≤ 255, actual threshold {threshold} of {shares}")]
    Parameters {
        /// The threshold asked for.
        threshold: usize,
        /// The number of shares asked for.
        shares: usize,
    },
    /// Two shares with one index.
    #[error("share {0} was given twice")]
    Duplicate(u8),
    /// A share with index 0 (that is the key itself).
    #[error("share index 0 is not a share")]
    ZeroIndex,
    /// No shares.
    #[error("no shares to combine")]
    Empty,
    /// The random number generator failed.
    #[error("the random number generator failed")]
    Random,
}

/// Splits `key` into `shares` shares, any `threshold` of which rebuild it.
pub fn split(
    key: &[u8; KEY_LEN],
    threshold: usize,
    shares: usize,
) -> Result<Vec<Share>, ShamirError> {
    if threshold == 0 || threshold > shares || shares > 255 {
        return Err(ShamirError::Parameters { threshold, shares });
    }
    // coefficients[d][b]: the degree-d coefficient of byte b's polynomial; degree 0 is the key.
    let mut coefficients = Zeroizing::new(vec![[0u8; KEY_LEN]; threshold]);
    coefficients[0] = *key;
    for row in coefficients.iter_mut().skip(1) {
        aws_lc_rs::rand::fill(row).map_err(|_| ShamirError::Random)?;
    }
    let mut out = Vec::with_capacity(shares);
    for x in 1..=shares {
        let x = u8::try_from(x).map_err(|_| ShamirError::Parameters { threshold, shares })?;
        let mut value = Zeroizing::new([0u8; KEY_LEN]);
        // Horner's rule, highest degree first.
        for row in coefficients.iter().rev() {
            for (v, c) in value.iter_mut().zip(row) {
                *v = mul(*v, x) ^ c;
            }
        }
        out.push(Share { index: x, value });
    }
    Ok(out)
}

/// The key `shares` rebuild. With fewer than the threshold, or a share of another key, the
/// result is another key: callers check it (the store's key check does).
pub fn combine(shares: &[Share]) -> Result<Zeroizing<[u8; KEY_LEN]>, ShamirError> {
    if shares.is_empty() {
        return Err(ShamirError::Empty);
    }
    for (i, share) in shares.iter().enumerate() {
        if share.index == 0 {
            return Err(ShamirError::ZeroIndex);
        }
        if shares[..i].iter().any(|s| s.index == share.index) {
            return Err(ShamirError::Duplicate(share.index));
        }
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    for share in shares {
        // The Lagrange basis polynomial of this share, at 0: Π x_j / (x_j − x_i).
        let mut basis = 1u8;
        for other in shares.iter().filter(|s| s.index != share.index) {
            basis = mul(basis, mul(other.index, inverse(other.index ^ share.index)));
        }
        for (k, v) in key.iter_mut().zip(share.value.iter()) {
            *k ^= mul(*v, basis);
        }
    }
    Ok(key)
}

/// Product in GF(2⁸), in 8 steps whatever the operands.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    for _ in 0..8 {
        product ^= a & 0u8.wrapping_sub(b & 1);
        let carry = a >> 7;
        a = (a << 1) ^ (0x1b & 0u8.wrapping_sub(carry));
        b >>= 1;
    }
    product
}

/// Inverse in GF(2⁸) (a²⁵⁴; 0 for 0), by square-and-multiply over the fixed exponent.
fn inverse(a: u8) -> u8 {
    let mut result = 1u8;
    let mut power = a;
    let mut exponent = 254u8;
    for _ in 0..8 {
        let bit = exponent & 1;
        let multiplied = mul(result, power);
        result = (multiplied & 0u8.wrapping_sub(bit)) | (result & !0u8.wrapping_sub(bit));
        power = mul(power, power);
        exponent >>= 1;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> [u8; KEY_LEN] {
        std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xa5)
    }

    #[test]
    fn field_arithmetic_matches_the_aes_field() {
        // FIPS 197's worked example: {57} • {83} = {c1}.
        assert_eq!(mul(0x57, 0x83), 0xc1);
        for a in 1..=255u8 {
            assert_eq!(mul(a, inverse(a)), 1, "inverse of {a}");
        }
        assert_eq!(inverse(0), 0);
    }

    #[test]
    fn every_threshold_subset_rebuilds_the_key_and_fewer_do_not() {
        let key = key();
        let shares = split(&key, 3, 5).unwrap();
        assert_eq!(shares.len(), 5);
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    let subset = [shares[a].clone(), shares[b].clone(), shares[c].clone()];
                    assert_eq!(*combine(&subset).unwrap(), key, "shares {a}, {b}, {c}");
                }
                let two = [shares[a].clone(), shares[b].clone()];
                assert_ne!(*combine(&two).unwrap(), key, "two of three rebuild nothing");
            }
        }
        // More than the threshold rebuild it too.
        assert_eq!(*combine(&shares).unwrap(), key);
        // A share altered: another key.
        let mut bad = shares[..3].to_vec();
        bad[1].value[0] ^= 1;
        assert_ne!(*combine(&bad).unwrap(), key);
    }

    #[test]
    fn a_share_alone_says_nothing_and_splits_differ() {
        let key = key();
        let first = split(&key, 2, 3).unwrap();
        let second = split(&key, 2, 3).unwrap();
        assert_ne!(
            first[0].value, second[0].value,
            "fresh randomness each time"
        );
        assert_ne!(*first[0].value, key);
        // Threshold 1: every share is the key.
        let one = split(&key, 1, 2).unwrap();
        assert_eq!(*one[1].value, key);
    }

    #[test]
    fn bad_parameters_and_shares_are_refused() {
        let key = key();
        for (threshold, shares) in [(0, 3), (4, 3), (2, 256)] {
            assert_eq!(
                split(&key, threshold, shares).unwrap_err(),
                ShamirError::Parameters { threshold, shares }
            );
        }
        let shares = split(&key, 2, 3).unwrap();
        let twice = [shares[0].clone(), shares[0].clone()];
        assert_eq!(combine(&twice).unwrap_err(), ShamirError::Duplicate(1));
        assert_eq!(combine(&[]).unwrap_err(), ShamirError::Empty);
        let zero = Share {
            index: 0,
            value: Zeroizing::new([0; KEY_LEN]),
        };
        assert_eq!(combine(&[zero]).unwrap_err(), ShamirError::ZeroIndex);
        assert_eq!(format!("{:?}", shares[0]), "Share(1, redacted)");
    }
}
