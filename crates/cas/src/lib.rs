//! The Custos CAS (configuration and attestation service): where users keep their sessions
//! (policies) and where secrets are generated and kept.
//!
//! This crate holds the CAS's logic; the `custos-cas` binary only parses its configuration
//! and wires the parts: a durable store whose every value is sealed under a master key
//! ([`store`], [`seal`]), the client API over mutual TLS where a caller is the SHA-256 of its
//! certificate's public key ([`api`], [`custos_ids::KeyHash`]), the enclave API where `custos-run`
//! attests ([`enclave`]), what both serve on and answer errors with ([`http`], [`http_error`]),
//! and the audit log ([`audit`]).
//!
//! The CAS must never acknowledge a write before it is durable, never show a session to a
//! caller its access policy excludes, never persist anything for a request that failed, and
//! never put a secret value into a log line, an error, a metric, the audit log or `Debug`
//! output.

#![warn(missing_docs)]

pub mod api;
pub mod attest;
pub mod audit;
pub mod config;
pub mod enclave;
pub mod http;
pub mod http_error;
pub mod key_release;
pub mod keygen;
pub mod locked;
mod log_throttle;
pub mod metrics;
mod parsed;
pub mod ratelimit;
pub mod seal;
pub mod secrets;
pub mod server;
pub mod store;
pub mod tls;
