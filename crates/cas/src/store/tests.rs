use super::embedded::{AUDIT, AUDIT_BY_SESSION, KEY_CHECK_V1, META, REVISIONS, SECRETS, SESSIONS};
use super::writer::PRUNE_CHUNK;
use super::*;
use crate::audit::{self, AuditAction, Outcome};
use crate::seal::MasterKey;
use ::redb::{Database, ReadableDatabase, TableDefinition};

fn sealer(byte: u8) -> Sealer {
    Sealer::new(&MasterKey::from_bytes([byte; 32])).unwrap()
}

fn record(name: &str, text: &str) -> SessionRecord {
    SessionRecord {
        name: name.into(),
        hash: "00".repeat(32),
        text: text.into(),
        creator: KeyHash::from_bytes([1; 32]),
        created_ms: 1,
        updated_ms: 1,
        revision: 1,
    }
}

#[derive(Debug, PartialEq)]
enum TestError {
    Exists,
    Store(String),
}

impl From<StoreError> for TestError {
    fn from(e: StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

async fn create(store: &Store, name: &'static str, text: &'static str) -> Result<(), TestError> {
    store
        .write(move |tx| {
            if tx.session(name)?.is_some() {
                return Err(TestError::Exists);
            }
            tx.put_session(record(name, text));
            let mut event = AuditEvent::new(
                crate::audit::now_ms(),
                AuditAction::SessionCreate,
                Outcome::Allowed,
            );
            event.session = Some(name.into());
            tx.append_audit(event);
            Ok(())
        })
        .await
}

#[tokio::test]
async fn writes_are_durable_sealed_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cas.redb");
    {
        let store = Store::open(&path, sealer(1)).unwrap();
        create(&store, "ns", "name: ns # PLAINTEXT-MARKER")
            .await
            .unwrap();
        store
            .write(|tx| {
                tx.put_secrets("ns", Zeroizing::new(b"SECRET-MARKER".to_vec()));
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        assert_eq!(create(&store, "ns", "again").await, Err(TestError::Exists));
        store.close();
    }
    let raw = std::fs::read(&path).unwrap();
    for marker in [&b"PLAINTEXT-MARKER"[..], b"SECRET-MARKER"] {
        assert!(
            !raw.windows(marker.len()).any(|w| w == marker),
            "plaintext found in the database file"
        );
    }
    let store = Store::open(&path, sealer(1)).unwrap();
    let read = store.read().unwrap();
    let got = read.session("ns").unwrap().unwrap();
    assert_eq!(got.text, "name: ns # PLAINTEXT-MARKER");
    assert_eq!(&**read.secrets("ns").unwrap().unwrap(), b"SECRET-MARKER");
    assert_eq!(read.audit_for_session("ns", 0, 10).unwrap().len(), 1);
    assert_eq!(store.audit_len(), 1);
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cas.redb");
    Store::open(&path, sealer(1)).unwrap().close();
    let err = Store::open(&path, sealer(2)).unwrap_err();
    assert!(
        err.to_string().contains("master key does not open"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failed_request_leaves_nothing_and_does_not_spoil_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("cas.redb"), sealer(1)).unwrap();
    let failing = store.write(|tx| {
        tx.put_session(record("half", "x"));
        tx.append_audit(AuditEvent::new(
            crate::audit::now_ms(),
            AuditAction::SessionCreate,
            Outcome::Allowed,
        ));
        Err::<(), _>(TestError::Exists)
    });
    let fine = create(&store, "whole", "y");
    let (a, b) = tokio::join!(failing, fine);
    assert_eq!(a, Err(TestError::Exists));
    b.unwrap();
    let read = store.read().unwrap();
    assert!(read.session("half").unwrap().is_none());
    assert!(read.session("whole").unwrap().is_some());
    assert_eq!(read.audit(0, 100).unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_creates_of_one_name_admit_exactly_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("cas.redb"), sealer(1)).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(
            async move { create(&store, "same", "x").await },
        ));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn prefix_listing_and_audit_paging() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("cas.redb"), sealer(1)).unwrap();
    for name in ["a", "a/x", "a/y", "ab", "b"] {
        create(&store, name, "t").await.unwrap();
    }
    let mut event = AuditEvent::new(
        crate::audit::now_ms(),
        AuditAction::SessionRead,
        Outcome::Allowed,
    );
    event.session = Some("a/x".into());
    store.record(event).await;
    // `record` does not wait: a later durable write is committed after it.
    create(&store, "c", "t").await.unwrap();
    let read = store.read().unwrap();
    let names: Vec<_> = read
        .sessions_with_prefix("a/")
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["a/x", "a/y"]);
    assert_eq!(read.session_count().unwrap(), 6);
    let events = read.audit_for_session("a/x", 0, 10).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].event.action, AuditAction::SessionRead);
    let later = read.audit_for_session("a/x", events[0].seq, 10).unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(read.audit(0, 3).unwrap().len(), 3);
}

