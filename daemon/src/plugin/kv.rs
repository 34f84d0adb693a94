//! The key-value state each plugin gets (cursors, tokens, idempotency
//! records), kept in the daemon's store.
//!
//! All plugins share the raw collection `plugin_kv`; a plugin's keys are
//! prefixed with its name (`<plugin>/<key>`), and the prefix is added by the
//! host, so no plugin can name another's keys. Given the store key, values
//! are sealed like every other record (a plugin's state may hold tokens or
//! patient data), bound to their place, so a value copied under another
//! plugin's key does not open.

use crate::store::{RawStore, StoreKey};
use std::sync::Arc;

/// The store collection holding every plugin's state.
pub const COLLECTION: &str = "plugin_kv";

/// The longest key a plugin may use, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// One plugin's view of the `plugin_kv` collection.
#[derive(Clone)]
pub struct PluginKv {
    raw: Arc<dyn RawStore>,
    seal: Option<Arc<StoreKey>>,
    plugin: String,
    max_value_bytes: usize,
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
        max_value_bytes: usize,
    ) -> Self {
        Self {
            raw,
            seal,
            plugin: plugin.to_string(),
            max_value_bytes,
        }
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

    /// Writes a value.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let k = self.full_key(key)?;
        if value.len() > self.max_value_bytes {
            return Err(format!(
                "value of {} bytes is over the {} byte limit",
                value.len(),
                self.max_value_bytes
            ));
        }
        let stored = match &self.seal {
            Some(sk) => sk.seal(COLLECTION, &k, value),
            None => value.to_vec(),
        };
        self.raw
            .put(COLLECTION, &k, &stored)
            .map_err(|e| format!("state store: {e}"))
    }

    /// Removes a value; true if it existed.
    pub fn delete(&self, key: &str) -> Result<bool, String> {
        let k = self.full_key(key)?;
        self.raw
            .remove(COLLECTION, &k)
            .map_err(|e| format!("state store: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mem::MemStore;

    #[test]
    fn plugins_cannot_see_each_others_keys() {
        let raw: Arc<dyn RawStore> = Arc::new(MemStore::new());
        let a = PluginKv::new(raw.clone(), None, "a", 16);
        let b = PluginKv::new(raw.clone(), None, "b", 16);
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
        let a = PluginKv::new(raw.clone(), Some(key.clone()), "a", 1024);
        let b = PluginKv::new(raw.clone(), Some(key), "b", 1024);
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
}
