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

pub use custos_protocol::audit::{AuditAction, AuditEntry, AuditEvent, EnclaveFacts, Outcome};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
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
