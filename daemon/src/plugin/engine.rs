//! The one place the wasmtime engine is configured.
//!
//! Every limit a plugin runs under that the engine enforces lives here, with
//! the reason for its value: the pooling allocator's slots and sizes, the
//! epoch ticker that gives each call a wall-clock deadline, and the on-disk
//! cache of compiled code. It is also the only module allowed `unsafe`:
//! loading precompiled machine code is unsafe in wasmtime's API because a
//! forged file would run as native code.
//!
//! So a cache file is trusted only if it authenticates. Each file is named
//! by the component's sha256 and a fingerprint of the engine settings, and
//! carries the sha256 of its machine code sealed with the store key
//! ([`StoreKey::seal`], an AEAD) bound to the file's name. A file planted
//! without the key, one copied over another plugin's name, or one whose code
//! was changed does not open, is logged, removed and rebuilt from the
//! (pinned) component. The code is read into memory once, checked, and
//! deserialised from those same bytes, so it cannot change in between.
//! Without a store key nothing is cached. The cache directory is mode 0700,
//! its files 0600.
#![allow(unsafe_code)]

use crate::store::StoreKey;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How the engine is sized. The defaults suit a practice's daemon on a
/// small machine; tests use smaller pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// Calls that may run at once across all plugins. Each takes one slot of
    /// the pooling allocator (a component instance, its memories, tables and
    /// an async stack); a call beyond this fails fast instead of allocating.
    /// 64 is far above what a job's bounded concurrency asks for.
    pub max_concurrent_instances: u32,
    /// The cap on one plugin instance's linear memory. Connectors parse
    /// documents of a few megabytes (an 835 for a month); 64 MiB leaves room
    /// for that and stops a runaway allocation long before it hurts the host.
    pub max_memory_bytes: u64,
    /// Core wasm instances one component may create. A Rust guest built
    /// for wasm32-wasip2 has a handful (its module plus adapter shims).
    pub max_core_instances_per_component: u32,
    /// Table elements one table may hold (function pointers of the guest).
    pub max_table_elements: usize,
    /// Period of the epoch ticker. Every call's deadline is checked at each
    /// tick, so a runaway guest stops within one tick of its deadline; 10 ms
    /// costs nothing measurable (DESIGN.md) and is fine-grained enough for
    /// deadlines of seconds.
    pub epoch_tick: Duration,
    /// The guest's native stack for async calls. 1 MiB matches what Rust
    /// guests expect from wasmtime's default.
    pub async_stack_bytes: usize,
    /// Bytes of the pages a call wrote in its linear memory that are put
    /// back in place (copied from the module's initial image, or zeroed)
    /// when the instance ends, so they stay resident for the next instance
    /// in that slot; written pages past this, and all pages on a kernel
    /// without `PAGEMAP_SCAN` (before Linux 6.7), are returned to the
    /// kernel with `madvise` and fault in again on the next call. With the
    /// scan only written pages are touched, so this is a bound, not a cost.
    /// Measured with `benches/plugin_call.rs` on a 2-core machine (fresh
    /// call p50): without the scan 0 gave 25–32 µs and any larger value was
    /// slower (1 MiB: 53 µs, a `memset` of 1 MiB per call); with it 256 KiB
    /// gave 12.8 µs, 1 MiB 13.5 and 4 MiB 13.1. Idle slots keep at most
    /// this much resident each; hence 1 MiB.
    pub memory_keep_resident_bytes: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_concurrent_instances: 64,
            max_memory_bytes: 64 << 20,
            max_core_instances_per_component: 16,
            max_table_elements: 20_000,
            epoch_tick: Duration::from_millis(10),
            async_stack_bytes: 1 << 20,
            memory_keep_resident_bytes: 1 << 20,
        }
    }
}

impl EngineSettings {
    /// Settings for tests and the author harness: a small pool (few calls run
    /// at once) so many engines can coexist in one test process.
    pub fn small() -> Self {
        Self {
            max_concurrent_instances: 8,
            max_memory_bytes: 32 << 20,
            ..Self::default()
        }
    }

    /// Text that changes whenever a setting that affects compiled code or
    /// its limits changes; part of the cache key.
    fn describe(&self) -> String {
        format!(
            "billd-engine-v1 instances={} memory={} core={} table={} stack={} resident={}",
            self.max_concurrent_instances,
            self.max_memory_bytes,
            self.max_core_instances_per_component,
            self.max_table_elements,
            self.async_stack_bytes,
            self.memory_keep_resident_bytes
        )
    }
}

/// Errors from setting up the engine or compiling a component.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// wasmtime refused the configuration (a bug or an unsupported host).
    #[error("cannot set up the WebAssembly engine: {0}")]
    Config(String),
    /// The bytes are not a valid component for this engine.
    #[error("{path}: not a valid WebAssembly component: {reason}")]
    Compile {
        /// The component file.
        path: String,
        /// What wasmtime said.
        reason: String,
    },
    /// The cache directory could not be used (the component still loads,
    /// compiled afresh; this error is only returned by explicit cache ops).
    #[error("compiled-code cache at {path}: {reason}")]
    Cache {
        /// The cache directory.
        path: String,
        /// What failed.
        reason: String,
    },
}

