//! How many connections a server holds and how long each may do nothing.

use std::time::Duration;

/// Connection limits and timeouts of one listener.
///
/// The defaults suit an internet-facing API whose requests are small and quick: enough
/// connections for a busy cluster, few enough per address that one client needs sixteen
/// addresses to fill the server, and timeouts that free an abandoned slot within seconds
/// while giving slow but honest clients ample time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once. At the limit the longest-idle connection is closed for
    /// a new one; when none is idle, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Connections from one client address at once (IPv6: one /64 prefix); more are closed
    /// at once.
    pub max_connections_per_address: usize,
    /// Time for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time from the handshake (plain TCP: from accepting) to a complete first request head.
    pub first_request_timeout: Duration,
    /// Time a connection may stay open without a request in flight (HTTP/1 keep-alive, and
    /// HTTP/2 with no stream open).
    pub idle_timeout: Duration,
    /// Time to receive a request head once its first bytes arrived (HTTP/1).
    pub header_read_timeout: Duration,
    /// Time to receive a whole request body, from the first time the handler waits for it.
    pub body_timeout: Duration,
    /// Interval of HTTP/2 keep-alive pings, which find dead peers during long requests.
    pub http2_keep_alive_interval: Duration,
    /// Time for a ping's acknowledgement before the HTTP/2 connection is closed.
    pub http2_keep_alive_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            // Bounds file descriptors and memory (a TLS connection holds tens of KiB).
            max_connections: 1024,
            // A NAT gateway or a node full of workloads shares one address; one client
            // needs 16 addresses to fill the default 1024.
            max_connections_per_address: 64,
            handshake_timeout: Duration::from_secs(10),
            first_request_timeout: Duration::from_secs(10),
            // Longer than the think time of a client reusing its connection, shorter than
            // common client pool timeouts (reqwest 90 s), so clients rarely reuse a closed one.
            idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            // A 256 KiB body (the CAS's maximum) over a link of ~10 KB/s.
            body_timeout: Duration::from_secs(30),
            http2_keep_alive_interval: Duration::from_secs(20),
            http2_keep_alive_timeout: Duration::from_secs(10),
        }
    }
}

impl ConnectionLimits {
    /// Checks that every limit is above zero; the error names the first that is not.
    pub fn validate(&self) -> Result<(), String> {
        let counts = [
            ("max_connections", self.max_connections),
            (
                "max_connections_per_address",
                self.max_connections_per_address,
            ),
        ];
        for (name, value) in counts {
            if value == 0 {
                return Err(format!("{name} must be above 0 (got 0)"));
            }
        }
        let durations = [
            ("handshake_timeout", self.handshake_timeout),
            ("first_request_timeout", self.first_request_timeout),
            ("idle_timeout", self.idle_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("body_timeout", self.body_timeout),
            ("http2_keep_alive_interval", self.http2_keep_alive_interval),
            ("http2_keep_alive_timeout", self.http2_keep_alive_timeout),
        ];
        for (name, value) in durations {
            if value.is_zero() {
                return Err(format!("{name} must be above 0 (got 0)"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_is_named() {
        ConnectionLimits::default().validate().unwrap();
        let zero = ConnectionLimits {
            idle_timeout: Duration::ZERO,
            ..ConnectionLimits::default()
        };
        assert_eq!(
            zero.validate().unwrap_err(),
            "idle_timeout must be above 0 (got 0)"
        );
        let zero = ConnectionLimits {
            max_connections_per_address: 0,
            ..ConnectionLimits::default()
        };
        assert!(zero.validate().unwrap_err().contains("per_address"));
    }
}
