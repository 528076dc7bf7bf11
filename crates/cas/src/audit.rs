//! The audit log: an append-only record of who did what to which session, and when.
//!
//! Events are stored sealed in the store, numbered by a sequence that only grows. Changes
//! (create, update) are appended in the same durable transaction as the change itself;
//! reads and denials are appended by the store's writer shortly after the response, batched
//! with other writes (a crash can lose the last few of those, never a change's event).
//!
//! An event never holds a secret value: only names, hashes, identities, and the reason a
//! request was denied (which never quotes a secret).

use std::time::{SystemTime, UNIX_EPOCH};

use custos_ids::KeyHash;
use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AuditAction {
    /// `POST /v1/sessions`.
    SessionCreate,
    /// `PUT /v1/sessions/{name}`.
    SessionUpdate,
    /// `GET /v1/sessions/{name}`.
    SessionRead,
    /// `GET /v1/audit?session=`: someone read this session's audit log.
    AuditRead,
    /// `POST /v1/enclave/attest`: a service attested (allowed: it received its
    /// configuration; denied: every failed check is in `reasons`).
    EnclaveAttest,
}

impl AuditAction {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::SessionCreate => "session-create",
            Self::SessionUpdate => "session-update",
            Self::SessionRead => "session-read",
            Self::AuditRead => "audit-read",
            Self::EnclaveAttest => "enclave-attest",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Outcome {
    /// The request succeeded.
    Allowed,
    /// The request was refused.
    Denied {
        /// The HTTP status returned.
        status: u16,
        /// The error code returned.
        code: String,
        /// Why (the message returned to the client; never a secret).
        reason: String,
        /// Every failed check, with expected and actual values (attestation denials).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reasons: Vec<String>,
    },
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// What was asked.
    pub action: AuditAction,
    /// The session it concerned; events are indexed by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The caller's identity (absent for requests without a client certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<KeyHash>,
    /// The caller's network address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The session's hash after a change, or the hash read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// For attestations: the service of the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// For attestations: what the verified evidence showed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enclave: Option<EnclaveFacts>,
    /// The outcome (`result`, and for denials `status`, `code`, `reason`).
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl AuditEvent {
    /// An event happening now.
    pub fn now(action: AuditAction, outcome: Outcome) -> Self {
        Self {
            time_ms: now_ms(),
            action,
            session: None,
            client: None,
            peer: None,
            hash: None,
            service: None,
            enclave: None,
            outcome,
        }
    }
}

/// The facts an attestation established about an enclave (measurements, not secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnclaveFacts {
    /// The evidence type (`sgx-quote`, `oe-report`, `sim-quote`).
    pub evidence: String,
    /// Who vouched for it: `dcap`, `maa`, `simulation`, or `none` (`mode: none`).
    pub verified_by: String,
    /// MRENCLAVE, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrenclave: Option<String>,
    /// MRSIGNER, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrsigner: Option<String>,
    /// Whether the enclave is debuggable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    /// The simulation platform key id, for simulated evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// An event as stored, with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log (1, 2, ...).
    pub seq: u64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// How long the audit log keeps events (the store's writer prunes the oldest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events kept at most; 0: no count limit.
    pub max_events: u64,
    /// Events older than this many milliseconds are removed; 0: no age limit.
    pub max_age_ms: u64,
}

impl Retention {
    /// Keeps every event (the store's behaviour before retention existed).
    pub const UNLIMITED: Self = Self {
        max_events: 0,
        max_age_ms: 0,
    };
}

impl Default for Retention {
    /// One million events or one year, whichever is reached first.
    fn default() -> Self {
        Self {
            max_events: 1_000_000,
            max_age_ms: 365 * 24 * 3600 * 1000,
        }
    }
}
