//! Runs a job: lists its work items, works them with bounded concurrency,
//! and keeps enough in the store that a crash or a shutdown resumes the rest.
//!
//! The store is the source of truth for progress:
//! - the run record (`job_runs`) and an entry in `active_runs` are written
//!   before any item is touched;
//! - every item is recorded `pending` before the first one starts;
//! - an item is marked `in_flight` and flushed before its effect, and marked
//!   `done` (flushed) after, so a restart redoes only items whose effect may
//!   not have happened, with the same idempotency key. Kinds with no effect
//!   outside billd (inquiries, [`super::JobKind::effects_outside`]) skip
//!   both flushes: their states ride on the next flush, and a crash at
//!   worst asks again.

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
        let batch = kind.batch_size().max(1);
        let mut todo = todo.into_iter().peekable();
        while todo.peek().is_some() {
            let permit = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                p = sem.clone().acquire_owned() => p.expect("semaphore never closed"),
            };
            if cancel.is_cancelled() {
                break;
            }
            let items: Vec<String> = todo.by_ref().take(batch).collect();
            let (ctx, kind, db) = (ctx.clone(), kind.clone(), self.db.clone());
            set.spawn(async move {
                let _permit = permit;
                work_batch(&db, &ctx, kind.as_ref(), items).await
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

fn set_item_state(db: &Db, key: &str, state: ItemState, attempt: bool) -> Result<u32, StoreError> {
    let w = db.modify::<WorkItem, _>(key, |w| {
        w.state = state;
        if attempt {
            w.attempts += 1;
        }
    })?;
    Ok(w.map_or(0, |w| w.attempts))
}

/// Works a batch of items (one item for most kinds) until each is done or
/// failed: every attempt is recorded in flight (flushed) before the kind
/// acts and its outcome after; transient failures are retried with backoff
/// (or after the delay a rate-limited connector asked for) while attempts
/// remain. A shutdown during a wait leaves the waiting items pending for
/// the next start.
async fn work_batch(
    db: &Db,
    ctx: &RunContext,
    kind: &dyn super::JobKind,
    mut items: Vec<String>,
) -> Result<(), JobError> {
    let policy = kind.retry_policy();
    let max_attempts = policy.max_attempts.max(1);
    while !items.is_empty() {
        let mut attempts = Vec::with_capacity(items.len());
        for item in &items {
            let key = WorkItem::key_for(&ctx.run_id, item);
            attempts.push(set_item_state(db, &key, ItemState::InFlight, true)?);
        }
        let outside = kind.effects_outside();
        if outside {
            db.flush()?;
        }
        let mut results = kind.work_batch(ctx, &items).await;
        results.resize_with(items.len(), || {
            Err(JobError::Permanent(
                "the job kind returned no result for this item".into(),
            ))
        });
        let mut again = Vec::new();
        let mut failed = false;
        let mut wait = Duration::ZERO;
        for ((item, result), attempt) in items.into_iter().zip(results).zip(attempts) {
            let key = WorkItem::key_for(&ctx.run_id, &item);
            match result {
                Ok(()) => {
                    set_item_state(db, &key, ItemState::Done, false)?;
                }
                Err(e) if e.is_transient() && attempt < max_attempts => {
                    let delay = match &e {
                        JobError::RateLimited { retry_after, .. } => *retry_after,
                        _ => policy.jittered(attempt + 1),
                    };
                    tracing::info!(
                        run = %ctx.run_id, item = %item, attempt, error = %e,
                        retry_in_ms = delay.as_millis() as u64, "work item will be retried"
                    );
                    set_item_state(db, &key, ItemState::Pending, false)?;
                    wait = wait.max(delay);
                    again.push(item);
                }
                Err(e) => {
                    failed = true;
                    tracing::warn!(run = %ctx.run_id, item = %item, attempt, error = %e, "work item failed");
                    set_item_state(db, &key, ItemState::Failed, false)?;
                    db.modify::<JobRun, _>(&ctx.run_id, |r| push_error(r, format!("{item}: {e}")))?;
                    if e.is_transient() || matches!(e, JobError::NeedsPerson { .. }) {
                        raise_failure_task(db, ctx, &e, attempt)?;
                    }
                }
            }
        }
        // An outcome other than done (a retry, a failure and its task) is
        // made durable at once; so is every outcome of a kind with effects
        // outside. A read-only kind's done items ride on the next flush
        // (its own, the next batch's, the run's end).
        if outside || !again.is_empty() || failed {
            db.flush()?;
        }
        items = again;
        if !items.is_empty() {
            tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
    Ok(())
}

/// One open task per job and cause, however many items it hits.
fn raise_failure_task(
    db: &Db,
    ctx: &RunContext,
    e: &JobError,
    attempts: u32,
) -> Result<(), StoreError> {
    let cause = e.cause();
    let subject = match e {
        JobError::NeedsPerson { .. } => {
            format!("job {}: work needs a person ({cause})", ctx.job)
        }
        _ => format!(
            "job {}: work items failing after {attempts} attempts ({cause})",
            ctx.job
        ),
    };
    crate::domain::task::raise(
        db,
        ctx.clock.now(),
        crate::domain::NewTask {
            kind: "job-failing".into(),
            subject,
            priority: crate::domain::Priority::High,
            due: None,
            assignee: None,
            payer: None,
            dedupe_key: format!("job-failing/{}/{cause}", ctx.job),
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::jobs::{BoxFuture, JobKind, RetryPolicy};
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

    /// Fails each item transiently `fail_first` times (rate-limited when
    /// `retry_after` is set), then succeeds; records when each attempt ran.
    struct Flaky {
        items: usize,
        fail_first: u32,
        retry_after: Option<Duration>,
        needs_person: bool,
        policy: RetryPolicy,
        batch: usize,
        read_only: bool,
        calls: Mutex<BTreeMap<String, Vec<tokio::time::Instant>>>,
        batches: Mutex<Vec<usize>>,
    }

    impl Flaky {
        fn new(items: usize, fail_first: u32) -> Self {
            Flaky {
                items,
                fail_first,
                retry_after: None,
                needs_person: false,
                policy: RetryPolicy {
                    max_attempts: 5,
                    base_delay: Duration::from_secs(2),
                    max_delay: Duration::from_secs(600),
                },
                batch: 1,
                read_only: false,
                calls: Mutex::new(BTreeMap::new()),
                batches: Mutex::new(Vec::new()),
            }
        }
        fn attempt_times(&self, item: &str) -> Vec<tokio::time::Instant> {
            self.calls
                .lock()
                .unwrap()
                .get(item)
                .cloned()
                .unwrap_or_default()
        }
    }

    impl JobKind for Flaky {
        fn kind(&self) -> &'static str {
            "flaky"
        }
        fn list_items<'a>(
            &'a self,
            _ctx: &'a RunContext,
        ) -> BoxFuture<'a, Result<Vec<String>, JobError>> {
            Box::pin(async move { Ok((0..self.items).map(|i| format!("f{i:02}")).collect()) })
        }
        fn work_item<'a>(
            &'a self,
            _ctx: &'a RunContext,
            item: &'a str,
        ) -> BoxFuture<'a, Result<(), JobError>> {
            Box::pin(async move {
                let n = {
                    let mut calls = self.calls.lock().unwrap();
                    let v = calls.entry(item.to_string()).or_default();
                    v.push(tokio::time::Instant::now());
                    v.len() as u32
                };
                if self.needs_person {
                    return Err(JobError::NeedsPerson {
                        cause: "authentication".into(),
                        message: "credentials refused".into(),
                    });
                }
                if n <= self.fail_first {
                    return Err(match self.retry_after {
                        Some(retry_after) => JobError::RateLimited {
                            retry_after,
                            message: "slow down".into(),
                        },
                        None => JobError::Transient("payer timeout".into()),
                    });
                }
                Ok(())
            })
        }
        fn batch_size(&self) -> usize {
            self.batch
        }
        fn work_batch<'a>(
            &'a self,
            ctx: &'a RunContext,
            items: &'a [String],
        ) -> BoxFuture<'a, Vec<Result<(), JobError>>> {
            Box::pin(async move {
                self.batches.lock().unwrap().push(items.len());
                let mut out = Vec::new();
                for i in items {
                    out.push(self.work_item(ctx, i).await);
                }
                out
            })
        }
        fn retry_policy(&self) -> RetryPolicy {
            self.policy
        }
        fn effects_outside(&self) -> bool {
            !self.read_only
        }
    }

    async fn run_flaky(db: &Db, kind: Arc<Flaky>, concurrency: usize) -> JobRun {
        let r = runner(db);
        let run = r.begin("flaky", RunTrigger::Manual, None).unwrap();
        r.execute(&run.id, kind, concurrency, CancellationToken::new())
            .await
            .unwrap()
    }

    fn tasks_of(db: &Db, kind: &str) -> Vec<crate::domain::Task> {
        crate::domain::task::all(db)
            .unwrap()
            .into_iter()
            .filter(|t| t.kind == kind)
            .collect()
    }

    #[tokio::test]
    async fn only_kinds_with_effects_outside_wait_for_the_disk_per_item() {
        for (read_only, most, least) in [(false, u64::MAX, 40), (true, 6, 0)] {
            let db = test_db();
            let mut flaky = Flaky::new(20, 0);
            flaky.read_only = read_only;
            let before = db.flush_count();
            let run = run_flaky(&db, Arc::new(flaky), 1).await;
            assert_eq!(run.outcome, RunOutcome::Succeeded);
            assert_eq!(run.items_done, 20);
            let flushes = db.flush_count() - before;
            assert!(
                (least..=most).contains(&flushes),
                "read-only {read_only}: {flushes} flushes for 20 items"
            );
            // Every item's outcome is in the store all the same.
            let items = db.scan::<WorkItem>(&format!("{}#", run.id)).unwrap();
            assert_eq!(items.len(), 20);
            assert!(items.iter().all(|i| i.state == ItemState::Done));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_error_is_retried_with_growing_delays() {
        let db = test_db();
        let kind = Arc::new(Flaky::new(1, 3));
        let run = run_flaky(&db, kind.clone(), 1).await;
        assert_eq!(run.outcome, RunOutcome::Succeeded);
        let times = kind.attempt_times("f00");
        assert_eq!(times.len(), 4, "three failures, then success");
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        // Attempt n waits in the upper half of 2 s * 2^(n-2): [1,2], [2,4], [4,8].
        for (i, gap) in gaps.iter().enumerate() {
            let full = Duration::from_secs(2 << i);
            assert!(*gap >= full / 2 && *gap <= full, "gap {i}: {gap:?}");
        }
        assert!(gaps[0] < gaps[1] && gaps[1] < gaps[2], "{gaps:?}");
        let item: WorkItem = db.get(&WorkItem::key_for(&run.id, "f00")).unwrap().unwrap();
        assert_eq!((item.state, item.attempts), (ItemState::Done, 4));
        assert!(tasks_of(&db, "job-failing").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_is_honoured_to_the_second() {
        let db = test_db();
        let mut flaky = Flaky::new(1, 2);
        flaky.retry_after = Some(Duration::from_secs(37));
        let kind = Arc::new(flaky);
        let run = run_flaky(&db, kind.clone(), 1).await;
        assert_eq!(run.outcome, RunOutcome::Succeeded);
        let times = kind.attempt_times("f00");
        assert_eq!(times.len(), 3);
        for w in times.windows(2) {
            assert_eq!((w[1] - w[0]).as_secs(), 37, "{:?}", w[1] - w[0]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn exhausting_attempts_fails_the_items_and_raises_one_task() {
        let db = test_db();
        let mut flaky = Flaky::new(6, u32::MAX);
        flaky.policy.max_attempts = 3;
        let kind = Arc::new(flaky);
        let run = run_flaky(&db, kind.clone(), 3).await;
        assert_eq!(run.outcome, RunOutcome::Failed);
        assert_eq!((run.items_done, run.items_failed), (0, 6));
        for i in 0..6 {
            assert_eq!(kind.attempt_times(&format!("f{i:02}")).len(), 3);
        }
        let raised = tasks_of(&db, "job-failing");
        assert_eq!(raised.len(), 1, "{raised:?}");
        assert_eq!(
            raised[0].subject,
            "job flaky: work items failing after 3 attempts (unavailable)"
        );
        // A second failing run of the same job adds no task while it is open.
        run_flaky(&db, kind, 3).await;
        assert_eq!(tasks_of(&db, "job-failing").len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_item_that_needs_a_person_is_not_retried_and_raises_one_task() {
        let db = test_db();
        let mut flaky = Flaky::new(4, 0);
        flaky.needs_person = true;
        let kind = Arc::new(flaky);
        let run = run_flaky(&db, kind.clone(), 2).await;
        assert_eq!(run.items_failed, 4);
        assert_eq!(kind.attempt_times("f00").len(), 1);
        let raised = tasks_of(&db, "job-failing");
        assert_eq!(raised.len(), 1);
        assert!(
            raised[0].subject.contains("authentication"),
            "{}",
            raised[0].subject
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_kind_gets_its_items_in_batches_and_retries_only_the_failures() {
        let db = test_db();
        let mut flaky = Flaky::new(7, 1);
        flaky.batch = 3;
        let kind = Arc::new(flaky);
        let run = run_flaky(&db, kind.clone(), 1).await;
        assert_eq!(run.outcome, RunOutcome::Succeeded);
        assert_eq!(run.items_done, 7);
        // 3 + 3 + 1 first, and each batch retried once as a whole batch of
        // its failed items.
        assert_eq!(*kind.batches.lock().unwrap(), [3, 3, 3, 3, 1, 1]);
        for i in 0..7 {
            assert_eq!(kind.attempt_times(&format!("f{i:02}")).len(), 2);
        }
    }
}
