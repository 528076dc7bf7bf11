//! `custos-run`: the workload's entrypoint inside the TEE.
//!
//! With a config id (`CUSTOS_CONFIG_ID`, or the sample's `SCONE_CONFIG_ID`) it attests the
//! workload to the CAS — challenge, evidence over an ephemeral key and the nonce, attest — and
//! only when the CAS allows it writes the delivered files, replaces the environment, takes the
//! arguments and working directory from the policy, and `exec`s the program. Without a config
//! id it `exec`s the program unchanged: no attestation, no secrets.
//!
//! This crate must never start the program after a failed or denied attestation, never trust
//! a CAS it cannot authenticate (except, loudly, in simulation), and never print a delivered
//! value. It is small on purpose: it runs in the enclave.

#![warn(missing_docs)]

pub mod attest;
pub mod cas;
pub mod config;
pub mod evidence;
pub mod files;
pub mod identity;
pub mod launch;
pub mod refresh;
pub mod replicas;
pub mod supervise;

use std::path::PathBuf;

use custos_protocol::ErrorDetail;

/// Why `custos-run` did not start the program.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration (environment) is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The program to run cannot be found or measured.
    #[error("{}: {reason}", path.display())]
    Program {
        /// The program.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The CAS could not be reached or answered something unexpected.
    #[error("CAS at {addr}: {reason}")]
    Cas {
        /// The CAS address.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// No replica of the CAS could serve a request: each with its reason, in the order tried.
    #[error("no CAS replica could serve {path} ({} tried): {}", attempts.len(), attempts.join("; "))]
    CasReplicas {
        /// The request's path.
        path: String,
        /// Each replica's failure (`CAS at ADDR: reason`).
        attempts: Vec<String>,
    },
    /// The CAS denied the attestation.
    #[error("the CAS denied attestation of {config_id}: {}", detail.message)]
    Denied {
        /// The service.
        config_id: String,
        /// The CAS's answer, with every failed check.
        detail: ErrorDetail,
    },
    /// No evidence could be produced.
    #[error("evidence from {source_name}: {reason}")]
    Evidence {
        /// Where evidence was asked for (the LAS address or the attestation device).
        source_name: String,
        /// What failed.
        reason: String,
    },
    /// A delivered file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Something about the local key or TLS setup failed.
    #[error("{0}")]
    Local(String),
}

impl RunError {
    /// The process exit status for this error: 2 for configuration, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            _ => 1,
        }
    }
}
