//! Sealing: every value the CAS writes to disk is encrypted and authenticated under a key
//! derived from the master key, bound to the record it belongs to.
//!
//! The master key comes from a [`KeyProvider`]. Today that is a key file in the data
//! directory ([`KeyFile`], generated on first start, mode 0600); a later key-release backend
//! (a TEE sealing key, a KMS) implements the same trait.
//!
//! Sealed format: `0x01 ‖ nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16)`. The associated
//! data is what the caller binds the value to — the store passes the record's address and,
//! for sessions and secrets, their revision and session hash — so a sealed value copied into
//! another record, or put back from an older state, does not open. Nonces are random (96 bits): the key must not
//! seal more than 2³² values, far beyond a CAS's lifetime of writes, and a new master key
//! starts a new count.

pub mod envelope;
pub mod recovery;
pub mod shamir;

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::{hkdf, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// Version byte of the sealed format.
const FORMAT_V1: u8 = 1;
/// Length of the AES-GCM tag.
const TAG_LEN: usize = 16;
/// HKDF info for the record-sealing key.
const RECORD_KEY_INFO: &[u8] = b"custos-cas record sealing key v1";
/// First line of a master key file.
const KEY_FILE_HEADER: &str = "custos-cas master key v1";

/// Why sealing, unsealing or obtaining the master key failed. Never carries key material
/// or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The master key file could not be read, created or written.
    #[error("master key file {}: {source}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The master key file does not hold a key in the expected format.
    #[error("master key file {}: {reason}", path.display())]
    KeyFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the file's content).
        reason: &'static str,
    },
    /// The master key file is readable by others than its owner.
    #[error(
        "master key file {}: mode {mode:04o} lets others read it; expected 0600 (chmod 600 the file)",
        path.display()
    )]
    KeyFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A sealed value is shorter than the format allows or has an unknown version.
    #[error("sealed value for {record} is malformed: {reason}")]
    Malformed {
        /// The record address.
        record: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Authentication failed: the value was altered, moved to another record, or sealed
    /// under another master key.
    #[error(
        "sealed value for {record} does not open: altered, moved from another record, or sealed under another master key"
    )]
    Open {
        /// The record address.
        record: String,
    },
    /// The crypto library failed (random numbers, key setup).
    #[error("crypto failure: {0}")]
    Crypto(&'static str),
}

/// A 256-bit master key, zeroized on drop and never printed.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, SealError> {
        let mut key = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(key.as_mut()).map_err(|_| SealError::Crypto("random"))?;
        Ok(Self(key))
    }

    /// From raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Whether `other` is the same key (compared in constant time).
    pub fn same_as(&self, other: &MasterKey) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0.as_ref(), other.0.as_ref()).is_ok()
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(redacted)")
    }
}

/// Where the master key comes from. Implementations must fail closed: no key, no CAS.
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// The master key (created if this provider creates keys on first use).
    fn master_key(&self) -> Result<MasterKey, SealError>;
    /// What this provider is, for the start-up log (never key material).
    fn describe(&self) -> String;
}

/// A master key in a file: `custos-cas master key v1` on the first line, the key in base64
/// on the second. Created with mode 0600 when missing; refused when others may read it.
#[derive(Debug, Clone)]
pub struct KeyFile {
    path: PathBuf,
    create: bool,
}

impl KeyFile {
    /// The key file at `path`, generated there on first use.
    pub fn create_if_missing(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            create: true,
        }
    }

    /// The key file at `path`, which must exist.
    pub fn existing(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            create: false,
        }
    }

    fn io_error(&self, source: io::Error) -> SealError {
        SealError::KeyFile {
            path: self.path.clone(),
            source,
        }
    }

    fn read(&self) -> Result<MasterKey, SealError> {
        let format = |reason| SealError::KeyFormat {
            path: self.path.clone(),
            reason,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&self.path)
                .map_err(|e| self.io_error(e))?
                .permissions()
                .mode()
                & 0o777;
            if mode & 0o077 != 0 {
                return Err(SealError::KeyFilePermissions {
                    path: self.path.clone(),
                    mode,
                });
            }
        }
        let text =
            Zeroizing::new(std::fs::read_to_string(&self.path).map_err(|e| self.io_error(e))?);
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(format("first line is not `custos-cas master key v1`"));
        }
        let encoded = lines.next().ok_or_else(|| format("no key line"))?;
        let bytes = Zeroizing::new(
            STANDARD
                .decode(encoded.trim())
                .map_err(|_| format("key line is not base64"))?,
        );
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| format("key is not 32 bytes"))?;
        Ok(MasterKey::from_bytes(key))
    }

    fn write_new(&self) -> Result<MasterKey, SealError> {
        let key = MasterKey::generate()?;
        let mut text = Zeroizing::new(String::new());
        text.push_str(KEY_FILE_HEADER);
        text.push('\n');
        text.push_str(&STANDARD.encode(key.0.as_ref()));
        text.push('\n');
        let mut options = std::fs::OpenOptions::new();
        // create_new: never overwrite a key that appeared meanwhile.
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.path).map_err(|e| self.io_error(e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| self.io_error(e))?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir).map_err(|e| self.io_error(e))?;
        }
        Ok(key)
    }
}

impl KeyProvider for KeyFile {
    fn master_key(&self) -> Result<MasterKey, SealError> {
        match std::fs::metadata(&self.path) {
            Ok(_) => self.read(),
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.create => self.write_new(),
            Err(e) => Err(self.io_error(e)),
        }
    }

    fn describe(&self) -> String {
        format!("key file {}", self.path.display())
    }
}

