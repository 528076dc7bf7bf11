//! The writer thread: groups concurrent write requests into one durable transaction (group
//! commit), applies the audit retention, and keeps the verified view current.
//!
//! With the embedded store this writer is the only one, and the state is the one it left. With
//! PostgreSQL each batch first reads the sealed state inside its transaction, which holds the
//! state row's lock: writers of all replicas take turns and each batch first catches up with
//! what the others committed ([`super::view::catch_up`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use zeroize::Zeroizing;

use super::integrity::{self, Current, Known, State};
use super::tables::{Record, Transaction};
use super::view::{self, check_current};
use super::{Job, Shared, Staged, StoreError, WriteTx, audit_address, db_error};
use crate::audit::Retention;

/// Most audit events removed by retention in one transaction.
pub(super) const PRUNE_CHUNK: u64 = 512;
/// Most requests committed in one transaction.
const MAX_BATCH: usize = 1024;

/// Where the writer's transactions come from.
pub(super) enum Source {
    /// The embedded database in [`Shared`].
    Redb,
    /// This writer's own connection to PostgreSQL.
    Postgres(Box<super::postgres::backend::PgWriter>),
}

impl Source {
    fn begin<'a>(
        &'a mut self,
        shared: &'a Shared,
    ) -> Result<Box<dyn Transaction + 'a>, StoreError> {
        match (self, &shared.backend) {
            (Self::Redb, super::Backend::Embedded(db)) => super::embedded::begin(db),
            (Self::Postgres(writer), _) => writer.begin(),
            (Self::Redb, _) => Err(StoreError::Database(
                "the writer and the store disagree on the backend".into(),
            )),
        }
    }
}

/// The writer thread's state.
pub(super) struct Writer {
    pub shared: Arc<Shared>,
    pub source: Source,
    /// The store-wide state as of the last commit (or catch-up).
    pub state: State,
    pub retention: Retention,
    /// Set after a pruning error (logged once): retention stops until the next start.
    pub prune_failed: bool,
}

impl Writer {
    pub fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        // Retention is applied at start-up too (limits may have been lowered).
        let mut behind = true;
        loop {
            let first = if behind {
                match rx.try_recv() {
                    Ok(job) => Some(job),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                match rx.blocking_recv() {
                    Some(job) => Some(job),
                    None => break,
                }
            };
            let mut jobs: Vec<Job> = first.into_iter().collect();
            while !jobs.is_empty() && jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            behind = self.batch(jobs);
        }
    }

    /// Runs `jobs` and one chunk of retention in one transaction. Returns whether more audit
    /// events are due for removal.
    fn batch(&mut self, jobs: Vec<Job>) -> bool {
        let shared = self.shared.clone();
        let mut source = std::mem::replace(&mut self.source, Source::Redb);
        let behind = match source.begin(&shared) {
            Ok(txn) => self.batch_in(&shared, txn, jobs),
            Err(e) => {
                tracing::error!("store: cannot begin a write transaction: {e}");
                fail_all(&shared, jobs, &e);
                false
            }
        };
        self.source = source;
        behind
    }

