//! A real PostgreSQL server for tests and benchmarks: the binaries of Debian's `postgresql`
//! package, a fresh cluster in a directory of its own, listening on a loopback port, stopped
//! and removed when dropped.
//!
//! PostgreSQL refuses to run as root. Run as root (as CI and containers do), the cluster
//! belongs to `nobody` and every PostgreSQL program runs as it, without root's groups
//! (`setpriv`); its directory is made under the system's temporary directory, which that user
//! can reach.
//!
//! Where the binaries are missing, [`require`] says so loudly and the caller skips; with `CI`
//! set it panics instead, so CI never passes by skipping.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::Process;

/// The user a cluster started by root belongs to (`nobody`).
const UNPRIVILEGED: u32 = 65534;
/// The cluster's superuser; it authenticates with `trust` on loopback only.
pub const USER: &str = "custos";
/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Ports tried when the one picked was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

/// A running PostgreSQL server.
#[derive(Debug)]
pub struct Postgres {
    process: Option<Process>,
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    options: Options,
}

/// How a cluster is set up.
#[derive(Clone, Default)]
pub struct Options {
    /// Serve TLS with this certificate chain and key (PEM); connections may still be plain.
    pub tls: Option<(String, String)>,
    /// Require this password of [`USER`] over TCP (SCRAM-SHA-256) instead of trusting
    /// loopback connections.
    pub password: Option<String>,
}

/// The directory holding `initdb` and `postgres`: `CUSTOS_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian keeps them off `PATH`), else the directory of the
/// `initdb` on `PATH`.
pub fn binaries() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("CUSTOS_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists())
        .ok_or_else(|| {
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin, no initdb on PATH): apt-get install postgresql".to_owned()
        })
}

/// A started server, or — without PostgreSQL installed and outside CI — `None` after saying
/// loudly that `test` is skipped. In CI (`CI` set) a missing or failing server panics.
pub fn require(test: &str, log_dir: &Path) -> Option<Postgres> {
    match binaries() {
        Ok(_) => Some(Postgres::start(log_dir).unwrap_or_else(|e| panic!("{e}"))),
        Err(e) if std::env::var_os("CI").is_some() => panic!("{test}: {e}"),
        Err(e) => {
            eprintln!("\n*** SKIPPED {test}: {e} ***\n");
            None
        }
    }
}

impl std::fmt::Debug for Options {
    // Neither the key nor the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("tls", &self.tls.is_some())
            .field("password", &self.password.is_some())
            .finish()
    }
}

impl Postgres {
    /// Makes a cluster and starts its server, its log in `log_dir`.
    pub fn start(log_dir: &Path) -> Result<Self, String> {
        Self::start_with(log_dir, Options::default())
    }

