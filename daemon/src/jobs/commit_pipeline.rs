//! Writing a sequence of units of work (pages of a listing, say) with the
//! store's commit of one unit overlapping the preparing of the next.
//!
//! A job that reads page after page and writes each in its own transaction
//! spends its time in two halves: mapping the page and reading what it
//! touches (on the job's task), and the store applying the writes and
//! flushing them (disk and page-cache work). Done one after the other, one
//! core idles while the other works. [`CommitPipeline`] prepares unit N+1
//! with [`Db::prepare`] while unit N's [`Db::commit_prepared`] and flush run
//! on the blocking pool, and commits units strictly in the order they were
//! pushed, so what a unit writes (a cursor after its page, say) never takes
//! effect before the units before it.
//!
//! Correctness is the transaction's: a unit prepared while the one before
//! it was committing read the store as it was then, and its commit checks
//! those reads. If the unit before changed any of them, the commit writes
//! nothing and says so, and the unit is written again with
//! [`Db::transact`] against the store as it now is; its counts are the
//! redo's. So the write function must read the store only through its
//! [`Tx`] and have no other effects, as for `transact`.

use super::JobError;
use crate::store::{Db, Prepared, StoreError, Tx};

/// A unit whose commit (and flush) runs on the blocking pool.
struct InFlight<U, T> {
    unit: U,
    out: T,
    commit: tokio::task::JoinHandle<Result<bool, StoreError>>,
}

/// Units of work committed in order, each while the next is prepared,
/// all written by one write function (the one that prepares a unit is the
/// one that redoes it).
///
/// Push every unit with [`CommitPipeline::push`], then call
/// [`CommitPipeline::finish`] for the last one: a unit is durable (flushed)
/// once the call that returns its output has returned. Dropped early (the
/// job failed or was stopped), a commit already started still completes,
/// atomically, and nothing after it is written.
pub(crate) struct CommitPipeline<U, T, F> {
    db: Db,
    write: F,
    in_flight: Option<InFlight<U, T>>,
}