    fn batch_in(
        &mut self,
        shared: &Shared,
        mut txn: Box<dyn Transaction + '_>,
        jobs: Vec<Job>,
    ) -> bool {
        if let Err(e) = self.catch_up(shared, txn.as_ref()) {
            tracing::error!("store: {e}");
            txn.abort();
            fail_all(shared, jobs, &e);
            return false;
        }
        let before = self.state.clone();
        let only_pruning = jobs.is_empty();
        let mut pending: HashMap<String, Current> = HashMap::new();
        let mut failure: Option<StoreError> = None;
        let mut completions = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mut tx = WriteTx {
                tables: Some(txn.tables()),
                shared,
                pending: &pending,
                staged: Vec::new(),
                failed: failure.clone(),
            };
            let completion = job(&mut tx);
            let staged = std::mem::take(&mut tx.staged);
            if failure.is_none()
                && !staged.is_empty()
                && let Err(e) = self.apply(shared, txn.as_mut(), staged, &mut pending)
            {
                failure = Some(e);
            }
            completions.push(completion);
        }
        let mut pruned = 0;
        if failure.is_none() {
            pruned = self.prune(shared, txn.as_mut());
        }
        if only_pruning && pruned == 0 {
            txn.abort();
            self.state = before;
            return false;
        }
        self.state.generation += 1;
        if failure.is_none()
            && let Err(e) = self.write_state(shared, txn.as_mut())
        {
            failure = Some(e);
        }
        // Published before the commit: a snapshot older than it is checked against `prev`.
        let undo = match failure {
            None => self.publish(shared, pending, &before),
            Some(_) => Vec::new(),
        };
        let result = match failure {
            Some(e) => {
                txn.abort();
                Err(e)
            }
            None => txn.commit(),
        };
        if let Err(e) = &result {
            tracing::error!(
                "store: batch of {} writes not committed: {e}",
                completions.len()
            );
            self.state = before.clone();
            self.unpublish(shared, undo, before);
        } else {
            shared.commits.fetch_add(1, Ordering::Relaxed);
            shared.audit_len.store(
                self.state.audit_next - self.state.audit_first,
                Ordering::Relaxed,
            );
        }
        for completion in completions {
            completion(result.clone());
        }
        result.is_ok() && pruned == PRUNE_CHUNK
    }

    /// Reads the sealed state in `txn`; where another replica committed since, brings the
    /// view up to it.
    fn catch_up(&mut self, shared: &Shared, txn: &dyn Transaction) -> Result<(), StoreError> {
        if let super::Backend::Embedded(_) = shared.backend {
            // This writer is the only one: the stored state is the one it left.
            self.state = shared.view()?.state.clone();
            return Ok(());
        }
        let stored = view::stored_state(txn.tables(), &shared.sealer)?;
        let mut view = shared.view_mut()?;
        view::catch_up(&mut view, txn.tables(), &shared.digest, stored)?;
        self.state = view.state.clone();
        shared.audit_len.store(
            self.state.audit_next - self.state.audit_first,
            Ordering::Relaxed,
        );
        Ok(())
    }

    fn apply(
        &mut self,
        shared: &Shared,
        txn: &mut dyn Transaction,
        staged: Vec<Staged>,
        pending: &mut HashMap<String, Current>,
    ) -> Result<(), StoreError> {
        let sealer = &shared.sealer;
        // Sessions first: a request's secrets are bound to the session revision it writes.
        let (sessions, others): (Vec<_>, Vec<_>) = staged
            .into_iter()
            .partition(|s| matches!(s, Staged::Session(_)));
        let rewrites_secrets = |name: &str| {
            others
                .iter()
                .any(|s| matches!(s, Staged::Secrets(n, _) if n == name))
        };
        for change in sessions {
            let Staged::Session(record) = change else {
                continue;
            };
            let name = record.name.as_str();
            let version = record.version();
            let old = self.lookup(shared, pending, name)?;
            if let Some(old) = &old
                && version.rev <= old.version.rev
            {
                return Err(StoreError::Integrity(format!(
                    "session {name:?}: a write of revision {} does not follow the stored revision {}",
                    version.rev, old.version.rev
                )));
            }
            let address = Record::Session.address(name);
            let plain = Zeroizing::new(serde_json::to_vec(&record).map_err(db_error)?);
            let sealed = integrity::seal_record(sealer, &address, &version, &plain)?;
            txn.put_record(Record::Session, name, &sealed)?;
            let secrets = old.as_ref().is_some_and(|o| o.secrets);
            if let Some(old) = old.as_ref().filter(|o| o.secrets)
                && !rewrites_secrets(name)
            {
                // Kept secrets follow their session to its new revision.
                let address = Record::Secrets.address(name);
                let (found, plain) = match txn.record(Record::Secrets, name)? {
                    Some(v) => integrity::open_record(sealer, &address, &v)?,
                    None => return check_current(&address, Some(&old.version), None),
                };
                check_current(&address, Some(&old.version), Some(&found))?;
                let sealed = integrity::seal_record(sealer, &address, &version, &plain)?;
                txn.put_record(Record::Secrets, name, &sealed)?;
            }
            self.set_current(
                shared,
                txn,
                pending,
                name,
                old,
                Current { version, secrets },
            )?;
        }
        for change in others {
            match change {
                Staged::Session(_) => {}
                Staged::Secrets(name, plain) => {
                    let address = Record::Secrets.address(&name);
                    let current = self.lookup(shared, pending, &name)?.ok_or_else(|| {
                        StoreError::Integrity(format!(
                            "record {address:?}: its session does not exist"
                        ))
                    })?;
                    let sealed =
                        integrity::seal_record(sealer, &address, &current.version, &plain)?;
                    txn.put_record(Record::Secrets, &name, &sealed)?;
                    if !current.secrets {
                        let new = Current {
                            version: current.version.clone(),
                            secrets: true,
                        };
                        self.set_current(shared, txn, pending, &name, Some(current), new)?;
                    }
                }
                Staged::Audit(event) => {
                    let seq = self.state.audit_next;
                    let plain = serde_json::to_vec(&event).map_err(db_error)?;
                    let sealed = sealer.seal(&audit_address(seq), &plain)?;
                    txn.put_audit(seq, event.session.as_deref(), &sealed)?;
                    self.state.audit_next = seq + 1;
                }
                #[cfg(test)]
                Staged::Raw(kind, name, value) => txn.put_record(kind, &name, &value)?,
            }
        }
        Ok(())
    }

    /// Session `name`'s entry as of this batch.
    fn lookup(
        &self,
        shared: &Shared,
        pending: &HashMap<String, Current>,
        name: &str,
    ) -> Result<Option<Current>, StoreError> {
        Ok(match pending.get(name) {
            Some(c) => Some(c.clone()),
            None => shared.view()?.revisions.current(name).cloned(),
        })
    }

    /// Replaces session `name`'s index entry `old` by `new`, in the table and the digest.
    fn set_current(
        &mut self,
        shared: &Shared,
        txn: &mut dyn Transaction,
        pending: &mut HashMap<String, Current>,
        name: &str,
        old: Option<Current>,
        new: Current,
    ) -> Result<(), StoreError> {
        txn.put_index(name, &new, self.state.generation + 1)?;
        match &old {
            Some(old) => self.state.toggle(shared.digest.entry(name, old)),
            None => self.state.sessions += 1,
        }
        self.state.toggle(shared.digest.entry(name, &new));
        pending.insert(name.to_owned(), new);
        Ok(())
    }

    /// Removes the oldest audit events beyond the retention limits, at most [`PRUNE_CHUNK`].
    /// Returns how many were removed. A failure is logged once and stops retention (it
    /// would fail every batch otherwise); the events removed before it stay consistent.
    fn prune(&mut self, shared: &Shared, txn: &mut dyn Transaction) -> u64 {
        if self.prune_failed {
            return 0;
        }
        match self.prune_chunk(shared, txn) {
            Ok(n) => n,
            Err((n, e)) => {
                tracing::error!(
                    "store: audit retention stopped until the next start: {e} (removed {n} events in this batch)"
                );
                self.prune_failed = true;
                n
            }
        }
    }

    fn prune_chunk(
        &mut self,
        shared: &Shared,
        txn: &mut dyn Transaction,
    ) -> Result<u64, (u64, StoreError)> {
        let Retention {
            max_events,
            max_age_ms,
        } = self.retention;
        if max_events == 0 && max_age_ms == 0 {
            return Ok(0);
        }
        let cutoff = crate::audit::now_ms().saturating_sub(max_age_ms);
        let mut removed = 0;
        while removed < PRUNE_CHUNK && self.state.audit_first < self.state.audit_next {
            let seq = self.state.audit_first;
            let over_count =
                max_events > 0 && self.state.audit_next - self.state.audit_first > max_events;
            let sealed = txn
                .audit_event(seq)
                .map_err(|e| (removed, e))?
                .ok_or_else(|| {
                    let e = StoreError::Integrity(format!("audit event {seq} is missing"));
                    (removed, e)
                })?;
            let entry =
                super::open_audit(&shared.sealer, seq, &sealed).map_err(|e| (removed, e))?;
            let too_old = max_age_ms > 0 && entry.event.time_ms < cutoff;
            if !over_count && !too_old {
                break;
            }
            txn.remove_audit(seq, entry.event.session.as_deref())
                .map_err(|e| (removed, e))?;
            self.state.audit_first = seq + 1;
            removed += 1;
        }
        Ok(removed)
    }

    fn write_state(&self, shared: &Shared, txn: &mut dyn Transaction) -> Result<(), StoreError> {
        txn.put_meta(integrity::STATE_KEY, &self.state.seal(&shared.sealer)?)
    }

    /// Makes this batch's versions and state current (as of the new generation); returns
    /// what they replaced, for [`Self::unpublish`].
    fn publish(
        &self,
        shared: &Shared,
        pending: HashMap<String, Current>,
        before: &State,
    ) -> Vec<(String, Option<Known>)> {
        let Ok(mut view) = shared.view_mut() else {
            return Vec::new();
        };
        debug_assert_eq!(view.state, *before);
        let mut undo = Vec::with_capacity(pending.len());
        for (name, current) in pending {
            let old = view.revisions.map.get(&name).cloned();
            let known = Known {
                current,
                since: self.state.generation,
                prev: old.clone().map(|k| (k.current, k.since)),
                gap: false,
            };
            view.revisions.map.insert(name.clone(), known);
            undo.push((name, old));
        }
        view.state = self.state.clone();
        undo
    }

    fn unpublish(&self, shared: &Shared, undo: Vec<(String, Option<Known>)>, before: State) {
        let Ok(mut view) = shared.view_mut() else {
            return;
        };
        for (name, old) in undo {
            match old {
                Some(known) => view.revisions.map.insert(name, known),
                None => view.revisions.map.remove(&name),
            };
        }
        view.state = before;
    }
}

/// Answers every job of a batch that could not run with `error`.
fn fail_all(shared: &Shared, jobs: Vec<Job>, error: &StoreError) {
    let pending = HashMap::new();
    for job in jobs {
        // A job run with a failed transaction does not call its closure.
        let mut tx = WriteTx {
            tables: None,
            shared,
            pending: &pending,
            staged: Vec::new(),
            failed: Some(error.clone()),
        };
        job(&mut tx)(Err(error.clone()));
    }
}
