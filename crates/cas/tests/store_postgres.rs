//! Connections to a real PostgreSQL server (Debian's package, started by the harness): TLS
//! verified against the configured CA, SCRAM bound to the TLS channel, plain connections only
//! to loopback, and a database that is down failing fast. Errors never show the password. The
//! schema is migrated once however many replicas start together, and a newer one is used or
//! refused as it says. A nonce redeemed by several replicas at once is redeemed once.

use std::time::{Duration, Instant};

use custos_cas::store::postgres::nonces;
use custos_cas::store::postgres::schema::{self, Migrated};
use custos_cas::store::postgres::{Connector, PgError, PgSettings};
use custos_harness::postgres::{self as server, Options, Postgres};

const PASSWORD: &str = "pw-5d1e0c7a";

/// A CA and a certificate it issued for 127.0.0.1, as PEM: (CA, chain, key).
fn pki() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut server = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    server.subject_alt_names = vec![rcgen::SanType::IpAddress([127, 0, 0, 1].into())];
    let cert = server.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

fn settings(url: String, ca: Option<&std::path::Path>) -> PgSettings {
    PgSettings {
        url,
        ca_files: ca.map(|p| vec![p.to_owned()]).unwrap_or_default(),
    }
}

/// A connector to `db` over plain TCP (loopback).
fn plain_connector(db: &Postgres) -> Connector {
    Connector::new(&settings(
        format!("{}?sslmode=disable", db.url("postgres")),
        None,
    ))
    .unwrap()
}

fn connect(settings: &PgSettings) -> Result<postgres::Client, PgError> {
    Connector::new(settings)?.connect()
}

#[test]
fn tls_is_verified_bound_to_scram_and_required_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    if server::binaries().is_err() {
        // Says loudly that it skips (and fails in CI).
        assert!(server::require(module_path!(), dir.path()).is_none());
        return;
    }
    let (ca, chain, key) = pki();
    let mut db = Postgres::start_with(
        dir.path(),
        Options {
            tls: Some((chain, key)),
            password: Some(PASSWORD.into()),
        },
    )
    .unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();

    // Verified TLS, and SCRAM-SHA-256-PLUS bound to it (the server refuses otherwise).
    let url = format!("{}?channel_binding=require", db.url("postgres"));
    let mut client = connect(&settings(url.clone(), Some(&ca_file))).unwrap();
    let row = client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0), "the connection is TLS");

    // libpq's verify-full and verify-ca (which the client's parser lacks) are verified TLS.
    for mode in ["verify-full", "verify-ca"] {
        let url = format!(
            "{}?sslmode={mode}&channel_binding=require",
            db.url("postgres")
        );
        let mut client = connect(&settings(url, Some(&ca_file))).unwrap();
        let row = client
            .query_one(
                "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
                &[],
            )
            .unwrap();
        assert!(row.get::<_, bool>(0), "sslmode={mode} is TLS");
    }

    // Another CA: the handshake fails, naming the certificate.
    let other = dir.path().join("other.pem");
    std::fs::write(&other, pki().0).unwrap();
    let error = connect(&settings(url.clone(), Some(&other)))
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("certificate"), "{error}");
    assert!(!error.contains(PASSWORD), "{error}");

    // TLS needs a CA; plain is for loopback only.
    let error = Connector::new(&settings(url.clone(), None))
        .unwrap_err()
        .to_string();
    assert!(error.contains("needs the CA"), "{error}");
    let remote = format!("postgres://custos:{PASSWORD}@db.example:5432/postgres?sslmode=disable");
    let error = Connector::new(&settings(remote, None))
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "store.postgres: sslmode=disable is accepted for loopback hosts only; db.example would see the store's traffic in clear"
    );
    let plain = format!("{}?sslmode=disable", db.url("postgres"));
    let mut client = connect(&settings(plain.clone(), None)).unwrap();
    let row = client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    let connector = Connector::new(&settings(plain, None)).unwrap();
    assert!(!format!("{connector:?}").contains(PASSWORD));

    // Down: connecting fails within the connect timeout, not after TCP's minutes.
    db.stop();
    let started = Instant::now();
    let error = connector.connect().err().unwrap().to_string();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(
        error.starts_with("store.postgres: cannot connect to 127.0.0.1:"),
        "{error}"
    );
    assert!(!error.contains(PASSWORD), "{error}");
}

