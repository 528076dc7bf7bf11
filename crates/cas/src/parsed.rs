//! Stored sessions parsed once per session hash: both APIs read the same few sessions far more
//! often than they change, and parsing YAML on every request would dominate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use custos_policy::{Diagnostics, Session};

use crate::store::SessionRecord;

/// Beyond this many names the cache starts over (a bound, not an eviction policy).
const MAX_SESSIONS: usize = 10_000;

/// Parsed sessions by name, reparsed when the stored hash changes.
#[derive(Debug, Default)]
pub(crate) struct ParsedSessions {
    by_name: Mutex<HashMap<String, (String, Arc<Session>)>>,
}

impl ParsedSessions {
    /// `record` parsed, from the cache while its hash is unchanged.
    pub(crate) fn get(&self, record: &SessionRecord) -> Result<Arc<Session>, Diagnostics> {
        if let Some((hash, session)) = self.lock().get(&record.name)
            && *hash == record.hash
        {
            return Ok(session.clone());
        }
        // Parsed without the lock held: a large session must not stall every other request.
        let session = Arc::new(custos_policy::parse(&record.name, &record.text)?);
        let mut cache = self.lock();
        if cache.len() >= MAX_SESSIONS {
            cache.clear();
        }
        cache.insert(record.name.clone(), (record.hash.clone(), session.clone()));
        Ok(session)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (String, Arc<Session>)>> {
        self.by_name.lock().unwrap_or_else(|e| e.into_inner())
    }
}