const HASH_1: &str = "1111111111111111111111111111111111111111111111111111111111111111";

/// Writes revision `revision + 1` of session `name` (hash [`HASH_1`]) and its secrets.
async fn update(store: &Store, name: &'static str, secret: &'static [u8]) {
    store
        .write(move |tx| {
            let current = tx.session(name)?.unwrap();
            tx.put_session(SessionRecord {
                hash: HASH_1.into(),
                revision: current.revision + 1,
                ..current
            });
            tx.put_secrets(name, Zeroizing::new(secret.to_vec()));
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
}

async fn put_secrets(store: &Store, name: &'static str, secret: &'static [u8]) {
    store
        .write(move |tx| {
            tx.put_secrets(name, Zeroizing::new(secret.to_vec()));
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
}

/// Puts `value` back under `key` in `table` of the closed store at `path`, with redb
/// directly, as someone with write access to the file would.
fn put_back(path: &Path, table: TableDefinition<&str, &[u8]>, key: &str, value: &[u8]) {
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(table).unwrap().insert(key, value).unwrap();
    txn.commit().unwrap();
}

/// The value under `key` in `table` of the closed store at `path`, copied out with redb
/// directly.
fn copy_out(path: &Path, table: TableDefinition<&str, &[u8]>, key: &str) -> Vec<u8> {
    let db = Database::create(path).unwrap();
    let txn = db.begin_read().unwrap();
    let value = txn.open_table(table).unwrap().get(key).unwrap().unwrap();
    value.value().to_vec()
}

fn assert_refused(err: &StoreError, record: &str) {
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "record {record} is not current: expected revision 2 (hash {HASH_1}), found revision 1 (hash {})",
            "00".repeat(32)
        )),
        "{text}"
    );
}

#[tokio::test]
async fn an_old_session_value_put_back_is_refused_at_read_and_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cas.redb");
    let store = Store::open(&path, sealer(1)).unwrap();
    create(&store, "ns", "revision 1").await.unwrap();
    put_secrets(&store, "ns", b"old secret").await;
    let old = store
        .read()
        .unwrap()
        .raw_get(Record::Session, "ns")
        .unwrap();
    update(&store, "ns", b"new secret").await;

    // Put back while the CAS runs: refused at read (and in a write transaction).
    store
        .write(move |tx| {
            tx.raw_insert(Record::Session, "ns", &old);
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    assert_refused(
        &store.read().unwrap().session("ns").unwrap_err(),
        "sessions/ns",
    );
    assert_refused(
        &store.read().unwrap().sessions_with_prefix("n").unwrap_err(),
        "sessions/ns",
    );
    let in_write = store
        .write(|tx| tx.session("ns").map(|_| ()))
        .await
        .unwrap_err();
    assert_refused(&in_write, "sessions/ns");
    store.close();

    // And at open (the record was put back above, before the restart).
    let err = Store::open(&path, sealer(1)).unwrap_err();
    assert_refused(&err, "sessions/ns");
}

#[tokio::test]
async fn an_old_session_value_put_back_in_the_file_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cas.redb");
    let store = Store::open(&path, sealer(1)).unwrap();
    create(&store, "ns", "revision 1").await.unwrap();
    put_secrets(&store, "ns", b"old secret").await;
    let old = store
        .read()
        .unwrap()
        .raw_get(Record::Session, "ns")
        .unwrap();
    update(&store, "ns", b"new secret").await;
    store.close();
    put_back(&path, SESSIONS, "ns", &old);
    assert_refused(&Store::open(&path, sealer(1)).unwrap_err(), "sessions/ns");
}

#[tokio::test]
async fn old_secrets_put_back_are_refused_at_read_and_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cas.redb");
    let store = Store::open(&path, sealer(1)).unwrap();
    create(&store, "ns", "revision 1").await.unwrap();
    put_secrets(&store, "ns", b"old secret").await;
    let old = store
        .read()
        .unwrap()
        .raw_get(Record::Secrets, "ns")
        .unwrap();
    update(&store, "ns", b"new secret").await;
    assert_eq!(
        &**store.read().unwrap().secrets("ns").unwrap().unwrap(),
        b"new secret"
    );
    let put = old.clone();
    store
        .write(move |tx| {
            tx.raw_insert(Record::Secrets, "ns", &put);
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    assert_refused(
        &store.read().unwrap().secrets("ns").unwrap_err(),
        "secrets/ns",
    );
    store.close();
    assert_refused(&Store::open(&path, sealer(1)).unwrap_err(), "secrets/ns");
}

#[tokio::test]
async fn rolling_back_a_record_with_its_index_entry_or_removing_it_is_detected_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cas.redb");
    let store = Store::open(&path, sealer(1)).unwrap();
    create(&store, "ns", "revision 1").await.unwrap();
    put_secrets(&store, "ns", b"old secret").await;
    store.close();
    let (old_session, old_index, old_secrets) = (
        copy_out(&path, SESSIONS, "ns"),
        copy_out(&path, REVISIONS, "ns"),
        copy_out(&path, SECRETS, "ns"),
    );
    let store = Store::open(&path, sealer(1)).unwrap();
    update(&store, "ns", b"new secret").await;
    store.close();
    let pristine = std::fs::read(&path).unwrap();

    put_back(&path, SESSIONS, "ns", &old_session);
    put_back(&path, SECRETS, "ns", &old_secrets);
    put_back(&path, REVISIONS, "ns", &old_index);
    let err = Store::open(&path, sealer(1)).unwrap_err().to_string();
    assert!(
        err.contains("the revision index does not match the store's sealed state")
            && err.contains(
                "expected 1 sessions with the sealed digest, found 1 sessions and another digest"
            ),
        "{err}"
    );

    // A session record removed (as if rolled back to before the session existed).
    std::fs::write(&path, &pristine).unwrap();
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(SESSIONS).unwrap().remove("ns").unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&path, sealer(1)).unwrap_err().to_string();
    assert!(
        err.contains("record sessions/ns is not current: expected revision 2")
            && err.contains("found no record"),
        "{err}"
    );

    // The untouched store still opens.
    std::fs::write(&path, &pristine).unwrap();
    let store = Store::open(&path, sealer(1)).unwrap();
    assert_eq!(
        store
            .read()
            .unwrap()
            .session("ns")
            .unwrap()
            .unwrap()
            .revision,
        2
    );
}

