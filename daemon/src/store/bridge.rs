//! How an async backend implements the synchronous [`RawStore`]: each call
//! runs the async operation with `block_in_place` + `Handle::block_on`.
//!
//! [`AsyncBridge`] wraps any store behind an async delay (standing in for a
//! database round trip, as a PostgreSQL backend on sqlx would have) and is
//! test support: its tests run the [`super::contract`] suite through it on
//! the multi-thread runtime while a ticker task keeps ticking.

use super::{Batch, Entries, RawStore, StoreError};
use std::ops::Bound;
use std::time::Duration;
use tokio::runtime::Handle;

/// A [`RawStore`] whose every call awaits `latency` on the tokio runtime
/// before calling `inner`, the way an async client awaits a server.
#[derive(Debug)]
pub struct AsyncBridge<S> {
    inner: S,
    latency: Duration,
    handle: Handle,
}

impl<S: RawStore> AsyncBridge<S> {
    /// Wraps `inner`; its calls run on the runtime of `handle`.
    pub fn new(inner: S, latency: Duration, handle: Handle) -> AsyncBridge<S> {
        AsyncBridge {
            inner,
            latency,
            handle,
        }
    }

    /// Runs `op` after an async wait, without stalling the runtime: on a
    /// worker thread `block_in_place` first moves the worker's other tasks
    /// to another thread; elsewhere it just runs the closure.
    fn run<T>(&self, op: impl FnOnce(&S) -> T) -> T {
        tokio::task::block_in_place(|| {
            self.handle.block_on(async {
                tokio::time::sleep(self.latency).await;
                op(&self.inner)
            })
        })
    }
}

impl<S: RawStore> RawStore for AsyncBridge<S> {
    fn get(&self, collection: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(|s| s.get(collection, key))
    }

    fn put(&self, collection: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.run(|s| s.put(collection, key, value))
    }

    fn insert_new(&self, collection: &str, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        self.run(|s| s.insert_new(collection, key, value))
    }

    fn compare_and_swap(
        &self,
        collection: &str,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StoreError> {
        self.run(|s| s.compare_and_swap(collection, key, expected, new))
    }

    fn compare_and_remove(
        &self,
        collection: &str,
        key: &[u8],
        expected: &[u8],
    ) -> Result<bool, StoreError> {
        self.run(|s| s.compare_and_remove(collection, key, expected))
    }

    fn remove(&self, collection: &str, key: &[u8]) -> Result<bool, StoreError> {
        self.run(|s| s.remove(collection, key))
    }

    fn scan_prefix(&self, collection: &str, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.run(|s| s.scan_prefix(collection, prefix))
    }

    fn range(
        &self,
        collection: &str,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: Option<usize>,
        reverse: bool,
    ) -> Result<Entries, StoreError> {
        self.run(|s| s.range(collection, start, end, limit, reverse))
    }

    fn commit(&self, batch: &Batch) -> Result<bool, StoreError> {
        self.run(|s| s.commit(batch))
    }

    fn commit_relaxed(&self, batch: &Batch) -> Result<bool, StoreError> {
        self.run(|s| s.commit_relaxed(batch))
    }

    fn needs_repair(&self) -> bool {
        self.inner.needs_repair()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.run(|s| s.flush())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemStore, contract};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    /// The contract suite through the bridge, run from a task on a runtime
    /// with one worker: without `block_in_place` the suite would hold that
    /// worker for its whole run and the ticker could not tick.
    #[test]
    fn bridged_async_store_meets_the_contract_without_stalling_the_runtime() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let tick = Duration::from_millis(10);
            let stop = Arc::new(AtomicBool::new(false));
            let stop_ticker = stop.clone();
            let ticker = tokio::spawn(async move {
                let mut interval = tokio::time::interval(tick);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut last = Instant::now();
                let mut worst = Duration::ZERO;
                let mut ticks = 0u64;
                loop {
                    interval.tick().await;
                    let now = Instant::now();
                    worst = worst.max(now - last);
                    last = now;
                    ticks += 1;
                    if stop_ticker.load(Ordering::Relaxed) {
                        return (ticks, worst);
                    }
                }
            });
            let started = Instant::now();
            let suite = tokio::spawn(async {
                let handle = Handle::current();
                let raw =
                    AsyncBridge::new(MemStore::new(), Duration::from_millis(1), handle.clone());
                contract::raw_suite(&raw);
                contract::db_suite(Arc::new(AsyncBridge::new(
                    MemStore::new(),
                    Duration::from_millis(1),
                    handle,
                )));
            });
            suite.await.expect("contract suite through the bridge");
            let took = started.elapsed();
            stop.store(true, Ordering::Relaxed);
            let (ticks, worst) = ticker.await.unwrap();
            // The suite ran long enough that a stalled worker would show.
            assert!(
                took > Duration::from_millis(1500),
                "suite took only {took:?}"
            );
            assert!(
                worst < took / 4 && worst < Duration::from_secs(1),
                "ticker stalled for {worst:?} during a {took:?} suite ({ticks} ticks)"
            );
        });
    }
}
