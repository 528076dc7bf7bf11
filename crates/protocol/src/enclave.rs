//! The enclave API (`docs/enclave-api.md` § The protocol), spoken by `custos-run` to the CAS on port 18765.
//!
//! 1. `POST /v1/enclave/challenge` [`ChallengeRequest`] → [`ChallengeResponse`]: a single-use
//!    nonce.
//! 2. The runtime makes an ephemeral P-256 key pair and builds [`RuntimeData`]; its exact
//!    JSON bytes are what the evidence binds: `report_data[0..32] = SHA-256(runtime_data)`.
//! 3. `POST /v1/enclave/attest` [`AttestRequest`] over a TLS connection whose client
//!    certificate carries that ephemeral key — so the secrets in the answer go to the
//!    holder of the key the evidence names, not to whoever relays the evidence.
//! 4. Allowed: 200 [`Delivery`]. Denied: 403 [`crate::ErrorBody`] with code
//!    `attestation_denied` and every failed check in `reasons`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Path of the challenge endpoint.
pub const CHALLENGE_PATH: &str = "/v1/enclave/challenge";
/// Path of the attest endpoint.
pub const ATTEST_PATH: &str = "/v1/enclave/attest";

/// Asks for a nonce to attest `config_id` (`<session name>/<service name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// `<session name>/<service name>`, e.g. `ns/demo/rest-api`.
    pub config_id: String,
}

/// A fresh nonce: 32 random bytes, single use, short-lived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// The nonce, base64url.
    pub nonce: String,
}

/// The enclave-held data its evidence binds. Serialized once by the runtime; the CAS hashes
/// the exact bytes it receives and parses them only to read the nonce and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeData {
    /// The nonce from the challenge.
    pub nonce: String,
    /// The runtime's ephemeral public key, also the key of its TLS client certificate.
    pub jwk: Jwk,
}

/// A P-256 public key as a JSON Web Key (RFC 7517/7518).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwk {
    /// Always `EC`.
    pub kty: String,
    /// Always `P-256`.
    pub crv: String,
    /// The x coordinate, base64url (32 bytes).
    pub x: String,
    /// The y coordinate, base64url (32 bytes).
    pub y: String,
}

/// Evidence as produced by the TEE or the LAS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceBytes {
    /// `sgx-quote`, `oe-report` or `sim-quote`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The evidence.
    #[serde(with = "crate::base64url")]
    pub quote: Vec<u8>,
}

/// `POST /v1/enclave/attest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestRequest {
    /// The service to attest as.
    pub config_id: String,
    /// The evidence.
    pub evidence: EvidenceBytes,
    /// The exact [`RuntimeData`] bytes the evidence binds.
    #[serde(with = "crate::base64url")]
    pub runtime_data: Vec<u8>,
}

/// What an attested service receives: how to start, with which environment and files.
/// Arguments, values and contents are wiped when dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// The program's arguments, `argv[0]` first (from the session's `command`).
    pub argv: Vec<String>,
    /// The whole environment of the program (it replaces the runtime's own).
    pub env: BTreeMap<String, String>,
    /// The working directory.
    pub pwd: String,
    /// Files to write before starting.
    pub files: Vec<DeliveredFile>,
    /// Present when the service keeps its secrets fresh (the session's `services[].refresh`):
    /// `custos-run` then supervises the program instead of `exec`ing it. Absent (and not
    /// written) otherwise, so a delivery without it reads as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Refresh>,
}

/// How `custos-run` keeps a supervised service's secrets fresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    /// Seconds between re-attestations (SIGHUP to `custos-run` also triggers one).
    pub interval_secs: u64,
    /// What the program is told when its delivered files changed.
    pub on_change: OnChange,
    /// The signal sent for [`OnChange::Signal`]: `SIGHUP`, `SIGUSR1` or `SIGUSR2`.
    pub signal: String,
    /// Seconds between SIGTERM and SIGKILL when the program is restarted or stopped.
    pub grace_secs: u64,
    /// What happens when a re-attestation is denied.
    pub on_denial: OnDenial,
    /// When delivered values stop being valid, by secret name, in seconds since the Unix
    /// epoch: an `aad-token`'s expiry, a certificate's notAfter (the earliest of its chain).
    /// `custos-run` re-attests before the earliest of them, not only every interval.
    /// Values that do not expire are not listed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub expires: BTreeMap<String, u64>,
}

