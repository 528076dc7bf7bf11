//! Prometheus text metrics. Counters only count requests and events: no label or value ever
//! holds a session's content or a secret.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use custos_serve::{ConnectionStats, Deadline};

/// The CAS's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    attestations: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    rate_limited: AtomicU64,
    body_too_large: AtomicU64,
    enclave_rejected: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// The client API's connections.
    pub client_connections: Arc<ConnectionStats>,
    /// The enclave API's connections.
    pub enclave_connections: Arc<ConnectionStats>,
    key_generations: KeyGenerationGauge,
    key_generation_busy: AtomicU64,
    namespace_quota_exceeded: AtomicU64,
    evidence_busy: AtomicU64,
}

impl Metrics {
    /// Counts a request answered with `status`.
    pub fn request(&self, route: &'static str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((route, status))
            .or_default() += 1;
    }

    /// Counts an attestation by the session's mode (`hardware`, `maa`, `none`) and result
    /// (`allowed`, `denied`, `failed`).
    pub fn attestation(&self, mode: &'static str, result: &'static str) {
        *self
            .attestations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((mode, result))
            .or_default() += 1;
    }

    /// Counts a request refused by the rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request refused for its body size.
    pub fn body_too_large(&self) {
        self.body_too_large.fetch_add(1, Ordering::Relaxed);
    }

    fn listeners(&self) -> [(&'static str, &ConnectionStats); 2] {
        [
            ("client", &self.client_connections),
            ("enclave", &self.enclave_connections),
        ]
    }

    /// A key generation (with RSA keys) started; it counts as running until the guard drops
    /// (the guard moves into the blocking task, so a request cancelled meanwhile still counts).
    pub fn key_generation_started(self: &Arc<Self>) -> KeyGenerationRunning {
        let gauge = &self.key_generations;
        let now = gauge.running.fetch_add(1, Ordering::SeqCst) + 1;
        gauge.peak.fetch_max(now, Ordering::SeqCst);
        KeyGenerationRunning(self.clone())
    }

    /// Key generations running now, and the most that ever ran at once.
    pub fn key_generations(&self) -> (u64, u64) {
        let gauge = &self.key_generations;
        (
            gauge.running.load(Ordering::SeqCst),
            gauge.peak.load(Ordering::SeqCst),
        )
    }

    /// Counts a request refused with 503 because key generation was busy.
    pub fn key_generation_busy(&self) {
        self.key_generation_busy.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a namespace create refused by the per-address quota.
    pub fn namespace_quota_exceeded(&self) {
        self.namespace_quota_exceeded
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a `/v1/attest` refused with 503 because evidence production was busy.
    pub fn evidence_busy(&self) {
        self.evidence_busy.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an enclave API request (`challenge`, `attest`) refused before it redeemed a
    /// nonce (not audited), by `reason` (`bad_request`, `nonce_replayed`, ...).
    pub fn enclave_rejected(&self, request: &'static str, reason: &'static str) {
        *self
            .enclave_rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((request, reason))
            .or_default() += 1;
    }

    /// The Prometheus text exposition, with the store's figures.
    pub fn render(&self, store: StoreFigures, simulation: bool) -> String {
        let StoreFigures {
            sessions,
            audit_events,
            commits,
        } = store;
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "custos_cas_sessions",
            "gauge",
            "Sessions stored.",
            sessions.to_string(),
        );
        metric(
            "custos_cas_audit_events",
            "gauge",
            "Audit events stored.",
            audit_events.to_string(),
        );
        metric(
            "custos_cas_store_commits_total",
            "counter",
            "Store transactions committed (each batch of writes and audit events is one).",
            commits.to_string(),
        );
        metric(
            "custos_cas_simulation",
            "gauge",
            "1 when the CAS's evidence is simulated.",
            u8::from(simulation).to_string(),
        );
        metric(
            "custos_cas_rate_limited_total",
            "counter",
            "Requests refused with 429.",
            self.rate_limited.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "custos_cas_body_too_large_total",
            "counter",
            "Requests refused with 413.",
            self.body_too_large.load(Ordering::Relaxed).to_string(),
        );
        let listeners = self.listeners();
        let sum = |f: &dyn Fn(&ConnectionStats) -> u64| -> String {
            listeners.iter().map(|(_, s)| f(s)).sum::<u64>().to_string()
        };
        let (running, peak) = self.key_generations();
        metric(
            "custos_cas_key_generations_running",
            "gauge",
            "Session creates and updates generating RSA keys now.",
            running.to_string(),
        );
        metric(
            "custos_cas_key_generations_running_peak",
            "gauge",
            "The most RSA key generations that ran at once since start.",
            peak.to_string(),
        );
        metric(
            "custos_cas_key_generation_busy_total",
            "counter",
            "Creates and updates refused with 503 while key generation was busy.",
            self.key_generation_busy.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "custos_cas_namespace_quota_exceeded_total",
            "counter",
            "Namespace creates refused with 429 by the per-address quota.",
            self.namespace_quota_exceeded
                .load(Ordering::Relaxed)
                .to_string(),
        );
        metric(
            "custos_cas_evidence_busy_total",
            "counter",
            "Requests for the CAS's own evidence refused with 503 while it was busy.",
            self.evidence_busy.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "custos_cas_tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed or timed out.",
            sum(&|s| s.handshake_failures() + s.timed_out(Deadline::Handshake)),
        );
        metric(
            "custos_cas_connections",
            "gauge",
            "Open connections (both listeners).",
            sum(&|s| s.open()),
        );
        if let Some(rss) = resident_bytes() {
            metric(
                "custos_cas_resident_memory_bytes",
                "gauge",
                "Resident set size of the CAS process.",
                rss.to_string(),
            );
        }
        self.render_connections(&mut out);
        let _ = writeln!(
            out,
            "# HELP custos_cas_requests_total Requests answered, by route and status.\n# TYPE custos_cas_requests_total counter"
        );
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "custos_cas_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP custos_cas_attestations_total Enclave attestations, by the session's mode and result.\n# TYPE custos_cas_attestations_total counter"
        );
        for ((mode, result), n) in self
            .attestations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "custos_cas_attestations_total{{mode=\"{mode}\",result=\"{result}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP custos_cas_enclave_rejected_total Enclave API requests refused before redeeming a nonce (not audited), by request and reason.\n# TYPE custos_cas_enclave_rejected_total counter"
        );
        for ((request, reason), n) in self
            .enclave_rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "custos_cas_enclave_rejected_total{{request=\"{request}\",reason=\"{reason}\"}} {n}"
            );
        }
        out
    }
}

