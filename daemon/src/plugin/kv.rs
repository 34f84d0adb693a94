//! The key-value state each plugin gets (cursors, tokens, idempotency
//! records), kept in the daemon's store.
//!
//! All plugins share the raw collection `plugin_kv`; a plugin's keys are
//! prefixed with its name (`<plugin>/<key>`), and the prefix is added by the
//! host, so no plugin can name another's keys.

use crate::store::RawStore;
use std::sync::Arc;

/// The store collection holding every plugin's state.
pub const COLLECTION: &str = "plugin_kv";

/// The longest key a plugin may use, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// One plugin's view of the `plugin_kv` collection.
#[derive(Clone)]
pub struct PluginKv {
    raw: Arc<dyn RawStore>,
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
    /// The state of `plugin` in `raw`.
    pub fn new(raw: Arc<dyn RawStore>, plugin: &str, max_value_bytes: usize) -> Self {
        Self {
            raw,
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
        self.raw
            .get(COLLECTION, &k)
            .map_err(|e| format!("state store: {e}"))
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
        self.raw
            .put(COLLECTION, &k, value)
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
        let a = PluginKv::new(raw.clone(), "a", 16);
        let b = PluginKv::new(raw.clone(), "b", 16);
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
}
