//! Bringing a record type's indexes up to date when the type gains an index
//! (or a store written before indexes existed is opened): every record is
//! rewritten once through a transaction, which writes its index entries,
//! and a marker remembers which indexes the collection has been built for.

use super::{Db, Record, StoreError};
use std::ops::Bound;

/// Collection of the markers: collection name -> the comma-joined index
/// names its entries were built for (names only; unsealed).
pub const INDEXED_COLLECTION: &str = "_indexed";

/// Records rewritten per transaction while building.
const PAGE: usize = 256;

impl Db {
    /// Makes sure every record of type `R` has its index entries: when the
    /// marker for `R`'s collection does not name exactly `R::INDEXES`, every
    /// record is rewritten (in transactions of a few hundred), then the
    /// marker is set. Returns how many records were rewritten (0 when the
    /// indexes were already built). Safe to interrupt: a rerun starts over.
    ///
    /// On a store opened after an unclean shutdown
    /// ([`super::RawStore::needs_repair`]) an index already built is
    /// repaired instead ([`Db::repair_indexes`]), since a relaxed commit
    /// may have been cut short; then the count is of index keys fixed.
    pub fn ensure_indexed<R: Record>(&self) -> Result<u64, StoreError> {
        if R::INDEXES.is_empty() {
            return Ok(0);
        }
        let want = R::INDEXES.join(",");
        let coll = R::COLLECTION.as_bytes();
        if self.raw.get(INDEXED_COLLECTION, coll)?.as_deref() == Some(want.as_bytes()) {
            if self.raw.needs_repair() {
                let fixed = self.repair_indexes::<R>()?;
                if fixed > 0 {
                    tracing::warn!(
                        collection = R::COLLECTION,
                        fixed,
                        "index entries repaired after an unclean shutdown"
                    );
                }
                return Ok(fixed);
            }
            return Ok(0);
        }
        let mut rewritten = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let start = match &after {
                Some(k) => Bound::Excluded(k.as_slice()),
                None => Bound::Unbounded,
            };
            let page = self
                .raw
                .range(R::COLLECTION, start, Bound::Unbounded, Some(PAGE), false)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            let keys: Vec<String> = page
                .iter()
                .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                .collect();
            rewritten += self.transact(|tx| {
                let mut n = 0u64;
                for key in &keys {
                    if let Some(r) = tx.get::<R>(key)? {
                        tx.put(&r)?;
                        n += 1;
                    }
                }
                Ok::<_, StoreError>(n)
            })?;
        }
        self.raw.put(INDEXED_COLLECTION, coll, want.as_bytes())?;
        self.flush()?;
        Ok(rewritten)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Plain {
        id: String,
        state: String,
    }
    impl Record for Plain {
        const COLLECTION: &'static str = "things";
        const SCHEMA_VERSION: u32 = 1;
        fn key(&self) -> String {
            self.id.clone()
        }
    }

    /// The same records, after the type gained an index.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Indexed {
        id: String,
        state: String,
    }
    impl Record for Indexed {
        const COLLECTION: &'static str = "things";
        const SCHEMA_VERSION: u32 = 1;
        const INDEXES: &'static [&'static str] = &["state"];
        fn key(&self) -> String {
            self.id.clone()
        }
        fn index_keys(&self) -> Vec<(&'static str, String)> {
            vec![("state", self.state.clone())]
        }
    }

    #[test]
    fn records_written_before_an_index_existed_are_indexed_once() {
        let db = Db::in_memory();
        for i in 0..1000 {
            db.put(&Plain {
                id: format!("t{i:04}"),
                state: if i % 10 == 0 { "open" } else { "done" }.into(),
            })
            .unwrap();
        }
        let open = |db: &Db| {
            db.index_range::<Indexed>(
                "state",
                Bound::Included("open"),
                Bound::Included("open"),
                None,
                false,
            )
            .unwrap()
            .items
            .len()
        };
        assert_eq!(open(&db), 0, "not indexed yet");
        assert_eq!(db.ensure_indexed::<Indexed>().unwrap(), 1000);
        assert_eq!(open(&db), 100);
        assert!(db.check_indexes::<Indexed>().unwrap().is_consistent());
        assert_eq!(db.ensure_indexed::<Indexed>().unwrap(), 0, "built once");
    }

    #[test]
    fn repair_mends_every_kind_of_cut_short_write() {
        use crate::store::index::index_collection;
        let db = Db::in_memory();
        for i in 0..20 {
            db.put(&Indexed {
                id: format!("t{i:02}"),
                state: if i % 2 == 0 { "open" } else { "done" }.into(),
            })
            .unwrap();
        }
        assert_eq!(
            db.repair_indexes::<Indexed>().unwrap(),
            0,
            "nothing to mend"
        );
        let icoll = index_collection("things");
        let raw = db.raw();
        // Each way a write of record + entries + reverse entry can be cut:
        // an entry lost, a stray entry left, a reverse entry lost, one left
        // for a record that never landed.
        raw.remove(&icoll, b"estate\0open\0t00").unwrap();
        raw.put(&icoll, b"estate\0open\0t01", b"").unwrap();
        raw.remove(&icoll, b"rt02").unwrap();
        raw.put(&icoll, b"rt99", b"state\0open\0").unwrap();
        let report = db.check_indexes::<Indexed>().unwrap();
        assert_eq!(report.problems.len(), 4, "{:?}", report.problems);
        assert_eq!(db.repair_indexes::<Indexed>().unwrap(), 4);
        let report = db.check_indexes::<Indexed>().unwrap();
        assert!(report.is_consistent(), "{:?}", report.problems);
        assert_eq!(report.entries, 20);
        assert_eq!(db.repair_indexes::<Indexed>().unwrap(), 0, "idempotent");
    }
}
