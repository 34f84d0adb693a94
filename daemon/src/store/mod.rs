//! The store: where billd keeps everything it must not lose.
//!
//! Two layers, so that a second backend (PostgreSQL) can stand in for sled:
//! - [`RawStore`]: an ordered key-value store of named collections with an
//!   atomic insert-if-absent and an explicit durability barrier (`flush`).
//! - [`Db`]: the typed layer every job uses. It serialises [`Record`]s in a
//!   versioned envelope and seals every value with an AEAD before it reaches
//!   the raw store, so the files on disk never hold patient data in clear.
//!
//! On top of both: atomic multi-record transactions ([`Db::transact`],
//! optimistic, one [`RawStore::commit`] each, in [`txn`]), counters
//! ([`Db::next_counter`]), secondary indexes declared by each record type and
//! kept in the same commit ([`index`]), ordered and paged queries by key or
//! by index that decode only what they return ([`query`]), and the backend
//! contract every backend's tests run ([`contract`]).
//!
//! What a stored value is: [`StoreKey::seal`] (XChaCha20-Poly1305, bound to
//! collection and key) of an envelope `[codec = 1][schema version, u32
//! big-endian][record as JSON]`. JSON because several records use internally
//! tagged enums, which compact binary formats cannot read back, and because
//! `Record::upgrade` works on a `serde_json::Value`; the store benchmark
//! (`cargo bench -p billd --bench store`) puts encode and decode at a few
//! microseconds per claim, below sled's own cost per write.
//!
//! Durability rule (see DESIGN.md): sled acknowledges writes before they are
//! on disk. Call [`Db::flush`] before any external effect (an email sent, a
//! claim submitted, a placement made) so a crash cannot forget an effect that
//! already happened.

pub mod batch;
pub mod bridge;
pub mod contract;
#[cfg(test)]
mod crash_tests;
pub mod crypto;
pub mod index;
pub mod keys;
pub mod mem;
pub mod query;
pub mod reindex;
pub mod sled_backend;
pub mod txn;

pub use batch::{Batch, Check, Op};
pub use crypto::{KeyFileError, StoreKey};
pub use index::IndexReport;
pub use keys::time_key;
pub use mem::MemStore;
pub use query::Page;
pub use sled_backend::SledStore;
pub use txn::{Prepared, Tx, Upsert};

use serde::{Serialize, de::DeserializeOwned};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Errors from the store. None of them carries record contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed (I/O, corruption). Retrying rarely helps.
    #[error("store backend error: {0}")]
    Backend(String),
    /// The store is held by another process. Retrying helps only after that
    /// process has stopped.
    #[error(
        "store at {path} is in use by another billd process; only one billd may use a \
         store at a time (stop the other one, or point this one at another store)"
    )]
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
    #[error(
        "record {collection}/{key} has schema version {found}, newer than supported {supported}"
    )]
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
    /// The key file could not be used (missing, readable by others,
    /// malformed). Retrying will not help until the file is fixed.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The key file is a valid key but not the one this store was sealed
    /// with. Nothing was written. Retrying will not help.
    #[error(
        "store at {path} was created with a different key file than {key_file}; \
         use the key file that belongs to this store"
    )]
    WrongKey {
        /// Path of the store directory.
        path: String,
        /// Path of the key file tried.
        key_file: String,
    },
    /// A transaction kept meeting concurrent writers and gave up after
    /// `attempts` runs. Retrying later usually succeeds.
    #[error(
        "transaction gave up after {attempts} attempts: other writers kept changing what it read"
    )]
    Conflict {
        /// How many times the transaction ran.
        attempts: u32,
    },
    /// A record declared an index key the store cannot keep (an index not in
    /// `Record::INDEXES`, or a NUL byte in an index name, value or record
    /// key). A programming error in the record type; retrying will not help.
    #[error("record {collection}/{key}: invalid index key: {reason}")]
    InvalidIndex {
        /// Collection name.
        collection: String,
        /// Record key.
        key: String,
        /// What is wrong (names the index, never quotes its value).
        reason: String,
    },
}

