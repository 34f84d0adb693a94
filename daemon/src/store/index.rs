//! Secondary indexes: declared by each record type, kept by the store in
//! the same commit as the record.
//!
//! A record type lists its indexes in `Record::INDEXES` and gives its
//! entries with `Record::index_keys`. For collection `c` the store keeps one
//! index collection `_idx:c` holding
//! - an entry `e{index}\0{value}\0{record key}` (empty value) per index key,
//!   so a range of values is one ordered scan, and
//! - a reverse entry `r{record key}` listing the record's current index keys,
//!   so an update or a removal drops the old entries without decrypting the
//!   old record.
//!
//! Index values and record keys are stored unsealed. They hold ids, states
//! and dates only, never patient data; record types promise this in
//! `index_keys`. [`Db::check_indexes`] walks a collection and its index and
//! reports every disagreement.

use super::{Batch, Check, Db, Op, RawStore, Record, StoreError};
use std::collections::BTreeSet;
use std::ops::Bound;

/// Separator inside index entry keys and cursors.
const SEP: u8 = 0;
/// First byte of an index entry key.
const ENTRY: u8 = b'e';
/// First byte of a reverse entry key.
const REVERSE: u8 = b'r';

/// The collection holding the index entries of `collection`.
pub fn index_collection(collection: &str) -> String {
    format!("_idx:{collection}")
}

/// `e{index}\0`: the start of every entry of one index.
fn entry_prefix(index: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(index.len() + 2);
    k.push(ENTRY);
    k.extend_from_slice(index.as_bytes());
    k.push(SEP);
    k
}

fn entry_key(index: &str, value: &str, key: &[u8]) -> Vec<u8> {
    let mut k = entry_prefix(index);
    k.extend_from_slice(value.as_bytes());
    k.push(SEP);
    k.extend_from_slice(key);
    k
}

fn reverse_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(REVERSE);
    k.extend_from_slice(key);
    k
}

/// A reverse entry's value: `index\0value\0` per index key.
fn encode_reverse(keys: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, value) in keys {
        out.extend_from_slice(index.as_bytes());
        out.push(SEP);
        out.extend_from_slice(value.as_bytes());
        out.push(SEP);
    }
    out
}

fn decode_reverse(
    collection: &str,
    key: &[u8],
    bytes: &[u8],
) -> Result<Vec<(String, String)>, StoreError> {
    let bad = || {
        StoreError::Backend(format!(
            "index of {collection}: malformed reverse entry for record {}",
            String::from_utf8_lossy(key)
        ))
    };
    let Some(body) = bytes.strip_suffix(&[SEP]) else {
        return if bytes.is_empty() {
            Ok(Vec::new())
        } else {
            Err(bad())
        };
    };
    let parts: Vec<&[u8]> = body.split(|b| *b == SEP).collect();
    if !parts.len().is_multiple_of(2) {
        return Err(bad());
    }
    parts
        .chunks(2)
        .map(|pair| {
            let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| bad());
            Ok((text(pair[0])?, text(pair[1])?))
        })
        .collect()
}

/// `r.index_keys()`, refused when an index is undeclared or a NUL byte
/// would break the entry layout. Sorted, without duplicates.
pub(super) fn checked_keys<R: Record>(
    r: &R,
    key: &str,
) -> Result<Vec<(&'static str, String)>, StoreError> {
    let invalid = |reason: String| StoreError::InvalidIndex {
        collection: R::COLLECTION.to_owned(),
        key: key.to_owned(),
        reason,
    };
    if key.as_bytes().contains(&SEP) {
        return Err(invalid("the record key contains a NUL byte".to_owned()));
    }
    let mut keys = r.index_keys();
    for (index, value) in &keys {
        if !R::INDEXES.contains(index) {
            return Err(invalid(format!("index `{index}` is not in INDEXES")));
        }
        if index.as_bytes().contains(&SEP) || value.as_bytes().contains(&SEP) {
            return Err(invalid(format!(
                "a value of index `{index}` contains a NUL byte"
            )));
        }
    }
    keys.sort_unstable();
    keys.dedup();
    Ok(keys)
}

