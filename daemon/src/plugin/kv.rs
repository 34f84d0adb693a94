//! The key-value state each plugin gets (cursors, tokens, idempotency
//! records), kept in the daemon's store.
//!
//! All plugins share the raw collection `plugin_kv`; a plugin's keys are
//! prefixed with its name (`<plugin>/<key>`), and the prefix is added by the
//! host, so no plugin can name another's keys. Given the store key, values
//! are sealed like every other record (a plugin's state may hold tokens or
//! patient data), bound to their place, so a value copied under another
//! plugin's key does not open.
//!
//! Each plugin's state has a quota of keys and bytes (keys plus stored
//! values) so a runaway plugin cannot fill the disk: over quota, a write
//! fails with an error saying which quota, and nothing is written. The usage
//! is counted from the store on the first write after load and kept up to
//! date by every write and delete through this view.

use super::limits::Limit;
use crate::store::{RawStore, StoreKey};
use std::sync::{Arc, Mutex};

/// The store collection holding every plugin's state.
pub const COLLECTION: &str = "plugin_kv";

/// The longest key a plugin may use, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// How much state one plugin may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateQuota {
    /// The largest single value, in bytes.
    pub max_value_bytes: usize,
    /// Keys in total.
    pub max_keys: u64,
    /// Bytes in total: full keys plus stored (sealed) values.
    pub max_bytes: u64,
}

/// Why a write or delete was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvRefusal {
    /// The message the plugin gets.
    pub message: String,
    /// The quota it ran into, if that was the reason.
    pub limit: Option<Limit>,
}

impl From<String> for KvRefusal {
    fn from(message: String) -> Self {
        Self {
            message,
            limit: None,
        }
    }
}

/// Keys and bytes in use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    keys: u64,
    bytes: u64,
}

/// One plugin's view of the `plugin_kv` collection.
#[derive(Clone)]
pub struct PluginKv {
    raw: Arc<dyn RawStore>,
    seal: Option<Arc<StoreKey>>,
    plugin: String,
    quota: StateQuota,
    /// `None` until the first write counts what the store holds.
    usage: Arc<Mutex<Option<Usage>>>,
}

impl std::fmt::Debug for PluginKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginKv")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

impl PluginKv {
    /// The state of `plugin` in `raw`, sealed under `seal` when given.
    pub fn new(
        raw: Arc<dyn RawStore>,
        seal: Option<Arc<StoreKey>>,
        plugin: &str,
        quota: StateQuota,
    ) -> Self {
        Self {
            raw,
            seal,
            plugin: plugin.to_string(),
            quota,
            usage: Arc::new(Mutex::new(None)),
        }
    }

    fn prefix(&self) -> Vec<u8> {
        format!("{}/", self.plugin).into_bytes()
    }

    /// Counts the plugin's keys and bytes in the store.
    fn count_usage(&self) -> Result<Usage, String> {
        let mut u = Usage::default();
        self.raw
            .visit_prefix(COLLECTION, &self.prefix(), &mut |k, v| {
                u.keys += 1;
                u.bytes += (k.len() + v.len()) as u64;
                Ok(true)
            })
            .map_err(|e| format!("state store: {e}"))?;
        Ok(u)
    }

    /// Keys and bytes the plugin's state holds now.
    pub fn usage(&self) -> Result<(u64, u64), String> {
        let mut guard = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let u = match *guard {
            Some(u) => u,
            None => *guard.insert(self.count_usage()?),
        };
        Ok((u.keys, u.bytes))
    }

