//! The set of loaded plugins, and reloading it without stopping calls.
//!
//! Jobs look a plugin up by name and hold the returned `Arc` for the length
//! of their call. A reload loads and verifies every configured plugin
//! first; only when all succeed is the whole set swapped in one atomic step.
//! New calls then see the new versions while calls already running finish
//! on the versions they started with (they keep those alive through their
//! `Arc`). A reload that fails changes nothing.

use super::{LoadError, LoadedPlugin, PluginHost, PluginSpec};
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::sync::Arc;

type PluginMap = BTreeMap<String, Arc<LoadedPlugin>>;

/// The loaded plugins by name.
pub struct PluginRegistry {
    host: Arc<PluginHost>,
    current: ArcSwap<PluginMap>,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRegistry")
            .field("plugins", &self.current.load().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Plugins that were not loaded before.
    pub added: Vec<String>,
    /// Plugins no longer configured.
    pub removed: Vec<String>,
    /// Plugins whose component, manifest or configuration may have changed
    /// (every plugin present before and after is replaced).
    pub replaced: Vec<String>,
}

impl PluginRegistry {
    /// Loads every spec; fails with every plugin's problem if any fails.
    pub fn load(host: Arc<PluginHost>, specs: &[PluginSpec]) -> Result<Self, Vec<LoadError>> {
        let map = load_all(&host, specs)?;
        Ok(Self {
            host,
            current: ArcSwap::from_pointee(map),
        })
    }

    /// The plugin called `name`, as of now. Hold the `Arc` for the call.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.current.load().get(name).cloned()
    }

    /// Every loaded plugin, by name.
    pub fn list(&self) -> Vec<Arc<LoadedPlugin>> {
        self.current.load().values().cloned().collect()
    }

    /// Loads and verifies `specs`, then swaps them in atomically. On any
    /// failure the current set stays as it is and every problem is returned.
    pub fn reload(&self, specs: &[PluginSpec]) -> Result<ReloadReport, Vec<LoadError>> {
        let new = load_all(&self.host, specs)?;
        let old = self.current.swap(Arc::new(new));
        let now = self.current.load();
        let mut report = ReloadReport::default();
        for name in now.keys() {
            if old.contains_key(name) {
                report.replaced.push(name.clone());
            } else {
                report.added.push(name.clone());
            }
        }
        report.removed = old
            .keys()
            .filter(|n| !now.contains_key(*n))
            .cloned()
            .collect();
        tracing::info!(
            added = ?report.added,
            removed = ?report.removed,
            replaced = ?report.replaced,
            "plugins reloaded"
        );
        Ok(report)
    }
}

fn load_all(host: &PluginHost, specs: &[PluginSpec]) -> Result<PluginMap, Vec<LoadError>> {
    let mut map = PluginMap::new();
    let mut errors = Vec::new();
    for spec in specs {
        match host.load(spec) {
            Ok(p) => {
                map.insert(spec.name.clone(), p);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(map)
    } else {
        Err(errors)
    }
}