/// What the program is told when a refresh changed its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnChange {
    /// Changed files are rewritten and the program gets [`Refresh::signal`]; a changed
    /// environment, argument list or working directory waits for the next start.
    Signal,
    /// The program is restarted gracefully (SIGTERM, grace period, SIGKILL) with the new
    /// delivery — the only way a new environment reaches it.
    Restart,
    /// Changed files are rewritten; the program is not told (it watches them itself).
    None,
}

/// What happens when the CAS denies a re-attestation (e.g. the session no longer admits this
/// enclave).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDenial {
    /// The program keeps running with what it has; `custos-run` retries and logs the denial.
    Keep,
    /// The program is stopped (gracefully) and `custos-run` exits 1 with the denial.
    Stop,
}

/// One injected file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct DeliveredFile {
    /// Absolute path.
    pub path: String,
    /// Content, base64url.
    #[serde(with = "crate::base64url")]
    pub content: Vec<u8>,
    /// Permission bits (e.g. 0o600).
    pub mode: u32,
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.argv.zeroize();
        self.env.values_mut().for_each(Zeroize::zeroize);
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: arguments, values and contents may hold secrets.
        f.debug_struct("Delivery")
            .field("argc", &self.argv.len())
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("pwd", &self.pwd)
            .field("files", &self.files)
            .field("refresh", &self.refresh)
            .finish()
    }
}

impl fmt::Debug for DeliveredFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveredFile")
            .field("path", &self.path)
            .field("bytes", &self.content.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_names_not_values() {
        let delivery = Delivery {
            argv: vec!["app".into(), "--token=hunter2".into()],
            env: [("AKV_SECRET".to_string(), "hunter2".to_string())].into(),
            pwd: "/".into(),
            files: vec![DeliveredFile {
                path: "/tls/flask.key".into(),
                content: b"hunter2".to_vec(),
                mode: 0o600,
            }],
            refresh: None,
        };
        let debug = format!("{delivery:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("AKV_SECRET") && debug.contains("/tls/flask.key"));
        assert!(debug.contains("600"));
    }

    #[test]
    fn refresh_is_written_only_when_the_service_asks_for_it() {
        let without: Delivery =
            serde_json::from_str(r#"{"argv":[],"env":{},"pwd":"","files":[]}"#).unwrap();
        assert_eq!(without.refresh, None);
        assert_eq!(
            serde_json::to_string(&without).unwrap(),
            r#"{"argv":[],"env":{},"pwd":"","files":[]}"#
        );
        let text = r#"{"argv":[],"env":{},"pwd":"","files":[],"refresh":{"interval_secs":600,"on_change":"signal","signal":"SIGHUP","grace_secs":10,"on_denial":"keep"}}"#;
        let with: Delivery = serde_json::from_str(text).unwrap();
        assert_eq!(
            with.refresh,
            Some(Refresh {
                interval_secs: 600,
                on_change: OnChange::Signal,
                signal: "SIGHUP".into(),
                grace_secs: 10,
                on_denial: OnDenial::Keep,
                expires: BTreeMap::new(),
            })
        );
        assert_eq!(serde_json::to_string(&with).unwrap(), text);
        let expiring = text.replace(
            r#""on_denial":"keep"}"#,
            r#""on_denial":"keep","expires":{"TOKEN":1800000000}}"#,
        );
        let read: Delivery = serde_json::from_str(&expiring).unwrap();
        assert_eq!(
            read.refresh.as_ref().unwrap().expires,
            BTreeMap::from([("TOKEN".to_owned(), 1_800_000_000)])
        );
        assert_eq!(serde_json::to_string(&read).unwrap(), expiring);
    }

    #[test]
    fn bytes_travel_as_base64url_and_unknown_fields_are_rejected() {
        let request = AttestRequest {
            config_id: "ns/demo/rest-api".into(),
            evidence: EvidenceBytes {
                kind: "sim-quote".into(),
                quote: vec![0xfb, 0xff],
            },
            runtime_data: b"{}".to_vec(),
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["evidence"]["quote"], "-_8");
        assert_eq!(json["runtime_data"], "e30");
        let back: AttestRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, request);

        let extra = serde_json::json!({"config_id": "a/b", "evidence": {"type": "x", "quote": ""},
            "runtime_data": "", "debug": true});
        assert!(serde_json::from_value::<AttestRequest>(extra).is_err());
        let bad = serde_json::json!({"config_id": "a/b", "evidence": {"type": "x", "quote": "!!"},
            "runtime_data": ""});
        let error = serde_json::from_value::<AttestRequest>(bad).unwrap_err();
        assert!(error.to_string().contains("invalid base64url"), "{error}");
    }
}
