//! What the CLI's process tests share: a real `custos-cas` process (started by the one
//! orchestrator, `custos-harness`, through the e2e tests' launcher) and reading a finished
//! `custos` process.
// Each test binary uses its own subset.
#![allow(dead_code)]

use std::path::Path;
use std::process::Output;

/// A running `custos-cas`, stopped when dropped.
pub struct RunningCas {
    /// Its client API address.
    pub addr: String,
    _cas: custos_e2e::Cas,
    _logs: tempfile::TempDir,
}

/// A CAS with simulated evidence and its data in `dir`.
pub fn start_cas(dir: &Path) -> RunningCas {
    start_cas_with(dir, &[])
}

/// A CAS with its data in `dir`, started with `flags`.
pub fn start_cas_with(dir: &Path, flags: &[&str]) -> RunningCas {
    let logs = tempfile::tempdir().expect("a log directory");
    let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
    let cas = custos_e2e::launcher(logs.path())
        .cas(dir, &flags)
        .unwrap_or_else(|e| panic!("{e}"));
    RunningCas {
        addr: cas.addr.clone(),
        _cas: cas,
        _logs: logs,
    }
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
