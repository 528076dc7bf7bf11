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

/// `custos cas attest ADDR` with the flags that admit a simulated CAS (debug, simulated
/// platform, any signer, any TCB status) and its MRENCLAVE — for a simulated CAS, the hash of
/// its executable.
pub fn attest_simulated_cas(addr: &str) -> Vec<String> {
    let measured =
        custos_attestation::sim::measure_executable(&custos_e2e::bin("custos-cas")).unwrap();
    [
        "cas",
        "attest",
        addr,
        "--only-for-testing-trust-any",
        "--only-for-testing-debug",
        "--only-for-testing-ignore-signer",
        "-G",
        "-C",
        "-S",
        "--mrenclave",
        &measured.to_hex(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `args` as the `&str`s a command line is built from.
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
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
