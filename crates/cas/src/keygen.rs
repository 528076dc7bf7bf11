//! A bound on the CPU that session creates and updates may spend on key generation.
//!
//! Anyone may create a namespace, and one session may ask for 64 RSA-3072 keys (seconds of
//! CPU): unbounded, a few such requests take the CPU that attestations need. Costly work
//! therefore runs behind a semaphore of `limits.max_concurrent_key_generations` slots, with at
//! most `limits.max_queued_key_generations` requests waiting, each for at most
//! `limits.key_generation_wait_secs`; beyond that the caller is told to come back later
//! rather than queued without bound. Each runs on a thread of its own at the lowest
//! scheduling priority (nice 19), so it takes only the CPU attestations leave idle. The slot
//! moves into that thread, so a client that disconnects does not free it while its keys are
//! still being made.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::config::Limits;
use crate::metrics::Metrics;

/// Why costly work was not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Busy {
    /// Every slot is taken and the queue is full.
    QueueFull {
        /// `limits.max_queued_key_generations`.
        max_queued: usize,
    },
    /// No slot came free within the wait.
    Timeout {
        /// `limits.key_generation_wait_secs`.
        waited: Duration,
    },
    /// The blocking task died (a panic): nothing was made.
    Failed(String),
}

/// The gate costly key generation passes.
#[derive(Debug)]
pub struct KeyGenerationGate {
    slots: Arc<Semaphore>,
    max_slots: usize,
    queued: AtomicUsize,
    max_queued: usize,
    max_wait: Duration,
    metrics: Arc<Metrics>,
}

/// One place in the queue, given back when the wait ends (or is cancelled).
struct Queued<'g>(&'g AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl KeyGenerationGate {
    /// The gate `limits` describe.
    pub fn new(limits: &Limits, metrics: Arc<Metrics>) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limits.max_concurrent_key_generations)),
            max_slots: limits.max_concurrent_key_generations,
            queued: AtomicUsize::new(0),
            max_queued: limits.max_queued_key_generations,
            max_wait: Duration::from_secs(limits.key_generation_wait_secs),
            metrics,
        }
    }

    /// The slots.
    pub fn max_slots(&self) -> usize {
        self.max_slots
    }

    /// The longest wait for a slot.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// Runs `work` on the blocking pool: behind a slot when `costly`, at once otherwise (EC
    /// keys take microseconds; making them wait behind RSA would only add latency).
    pub async fn run<T: Send + 'static>(
        &self,
        costly: bool,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        if !costly {
            return tokio::task::spawn_blocking(work)
                .await
                .map_err(|e| Busy::Failed(e.to_string()));
        }
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let _place = self.queue()?;
                tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned())
                    .await
                    .map_err(|_| Busy::Timeout {
                        waited: self.max_wait,
                    })?
                    .map_err(|e| Busy::Failed(e.to_string()))?
            }
        };
        let running = self.metrics.key_generation_started();
        let (reply, answer) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("key-generation".into())
            .spawn(move || {
                // Fields drop in order: the gauge goes down before the slot is given back.
                let slot = (running, permit);
                lowest_priority();
                let value = work();
                // Given back before the answer, so whoever has the answer sees the slot free.
                drop(slot);
                let _ = reply.send(value);
            })
            .map_err(|e| Busy::Failed(format!("cannot start a key generation thread: {e}")))?;
        answer
            .await
            .map_err(|_| Busy::Failed("the key generation thread ended without an answer".into()))
    }

    fn queue(&self) -> Result<Queued<'_>, Busy> {
        let before = self.queued.fetch_add(1, Ordering::SeqCst);
        let place = Queued(&self.queued);
        if before >= self.max_queued {
            return Err(Busy::QueueFull {
                max_queued: self.max_queued,
            });
        }
        Ok(place)
    }
}

/// Makes the calling thread the last in line for the CPU (nice 19: about 1/70 of a normal
/// thread's share when both want it). Where the platform refuses, it runs as it is.
fn lowest_priority() {
    let thread = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(thread), 19) {
        tracing::debug!("key generation keeps its priority: setpriority failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(slots: usize, queued: usize, wait_ms: u64) -> KeyGenerationGate {
        let limits = Limits {
            max_concurrent_key_generations: slots,
            max_queued_key_generations: queued,
            key_generation_wait_secs: 1,
            ..Limits::default()
        };
        let mut gate = KeyGenerationGate::new(&limits, Arc::new(Metrics::default()));
        gate.max_wait = Duration::from_millis(wait_ms);
        gate
    }

    /// Work that blocks until told to finish.
    fn blocked() -> (std::sync::mpsc::Sender<()>, impl FnOnce() + Send + 'static) {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        (tx, move || {
            let _ = rx.recv();
        })
    }

    /// The calling thread's nice value, from `/proc/thread-self/stat` (field 19).
    fn own_nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn costly_work_runs_at_the_lowest_priority_and_cheap_work_does_not() {
        let gate = gate(1, 1, 1_000);
        assert_eq!(gate.run(true, own_nice).await.unwrap(), 19);
        assert_eq!(gate.run(false, own_nice).await.unwrap(), own_nice());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn costly_work_waits_for_a_slot_then_is_refused_when_the_queue_is_full() {
        let gate = Arc::new(gate(1, 1, 60_000));
        let (finish_first, first) = blocked();
        let running = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(true, first).await }
        });
        while gate.metrics.key_generations().0 == 0 {
            tokio::task::yield_now().await;
        }
        // The second waits (the queue holds one), the third is refused at once.
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(true, || 2).await }
        });
        while gate.queued.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            gate.run(true, || 3).await,
            Err(Busy::QueueFull { max_queued: 1 })
        );
        // Cheap work does not wait behind the costly one.
        assert_eq!(gate.run(false, || 4).await, Ok(4));
        finish_first.send(()).unwrap();
        running.await.unwrap().unwrap();
        assert_eq!(waiting.await.unwrap(), Ok(2));
        assert_eq!(gate.metrics.key_generations(), (0, 1));
        assert_eq!(gate.queued.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wait_is_bounded_and_a_cancelled_request_keeps_its_slot_until_the_work_ends() {
        let gate = Arc::new(gate(1, 4, 100));
        let (finish, work) = blocked();
        // The request is dropped (its client went away) while its work runs.
        let cancelled = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(true, work).await }
        });
        while gate.metrics.key_generations().0 == 0 {
            tokio::task::yield_now().await;
        }
        cancelled.abort();
        let _ = cancelled.await;
        // The slot is still taken: the next costly request times out.
        assert_eq!(
            gate.run(true, || ()).await,
            Err(Busy::Timeout {
                waited: Duration::from_millis(100)
            })
        );
        assert_eq!(gate.metrics.key_generations().0, 1);
        finish.send(()).unwrap();
        assert_eq!(gate.run(true, || 5).await, Ok(5));
        assert_eq!(gate.metrics.key_generations(), (0, 1));
    }
}
