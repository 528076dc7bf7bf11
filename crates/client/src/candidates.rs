//! The replicas a call may go to: a comma-separated list of `host:port` entries, each resolved
//! at every call into one candidate per address (the entry's host kept for SNI), and the order
//! in which a call tries them.
//!
//! Replicas of one CAS serve the same key, so any of them is as good as another. A call starts
//! at a random candidate by default, to spread load (every client starting at the first entry
//! would load it alone, and make every client pay its connect timeout while it is down); a
//! candidate that failed in the last [`FAILED_RECENTLY`] is moved to the end, so a dead replica
//! costs one connect timeout, not one per call. [`StartAt::First`] keeps the list's order, for
//! callers (and tests) that want to know which replica is asked first.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

/// How long a candidate that failed is tried after the others.
pub const FAILED_RECENTLY: Duration = Duration::from_secs(30);

/// How long resolving one list entry may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a call starts in the list of candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// At a random candidate (then in list order, wrapping around): spreads load.
    #[default]
    Random,
    /// At the first candidate: the list's order.
    First,
}

/// One address a call may connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The list entry it came from (`host:port`, as given).
    pub entry: String,
    /// The address it resolved to.
    pub socket: SocketAddr,
}

impl Candidate {
    /// The name sent in SNI: the entry's host. Only SNI: the server is trusted by its key.
    pub(crate) fn server_name(&self) -> ServerName<'static> {
        let host = host_of(&self.entry)
            .trim_start_matches('[')
            .trim_end_matches(']');
        ServerName::try_from(host.to_owned())
            .unwrap_or_else(|_| ServerName::try_from("custos-cas").expect("valid DNS name"))
    }
}

impl fmt::Display for Candidate {
    /// The entry, and the address it resolved to when the entry is a name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entry == self.socket.to_string() {
            f.write_str(&self.entry)
        } else {
            write!(f, "{} ({})", self.entry, self.socket)
        }
    }
}

/// `host` of `host:port` (IPv6 in brackets stays bracketed).
fn host_of(entry: &str) -> &str {
    entry.rsplit_once(':').map_or(entry, |(host, _)| host)
}

/// Splits a list of `host:port` entries separated by commas. Every entry needs a port; an
/// empty or repeated entry is refused, naming it.
pub fn split_list(list: &str) -> Result<Vec<String>, String> {
    let mut entries: Vec<String> = Vec::new();
    for (index, entry) in list.split(',').map(str::trim).enumerate() {
        let position = index + 1;
        if entry.is_empty() {
            return Err(format!(
                "CAS address list {list:?}: entry {position} is empty (expected host:port[,host:port...])"
            ));
        }
        let port_ok = entry
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(format!(
                "CAS address list {list:?}: entry {position} {entry:?} is not host:port"
            ));
        }
        if entries.iter().any(|e| e == entry) {
            return Err(format!(
                "CAS address list {list:?}: {entry} is listed twice"
            ));
        }
        entries.push(entry.to_owned());
    }
    Ok(entries)
}