#[tokio::test]
async fn a_snapshot_older_than_an_update_still_reads_its_own_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("cas.redb"), sealer(1)).unwrap();
    create(&store, "ns", "revision 1").await.unwrap();
    put_secrets(&store, "ns", b"old secret").await;
    let before = store.read().unwrap();
    update(&store, "ns", b"new secret").await;
    let after_create = store.read().unwrap();
    create(&store, "later", "x").await.unwrap();
    assert_eq!(before.session("ns").unwrap().unwrap().revision, 1);
    assert_eq!(&**before.secrets("ns").unwrap().unwrap(), b"old secret");
    assert!(before.session("later").unwrap().is_none());
    assert!(after_create.session("later").unwrap().is_none());
    let now = store.read().unwrap();
    assert_eq!(now.session("ns").unwrap().unwrap().revision, 2);
    assert!(now.session("later").unwrap().is_some());
}

#[tokio::test]
async fn a_deleted_or_truncated_audit_event_is_detected_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cas.redb");
    let store = Store::open(&path, sealer(1)).unwrap();
    for name in ["a", "b", "c"] {
        create(&store, name, "t").await.unwrap();
    }
    store.close();
    let pristine = std::fs::read(&path).unwrap();
    for (seq, found) in [
        (2, "2 events numbered 1 to 3"),
        (3, "2 events numbered 1 to 2"),
        (1, "2 events numbered 2 to 3"),
    ] {
        std::fs::write(&path, &pristine).unwrap();
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(AUDIT).unwrap().remove(seq).unwrap();
            txn.commit().unwrap();
        }
        let err = Store::open(&path, sealer(1)).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "audit log: the sealed state expects 3 events numbered 1 to 3, the table holds {found}"
            )),
            "deleting {seq}: {err}"
        );
    }
    std::fs::write(&path, &pristine).unwrap();
    Store::open(&path, sealer(1)).unwrap();
}

