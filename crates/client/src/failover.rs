//! Calls that move to another replica when one cannot serve them.
//!
//! A call tries the candidates ([`crate::candidates`]) one at a time, each at most once, and
//! moves to the next only when the replica it asked did not process the request:
//!
//! - it could not connect: refused, reset, unreachable, TCP connect or TLS handshake timed out
//!   ([`Timeouts`](crate::Timeouts)), or the connection closed before the request was written;
//! - it answered **503** (`busy`, `store_error`, an unhealthy `/healthz`): a CAS answers 503
//!   before it changes anything, so the request may go to another replica;
//! - a `GET` failed after it was sent (a reset while reading the answer): reading twice is
//!   harmless.
//!
//! Everything else is the call's answer, from the first replica that gave it: a 403 denial or
//! any other 4xx (another replica would say the same: they share one store); a replica whose
//! key is not the pinned one ([`ClientError::PinMismatch`]: a misconfigured or foreign server
//! is reported, not skipped); and a `POST` or `PUT` whose connection failed after the request
//! was written ([`ClientError::Interrupted`]): the CAS may have committed it, and sending it
//! again elsewhere could answer `409 exists` for the caller's own success.
//!
//! When every candidate failed, the call fails with [`ClientError::AllFailed`], which names
//! each replica and its reason; with a single candidate, its own error is returned as is.

use std::fmt;

use hyper::{Method, StatusCode};

use crate::candidates::{self, Candidate, StartAt, random_start};
use crate::cas::{CasClient, ClientError, Response};
use crate::connection::{self, Connection, Failure};

/// One replica a call tried, and why it did not serve the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The replica (the list entry, and the address it resolved to when it is a name).
    pub addr: String,
    /// Why it failed.
    pub reason: String,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.addr, self.reason)
    }
}

/// What one candidate did with a call.
enum Outcome {
    /// The call's answer.
    Answer(Response),
    /// The call's error.
    Error(ClientError),
    /// This replica cannot serve it; another may. Holds what to report if none can.
    Next(Result<Response, ClientError>),
}

impl CasClient {
    /// The candidates of a call, in the order it tries them; entries that did not resolve
    /// come last, as failures.
    pub async fn candidates(&self) -> (Vec<Candidate>, Vec<(String, ClientError)>) {
        if let Some(only) = self.only_candidate() {
            return (vec![only.clone()], Vec::new());
        }
        let (candidates, unresolved) = candidates::resolve(self.entries()).await;
        let start = match self.start_at_setting() {
            StartAt::First => 0,
            StartAt::Random => random_start(candidates.len()),
        };
        let failures = self.recent_failures();
        let ordered = candidates::order(candidates.len(), start, |i| {
            failures.contains(candidates[i].socket)
        })
        .into_iter()
        .map(|i| candidates[i].clone())
        .collect();
        let unresolved = unresolved
            .into_iter()
            .map(|(entry, source)| {
                let error = ClientError::Connect {
                    addr: entry.clone(),
                    source,
                };
                (entry, error)
            })
            .collect();
        (ordered, unresolved)
    }

    /// Opens a connection (HTTP/1.1, kept alive) to the first replica that accepts one.
    pub async fn connect(&self) -> Result<Connection, ClientError> {
        let (candidates, unresolved) = self.candidates().await;
        let mut failed: Vec<(String, Result<Response, ClientError>)> = unresolved
            .into_iter()
            .map(|(addr, error)| (addr, Err(error)))
            .collect();
        for candidate in &candidates {
            match connection::open(self.connector(), candidate, self.timeouts_setting()).await {
                Ok(connection) => {
                    self.recent_failures().forget(candidate.socket);
                    return Ok(connection);
                }
                Err(Failure::NotSent(e) | Failure::MaybeProcessed(e)) => {
                    self.recent_failures().record(candidate.socket);
                    failed.push((candidate.to_string(), Err(e)));
                }
                Err(Failure::Final(e)) => return Err(e),
            }
        }
        // Only errors were collected: the result is one.
        Err(all_failed(failed).err().unwrap_or_else(|| {
            ClientError::Address(format!("no CAS address to connect to in {:?}", self.addr()))
        }))
    }