/// Adds to `batch` what keeps the index of `collection` in step with a
/// write of the record at `key`: a check that its reverse entry is still
/// what was read here, removal of entries it no longer has, its new entries
/// and its new reverse entry (removed with the record when `!present`).
/// `record_absent`: the batch already checks that no record is at `key`,
/// so it has no entries, and its reverse entry is neither read nor checked.
#[allow(clippy::too_many_arguments)]
pub(super) fn maintain(
    raw: &dyn RawStore,
    collection: &str,
    key: &[u8],
    present: bool,
    new_keys: &[(&'static str, String)],
    record_absent: bool,
    batch: &mut Batch,
) -> Result<(), StoreError> {
    let icoll = index_collection(collection);
    let rkey = reverse_key(key);
    let (old, had_reverse) = if record_absent {
        (Vec::new(), false)
    } else {
        let old_bytes = raw.get(&icoll, &rkey)?;
        let old = match &old_bytes {
            Some(b) => decode_reverse(collection, key, b)?,
            None => Vec::new(),
        };
        let had = old_bytes.is_some();
        batch.checks.push(Check {
            collection: icoll.clone(),
            key: rkey.clone(),
            expected: old_bytes,
        });
        (old, had)
    };
    let new: BTreeSet<(&str, &str)> = new_keys.iter().map(|(i, v)| (*i, v.as_str())).collect();
    let old: BTreeSet<(&str, &str)> = old.iter().map(|(i, v)| (i.as_str(), v.as_str())).collect();
    if present && had_reverse && old == new {
        // The record keeps its index keys: nothing to change here (and a
        // commit of the record alone is one write).
        return Ok(());
    }
    for (index, value) in old.difference(&new) {
        batch.ops.push(Op::Remove {
            collection: icoll.clone(),
            key: entry_key(index, value, key),
        });
    }
    for (index, value) in new.difference(&old) {
        batch.ops.push(Op::Put {
            collection: icoll.clone(),
            key: entry_key(index, value, key),
            value: Vec::new(),
        });
    }
    batch.ops.push(if present {
        Op::Put {
            collection: icoll,
            key: rkey,
            value: encode_reverse(new_keys),
        }
    } else {
        Op::Remove {
            collection: icoll,
            key: rkey,
        }
    });
    Ok(())
}

/// The raw bounds, in the index collection, of the entries of `index`
/// between `start` and `end`. A bound without a NUL byte is an index value
/// and takes in every record with that value; a bound with one is a cursor
/// from [`super::Page::next`] and stands for exactly one entry.
pub(super) fn entry_bounds(
    index: &str,
    start: Bound<&str>,
    end: Bound<&str>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let with = |s: &str, tail: &[u8]| {
        let mut k = entry_prefix(index);
        k.extend_from_slice(s.as_bytes());
        k.extend_from_slice(tail);
        k
    };
    let cursor = |s: &str| s.as_bytes().contains(&SEP);
    let lo = match start {
        Bound::Unbounded => Bound::Included(entry_prefix(index)),
        Bound::Included(s) if cursor(s) => Bound::Included(with(s, b"")),
        Bound::Included(s) => Bound::Included(with(s, &[SEP])),
        Bound::Excluded(s) if cursor(s) => Bound::Excluded(with(s, b"")),
        Bound::Excluded(s) => Bound::Included(with(s, &[SEP + 1])),
    };
    let hi = match end {
        Bound::Unbounded => {
            let mut k = entry_prefix(index);
            *k.last_mut().expect("prefix ends with the separator") = SEP + 1;
            Bound::Excluded(k)
        }
        Bound::Included(s) if cursor(s) => Bound::Included(with(s, b"")),
        Bound::Included(s) => Bound::Excluded(with(s, &[SEP + 1])),
        Bound::Excluded(s) if cursor(s) => Bound::Excluded(with(s, b"")),
        Bound::Excluded(s) => Bound::Excluded(with(s, &[SEP])),
    };
    (lo, hi)
}

/// Splits an index entry key of `index` into its cursor (`value\0key`),
/// value and record key.
pub(super) fn split_entry<'k>(
    index: &str,
    entry: &'k [u8],
) -> Option<(&'k [u8], &'k [u8], &'k [u8])> {
    let cursor = entry.get(index.len() + 2..)?;
    let sep = cursor.iter().position(|b| *b == SEP)?;
    Some((cursor, &cursor[..sep], &cursor[sep + 1..]))
}

/// What [`Db::check_indexes`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexReport {
    /// Records walked.
    pub records: u64,
    /// Index entries walked (not counting reverse entries).
    pub entries: u64,
    /// Each disagreement, naming the record key and index (never a value
    /// that is not a key). Empty when records and index agree.
    pub problems: Vec<String>,
}

impl IndexReport {
    /// Whether records and index agree.
    pub fn is_consistent(&self) -> bool {
        self.problems.is_empty()
    }
}

/// How a collection's index differs from what its records say it should
/// hold; what [`Db::check_indexes`] reports and [`Db::repair_indexes`]
/// mends.
#[derive(Default)]
struct IndexDiff {
    records: u64,
    entries: u64,
    /// Record key and the reverse entry it should have, for each record
    /// whose reverse entry is missing or lists other keys.
    wrong_reverse: Vec<(Vec<u8>, Vec<u8>)>,
    /// Reverse entries (their keys) whose record does not exist.
    orphan_reverse: Vec<Vec<u8>>,
    /// Entries no record has.
    stray: Vec<Vec<u8>>,
    /// Entries a record has that are not there.
    missing: Vec<Vec<u8>>,
}

