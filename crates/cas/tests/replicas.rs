//! Several stores on one real PostgreSQL database, as CAS replicas use it (Debian's server,
//! started by the harness; each store has its own writer, connection pool and view): creates
//! are exactly once and updates compare-and-set across replicas, a write at one replica is read
//! at the others, the audit log stays one numbered sequence, nonces are redeemed once, every
//! replica gets the same shared identity, a record put back in the database is refused, another
//! master key is refused, and a database that goes down makes calls fail fast and recover.

use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_cas::audit::{AuditAction, AuditEvent, Outcome, Retention};
use custos_cas::seal::{MasterKey, Sealer};
use custos_cas::store::postgres::PgSettings;
use custos_cas::store::{SessionRecord, Store, StoreError};
use custos_harness::postgres::{self as server, Postgres};
use custos_ids::KeyHash;
use tokio::sync::Barrier;
use zeroize::Zeroizing;

/// A cluster of its own for one test, or `None` (said loudly; a failure in CI) without
/// PostgreSQL.
fn cluster(test: &str) -> Option<(tempfile::TempDir, Postgres)> {
    let dir = tempfile::tempdir().unwrap();
    let db = server::require(test, dir.path())?;
    Some((dir, db))
}

fn settings(db: &Postgres) -> PgSettings {
    PgSettings {
        url: format!("{}?sslmode=disable", db.url("postgres")),
        ca_files: Vec::new(),
    }
}

fn open(db: &Postgres, key: u8) -> Result<Store, StoreError> {
    let sealer = Sealer::new(&MasterKey::from_bytes([key; 32])).unwrap();
    Store::open_postgres(&settings(db), sealer, Retention::default())
}

fn replicas(db: &Postgres, n: usize) -> Vec<Store> {
    (0..n).map(|_| open(db, 1).unwrap()).collect()
}

fn record(name: &str, revision: u64, hash: &str) -> SessionRecord {
    SessionRecord {
        name: name.into(),
        hash: hash.into(),
        text: format!("name: {name}"),
        creator: KeyHash::from_bytes([1; 32]),
        created_ms: 1,
        updated_ms: 1,
        revision,
    }
}

fn event(session: &str) -> AuditEvent {
    let now = custos_cas::audit::now_ms();
    let mut event = AuditEvent::new(now, AuditAction::SessionCreate, Outcome::Allowed);
    event.session = Some(session.into());
    event
}

#[derive(Debug, PartialEq)]
enum Outcome2 {
    Exists,
    NotPredecessor,
    Store(String),
}

