use super::*;
use crate::audit::{AuditAction, Outcome};
use crate::seal::MasterKey;

fn sealer(byte: u8) -> Sealer {
    Sealer::new(&MasterKey::from_bytes([byte; 32])).unwrap()
}

fn record(name: &str, text: &str) -> SessionRecord {
    SessionRecord {
        name: name.into(),
        hash: "00".repeat(32),
        text: text.into(),
        creator: ClientId::from_bytes([1; 32]),
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
            let mut event = AuditEvent::now(AuditAction::SessionCreate, Outcome::Allowed);
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
        tx.append_audit(AuditEvent::now(
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
    let mut event = AuditEvent::now(AuditAction::SessionRead, Outcome::Allowed);
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