#[test]
fn replicas_starting_together_migrate_the_schema_once_and_a_newer_one_is_used_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = server::require(module_path!(), dir.path()) else {
        return;
    };
    let connector = plain_connector(&db);
    // Three replicas at once: one migrates, the others find it done.
    let results: Vec<Migrated> = std::thread::scope(|scope| {
        let starts: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| schema::migrate(&mut connector.connect().unwrap()).unwrap()))
            .collect();
        starts.into_iter().map(|s| s.join().unwrap()).collect()
    });
    let fresh = Migrated {
        from: 0,
        to: schema::VERSION,
    };
    let done = Migrated {
        from: schema::VERSION,
        to: schema::VERSION,
    };
    assert_eq!(
        results.iter().filter(|m| **m == fresh).count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|m| **m == done).count(),
        2,
        "{results:?}"
    );
    let tables = db
        .psql(
            "postgres",
            "select count(*) from pg_tables where tablename like 'custos_%'",
        )
        .unwrap();
    assert_eq!(tables, "7", "custos_schema and the six tables of version 1");

    // A newer release's additive schema (it still admits this one): used as it is.
    db.psql(
        "postgres",
        "update custos_schema set version = 2, min_reader = 1",
    )
    .unwrap();
    let mut client = connector.connect().unwrap();
    assert_eq!(
        schema::migrate(&mut client).unwrap(),
        Migrated { from: 2, to: 2 }
    );
    // One that needs a newer release: refused, naming both versions.
    db.psql(
        "postgres",
        "update custos_schema set version = 3, min_reader = 2",
    )
    .unwrap();
    let error = schema::migrate(&mut client).unwrap_err().to_string();
    assert_eq!(
        error,
        "store.postgres: the database's schema is version 3, which needs Custos schema version 2 or later; this release has version 1: upgrade it"
    );
}

#[test]
fn a_nonce_redeemed_by_several_replicas_at_once_is_redeemed_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = server::require(module_path!(), dir.path()) else {
        return;
    };
    let connector = plain_connector(&db);
    schema::migrate(&mut connector.connect().unwrap()).unwrap();
    let nonce = [7u8; 32];
    let expires_at = 1_800_000_000;
    // Eight replicas (connections) redeem the same nonce together, each from its own thread.
    let barrier = std::sync::Barrier::new(8);
    let won: usize = std::thread::scope(|scope| {
        let redeemers: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    let mut client = connector.connect().unwrap();
                    barrier.wait();
                    nonces::redeem(&mut client, &nonce, expires_at).unwrap()
                })
            })
            .collect();
        redeemers
            .into_iter()
            .map(|r| r.join().unwrap())
            .filter(|won| *won)
            .count()
    });
    assert_eq!(won, 1, "exactly one replica redeems it");
    let mut client = connector.connect().unwrap();
    assert!(!nonces::redeem(&mut client, &nonce, expires_at).unwrap());
    assert!(nonces::redeem(&mut client, &[8u8; 32], expires_at + 60).unwrap());

    // Purged once expired, and only then.
    assert_eq!(nonces::purge_expired(&mut client, expires_at).unwrap(), 0);
    assert_eq!(
        nonces::purge_expired(&mut client, expires_at + 1).unwrap(),
        1
    );
    assert_eq!(
        db.psql("postgres", "select count(*) from custos_redeemed_nonces")
            .unwrap(),
        "1"
    );
}
