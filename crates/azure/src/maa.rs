//! A Microsoft Azure Attestation client: submits evidence (`attest/SgxEnclave` with a quote,
//! `attest/OpenEnclave` with an Open Enclave report, runtime data as Binary or JSON) and
//! fetches the instance's signing keys (`/certs`) and OpenID metadata over TLS with the
//! caller's trusted CAs. Keys and metadata are cached; a token whose `kid` is not among the
//! cached keys causes one refetch, which is how MAA key rotation is picked up.
//!
//! It only talks HTTP: verifying tokens is `custos-attestation`'s job (`MaaTokenVerifier`),
//! which takes the JWKS bytes this client hands over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::http::{HttpClientError, HttpOptions};

/// The api-version used unless another is chosen.
pub const DEFAULT_MAA_API_VERSION: &str = "2022-08-01";
/// How long signing keys and metadata are reused before they are fetched again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(3600);
/// Bound on answers (tokens and key sets are a few tens of KiB).
const MAX_ANSWER: usize = 1 << 20;

/// Evidence for MAA.
#[derive(Debug, Clone, Copy)]
pub enum MaaEvidence<'a> {
    /// An SGX quote, for `attest/SgxEnclave`.
    SgxQuote(&'a [u8]),
    /// An Open Enclave report (16-byte header + quote), for `attest/OpenEnclave`.
    OpenEnclaveReport(&'a [u8]),
}

/// Runtime data sent with the evidence; `report_data[0..32]` must be its SHA-256.
#[derive(Debug, Clone, Copy)]
pub enum RuntimeData<'a> {
    /// Returned base64url-encoded as `x-ms-sgx-ehd`.
    Binary(&'a [u8]),
    /// Returned parsed, as the object `x-ms-runtime`.
    Json(&'a [u8]),
}

/// An MAA call failed.
#[derive(Debug, thiserror::Error)]
pub enum MaaClientError {
    /// The instance URL is unusable.
    #[error("MAA instance {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] HttpClientError),
    /// MAA answered with an error.
    #[error("MAA {url}{path}: HTTP {status}{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Service {
        /// The instance.
        url: String,
        /// The request path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// MAA's error code.
        code: Option<String>,
        /// MAA's message.
        message: String,
    },
    /// No answer: connection, TLS or timeout.
    #[error("MAA {url}{path}: {message}")]
    Request {
        /// The instance.
        url: String,
        /// The request path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The answer is not what MAA sends.
    #[error("MAA {url}{path}: unexpected answer: {reason}")]
    Malformed {
        /// The instance.
        url: String,
        /// The request path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The signing keys of an instance, as fetched from `/certs`.
#[derive(Debug, Clone)]
pub struct SigningKeys {
    /// The JWKS document as received (for `custos_attestation::maa::MaaKeySet::from_jwks`).
    pub jwks: Arc<Vec<u8>>,
    /// The key ids in it.
    pub kids: Vec<String>,
    fetched: Instant,
}

impl SigningKeys {
    /// Whether a key with this id is in the set.
    pub fn contains(&self, kid: &str) -> bool {
        self.kids.iter().any(|k| k == kid)
    }
}

/// A client for one MAA instance.
#[derive(Debug)]
pub struct MaaClient {
    url: String,
    api_version: String,
    http: reqwest::Client,
    options: HttpOptions,
    keys: Mutex<Option<SigningKeys>>,
    metadata: Mutex<Option<(Arc<Value>, Instant)>>,
}

impl MaaClient {
    /// A client for the instance at `url` (e.g. `https://sharedeus.eus.attest.azure.net`).
    pub fn new(url: &str, http: &HttpOptions) -> Result<Self, MaaClientError> {
        let invalid = |reason: &str| MaaClientError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = azure_core::http::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        if parsed.scheme() != "https" {
            return Err(invalid("MAA is reached over HTTPS only"));
        }
        if parsed.query().is_some() || !matches!(parsed.path(), "" | "/") {
            return Err(invalid("an instance URL has no path or query"));
        }
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            api_version: DEFAULT_MAA_API_VERSION.to_owned(),
            http: http.reqwest_client()?,
            options: http.clone(),
            keys: Mutex::new(None),
            metadata: Mutex::new(None),
        })
    }

    /// Uses another api-version for attestation calls.
    pub fn with_api_version(mut self, api_version: &str) -> Self {
        self.api_version = api_version.to_owned();
        self
    }

    /// The instance URL (the `iss` of its tokens).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Submits evidence; returns MAA's token (a JWT, not yet verified).
    pub async fn attest(
        &self,
        evidence: MaaEvidence<'_>,
        runtime_data: Option<RuntimeData<'_>>,
    ) -> Result<String, MaaClientError> {
        self.attest_with(evidence, runtime_data, None).await
    }

    /// Submits evidence to be evaluated under a draft policy; MAA answers with an unsigned
    /// token (`alg: none`) that shows what the policy would issue — never to be trusted.
    pub async fn attest_with_draft_policy(
        &self,
        evidence: MaaEvidence<'_>,
        runtime_data: Option<RuntimeData<'_>>,
        draft_policy: &str,
    ) -> Result<String, MaaClientError> {
        self.attest_with(evidence, runtime_data, Some(draft_policy))
            .await
    }

    async fn attest_with(
        &self,
        evidence: MaaEvidence<'_>,
        runtime_data: Option<RuntimeData<'_>>,
        draft_policy: Option<&str>,
    ) -> Result<String, MaaClientError> {
        let (kind, field, bytes) = match evidence {
            MaaEvidence::SgxQuote(q) => ("SgxEnclave", "quote", q),
            MaaEvidence::OpenEnclaveReport(r) => ("OpenEnclave", "report", r),
        };
        let mut body = json!({ field: URL_SAFE_NO_PAD.encode(bytes) });
        if let Some(runtime) = runtime_data {
            let (data, data_type) = match runtime {
                RuntimeData::Binary(d) => (d, "Binary"),
                RuntimeData::Json(d) => (d, "JSON"),
            };
            body["runtimeData"] =
                json!({ "data": URL_SAFE_NO_PAD.encode(data), "dataType": data_type });
        }
        if let Some(policy) = draft_policy {
            body["draftPolicyForAttestation"] = json!(policy);
        }
        let path = format!("/attest/{kind}?api-version={}", self.api_version);
        let answer = self.send(reqwest::Method::POST, &path, Some(&body)).await?;
        answer["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| MaaClientError::Malformed {
                url: self.url.clone(),
                path,
                reason: "no \"token\" string".into(),
            })
    }

    /// The signing keys, from the cache while it is fresh.
    pub async fn signing_keys(&self) -> Result<SigningKeys, MaaClientError> {
        let mut cached = self.keys.lock().await;
        if let Some(keys) = cached
            .as_ref()
            .filter(|k| k.fetched.elapsed() < KEY_CACHE_TTL)
        {
            return Ok(keys.clone());
        }
        let keys = self.fetch_keys().await?;
        *cached = Some(keys.clone());
        Ok(keys)
    }

    /// The signing keys for verifying `token`: the cached set if it has the token's `kid`,
    /// otherwise the set fetched once more (callers then verify, and fail if the `kid` is
    /// still unknown). Concurrent callers share one fetch.
    pub async fn signing_keys_for(&self, token: &str) -> Result<SigningKeys, MaaClientError> {
        let kid = token_kid(token);
        let mut cached = self.keys.lock().await;
        if let Some(keys) = cached
            .as_ref()
            .filter(|k| k.fetched.elapsed() < KEY_CACHE_TTL)
            && kid.as_deref().is_none_or(|kid| keys.contains(kid))
        {
            return Ok(keys.clone());
        }
        let keys = self.fetch_keys().await?;
        *cached = Some(keys.clone());
        Ok(keys)
    }

    async fn fetch_keys(&self) -> Result<SigningKeys, MaaClientError> {
        let (answer, raw) = self.send_raw(reqwest::Method::GET, "/certs", None).await?;
        let malformed = |reason: &str| MaaClientError::Malformed {
            url: self.url.clone(),
            path: "/certs".into(),
            reason: reason.to_owned(),
        };
        let keys = answer["keys"]
            .as_array()
            .ok_or_else(|| malformed("no \"keys\" array"))?;
        let kids = keys
            .iter()
            .map(|k| {
                k["kid"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| malformed("a key without \"kid\""))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SigningKeys {
            jwks: Arc::new(raw),
            kids,
            fetched: Instant::now(),
        })
    }

    /// The instance's OpenID metadata (`/.well-known/openid-configuration`), cached.
    pub async fn openid_metadata(&self) -> Result<Arc<Value>, MaaClientError> {
        let mut cached = self.metadata.lock().await;
        if let Some((metadata, fetched)) = cached.as_ref()
            && fetched.elapsed() < KEY_CACHE_TTL
        {
            return Ok(metadata.clone());
        }
        let path = "/.well-known/openid-configuration";
        let metadata = Arc::new(self.send(reqwest::Method::GET, path, None).await?);
        if metadata["issuer"].as_str() != Some(self.url.as_str()) {
            return Err(MaaClientError::Malformed {
                url: self.url.clone(),
                path: path.into(),
                reason: format!("issuer is {}, expected {}", metadata["issuer"], self.url),
            });
        }
        *cached = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, MaaClientError> {
        self.send_raw(method, path, body)
            .await
            .map(|(value, _)| value)
    }

    /// One call with retries: 429 and 503 wait for `Retry-After` (or the back-off, whichever
    /// is longer), 408/5xx and transport errors back off, up to `max_retries` retries.
    async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(Value, Vec<u8>), MaaClientError> {
        let url = format!("{}{path}", self.url);
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header("accept", "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let (retry_after, error) = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = retry_after(response.headers());
                    let bytes = read_limited(response)
                        .await
                        .map_err(|message| self.request_error(path, message))?;
                    if (200..300).contains(&status) {
                        let value = serde_json::from_slice(&bytes).map_err(|e| {
                            MaaClientError::Malformed {
                                url: self.url.clone(),
                                path: path.to_owned(),
                                reason: format!("not JSON ({e})"),
                            }
                        })?;
                        return Ok((value, bytes));
                    }
                    let error = self.service_error(path, status, &bytes);
                    if !matches!(status, 408 | 429 | 500 | 502 | 503 | 504) {
                        return Err(error);
                    }
                    (
                        if matches!(status, 429 | 503) {
                            retry_after
                        } else {
                            None
                        },
                        error,
                    )
                }
                Err(e) => (
                    None,
                    self.request_error(path, custos_ids::fmt::error_chain(&e)),
                ),
            };
            attempt += 1;
            if attempt > self.options.max_retries
                || started.elapsed() >= self.options.max_total_elapsed
            {
                return Err(error);
            }
            let backoff = self
                .options
                .initial_retry_delay
                .saturating_mul(1 << attempt.min(16))
                .min(self.options.max_retry_delay);
            tokio::time::sleep(retry_after.map_or(backoff, |r| r.max(backoff))).await;
        }
    }

    fn request_error(&self, path: &str, message: String) -> MaaClientError {
        MaaClientError::Request {
            url: self.url.clone(),
            path: path.to_owned(),
            message,
        }
    }

    fn service_error(&self, path: &str, status: u16, body: &[u8]) -> MaaClientError {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|b| b["error"][name].as_str().map(str::to_owned))
        };
        MaaClientError::Service {
            url: self.url.clone(),
            path: path.to_owned(),
            status,
            code: field("code"),
            message: field("message").unwrap_or_else(|| {
                String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
            }),
        }
    }
}

/// The `kid` of a JWT's header, unverified.
fn token_kid(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header.trim_end_matches('=')).ok()?).ok()?;
    header["kid"].as_str().map(str::to_owned)
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| custos_ids::fmt::error_chain(&e))?
    {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(format!("answer larger than {MAX_ANSWER} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
