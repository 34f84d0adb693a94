//! The one place the wasmtime engine is configured.
//!
//! Every limit a plugin runs under that the engine enforces lives here, with
//! the reason for its value: the pooling allocator's slots and sizes, the
//! epoch ticker that gives each call a wall-clock deadline, and the on-disk
//! cache of compiled code. It is also the only module allowed `unsafe`:
//! loading precompiled machine code is unsafe in wasmtime's API because a
//! forged file would run as native code, so the cache only ever loads files
//! it wrote itself, named by the component's sha256 and a fingerprint of the
//! engine settings.
#![allow(unsafe_code)]

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

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
    /// Bytes of each memory slot reset with `memset` (and kept resident)
    /// when an instance ends, instead of `madvise`. Measured with
    /// `benches/plugin_call.rs` on this 2-core machine: 0 gave a fresh-call
    /// p50 of 25 µs, 64 KiB 27 µs, 256 KiB 29 µs and 1 MiB 53 µs (a Rust
    /// guest's memory starts above 1 MiB, so a large value memsets it all on
    /// every call). Hence 0.
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
            memory_keep_resident_bytes: 0,
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
    cache_dir: Option<PathBuf>,
    stop_ticker: Arc<AtomicBool>,
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
            .field("cache_dir", &self.inner.cache_dir)
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
    /// Builds the engine and starts its epoch ticker. `cache_dir`, when set,
    /// is where compiled code is kept between runs (created if missing).
    pub fn new(settings: EngineSettings, cache_dir: Option<PathBuf>) -> Result<Self, EngineError> {
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
            // See `memory_keep_resident_bytes` for why this is small.
            .linear_memory_keep_resident(settings.memory_keep_resident_bytes)
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

        if let Some(dir) = &cache_dir
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            tracing::warn!(cache = %dir.display(), error = %e, "plugin code cache unusable; compiling every start");
        }
        Ok(Self {
            inner: Arc::new(EngineInner {
                engine,
                settings,
                fingerprint,
                cache_dir,
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
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("{sha256_hex}-{}.cwasm", self.inner.fingerprint)))
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
        let cached = self.cache_path(sha256_hex);
        if let Some(file) = &cached
            && file.is_file()
        {
            // SAFETY: the file is named by the sha256 of the component the
            // caller has just read and hashed and by this engine's
            // fingerprint, and only `store_in_cache` below writes such files
            // (atomically, from `Component::serialize` of that same
            // component). wasmtime also checks the header's engine
            // compatibility before using it.
            match unsafe { Component::deserialize_file(&self.inner.engine, file) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(cache = %file.display(), error = %e, "discarding unusable cached plugin code");
                    let _ = std::fs::remove_file(file);
                }
            }
        }
        let component =
            Component::new(&self.inner.engine, bytes).map_err(|e| EngineError::Compile {
                path: path.display().to_string(),
                reason: format!("{e:#}"),
            })?;
        if let Some(file) = &cached {
            store_in_cache(&component, file);
        }
        Ok((component, false))
    }
}

fn store_in_cache(component: &Component, file: &Path) {
    let result = component
        .serialize()
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            let tmp = file.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, file).map_err(|e| e.to_string())
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
