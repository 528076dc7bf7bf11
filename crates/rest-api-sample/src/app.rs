//! The HTTP behaviour: one route, `GET /secret`, answered like the sample's Flask app.

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

/// The route's state: the secret delivered by the CAS, if any — in the environment
/// (`AKV_SECRET`, fixed for the life of the process) or in a file (`AKV_SECRET_FILE`, read
/// again by [`SecretApp::reload_secret`], so a rotated secret is served without a restart).
#[derive(Debug)]
pub struct SecretApp {
    secret: RwLock<Option<SecretString>>,
    file: Option<PathBuf>,
}

/// Keys in Flask's `jsonify` order (sorted), so the output reads as the sample's does.
#[derive(Serialize)]
struct SecretBody<'a> {
    access_timestamp: f64,
    secret: &'a str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl SecretApp {
    /// The app serving `secret` (`None`: the environment had no `AKV_SECRET`).
    pub fn new(secret: Option<SecretString>) -> Self {
        Self {
            secret: RwLock::new(secret),
            file: None,
        }
    }

    /// The app serving the content of `file` (see [`read_secret_file`]).
    pub fn from_file(file: PathBuf) -> Result<Self, String> {
        let secret = read_secret_file(&file)?;
        Ok(Self {
            secret: RwLock::new(Some(secret)),
            file: Some(file),
        })
    }

    /// The app configured from the process environment, as the CAS delivers it: `AKV_SECRET`
    /// (the sample's variable) or `AKV_SECRET_FILE` (a file's path), not both.
    ///
    /// Fails when a value is not UTF-8 or the file cannot be read; no error contains the value.
    pub fn from_env() -> Result<Self, String> {
        match (
            std::env::var_os("AKV_SECRET"),
            std::env::var_os("AKV_SECRET_FILE"),
        ) {
            (Some(_), Some(_)) => Err(
                "AKV_SECRET and AKV_SECRET_FILE are both set: give the secret one way".to_owned(),
            ),
            (None, None) => Ok(Self::new(None)),
            (Some(value), None) => value
                .into_string()
                .map(|s| Self::new(Some(s.into())))
                .map_err(|_| "AKV_SECRET is set but is not valid UTF-8".to_owned()),
            (None, Some(file)) => Self::from_file(PathBuf::from(file)),
        }
    }

    /// Whether a secret is present (safe to log; the value is not).
    pub fn has_secret(&self) -> bool {
        self.secret().is_some()
    }

    /// The file the secret comes from, if it comes from one.
    pub fn secret_file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Reads the secret file again. Without a file there is nothing to do; on failure the
    /// secret served so far stays.
    pub fn reload_secret(&self) -> Result<(), String> {
        if let Some(file) = &self.file {
            let secret = read_secret_file(file)?;
            *self.secret.write().unwrap_or_else(|e| e.into_inner()) = Some(secret);
        }
        Ok(())
    }

    fn secret(&self) -> Option<SecretString> {
        self.secret
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Answers one request. Only the method and path matter; bodies are ignored.
    pub fn respond<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        if request.uri().path() != "/secret" {
            return json(StatusCode::NOT_FOUND, &ErrorBody { error: "not found" });
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = json(
                StatusCode::METHOD_NOT_ALLOWED,
                &ErrorBody {
                    error: "method not allowed",
                },
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let response = match &self.secret() {
            Some(secret) => json(
                StatusCode::OK,
                &SecretBody {
                    access_timestamp: now_seconds(),
                    secret: secret.expose_secret(),
                },
            ),
            None => json(
                StatusCode::NOT_FOUND,
                &ErrorBody {
                    error: "secret not found",
                },
            ),
        };
        if request.method() == Method::HEAD {
            without_body(response)
        } else {
            response
        }
    }
}

/// The secret in `file`: its UTF-8 text, less one final line break (`echo` and editors add
/// one; the CAS's injected files have none). Errors name the file, never its content.
pub fn read_secret_file(file: &Path) -> Result<SecretString, String> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(file).map_err(|e| format!("AKV_SECRET_FILE {}: {e}", file.display()))?,
    );
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| format!("AKV_SECRET_FILE {}: not valid UTF-8", file.display()))?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    Ok(text.to_owned().into())
}