/// Key-value pairs returned by [`RawStore::scan_prefix`], in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The callback of [`RawStore::visit_prefix`]: gets a key and its value,
/// returns whether to go on.
pub type Visitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError> + 'a;

/// An ordered key-value store of named collections. Implementations must be
/// safe to share between threads; keys sort bytewise within a collection.
///
/// The trait is synchronous on purpose: sled and the in-memory store answer
/// in microseconds, and every caller (jobs on the tokio runtime, the CLI,
/// threads) can use it without `.await`. A backend whose client is async
/// (PostgreSQL through sqlx, in a later issue) implements each method as
/// `tokio::task::block_in_place(|| handle.block_on(async { ... }))`: on the
/// multi-thread runtime `block_in_place` hands the worker's other tasks to
/// another thread first, so the runtime never stalls and callers never
/// change. [`bridge::AsyncBridge`] is that pattern over an async inner store,
/// and its tests run the [`contract`] suite through it while a ticker task
/// keeps time. (`block_in_place` panics on a current-thread runtime; such a
/// backend must be used from the multi-thread runtime or from plain threads.)
///
/// Every write is atomic with respect to every other write, including
/// [`RawStore::commit`]: a commit's checks and ops see no other write
/// half-done, and no reader sees half a commit.
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
    /// Removes the value at `key` only if it currently equals `expected`;
    /// returns whether it was removed. Lets [`Db::update`] delete atomically.
    fn compare_and_remove(
        &self,
        collection: &str,
        key: &[u8],
        expected: &[u8],
    ) -> Result<bool, StoreError>;
    /// Removes one value; returns whether it existed.
    fn remove(&self, collection: &str, key: &[u8]) -> Result<bool, StoreError>;
    /// All entries whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, collection: &str, prefix: &[u8]) -> Result<Entries, StoreError>;
    /// Calls `visit` with each entry whose key starts with `prefix`, in key
    /// order, until it returns `Ok(false)` or an error (which is returned).
    /// Unlike [`RawStore::scan_prefix`] a backend may stream, so a large
    /// collection is never all in memory. `visit` may write to the store;
    /// whether the scan then sees those writes is unspecified. The default
    /// visits a [`RawStore::scan_prefix`] snapshot.
    fn visit_prefix(
        &self,
        collection: &str,
        prefix: &[u8],
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError> {
        for (k, v) in self.scan_prefix(collection, prefix)? {
            if !visit(&k, &v)? {
                break;
            }
        }
        Ok(())
    }
    /// Entries with `start <= key <= end` (as the bounds say), in key order,
    /// or in reverse key order when `reverse`; at most `limit` of them,
    /// taken from the end the scan starts at. An empty or inverted range
    /// gives no entries (never a panic).
    fn range(
        &self,
        collection: &str,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: Option<usize>,
        reverse: bool,
    ) -> Result<Entries, StoreError>;
    /// Calls `visit` with each entry of [`RawStore::range`] (without a
    /// limit), in its order, until it returns `Ok(false)` or an error (which
    /// is returned). A backend may stream; `visit` may write to the store
    /// (whether the scan sees it is unspecified). The default visits a
    /// [`RawStore::range`] snapshot.
    fn visit_range(
        &self,
        collection: &str,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError> {
        for (k, v) in self.range(collection, start, end, None, reverse)? {
            if !visit(&k, &v)? {
                break;
            }
        }
        Ok(())
    }
    /// Applies `batch` atomically: if every [`Check`] holds (the value at its
    /// key is exactly `expected`), applies every [`Op`] in order and returns
    /// `true`; otherwise changes nothing and returns `false`. Across
    /// collections, against concurrent writers of every kind, and across a
    /// crash (after a restart a commit is wholly there or wholly absent;
    /// durable after [`RawStore::flush`]).
    fn commit(&self, batch: &Batch) -> Result<bool, StoreError>;
    /// Applies `batch` like [`RawStore::commit`] (every check holds, then
    /// every op, isolated from every other commit) but without the promise
    /// across a crash: after one, any subset of its ops may be missing.
    ///
    /// [`Db`] uses it only for a batch that writes one record and that
    /// record's index entries and reverse entry, which can be rebuilt from
    /// the record: after an unclean shutdown ([`RawStore::needs_repair`])
    /// [`Db::ensure_indexed`] repairs them before anything queries them. A
    /// backend whose atomic commit is costly (sled writes and syncs a log
    /// buffer per atomic batch) applies such a batch as plain writes. The
    /// default is [`RawStore::commit`].
    fn commit_relaxed(&self, batch: &Batch) -> Result<bool, StoreError> {
        self.commit(batch)
    }
    /// Builds a batch with `prepare`, which may read the store, and applies
    /// it like [`RawStore::commit_relaxed`]; returns whether its checks held.
    /// `prepare` is called once.
    ///
    /// A backend that serialises its commits may run `prepare` inside that
    /// serialisation, where what it read cannot change before the batch is
    /// applied, and skip re-reading the checks (sled: one read fewer per
    /// indexed write). The default prepares, then commits with the checks.
    fn commit_relaxed_with(
        &self,
        prepare: &mut dyn FnMut() -> Result<Batch, StoreError>,
    ) -> Result<bool, StoreError> {
        let batch = prepare()?;
        self.commit_relaxed(&batch)
    }
    /// Whether the store was opened after its previous user stopped without
    /// closing it cleanly (a crash, a kill), so a relaxed commit may have
    /// been cut short and index entries need a repair. Always `false` for a
    /// backend whose [`RawStore::commit_relaxed`] is its atomic commit.
    fn needs_repair(&self) -> bool {
        false
    }
    /// Makes every acknowledged write durable before returning.
    fn flush(&self) -> Result<(), StoreError>;
}

/// Whether `start..end` holds no key at all (empty or inverted), which
/// ordered maps refuse with a panic rather than an empty answer.
pub fn range_is_empty(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e))
        | (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
        _ => false,
    }
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
    /// The secondary indexes this record type keeps (see [`index`]). Empty
    /// for an unindexed type, whose writes skip index maintenance.
    const INDEXES: &'static [&'static str] = &[];
    /// This record's entries in its indexes: `(index, value)` pairs, any
    /// number per index. Values sort bytewise, so write dates as RFC 3339
    /// UTC and numbers zero-padded; compose several fields with `/`.
    ///
    /// Index values and record keys are stored unsealed: they must hold ids,
    /// states and dates only, never patient data (names, birth dates,
    /// member ids, diagnoses). No NUL bytes.
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
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
    /// Records opened and decoded by this `Db` and its clones.
    decodes: Arc<AtomicU64>,
    flushes: Arc<AtomicU64>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").finish_non_exhaustive()
    }
}

