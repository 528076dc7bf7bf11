//! The PostgreSQL the replicated CAS's tests run against: a real server from the distribution's
//! package, started in a cluster of its own, answering on loopback, restartable, and gone
//! (port closed, directory removed) when dropped.

use std::net::TcpStream;

use custos_harness::postgres;

#[test]
fn a_cluster_starts_answers_restarts_and_is_removed_when_dropped() {
    let logs = tempfile::tempdir().unwrap();
    let Some(mut server) = postgres::require(module_path!(), logs.path()) else {
        return;
    };
    assert_eq!(server.psql("postgres", "select 41 + 1").unwrap(), "42");
    server
        .psql(
            "postgres",
            "create table kept (v text); insert into kept values ('yes')",
        )
        .unwrap();
    let error = server
        .psql("postgres", "select * from missing")
        .unwrap_err();
    assert!(
        error.contains("relation \"missing\" does not exist"),
        "{error}"
    );

    // Killed as in a crash, started again: what was committed is there.
    server.process().kill();
    server.restart(logs.path()).unwrap();
    assert_eq!(
        server.psql("postgres", "select v from kept").unwrap(),
        "yes"
    );

    let port = server.port();
    let url = server.url("postgres");
    assert_eq!(url, format!("postgres://custos@127.0.0.1:{port}/postgres"));
    let dirs_before = cluster_dirs();
    drop(server);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server is gone"
    );
    assert!(cluster_dirs() < dirs_before, "its directory is removed");
}

fn cluster_dirs() -> usize {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&format!("custos-pg-{}-", std::process::id())))
        })
        .count()
}