/// Resolves every entry (names to each of their addresses, in the resolver's order); an entry
/// that does not resolve is returned with the error instead.
pub(crate) async fn resolve(entries: &[String]) -> (Vec<Candidate>, Vec<(String, std::io::Error)>) {
    let mut candidates = Vec::new();
    let mut unresolved = Vec::new();
    for entry in entries {
        let looked_up = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(entry)).await;
        match looked_up {
            Ok(Ok(sockets)) => {
                let before = candidates.len();
                for socket in sockets {
                    if !candidates[before..]
                        .iter()
                        .any(|c: &Candidate| c.socket == socket)
                    {
                        candidates.push(Candidate {
                            entry: entry.clone(),
                            socket,
                        });
                    }
                }
                if candidates.len() == before {
                    unresolved.push((
                        entry.clone(),
                        std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
                    ));
                }
            }
            Ok(Err(e)) => unresolved.push((entry.clone(), e)),
            Err(_) => unresolved.push((
                entry.clone(),
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("resolving took longer than {} s", RESOLVE_TIMEOUT.as_secs()),
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
    let rotated = (start..count).chain(0..start);
    let (fresh, failed): (Vec<usize>, Vec<usize>) = rotated.partition(|&i| !failed_recently(i));
    fresh.into_iter().chain(failed).collect()
}

/// The candidates that failed recently, shared by a client's clones.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecentFailures(Arc<Mutex<HashMap<SocketAddr, Instant>>>);

impl RecentFailures {
    pub(crate) fn record(&self, socket: SocketAddr) {
        if let Ok(mut failed) = self.0.lock() {
            failed.retain(|_, at| at.elapsed() < FAILED_RECENTLY);
            failed.insert(socket, Instant::now());
        }
    }

    pub(crate) fn forget(&self, socket: SocketAddr) {
        if let Ok(mut failed) = self.0.lock() {
            failed.remove(&socket);
        }
    }

    pub(crate) fn contains(&self, socket: SocketAddr) -> bool {
        self.0.lock().is_ok_and(|failed| {
            failed
                .get(&socket)
                .is_some_and(|at| at.elapsed() < FAILED_RECENTLY)
        })
    }
}

/// A random index below `count` (0 when the random generator fails: the order then is the
/// list's, which is still correct).
pub(crate) fn random_start(count: usize) -> usize {
    let mut bytes = [0u8; 4];
    if count == 0 || aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0;
    }
    u32::from_le_bytes(bytes) as usize % count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_commas_and_refuse_empty_portless_and_repeated_entries() {
        assert_eq!(split_list("a:1").unwrap(), ["a:1"]);
        assert_eq!(
            split_list(" a:1 , 10.0.0.2:8081,[::1]:7").unwrap(),
            ["a:1", "10.0.0.2:8081", "[::1]:7"]
        );
        let error = split_list("a:1,,b:2").unwrap_err();
        assert!(error.contains("entry 2 is empty"), "{error}");
        let error = split_list("a:1,b").unwrap_err();
        assert!(error.contains("entry 2 \"b\" is not host:port"), "{error}");
        let error = split_list("a:1,a:1").unwrap_err();
        assert!(error.contains("a:1 is listed twice"), "{error}");
        assert!(split_list("").is_err());
        assert!(split_list(":80").is_err());
    }

    #[test]
    fn the_order_rotates_from_the_start_and_puts_recent_failures_last() {
        assert_eq!(order(3, 0, |_| false), [0, 1, 2]);
        assert_eq!(order(3, 1, |_| false), [1, 2, 0]);
        assert_eq!(order(3, 5, |_| false), [2, 0, 1]);
        assert_eq!(order(3, 0, |i| i == 0), [1, 2, 0]);
        assert_eq!(order(4, 2, |i| i == 2 || i == 0), [3, 1, 2, 0]);
        assert_eq!(order(2, 0, |_| true), [0, 1]);
        assert!(order(0, 3, |_| false).is_empty());
        // Every candidate exactly once, whatever the start.
        for start in 0..10 {
            let mut seen = order(5, start, |i| i % 2 == 0);
            seen.sort_unstable();
            assert_eq!(seen, [0, 1, 2, 3, 4]);
        }
    }

    #[test]
    fn random_starts_stay_in_range_and_vary() {
        let starts: Vec<usize> = (0..64).map(|_| random_start(4)).collect();
        assert!(starts.iter().all(|&s| s < 4));
        assert!(starts.iter().any(|&s| s != starts[0]), "{starts:?}");
        assert_eq!(random_start(0), 0);
    }

    #[test]
    fn recent_failures_are_remembered_and_forgotten() {
        assert_eq!(
            FAILED_RECENTLY,
            Duration::from_secs(30),
            "as docs/cli.md says"
        );
        let failures = RecentFailures::default();
        let socket: SocketAddr = "127.0.0.2:8081".parse().unwrap();
        assert!(!failures.contains(socket));
        failures.record(socket);
        assert!(failures.contains(socket));
        failures.forget(socket);
        assert!(!failures.contains(socket));
    }

    #[tokio::test]
    async fn names_resolve_to_each_address_and_keep_the_name_for_sni() {
        let entries = vec!["localhost:8081".to_owned(), "127.0.0.3:9".to_owned()];
        let (candidates, unresolved) = resolve(&entries).await;
        assert!(unresolved.is_empty(), "{unresolved:?}");
        let from_name: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| c.entry == "localhost:8081")
            .collect();
        assert!(!from_name.is_empty());
        assert!(from_name.iter().all(|c| c.socket.ip().is_loopback()));
        assert_eq!(
            from_name[0].to_string(),
            format!("localhost:8081 ({})", from_name[0].socket)
        );
        assert_eq!(
            from_name[0].server_name(),
            ServerName::try_from("localhost").unwrap()
        );
        let literal = candidates.last().unwrap();
        assert_eq!(literal.to_string(), "127.0.0.3:9");

        let (candidates, unresolved) = resolve(&["no-such-host.invalid:1".to_owned()]).await;
        assert!(candidates.is_empty());
        assert_eq!(unresolved[0].0, "no-such-host.invalid:1");
    }
}