/// A connection metric: name, Prometheus type, help text and how to read it.
type ConnectionMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ConnectionStats) -> u64,
);

impl Metrics {
    /// Each listener's connection counters, labelled `listener="client"|"enclave"`.
    fn render_connections(&self, out: &mut String) {
        let counters: [ConnectionMetric; 4] = [
            (
                "custos_cas_connections_open",
                "gauge",
                "Connections holding a slot, by listener.",
                ConnectionStats::open,
            ),
            (
                "custos_cas_connections_accepted_total",
                "counter",
                "Connections accepted and given a slot, by listener.",
                ConnectionStats::accepted,
            ),
            (
                "custos_cas_connections_refused_per_address_total",
                "counter",
                "Connections closed at once: their address held limits.max_connections_per_address.",
                ConnectionStats::refused_per_address,
            ),
            (
                "custos_cas_connections_evicted_idle_total",
                "counter",
                "Idle connections closed for a new one at limits.max_connections.",
                ConnectionStats::evicted_idle,
            ),
        ];
        for (name, kind, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (listener, stats) in self.listeners() {
                let _ = writeln!(out, "{name}{{listener=\"{listener}\"}} {}", value(stats));
            }
        }
        let name = "custos_cas_connections_timed_out_total";
        let _ = writeln!(
            out,
            "# HELP {name} Connections closed (body: requests cut off) by a deadline, by listener and deadline.\n# TYPE {name} counter"
        );
        for (listener, stats) in self.listeners() {
            for deadline in Deadline::ALL {
                let _ = writeln!(
                    out,
                    "{name}{{listener=\"{listener}\",deadline=\"{}\"}} {}",
                    deadline.as_str(),
                    stats.timed_out(deadline)
                );
            }
        }
    }
}

/// Key generations running now and the most at once (for the concurrency bound's proof).
#[derive(Debug, Default)]
struct KeyGenerationGauge {
    running: AtomicU64,
    peak: AtomicU64,
}

/// A running key generation: counted until dropped.
#[derive(Debug)]
pub struct KeyGenerationRunning(Arc<Metrics>);

impl Drop for KeyGenerationRunning {
    fn drop(&mut self) {
        self.0
            .key_generations
            .running
            .fetch_sub(1, Ordering::SeqCst);
    }
}

/// The process's resident set size, from `VmRSS` in `/proc/self/status` (Linux).
pub fn resident_bytes() -> Option<u64> {
    resident_bytes_of("self")
}

/// The resident set size of process `pid` (`"self"` or a number), from `/proc` (Linux).
pub fn resident_bytes_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What `/metrics` shows of the store.
#[derive(Debug, Clone, Copy)]
pub struct StoreFigures {
    /// Sessions stored.
    pub sessions: u64,
    /// Audit events stored.
    pub audit_events: u64,
    /// Transactions committed since start.
    pub commits: u64,
}
