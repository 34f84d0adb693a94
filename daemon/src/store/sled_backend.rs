//! The default [`super::RawStore`]: sled 0.34.7 on a local directory.
//!
//! One sled tree per collection, opened on first use and cached. sled takes an
//! exclusive `flock` on its data file, so a second billd process pointed at the
//! same directory cannot open it; that failure becomes
//! [`StoreError::Locked`], which is what stops two daemons from running the
//! same scheduled occurrence.
//!
//! sled acknowledges a write before it reaches disk (it syncs every 500 ms in
//! the background). [`SledStore::flush`] is the durability barrier; DESIGN.md
//! says when to call it.

use super::{Batch, Entries, Op, RawStore, StoreError, Visitor, range_is_empty};
use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use std::collections::HashMap;
use std::ops::Bound;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// A sled database on a local directory, used through [`RawStore`].
pub struct SledStore {
    db: sled::Db,
    path: PathBuf,
    /// Trees opened so far. sled's own `open_tree` takes a global lock and
    /// hashes the name; this cache keeps the hot path to one read lock.
    trees: RwLock<HashMap<String, sled::Tree>>,
    /// Held by every write: every commit, atomic or relaxed, and every
    /// single-key write. A commit reads its checks with plain reads under
    /// it ([`SledStore::checks_hold`]), so they stay true while its writes
    /// are applied; sled's transactional reads would cost more.
    writes: Mutex<()>,
    /// Whether the previous user of the store closed it cleanly.
    opened_clean: bool,
    /// Set when a relaxed commit stopped part-way (an error or a panic): the
    /// store is then not marked clean when closed, so the next open repairs.
    cut_short: AtomicBool,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The text sled 0.34.7 puts in the `io::Error` it returns when another
/// process holds the lock on its data file (`config.rs`, `try_lock`).
const SLED_LOCK_MESSAGE: &str = "could not acquire lock";

/// How long `open` keeps trying while the store is locked. Dropping a sled
/// database does not release its file lock at once (sled's background threads
/// let go of the file a moment later; spacejam/sled#1234), so a restart
/// within one process, or a daemon started just as the previous one exits,
/// would otherwise be refused. A store held by a live process is still
/// reported after this wait.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);
/// Pause between attempts while waiting for the lock.
const LOCK_RETRY_INTERVAL: Duration = Duration::from_millis(20);
/// The backend's own tree (record collections never start with `_`).
const BACKEND_TREE: &str = "_sled";
/// Key in [`BACKEND_TREE`] present only while the store is closed after a
/// clean shutdown: removed (and flushed) at open, written back at close.
const CLEAN_KEY: &[u8] = b"closed-clean";

impl SledStore {
    /// Takes the lock every write holds (a panic while it was held left
    /// nothing half-written that the lock protects: sled's own writes are
    /// atomic, and a cut-short relaxed commit is flagged for repair).
    fn write_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens (creating if needed, with mode 0700) the store in directory
    /// `path`, with a page cache of about `cache_bytes`.
    ///
    /// Fails with [`StoreError::Locked`] when another process (or another
    /// open `SledStore` in this one) still holds the store after
    /// [`LOCK_WAIT`]; retrying helps only once that holder has stopped.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        let shown = path.display().to_string();
        if !path.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(|e| {
                    StoreError::Backend(format!("cannot create store directory {shown}: {e}"))
                })?;
        }
        // Throughput mode: sled reclaims log space less eagerly than in its
        // default low-space mode and writes about 1.4 times as fast
        // (measured here with the store bench); billd's data is small next
        // to the disks it runs on.
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput);
        let deadline = Instant::now() + LOCK_WAIT;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(ref io)) if io.to_string().contains(SLED_LOCK_MESSAGE) => {
                    if Instant::now() >= deadline {
                        return Err(StoreError::Locked { path: shown });
                    }
                    std::thread::sleep(LOCK_RETRY_INTERVAL);
                }
                Err(other) => {
                    return Err(StoreError::Backend(format!(
                        "cannot open store {shown}: {other}"
                    )));
                }
            }
        };
        let backend = |e: sled::Error| StoreError::Backend(format!("store {shown}: {e}"));
        let state = db.open_tree(BACKEND_TREE).map_err(backend)?;
        let opened_clean = state.remove(CLEAN_KEY).map_err(backend)?.is_some();
        if opened_clean {
            // Until this removal is durable a crash would leave the store
            // looking cleanly closed with relaxed commits lost.
            db.flush().map_err(backend)?;
        }
        Ok(SledStore {
            db,
            path: path.to_owned(),
            trees: RwLock::new(HashMap::new()),
            writes: Mutex::new(()),
            opened_clean,
            cut_short: AtomicBool::new(false),
        })
    }

    /// Flushes, then (unless a relaxed commit was cut short) records that
    /// the store was closed cleanly and flushes that too.
    fn mark_clean(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| self.backend(e))?;
        if self.cut_short.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.tree(BACKEND_TREE)?
            .insert(CLEAN_KEY, &b"1"[..])
            .map_err(|e| self.backend(e))?;
        self.db.flush().map_err(|e| self.backend(e))?;
        Ok(())
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes the store occupies on disk, as sled counts them.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(|e| self.backend(e))
    }

    fn backend(&self, e: sled::Error) -> StoreError {
        StoreError::Backend(format!("store {}: {e}", self.path.display()))
    }

    fn tree(&self, collection: &str) -> Result<sled::Tree, StoreError> {
        if let Some(t) = self
            .trees
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(collection)
        {
            return Ok(t.clone());
        }
        let mut trees = self.trees.write().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = trees.get(collection) {
            return Ok(t.clone());
        }
        let t = self.db.open_tree(collection).map_err(|e| self.backend(e))?;
        trees.insert(collection.to_owned(), t.clone());
        Ok(t)
    }

    /// Whether every check of `batch` still holds. The caller holds the
    /// write lock, so the answer stays true until it lets go.
    fn checks_hold(&self, batch: &Batch) -> Result<bool, StoreError> {
        for c in &batch.checks {
            let now = self
                .tree(&c.collection)?
                .get(&c.key)
                .map_err(|e| self.backend(e))?;
            if now.as_deref() != c.expected.as_deref() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Applies `batch` as plain writes, after verifying its checks when
    /// `check`. The caller holds the write lock.
    fn apply_relaxed(&self, batch: &Batch, check: bool) -> Result<bool, StoreError> {
        if check && !self.checks_hold(batch)? {
            return Ok(false);
        }
        // Plain writes: each is atomic, the batch is not (sled's atomic
        // batches write and sync a log buffer each). If an op fails or
        // panics the store stays marked as cut short until it is reopened.
        let unfinished = CutShortUnlessDone {
            flag: &self.cut_short,
            done: false,
        };
        for op in &batch.ops {
            match op {
                Op::Put {
                    collection,
                    key,
                    value,
                } => {
                    self.tree(collection)?
                        .insert(key.as_slice(), value.as_slice())
                        .map_err(|e| self.backend(e))?;
                }
                Op::Remove { collection, key } => {
                    self.tree(collection)?
                        .remove(key.as_slice())
                        .map_err(|e| self.backend(e))?;
                }
            }
        }
        unfinished.finish();
        Ok(true)
    }
}

impl RawStore for SledStore {
    fn get(&self, collection: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(collection)?
            .get(key)
            .map_err(|e| self.backend(e))?
            .map(|v| v.to_vec()))
    }

    fn put(&self, collection: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let tree = self.tree(collection)?;
        let _write = self.write_lock();
        tree.insert(key, value).map_err(|e| self.backend(e))?;
        Ok(())
    }

    fn insert_new(&self, collection: &str, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        self.compare_and_swap(collection, key, None, value)
    }

    fn compare_and_swap(
        &self,
        collection: &str,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let tree = self.tree(collection)?;
        let _write = self.write_lock();
        Ok(tree
            .compare_and_swap(key, expected, Some(new))
            .map_err(|e| self.backend(e))?
            .is_ok())
    }

    fn compare_and_remove(
        &self,
        collection: &str,
        key: &[u8],
        expected: &[u8],
    ) -> Result<bool, StoreError> {
        let tree = self.tree(collection)?;
        let _write = self.write_lock();
        Ok(tree
            .compare_and_swap(key, Some(expected), None::<&[u8]>)
            .map_err(|e| self.backend(e))?
            .is_ok())
    }

    fn remove(&self, collection: &str, key: &[u8]) -> Result<bool, StoreError> {
        let tree = self.tree(collection)?;
        let _write = self.write_lock();
        Ok(tree.remove(key).map_err(|e| self.backend(e))?.is_some())
    }

    fn scan_prefix(&self, collection: &str, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.tree(collection)?
            .scan_prefix(prefix)
            .map(|kv| {
                kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(|e| self.backend(e))
            })
            .collect()
    }

    fn visit_prefix(
        &self,
        collection: &str,
        prefix: &[u8],
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError> {
        for kv in self.tree(collection)?.scan_prefix(prefix) {
            let (k, v) = kv.map_err(|e| self.backend(e))?;
            if !visit(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    fn range(
        &self,
        collection: &str,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: Option<usize>,
        reverse: bool,
    ) -> Result<Entries, StoreError> {
        let mut out = Vec::new();
        let take = limit.unwrap_or(usize::MAX);
        if take == 0 {
            return Ok(out);
        }
        self.visit_range(collection, start, end, reverse, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(out.len() < take)
        })?;
        Ok(out)
    }

    fn visit_range(
        &self,
        collection: &str,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError> {
        if range_is_empty(start, end) {
            return Ok(());
        }
        let iter = self.tree(collection)?.range::<&[u8], _>((start, end));
        let mut step = |kv: sled::Result<(sled::IVec, sled::IVec)>| {
            let (k, v) = kv.map_err(|e| self.backend(e))?;
            visit(&k, &v)
        };
        if reverse {
            for kv in iter.rev() {
                if !step(kv)? {
                    break;
                }
            }
        } else {
            for kv in iter {
                if !step(kv)? {
                    break;
                }
            }
        }
        Ok(())
    }

    fn commit(&self, batch: &Batch) -> Result<bool, StoreError> {
        let names = batch.collections();
        if names.is_empty() {
            return Ok(true);
        }
        let trees = names
            .iter()
            .map(|n| self.tree(n))
            .collect::<Result<Vec<_>, _>>()?;
        let slot = |collection: &str| {
            names
                .binary_search(&collection)
                .expect("every collection of the batch has a tree")
        };
        let _commit = self.write_lock();
        if !self.checks_hold(batch)? {
            return Ok(false);
        }
        if batch.ops.len() == 1 {
            // One write is atomic by itself, and the lock keeps the checks
            // true until it lands: no sled transaction (each of which rolls
            // and syncs the log buffer twice) is needed.
            return self.apply_relaxed(batch, false);
        }
        // sled runs the closure under its global write lock (every other
        // write takes the read side), and recovers the batch atomically.
        let result = trees.as_slice().transaction(|view| {
            for op in &batch.ops {
                match op {
                    Op::Put {
                        collection,
                        key,
                        value,
                    } => {
                        view[slot(collection)].insert(key.as_slice(), value.as_slice())?;
                    }
                    Op::Remove { collection, key } => {
                        view[slot(collection)].remove(key.as_slice())?;
                    }
                }
            }
            Ok::<_, ConflictableTransactionError<std::convert::Infallible>>(())
        });
        match result {
            Ok(()) => Ok(true),
            Err(TransactionError::Abort(never)) => match never {},
            Err(TransactionError::Storage(e)) => Err(self.backend(e)),
        }
    }

    fn commit_relaxed(&self, batch: &Batch) -> Result<bool, StoreError> {
        let _commit = self.write_lock();
        self.apply_relaxed(batch, true)
    }

    fn commit_relaxed_with(
        &self,
        prepare: &mut dyn FnMut() -> Result<Batch, StoreError>,
    ) -> Result<bool, StoreError> {
        // Every write holds this lock: what `prepare` reads under it stays
        // true until the batch is applied, so its checks need no second read.
        let _commit = self.write_lock();
        let batch = prepare()?;
        self.apply_relaxed(&batch, false)
    }

    fn needs_repair(&self) -> bool {
        !self.opened_clean
    }

    fn flush(&self) -> Result<(), StoreError> {
        // All trees share one page cache and log: one flush covers them.
        self.db.flush().map_err(|e| self.backend(e))?;
        Ok(())
    }
}

/// Sets `flag` when dropped before [`CutShortUnlessDone::finish`].
struct CutShortUnlessDone<'a> {
    flag: &'a AtomicBool,
    done: bool,
}

impl CutShortUnlessDone<'_> {
    fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for CutShortUnlessDone<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Err(e) = self.mark_clean() {
            tracing::warn!(error = %e, "store not marked as cleanly closed; the next open repairs its indexes");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract;
    use std::process::Command;
    use std::sync::Arc;

    const CACHE: u64 = 8 << 20;

    #[test]
    fn sled_store_meets_the_raw_store_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("store"), CACHE).unwrap();
        contract::raw_suite(&store);
    }

    #[test]
    fn sled_store_meets_the_db_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("store"), CACHE).unwrap();
        contract::db_suite(Arc::new(store));
    }

    #[test]
    fn store_directory_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/store");
        let _store = SledStore::open(&path, CACHE).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn data_survives_reopen_after_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        {
            let store = SledStore::open(&path, CACHE).unwrap();
            store.put("claims", b"C1", b"one").unwrap();
            store.put("tasks", b"T1", b"two").unwrap();
            store.flush().unwrap();
        }
        let store = SledStore::open(&path, CACHE).unwrap();
        assert_eq!(store.get("claims", b"C1").unwrap().unwrap(), b"one");
        assert_eq!(store.get("tasks", b"T1").unwrap().unwrap(), b"two");
        assert_eq!(store.get("tasks", b"C1").unwrap(), None);
    }

    /// Environment variable that turns [`lock_probe_child`] into the second
    /// process of [`second_process_is_refused_while_the_first_runs`].
    const PROBE_ENV: &str = "BILLD_TEST_LOCK_PROBE_DIR";
    const PROBE_LOCKED: &str = "PROBE-RESULT: locked:";
    const PROBE_OPENED: &str = "PROBE-RESULT: opened";

    /// Runs this test binary again, filtered to [`lock_probe_child`], against
    /// the store at `path`; returns the child's stdout.
    fn run_probe(path: &Path) -> String {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::sled_backend::tests::lock_probe_child",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PROBE_ENV, path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "probe process failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("1 passed"),
            "probe test did not run:\n{stdout}"
        );
        stdout
    }

    /// The second process of the lock test. It opens the store named by
    /// `BILLD_TEST_LOCK_PROBE_DIR`, writes a value if it can, and reports
    /// what happened on stdout. Run alone (`--include-ignored`, no variable)
    /// it probes a fresh store, which must open.
    #[test]
    #[ignore = "helper process for second_process_is_refused_while_the_first_runs"]
    fn lock_probe_child() {
        let Some(dir) = std::env::var_os(PROBE_ENV) else {
            let free = tempfile::tempdir().unwrap();
            let path = free.path().join("store");
            assert_eq!(probe(&path), PROBE_OPENED);
            let store = SledStore::open(&path, CACHE).unwrap();
            assert_eq!(store.get("occurrences", b"probe").unwrap().unwrap(), b"x");
            return;
        };
        println!("{}", probe(Path::new(&dir)));
    }

    /// Opens the store at `path` and writes to it; says which happened.
    fn probe(path: &Path) -> String {
        match SledStore::open(path, CACHE) {
            Err(e @ StoreError::Locked { .. }) => format!("{PROBE_LOCKED} {e}"),
            Ok(store) => {
                store.put("occurrences", b"probe", b"x").unwrap();
                store.flush().unwrap();
                PROBE_OPENED.to_owned()
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }

    #[test]
    fn second_process_is_refused_while_the_first_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = SledStore::open(&path, CACHE).unwrap();
        store.put("occurrences", b"first", b"x").unwrap();
        store.flush().unwrap();

        let stdout = run_probe(&path);
        // The test harness may print its own text before ours on the line.
        let line = stdout
            .lines()
            .find_map(|l| l.find(PROBE_LOCKED).map(|i| &l[i..]))
            .unwrap_or_else(|| panic!("second process was not refused:\n{stdout}"));
        // The message names the store and says what is wrong.
        assert!(line.contains(&path.display().to_string()), "{line}");
        assert!(line.contains("in use by another billd process"), "{line}");
        assert_eq!(store.get("occurrences", b"probe").unwrap(), None);

        // Once the first process lets go, a second one can open it: the lock
        // is the only thing that stopped it.
        drop(store);
        let stdout = run_probe(&path);
        assert!(stdout.contains(PROBE_OPENED), "{stdout}");
        let store = SledStore::open(&path, CACHE).unwrap();
        assert_eq!(store.get("occurrences", b"probe").unwrap().unwrap(), b"x");
        assert_eq!(store.get("occurrences", b"first").unwrap().unwrap(), b"x");
    }
}