    /// [`Postgres::start`] set up as `options` say.
    pub fn start_with(log_dir: &Path, options: Options) -> Result<Self, String> {
        let bin = binaries()?;
        let dir = cluster_dir()?;
        let mut server = Self {
            process: None,
            dir,
            bin,
            port: 0,
            options,
        };
        server.initdb()?;
        server.write_tls_files()?;
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port()?;
            match server.spawn(log_dir) {
                Ok(process) => {
                    server.process = Some(process);
                    return Ok(server);
                }
                // Another process took the port between our look and the server's bind.
                Err(e) if e.contains("could not bind") || e.contains("Address already in use") => {
                    last_error = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database` as the cluster's superuser (with its password, if
    /// it has one).
    pub fn url(&self, database: &str) -> String {
        let password = self
            .options
            .password
            .as_ref()
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        format!(
            "postgres://{USER}{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// The server process (to kill it, as a crash would).
    pub fn process(&mut self) -> &mut Process {
        self.process.as_mut().expect("a started server")
    }

    /// Runs `psql` with `sql` against `database`; its output (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let mut command = self.command("psql");
        if let Some(password) = &self.options.password {
            command.env("PGPASSWORD", password);
        }
        let output = command
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args(["-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout)
                .trim_end()
                .to_owned())
        } else {
            Err(format!(
                "psql: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// Stops the server (a fast shutdown: clients are disconnected) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = Command::new("kill")
                .args(["-INT", &process.id().to_string()])
                .stderr(Stdio::null())
                .status();
            process.wait(Duration::from_secs(30));
            process.kill();
        }
    }

    /// Starts the server again on the same cluster and port (after [`Postgres::stop`] or a
    /// kill), its log in `log_dir`.
    pub fn restart(&mut self, log_dir: &Path) -> Result<(), String> {
        self.stop();
        self.process = Some(self.spawn(log_dir)?);
        Ok(())
    }

    fn initdb(&self) -> Result<(), String> {
        let mut command = self.command("initdb");
        command.arg("-D").arg(self.dir.join("data")).args([
            "-U",
            USER,
            "-E",
            "UTF8",
            "--no-sync",
            "--auth-local=trust",
        ]);
        match &self.options.password {
            Some(password) => {
                let file = self.dir.join("password");
                self.write_owned(&file, password.as_bytes())?;
                command
                    .arg("--auth-host=scram-sha-256")
                    .arg(format!("--pwfile={}", file.display()));
            }
            None => {
                command.arg("--auth-host=trust");
            }
        }
        let output = command
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// Writes the TLS certificate and key where the server reads them, as its owner.
    fn write_tls_files(&self) -> Result<(), String> {
        if let Some((cert, key)) = &self.options.tls {
            self.write_owned(&self.dir.join("server.crt"), cert.as_bytes())?;
            self.write_owned(&self.dir.join("server.key"), key.as_bytes())?;
        }
        Ok(())
    }

    /// `content` in `path`, mode 0600, owned by whoever runs PostgreSQL.
    fn write_owned(&self, path: &Path, content: &[u8]) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("{}: {e}", path.display());
        fs::write(path, content).map_err(fail)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(fail)?;
        if is_root() {
            std::os::unix::fs::chown(path, Some(UNPRIVILEGED), Some(UNPRIVILEGED)).map_err(fail)?;
        }
        Ok(())
    }

    fn spawn(&self, log_dir: &Path) -> Result<Process, String> {
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="]);
        if self.options.tls.is_some() {
            command
                .args(["-c", "ssl=on"])
                .arg("-c")
                .arg(format!(
                    "ssl_cert_file={}",
                    self.dir.join("server.crt").display()
                ))
                .arg("-c")
                .arg(format!(
                    "ssl_key_file={}",
                    self.dir.join("server.key").display()
                ));
        }
        let mut process = Process::spawn("postgres", &mut command, log_dir)?;
        match process.wait_for("ready to accept connections", START_TIMEOUT) {
            Ok(_) => Ok(process),
            Err(e) => Err(format!("PostgreSQL did not start: {e}\n{}", process.tail())),
        }
    }

    /// `program` of the PostgreSQL binaries, as the cluster's owner.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if !is_root() {
            return Command::new(program);
        }
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={UNPRIVILEGED}"))
            .arg(format!("--regid={UNPRIVILEGED}"))
            .arg("--clear-groups")
            .arg("--")
            .arg(program);
        command
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(process) = &mut self.process {
            // Dropped in a test that failed: no need to be gentle.
            process.kill();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A new directory for a cluster, owned by whoever runs PostgreSQL.
fn cluster_dir() -> Result<PathBuf, String> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let dir = base.join(format!("custos-pg-{}-{attempt}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => {
                let fail = |e: std::io::Error| format!("{}: {e}", dir.display());
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(fail)?;
                if is_root() {
                    std::os::unix::fs::chown(&dir, Some(UNPRIVILEGED), Some(UNPRIVILEGED))
                        .map_err(fail)?;
                }
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        }
    }
    Err(format!("no free cluster directory in {}", base.display()))
}

/// A loopback port nobody listens on now (PostgreSQL cannot be told to pick one).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}