    fn full_key(&self, key: &str) -> Result<Vec<u8>, String> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(format!("keys are 1 to {MAX_KEY_BYTES} bytes"));
        }
        Ok(format!("{}/{key}", self.plugin).into_bytes())
    }

    /// Reads a value.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let k = self.full_key(key)?;
        let v = self
            .raw
            .get(COLLECTION, &k)
            .map_err(|e| format!("state store: {e}"))?;
        match (v, &self.seal) {
            (Some(sealed), Some(sk)) => sk
                .open(COLLECTION, &k, &sealed)
                .map(Some)
                .map_err(|_| format!("state value {key:?} does not open (wrong key or tampered)")),
            (v, _) => Ok(v),
        }
    }

    /// Writes a value, unless that takes the state over its quota.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), KvRefusal> {
        let k = self.full_key(key)?;
        if value.len() > self.quota.max_value_bytes {
            return Err(format!(
                "value of {} bytes is over the {} byte limit",
                value.len(),
                self.quota.max_value_bytes
            )
            .into());
        }
        let stored = match &self.seal {
            Some(sk) => sk.seal(COLLECTION, &k, value),
            None => value.to_vec(),
        };
        // One writer at a time per plugin, so the count stays exact.
        let mut guard = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let usage = match *guard {
            Some(u) => u,
            None => *guard.insert(self.count_usage()?),
        };
        let old = self
            .raw
            .get(COLLECTION, &k)
            .map_err(|e| format!("state store: {e}"))?
            .map(|v| (k.len() + v.len()) as u64);
        let keys = usage.keys + u64::from(old.is_none());
        let bytes = usage.bytes - old.unwrap_or(0) + (k.len() + stored.len()) as u64;
        if keys > self.quota.max_keys {
            return Err(KvRefusal {
                message: format!(
                    "state quota: the plugin's state already holds its limit of {} keys; delete keys first",
                    self.quota.max_keys
                ),
                limit: Some(Limit::StateKeys),
            });
        }
        if bytes > self.quota.max_bytes && bytes > usage.bytes {
            return Err(KvRefusal {
                message: format!(
                    "state quota: this write would take the plugin's state past its limit of {} bytes",
                    self.quota.max_bytes
                ),
                limit: Some(Limit::StateBytes),
            });
        }
        self.raw
            .put(COLLECTION, &k, &stored)
            .map_err(|e| format!("state store: {e}"))?;
        *guard = Some(Usage { keys, bytes });
        Ok(())
    }

    /// Removes a value; true if it existed.
    pub fn delete(&self, key: &str) -> Result<bool, String> {
        let k = self.full_key(key)?;
        let mut guard = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let old = self
            .raw
            .get(COLLECTION, &k)
            .map_err(|e| format!("state store: {e}"))?;
        let removed = self
            .raw
            .remove(COLLECTION, &k)
            .map_err(|e| format!("state store: {e}"))?;
        if let (Some(u), Some(v)) = (guard.as_mut(), old)
            && removed
        {
            u.keys = u.keys.saturating_sub(1);
            u.bytes = u.bytes.saturating_sub((k.len() + v.len()) as u64);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mem::MemStore;

    fn quota(max_value_bytes: usize) -> StateQuota {
        StateQuota {
            max_value_bytes,
            max_keys: 1000,
            max_bytes: 1 << 20,
        }
    }

    #[test]
    fn plugins_cannot_see_each_others_keys() {
        let raw: Arc<dyn RawStore> = Arc::new(MemStore::new());
        let a = PluginKv::new(raw.clone(), None, "a", quota(16));
        let b = PluginKv::new(raw.clone(), None, "b", quota(16));
        a.set("cursor", b"1").unwrap();
        assert_eq!(a.get("cursor").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(b.get("cursor").unwrap(), None);
        // A key that looks like a path still stays under the plugin's prefix.
        assert_eq!(b.get("../a/cursor").unwrap(), None);
        assert_eq!(
            raw.get(COLLECTION, b"a/cursor").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert!(a.set("big", &[0; 17]).is_err());
        assert!(a.delete("cursor").unwrap());
        assert_eq!(a.get("cursor").unwrap(), None);
    }

    #[test]
    fn sealed_state_is_not_readable_on_disk_nor_movable() {
        let raw: Arc<dyn RawStore> = Arc::new(MemStore::new());
        let key = Arc::new(StoreKey::random());
        let a = PluginKv::new(raw.clone(), Some(key.clone()), "a", quota(1024));
        let b = PluginKv::new(raw.clone(), Some(key), "b", quota(1024));
        a.set("token", b"member 12345 token").unwrap();
        assert_eq!(
            a.get("token").unwrap().as_deref(),
            Some(&b"member 12345 token"[..])
        );
        let on_disk = raw.get(COLLECTION, b"a/token").unwrap().unwrap();
        assert!(
            !on_disk.windows(5).any(|w| w == b"12345"),
            "stored in clear"
        );
        // Copy a's sealed value under b's key: it must not open for b.
        raw.put(COLLECTION, b"b/token", &on_disk).unwrap();
        assert!(b.get("token").is_err());
    }

    #[test]
    fn the_quota_counts_what_is_stored_and_frees_on_delete() {
        let raw: Arc<dyn RawStore> = Arc::new(MemStore::new());
        // What an earlier run left behind counts too.
        raw.put(COLLECTION, b"a/old", b"12345").unwrap();
        raw.put(COLLECTION, b"ab/other-plugin", &[0; 100]).unwrap();
        let q = StateQuota {
            max_value_bytes: 100,
            max_keys: 3,
            max_bytes: 40,
        };
        let a = PluginKv::new(raw.clone(), None, "a", q);
        assert_eq!(a.usage().unwrap(), (1, 10));
        a.set("k1", b"x").unwrap();
        a.set("k2", b"y").unwrap();
        let e = a.set("k3", b"z").unwrap_err();
        assert_eq!(e.limit, Some(Limit::StateKeys), "{e:?}");
        assert!(e.message.contains("3 keys"), "{e:?}");
        // Overwriting an existing key adds no key.
        a.set("k1", b"xx").unwrap();
        let e = a.set("k2", &[0; 30]).unwrap_err();
        assert_eq!(e.limit, Some(Limit::StateBytes), "{e:?}");
        assert_eq!(a.get("k2").unwrap().as_deref(), Some(&b"y"[..]));
        assert!(a.delete("k2").unwrap());
        assert_eq!(a.usage().unwrap(), (2, 10 + 6));
        a.set("k3", b"z").unwrap();
        // A fresh view (a reload) counts the same.
        let again = PluginKv::new(raw, None, "a", q);
        assert_eq!(again.usage().unwrap(), a.usage().unwrap());
    }
}
