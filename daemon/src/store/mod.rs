//! The store: where billd keeps everything it must not lose.
//!
//! Two layers, so that a second backend (PostgreSQL) can stand in for sled:
//! - [`RawStore`]: an ordered key-value store of named collections with an
//!   atomic insert-if-absent and an explicit durability barrier (`flush`).
//! - [`Db`]: the typed layer every job uses. It serialises [`Record`]s in a
//!   versioned envelope and seals every value with an AEAD before it reaches
//!   the raw store, so the files on disk never hold patient data in clear.
//!
//! Durability rule (see DESIGN.md): sled acknowledges writes before they are
//! on disk. Call [`Db::flush`] before any external effect (an email sent, a
//! claim submitted, a placement made) so a crash cannot forget an effect that
//! already happened.

pub mod crypto;
pub mod records;
pub mod sled_backend;

pub use crypto::{KeyFileError, StoreKey};
pub use records::*;
pub use sled_backend::SledStore;

use serde::{Serialize, de::DeserializeOwned};
use std::sync::Arc;

/// Errors from the store. None of them carries record contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed (I/O, corruption). Retrying rarely helps.
    #[error("store backend error: {0}")]
    Backend(String),
    /// The store is held by another process.
    #[error("store at {path} is in use by another billd process")]
    Locked {
        /// Path of the store directory.
        path: String,
    },
    /// A value could not be decrypted: wrong key, or tampered data.
    #[error("record {collection}/{key} could not be decrypted (wrong key file or tampered data)")]
    Decrypt {
        /// Collection name.
        collection: String,
        /// Record key (never patient data: keys are opaque ids).
        key: String,
    },
    /// A value decrypted but did not decode as the expected record.
    #[error("record {collection}/{key} could not be decoded: {reason}")]
    Decode {
        /// Collection name.
        collection: String,
        /// Record key.
        key: String,
        /// What was wrong (no record contents).
        reason: String,
    },
    /// A record was written by a newer billd than this one.
    #[error("record {collection}/{key} has schema version {found}, newer than supported {supported}")]
    FutureSchema {
        /// Collection name.
        collection: String,
        /// Record key.
        key: String,
        /// Version found.
        found: u32,
        /// Highest version this build reads.
        supported: u32,
    },
}

/// An ordered key-value store of named collections. Implementations must be
/// safe to share between threads; keys sort bytewise within a collection.
pub trait RawStore: Send + Sync + 'static {
    /// Reads one value.
    fn get(&self, collection: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes one value, replacing any earlier one.
    fn put(&self, collection: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Writes `value` only if `key` is absent; returns whether it was written.
    /// Atomic across threads and processes sharing the store.
    fn insert_new(&self, collection: &str, key: &[u8], value: &[u8]) -> Result<bool, StoreError>;
    /// Replaces the value at `key` only if it currently equals `expected`
    /// (`None` = absent); returns whether it was replaced.
    fn compare_and_swap(
        &self,
        collection: &str,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StoreError>;
    /// Removes one value; returns whether it existed.
    fn remove(&self, collection: &str, key: &[u8]) -> Result<bool, StoreError>;
    /// All entries whose key starts with `prefix`, in key order.
    fn scan_prefix(
        &self,
        collection: &str,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError>;
    /// Makes every acknowledged write durable before returning.
    fn flush(&self) -> Result<(), StoreError>;
}

/// A typed record kept in one collection.
pub trait Record: Serialize + DeserializeOwned {
    /// The collection (sled tree) this record lives in.
    const COLLECTION: &'static str;
    /// Schema version written with every record; bump it when the shape
    /// changes and teach [`Record::upgrade`] to read the older one.
    const SCHEMA_VERSION: u32;
    /// The record's key inside its collection. Must not contain patient data.
    fn key(&self) -> String;
    /// Turns the JSON of an older schema version into the current shape.
    /// The default accepts only the current version.
    fn upgrade(version: u32, value: serde_json::Value) -> Result<serde_json::Value, String> {
        if version == Self::SCHEMA_VERSION {
            Ok(value)
        } else {
            Err(format!("no upgrade from schema version {version}"))
        }
    }
}

/// The typed, encrypting store shared by the daemon's parts.
#[derive(Clone)]
pub struct Db {
    raw: Arc<dyn RawStore>,
    key: Arc<StoreKey>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").finish_non_exhaustive()
    }
}
