//! Ordered, paged queries: records by key range, and records by a
//! secondary index (see [`super::index`]) fetching only what they return.
//!
//! A page holds at most `limit` items and, when more may follow, a resume
//! cursor: pass it back as `Bound::Excluded(next)` for the start (forward)
//! or the end (`reverse`) to get the next page.

use super::{Db, Record, StoreError, index};
use std::ops::Bound;

/// One page of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the query's order.
    pub items: Vec<T>,
    /// Where the next page starts (exclusive), or `None` when this page
    /// reached the end of the range. For [`Db::range`] a record key; for
    /// index queries an opaque cursor (`value`, NUL, record key).
    pub next: Option<String>,
}

fn as_bytes(b: Bound<&str>) -> Bound<&[u8]> {
    b.map(str::as_bytes)
}

impl Db {
    /// Records of type `R` with keys between `start` and `end`, in key
    /// order (descending when `reverse`), at most `limit`. Decodes only the
    /// records it returns.
    pub fn range<R: Record>(
        &self,
        start: Bound<&str>,
        end: Bound<&str>,
        limit: Option<usize>,
        reverse: bool,
    ) -> Result<Page<R>, StoreError> {
        let probe = limit.map(|n| n.saturating_add(1));
        let mut hits = self.raw.range(
            R::COLLECTION,
            as_bytes(start),
            as_bytes(end),
            probe,
            reverse,
        )?;
        let more = limit.is_some_and(|n| hits.len() > n);
        if more {
            hits.truncate(limit.unwrap_or_default());
        }
        let mut items = Vec::with_capacity(hits.len());
        let mut last = None;
        for (k, sealed) in hits {
            let key = String::from_utf8_lossy(&k).into_owned();
            items.push(self.open_record(&key, &sealed)?);
            last = Some(key);
        }
        Ok(Page {
            items,
            next: if more { last } else { None },
        })
    }

    /// Keys of the records of type `R` whose `index` value lies between
    /// `start` and `end` (values or cursors, see [`Page::next`]), in index
    /// order (descending when `reverse`), at most `limit`. Decodes nothing:
    /// what a prune or a batch job needs before it works record by record.
    pub fn index_range_keys<R: Record>(
        &self,
        index: &str,
        start: Bound<&str>,
        end: Bound<&str>,
        limit: Option<usize>,
        reverse: bool,
    ) -> Result<Page<String>, StoreError> {
        let (cursors, next) = self.index_scan::<R>(index, start, end, limit, reverse)?;
        Ok(Page {
            items: cursors.into_iter().map(|(_, _, key)| key).collect(),
            next,
        })
    }

    /// Records of type `R` whose `index` value lies between `start` and
    /// `end` (values, or a cursor from [`Page::next`]), in index order
    /// (descending when `reverse`), at most `limit`. Reads the index, then
    /// fetches and decodes only the records it returns. A record changed
    /// between the two reads so that it no longer has that index value is
    /// left out (so a page can be short while `next` is still set).
    pub fn index_range<R: Record>(
        &self,
        index: &str,
        start: Bound<&str>,
        end: Bound<&str>,
        limit: Option<usize>,
        reverse: bool,
    ) -> Result<Page<R>, StoreError> {
        let (hits, next) = self.index_scan::<R>(index, start, end, limit, reverse)?;
        let mut items = Vec::with_capacity(hits.len());
        for (_, value, key) in hits {
            let Some(sealed) = self.raw.get(R::COLLECTION, key.as_bytes())? else {
                continue;
            };
            let r: R = self.open_record(&key, &sealed)?;
            if r.index_keys()
                .iter()
                .any(|(i, v)| *i == index && *v == value)
            {
                items.push(r);
            }
        }
        Ok(Page { items, next })
    }

    /// The index entries of a query: (cursor, value, record key) each, and
    /// the page's resume cursor.
    #[allow(clippy::type_complexity)]
    fn index_scan<R: Record>(
        &self,
        index: &str,
        start: Bound<&str>,
        end: Bound<&str>,
        limit: Option<usize>,
        reverse: bool,
    ) -> Result<(Vec<(String, String, String)>, Option<String>), StoreError> {
        if !R::INDEXES.contains(&index) {
            return Err(StoreError::InvalidIndex {
                collection: R::COLLECTION.to_owned(),
                key: String::new(),
                reason: format!("query of index `{index}`, which is not in INDEXES"),
            });
        }
        let (lo, hi) = index::entry_bounds(index, start, end);
        let probe = limit.map(|n| n.saturating_add(1));
        let mut entries = self.raw.range(
            &index::index_collection(R::COLLECTION),
            lo.as_ref().map(Vec::as_slice),
            hi.as_ref().map(Vec::as_slice),
            probe,
            reverse,
        )?;
        let more = limit.is_some_and(|n| entries.len() > n);
        if more {
            entries.truncate(limit.unwrap_or_default());
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let hits: Vec<(String, String, String)> = entries
            .iter()
            .filter_map(|(ek, _)| index::split_entry(index, ek))
            .map(|(cursor, value, key)| (text(cursor), text(value), text(key)))
            .collect();
        let next = if more {
            hits.last().map(|(cursor, _, _)| cursor.clone())
        } else {
            None
        };
        Ok((hits, next))
    }

    /// Removes the records of type `R` at `keys` (and their index entries)
    /// in one transaction; returns how many existed. Decodes nothing. With
    /// [`Db::index_range_keys`] over a time index, this is a prune: take a
    /// page of keys older than the cut-off, remove them, repeat.
    pub fn remove_keys<R: Record>(&self, keys: &[String]) -> Result<usize, StoreError> {
        self.transact(|tx| {
            let mut n = 0;
            for key in keys {
                n += usize::from(tx.remove::<R>(key)?);
            }
            Ok(n)
        })
    }
}