impl From<StoreError> for Outcome2 {
    fn from(e: StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

/// Creates `name` unless it exists, with an audit event, as the client API does.
async fn create(store: &Store, name: String, hash: String) -> Result<(), Outcome2> {
    store
        .write(move |tx| {
            if tx.session(&name)?.is_some() {
                return Err(Outcome2::Exists);
            }
            tx.put_session(record(&name, 1, &hash));
            tx.put_secrets(&name, Zeroizing::new(b"generated".to_vec()));
            tx.append_audit(event(&name));
            Ok(())
        })
        .await
}

/// Updates `name` if its current hash is `predecessor`.
async fn update(
    store: &Store,
    name: &'static str,
    predecessor: String,
    hash: String,
) -> Result<(), Outcome2> {
    store
        .write(move |tx| {
            let current = tx.session(name)?.ok_or(Outcome2::NotPredecessor)?;
            if current.hash != predecessor {
                return Err(Outcome2::NotPredecessor);
            }
            tx.put_session(record(name, current.revision + 1, &hash));
            Ok(())
        })
        .await
}

fn hash(i: usize) -> String {
    format!("{i:064x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_are_exactly_once_and_updates_compare_and_set_across_replicas() {
    let Some((_dir, db)) = cluster(module_path!()) else {
        return;
    };
    let stores = Arc::new(replicas(&db, 3));

    // 20 names, each created by all three replicas at once: one wins each.
    let barrier = Arc::new(Barrier::new(60));
    let mut tasks = Vec::new();
    for name in 0..20 {
        for replica in 0..3 {
            let (stores, barrier) = (stores.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let store = &stores[replica];
                create(store, format!("app-{name}"), hash(replica)).await
            }));
        }
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => created += 1,
            Err(Outcome2::Exists) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(created, 20, "exactly one create per name");
    // Every replica reads every session, at revision 1, with its secrets.
    for store in stores.iter() {
        let read = store.read().unwrap();
        assert_eq!(read.sessions_with_prefix("app-").unwrap().len(), 20);
        assert_eq!(read.session("app-7").unwrap().unwrap().revision, 1);
        assert_eq!(&**read.secrets("app-7").unwrap().unwrap(), b"generated");
    }

    // The audit log is one sequence, numbered 1..=20, whichever replica wrote.
    let audit = stores[2].read().unwrap().audit(0, 100).unwrap();
    let numbers: Vec<u64> = audit.iter().map(|e| e.seq).collect();
    assert_eq!(numbers, (1..=20).collect::<Vec<_>>());

    // Three replicas update app-3 from the same predecessor at once: one wins.
    let predecessor = stores[0]
        .read()
        .unwrap()
        .session("app-3")
        .unwrap()
        .unwrap()
        .hash;
    let barrier = Arc::new(Barrier::new(3));
    let mut tasks = Vec::new();
    for replica in 0..3 {
        let (stores, barrier, predecessor) = (stores.clone(), barrier.clone(), predecessor.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let result = update(&stores[replica], "app-3", predecessor, hash(10 + replica)).await;
            (replica, result)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (replica, Ok(())) => winners.push(replica),
            (_, Err(Outcome2::NotPredecessor)) => {}
            (_, Err(other)) => panic!("{other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one update from one predecessor");
    for store in stores.iter() {
        let session = store.read().unwrap().session("app-3").unwrap().unwrap();
        assert_eq!((session.revision, session.hash), (2, hash(10 + winners[0])));
        // Its kept secrets followed it to revision 2.
        assert!(store.read().unwrap().secrets("app-3").unwrap().is_some());
    }

    // A replica started now verifies all of it.
    let late = open(&db, 1).unwrap();
    assert_eq!(late.read().unwrap().session_count().unwrap(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_are_redeemed_once_and_the_identity_is_shared() {
    let Some((_dir, db)) = cluster(module_path!()) else {
        return;
    };
    let stores = replicas(&db, 3);
    let expires = custos_cas::audit::now_ms() + 60_000;
    let nonce = [7u8; 16];
    let redeemed: Vec<bool> = stores
        .iter()
        .map(|s| s.redeem_nonce(&nonce, expires).unwrap())
        .collect();
    assert_eq!(redeemed, [true, false, false]);

    let values: Vec<Vec<u8>> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let value = s.shared_value("identity", || Ok(Zeroizing::new(vec![i as u8; 4])));
            value.unwrap().to_vec()
        })
        .collect();
    assert_eq!(
        values,
        vec![vec![0u8; 4]; 3],
        "the first replica's value, for all"
    );
    // Stored sealed: the database does not hold it in clear.
    let stored = db
        .psql(
            "postgres",
            "SELECT encode(value, 'hex') FROM custos_meta WHERE key = 'shared/identity'",
        )
        .unwrap();
    assert!(
        stored.trim().len() > 40 && !stored.contains("00000000"),
        "{stored}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_put_back_in_the_database_and_another_master_key_are_refused() {
    let Some((_dir, db)) = cluster(module_path!()) else {
        return;
    };
    let stores = replicas(&db, 2);
    create(&stores[0], "ns".into(), hash(1)).await.unwrap();
    db.psql(
        "postgres",
        "CREATE TABLE saved AS SELECT * FROM custos_sessions; \
         CREATE TABLE saved_index AS SELECT * FROM custos_index",
    )
    .unwrap();
    update(&stores[0], "ns", hash(1), hash(2)).await.unwrap();

    let wrong = open(&db, 2).unwrap_err().to_string();
    assert!(
        wrong.contains("the master key does not open this store"),
        "{wrong}"
    );

    // The old session value put back: both replicas refuse it, naming both revisions.
    db.psql(
        "postgres",
        "UPDATE custos_sessions s SET value = saved.value FROM saved WHERE s.name = saved.name",
    )
    .unwrap();
    for (i, store) in stores.iter().enumerate() {
        let read = store.read().unwrap().session("ns");
        let error = read
            .map(|_| ())
            .expect_err(&format!("replica {i}"))
            .to_string();
        assert!(
            error.contains(&format!(
                "record sessions/ns is not current: expected revision 2 (hash {})",
                hash(2)
            )) && error.contains(&format!("found revision 1 (hash {})", hash(1))),
            "{error}"
        );
    }
    // With its index entry too: the sealed state's digest does not match at open.
    db.psql(
        "postgres",
        "UPDATE custos_index i SET revision = s.revision, hash = s.hash \
         FROM saved_index s WHERE i.name = s.name",
    )
    .unwrap();
    let error = open(&db, 1).unwrap_err().to_string();
    assert!(
        error.contains("the revision index does not match the store's sealed state"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_down_fails_calls_fast_and_they_recover() {
    let Some((dir, mut db)) = cluster(module_path!()) else {
        return;
    };
    let store = open(&db, 1).unwrap();
    create(&store, "before".into(), hash(1)).await.unwrap();

    db.stop();
    let started = Instant::now();
    let write = create(&store, "during".into(), hash(2)).await.unwrap_err();
    let read = store.read().map(|_| ()).unwrap_err();
    let nonce = store.redeem_nonce(&[1; 16], u64::MAX / 2).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    for error in [
        write,
        Outcome2::Store(read.to_string()),
        Outcome2::Store(nonce.to_string()),
    ] {
        let Outcome2::Store(text) = &error else {
            panic!("{error:?}");
        };
        assert!(text.starts_with("store unavailable: "), "{text}");
    }

    db.restart(dir.path()).unwrap();
    create(&store, "after".into(), hash(3)).await.unwrap();
    let read = store.read().unwrap();
    let names: Vec<String> = read
        .sessions_with_prefix("")
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["after", "before"]);
}

/// Everything a store holds, opened: sessions, secret values and audit events.
fn contents(store: &Store) -> (Vec<SessionRecord>, Vec<Vec<u8>>, Vec<String>) {
    let read = store.read().unwrap();
    let sessions = read.sessions_with_prefix("").unwrap();
    let secrets = sessions
        .iter()
        .filter_map(|s| read.secrets(&s.name).unwrap().map(|v| v.to_vec()))
        .collect();
    let audit = read
        .audit(0, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {:?}", e.seq, e.event.session))
        .collect();
    (sessions, secrets, audit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_round_trip_keeps_every_session_secret_audit_event_and_the_identity() {
    use custos_cas::store::copy::{Location, copy};
    let Some((dir, db)) = cluster(module_path!()) else {
        return;
    };
    let sealer = || Sealer::new(&MasterKey::from_bytes([1; 32])).unwrap();
    let single = dir.path().join("single");
    std::fs::create_dir_all(&single).unwrap();
    let store = Store::open(&single.join("cas.redb"), sealer()).unwrap();
    for i in 0..30 {
        create(&store, format!("app-{i}"), hash(i)).await.unwrap();
    }
    update(&store, "app-3", hash(3), hash(33)).await.unwrap();
    let before = contents(&store);
    store.close();
    std::fs::write(
        single.join("cas.crt"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        single.join("cas.key"),
        "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();

    // Into PostgreSQL: replicas open it and hold the same, audit numbering included.
    let copied = copy(
        &Location::Embedded(single.clone()),
        &Location::Postgres(settings(&db)),
        &sealer(),
    )
    .unwrap();
    assert_eq!(
        (
            copied.sessions,
            copied.secrets,
            copied.audit_events,
            copied.tls_identity
        ),
        (30, 30, 30, true)
    );
    let replica = open(&db, 1).unwrap();
    assert_eq!(contents(&replica), before);
    // It goes on from there: the next write is numbered after the copied audit events.
    create(&replica, "after-copy".into(), hash(99))
        .await
        .unwrap();
    let last = replica.read().unwrap().audit(30, 10).unwrap();
    assert_eq!(last.iter().map(|e| e.seq).collect::<Vec<_>>(), [31]);
    let identity = replica
        .shared_value("tls-identity", || panic!("the copied identity is there"))
        .unwrap();
    assert!(String::from_utf8_lossy(&identity).contains("MIGH"));

    // A store is not copied over another one.
    let refused = copy(
        &Location::Embedded(single.clone()),
        &Location::Postgres(settings(&db)),
        &sealer(),
    )
    .unwrap_err()
    .to_string();
    assert!(refused.contains("it holds a store already"), "{refused}");

    // And back into a new data directory, identity files included.
    let back = dir.path().join("back");
    copy(
        &Location::Postgres(settings(&db)),
        &Location::Embedded(back.clone()),
        &sealer(),
    )
    .unwrap();
    let expected = contents(&replica);
    let store = Store::open(&back.join("cas.redb"), sealer()).unwrap();
    assert_eq!(contents(&store), expected);
    assert_eq!(
        std::fs::read(back.join("cas.key")).unwrap(),
        std::fs::read(single.join("cas.key")).unwrap()
    );
    assert_eq!(
        std::fs::read(back.join("cas.crt")).unwrap(),
        std::fs::read(single.join("cas.crt")).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_put_back_in_time_is_refused_by_a_replica_that_saw_later() {
    let Some((_dir, db)) = cluster(module_path!()) else {
        return;
    };
    let store = open(&db, 1).unwrap();
    create(&store, "a".into(), hash(1)).await.unwrap();
    // A consistent copy of every table, as a backup would be ...
    let tables = [
        "custos_meta",
        "custos_sessions",
        "custos_secrets",
        "custos_index",
        "custos_audit",
    ];
    let save: Vec<String> = tables
        .iter()
        .map(|t| format!("CREATE TABLE saved_{t} AS SELECT * FROM {t};"))
        .collect();
    db.psql("postgres", &save.concat()).unwrap();
    create(&store, "b".into(), hash(2)).await.unwrap();
    // ... restored while the replica runs.
    let restore: Vec<String> = tables
        .iter()
        .map(|t| format!("DELETE FROM {t}; INSERT INTO {t} SELECT * FROM saved_{t};"))
        .collect();
    db.psql("postgres", &restore.concat()).unwrap();

    let error = create(&store, "c".into(), hash(3)).await.unwrap_err();
    let Outcome2::Store(text) = &error else {
        panic!("{error:?}");
    };
    assert!(
        text.contains("the store's sealed state is generation 1, but this CAS has seen generation 2: the database was put back in time"),
        "{text}"
    );
    // A replica started now cannot tell: it opens the restored store.
    let restarted = open(&db, 1).unwrap();
    let names: Vec<String> = restarted
        .read()
        .unwrap()
        .sessions_with_prefix("")
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_master_key_reseals_everything_and_only_the_new_key_opens_it() {
    use custos_cas::store::copy::Location;
    use custos_cas::store::rotate::rotate;
    let Some((dir, db)) = cluster(module_path!()) else {
        return;
    };
    let sealer = |byte| Sealer::new(&MasterKey::from_bytes([byte; 32])).unwrap();
    let single = dir.path().join("single");
    std::fs::create_dir_all(&single).unwrap();
    let embedded = Store::open(&single.join("cas.redb"), sealer(1)).unwrap();
    let postgres = open(&db, 1).unwrap();
    for store in [&embedded, &postgres] {
        for i in 0..12 {
            create(store, format!("app-{i}"), hash(i)).await.unwrap();
        }
        update(store, "app-3", hash(3), hash(33)).await.unwrap();
    }
    postgres
        .shared_value("tls-identity", || Ok(Zeroizing::new(b"identity".to_vec())))
        .unwrap();
    let (before_embedded, before_postgres) = (contents(&embedded), contents(&postgres));
    embedded.close();
    postgres.close();

    for (location, before) in [
        (Location::Embedded(single.clone()), before_embedded),
        (Location::Postgres(settings(&db)), before_postgres),
    ] {
        let mut seen = Vec::new();
        let rotated = rotate(&location, &sealer(1), &sealer(2), &mut |what, done| {
            seen.push(format!("{what} {done}"))
        })
        .unwrap();
        assert_eq!(
            (rotated.sessions, rotated.secrets, rotated.audit_events),
            (12, 12, 12)
        );
        assert!(seen.contains(&"sessions 12".to_owned()), "{seen:?}");
        let reopened = match &location {
            Location::Embedded(dir) => Store::open(&dir.join("cas.redb"), sealer(2)).unwrap(),
            Location::Postgres(_) => open(&db, 2).unwrap(),
        };
        assert_eq!(contents(&reopened), before, "{location}");
        reopened.close();
        // The old key opens nothing any more.
        let refused = match &location {
            Location::Embedded(dir) => Store::open(&dir.join("cas.redb"), sealer(1)).map(drop),
            Location::Postgres(_) => open(&db, 1).map(drop),
        }
        .unwrap_err()
        .to_string();
        assert!(
            refused.contains("master key does not open this store"),
            "{refused}"
        );
    }
    let identity = open(&db, 2)
        .unwrap()
        .shared_value("tls-identity", || panic!("kept"))
        .unwrap();
    assert_eq!(&**identity, b"identity");
}