/// First byte of a record's plaintext: how the body is encoded. JSON.
const CODEC_JSON: u8 = 1;
/// JSON compressed as one LZ4 block with its length prepended (what
/// records of [`COMPRESS_FROM`] bytes or more are written as). Compressed
/// before sealing: a claim's JSON shrinks to about half, so it costs less to
/// seal, to write and to cache. The length of a sealed value then depends
/// on how well the record compresses; the store keeps whole records, and
/// someone able to read the store's files but not its key learns no more
/// than record sizes.
const CODEC_JSON_LZ4: u8 = 2;
/// Bodies shorter than this stay plain JSON (compressing them gains little).
const COMPRESS_FROM: usize = 256;
/// Largest decompressed body accepted (a guard against a corrupt length).
const MAX_BODY: usize = 64 << 20;
/// Codec byte plus the big-endian `u32` schema version.
const ENVELOPE_HEADER: usize = 5;
/// Collection for the store's own bookkeeping; record collections never
/// start with `_`.
const META_COLLECTION: &str = "_meta";
/// Key of the value that tells whether a key file belongs to a store.
const KEY_CHECK_KEY: &str = "key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"billd-store-key-check-v1";

impl Db {
    /// A typed store over `raw`, sealing values under `key`.
    pub fn new(raw: Arc<dyn RawStore>, key: StoreKey) -> Db {
        Db {
            raw,
            key: Arc::new(key),
            decodes: Arc::new(AtomicU64::new(0)),
            flushes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A store in memory under a random key, for tests of the modules built
    /// on the store. Nothing is shared with any other `Db`.
    pub fn in_memory() -> Db {
        Db::new(Arc::new(MemStore::new()), StoreKey::random())
    }

    /// Opens the sled store in `store_dir` (created if absent) with the key
    /// in `key_file`, and a page cache of about `cache_bytes`.
    ///
    /// The key is checked first, so a bad key file never touches the store.
    /// A store remembers a check value sealed under its first key; a
    /// different key gives [`StoreError::WrongKey`] here instead of failed
    /// reads later. Another process using the store gives
    /// [`StoreError::Locked`].
    pub fn open_sled(
        store_dir: &Path,
        key_file: &Path,
        cache_bytes: u64,
    ) -> Result<Db, StoreError> {
        let key = StoreKey::load(key_file)?;
        let raw = SledStore::open(store_dir, cache_bytes)?;
        let db = Db::new(Arc::new(raw), key);
        if !db.key_matches()? {
            return Err(StoreError::WrongKey {
                path: store_dir.display().to_string(),
                key_file: key_file.display().to_string(),
            });
        }
        Ok(db)
    }

    /// Whether this key is the store's key. Seals the check value under it
    /// when the store has none yet (a new store), and flushes that.
    fn key_matches(&self) -> Result<bool, StoreError> {
        let k = KEY_CHECK_KEY.as_bytes();
        let sealed = self.key.seal(META_COLLECTION, k, KEY_CHECK_PLAINTEXT);
        if self.raw.insert_new(META_COLLECTION, k, &sealed)? {
            self.raw.flush()?;
            return Ok(true);
        }
        let Some(stored) = self.raw.get(META_COLLECTION, k)? else {
            return Ok(false);
        };
        Ok(self
            .key
            .open(META_COLLECTION, k, &stored)
            .is_ok_and(|p| p == KEY_CHECK_PLAINTEXT))
    }

    /// The raw store underneath (for backend-specific tools and tests).
    pub fn raw(&self) -> &Arc<dyn RawStore> {
        &self.raw
    }

    /// Reads the record of type `R` at `key`, upgrading an older schema.
    pub fn get<R: Record>(&self, key: &str) -> Result<Option<R>, StoreError> {
        self.raw
            .get(R::COLLECTION, key.as_bytes())?
            .map(|sealed| self.open_record(key, &sealed))
            .transpose()
    }

    /// Writes `r` at `r.key()`, replacing any earlier record.
    pub fn put<R: Record>(&self, r: &R) -> Result<(), StoreError> {
        if !R::INDEXES.is_empty() {
            return self.transact(|tx| tx.put(r));
        }
        let key = r.key();
        let sealed = self.seal_record(&key, r)?;
        self.raw.put(R::COLLECTION, key.as_bytes(), &sealed)
    }

    /// Writes `r` only if nothing is stored at `r.key()`; returns whether it
    /// was written. Atomic across threads: of many callers racing on one key,
    /// exactly one gets `true`. This is how an occurrence or an effect is
    /// claimed. Call [`Db::flush`] before acting on the claim.
    pub fn insert_new<R: Record>(&self, r: &R) -> Result<bool, StoreError> {
        if !R::INDEXES.is_empty() {
            return self.transact(|tx| tx.insert_new(r));
        }
        let key = r.key();
        let sealed = self.seal_record(&key, r)?;
        self.raw.insert_new(R::COLLECTION, key.as_bytes(), &sealed)
    }

    /// Atomically replaces the record at `key` with `f(current)`; `None` from
    /// `f` removes it. `f` may run more than once when another writer gets in
    /// between (compare-and-swap retry), so it must not have side effects.
    /// Returns what was stored. The record is stored under `key`, which
    /// should equal its `key()`.
    pub fn update<R: Record, F: FnMut(Option<R>) -> Option<R>>(
        &self,
        key: &str,
        mut f: F,
    ) -> Result<Option<R>, StoreError> {
        if !R::INDEXES.is_empty() {
            return self.transact(|tx| {
                let new = f(tx.get::<R>(key)?);
                match &new {
                    Some(r) => {
                        debug_assert_eq!(r.key(), key, "update stored a record under another key");
                        tx.put(r)?;
                    }
                    None => {
                        tx.remove::<R>(key)?;
                    }
                }
                Ok(new)
            });
        }
        let k = key.as_bytes();
        loop {
            let current = self.raw.get(R::COLLECTION, k)?;
            let decoded = current
                .as_deref()
                .map(|sealed| self.open_record::<R>(key, sealed))
                .transpose()?;
            match f(decoded) {
                Some(new) => {
                    debug_assert_eq!(new.key(), key, "update stored a record under another key");
                    let sealed = self.seal_record(key, &new)?;
                    if self
                        .raw
                        .compare_and_swap(R::COLLECTION, k, current.as_deref(), &sealed)?
                    {
                        return Ok(Some(new));
                    }
                }
                None => match current {
                    None => return Ok(None),
                    Some(cur) => {
                        if self.raw.compare_and_remove(R::COLLECTION, k, &cur)? {
                            return Ok(None);
                        }
                    }
                },
            }
        }
    }

    /// Removes the record of type `R` at `key`; returns whether it existed.
    pub fn remove<R: Record>(&self, key: &str) -> Result<bool, StoreError> {
        if !R::INDEXES.is_empty() {
            return self.transact(|tx| tx.remove::<R>(key));
        }
        self.raw.remove(R::COLLECTION, key.as_bytes())
    }

    /// Every record of type `R` whose key starts with `prefix`, in key order.
    /// Fails on the first record that does not open or decode.
    pub fn scan<R: Record>(&self, prefix: &str) -> Result<Vec<R>, StoreError> {
        let mut out = Vec::new();
        self.for_each(prefix, |r: R| {
            out.push(r);
            true
        })?;
        Ok(out)
    }

    /// Calls `f` with each record of type `R` whose key starts with `prefix`,
    /// in key order, until `f` returns `false`. Streams on sled: use it for
    /// collections too large to hold in memory. Fails on the first record
    /// that does not open or decode. `f` may write to the store (for
    /// example update the record it was given).
    pub fn for_each<R: Record>(
        &self,
        prefix: &str,
        mut f: impl FnMut(R) -> bool,
    ) -> Result<(), StoreError> {
        self.raw
            .visit_prefix(R::COLLECTION, prefix.as_bytes(), &mut |k, sealed| {
                let record = self.open_record(&String::from_utf8_lossy(k), sealed)?;
                Ok(f(record))
            })
    }

    /// How many records of type `R` are stored, without opening any.
    pub fn count<R: Record>(&self) -> Result<u64, StoreError> {
        let mut n = 0;
        self.raw.visit_prefix(R::COLLECTION, b"", &mut |_, _| {
            n += 1;
            Ok(true)
        })?;
        Ok(n)
    }

    /// Makes every write acknowledged so far durable. Call it before any
    /// external effect (see the module docs).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.raw.flush()
    }

    /// How many times this `Db` (and its clones) was flushed so far. Tests
    /// use it to show which work waits for the disk.
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// How many records this `Db` (and its clones) has opened and decoded
    /// so far. Tests use it to show that a query decodes only what it
    /// returns.
    pub fn decode_count(&self) -> u64 {
        self.decodes.load(Ordering::Relaxed)
    }

    fn seal_record<R: Record>(&self, key: &str, r: &R) -> Result<Vec<u8>, StoreError> {
        let mut plain = zeroize::Zeroizing::new(Vec::with_capacity(1024));
        plain.extend_from_slice(&[CODEC_JSON, 0, 0, 0, 0]);
        plain[1..ENVELOPE_HEADER].copy_from_slice(&R::SCHEMA_VERSION.to_be_bytes());
        serde_json::to_writer(&mut *plain, r).map_err(|e| StoreError::Decode {
            collection: R::COLLECTION.to_owned(),
            key: key.to_owned(),
            reason: format!("could not encode: {}", safe_reason(&e)),
        })?;
        let body_len = plain.len() - ENVELOPE_HEADER;
        if body_len >= COMPRESS_FROM {
            // Compressed straight into a zeroized buffer: the compressed body
            // is as private as the JSON. Layout as `compress_prepend_size`.
            const PREFIX: usize = ENVELOPE_HEADER + 4;
            let mut packed = zeroize::Zeroizing::new(vec![
                0;
                PREFIX + lz4_flex::block::get_maximum_output_size(body_len)
            ]);
            packed[0] = CODEC_JSON_LZ4;
            packed[1..ENVELOPE_HEADER].copy_from_slice(&plain[1..ENVELOPE_HEADER]);
            packed[ENVELOPE_HEADER..PREFIX].copy_from_slice(&(body_len as u32).to_le_bytes());
            let n =
                lz4_flex::block::compress_into(&plain[ENVELOPE_HEADER..], &mut packed[PREFIX..])
                    .map_err(|e| StoreError::Decode {
                        collection: R::COLLECTION.to_owned(),
                        key: key.to_owned(),
                        reason: format!("could not compress: {e}"),
                    })?;
            packed.truncate(PREFIX + n);
            return Ok(self.key.seal(R::COLLECTION, key.as_bytes(), &packed));
        }
        Ok(self.key.seal(R::COLLECTION, key.as_bytes(), &plain))
    }

    fn open_record<R: Record>(&self, key: &str, sealed: &[u8]) -> Result<R, StoreError> {
        self.decodes.fetch_add(1, Ordering::Relaxed);
        let decode_err = |reason: String| StoreError::Decode {
            collection: R::COLLECTION.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let plain = zeroize::Zeroizing::new(
            self.key
                .open(R::COLLECTION, key.as_bytes(), sealed)
                .map_err(|_| StoreError::Decrypt {
                    collection: R::COLLECTION.to_owned(),
                    key: key.to_owned(),
                })?,
        );
        if plain.len() < ENVELOPE_HEADER {
            return Err(decode_err("unknown record envelope".to_owned()));
        }
        let version = u32::from_be_bytes([plain[1], plain[2], plain[3], plain[4]]);
        let unpacked;
        let body = match plain[0] {
            CODEC_JSON => &plain[ENVELOPE_HEADER..],
            CODEC_JSON_LZ4 => {
                let packed = &plain[ENVELOPE_HEADER..];
                let claimed = packed
                    .get(..4)
                    .map(|n| u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize);
                if claimed.is_none_or(|n| n > MAX_BODY) {
                    return Err(decode_err(
                        "compressed body of an impossible size".to_owned(),
                    ));
                }
                unpacked = zeroize::Zeroizing::new(
                    lz4_flex::block::decompress_size_prepended(packed).map_err(|e| {
                        decode_err(format!("compressed body does not decompress: {e}"))
                    })?,
                );
                unpacked.as_slice()
            }
            _ => return Err(decode_err("unknown record envelope".to_owned())),
        };
        if version > R::SCHEMA_VERSION {
            return Err(StoreError::FutureSchema {
                collection: R::COLLECTION.to_owned(),
                key: key.to_owned(),
                found: version,
                supported: R::SCHEMA_VERSION,
            });
        }
        if version == R::SCHEMA_VERSION {
            return serde_json::from_slice(body).map_err(|e| decode_err(safe_reason(&e)));
        }
        let old: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| decode_err(safe_reason(&e)))?;
        let upgraded = R::upgrade(version, old)
            .map_err(|e| decode_err(format!("upgrade from schema version {version}: {e}")))?;
        serde_json::from_value(upgraded).map_err(|e| {
            decode_err(format!(
                "after upgrade from schema version {version}: {}",
                safe_reason(&e)
            ))
        })
    }
}

/// A serde_json error described without the values it may quote (which can
/// be patient data): missing or duplicate field names are kept, anything
/// else is reduced to its category and position.
fn safe_reason(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    if msg.starts_with("missing field") || msg.starts_with("duplicate field") {
        return msg;
    }
    let category = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Data => "value of the wrong type or variant",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    if e.line() == 0 {
        category.to_owned()
    } else {
        format!("{category} at line {} column {}", e.line(), e.column())
    }
}

impl Db {
    /// Changes the record at `key` in place if it exists (an atomic
    /// read-modify-write through [`Db::update`]); returns the record as
    /// written, or `None` when there was none.
    pub fn modify<R: Record, F: FnMut(&mut R)>(
        &self,
        key: &str,
        mut f: F,
    ) -> Result<Option<R>, StoreError> {
        self.update::<R, _>(key, |r| {
            r.map(|mut r| {
                f(&mut r);
                r
            })
        })
    }

