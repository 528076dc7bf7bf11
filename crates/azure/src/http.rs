//! The one HTTP client every Azure call goes through: reqwest on rustls with the aws-lc-rs
//! provider, the CAs the caller trusts, bounded timeouts, and the SDK's retry policy (which
//! honours `Retry-After` on 429/503 and backs off exponentially on 408/429/5xx).

use std::sync::Arc;
use std::time::Duration;

use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use rustls_pki_types::CertificateDer;

/// Which certificate authorities TLS servers are checked against.
#[derive(Debug, Clone, Default)]
pub enum Trust {
    /// The platform's trust store (what real Azure endpoints need).
    #[default]
    System,
    /// Only these CAs (an emulator, a private MAA instance).
    Only(Vec<CertificateDer<'static>>),
    /// The platform's trust store and these CAs.
    SystemAnd(Vec<CertificateDer<'static>>),
}

/// Transport settings shared by credentials, Key Vault and MAA clients.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Trusted CAs.
    pub trust: Trust,
    /// Bound on one HTTP exchange, from connecting to the end of the body.
    pub timeout: Duration,
    /// Bound on connecting (TCP and TLS).
    pub connect_timeout: Duration,
    /// Retries after the first attempt, for 408, 429 and 5xx answers and transport errors.
    pub max_retries: u32,
    /// Back-off base: the SDK waits base × 2^n (n = 1, 2, ...) plus up to 255 ms of jitter
    /// before retry n, capped by `max_retry_delay` (at least 1 s). A larger `Retry-After`
    /// from the server wins.
    pub initial_retry_delay: Duration,
    /// Cap on one back-off delay.
    pub max_retry_delay: Duration,
    /// Bound on all attempts of one call together.
    pub max_total_elapsed: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            trust: Trust::System,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_retries: 4,
            initial_retry_delay: Duration::from_millis(200),
            max_retry_delay: Duration::from_secs(10),
            max_total_elapsed: Duration::from_secs(120),
        }
    }
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTPS client: {0}")]
pub struct HttpClientError(String);

impl HttpOptions {
    /// Trust only the CAs in `pem` (e.g. the Azure emulator's CA file's content).
    pub fn trusting_only_pem(pem: &[u8]) -> Result<Self, HttpClientError> {
        Ok(Self {
            trust: Trust::Only(parse_pem_certificates(pem)?),
            ..Self::default()
        })
    }

    /// A reqwest client with these settings.
    pub fn reqwest_client(&self) -> Result<reqwest::Client, HttpClientError> {
        let to_reqwest = |certs: &[CertificateDer<'static>]| {
            certs
                .iter()
                .map(|c| {
                    reqwest::Certificate::from_der(c).map_err(|e| HttpClientError(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .https_only(true)
            .user_agent(concat!("custos/", env!("CARGO_PKG_VERSION")));
        let builder = match &self.trust {
            Trust::System => builder,
            Trust::Only(certs) => builder.tls_certs_only(to_reqwest(certs)?),
            Trust::SystemAnd(certs) => builder.tls_certs_merge(to_reqwest(certs)?),
        };
        builder.build().map_err(|e| HttpClientError(e.to_string()))
    }

    /// Azure SDK client options: our transport and retry policy.
    pub(crate) fn client_options(&self) -> Result<ClientOptions, HttpClientError> {
        let transport = Transport::new(Arc::new(self.reqwest_client()?));
        let retry = RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: to_sdk(self.initial_retry_delay),
            max_retries: self.max_retries,
            max_total_elapsed: to_sdk(self.max_total_elapsed),
            max_delay: to_sdk(self.max_retry_delay),
        });
        Ok(ClientOptions {
            transport: Some(transport),
            retry,
            ..ClientOptions::default()
        })
    }
}

fn to_sdk(d: Duration) -> azure_core::time::Duration {
    azure_core::time::Duration::try_from(d).unwrap_or(azure_core::time::Duration::MAX)
}

/// Every certificate in PEM text.
pub fn parse_pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, HttpClientError> {
    use rustls_pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HttpClientError(format!("trusted CA PEM: {e}")))?;
    if certs.is_empty() {
        return Err(HttpClientError(
            "trusted CA PEM holds no certificate".into(),
        ));
    }
    Ok(certs)
}
