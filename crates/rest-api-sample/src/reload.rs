//! Taking in renewed files without a restart. On SIGHUP — and, with a watch interval, when
//! one of them changes on disk — the certificate and key are read again and presented from the
//! next handshake on (connections already open keep theirs), and the secret file, if the secret
//! comes from one, is read again. A reload that fails keeps what is being served and says why;
//! nothing secret is logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use custos_tls::ReplaceableIdentity;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::SecretApp;

/// What is served, and the files it came from.
#[derive(Debug)]
pub struct Reloader {
    cert: PathBuf,
    key: PathBuf,
    identity: Arc<ReplaceableIdentity>,
    app: Arc<SecretApp>,
    seen: Vec<Option<Stamp>>,
}

/// What tells a changed file from the one read before: a rename gives a new inode, a rewrite
/// a new modification time or length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    modified: Option<SystemTime>,
    length: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some(Stamp {
        inode: metadata.ino(),
        modified: metadata.modified().ok(),
        length: metadata.len(),
    })
}

impl Reloader {
    /// Reloads `identity` from `cert` and `key`, and `app`'s secret file.
    pub fn new(
        cert: PathBuf,
        key: PathBuf,
        identity: Arc<ReplaceableIdentity>,
        app: Arc<SecretApp>,
    ) -> Self {
        let mut reloader = Self {
            cert,
            key,
            identity,
            app,
            seen: Vec::new(),
        };
        reloader.seen = reloader.stamps();
        reloader
    }

    /// Installs the SIGHUP handler now — before the server says it is listening, so that an
    /// early SIGHUP reloads instead of ending the process — and returns the task that reloads
    /// on it and, with `watch`, whenever a file changed since it was last read.
    pub fn start(
        mut self,
        watch: Option<Duration>,
    ) -> std::io::Result<impl Future<Output = ()> + Send> {
        let mut hangup: Signal = signal(SignalKind::hangup())?;
        Ok(async move {
            let mut ticks = watch.map(tokio::time::interval);
            loop {
                let tick = async {
                    match ticks.as_mut() {
                        Some(ticks) => {
                            ticks.tick().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    received = hangup.recv() => {
                        if received.is_none() {
                            return;
                        }
                        tracing::info!("SIGHUP: reloading");
                        self.reload();
                    }
                    () = tick => {
                        if self.stamps() != self.seen {
                            tracing::info!("a served file changed: reloading");
                            self.reload();
                        }
                    }
                }
            }
        })
    }

    /// Reads every file again; what fails to load keeps being served as before.
    pub fn reload(&mut self) {
        // Stamped before reading: a change made while reading is seen at the next check.
        self.seen = self.stamps();
        match custos_tls::load_certified_key(&self.cert, &self.key) {
            Ok(key) => {
                self.identity.replace(key);
                tracing::info!(
                    cert = %self.cert.display(),
                    "certificate reloaded: presented from the next handshake"
                );
            }
            Err(e) => tracing::error!("certificate not reloaded, the previous one stays: {e}"),
        }
        if let Some(file) = self.app.secret_file() {
            match self.app.reload_secret() {
                Ok(()) => tracing::info!(file = %file.display(), "secret file read again"),
                Err(e) => tracing::error!("secret not reloaded, the previous one stays: {e}"),
            }
        }
    }

    fn stamps(&self) -> Vec<Option<Stamp>> {
        let secret = self.app.secret_file();
        [Some(self.cert.as_path()), Some(self.key.as_path()), secret]
            .into_iter()
            .flatten()
            .map(stamp)
            .collect()
    }
}
