//! Which connections hold a slot: the global limit, the per-address cap, and what each
//! connection is doing (so the longest-idle one can be closed for a new one).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::limits::ConnectionLimits;
use crate::stats::{ConnectionStats, Deadline};

/// The open connections of one listener.
#[derive(Debug)]
pub(crate) struct Registry {
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    epoch: Instant,
    /// Signalled when a slot is freed or a connection becomes idle (evictable).
    changed: Notify,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    open: HashMap<u64, (IpAddr, Arc<Activity>)>,
    per_address: HashMap<IpAddr, usize>,
}

/// The outcome of asking for a slot.
pub(crate) enum Admission {
    Admitted(Slot),
    /// The address already holds its maximum: close the new connection.
    OverAddressCap,
    /// Every slot is taken by a connection with a request in flight: wait.
    Full,
}

/// The client address every per-address limit counts by (connections here; in the CAS also
/// request rates and quotas): IPv4 addresses one by one (IPv4-mapped IPv6 ones too), IPv6
/// by /64 prefix — one host usually owns a whole /64, so limits per IPv6 address would be none.
pub fn client_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

impl Registry {
    pub(crate) fn new(limits: ConnectionLimits, stats: Arc<ConnectionStats>) -> Arc<Self> {
        Arc::new(Self {
            limits,
            stats,
            epoch: Instant::now(),
            changed: Notify::new(),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a connection from `ip`: refused over the address's cap; at the global
    /// limit the longest-idle connection is evicted for it, or, with none idle, `Full`.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Admission {
        let key = client_address(ip);
        let mut state = self.lock();
        let from_address = state.per_address.get(&key).copied().unwrap_or(0);
        if from_address >= self.limits.max_connections_per_address {
            self.stats.refuse_per_address();
            return Admission::OverAddressCap;
        }
        if state.open.len() >= self.limits.max_connections {
            let victim = state
                .open
                .iter()
                .filter(|(_, (_, activity))| activity.is_idle())
                .min_by_key(|(_, (_, activity))| activity.idle_since_ms())
                .map(|(id, _)| *id);
            let Some(victim) = victim else {
                return Admission::Full;
            };
            if let Some(activity) = Self::remove(&mut state, &self.stats, victim) {
                activity.evicted.notify_one();
                self.stats.evict_idle();
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        let activity = Arc::new(Activity {
            registry_epoch: self.epoch,
            in_flight: AtomicU32::new(0),
            served: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            evicted: Notify::new(),
            request_ended: Notify::new(),
            changed: Arc::downgrade(self),
        });
        state.open.insert(id, (key, activity.clone()));
        *state.per_address.entry(key).or_default() += 1;
        self.stats.opened();
        Admission::Admitted(Slot {
            registry: self.clone(),
            id,
            activity,
        })
    }

    fn remove(state: &mut State, stats: &ConnectionStats, id: u64) -> Option<Arc<Activity>> {
        let (key, activity) = state.open.remove(&id)?;
        if let Some(count) = state.per_address.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                state.per_address.remove(&key);
            }
        }
        stats.closed();
        Some(activity)
    }

    fn release(&self, id: u64) {
        let removed = Self::remove(&mut self.lock(), &self.stats, id);
        if removed.is_some() {
            self.changed.notify_waiters();
        }
    }

    fn has_room(&self) -> bool {
        let state = self.lock();
        state.open.len() < self.limits.max_connections
            || state.open.values().any(|(_, activity)| activity.is_idle())
    }

    /// Resolves once a new connection could get a slot (one is free or one is idle).
    pub(crate) async fn wait_for_room(&self) {
        self.wait_until(|| self.has_room()).await;
    }

    /// Resolves once no connection holds a slot.
    pub(crate) async fn wait_empty(&self) {
        self.wait_until(|| self.lock().open.is_empty()).await;
    }

    async fn wait_until(&self, condition: impl Fn() -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before checking, so a change between the check and the wait is seen.
            changed.as_mut().enable();
            if condition() {
                return;
            }
            changed.await;
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A connection's slot; dropping it frees the slot (if it was not evicted already).
#[derive(Debug)]
pub(crate) struct Slot {
    registry: Arc<Registry>,
    id: u64,
    pub(crate) activity: Arc<Activity>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.release(self.id);
    }
}

/// What one connection is doing: requests in flight and since when it has been idle.
#[derive(Debug)]
pub(crate) struct Activity {
    registry_epoch: Instant,
    in_flight: AtomicU32,
    served: AtomicU64,
    idle_since_ms: AtomicU64,
    /// Signalled when the registry took the slot away for a new connection.
    pub(crate) evicted: Notify,
    /// Signalled when a request ends (the deadline may now be sooner).
    request_ended: Notify,
    changed: std::sync::Weak<Registry>,
}

impl Activity {
    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    fn idle_since_ms(&self) -> u64 {
        self.idle_since_ms.load(Ordering::Acquire)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.registry_epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Restarts the idle clock (the handshake is done: the first-request deadline starts).
    pub(crate) fn touch(&self) {
        self.idle_since_ms.store(self.now_ms(), Ordering::Release);
    }

    /// A request started; it ends when the guard is dropped (with the response body).
    pub(crate) fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served.fetch_add(1, Ordering::AcqRel);
        Busy {
            activity: self.clone(),
        }
    }

    /// The deadline that applies now, if any: none while a request is in flight.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Deadline)> {
        if !self.is_idle() {
            return None;
        }
        let (allowed, which) = if self.served.load(Ordering::Acquire) == 0 {
            (limits.first_request_timeout, Deadline::FirstRequest)
        } else {
            (limits.idle_timeout, Deadline::Idle)
        };
        let since = self.registry_epoch + Duration::from_millis(self.idle_since_ms());
        Some((since + allowed, which))
    }

    /// Resolves when the connection has been without a request for too long, naming which
    /// deadline passed.
    pub(crate) async fn expired(&self, limits: &ConnectionLimits) -> Deadline {
        loop {
            let ended = self.request_ended.notified();
            tokio::pin!(ended);
            // Registered before reading the state, so a request ending meanwhile is seen.
            ended.as_mut().enable();
            match self.deadline(limits) {
                Some((at, which)) if at <= Instant::now() => return which,
                Some((at, _)) => tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {}
                    () = ended => {}
                },
                // Busy: no deadline until the request ends.
                None => ended.await,
            }
        }
    }
}

/// A request in flight.
#[derive(Debug)]
pub(crate) struct Busy {
    activity: Arc<Activity>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.activity;
        activity.touch();
        if activity.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            activity.request_ended.notify_waiters();
            if let Some(registry) = activity.changed.upgrade() {
                registry.changed.notify_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_address: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            max_connections_per_address: per_address,
            ..ConnectionLimits::default()
        }
    }

