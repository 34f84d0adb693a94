//! Optimistic multi-record transactions over any [`super::RawStore`].
//!
//! [`Db::transact`] runs a closure against a [`Tx`]. Reads go to the store and
//! remember the raw (sealed) bytes they saw, or that the key was absent;
//! writes are staged. At the end one [`RawStore::commit`] checks every read
//! is unchanged and applies every write, with index maintenance for indexed
//! record types, atomically. When another writer got in between, nothing is
//! written and the closure runs again (bounded; then
//! [`StoreError::Conflict`]). Sealing uses a fresh nonce per write, so equal
//! bytes mean the same write: a check cannot be fooled by an A-B-A change.
//!
//! A transaction of exactly one blind write (no reads: [`Db::put`] of one
//! record) goes to [`super::RawStore::commit_relaxed`] instead: its record
//! is one atomic write, and its index entries are rebuilt from the record
//! by the repair that runs after an unclean shutdown. Every other
//! transaction is one atomic commit.
//!
//! Counters ([`Tx::next_counter`], [`Db::next_counter`]) are values in the
//! `_counters` collection changed the same way, so a counter taken in a
//! transaction that does not commit is never used, and one that commits is
//! never handed out again.

use super::{Batch, Check, Db, Op, Record, StoreError, index};
use rand::Rng as _;
use std::collections::BTreeMap;
use std::time::Duration;

/// How many times [`Db::transact`] runs a closure before giving up.
pub const MAX_ATTEMPTS: u32 = 100;
/// Collection of the store's counters (unsealed `u64`, big-endian).
pub const COUNTERS_COLLECTION: &str = "_counters";

/// A staged write: the new raw value (`None` removes), and for an indexed
/// record type its new index keys (empty when removed).
struct Pending {
    value: Option<Vec<u8>>,
    index: Option<Vec<(&'static str, String)>>,
}

/// What [`Tx::upsert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// Nothing was at the key: written.
    Created,
    /// A different record was at the key: replaced.
    Updated,
    /// An equal record was there: nothing written.
    Unchanged,
}

/// A transaction's reads and writes, staged by [`Db::prepare`] for
/// [`Db::commit_prepared`]: the checks and ops of one atomic commit.
#[derive(Debug)]
pub struct Prepared {
    /// `None` when the closure neither read nor wrote.
    batch: Option<Batch>,
}

impl Prepared {
    /// How many records (and index entries) the commit would write.
    pub fn writes(&self) -> usize {
        self.batch.as_ref().map_or(0, |b| b.ops.len())
    }
}

/// One run of a [`Db::transact`] closure: reads seen and writes staged.
/// Reads see this transaction's own writes.
pub struct Tx<'a> {
    db: &'a Db,
    reads: BTreeMap<(&'static str, Vec<u8>), Option<Vec<u8>>>,
    writes: BTreeMap<(&'static str, Vec<u8>), Pending>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("reads", &self.reads.len())
            .field("writes", &self.writes.len())
            .finish()
    }
}

