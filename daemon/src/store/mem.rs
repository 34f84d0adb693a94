//! An in-memory [`super::RawStore`] for tests of the modules built on the
//! store: same semantics as sled (ordered keys, atomic insert-if-absent and
//! compare-and-swap), nothing on disk, nothing shared between instances.

use super::{Batch, Entries, Op, RawStore, StoreError, range_is_empty};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

type Collections = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// A [`RawStore`] kept in a `BTreeMap` behind a mutex. `flush` does nothing.
#[derive(Debug, Default)]
pub struct MemStore {
    collections: Mutex<Collections>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Collections> {
        // A panic in another test thread must not hide this thread's result.
        self.collections.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RawStore for MemStore {
    fn get(&self, collection: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .lock()
            .get(collection)
            .and_then(|c| c.get(key))
            .cloned())
    }

    fn put(&self, collection: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.lock()
            .entry(collection.to_owned())
            .or_default()
            .insert(key.to_vec(), value.to_vec());
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
        let mut all = self.lock();
        let coll = all.entry(collection.to_owned()).or_default();
        if coll.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        coll.insert(key.to_vec(), new.to_vec());
        Ok(true)
    }

    fn compare_and_remove(
        &self,
        collection: &str,
        key: &[u8],
        expected: &[u8],
    ) -> Result<bool, StoreError> {
        let mut all = self.lock();
        let Some(coll) = all.get_mut(collection) else {
            return Ok(false);
        };
        if coll.get(key).map(Vec::as_slice) != Some(expected) {
            return Ok(false);
        }
        coll.remove(key);
        Ok(true)
    }

    fn remove(&self, collection: &str, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .get_mut(collection)
            .and_then(|c| c.remove(key))
            .is_some())
    }

    fn scan_prefix(&self, collection: &str, prefix: &[u8]) -> Result<Entries, StoreError> {
        Ok(self
            .lock()
            .get(collection)
            .map(|c| {
                c.range(prefix.to_vec()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn range(
        &self,
        collection: &str,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: Option<usize>,
        reverse: bool,
    ) -> Result<Entries, StoreError> {
        if range_is_empty(start, end) {
            return Ok(Vec::new());
        }
        let all = self.lock();
        let Some(coll) = all.get(collection) else {
            return Ok(Vec::new());
        };
        let hits = coll.range::<[u8], _>((start, end));
        let take = limit.unwrap_or(usize::MAX);
        let owned = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
        Ok(if reverse {
            hits.rev().take(take).map(owned).collect()
        } else {
            hits.take(take).map(owned).collect()
        })
    }

    fn commit(&self, batch: &Batch) -> Result<bool, StoreError> {
        let mut all = self.lock();
        for check in &batch.checks {
            let now = all.get(&check.collection).and_then(|c| c.get(&check.key));
            if now != check.expected.as_ref() {
                return Ok(false);
            }
        }
        for op in &batch.ops {
            match op {
                Op::Put {
                    collection,
                    key,
                    value,
                } => {
                    all.entry(collection.clone())
                        .or_default()
                        .insert(key.clone(), value.clone());
                }
                Op::Remove { collection, key } => {
                    if let Some(c) = all.get_mut(collection) {
                        c.remove(key);
                    }
                }
            }
        }
        Ok(true)
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    #[test]
    fn mem_store_meets_the_raw_store_contract() {
        crate::store::contract::raw_suite(&MemStore::new());
    }

    #[test]
    fn mem_store_meets_the_db_contract() {
        crate::store::contract::db_suite(Arc::new(MemStore::new()));
    }
}
