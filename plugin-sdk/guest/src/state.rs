//! This plugin's own key-value state, kept by billd between calls: cursors,
//! tokens, records of work done under an idempotency key.

use crate::payer_world::billd::connector0_1_0::host::{kv_delete, kv_get, kv_set};
use crate::types::ConnectorError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reads raw bytes.
pub fn get(key: &str) -> Option<Vec<u8>> {
    kv_get(key)
}

/// Writes raw bytes.
pub fn set(key: &str, value: &[u8]) -> Result<(), ConnectorError> {
    kv_set(key, value).map_err(|e| ConnectorError::transient(format!("state: {e}")))
}

/// Removes a key; true if it existed.
pub fn delete(key: &str) -> Result<bool, ConnectorError> {
    kv_delete(key).map_err(|e| ConnectorError::transient(format!("state: {e}")))
}

/// Reads a JSON value; `None` if absent or not of this shape.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Option<T> {
    get(key).and_then(|b| serde_json::from_slice(&b).ok())
}

/// Writes a JSON value.
pub fn set_json<T: Serialize>(key: &str, value: &T) -> Result<(), ConnectorError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| ConnectorError::transient(format!("state: cannot encode: {e}")))?;
    set(key, &bytes)
}