impl<U, T, F> CommitPipeline<U, T, F>
where
    U: Send + 'static,
    T: Send + 'static,
    F: Fn(&mut Tx<'_>, &U) -> Result<T, StoreError>,
{
    /// An empty pipeline writing each unit to `db` with `write`.
    pub(crate) fn new(db: &Db, write: F) -> Self {
        CommitPipeline {
            db: db.clone(),
            write,
            in_flight: None,
        }
    }

    /// Prepares `unit`, waits until the unit pushed before it is committed
    /// and flushed (written again if its reads went stale), then starts
    /// committing `unit`. Returns the output of the unit before, now
    /// durable (`None` for the first).
    pub(crate) async fn push(&mut self, unit: U) -> Result<Option<T>, JobError> {
        let (out, prepared) = self.db.prepare(|tx| (self.write)(tx, &unit))?;
        let before = self.settle().await?;
        self.in_flight = Some(InFlight {
            unit,
            out,
            commit: self.start(prepared),
        });
        Ok(before)
    }

    /// Waits until the last unit pushed is committed and flushed; its
    /// output (`None` if nothing was pushed).
    pub(crate) async fn finish(mut self) -> Result<Option<T>, JobError> {
        self.settle().await
    }

    fn start(&self, prepared: Prepared) -> tokio::task::JoinHandle<Result<bool, StoreError>> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let committed = db.commit_prepared(&prepared)?;
            if committed && prepared.writes() > 0 {
                db.flush()?;
            }
            Ok(committed)
        })
    }

    /// Ends the unit in flight: its output once its commit is durable.
    async fn settle(&mut self) -> Result<Option<T>, JobError> {
        let Some(f) = self.in_flight.take() else {
            return Ok(None);
        };
        let committed = f.commit.await.map_err(|e| {
            JobError::Transient(format!("a store commit stopped before it ended: {e}"))
        })??;
        if committed {
            return Ok(Some(f.out));
        }
        // What the unit read changed under it (the unit before wrote it):
        // write it again against the store as it is now.
        let out = self.db.transact(|tx| (self.write)(tx, &f.unit))?;
        self.db.flush()?;
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::cursor::ConnectorCursor as Item;
    use crate::store::Upsert;

    /// A record to write: a cursor is a small keyed record with a value.
    fn item(key: &str, value: &str) -> Item {
        Item {
            key: key.into(),
            cursor: Some(value.into()),
        }
    }

    fn value(db: &Db, key: &str) -> Option<String> {
        db.get::<Item>(key).unwrap().and_then(|i| i.cursor)
    }

    /// Each unit appends its number to a shared log record after reading
    /// it: every unit but the first reads what the unit before wrote, so
    /// its prepared commit is stale and must be redone.
    fn append(tx: &mut Tx<'_>, n: &u32) -> Result<String, StoreError> {
        let log = tx
            .get::<Item>("log")?
            .and_then(|i| i.cursor)
            .unwrap_or_default();
        let log = format!("{log}{n},");
        tx.put(&item("log", &log))?;
        tx.put(&item(&format!("unit/{n}"), "done"))?;
        Ok(log)
    }

    #[tokio::test]
    async fn dependent_units_are_redone_and_commit_in_order() {
        let db = Db::in_memory();
        let mut p = CommitPipeline::new(&db, append);
        let mut seen = Vec::new();
        for n in 1..=5u32 {
            seen.extend(p.push(n).await.unwrap());
        }
        seen.extend(p.finish().await.unwrap());
        // Every unit saw the log of all units before it: none was lost to
        // a stale read, none applied twice.
        assert_eq!(seen, ["1,", "1,2,", "1,2,3,", "1,2,3,4,", "1,2,3,4,5,"]);
        assert_eq!(value(&db, "log").as_deref(), Some("1,2,3,4,5,"));
        assert_eq!(db.scan::<Item>("unit/").unwrap().len(), 5);
    }

    #[tokio::test]
    async fn independent_units_commit_as_prepared_and_flush() {
        let db = Db::in_memory();
        let write = |tx: &mut Tx<'_>, n: &u32| tx.upsert(&item(&format!("k/{n}"), "v"));
        let flushes = db.flush_count();
        let mut p = CommitPipeline::new(&db, write);
        assert_eq!(p.push(1).await.unwrap(), None);
        assert_eq!(p.push(2).await.unwrap(), Some(Upsert::Created));
        assert_eq!(p.finish().await.unwrap(), Some(Upsert::Created));
        assert_eq!(db.scan::<Item>("k/").unwrap().len(), 2);
        assert_eq!(
            db.flush_count() - flushes,
            2,
            "one flush per unit that wrote"
        );
        // Again: nothing changes, nothing is written or flushed.
        let flushes = db.flush_count();
        let mut p = CommitPipeline::new(&db, write);
        p.push(1).await.unwrap();
        assert_eq!(p.finish().await.unwrap(), Some(Upsert::Unchanged));
        assert_eq!(db.flush_count(), flushes);
    }

    #[tokio::test]
    async fn a_failing_unit_stops_the_pipeline_after_the_one_before() {
        let db = Db::in_memory();
        let write = |tx: &mut Tx<'_>, n: &u32| {
            if *n == 3 {
                return Err(StoreError::Conflict { attempts: 0 });
            }
            tx.put(&item(&format!("k/{n}"), "v"))
        };
        let mut p = CommitPipeline::new(&db, write);
        p.push(1).await.unwrap();
        p.push(2).await.unwrap();
        assert!(p.push(3).await.is_err());
        drop(p);
        // Unit 1 committed; unit 2's commit, already started, completes
        // whole (give the blocking pool a moment); unit 3 wrote nothing.
        for _ in 0..200 {
            if value(&db, "k/2").is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(value(&db, "k/1").is_some());
        assert!(value(&db, "k/2").is_some());
        assert!(value(&db, "k/3").is_none());
    }
}
