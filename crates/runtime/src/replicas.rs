//! The CAS replicas an attestation may use (`CUSTOS_CAS_ADDR=a:18765,b:18765`, or a name that
//! resolves to several addresses): each resolved at every attestation into one candidate per
//! address (the name kept for TLS: SNI and, with `CUSTOS_CAS_CA`, the certificate's name), and
//! the order they are tried in.
//!
//! An attestation starts at a random replica: many workloads starting at the first would load
//! it alone, and all pay its connect timeout while it is down. A replica that failed in the
//! last [`FAILED_RECENTLY`] (in this process: a supervised service re-attests for days) is
//! tried last; the challenge's replica is asked first for the attest that follows.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::config::Endpoint;

/// How long a replica that failed is tried after the others.
pub const FAILED_RECENTLY: Duration = Duration::from_secs(30);

/// How long resolving one name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// One address an attestation may connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The configured replica (its host is the name TLS checks).
    pub endpoint: Endpoint,
    /// The address it resolved to.
    pub socket: SocketAddr,
}

impl Candidate {
    /// Whether the endpoint is a name (not an IP address), so that the connection must be
    /// steered to [`Candidate::socket`].
    pub fn is_name(&self) -> bool {
        self.endpoint.host.parse::<IpAddr>().is_err()
    }
}

impl std::fmt::Display for Candidate {
    /// The endpoint, and the address it resolved to when it is a name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_name() {
            write!(f, "{} ({})", self.endpoint, self.socket)
        } else {
            write!(f, "{}", self.endpoint)
        }
    }
}

/// Resolves every endpoint (names to each of their addresses); one that does not resolve is
/// returned with the reason instead.
pub async fn resolve(endpoints: &[Endpoint]) -> (Vec<Candidate>, Vec<(Endpoint, String)>) {
    let mut candidates = Vec::new();
    let mut unresolved = Vec::new();
    for endpoint in endpoints {
        if let Ok(ip) = endpoint.host.parse::<IpAddr>() {
            candidates.push(Candidate {
                endpoint: endpoint.clone(),
                socket: SocketAddr::new(ip, endpoint.port),
            });
            continue;
        }
        let lookup = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port));
        match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
            Ok(Ok(sockets)) => {
                let before = candidates.len();
                for socket in sockets {
                    if !candidates[before..]
                        .iter()
                        .any(|c: &Candidate| c.socket == socket)
                    {
                        candidates.push(Candidate {
                            endpoint: endpoint.clone(),
                            socket,
                        });
                    }
                }
                if candidates.len() == before {
                    unresolved.push((endpoint.clone(), "cannot resolve: no address".into()));
                }
            }
            Ok(Err(e)) => unresolved.push((endpoint.clone(), format!("cannot resolve: {e}"))),
            Err(_) => unresolved.push((
                endpoint.clone(),
                format!(
                    "cannot resolve: no answer within {} s",
                    RESOLVE_TIMEOUT.as_secs()
                ),
            )),
        }
    }
    (candidates, unresolved)
}

/// The order to try `count` candidates in: from `start` on, wrapping around, then those that
/// `failed_recently` moved to the end (keeping their order).
pub fn order(count: usize, start: usize, failed_recently: impl Fn(usize) -> bool) -> Vec<usize> {
    let start = if count == 0 { 0 } else { start % count };
    let (fresh, failed): (Vec<usize>, Vec<usize>) = (start..count)
        .chain(0..start)
        .partition(|&i| !failed_recently(i));
    fresh.into_iter().chain(failed).collect()
}

/// A random index below `count` (0 if the random generator fails: the list's order).
pub fn random_start(count: usize) -> usize {
    let mut bytes = [0u8; 4];
    if count == 0 || aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0;
    }
    u32::from_le_bytes(bytes) as usize % count
}

/// The replicas that failed recently, for this process.
fn failures() -> &'static Mutex<HashMap<SocketAddr, Instant>> {
    static FAILURES: OnceLock<Mutex<HashMap<SocketAddr, Instant>>> = OnceLock::new();
    FAILURES.get_or_init(Mutex::default)
}

/// Remembers that `socket` failed.
pub fn record_failure(socket: SocketAddr) {
    if let Ok(mut failed) = failures().lock() {
        failed.retain(|_, at| at.elapsed() < FAILED_RECENTLY);
        failed.insert(socket, Instant::now());
    }
}

/// Forgets a failure of `socket` (it answered).
pub fn record_success(socket: SocketAddr) {
    if let Ok(mut failed) = failures().lock() {
        failed.remove(&socket);
    }
}

/// Whether `socket` failed in the last [`FAILED_RECENTLY`].
pub fn failed_recently(socket: SocketAddr) -> bool {
    failures().lock().is_ok_and(|failed| {
        failed
            .get(&socket)
            .is_some_and(|at| at.elapsed() < FAILED_RECENTLY)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_rotates_from_the_start_and_puts_recent_failures_last() {
        assert_eq!(order(3, 0, |_| false), [0, 1, 2]);
        assert_eq!(order(3, 2, |_| false), [2, 0, 1]);
        assert_eq!(order(3, 1, |i| i == 1), [2, 0, 1]);
        assert_eq!(order(3, 0, |_| true), [0, 1, 2]);
        assert!(order(0, 1, |_| false).is_empty());
    }

    #[test]
    fn failures_are_remembered_until_the_replica_answers() {
        assert_eq!(
            FAILED_RECENTLY,
            Duration::from_secs(30),
            "as docs/cli.md says"
        );
        let socket: SocketAddr = "127.0.0.9:18765".parse().unwrap();
        assert!(!failed_recently(socket));
        record_failure(socket);
        assert!(failed_recently(socket));
        record_success(socket);
        assert!(!failed_recently(socket));
    }

    #[tokio::test]
    async fn ip_addresses_are_used_as_they_are_and_names_resolved() {
        let endpoints = vec![
            Endpoint::parse("127.0.0.2:18765", 18765).unwrap(),
            Endpoint::parse("localhost", 18765).unwrap(),
            Endpoint::parse("no-such-host.invalid", 18765).unwrap(),
        ];
        let (candidates, unresolved) = resolve(&endpoints).await;
        assert_eq!(candidates[0].to_string(), "127.0.0.2:18765");
        assert!(!candidates[0].is_name());
        let named = &candidates[1];
        assert!(named.is_name() && named.socket.ip().is_loopback());
        assert_eq!(
            named.to_string(),
            format!("localhost:18765 ({})", named.socket)
        );
        assert_eq!(unresolved.len(), 1);
        assert_eq!(unresolved[0].0.host, "no-such-host.invalid");
        assert!(
            unresolved[0].1.starts_with("cannot resolve"),
            "{unresolved:?}"
        );
    }
}
