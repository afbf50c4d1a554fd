//! Unwrapped data keys, kept for a short time so hot secrets do not cost a KMS call per read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gatehouse_core::OrgId;
use zeroize::Zeroizing;

type Key = (String, String, i64);
type Entry = (Zeroizing<Vec<u8>>, Instant);

/// A TTL cache of data keys; a TTL of zero disables it.
pub struct DekCache {
    ttl: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
}

/// Above this many entries, expired ones are swept on insert.
const SWEEP_AT: usize = 4096;

impl DekCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, org: &OrgId, secret: &str, version: i64) -> Option<Zeroizing<Vec<u8>>> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut entries = self.entries.lock().ok()?;
        let key = (org.to_string(), secret.to_owned(), version);
        match entries.get(&key) {
            Some((dek, at)) if at.elapsed() < self.ttl => Some(dek.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, org: &OrgId, secret: &str, version: i64, dek: Zeroizing<Vec<u8>>) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.len() >= SWEEP_AT {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        entries.insert((org.to_string(), secret.to_owned(), version), (dek, Instant::now()));
    }

    pub fn forget_org(&self, org: &OrgId) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|(o, _, _), _| o != org.as_str());
        }
    }
}
