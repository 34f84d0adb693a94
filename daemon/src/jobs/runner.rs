//! Runs a job: lists its work items, works them with bounded concurrency,
//! and keeps enough in the store that a crash or a shutdown resumes the rest.
//!
//! The store is the source of truth for progress:
//! - the run record (`job_runs`) and an entry in `active_runs` are written
//!   before any item is touched;
//! - every item is recorded `pending` before the first one starts;
//! - an item is marked `in_flight` and flushed before its effect, and marked
//!   `done` (flushed) after, so a restart redoes only items whose effect may
//!   not have happened, with the same idempotency key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{ItemState, JobRun, RunOutcome, RunTrigger, WorkItem};
use super::{JobError, RunContext, SharedJobKind};
use crate::clock::SharedClock;
use crate::store::{Db, Record, StoreError, time_key};

/// The most errors kept on one run record; the count is always exact.
const MAX_ERRORS_KEPT: usize = 50;

/// Marks a run that has started and not finished, so a restart finds it
/// without scanning the whole run history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveRun {
    /// The run.
    pub run_id: String,
    /// Its job.
    pub job: String,
}

impl Record for ActiveRun {
    const COLLECTION: &'static str = "active_runs";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.run_id.clone()
    }
}

/// Works job runs against the store.
#[derive(Clone)]
pub struct Runner {
    db: Db,
    clock: SharedClock,
    grace: Duration,
}

impl Runner {
    /// A runner that gives in-flight items `grace` to finish on shutdown.
    pub fn new(db: Db, clock: SharedClock, grace: Duration) -> Self {
        Self { db, clock, grace }
    }

    /// The id of a run: scheduled and catch-up runs are named after their
    /// occurrence (so one occurrence can only ever have one run), manual
    /// runs after the moment they were asked for.
    pub fn run_id(job: &str, occurrence: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
        match occurrence {
            Some(t) => format!("{job}/{}", time_key(t)),
            None => format!("{job}/{}m", time_key(now)),
        }
    }

    /// Records a new run as started. Fails if a run with the same id exists.
    pub fn begin(
        &self,
        job: &str,
        trigger: RunTrigger,
        occurrence: Option<DateTime<Utc>>,
    ) -> Result<JobRun, StoreError> {
        let now = self.clock.now();
        let run = JobRun {
            id: Self::run_id(job, occurrence, now),
            job: job.to_string(),
            occurrence,
            trigger,
            started_at: now,
            ended_at: None,
            outcome: RunOutcome::Running,
            items_total: 0,
            items_done: 0,
            items_failed: 0,
            errors: Vec::new(),
            resumes: 0,
        };
        self.db.put(&ActiveRun {
            run_id: run.id.clone(),
            job: job.to_string(),
        })?;
        self.db.put(&run)?;
        self.db.flush()?;
        Ok(run)
    }

    /// Runs that started and did not finish (crashed or interrupted).
    pub fn unfinished(&self) -> Result<Vec<JobRun>, StoreError> {
        let mut out = Vec::new();
        for a in self.db.scan::<ActiveRun>("")? {
            match self.db.get::<JobRun>(&a.run_id)? {
                Some(run) => out.push(run),
                None => {
                    self.db.remove::<ActiveRun>(&a.run_id)?;
                }
            }
        }
        Ok(out)
    }

