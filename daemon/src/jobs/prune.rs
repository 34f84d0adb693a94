//! The `prune` job: retention of the daemon's own bookkeeping. Finished
//! runs with their work items, occurrences, sent outbox messages, and sent
//! or failed notification deliveries older than `keep_days` are removed, a page at a time, each page in one
//! transaction (a record and its index entries go together). Business
//! records (claims, ledger, tasks) are never pruned here.
//!
//! Params: `keep_days` (default 90, at least 1).

use chrono::Duration as Days;
use serde::Deserialize;
use std::ops::Bound;
use std::sync::Arc;

use super::occurrence::{BY_SCHEDULED, Occurrence};
use super::records::FINISHED_BY_END;
use super::registry::{BuildError, JobSetup, KindEntry, Services, check_params, parse_params};
use super::{BoxFuture, JobError, JobKind, JobRun, RunContext, WorkItem};
use crate::notify::OutboxMessage;
use crate::notify::delivery::{DONE_BY_CREATED, Delivery};
use crate::notify::outbox::SENT_BY_CREATED;
use crate::store::{Db, Record, StoreError, time_key};

/// `[job.params]` of a prune job.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneParams {
    /// Days of history to keep (default 90).
    #[serde(default)]
    pub keep_days: Option<u32>,
}

/// The prune kind in the job registry.
pub const KIND: KindEntry = KindEntry {
    name: "prune",
    check: check_params::<PruneParams>,
    build: |params, setup, services| {
        let params = parse_params::<PruneParams>(params)?;
        Ok(Arc::new(PruneJob::new(params, setup, services)?))
    },
};

/// Records removed per transaction.
const PAGE: usize = 500;

/// What one prune run removes; one work item each.
const ITEMS: [&str; 4] = ["runs", "occurrences", "outbox", "deliveries"];

/// A configured prune job.
#[derive(Debug)]
pub struct PruneJob {
    keep_days: u32,
}