impl<'a> Tx<'a> {
    fn new(db: &'a Db) -> Tx<'a> {
        Tx {
            db,
            reads: BTreeMap::new(),
            writes: BTreeMap::new(),
        }
    }

    /// The raw value at `key` as this transaction sees it; a first read
    /// from the store is remembered for the commit check.
    fn read(
        &mut self,
        collection: &'static str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let slot = (collection, key.to_vec());
        if let Some(p) = self.writes.get(&slot) {
            return Ok(p.value.clone());
        }
        if let Some(seen) = self.reads.get(&slot) {
            return Ok(seen.clone());
        }
        let seen = self.db.raw.get(collection, key)?;
        self.reads.insert(slot, seen.clone());
        Ok(seen)
    }

    /// How many keys this transaction has read from the store (each is a
    /// check its commit repeats).
    #[cfg(test)]
    pub(crate) fn reads(&self) -> usize {
        self.reads.len()
    }

    /// Reads the record of type `R` at `key` (this transaction's own write
    /// if it made one). The commit fails, and the closure re-runs, if the
    /// record changes before then.
    pub fn get<R: Record>(&mut self, key: &str) -> Result<Option<R>, StoreError> {
        self.read(R::COLLECTION, key.as_bytes())?
            .map(|sealed| self.db.open_record(key, &sealed))
            .transpose()
    }

    /// Whether a record of type `R` is at `key`, without decoding it.
    /// Recorded like [`Tx::get`].
    pub fn contains<R: Record>(&mut self, key: &str) -> Result<bool, StoreError> {
        Ok(self.read(R::COLLECTION, key.as_bytes())?.is_some())
    }

    /// Stages writing `r` at `r.key()` (replacing any record there) and
    /// keeping its index entries. A blind write: it does not make the
    /// commit depend on the record's earlier value.
    pub fn put<R: Record>(&mut self, r: &R) -> Result<(), StoreError> {
        let key = r.key();
        let index = if R::INDEXES.is_empty() {
            None
        } else {
            Some(index::checked_keys(r, &key)?)
        };
        let sealed = self.db.seal_record(&key, r)?;
        self.writes.insert(
            (R::COLLECTION, key.into_bytes()),
            Pending {
                value: Some(sealed),
                index,
            },
        );
        Ok(())
    }

    /// Stages writing `r` unless the record at `r.key()` is equal to it
    /// already; says which. Importers use it so reading the same source
    /// again writes nothing.
    pub fn upsert<R: Record + PartialEq>(&mut self, r: &R) -> Result<Upsert, StoreError> {
        match self.get::<R>(&r.key())? {
            Some(old) if &old == r => Ok(Upsert::Unchanged),
            Some(_) => self.put(r).map(|()| Upsert::Updated),
            None => self.put(r).map(|()| Upsert::Created),
        }
    }

    /// Stages writing `r` only if no record is at `r.key()` as this
    /// transaction sees it; returns whether it will be written. The commit
    /// fails (and the closure re-runs) if another writer puts one there
    /// first, so of many racing transactions exactly one gets `true`.
    pub fn insert_new<R: Record>(&mut self, r: &R) -> Result<bool, StoreError> {
        if self.read(R::COLLECTION, r.key().as_bytes())?.is_some() {
            return Ok(false);
        }
        self.put(r)?;
        Ok(true)
    }

    /// Stages removing the record of type `R` at `key` and its index
    /// entries; returns whether there was one (as this transaction sees it;
    /// read without decoding).
    pub fn remove<R: Record>(&mut self, key: &str) -> Result<bool, StoreError> {
        let existed = self.read(R::COLLECTION, key.as_bytes())?.is_some();
        if existed {
            let index = (!R::INDEXES.is_empty()).then(Vec::new);
            self.writes.insert(
                (R::COLLECTION, key.as_bytes().to_vec()),
                Pending { value: None, index },
            );
        }
        Ok(existed)
    }

    /// The next value of counter `name`: 1 the first time, then 2, 3, ...
    /// Two calls in one transaction give two successive values. A value is
    /// taken only if the transaction commits, and never handed out twice.
    pub fn next_counter(&mut self, name: &str) -> Result<u64, StoreError> {
        let current = match self.read(COUNTERS_COLLECTION, name.as_bytes())? {
            None => 0,
            Some(bytes) => u64::from_be_bytes(bytes.as_slice().try_into().map_err(|_| {
                StoreError::Backend(format!("counter {name} is not an 8-byte value"))
            })?),
        };
        let next = current + 1;
        self.writes.insert(
            (COUNTERS_COLLECTION, name.as_bytes().to_vec()),
            Pending {
                value: Some(next.to_be_bytes().to_vec()),
                index: None,
            },
        );
        Ok(next)
    }

    /// The batch to commit: every read as a check, every write as an op,
    /// plus index maintenance (which reads the current reverse entries,
    /// except of a record this transaction read as absent: a record that
    /// is not there has no index entries, since every removal takes them
    /// with it and the repair after an unclean shutdown drops any a cut
    /// short relaxed commit left, and its absence is among the checks).
    fn into_batch(self) -> Result<Batch, StoreError> {
        let mut batch = Batch {
            checks: Vec::with_capacity(self.reads.len()),
            ops: Vec::with_capacity(self.writes.len() * 2),
        };
        for (slot, pending) in self.writes {
            if let Some(new_keys) = &pending.index {
                let seen_absent = matches!(self.reads.get(&slot), Some(None));
                index::maintain(
                    self.db.raw.as_ref(),
                    slot.0,
                    &slot.1,
                    pending.value.is_some(),
                    new_keys,
                    seen_absent,
                    &mut batch,
                )?;
            }
            let (collection, key) = slot;
            batch.ops.push(write_op(collection, key, pending.value));
        }
        batch.checks.extend(
            self.reads
                .into_iter()
                .map(|((collection, key), expected)| Check {
                    collection: collection.to_owned(),
                    key,
                    expected,
                }),
        );
        Ok(batch)
    }
}

impl Db {
    /// Runs `f` as one atomic transaction and returns what it returned.
    ///
    /// Everything `f` writes through its [`Tx`] is committed together, with
    /// the index entries of indexed record types, if nothing `f` read has
    /// changed meanwhile; otherwise `f` runs again, up to [`MAX_ATTEMPTS`]
    /// times, then [`StoreError::Conflict`]. So `f` must have no effects
    /// outside the `Tx`. An `Err` from `f` commits nothing and is returned
    /// as it is. Call [`Db::flush`] after it before an external effect.
    /// (One blind write alone takes the relaxed commit; see the module.)
    pub fn transact<T, E, F>(&self, mut f: F) -> Result<T, E>
    where
        F: FnMut(&mut Tx<'_>) -> Result<T, E>,
        E: From<StoreError>,
    {
        for attempt in 1..=MAX_ATTEMPTS {
            let mut tx = Tx::new(self);
            let out = f(&mut tx)?;
            if tx.reads.is_empty() && tx.writes.is_empty() {
                return Ok(out);
            }
            // One blind write touches one record and its own index
            // entries, which a repair rebuilds from the record after a
            // crash: it may take the backend's cheaper relaxed commit.
            let committed = if tx.reads.is_empty() && tx.writes.len() == 1 {
                let db = tx.db;
                let ((collection, key), pending) = tx.writes.into_iter().next().expect("one write");
                let mut value = Some(pending.value);
                self.raw.commit_relaxed_with(&mut || {
                    let value = value.take().expect("a backend prepares a batch once");
                    let mut batch = Batch {
                        checks: Vec::new(),
                        ops: Vec::with_capacity(4),
                    };
                    if let Some(new_keys) = &pending.index {
                        index::maintain(
                            db.raw.as_ref(),
                            collection,
                            &key,
                            value.is_some(),
                            new_keys,
                            false,
                            &mut batch,
                        )?;
                    }
                    batch.ops.push(write_op(collection, key.clone(), value));
                    Ok(batch)
                })?
            } else {
                self.raw.commit(&tx.into_batch()?)?
            };
            if committed {
                return Ok(out);
            }
            back_off(attempt);
        }
        Err(StoreError::Conflict {
            attempts: MAX_ATTEMPTS,
        }
        .into())
    }

    /// Runs `f` once against a fresh [`Tx`] and returns what it returned
    /// with its writes staged but not applied: [`Db::commit_prepared`]
    /// applies them later, if nothing `f` read has changed by then.
    ///
    /// For pipelines that prepare one unit of work while the one before
    /// it commits: the preparing needs no lock, and a conflict with the
    /// commit before it is caught by the checks, as in [`Db::transact`].
    /// The caller redoes a unit whose commit says `false` (for example
    /// with [`Db::transact`]), and commits units in the order they must
    /// take effect. Like `transact`'s, `f` must have no effects outside
    /// the `Tx`, and read the store only through it.
    pub fn prepare<T, E, F>(&self, f: F) -> Result<(T, Prepared), E>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
        E: From<StoreError>,
    {
        let mut tx = Tx::new(self);
        let out = f(&mut tx)?;
        let batch = if tx.reads.is_empty() && tx.writes.is_empty() {
            None
        } else {
            Some(tx.into_batch()?)
        };
        Ok((out, Prepared { batch }))
    }

    /// Commits what [`Db::prepare`] staged, atomically, if everything its
    /// closure read is unchanged; `Ok(false)` (nothing written) if not.
    pub fn commit_prepared(&self, prepared: &Prepared) -> Result<bool, StoreError> {
        match &prepared.batch {
            None => Ok(true),
            Some(batch) => self.raw.commit(batch),
        }
    }

    /// The next value of counter `name` (1, 2, 3, ...), allocated atomically:
    /// concurrent callers, in this process or after a restart, never get the
    /// same value. For task ids and X12 control numbers.
    pub fn next_counter(&self, name: &str) -> Result<u64, StoreError> {
        self.transact(|tx| tx.next_counter(name))
    }
}

/// The op that stores `value` at `key` (`None` removes it).
fn write_op(collection: &str, key: Vec<u8>, value: Option<Vec<u8>>) -> Op {
    match value {
        Some(value) => Op::Put {
            collection: collection.to_owned(),
            key,
            value,
        },
        None => Op::Remove {
            collection: collection.to_owned(),
            key,
        },
    }
}

/// Waits a little before a transaction's next attempt, longer as attempts
/// mount (at most about 2.5 ms, so a runtime worker is never held long),
/// with jitter so that colliding writers spread out.
fn back_off(attempt: u32) {
    if attempt < 3 {
        std::thread::yield_now();
        return;
    }
    let ceiling_us = 20u64 << attempt.min(7);
    let us = rand::thread_rng().gen_range(0..ceiling_us);
    std::thread::sleep(Duration::from_micros(us));
}
