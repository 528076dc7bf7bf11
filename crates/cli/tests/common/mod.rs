//! What the CLI's process tests share: a real CAS (the `custos-cas` library serving TLS on a
//! loopback port in the test process) and reading a finished `custos` process.
// Each test binary uses its own subset.
#![allow(dead_code)]

use std::path::Path;
use std::process::Output;

use custos_cas::config::Config;
use custos_cas::server::Cas;

/// A CAS with simulated evidence and its data in `dir`; its address.
pub fn start_cas(dir: &Path) -> String {
    start_cas_with(Config {
        data_dir: dir.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    })
}

/// A CAS with `config`, serving on its own thread until the test process ends; its address.
pub fn start_cas_with(config: Config) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let cas = Cas::start(&config).await.unwrap();
            tx.send(cas.local_addr.to_string()).unwrap();
            cas.serve().await;
        });
    });
    rx.recv().unwrap()
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}
