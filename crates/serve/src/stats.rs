//! Counters of one listener, for a server's metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a connection was closed by a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// The TLS handshake took too long.
    Handshake,
    /// No complete first request head in time after the handshake.
    FirstRequest,
    /// No request in flight for the idle timeout.
    Idle,
    /// An HTTP/1 request head took too long (after its first bytes).
    Header,
    /// A request body stalled.
    Body,
}

impl Deadline {
    /// Every deadline, for exporting each counter.
    pub const ALL: [Deadline; 5] = [
        Deadline::Handshake,
        Deadline::FirstRequest,
        Deadline::Idle,
        Deadline::Header,
        Deadline::Body,
    ];

    /// A label value (`handshake`, `first_request`, `idle`, `header`, `body`).
    pub fn as_str(self) -> &'static str {
        match self {
            Deadline::Handshake => "handshake",
            Deadline::FirstRequest => "first_request",
            Deadline::Idle => "idle",
            Deadline::Header => "header",
            Deadline::Body => "body",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What one listener's connections did. Shared (`Arc`) between the server and the metrics.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    open: AtomicU64,
    accepted: AtomicU64,
    refused_per_address: AtomicU64,
    evicted_idle: AtomicU64,
    handshake_failures: AtomicU64,
    handshakes_resumed: AtomicU64,
    timed_out: [AtomicU64; 5],
}

impl ConnectionStats {
    /// Connections holding a slot now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections accepted and given a slot, in all.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed at once because their address held its maximum.
    pub fn refused_per_address(&self) -> u64 {
        self.refused_per_address.load(Ordering::Relaxed)
    }

    /// Idle connections closed to make room for a new one at the global limit.
    pub fn evicted_idle(&self) -> u64 {
        self.evicted_idle.load(Ordering::Relaxed)
    }

    /// TLS handshakes that failed (not counting those that timed out).
    pub fn handshake_failures(&self) -> u64 {
        self.handshake_failures.load(Ordering::Relaxed)
    }

    /// TLS handshakes that resumed an earlier session (no certificate, no signature).
    pub fn handshakes_resumed(&self) -> u64 {
        self.handshakes_resumed.load(Ordering::Relaxed)
    }

    /// Connections (or, for `Body`, requests) cut off by `deadline`.
    pub fn timed_out(&self, deadline: Deadline) -> u64 {
        self.timed_out[deadline.index()].load(Ordering::Relaxed)
    }

    /// Connections cut off by any deadline.
    pub fn timed_out_total(&self) -> u64 {
        Deadline::ALL.iter().map(|d| self.timed_out(*d)).sum()
    }

    pub(crate) fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn refuse_per_address(&self) {
        self.refused_per_address.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn evict_idle(&self) {
        self.evicted_idle.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn handshake_failed(&self) {
        self.handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn handshake_resumed(&self) {
        self.handshakes_resumed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn time_out(&self, deadline: Deadline) {
        self.timed_out[deadline.index()].fetch_add(1, Ordering::Relaxed);
    }
}
