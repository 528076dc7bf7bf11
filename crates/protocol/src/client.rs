//! The CAS's client API (`docs/cas.md` § The client API): what `custos`, `custos-client` and
//! any other client send and receive on port 8081. Errors are [`crate::ErrorBody`].
//!
//! Answers do not refuse unknown fields, so a newer CAS may add some without breaking older
//! clients.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::audit::AuditEntry;
use crate::enclave::EvidenceBytes;

/// `POST /v1/sessions` (create, body: the session YAML), `GET` (list, `?prefix=`).
pub const SESSIONS_PATH: &str = "/v1/sessions";
/// `GET /v1/attest?nonce=HEX`: the CAS's own evidence.
pub const ATTEST_PATH: &str = "/v1/attest";
/// `GET /v1/audit?session=NAME[&after=N][&limit=M]`.
pub const AUDIT_PATH: &str = "/v1/audit";
/// `GET /v1/version`.
pub const VERSION_PATH: &str = "/v1/version";
/// `GET /healthz`.
pub const HEALTH_PATH: &str = "/healthz";

/// `GET`/`PUT` path of the session `name`.
pub fn session_path(name: &str) -> String {
    format!("{SESSIONS_PATH}/{name}")
}

/// The answer to a create (201) or an update (200) of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionWritten {
    /// The session's name.
    pub name: String,
    /// The hash of the version now stored (what an update names as `predecessor`).
    pub hash: String,
    /// Lines about a valid session that will stop working (a certificate expiring soon, …).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `GET /v1/sessions/{name}`: the session as submitted, never its generated values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    /// The session's name.
    pub name: String,
    /// The hash of the stored version.
    pub hash: String,
    /// The session's text as submitted.
    pub session: String,
    /// The identity of the client that created it (hex SHA-256 of its public key).
    pub creator: String,
    /// 1 for the created version, one more for each update.
    pub revision: u64,
    /// When it was created, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// When it was last changed, milliseconds since the Unix epoch.
    pub updated_ms: u64,
}

/// `GET /v1/sessions?prefix=P`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionList {
    /// The names of the sessions the caller may read.
    pub sessions: Vec<String>,
}

/// `GET /v1/values/session=NAME[,secret=S]`: the public values of `export_public` secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicValues {
    /// The session.
    pub session: String,
    /// By secret name.
    pub values: BTreeMap<String, PublicValue>,
}

/// One public value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicValue {
    /// The secret's kind (`x509`, `x509-ca`, `private-key`, …).
    pub kind: String,
    /// The PEM certificate (chain) or public key.
    pub value: String,
}

/// `GET /v1/audit`: a page of a session's audit log, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    /// The session.
    pub session: String,
    /// The events after the `after` asked for; page on with the last `seq`.
    pub events: Vec<AuditEntry>,
}

/// `GET /v1/attest?nonce=HEX`: the CAS's evidence over `SHA-256(SPKI ‖ nonce)`, where SPKI
/// is the public key of the TLS certificate of the connection that asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CasEvidence {
    /// The evidence (`sgx-quote`, or `sim-quote` in simulation).
    pub evidence: EvidenceBytes,
    /// The CAS's MRENCLAVE, hex (what it says; the evidence is what proves it).
    pub mrenclave: String,
    /// Whether the evidence is simulated (proves nothing).
    pub simulation: bool,
    /// The PEM public key that signs simulated evidence; `null` for hardware evidence.
    pub platform_key: Option<String>,
    /// The CAS's TLS certificate, PEM.
    pub certificate: String,
}

/// `GET /v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// `custos-cas`.
    pub name: String,
    /// The CAS's version.
    pub version: String,
    /// The API version, `v1`.
    pub api: String,
    /// Whether the CAS's evidence is simulated.
    pub simulation: bool,
}