/// Seconds since the epoch as a float, like Python's `time.time()`.
fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A HEAD response: the GET response's headers (with its length) and no body. HTTP/2 peers
/// reset a stream whose HEAD response carries data.
fn without_body(response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let (mut parts, body) = response.into_parts();
    let length = hyper::body::Body::size_hint(&body).exact().unwrap_or(0);
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(length));
    Response::from_parts(parts, Full::new(Bytes::new()))
}

fn json(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).expect("serializing plain structs cannot fail");
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, uri: &str) -> Request<()> {
        Request::builder().method(method).uri(uri).body(()).unwrap()
    }

    fn body_bytes(response: &Response<Full<Bytes>>) -> Bytes {
        use http_body_util::BodyExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(response.body().clone().collect())
            .unwrap()
            .to_bytes()
    }

    fn body_json(response: &Response<Full<Bytes>>) -> serde_json::Value {
        serde_json::from_slice(&body_bytes(response)).unwrap()
    }

    #[test]
    fn secret_route_returns_secret_and_timestamp_in_flask_key_order() {
        let app = SecretApp::new(Some("s3cr3t".to_string().into()));
        let response = app.respond(&request(Method::GET, "/secret?x=1"));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let text = String::from_utf8(body_bytes(&response).to_vec()).unwrap();
        assert!(text.starts_with("{\"access_timestamp\":"), "{text}");
        assert!(text.ends_with(",\"secret\":\"s3cr3t\"}"), "{text}");
        let value = body_json(&response);
        let ts = value["access_timestamp"].as_f64().unwrap();
        assert!(ts > 1.6e9, "{ts}");
    }

    #[test]
    fn no_secret_is_404_with_the_samples_error() {
        let app = SecretApp::new(None);
        let response = app.respond(&request(Method::GET, "/secret"));
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            body_json(&response),
            serde_json::json!({"error": "secret not found"})
        );
    }

    #[test]
    fn other_paths_and_methods() {
        let app = SecretApp::new(Some("x".to_string().into()));
        for path in ["/", "/secret/", "/secrets", "/SECRET"] {
            let response = app.respond(&request(Method::GET, path));
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        }
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let response = app.respond(&request(method.clone(), "/secret"));
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method}"
            );
            assert_eq!(response.headers()[ALLOW], "GET, HEAD");
        }
    }

    #[test]
    fn secrets_with_json_metacharacters_are_escaped() {
        let app = SecretApp::new(Some("a\"b\\c\nd".to_string().into()));
        let value = body_json(&app.respond(&request(Method::GET, "/secret")));
        assert_eq!(value["secret"], "a\"b\\c\nd");
    }

    #[test]
    fn a_secret_file_is_read_again_on_reload_and_a_failed_read_keeps_the_old_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "first\n").unwrap();
        let app = SecretApp::from_file(file.clone()).unwrap();
        let secret = || body_json(&app.respond(&request(Method::GET, "/secret")))["secret"].clone();
        assert_eq!(secret(), "first");
        std::fs::write(&file, "second").unwrap();
        assert_eq!(secret(), "first", "read only when asked to");
        app.reload_secret().unwrap();
        assert_eq!(secret(), "second");
        std::fs::write(&file, [0xff, 0xfe]).unwrap();
        let error = app.reload_secret().unwrap_err();
        assert_eq!(
            error,
            format!("AKV_SECRET_FILE {}: not valid UTF-8", file.display())
        );
        std::fs::remove_file(&file).unwrap();
        assert!(app.reload_secret().unwrap_err().contains("No such file"));
        assert_eq!(secret(), "second");
        assert!(!format!("{app:?}").contains("second"));
    }

    #[test]
    fn debug_output_does_not_show_the_secret() {
        let app = SecretApp::new(Some("s3cr3t-value".to_string().into()));
        assert!(!format!("{app:?}").contains("s3cr3t-value"));
    }
}