/// Writes a store as the format-v1 code did: records sealed with their address alone.
fn write_v1_store(path: &Path) {
    let sealer = sealer(1);
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(META).unwrap();
        let check = sealer.seal(KEY_CHECK, KEY_CHECK_V1).unwrap();
        meta.insert(KEY_CHECK, check.as_slice()).unwrap();
        let mut sessions = txn.open_table(SESSIONS).unwrap();
        let mut secrets = txn.open_table(SECRETS).unwrap();
        for name in ["ns", "ns/app"] {
            let mut r = record(name, "v1 text");
            r.revision = 3;
            let json = serde_json::to_vec(&r).unwrap();
            let sealed = sealer.seal(&format!("sessions/{name}"), &json).unwrap();
            sessions.insert(name, sealed.as_slice()).unwrap();
            let sealed = sealer
                .seal(&format!("secrets/{name}"), b"v1 secret")
                .unwrap();
            secrets.insert(name, sealed.as_slice()).unwrap();
        }
        let mut audit = txn.open_table(AUDIT).unwrap();
        let mut index = txn.open_table(AUDIT_BY_SESSION).unwrap();
        for seq in 1..=4u64 {
            let mut event = AuditEvent::new(
                crate::audit::now_ms(),
                AuditAction::SessionCreate,
                Outcome::Allowed,
            );
            event.session = Some("ns".into());
            let json = serde_json::to_vec(&event).unwrap();
            let sealed = sealer.seal(&format!("audit/{seq}"), &json).unwrap();
            audit.insert(seq, sealed.as_slice()).unwrap();
            index.insert(("ns", seq), ()).unwrap();
        }
    }
    txn.commit().unwrap();
}

#[tokio::test]
async fn a_v1_store_is_migrated_and_then_protected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cas.redb");
    write_v1_store(&path);
    let old = {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(SESSIONS).unwrap();
        table.get("ns").unwrap().unwrap().value().to_vec()
    };

    let store = Store::open(&path, sealer(1)).unwrap();
    let read = store.read().unwrap();
    let got = read.session("ns").unwrap().unwrap();
    assert_eq!((got.revision, got.text.as_str()), (3, "v1 text"));
    assert_eq!(&**read.secrets("ns/app").unwrap().unwrap(), b"v1 secret");
    assert_eq!(read.sessions_with_prefix("ns").unwrap().len(), 2);
    assert_eq!(read.audit_for_session("ns", 0, 10).unwrap().len(), 4);
    drop(read);
    assert_eq!(store.audit_len(), 4);
    update(&store, "ns", b"new").await;
    let events = store.read().unwrap().audit(0, 10).unwrap();
    assert_eq!(events.len(), 4, "update() appends no event");
    create(&store, "other", "t").await.unwrap();
    assert_eq!(store.read().unwrap().audit(4, 10).unwrap()[0].seq, 5);
    store.close();

    // Migrated once: it reopens as v2, and the v1 value put back is refused.
    let store = Store::open(&path, sealer(1)).unwrap();
    assert_eq!(
        store
            .read()
            .unwrap()
            .session("ns")
            .unwrap()
            .unwrap()
            .revision,
        4
    );
    store.close();
    put_back(&path, SESSIONS, "ns", &old);
    let err = Store::open(&path, sealer(1)).unwrap_err().to_string();
    assert!(
        err.contains("record sessions/ns is corrupt: record format 1, expected 2"),
        "{err}"
    );
}

#[tokio::test]
async fn a_v2_store_without_its_sealed_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cas.redb");
    let store = Store::open(&path, sealer(1)).unwrap();
    create(&store, "ns", "t").await.unwrap();
    store.close();
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().remove("state").unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&path, sealer(1)).unwrap_err().to_string();
    assert!(
        err.contains("sealed state (meta/state) is missing"),
        "{err}"
    );
}

fn event_for(session: &str, time_ms: u64) -> AuditEvent {
    let mut event = AuditEvent::new(
        crate::audit::now_ms(),
        AuditAction::SessionRead,
        Outcome::Allowed,
    );
    event.session = Some(session.into());
    event.time_ms = time_ms;
    event
}