/// `GET /healthz` (200, or 503 when the store is unreadable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, or what is wrong.
    pub status: String,
    /// Whether the CAS's evidence is simulated.
    pub simulation: bool,
    /// What an operator should know (simulation, …).
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::audit::{AuditAction, Outcome};

    /// Each answer as the CAS wrote it with `json!` before these types existed.
    #[test]
    fn answers_as_the_cas_wrote_them_parse() {
        let written: SessionWritten =
            serde_json::from_value(json!({"name": "ns/app", "hash": "ab", "warnings": []}))
                .unwrap();
        assert_eq!(written.hash, "ab");
        let stored: StoredSession = serde_json::from_value(json!({
            "name": "ns/app", "hash": "ab", "session": "name: ns/app\n", "creator": "0f",
            "revision": 2, "created_ms": 1, "updated_ms": 3}))
        .unwrap();
        assert_eq!((stored.revision, stored.updated_ms), (2, 3));
        let list: SessionList = serde_json::from_value(json!({"sessions": ["a", "a/b"]})).unwrap();
        assert_eq!(list.sessions, ["a", "a/b"]);
        let values: PublicValues = serde_json::from_value(json!({"session": "a",
            "values": {"CA": {"kind": "x509-ca", "value": "-----BEGIN CERTIFICATE-----"}}}))
        .unwrap();
        assert_eq!(values.values["CA"].kind, "x509-ca");
        let version: Version = serde_json::from_value(
            json!({"name": "custos-cas", "version": "0.1.0", "api": "v1", "simulation": true}),
        )
        .unwrap();
        assert!(version.simulation);
        let health: Health = serde_json::from_value(
            json!({"status": "ok", "simulation": true, "warnings": ["SIMULATION: …"]}),
        )
        .unwrap();
        assert_eq!(health.warnings.len(), 1);
    }

    #[test]
    fn the_cas_evidence_keeps_its_shape() {
        let evidence = CasEvidence {
            evidence: EvidenceBytes {
                kind: "sim-quote".into(),
                quote: vec![0xfb, 0xff],
            },
            mrenclave: "00".repeat(32),
            simulation: true,
            platform_key: None,
            certificate: "-----BEGIN CERTIFICATE-----".into(),
        };
        let json = serde_json::to_value(&evidence).unwrap();
        assert_eq!(
            json["evidence"],
            json!({"type": "sim-quote", "quote": "-_8"})
        );
        // A hardware CAS has no platform key: written as null, as before.
        assert!(json["platform_key"].is_null() && json.get("platform_key").is_some());
        assert_eq!(
            serde_json::from_value::<CasEvidence>(json).unwrap(),
            evidence
        );
    }

    #[test]
    fn an_audit_page_round_trips_with_flattened_outcomes() {
        let page = json!({"session": "ns", "events": [
            {"seq": 7, "time_ms": 1764345600123_u64, "action": "session-read", "session": "ns",
             "client": "ab", "peer": "10.0.0.9", "hash": "cd", "result": "allowed"},
            {"seq": 8, "time_ms": 1764345600124_u64, "action": "enclave-attest", "session": "ns",
             "service": "app", "enclave": {"evidence": "sim-quote", "verified_by": "none"},
             "result": "denied", "status": 403, "code": "attestation_denied",
             "reason": "1 check(s) failed", "reasons": ["mrenclave: expected a, actual b"]}]});
        let parsed: AuditPage = serde_json::from_value(page.clone()).unwrap();
        assert_eq!(parsed.events[0].seq, 7);
        assert_eq!(parsed.events[0].event.action, AuditAction::SessionRead);
        assert_eq!(parsed.events[0].event.client.as_deref(), Some("ab"));
        match &parsed.events[1].event.outcome {
            Outcome::Denied {
                status, reasons, ..
            } => {
                assert_eq!((*status, reasons.len()), (403, 1));
            }
            other => panic!("expected a denial, got {other:?}"),
        }
        assert_eq!(serde_json::to_value(&parsed).unwrap(), page);
    }
}