/// The engine and everything that lives as long as it: the epoch ticker
/// thread and the compiled-code cache directory. Cheap to clone.
#[derive(Clone)]
pub struct PluginEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    engine: Engine,
    settings: EngineSettings,
    fingerprint: String,
    cache: Option<CodeCache>,
    stop_ticker: Arc<AtomicBool>,
}

/// Where compiled code is cached, and the key that authenticates it.
#[derive(Clone)]
pub struct CodeCache {
    /// The directory (created 0700).
    pub dir: PathBuf,
    /// The store key; each file's code hash is sealed with it.
    pub key: Arc<StoreKey>,
}

impl std::fmt::Debug for CodeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The first bytes of an authenticated cache file.
const CACHE_MAGIC: &[u8; 8] = b"BILLDCW1";
/// The store collection name the seal is bound to (with the file name).
const CACHE_SEAL_PLACE: &str = "plugin-cache";

/// Why a cache file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheRefusal {
    /// Not in billd's authenticated format (planted, or from an old billd).
    #[error("not an authenticated billd cache file")]
    Format,
    /// The seal does not open for this file name under this store key: the
    /// file was planted, or copied from another plugin's name or store.
    #[error("its seal does not authenticate for this name and store key")]
    Seal,
    /// The code does not match the sealed hash: it was changed.
    #[error("its code does not match its sealed hash")]
    Code,
}

/// Splits an authenticated cache file into its code, if it authenticates.
fn authenticated_code<'a>(
    key: &StoreKey,
    name: &str,
    file: &'a [u8],
) -> Result<&'a [u8], CacheRefusal> {
    let rest = file.strip_prefix(CACHE_MAGIC).ok_or(CacheRefusal::Format)?;
    let (len, rest) = rest.split_first_chunk::<4>().ok_or(CacheRefusal::Format)?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(CacheRefusal::Format);
    }
    let (seal, code) = rest.split_at(len);
    let hash = key
        .open(CACHE_SEAL_PLACE, name.as_bytes(), seal)
        .map_err(|_| CacheRefusal::Seal)?;
    if hash.as_slice() != Sha256::digest(code).as_slice() {
        return Err(CacheRefusal::Code);
    }
    Ok(code)
}

/// The bytes of an authenticated cache file holding `code`.
fn authenticated_file(key: &StoreKey, name: &str, code: &[u8]) -> Vec<u8> {
    let seal = key.seal(
        CACHE_SEAL_PLACE,
        name.as_bytes(),
        Sha256::digest(code).as_slice(),
    );
    let mut out = Vec::with_capacity(CACHE_MAGIC.len() + 4 + seal.len() + code.len());
    out.extend_from_slice(CACHE_MAGIC);
    out.extend_from_slice(&(seal.len() as u32).to_le_bytes());
    out.extend_from_slice(&seal);
    out.extend_from_slice(code);
    out
}

/// Creates the cache directory 0700 (and tightens an existing one).
fn prepare_cache_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("settings", &self.inner.settings)
            .field("cache", &self.inner.cache)
            .finish_non_exhaustive()
    }
}