/// Makes a directory entry (a new file) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// An HMAC-SHA256 key derived from `master` (HKDF-SHA256) for the use `info` names; each use
/// has its own `info`, so the keys are independent of each other and of the sealing key.
pub fn derive_hmac_key(master: &MasterKey, info: &[u8]) -> Result<hmac::Key, SealError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(master.0.as_ref());
    let info = [info];
    let okm = prk
        .expand(&info, hmac::HMAC_SHA256)
        .map_err(|_| SealError::Crypto("key derivation"))?;
    Ok(hmac::Key::from(okm))
}

/// Seals and opens record values under the record-sealing key derived from the master key.
pub struct Sealer {
    key: RandomizedNonceKey,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(AES-256-GCM, key redacted)")
    }
}

impl Sealer {
    /// Derives the record-sealing key from `master` (HKDF-SHA256).
    pub fn new(master: &MasterKey) -> Result<Self, SealError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(master.0.as_ref());
        let okm = prk
            .expand(&[RECORD_KEY_INFO], &AES_256_GCM)
            .map_err(|_| SealError::Crypto("key derivation"))?;
        let mut raw = Zeroizing::new([0u8; 32]);
        okm.fill(raw.as_mut())
            .map_err(|_| SealError::Crypto("key derivation"))?;
        let key = RandomizedNonceKey::new(&AES_256_GCM, raw.as_ref())
            .map_err(|_| SealError::Crypto("key setup"))?;
        Ok(Self { key })
    }

    /// Seals `plaintext` for the record at `record` (e.g. `sessions/ns/demo`).
    pub fn seal(&self, record: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut buf = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        buf.push(FORMAT_V1);
        buf.extend_from_slice(&[0u8; NONCE_LEN]);
        buf.extend_from_slice(plaintext);
        let mut body = buf.split_off(1 + NONCE_LEN);
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(record.as_bytes()), &mut body)
            .map_err(|_| SealError::Crypto("seal"))?;
        buf[1..].copy_from_slice(nonce.as_ref());
        buf.extend_from_slice(&body);
        Ok(buf)
    }

    /// Opens a value sealed for `record`. The plaintext is zeroized on drop.
    pub fn open(&self, record: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let malformed = |reason| SealError::Malformed {
            record: record.to_owned(),
            reason,
        };
        let (&version, rest) = sealed.split_first().ok_or_else(|| malformed("empty"))?;
        if version != FORMAT_V1 {
            return Err(malformed("unknown format version"));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(malformed("shorter than nonce and tag"));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| malformed("nonce"))?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(record.as_bytes()), &mut buf)
            .map_err(|_| SealError::Open {
                record: record.to_owned(),
            })?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&MasterKey::from_bytes([7; 32])).unwrap()
    }

    #[test]
    fn round_trip_and_random_nonces() {
        let s = sealer();
        let a = s.seal("sessions/ns", b"policy").unwrap();
        let b = s.seal("sessions/ns", b"policy").unwrap();
        assert_ne!(a, b, "nonces must differ");
        assert_eq!(&*s.open("sessions/ns", &a).unwrap(), b"policy");
        assert_eq!(a.len(), 1 + 12 + 6 + 16);
    }

    #[test]
    fn a_value_moved_to_another_record_does_not_open() {
        let s = sealer();
        let sealed = s.seal("sessions/a", b"x").unwrap();
        let err = s.open("sessions/b", &sealed).unwrap_err();
        assert!(matches!(err, SealError::Open { .. }), "{err}");
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let s = sealer();
        let sealed = s.seal("r", b"some plaintext").unwrap();
        for i in 1..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                assert!(s.open("r", &bad).is_err(), "byte {i} bit {bit}");
            }
        }
        assert!(s.open("r", &sealed[..20]).is_err());
        assert!(s.open("r", &[]).is_err());
        let mut v2 = sealed.clone();
        v2[0] = 2;
        assert!(matches!(s.open("r", &v2), Err(SealError::Malformed { .. })));
    }

    #[test]
    fn another_master_key_does_not_open() {
        let sealed = sealer().seal("r", b"x").unwrap();
        let other = Sealer::new(&MasterKey::from_bytes([8; 32])).unwrap();
        assert!(other.open("r", &sealed).is_err());
    }

    #[test]
    fn derived_hmac_keys_depend_on_master_and_label() {
        let tag = |master: u8, info: &[u8]| {
            let key = derive_hmac_key(&MasterKey::from_bytes([master; 32]), info).unwrap();
            hmac::sign(&key, b"data").as_ref().to_vec()
        };
        assert_eq!(tag(1, b"a"), tag(1, b"a"));
        assert_ne!(tag(1, b"a"), tag(1, b"b"));
        assert_ne!(tag(1, b"a"), tag(2, b"a"));
    }

    #[test]
    fn key_file_is_created_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let k1 = KeyFile::create_if_missing(&path).master_key().unwrap();
        let k2 = KeyFile::existing(&path).master_key().unwrap();
        assert_eq!(*k1.0, *k2.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = KeyFile::existing(&path).master_key().unwrap_err();
            assert!(err.to_string().contains("mode 0644"), "{err}");
        }
        assert_eq!(format!("{k1:?}"), "MasterKey(redacted)");
    }

    #[test]
    fn missing_or_malformed_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.key");
        assert!(matches!(
            KeyFile::existing(&path).master_key(),
            Err(SealError::KeyFile { .. })
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&path).unwrap();
        f.write_all(b"custos-cas master key v1\nAAAA\n").unwrap();
        let err = KeyFile::existing(&path).master_key().unwrap_err();
        assert!(err.to_string().contains("not 32 bytes"), "{err}");
    }
}