impl Db {
    /// Walks every record of type `R` (decoding each) and its index
    /// collection, and lists where they disagree.
    fn index_diff<R: Record>(&self) -> Result<IndexDiff, StoreError> {
        let mut diff = IndexDiff::default();
        let icoll = index_collection(R::COLLECTION);
        let mut expected: BTreeSet<Vec<u8>> = BTreeSet::new();
        self.raw
            .visit_prefix(R::COLLECTION, b"", &mut |k, sealed| {
                let key = String::from_utf8_lossy(k).into_owned();
                let r: R = self.open_record(&key, sealed)?;
                diff.records += 1;
                let keys = checked_keys(&r, &key)?;
                let want = encode_reverse(&keys);
                if self.raw.get(&icoll, &reverse_key(k))?.as_deref() != Some(want.as_slice()) {
                    diff.wrong_reverse.push((k.to_vec(), want));
                }
                for (index, value) in &keys {
                    expected.insert(entry_key(index, value, k));
                }
                Ok(true)
            })?;
        self.raw.visit_prefix(&icoll, &[REVERSE], &mut |rk, _| {
            if self.raw.get(R::COLLECTION, &rk[1..])?.is_none() {
                diff.orphan_reverse.push(rk.to_vec());
            }
            Ok(true)
        })?;
        self.raw.visit_prefix(&icoll, &[ENTRY], &mut |ek, _| {
            diff.entries += 1;
            if !expected.remove(ek) {
                diff.stray.push(ek.to_vec());
            }
            Ok(true)
        })?;
        diff.missing = expected.into_iter().collect();
        Ok(diff)
    }

    /// Walks every record of type `R` and its index collection and reports
    /// where they disagree: an entry a record should have but does not, an
    /// entry or reverse entry without its record, a reverse entry that does
    /// not list the record's keys. Decodes every record (it is a full scan,
    /// for tests, repair tools and after a crash).
    pub fn check_indexes<R: Record>(&self) -> Result<IndexReport, StoreError> {
        let diff = self.index_diff::<R>()?;
        let shown = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
        let mut problems = Vec::new();
        for (k, _) in &diff.wrong_reverse {
            problems.push(format!(
                "record {}: reverse entry missing or listing other index keys",
                shown(k)
            ));
        }
        for rk in &diff.orphan_reverse {
            problems.push(format!(
                "reverse entry for record {} which does not exist",
                shown(&rk[1..])
            ));
        }
        for ek in &diff.stray {
            problems.push(format!("stray index entry {}", describe_entry(ek)));
        }
        for ek in &diff.missing {
            problems.push(format!("missing index entry {}", describe_entry(ek)));
        }
        Ok(IndexReport {
            records: diff.records,
            entries: diff.entries,
            problems,
        })
    }

    /// Makes the index of `R` agree with its records again: writes missing
    /// entries and reverse entries, removes stray and orphaned ones, then
    /// flushes. The records are the truth; none is changed. Returns how many
    /// index keys were written or removed (0 when they already agreed).
    /// Each write stands alone and the repair is idempotent, so one cut
    /// short by a crash is simply run again (the store is then still
    /// unclean). Run after an unclean shutdown by [`Db::ensure_indexed`].
    pub fn repair_indexes<R: Record>(&self) -> Result<u64, StoreError> {
        let diff = self.index_diff::<R>()?;
        let icoll = index_collection(R::COLLECTION);
        let mut fixed = 0u64;
        for (k, want) in &diff.wrong_reverse {
            self.raw.put(&icoll, &reverse_key(k), want)?;
            fixed += 1;
        }
        for key in diff.orphan_reverse.iter().chain(&diff.stray) {
            self.raw.remove(&icoll, key)?;
            fixed += 1;
        }
        for ek in &diff.missing {
            self.raw.put(&icoll, ek, &[])?;
            fixed += 1;
        }
        if fixed > 0 {
            self.raw.flush()?;
        }
        Ok(fixed)
    }
}

/// An entry key as `index` and record key, for a problem report.
fn describe_entry(entry: &[u8]) -> String {
    let parts: Vec<&[u8]> = entry
        .get(1..)
        .unwrap_or_default()
        .splitn(3, |b| *b == SEP)
        .collect();
    match parts.as_slice() {
        [index, _value, key] => format!(
            "of index `{}` for record {}",
            String::from_utf8_lossy(index),
            String::from_utf8_lossy(key)
        ),
        _ => "with a malformed key".to_owned(),
    }
}