    /// Works the run `run_id` until every item is done or failed, or until
    /// `cancel` fires; returns the run as recorded at the end.
    pub async fn execute(
        &self,
        run_id: &str,
        kind: SharedJobKind,
        concurrency: usize,
        cancel: CancellationToken,
    ) -> Result<JobRun, JobError> {
        let run = self
            .db
            .get::<JobRun>(run_id)?
            .ok_or_else(|| JobError::Permanent(format!("run {run_id} does not exist")))?;
        let ctx = RunContext {
            db: self.db.clone(),
            clock: self.clock.clone(),
            job: run.job.clone(),
            run_id: run.id.clone(),
            occurrence: run.occurrence,
            cancel: cancel.clone(),
        };
        let prefix = format!("{run_id}#");
        let mut items = self.db.scan::<WorkItem>(&prefix)?;
        if items.is_empty() {
            match kind.list_items(&ctx).await {
                Ok(mut keys) => {
                    keys.sort();
                    keys.dedup();
                    for item in keys {
                        self.db.insert_new(&WorkItem {
                            run_id: run_id.to_string(),
                            item,
                            state: ItemState::Pending,
                            attempts: 0,
                        })?;
                    }
                    items = self.db.scan::<WorkItem>(&prefix)?;
                    self.db.flush()?;
                }
                Err(e) => {
                    tracing::error!(run = run_id, error = %e, "listing work items failed");
                    return self.finish(run_id, Some(e.to_string()), false);
                }
            }
        } else {
            self.db.modify::<JobRun, _>(run_id, |r| {
                r.resumes += 1;
                r.outcome = RunOutcome::Running;
            })?;
            tracing::info!(run = run_id, "resuming run");
        }
        let total = items.len() as u64;
        self.db
            .modify::<JobRun, _>(run_id, |r| r.items_total = total)?;

        let todo: Vec<String> = items
            .into_iter()
            .filter(|w| matches!(w.state, ItemState::Pending | ItemState::InFlight))
            .map(|w| w.item)
            .collect();
        let sem = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut set = JoinSet::new();
        for item in todo {
            let permit = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                p = sem.clone().acquire_owned() => p.expect("semaphore never closed"),
            };
            if cancel.is_cancelled() {
                break;
            }
            let (ctx, kind, db) = (ctx.clone(), kind.clone(), self.db.clone());
            set.spawn(async move {
                let _permit = permit;
                work_one(&db, &ctx, kind.as_ref(), &item).await
            });
            // Reap finished items as we go so store errors surface early.
            while let Some(done) = set.try_join_next() {
                done.map_err(|e| JobError::Permanent(format!("item task failed: {e}")))??;
            }
        }
        let drained = if cancel.is_cancelled() {
            tokio::time::timeout(self.grace, drain(&mut set))
                .await
                .is_ok()
        } else {
            drain(&mut set).await;
            true
        };
        if !drained {
            tracing::warn!(
                run = run_id,
                "grace period over; abandoning in-flight items for the next start"
            );
            set.abort_all();
            while set.join_next().await.is_some() {}
        }
        self.finish(run_id, None, cancel.is_cancelled())
    }

    /// Recomputes the run's counts from its items and records its outcome.
    fn finish(
        &self,
        run_id: &str,
        fatal: Option<String>,
        cancelled: bool,
    ) -> Result<JobRun, JobError> {
        let items = self.db.scan::<WorkItem>(&format!("{run_id}#"))?;
        let done = items.iter().filter(|w| w.state == ItemState::Done).count() as u64;
        let failed = items
            .iter()
            .filter(|w| w.state == ItemState::Failed)
            .count() as u64;
        let remaining = items.len() as u64 - done - failed;
        let now = self.clock.now();
        let finished = self.db.modify::<JobRun, _>(run_id, |r| {
            r.items_total = items.len() as u64;
            r.items_done = done;
            r.items_failed = failed;
            if let Some(e) = &fatal {
                push_error(r, e.clone());
            }
            r.outcome = if fatal.is_some() {
                RunOutcome::Failed
            } else if remaining > 0 && cancelled {
                RunOutcome::Interrupted
            } else if failed > 0 && done == 0 {
                RunOutcome::Failed
            } else if failed > 0 {
                RunOutcome::PartiallyFailed
            } else {
                RunOutcome::Succeeded
            };
            if r.outcome != RunOutcome::Interrupted {
                r.ended_at = Some(now);
            }
        })?;
        let run = finished.ok_or_else(|| JobError::Permanent(format!("run {run_id} vanished")))?;
        if run.outcome != RunOutcome::Interrupted {
            self.db.remove::<ActiveRun>(run_id)?;
        }
        self.db.flush()?;
        tracing::info!(
            run = run_id,
            outcome = ?run.outcome,
            done = run.items_done,
            failed = run.items_failed,
            total = run.items_total,
            "run ended"
        );
        Ok(run)
    }
}

fn push_error(run: &mut JobRun, e: String) {
    if run.errors.len() < MAX_ERRORS_KEPT {
        run.errors.push(e);
    }
}

async fn drain(set: &mut JoinSet<Result<(), JobError>>) {
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "recording item progress failed"),
            Err(e) if e.is_cancelled() => {}
            Err(e) => tracing::error!(error = %e, "item task panicked"),
        }
    }
}

fn set_item_state(db: &Db, key: &str, state: ItemState, attempt: bool) -> Result<(), StoreError> {
    db.modify::<WorkItem, _>(key, |w| {
        w.state = state;
        if attempt {
            w.attempts += 1;
        }
    })?;
    Ok(())
}

