//! Request counters, served as JSON at `GET /_emulator/stats` on every listener.
//!
//! Tests use them to check client behaviour the emulator can see, e.g. that a thousand secret
//! reads cost one token request.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Live counters.
#[derive(Debug, Default)]
pub struct Stats {
    token_requests: AtomicU64,
    tokens_issued: AtomicU64,
    keyvault_requests: AtomicU64,
    keyvault_challenges: AtomicU64,
    keyvault_reads: AtomicU64,
    maa_attestations: AtomicU64,
    maa_key_requests: AtomicU64,
    injected_faults: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    /// Requests to the token endpoint, successful or not.
    pub token_requests: u64,
    /// Access tokens issued.
    pub tokens_issued: u64,
    /// Requests to Key Vault, including unauthenticated ones.
    pub keyvault_requests: u64,
    /// 401 challenges Key Vault answered.
    pub keyvault_challenges: u64,
    /// Secrets and certificates Key Vault returned.
    pub keyvault_reads: u64,
    /// Attestation tokens MAA issued.
    pub maa_attestations: u64,
    /// Requests for MAA's signing keys (`/certs`).
    pub maa_key_requests: u64,
    /// Requests answered or delayed by a fault rule.
    pub injected_faults: u64,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    /// See [`StatsSnapshot::token_requests`].
    TokenRequests,
    /// See [`StatsSnapshot::tokens_issued`].
    TokensIssued,
    /// See [`StatsSnapshot::keyvault_requests`].
    KeyVaultRequests,
    /// See [`StatsSnapshot::keyvault_challenges`].
    KeyVaultChallenges,
    /// See [`StatsSnapshot::keyvault_reads`].
    KeyVaultReads,
    /// See [`StatsSnapshot::maa_attestations`].
    MaaAttestations,
    /// See [`StatsSnapshot::maa_key_requests`].
    MaaKeyRequests,
    /// See [`StatsSnapshot::injected_faults`].
    InjectedFaults,
}

impl Stats {
    /// Adds one to `counter`.
    pub fn bump(&self, counter: Counter) {
        let c = match counter {
            Counter::TokenRequests => &self.token_requests,
            Counter::TokensIssued => &self.tokens_issued,
            Counter::KeyVaultRequests => &self.keyvault_requests,
            Counter::KeyVaultChallenges => &self.keyvault_challenges,
            Counter::KeyVaultReads => &self.keyvault_reads,
            Counter::MaaAttestations => &self.maa_attestations,
            Counter::MaaKeyRequests => &self.maa_key_requests,
            Counter::InjectedFaults => &self.injected_faults,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            token_requests: get(&self.token_requests),
            tokens_issued: get(&self.tokens_issued),
            keyvault_requests: get(&self.keyvault_requests),
            keyvault_challenges: get(&self.keyvault_challenges),
            keyvault_reads: get(&self.keyvault_reads),
            maa_attestations: get(&self.maa_attestations),
            maa_key_requests: get(&self.maa_key_requests),
            injected_faults: get(&self.injected_faults),
        }
    }
}
