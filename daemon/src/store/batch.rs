//! What one atomic commit asks of a backend: the values it read (which must
//! still be there) and the writes to apply, all or none.
//!
//! [`super::Db::transact`] builds a [`Batch`] from a transaction's reads and
//! writes; [`super::RawStore::commit`] is the one primitive a backend needs
//! for multi-record transactions, secondary indexes and counters.

/// One value a transaction read: the commit goes ahead only if the store
/// still holds exactly `expected` there (`None`: still absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Collection read.
    pub collection: String,
    /// Key read.
    pub key: Vec<u8>,
    /// The raw (sealed) bytes seen, or `None` when the key was absent.
    pub expected: Option<Vec<u8>>,
}

/// One write of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Store `value` at `key`, replacing any earlier value.
    Put {
        /// Collection written.
        collection: String,
        /// Key written.
        key: Vec<u8>,
        /// The raw value.
        value: Vec<u8>,
    },
    /// Remove whatever is at `key` (nothing if absent).
    Remove {
        /// Collection written.
        collection: String,
        /// Key removed.
        key: Vec<u8>,
    },
}

impl Op {
    /// The collection this operation writes.
    pub fn collection(&self) -> &str {
        match self {
            Op::Put { collection, .. } | Op::Remove { collection, .. } => collection,
        }
    }
}

/// An atomic unit for [`super::RawStore::commit`]: every check holds and
/// every op is applied, in order, or nothing happens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Values that must be unchanged for the commit to apply.
    pub checks: Vec<Check>,
    /// Writes applied in order when every check holds.
    pub ops: Vec<Op>,
}

impl Batch {
    /// Every collection the batch reads or writes, each once, sorted.
    pub fn collections(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .checks
            .iter()
            .map(|c| c.collection.as_str())
            .chain(self.ops.iter().map(Op::collection))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}