/// Works one item, recording it in flight before and done or failed after.
async fn work_one(
    db: &Db,
    ctx: &RunContext,
    kind: &dyn super::JobKind,
    item: &str,
) -> Result<(), JobError> {
    let key = WorkItem::key_for(&ctx.run_id, item);
    set_item_state(db, &key, ItemState::InFlight, true)?;
    db.flush()?;
    let result = kind.work_item(ctx, item).await;
    match result {
        Ok(()) => set_item_state(db, &key, ItemState::Done, false)?,
        Err(e) => {
            tracing::warn!(run = %ctx.run_id, item, error = %e, "work item failed");
            set_item_state(db, &key, ItemState::Failed, false)?;
            db.modify::<JobRun, _>(&ctx.run_id, |r| push_error(r, format!("{item}: {e}")))?;
        }
    }
    db.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::jobs::{BoxFuture, JobKind};
    use crate::store::test_db;
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Items 0..n; each effect is counted by its idempotency key. Items at
    /// or past `stall_from` wait until cancelled (a shutdown mid-run).
    struct Counting {
        n: usize,
        effects: Mutex<BTreeMap<String, usize>>,
        stall_from: AtomicUsize,
        fail: Option<usize>,
    }

    impl JobKind for Counting {
        fn kind(&self) -> &'static str {
            "counting"
        }
        fn list_items<'a>(
            &'a self,
            _ctx: &'a RunContext,
        ) -> BoxFuture<'a, Result<Vec<String>, JobError>> {
            Box::pin(async move { Ok((0..self.n).map(|i| format!("i{i:03}")).collect()) })
        }
        fn work_item<'a>(
            &'a self,
            ctx: &'a RunContext,
            item: &'a str,
        ) -> BoxFuture<'a, Result<(), JobError>> {
            Box::pin(async move {
                let i: usize = item[1..].parse().unwrap();
                if i >= self.stall_from.load(Ordering::SeqCst) {
                    ctx.cancel.cancelled().await;
                    // Past the grace period the task is dropped here.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                if Some(i) == self.fail {
                    return Err(JobError::Permanent("item refused".into()));
                }
                *self
                    .effects
                    .lock()
                    .unwrap()
                    .entry(ctx.effect_key(item))
                    .or_default() += 1;
                Ok(())
            })
        }
    }

    fn runner(db: &Db) -> Runner {
        Runner::new(
            db.clone(),
            Arc::new(SystemClock),
            Duration::from_millis(100),
        )
    }

    #[tokio::test]
    async fn interrupted_run_resumes_the_rest_once() {
        let db = test_db();
        let kind = Arc::new(Counting {
            n: 20,
            effects: Mutex::new(BTreeMap::new()),
            stall_from: AtomicUsize::new(8),
            fail: None,
        });
        let r = runner(&db);
        let run = r.begin("count", RunTrigger::Manual, None).unwrap();
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c.cancel();
        });
        let first = r.execute(&run.id, kind.clone(), 3, cancel).await.unwrap();
        assert_eq!(first.outcome, RunOutcome::Interrupted);
        assert_eq!(first.items_total, 20);
        assert_eq!(first.items_done, 8);
        assert_eq!(r.unfinished().unwrap().len(), 1);

        kind.stall_from.store(usize::MAX, Ordering::SeqCst);
        let second = r
            .execute(&run.id, kind.clone(), 3, CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(second.outcome, RunOutcome::Succeeded);
        assert_eq!(second.items_done, 20);
        assert_eq!(second.resumes, 1);
        let effects = kind.effects.lock().unwrap();
        assert_eq!(effects.len(), 20);
        assert!(effects.values().all(|n| *n == 1), "{effects:?}");
        assert!(r.unfinished().unwrap().is_empty());
    }

    #[tokio::test]
    async fn failed_items_are_counted_and_reported() {
        let db = test_db();
        let kind = Arc::new(Counting {
            n: 5,
            effects: Mutex::new(BTreeMap::new()),
            stall_from: AtomicUsize::new(usize::MAX),
            fail: Some(2),
        });
        let r = runner(&db);
        let run = r.begin("count", RunTrigger::Manual, None).unwrap();
        let done = r
            .execute(&run.id, kind, 2, CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(done.outcome, RunOutcome::PartiallyFailed);
        assert_eq!((done.items_done, done.items_failed), (4, 1));
        assert_eq!(done.errors, ["i002: item refused"]);
        assert!(done.ended_at.is_some());
    }
}