    /// One request on a new connection, to the first replica that serves it.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ClientError> {
        let (candidates, unresolved) = self.candidates().await;
        let mut failed: Vec<(String, Result<Response, ClientError>)> = unresolved
            .into_iter()
            .map(|(addr, error)| (addr, Err(error)))
            .collect();
        for candidate in &candidates {
            match self.once(candidate, &method, path, body.clone()).await {
                Outcome::Answer(response) => {
                    self.recent_failures().forget(candidate.socket);
                    return Ok(response);
                }
                Outcome::Error(error) => return Err(error),
                Outcome::Next(reported) => {
                    self.recent_failures().record(candidate.socket);
                    failed.push((candidate.to_string(), reported));
                }
            }
        }
        all_failed(failed)
    }

    /// The request at one replica.
    async fn once(
        &self,
        candidate: &Candidate,
        method: &Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Outcome {
        let opened = connection::open(self.connector(), candidate, self.timeouts_setting()).await;
        let exchanged = match opened {
            Ok(mut connection) => connection.exchange(method.clone(), path, body).await,
            Err(failure) => Err(failure),
        };
        match exchanged {
            Ok(response) if response.status == StatusCode::SERVICE_UNAVAILABLE => {
                Outcome::Next(Ok(response))
            }
            Ok(response) => Outcome::Answer(response),
            Err(Failure::NotSent(e)) => Outcome::Next(Err(e)),
            Err(Failure::MaybeProcessed(e)) if is_read_only(method) => Outcome::Next(Err(e)),
            Err(Failure::MaybeProcessed(e)) => Outcome::Error(ClientError::Interrupted {
                addr: candidate.to_string(),
                method: method.clone(),
                path: path.to_owned(),
                reason: match e {
                    ClientError::Http { reason, .. } => reason,
                    other => other.to_string(),
                },
            }),
            Err(Failure::Final(e)) => Outcome::Error(e),
        }
    }
}

/// Methods whose repetition changes nothing.
fn is_read_only(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Every candidate failed: with one, what it gave (a 503 answer stays an answer, for the caller
/// to decode); with several, [`ClientError::AllFailed`] naming each.
fn all_failed(
    mut failed: Vec<(String, Result<Response, ClientError>)>,
) -> Result<Response, ClientError> {
    if failed.len() == 1 {
        return failed.remove(0).1;
    }
    if failed.is_empty() {
        return Err(ClientError::Address(
            "the CAS address list resolved to no address".into(),
        ));
    }
    let attempts = failed
        .into_iter()
        .map(|(addr, outcome)| Attempt {
            addr,
            reason: match outcome {
                Ok(response) => unavailable_reason(&response),
                Err(error) => reason_without_addr(&error),
            },
        })
        .collect();
    Err(ClientError::AllFailed { attempts })
}

/// A 503 answer in words: its status, the CAS's code and message, and `Retry-After`.
fn unavailable_reason(response: &Response) -> String {
    let mut reason = match response.error() {
        Some(error) => format!(
            "{} {}: {}",
            response.status.as_u16(),
            error.code,
            error.message
        ),
        None => format!("HTTP {}", response.status),
    };
    if let Some(after) = &response.retry_after {
        reason.push_str(&format!(" (Retry-After: {after})"));
    }
    reason
}

/// An error's text without the address it starts with (the attempt names it already).
fn reason_without_addr(error: &ClientError) -> String {
    match error {
        ClientError::Connect { source, .. } => format!("cannot connect: {source}"),
        ClientError::Tls { source, .. } => format!("TLS failed: {source}"),
        ClientError::Http { reason, .. } => format!("HTTP failed: {reason}"),
        other => other.to_string(),
    }
}
