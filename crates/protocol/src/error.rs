//! The error body of every Custos HTTP API: the CAS's client and enclave APIs and the LAS.

use serde::{Deserialize, Serialize};

/// `{"error": {"code", "message", "reasons"?}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`attestation_denied`, `invalid_session`, ...).
    pub code: String,
    /// One human-readable sentence.
    pub message: String,
    /// Every problem, one a line: the failed checks of a denial (with expected and actual
    /// values), the problems of an invalid session (`session:LINE:COLUMN: FIELD: message`).
    /// The client API called this list `details` before it shared this type: that name is
    /// still read.
    #[serde(default, alias = "details", skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl ErrorBody {
    /// An error with `code` and `message`, and no reasons.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                reasons: Vec::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> ErrorDetail {
        serde_json::from_str::<ErrorBody>(json).unwrap().error
    }

    #[test]
    fn the_enclave_apis_denial_as_it_was_written_parses() {
        let detail = parse(
            r#"{"error": {"code": "attestation_denied", "message": "2 check(s) failed",
                "reasons": ["mrenclave: expected ab, actual 9f", "debug: expected no"]}}"#,
        );
        assert_eq!(detail.code, "attestation_denied");
        assert_eq!(detail.message, "2 check(s) failed");
        assert_eq!(
            detail.reasons,
            ["mrenclave: expected ab, actual 9f", "debug: expected no"]
        );
    }

    #[test]
    fn the_client_apis_details_as_they_were_written_parse_as_reasons() {
        let detail = parse(
            r#"{"error": {"code": "invalid_session", "message": "the session is not valid: 1 problem(s)",
                "details": ["session:3:1: services: expected a list"]}}"#,
        );
        assert_eq!(detail.code, "invalid_session");
        assert_eq!(detail.reasons, ["session:3:1: services: expected a list"]);
    }

    #[test]
    fn an_error_without_a_list_parses_and_is_written_without_one() {
        // As the LAS and the client API wrote most errors.
        let detail = parse(r#"{"error": {"code": "bad_request", "message": "report_data: bad"}}"#);
        assert!(detail.reasons.is_empty());
        let json = serde_json::to_value(ErrorBody::new("not_found", "no such endpoint")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "not_found", "message": "no such endpoint"}})
        );
    }

    #[test]
    fn reasons_are_written_under_one_name_and_read_back() {
        let mut body = ErrorBody::new("invalid_session", "1 problem(s)");
        body.error.reasons = vec!["session:1:1: name: missing".into()];
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["error"]["reasons"][0], "session:1:1: name: missing");
        assert!(json["error"].get("details").is_none());
        assert_eq!(serde_json::from_value::<ErrorBody>(json).unwrap(), body);
    }
}
