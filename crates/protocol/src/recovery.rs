//! The recovery API of a locked CAS (one whose master key was not released): operators fetch
//! the encrypted shares and hand over their decrypted share.

use serde::{Deserialize, Serialize};

/// `GET /v1/recovery`: the shares and how many have arrived.
pub const RECOVERY_PATH: &str = "/v1/recovery";
/// `POST /v1/recovery/share`: one decrypted share.
pub const SHARE_PATH: &str = "/v1/recovery/share";

/// One share as kept: encrypted to its operator, with what checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedShare {
    /// The share's index (1..=N).
    pub index: u8,
    /// Where the recovery key came from when the shares were made (informative).
    pub key_name: String,
    /// SHA-256 of the recovery key's SubjectPublicKeyInfo, hex.
    pub key_hash: String,
    /// RSA-OAEP-SHA256 of `index ‖ value`, base64.
    pub ciphertext: String,
    /// SHA-256 of `label ‖ index ‖ value`, hex.
    pub digest: String,
}

/// The answer to `GET /v1/recovery`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryStatus {
    /// Shares needed.
    pub threshold: usize,
    /// Distinct valid shares received so far.
    pub received: usize,
    /// Every share, encrypted to its operator.
    pub shares: Vec<EncryptedShare>,
}

/// The body of `POST /v1/recovery/share`. `Debug` does not show the share; it is zeroized
/// on drop.
#[derive(Serialize, Deserialize, zeroize::ZeroizeOnDrop)]
pub struct ShareSubmission {
    /// The decrypted share, base64 (33 bytes: index ‖ value).
    pub share: String,
}

impl std::fmt::Debug for ShareSubmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShareSubmission(redacted)")
    }
}

/// The answer to a share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareAccepted {
    /// Its index.
    pub index: u8,
    /// Distinct valid shares received so far.
    pub received: usize,
    /// Shares needed.
    pub threshold: usize,
    /// Whether the CAS has its master key now.
    pub unlocked: bool,
}
