//! A server identity that can be replaced while the server runs — a renewed certificate is
//! served without a restart.
//!
//! After [`ReplaceableIdentity::replace`], every new handshake presents the new certificate;
//! connections already established keep the one they were made with and are not interrupted.
//! Sessions cached before the change are dropped with it: a client resuming one would
//! otherwise go on without ever seeing the new certificate.

use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;

/// How many TLS sessions are kept for resumption (rustls's default for a server).
const SESSION_CACHE_SIZE: usize = 256;

/// The certificate a server presents and the sessions made with it, replaceable as one.
#[derive(Debug)]
pub struct ReplaceableIdentity {
    current: RwLock<Current>,
}

#[derive(Debug, Clone)]
struct Current {
    key: Arc<CertifiedKey>,
    sessions: Arc<ServerSessionMemoryCache>,
}

impl Current {
    fn new(key: CertifiedKey) -> Self {
        Self {
            key: Arc::new(key),
            sessions: ServerSessionMemoryCache::new(SESSION_CACHE_SIZE),
        }
    }
}

impl ReplaceableIdentity {
    /// An identity presenting `key`.
    pub fn new(key: CertifiedKey) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Current::new(key)),
        })
    }

    /// Presents `key` from the next handshake on, and forgets the sessions made before.
    pub fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Current::new(key);
    }

    /// The certificate chain presented now.
    pub fn certificate_chain(&self) -> Vec<rustls_pki_types::CertificateDer<'static>> {
        self.current().key.cert.clone()
    }

    /// A TLS server configuration (TLS 1.2 and 1.3, no client authentication) presenting this
    /// identity, with the given ALPN protocols.
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> ServerConfig {
        let mut config = crate::server_config_with_resolver(self.clone(), alpn);
        config.session_storage = self.clone();
        config
    }

    fn current(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for ReplaceableIdentity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().key)
    }
}

impl StoresServerSessions for ReplaceableIdentity {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.current().sessions.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.current().sessions.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.current().sessions.take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}