/// Waits (at most 5 s) until the store holds `len` audit events.
async fn wait_for_audit_len(store: &Store, len: u64) {
    for _ in 0..500 {
        if store.audit_len() == len {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("audit_len stayed {} (expected {len})", store.audit_len());
}

#[tokio::test]
async fn retention_keeps_the_newest_events_and_numbering_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cas.redb");
    let keep = Retention {
        max_events: 10,
        max_age_ms: 0,
    };
    let store = Store::open_with_retention(&path, sealer(1), keep).unwrap();
    // More than one pruning chunk, so the writer has to catch up in several transactions.
    let total = 2 * PRUNE_CHUNK + 100;
    for i in 0..total {
        store
            .record(event_for(
                if i % 2 == 0 { "even" } else { "odd" },
                audit::now_ms(),
            ))
            .await;
    }
    // `record` returns before the commit: wait for the last event, not just for 10 of them
    // (the count is also 10 between two pruning batches while events still arrive).
    let newest: Vec<u64> = ((total - 9)..=total).collect();
    let mut seqs = Vec::new();
    for _ in 0..500 {
        seqs = store
            .read()
            .unwrap()
            .audit(0, 100)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        if seqs == newest {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(seqs, newest);
    let read = store.read().unwrap();
    // Reads after a pruned number start at the oldest kept one; the index was pruned too.
    assert_eq!(read.audit(3, 100).unwrap().len(), 10);
    assert_eq!(read.audit_for_session("even", 0, 10_000).unwrap().len(), 5);
    assert_eq!(read.audit(total, 100).unwrap().len(), 0);
    drop(read);
    store.close();

    let store = Store::open_with_retention(&path, sealer(1), keep).unwrap();
    create(&store, "x", "t").await.unwrap();
    let last = store.read().unwrap().audit(0, 100).unwrap();
    assert_eq!(last.len(), 10);
    assert_eq!(last[9].seq, total + 1, "numbers are never reused");
}

#[tokio::test]
async fn numbering_continues_after_everything_was_pruned_and_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cas.redb");
    let store = Store::open_with_retention(&path, sealer(1), Retention::UNLIMITED).unwrap();
    let old = audit::now_ms() - 2 * 86_400_000;
    for _ in 0..20 {
        store.record(event_for("s", old)).await;
    }
    create(&store, "s", "t").await.unwrap();
    assert_eq!(store.audit_len(), 21);
    store.close();

    // Lower limits apply at start-up, without any write.
    let count = Retention {
        max_events: 5,
        max_age_ms: 0,
    };
    let store = Store::open_with_retention(&path, sealer(1), count).unwrap();
    wait_for_audit_len(&store, 5).await;
    store.close();
    let age = Retention {
        max_events: 0,
        max_age_ms: 86_400_000,
    };
    let store = Store::open_with_retention(&path, sealer(1), age).unwrap();
    // The create's event is recent: only the old ones go.
    wait_for_audit_len(&store, 1).await;
    create(&store, "t", "t").await.unwrap();
    let seqs: Vec<u64> = store
        .read()
        .unwrap()
        .audit(0, 100)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [21, 22]);
    store.close();

    // Everything pruned: the numbering still continues after a restart.
    let all_old = Retention {
        max_events: 0,
        max_age_ms: 1,
    };
    // Event times are whole milliseconds: let the newest one age past the 1 ms limit first
    // (reopening within the same couple of milliseconds kept it, and nothing prunes later).
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let store = Store::open_with_retention(&path, sealer(1), all_old).unwrap();
    wait_for_audit_len(&store, 0).await;
    store.close();
    let store = Store::open_with_retention(&path, sealer(1), Retention::UNLIMITED).unwrap();
    assert_eq!(store.audit_len(), 0);
    create(&store, "u", "t").await.unwrap();
    assert_eq!(store.read().unwrap().audit(0, 10).unwrap()[0].seq, 23);
    assert_eq!(
        store
            .read()
            .unwrap()
            .audit_for_session("s", 0, 10)
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn secrets_follow_their_session_and_a_removed_secrets_record_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cas.redb");
    let store = Store::open(&path, sealer(1)).unwrap();
    create(&store, "ns", "t").await.unwrap();
    put_secrets(&store, "ns", b"kept").await;
    // An update that does not rewrite the secrets re-binds them to the new revision.
    store
        .write(|tx| {
            let current = tx.session("ns")?.unwrap();
            tx.put_session(SessionRecord {
                revision: current.revision + 1,
                ..current
            });
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    assert_eq!(
        &**store.read().unwrap().secrets("ns").unwrap().unwrap(),
        b"kept"
    );
    // A write that would go back a revision is refused.
    let err = store
        .write(|tx| {
            tx.put_session(record("ns", "t"));
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("a write of revision 1 does not follow the stored revision 2"),
        "{err}"
    );
    store.close();
    let store = Store::open(&path, sealer(1)).unwrap();
    assert_eq!(
        &**store.read().unwrap().secrets("ns").unwrap().unwrap(),
        b"kept"
    );
    store.close();
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(SECRETS).unwrap().remove("ns").unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&path, sealer(1)).unwrap_err().to_string();
    assert!(
        err.contains("record secrets/ns is not current: expected revision 2")
            && err.contains("found no record"),
        "{err}"
    );
}