impl PruneJob {
    /// Builds the job from its params.
    pub fn new(
        params: PruneParams,
        _setup: &JobSetup,
        _services: &Services,
    ) -> Result<Self, BuildError> {
        let keep_days = params.keep_days.unwrap_or(90);
        if keep_days == 0 {
            return Err(BuildError {
                key: "keep_days".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(PruneJob { keep_days })
    }
}

/// Removes finished runs (and their work items) that ended before `cutoff`,
/// skipping the run doing the pruning; returns how many runs went.
pub fn prune_runs(db: &Db, cutoff: &str, keep: &str) -> Result<u64, StoreError> {
    let mut removed = 0;
    let mut after: Option<String> = None;
    loop {
        let start = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let page = db.index_range_keys::<JobRun>(
            FINISHED_BY_END,
            start,
            Bound::Excluded(cutoff),
            Some(PAGE),
            false,
        )?;
        let keys: Vec<String> = page.items.into_iter().filter(|k| k != keep).collect();
        for run in &keys {
            // A run's work items are keyed `<run>#<item>`.
            let prefix = format!("{run}#");
            loop {
                let items: Vec<String> = db
                    .raw()
                    .range(
                        WorkItem::COLLECTION,
                        Bound::Included(prefix.as_bytes()),
                        Bound::Excluded(format!("{run}$").as_bytes()),
                        Some(PAGE),
                        false,
                    )?
                    .into_iter()
                    .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
                    .collect();
                if items.is_empty() {
                    break;
                }
                db.remove_keys::<WorkItem>(&items)?;
            }
        }
        removed += db.remove_keys::<JobRun>(&keys)? as u64;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(removed)
}

/// Removes the records of `R` whose `index` value is before `cutoff`.
fn prune_index<R: Record>(db: &Db, index: &str, cutoff: &str) -> Result<u64, StoreError> {
    let mut removed = 0;
    loop {
        let page = db.index_range_keys::<R>(
            index,
            Bound::Unbounded,
            Bound::Excluded(cutoff),
            Some(PAGE),
            false,
        )?;
        if page.items.is_empty() {
            return Ok(removed);
        }
        removed += db.remove_keys::<R>(&page.items)? as u64;
    }
}

impl JobKind for PruneJob {
    fn kind(&self) -> &'static str {
        "prune"
    }

    fn list_items<'a>(
        &'a self,
        _ctx: &'a RunContext,
    ) -> BoxFuture<'a, Result<Vec<String>, JobError>> {
        Box::pin(async move { Ok(ITEMS.iter().map(|s| s.to_string()).collect()) })
    }

    fn work_item<'a>(
        &'a self,
        ctx: &'a RunContext,
        item: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let cutoff = time_key(ctx.clock.now() - Days::days(i64::from(self.keep_days)));
            let db = ctx.db.clone();
            let (item_name, run_id) = (item.to_string(), ctx.run_id.clone());
            let removed = tokio::task::spawn_blocking(move || match item_name.as_str() {
                "runs" => prune_runs(&db, &cutoff, &run_id),
                "occurrences" => prune_index::<Occurrence>(&db, BY_SCHEDULED, &cutoff),
                "outbox" => prune_index::<OutboxMessage>(&db, SENT_BY_CREATED, &cutoff),
                "deliveries" => prune_index::<Delivery>(&db, DONE_BY_CREATED, &cutoff),
                other => Err(StoreError::Backend(format!("prune: unknown item {other}"))),
            })
            .await
            .map_err(|e| JobError::Permanent(format!("prune task failed: {e}")))??;
            ctx.db.flush()?;
            tracing::info!(job = %ctx.job, item, removed, "pruned");
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::jobs::occurrence::Disposition;
    use crate::jobs::runner::Runner;
    use crate::jobs::{ItemState, RunOutcome, RunTrigger};
    use crate::notify::OutboxStatus;
    use crate::notify::delivery::DeliveryStatus;
    use crate::notify::routing::Destination;
    use chrono::{TimeZone, Utc};
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn old_bookkeeping_goes_and_recent_or_unfinished_stays() {
        let db = Db::in_memory();
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 3, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(now));
        let day = |d: i64| now - Days::days(d);
        for (id, ended_days_ago, outcome) in [
            ("digest/old", Some(200), RunOutcome::Succeeded),
            ("digest/older", Some(91), RunOutcome::PartiallyFailed),
            ("digest/recent", Some(10), RunOutcome::Succeeded),
            ("digest/stuck", None, RunOutcome::Interrupted),
        ] {
            db.put(&JobRun {
                id: id.into(),
                job: "digest".into(),
                occurrence: None,
                trigger: RunTrigger::Schedule,
                started_at: day(ended_days_ago.unwrap_or(300)),
                ended_at: ended_days_ago.map(day),
                outcome,
                items_total: 1,
                items_done: 1,
                items_failed: 0,
                errors: vec![],
                resumes: 0,
            })
            .unwrap();
            for item in ["a", "b"] {
                db.put(&WorkItem {
                    run_id: id.into(),
                    item: item.into(),
                    state: ItemState::Done,
                    attempts: 1,
                })
                .unwrap();
            }
        }
        for (d, job) in [(100, "digest"), (5, "digest")] {
            db.put(&Occurrence {
                job: job.into(),
                scheduled_for: day(d),
                claimed_at: day(d),
                claimed_by: "h:1".into(),
                disposition: Disposition::Skipped { reason: "x".into() },
            })
            .unwrap();
        }
        for (key, d, status) in [
            ("m-old", 120, OutboxStatus::Sent),
            ("m-new", 1, OutboxStatus::Sent),
            ("m-queued", 120, OutboxStatus::Queued),
        ] {
            db.put(&OutboxMessage {
                key: key.into(),
                to: vec!["a@example.invalid".into()],
                subject: "s".into(),
                body: "b".into(),
                created_at: day(d),
                status,
                attempts: 1,
                headers: Vec::new(),
            })
            .unwrap();
        }
        for (key, d, status) in [
            ("T1/webhook:ops", 120, DeliveryStatus::Sent),
            ("T2/webhook:ops", 120, DeliveryStatus::Failed),
            ("T3/webhook:ops", 1, DeliveryStatus::Sent),
            ("T4/webhook:ops", 120, DeliveryStatus::Queued),
        ] {
            db.put(&Delivery {
                key: key.into(),
                task_id: key[..2].into(),
                to: Destination::Webhook("ops".into()),
                subject: String::new(),
                body: "{}".into(),
                created_at: day(d),
                status,
                attempts: 1,
                next_attempt_at: day(d),
                last_error: None,
            })
            .unwrap();
        }
        let services =
            crate::jobs::registry::test_services(&db, clock.clone(), std::path::Path::new("/"));
        let setup = JobSetup {
            name: "prune".into(),
            timezone: chrono_tz::UTC,
        };
        let kind = Arc::new(
            PruneJob::new(
                PruneParams {
                    keep_days: Some(90),
                },
                &setup,
                &services,
            )
            .unwrap(),
        );
        let runner = Runner::new(db.clone(), clock, std::time::Duration::from_secs(1));
        let run = runner.begin("prune", RunTrigger::Manual, None).unwrap();
        let done = runner
            .execute(&run.id, kind, 1, CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(done.outcome, RunOutcome::Succeeded);

        let runs: Vec<String> = db
            .scan::<JobRun>("digest/")
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(runs, ["digest/recent", "digest/stuck"]);
        let items: Vec<String> = db
            .scan::<WorkItem>("digest/")
            .unwrap()
            .into_iter()
            .map(|w| w.run_id)
            .collect();
        assert_eq!(
            items,
            [
                "digest/recent",
                "digest/recent",
                "digest/stuck",
                "digest/stuck"
            ]
        );
        assert_eq!(db.scan::<Occurrence>("").unwrap().len(), 1);
        let left: Vec<String> = db
            .scan::<OutboxMessage>("")
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(left, ["m-new", "m-queued"]);
        let deliveries: Vec<String> = db
            .scan::<Delivery>("")
            .unwrap()
            .into_iter()
            .map(|d| d.key)
            .collect();
        assert_eq!(deliveries, ["T3/webhook:ops", "T4/webhook:ops"]);
        // The prune's own run is kept.
        assert!(db.get::<JobRun>(&run.id).unwrap().is_some());
        for report in [
            db.check_indexes::<JobRun>().unwrap(),
            db.check_indexes::<OutboxMessage>().unwrap(),
            db.check_indexes::<Occurrence>().unwrap(),
            db.check_indexes::<Delivery>().unwrap(),
        ] {
            assert!(report.is_consistent(), "{report:?}");
        }
    }
}