    fn admitted(admission: Admission) -> Slot {
        match admission {
            Admission::Admitted(slot) => slot,
            Admission::OverAddressCap => panic!("refused: over the address cap"),
            Admission::Full => panic!("refused: full"),
        }
    }

    #[test]
    fn per_address_cap_counts_ipv6_by_prefix_and_frees_on_drop() {
        let stats = Arc::new(ConnectionStats::default());
        let registry = Registry::new(limits(10, 2), stats.clone());
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        let first = admitted(registry.admit(a));
        let _second = admitted(registry.admit(b));
        assert!(matches!(registry.admit(a), Admission::OverAddressCap));
        assert_eq!(stats.refused_per_address(), 1);
        let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let _third = admitted(registry.admit(other));
        drop(first);
        let _again = admitted(registry.admit(a));
        assert_eq!(stats.open(), 3);
    }

    #[test]
    fn at_the_limit_the_longest_idle_goes_and_busy_ones_stay() {
        let stats = Arc::new(ConnectionStats::default());
        let registry = Registry::new(limits(2, 10), stats.clone());
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let old = admitted(registry.admit(ip));
        std::thread::sleep(Duration::from_millis(5));
        let newer = admitted(registry.admit(ip));
        let _third = admitted(registry.admit(ip));
        assert_eq!(stats.evicted_idle(), 1);
        assert_eq!(stats.open(), 2);
        // The oldest was evicted (its notification is stored), the newer one was not.
        {
            let evicted = old.activity.evicted.notified();
            tokio::pin!(evicted);
            assert!(evicted.as_mut().enable());
            let kept = newer.activity.evicted.notified();
            tokio::pin!(kept);
            assert!(!kept.as_mut().enable());
        }
        // Both remaining busy: no room.
        let _busy = (newer.activity.begin(), _third.activity.begin());
        assert!(matches!(registry.admit(ip), Admission::Full));
        assert!(!registry.has_room());
        drop(old);
        assert_eq!(stats.open(), 2);
    }
}
