//! The CAS's audit log as `GET /v1/audit` answers it (`docs/cas.md` § The audit log): who did
//! what to which session, and when. The CAS stores the same events.
//!
//! An event never holds a secret value: only names, hashes, identities, and the reason a
//! request was denied (which never quotes a secret).

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
    /// The CAS renewed a generated certificate of the session (`secret` names it): due at an
    /// attestation, or re-issued because its issuer was renewed.
    SecretRenew,
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
            Self::SecretRenew => "secret-renew",
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

impl Outcome {
    /// Whether the request succeeded.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed)
    }

    /// The error code of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Allowed => None,
            Self::Denied { code, .. } => Some(code),
        }
    }

    /// Every failed check of a refusal (none for an allowed request).
    pub fn reasons(&self) -> &[String] {
        match self {
            Self::Allowed => &[],
            Self::Denied { reasons, .. } => reasons,
        }
    }
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
    /// The caller's identity, the hex SHA-256 of its certificate's public key (absent for
    /// requests without a client certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The caller's network address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The session's hash after a change, or the hash read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// For attestations: the service of the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// For renewals: the secret renewed (its name, never its value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// For attestations: what the verified evidence showed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enclave: Option<EnclaveFacts>,
    /// The outcome (`result`, and for denials `status`, `code`, `reason`).
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl AuditEvent {
    /// An event at `time_ms` about nothing in particular yet: the caller fills in the rest.
    pub fn new(time_ms: u64, action: AuditAction, outcome: Outcome) -> Self {
        Self {
            time_ms,
            action,
            session: None,
            client: None,
            peer: None,
            hash: None,
            service: None,
            secret: None,
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

/// An event as stored, with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log (1, 2, ...).
    pub seq: u64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
}