    /// The store key, for parts that seal their own values in the raw store
    /// (plugin state).
    pub fn sealing_key(&self) -> Arc<StoreKey> {
        self.key.clone()
    }
}

/// A fresh in-memory store for unit tests of other modules.
#[cfg(test)]
pub fn test_db() -> Db {
    Db::in_memory()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// Schema version 1 of a record in the `evolving` collection.
    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    struct EvolvingV1 {
        id: String,
        full_name: String,
    }
    impl Record for EvolvingV1 {
        const COLLECTION: &'static str = "evolving";
        const SCHEMA_VERSION: u32 = 1;
        fn key(&self) -> String {
            self.id.clone()
        }
    }

    /// Version 2 of the same record: the name is split in two.
    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct EvolvingV2 {
        id: String,
        first: String,
        last: String,
    }
    impl Record for EvolvingV2 {
        const COLLECTION: &'static str = "evolving";
        const SCHEMA_VERSION: u32 = 2;
        fn key(&self) -> String {
            self.id.clone()
        }
        fn upgrade(version: u32, mut v: serde_json::Value) -> Result<serde_json::Value, String> {
            match version {
                1 => {
                    let full = v["full_name"]
                        .as_str()
                        .ok_or("full_name missing")?
                        .to_owned();
                    let (first, last) = full.split_once(' ').ok_or("full_name has no space")?;
                    v["first"] = first.into();
                    v["last"] = last.into();
                    v.as_object_mut().unwrap().remove("full_name");
                    Ok(v)
                }
                2 => Ok(v),
                other => Err(format!("no upgrade from schema version {other}")),
            }
        }
    }

    #[test]
    fn count_says_how_many_records_without_opening_them() {
        let db = Db::in_memory();
        assert_eq!(db.count::<EvolvingV1>().unwrap(), 0);
        for id in ["a", "b", "c"] {
            db.put(&EvolvingV1 {
                id: id.into(),
                full_name: "Ann Lee".into(),
            })
            .unwrap();
        }
        let before = db.decode_count();
        assert_eq!(db.count::<EvolvingV1>().unwrap(), 3);
        assert_eq!(db.decode_count(), before, "nothing was opened");
    }

    #[test]
    fn older_schema_is_upgraded_on_read() {
        let db = mem_db();
        db.put(&EvolvingV1 {
            id: "E1".into(),
            full_name: "Ada Lovelace".into(),
        })
        .unwrap();
        db.put(&EvolvingV1 {
            id: "E2".into(),
            full_name: "Mononym".into(),
        })
        .unwrap();
        assert_eq!(
            db.get::<EvolvingV2>("E1").unwrap(),
            Some(EvolvingV2 {
                id: "E1".into(),
                first: "Ada".into(),
                last: "Lovelace".into(),
            })
        );
        // An upgrade that fails is a Decode error naming the record.
        let err = db.get::<EvolvingV2>("E2").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Decode { .. }), "{err:?}");
        assert!(
            msg.contains("evolving/E2") && msg.contains("schema version 1"),
            "{msg}"
        );
        assert!(!msg.contains("Mononym"), "{msg}");
        // Rewriting it stores the new version, read directly.
        let upgraded: EvolvingV2 = db.get("E1").unwrap().unwrap();
        db.put(&upgraded).unwrap();
        assert_eq!(db.get::<EvolvingV2>("E1").unwrap(), Some(upgraded));
    }

    #[test]
    fn large_records_are_compressed_and_plain_json_ones_still_read() {
        let db = mem_db();
        let big = EvolvingV1 {
            id: "E9".into(),
            full_name: "Ada Lovelace ".repeat(200),
        };
        db.put(&big).unwrap();
        let json_len = serde_json::to_vec(&big).unwrap().len();
        let sealed = db.raw().get("evolving", b"E9").unwrap().unwrap();
        assert!(
            sealed.len() * 4 < json_len,
            "sealed {} bytes for {json_len} bytes of repetitive JSON",
            sealed.len()
        );
        assert_eq!(db.get::<EvolvingV1>("E9").unwrap(), Some(big.clone()));
        // A large record written as plain JSON (as before compression).
        let mut plain = vec![CODEC_JSON, 0, 0, 0, 1];
        plain.extend_from_slice(&serde_json::to_vec(&big).unwrap());
        db.raw()
            .put("evolving", b"E9", &db.key.seal("evolving", b"E9", &plain))
            .unwrap();
        assert_eq!(db.get::<EvolvingV1>("E9").unwrap(), Some(big));
        // A compressed body whose length prefix lies is a Decode error.
        let mut bad = vec![CODEC_JSON_LZ4, 0, 0, 0, 1];
        bad.extend_from_slice(&u32::MAX.to_le_bytes());
        bad.extend_from_slice(b"junk");
        db.raw()
            .put("evolving", b"E9", &db.key.seal("evolving", b"E9", &bad))
            .unwrap();
        let err = db.get::<EvolvingV1>("E9").unwrap_err();
        assert!(matches!(err, StoreError::Decode { .. }), "{err:?}");
    }

    #[test]
    fn newer_schema_is_refused() {
        let db = mem_db();
        db.put(&EvolvingV2 {
            id: "E1".into(),
            first: "Ada".into(),
            last: "Lovelace".into(),
        })
        .unwrap();
        let err = db.get::<EvolvingV1>("E1").unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::FutureSchema {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(matches!(
            db.update::<EvolvingV1, _>("E1", |_| None),
            Err(StoreError::FutureSchema { .. })
        ));
        // The refused update left the record alone.
        assert!(db.get::<EvolvingV2>("E1").unwrap().is_some());
    }

    const NAME: &str = "Quixotina";
    const SURNAME: &str = "Zebulon";

    fn mem_db() -> Db {
        Db::in_memory()
    }

    /// A name, as a test-local record field.
    #[derive(Debug, Serialize, Deserialize)]
    struct PersonName {
        last: String,
        first: String,
    }

    /// A person record in the `patients` collection.
    #[derive(Debug, Serialize, Deserialize)]
    struct Person {
        id: String,
        name: PersonName,
    }
    impl Record for Person {
        const COLLECTION: &'static str = "patients";
        const SCHEMA_VERSION: u32 = 1;
        fn key(&self) -> String {
            self.id.clone()
        }
    }

    /// A record type that misreads the patients collection.
    #[derive(Debug, Serialize, Deserialize)]
    struct WrongPatient {
        id: String,
        name: u32,
    }
    impl Record for WrongPatient {
        const COLLECTION: &'static str = "patients";
        const SCHEMA_VERSION: u32 = 1;
        fn key(&self) -> String {
            self.id.clone()
        }
    }

    #[test]
    fn decode_errors_do_not_quote_patient_data() {
        let db = Db::in_memory();
        let p = Person {
            id: "P0001".into(),
            name: PersonName {
                last: SURNAME.into(),
                first: NAME.into(),
            },
        };
        db.put(&p).unwrap();
        let err = db.get::<WrongPatient>("P0001").unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(matches!(err, StoreError::Decode { .. }), "{shown}");
        assert!(shown.contains("patients/P0001"), "{shown}");
        for secret in [NAME, SURNAME] {
            assert!(!shown.contains(secret), "{shown}");
        }
        // A string where a number belongs: serde_json's own message would
        // quote it ("invalid type: string \"Quixotina\"").
        db.raw()
            .put("patients", b"P0002", &{
                let mut plain = vec![CODEC_JSON, 0, 0, 0, 1];
                plain.extend_from_slice(br#"{"id":"P0002","name":"Quixotina"}"#);
                db.key.seal("patients", b"P0002", &plain)
            })
            .unwrap();
        let err = db.get::<WrongPatient>("P0002").unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("wrong type"), "{shown}");
        assert!(!shown.contains(NAME), "{shown}");
    }
}
