//! The one error answer of both CAS APIs (client and enclave): an HTTP status, a stable code,
//! a message, the list of every problem or failed check, and when to retry. It is written as
//! `custos_protocol::ErrorBody`, the error of every Custos API.

use bytes::Bytes;
use custos_protocol::{ErrorBody, ErrorDetail};
use http_body_util::Full;
use hyper::{Response, StatusCode};

use crate::audit::Outcome;
use crate::http::error_response;

/// A refused or failed request.
#[derive(Debug, Clone)]
pub struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: String,
    reasons: Vec<String>,
    retry_after_secs: Option<u64>,
}

impl HttpError {
    /// An error answered with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            reasons: Vec::new(),
            retry_after_secs: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 403 `access_denied`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "access_denied", message)
    }

    /// 409 with `code`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 500 with `code`.
    pub fn internal(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, code, message)
    }

    /// 405 `method_not_allowed`, naming the methods that are.
    pub fn method_not_allowed(method: &hyper::Method, allowed: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed here (allowed: {allowed})"),
        )
    }

    /// With every problem or failed check, one each.
    pub fn with_reasons(mut self, reasons: Vec<String>) -> Self {
        self.reasons = reasons;
        self
    }

    /// With `Retry-After: secs`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The problems or failed checks.
    pub fn reasons(&self) -> &[String] {
        &self.reasons
    }

    /// How the audit log records this refusal.
    pub fn outcome(&self) -> Outcome {
        Outcome::Denied {
            status: self.status.as_u16(),
            code: self.code.into(),
            reason: self.message.clone(),
            reasons: self.reasons.clone(),
        }
    }

    /// The answer: [`ErrorBody`] as JSON, with `Retry-After` when set.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message.clone(),
                reasons: self.reasons.clone(),
            },
        };
        error_response(self.status, &body, self.retry_after_secs)
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use hyper::header::RETRY_AFTER;

    use super::*;

    #[tokio::test]
    async fn the_answer_is_an_error_body_with_its_status_and_retry_after() {
        let error = HttpError::bad_request("invalid_session", "1 problem(s)")
            .with_reasons(vec!["session:1:1: name: missing".into()])
            .retry_after(3);
        let response = error.response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[RETRY_AFTER], "3");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body.error.code, "invalid_session");
        assert_eq!(body.error.reasons, ["session:1:1: name: missing"]);
    }

    #[test]
    fn an_audited_refusal_keeps_status_code_message_and_reasons() {
        let error = HttpError::forbidden("no").with_reasons(vec!["a".into()]);
        assert_eq!(
            error.outcome(),
            Outcome::Denied {
                status: 403,
                code: "access_denied".into(),
                reason: "no".into(),
                reasons: vec!["a".into()],
            }
        );
    }
}