/// Feeds `Hash` output into a sha256, so the engine's compatibility hash
/// becomes a stable file-name component.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl PluginEngine {
    /// Builds the engine and starts its epoch ticker. `cache`, when set, is
    /// where compiled code is kept between runs (created 0700 if missing),
    /// authenticated with its key.
    pub fn new(settings: EngineSettings, cache: Option<CodeCache>) -> Result<Self, EngineError> {
        let pagemap = PoolingAllocationConfig::is_pagemap_scan_available();
        if !pagemap {
            tracing::debug!(
                "the kernel has no PAGEMAP_SCAN (Linux 6.7+): plugin memory is returned to the kernel after every call"
            );
        }
        let mut pool = PoolingAllocationConfig::new();
        let n = settings.max_concurrent_instances;
        pool.total_component_instances(n)
            .total_core_instances(n * settings.max_core_instances_per_component)
            .max_core_instances_per_component(settings.max_core_instances_per_component)
            // One linear memory per core instance at most, and a component
            // built from Rust uses one or two.
            .total_memories(n * 2)
            .max_memories_per_component(2)
            .total_tables(n * 4)
            .max_tables_per_component(4)
            .table_elements(settings.max_table_elements)
            .max_memory_size(settings.max_memory_bytes as usize)
            .total_stacks(n)
            // See `memory_keep_resident_bytes`: only with the page scan does
            // keeping pages resident pay.
            .pagemap_scan(if pagemap { Enabled::Yes } else { Enabled::No })
            .linear_memory_keep_resident(if pagemap {
                settings.memory_keep_resident_bytes
            } else {
                0
            })
            .table_keep_resident(64 << 10);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .async_stack_size(settings.async_stack_bytes)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| EngineError::Config(e.to_string()))?;

        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.0.update(settings.describe().as_bytes());
        let fingerprint = hex::encode(&hasher.0.finalize()[..8]);

        let stop_ticker = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), settings.epoch_tick, stop_ticker.clone())?;

        let cache = cache.filter(|c| match prepare_cache_dir(&c.dir) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(cache = %c.dir.display(), error = %e, "plugin code cache unusable; compiling every start");
                false
            }
        });
        Ok(Self {
            inner: Arc::new(EngineInner {
                engine,
                settings,
                fingerprint,
                cache,
                stop_ticker,
            }),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The settings this engine was built with.
    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    /// The cache file for a component with this sha256 (hex), if caching.
    pub fn cache_path(&self, sha256_hex: &str) -> Option<PathBuf> {
        self.inner
            .cache
            .as_ref()
            .map(|c| c.dir.join(self.cache_name(sha256_hex)))
    }

    fn cache_name(&self, sha256_hex: &str) -> String {
        format!("{sha256_hex}-{}.cwasm", self.inner.fingerprint)
    }

    /// The cached component for `sha256_hex`, if its file authenticates;
    /// a file that does not is logged and removed.
    fn cached_component(&self, cache: &CodeCache, sha256_hex: &str) -> Option<Component> {
        let name = self.cache_name(sha256_hex);
        let file = cache.dir.join(&name);
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(cache = %file.display(), error = %e, "cannot read cached plugin code; compiling");
                return None;
            }
        };
        let refused = match authenticated_code(&cache.key, &name, &bytes) {
            // SAFETY: these bytes authenticated just now: their sha256 was
            // sealed under the store key for exactly this file name, which
            // only `store_in_cache` does, with the output of
            // `Component::serialize` of the component whose sha256 names
            // the file (the caller has just read and hashed it). They are
            // deserialised from this same buffer, so they cannot change
            // after the check. wasmtime also checks the engine
            // compatibility header.
            Ok(code) => match unsafe { Component::deserialize(&self.inner.engine, code) } {
                Ok(c) => return Some(c),
                Err(e) => format!("wasmtime refused it: {e}"),
            },
            Err(r) => r.to_string(),
        };
        tracing::warn!(cache = %file.display(), reason = %refused, "refusing cached plugin code; rebuilding it from the component");
        let _ = std::fs::remove_file(&file);
        None
    }

    /// Compiles `bytes` (whose sha256 is `sha256_hex`), or loads the code
    /// compiled earlier from the cache. Returns the component and whether
    /// the cache supplied it.
    pub fn load_component(
        &self,
        path: &Path,
        bytes: &[u8],
        sha256_hex: &str,
    ) -> Result<(Component, bool), EngineError> {
        let cache = self.inner.cache.as_ref();
        if let Some(c) = cache.and_then(|c| self.cached_component(c, sha256_hex)) {
            return Ok((c, true));
        }
        let component =
            Component::new(&self.inner.engine, bytes).map_err(|e| EngineError::Compile {
                path: path.display().to_string(),
                reason: format!("{e:#}"),
            })?;
        if let Some(c) = cache {
            store_in_cache(c, &self.cache_name(sha256_hex), &component);
        }
        Ok((component, false))
    }
}

fn store_in_cache(cache: &CodeCache, name: &str, component: &Component) {
    let file = cache.dir.join(name);
    let result = component
        .serialize()
        .map_err(|e| e.to_string())
        .and_then(|code| {
            let tmp = file.with_extension(format!("tmp{}", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| e.to_string())?;
            std::io::Write::write_all(&mut f, &authenticated_file(&cache.key, name, &code))
                .map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &file).map_err(|e| e.to_string())
        });
    if let Err(e) = result {
        tracing::warn!(cache = %file.display(), error = %e, "could not cache compiled plugin code");
    }
}

/// One thread per engine advances the epoch every `tick`; it stops when the
/// engine is dropped. Calls check their own deadline at each tick.
fn spawn_ticker(engine: Engine, tick: Duration, stop: Arc<AtomicBool>) -> Result<(), EngineError> {
    let weak = engine.weak();
    drop(engine);
    std::thread::Builder::new()
        .name("billd-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(|_| ())
        .map_err(|e| EngineError::Config(format!("starting the epoch ticker: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_file_authenticates_only_under_its_name_and_key() {
        let key = StoreKey::random();
        let file = authenticated_file(&key, "a.cwasm", b"machine code");
        assert_eq!(
            authenticated_code(&key, "a.cwasm", &file),
            Ok(&b"machine code"[..])
        );
        assert_eq!(
            authenticated_code(&key, "b.cwasm", &file),
            Err(CacheRefusal::Seal)
        );
        assert_eq!(
            authenticated_code(&StoreKey::random(), "a.cwasm", &file),
            Err(CacheRefusal::Seal)
        );
        let mut changed = file.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert_eq!(
            authenticated_code(&key, "a.cwasm", &changed),
            Err(CacheRefusal::Code)
        );
        assert_eq!(
            authenticated_code(&key, "a.cwasm", b"machine code"),
            Err(CacheRefusal::Format)
        );
        assert_eq!(
            authenticated_code(&key, "a.cwasm", &file[..20]),
            Err(CacheRefusal::Format)
        );
    }
}
