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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use serde::{Deserialize, Serialize};

    /// A claim-like record local to this test: a state index and a
    /// composite state/next-check index.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Job {
        id: String,
        state: String,
        next_check: String,
    }

    impl Record for Job {
        const COLLECTION: &'static str = "test_jobs";
        const SCHEMA_VERSION: u32 = 1;
        const INDEXES: &'static [&'static str] = &["state", "due"];
        fn key(&self) -> String {
            self.id.clone()
        }
        fn index_keys(&self) -> Vec<(&'static str, String)> {
            vec![
                ("state", self.state.clone()),
                ("due", format!("{}/{}", self.state, self.next_check)),
            ]
        }
    }

    #[test]
    fn index_query_decodes_only_what_it_returns_among_100_000_records() {
        const N: u64 = 100_000;
        const DUE: u64 = 100;
        let db = Db::in_memory();
        for chunk in (0..N).collect::<Vec<_>>().chunks(2_000) {
            db.transact(|tx| {
                for &i in chunk {
                    // Every 1000th record is due; the rest are waiting.
                    let state = if i % (N / DUE) == 7 {
                        "submitted"
                    } else {
                        "waiting"
                    };
                    tx.put(&Job {
                        id: format!("J{i:07}"),
                        state: state.into(),
                        next_check: format!("2026-03-{:02}T09:00:00Z", 1 + i % 28),
                    })?;
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
        }
        // Due for a check: submitted, next check before the 15th.
        let before = db.decode_count();
        let mut due = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let start = cursor
                .as_deref()
                .map_or(Bound::Included("submitted/"), Bound::Excluded);
            let page = db
                .index_range::<Job>(
                    "due",
                    start,
                    Bound::Excluded("submitted/2026-03-15"),
                    Some(30),
                    false,
                )
                .unwrap();
            due.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let decoded = db.decode_count() - before;
        let want: Vec<String> = (0..N)
            .filter(|i| i % (N / DUE) == 7 && 1 + i % 28 < 15)
            .map(|i| format!("J{i:07}"))
            .collect();
        assert!(!want.is_empty());
        let mut got: Vec<String> = due.iter().map(|j| j.id.clone()).collect();
        got.sort();
        assert_eq!(got, want);
        assert_eq!(
            decoded,
            want.len() as u64,
            "decoded beyond what was returned"
        );

        // All 100 submitted ones, by state, in one page of 100: at most
        // 100 + one page decoded.
        let before = db.decode_count();
        let page = db
            .index_range::<Job>(
                "state",
                Bound::Included("submitted"),
                Bound::Included("submitted"),
                Some(100),
                false,
            )
            .unwrap();
        assert_eq!(page.items.len() as u64, DUE);
        assert!(page.items.iter().all(|j| j.state == "submitted"));
        assert_eq!(page.next, None);
        assert!(db.decode_count() - before <= DUE + 100);

        // Control: the counter does count decodes (a scan of 1000 records).
        let before = db.decode_count();
        assert_eq!(db.scan::<Job>("J0001").unwrap().len(), 1000);
        assert_eq!(db.decode_count() - before, 1000);
    }
}
