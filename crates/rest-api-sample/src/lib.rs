//! The SCONE sample's REST API, in Rust.
//!
//! The sample's app is a Flask server: HTTPS on port 4996 with the certificate and key that the
//! CAS injects into `/tls/flask.crt` and `/tls/flask.key` after attestation, and one route,
//! `GET /secret`, that returns the secret the CAS put into its environment (`AKV_SECRET`).
//! Started without attestation it has no certificate, and exits at once naming the missing file.
//!
//! Beyond the sample, it takes in renewed files without a restart ([`Reloader`]): on SIGHUP,
//! or when they change, the certificate is presented from the next handshake on, and a secret
//! given as a file (`AKV_SECRET_FILE`) is read again.
//!
//! This crate must never write the secret anywhere but into a `/secret` response body: not to
//! logs, errors or `Debug` output.

#![warn(missing_docs)]

pub mod app;
pub mod reload;
pub mod server;

pub use app::SecretApp;
pub use reload::Reloader;
pub use server::{ServeOptions, serve};
