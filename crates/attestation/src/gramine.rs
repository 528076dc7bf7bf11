//! Producing hardware evidence inside a Gramine SGX enclave.
//!
//! Gramine exposes SGX attestation as pseudo-files (by default under `/dev/attestation`): the
//! enclave writes the 64 bytes of `report_data` to `user_report_data` and reads back a DCAP
//! quote over them from `quote`. `custos-run` and a CAS running in Gramine use this to bind
//! their runtime data (`docs/enclave-api.md` § The protocol, step 2) or their TLS key (the CAS's self-attestation).
//!
//! Outside an enclave the files do not exist and every call fails, naming the file.

use std::path::{Path, PathBuf};

use crate::ReportData;

/// Where Gramine mounts its attestation interface.
pub const ATTESTATION_DIR: &str = "/dev/attestation";

/// Why no quote could be had.
#[derive(Debug, thiserror::Error)]
pub enum GramineError {
    /// The enclave is not configured for DCAP attestation.
    #[error(
        "{}: attestation type is {found:?}, expected \"dcap\" (set sgx.remote_attestation = \"dcap\" in the Gramine manifest)",
        path.display()
    )]
    NotDcap {
        /// The `attestation_type` file.
        path: PathBuf,
        /// What it says.
        found: String,
    },
    /// A pseudo-file could not be written or read (not in an enclave, or Gramine failed).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// An SGX DCAP quote whose report data is `report_data`, from the Gramine interface in `dir`.
pub fn sgx_quote(dir: &Path, report_data: &ReportData) -> Result<Vec<u8>, GramineError> {
    let io = |path: PathBuf| move |source| GramineError::Io { path, source };
    let kind_path = dir.join("attestation_type");
    if let Ok(kind) = std::fs::read_to_string(&kind_path)
        && kind.trim() != "dcap"
    {
        return Err(GramineError::NotDcap {
            path: kind_path,
            found: kind.trim().to_owned(),
        });
    }
    let user_report_data = dir.join("user_report_data");
    std::fs::write(&user_report_data, report_data.0).map_err(io(user_report_data))?;
    let quote = dir.join("quote");
    std::fs::read(&quote).map_err(io(quote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_report_data_and_reads_the_quote() {
        // A stand-in directory with Gramine's file names; real Gramine computes the quote.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("attestation_type"), "dcap\n").unwrap();
        std::fs::write(dir.path().join("quote"), b"QUOTE").unwrap();
        let report_data = ReportData::binding(b"runtime data");
        assert_eq!(sgx_quote(dir.path(), &report_data).unwrap(), b"QUOTE");
        assert_eq!(
            std::fs::read(dir.path().join("user_report_data")).unwrap(),
            report_data.0
        );
    }

    #[test]
    fn outside_an_enclave_the_missing_file_is_named() {
        let error = sgx_quote(Path::new("/nonexistent/attestation"), &ReportData([0; 64]))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("/nonexistent/attestation/user_report_data:"),
            "{error}"
        );
    }

    #[test]
    fn another_attestation_type_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("attestation_type"), "none").unwrap();
        let error = sgx_quote(dir.path(), &ReportData([0; 64])).unwrap_err();
        assert!(matches!(error, GramineError::NotDcap { .. }), "{error}");
    }
}
