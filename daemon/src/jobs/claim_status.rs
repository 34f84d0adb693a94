//! The `claim-status` job: every submitted claim is followed until the
//! payer finalizes it.
//!
//! A run takes the claims due for a check through the store's index (state
//! awaiting the payer, not held, next check due), asks about them in
//! batched 276 inquiries per payer, and advances each claim's state from
//! the 277 category code (every status event is kept in its history with
//! its source and codes). The next check follows a configured cadence
//! after submission (by default the first at 7 days, then 7, 14 and 30
//! days later, then every 30). Tasks: rejected, denied, not found, and
//! pending longer than `pending_task_days`. A run also raises a
//! timely-filing warning task `timely_filing_warning_days` before each
//! unfinalized claim's filing limit.
//!
//! Params: `connector` (required), `batch_size` (default 50),
//! `follow_up_days` (default `[7, 14, 30]`: the gaps after the first
//! check; the last repeats) or `follow_up` (the same as durations), `pending_task_days` (default 45),
//! `timely_filing_days` (default 365), `timely_filing_overrides`,
//! `timely_filing_warning_days` (default 30).
//! `max_attempts` and `retry_delay` (default 5 and `"2s"`) tune the runner's
//! retries of a failing item.

use chrono::{DateTime, Duration as Days, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::registry::{BuildError, JobSetup, KindEntry, Services, check_params, parse_params};
use super::submission::party;
use super::{BoxFuture, JobError, JobKind, RunContext};
use super::{check_connector, connector};
use crate::domain::claim::{self as claims, ALL_STATES};
use crate::domain::practice::Practice;
use crate::domain::scrub::{FilingLimits, timely_filing_deadline};
use crate::domain::task::raise_in;
use crate::domain::{Claim, ClaimEvent, ClaimEventSource, ClaimState, NewTask, Priority};
use crate::mapping;
use crate::plugin::PluginRegistry;
use crate::plugin::bindings::payer_api as pay;
use crate::store::StoreError;

/// `[job.params]` of a claim-status job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimStatusParams {
    /// The payer connector plugin to ask.
    pub connector: String,
    /// Claims per inquiry (default 50).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Days between checks after the first (default `[7, 14, 30]`; the
    /// last repeats).
    #[serde(default)]
    pub follow_up_days: Vec<u32>,
    /// The same gaps as durations (`"12h"`, `"30s"`); when given, they
    /// replace `follow_up_days` (demos and tests follow claims in seconds).
    #[serde(default)]
    pub follow_up: Vec<String>,
    /// A claim pending this many days after submission raises a task
    /// (default 45).
    #[serde(default)]
    pub pending_task_days: Option<u32>,
    /// Days from the date of service a payer takes a claim (default 365).
    #[serde(default)]
    pub timely_filing_days: Option<u32>,
    /// Timely filing days per payer id.
    #[serde(default)]
    pub timely_filing_overrides: BTreeMap<String, u32>,
    /// Days before the limit the warning task is raised (default 30).
    #[serde(default)]
    pub timely_filing_warning_days: Option<u32>,
    /// Attempts per work item before it fails (default 5).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Delay before the first retry, doubling after (default `"2s"`).
    #[serde(default)]
    pub retry_delay: Option<String>,
}

/// The claim-status kind in the job registry.
pub const KIND: KindEntry = KindEntry {
    name: "claim-status",
    check: check_params::<ClaimStatusParams>,
    build: |params, setup, services| {
        let params = parse_params::<ClaimStatusParams>(params)?;
        Ok(Arc::new(ClaimStatusJob::new(params, setup, services)?))
    },
};

/// A configured claim-status job.
pub struct ClaimStatusJob {
    connector: String,
    plugins: Option<Arc<PluginRegistry>>,
    practice: Practice,
    timezone: chrono_tz::Tz,
    batch_size: usize,
    follow_up: Vec<Days>,
    pending_task: Days,
    filing: FilingLimits,
    warn: u32,
    retry: super::RetryPolicy,
}

impl std::fmt::Debug for ClaimStatusJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimStatusJob")
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

/// Claims read per page while listing.
const PAGE: usize = 1000;

impl ClaimStatusJob {
    /// Builds the job from its params.
    pub fn new(
        params: ClaimStatusParams,
        setup: &JobSetup,
        services: &Services,
    ) -> Result<Self, BuildError> {
        check_connector(services, &params.connector)?;
        let batch_size = params.batch_size.unwrap_or(50);
        if !(1..=1000).contains(&batch_size) {
            return Err(BuildError {
                key: "batch_size".into(),
                reason: "must be 1 to 1000".into(),
            });
        }
        let follow_up: Vec<Days> = if !params.follow_up.is_empty() {
            let mut out = Vec::new();
            for g in &params.follow_up {
                let d = humantime::parse_duration(g)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .and_then(|d| Days::from_std(d).ok())
                    .ok_or_else(|| BuildError {
                        key: "follow_up".into(),
                        reason: format!("`{g}` is not a duration above zero (\"12h\", \"30s\")"),
                    })?;
                out.push(d);
            }
            out
        } else {
            let gaps = if params.follow_up_days.is_empty() {
                vec![7, 14, 30]
            } else {
                params.follow_up_days
            };
            if gaps.contains(&0) {
                return Err(BuildError {
                    key: "follow_up_days".into(),
                    reason: "each gap is at least one day".into(),
                });
            }
            gaps.into_iter().map(|d| Days::days(d.into())).collect()
        };
        let retry =
            super::RetryPolicy::from_params(params.max_attempts, params.retry_delay.as_deref())?;
        Ok(ClaimStatusJob {
            retry,
            connector: params.connector,
            plugins: services.plugins.clone(),
            practice: services.practice.clone(),
            timezone: setup.timezone,
            batch_size,
            follow_up,
            pending_task: Days::days(params.pending_task_days.unwrap_or(45).into()),
            filing: FilingLimits {
                default_days: params.timely_filing_days.unwrap_or(365),
                per_payer: params.timely_filing_overrides,
            },
            warn: params.timely_filing_warning_days.unwrap_or(30),
        })
    }

    /// The gap before the next check after `checks` checks so far.
    fn gap(&self, checks: usize) -> Days {
        let i = checks.saturating_sub(1).min(self.follow_up.len() - 1);
        self.follow_up[i]
    }

    /// Raises the timely-filing warnings due; lists the claims due for a
    /// check (by payer, so a batch is one payer's).
    fn prepare(&self, ctx: &RunContext) -> Result<Vec<String>, JobError> {
        let now = ctx.clock.now();
        self.warn_timely_filing(ctx, now)?;
        let mut due: Vec<(String, String)> = Vec::new();
        let until = crate::store::time_key(now);
        let mut page = claims::due_for_status_check(&ctx.db, now, PAGE)?;
        loop {
            due.extend(
                page.items
                    .iter()
                    .map(|c| (c.payer_id.clone(), c.id.clone())),
            );
            let Some(next) = page.next.clone() else { break };
            page = ctx.db.index_range::<Claim>(
                claims::BY_NEXT_CHECK,
                std::ops::Bound::Excluded(next.as_str()),
                std::ops::Bound::Included(until.as_str()),
                Some(PAGE),
                false,
            )?;
        }
        due.sort();
        due.dedup();
        Ok(due
            .into_iter()
            .map(|(payer, id)| format!("{payer}|{id}"))
            .collect())
    }

    /// A warning task for every claim not yet finalized whose timely
    /// filing limit is at most `warn` days away.
    fn warn_timely_filing(&self, ctx: &RunContext, now: DateTime<Utc>) -> Result<(), JobError> {
        let today = now.with_timezone(&self.timezone).date_naive();
        for state in ALL_STATES {
            if !matches!(
                state,
                ClaimState::Draft
                    | ClaimState::Scrubbed
                    | ClaimState::Ready
                    | ClaimState::Rejected
                    | ClaimState::Submitted
                    | ClaimState::Accepted
            ) {
                continue;
            }
            let mut after: Option<String> = None;
            loop {
                let page = claims::in_state(&ctx.db, state, after.as_deref(), PAGE)?;
                for c in &page.items {
                    let Some(first) = c.lines.iter().map(|l| l.service_date).min() else {
                        continue;
                    };
                    let Some(limit) =
                        timely_filing_deadline(first, self.filing.days_for(&c.payer_id))
                    else {
                        continue;
                    };
                    let left = (limit - today).num_days();
                    if (0..=i64::from(self.warn)).contains(&left) {
                        crate::domain::task::raise(
                            &ctx.db,
                            now,
                            NewTask {
                                kind: "timely-filing".into(),
                                subject: format!(
                                    "claim {} ({}) must reach payer {} by {limit}: {left} day(s) left",
                                    c.id, c.state, c.payer_id
                                ),
                                priority: Priority::Urgent,
                                due: Some(super::business_days::local_midnight(
                                    limit,
                                    self.timezone,
                                )),
                                assignee: None,
                                payer: None,
                                dedupe_key: format!("timely-filing:{}", c.id),
                            },
                        )?;
                    }
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
        Ok(())
    }

    async fn inquire(&self, ctx: &RunContext, items: &[String]) -> Vec<Result<(), JobError>> {
        let ids: Vec<&str> = items
            .iter()
            .map(|i| i.split_once('|').map_or(i.as_str(), |(_, id)| id))
            .collect();
        let mut out: Vec<Result<(), JobError>> = Vec::with_capacity(ids.len());
        // One inquiry per payer among the batch's claims.
        let mut by_payer: BTreeMap<String, Vec<(usize, Claim)>> = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            out.push(Ok(()));
            match ctx.db.get::<Claim>(id) {
                Ok(Some(c)) if c.follows_up() => {
                    by_payer.entry(c.payer_id.clone()).or_default().push((i, c))
                }
                Ok(_) => {}
                Err(e) => out[i] = Err(e.into()),
            }
        }
        for (_payer, group) in by_payer {
            let result = self.inquire_payer(ctx, &group).await;
            if let Err(e) = result {
                let msg = e.to_string();
                let transient = e.is_transient();
                let mut first = Some(e);
                for (i, _) in &group {
                    out[*i] = Err(first.take().unwrap_or_else(|| {
                        if transient {
                            JobError::Transient(msg.clone())
                        } else {
                            JobError::Permanent(msg.clone())
                        }
                    }));
                }
            }
        }
        out
    }

    async fn inquire_payer(
        &self,
        ctx: &RunContext,
        group: &[(usize, Claim)],
    ) -> Result<(), JobError> {
        let mut inquiries = Vec::with_capacity(group.len());
        for (_, claim) in group {
            let (patient, coverage) = party(ctx, claim)?;
            let billing = mapping::billing_provider(claim, &self.practice);
            inquiries.push(mapping::status_inquiry(
                claim, &patient, &coverage, &billing,
            ));
        }
        let plugin = connector(&self.plugins, &self.connector, "payer")?;
        let key = ctx.effect_key(&group[0].1.id);
        let answers = match plugin.claim_status(&key, &inquiries).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => return Err(super::connector_error(Ok(e))),
            Err(e) => return Err(super::connector_error(Err(e))),
        };
        let now = ctx.clock.now();
        ctx.db.transact(|tx| {
            for (_, claim) in group {
                let answer = answers.iter().find(|a| a.claim_id == claim.control_number);
                self.apply(tx, claim, answer, now)?;
            }
            Ok::<_, StoreError>(())
        })?;
        ctx.db.flush()?;
        Ok(())
    }

    /// Records one 277 answer on its claim.
    fn apply(
        &self,
        tx: &mut crate::store::Tx<'_>,
        claim: &Claim,
        answer: Option<&pay::StatusResponse>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(mut c) = tx.get::<Claim>(&claim.id)? else {
            return Ok(());
        };
        let checks = c
            .history
            .iter()
            .filter(|e| e.source == ClaimEventSource::Status277)
            .count()
            + 1;
        let submitted_at = c
            .history
            .iter()
            .rev()
            .find(|e| e.to == ClaimState::Submitted)
            .map_or(now, |e| e.at);
        let mut task: Option<(&str, String)> = None;
        match answer {
            None => {
                task = Some((
                    "claim-status-missing",
                    "the payer's answer left it out".into(),
                ));
                c.history.push(ClaimEvent {
                    at: now,
                    from: Some(c.state),
                    to: c.state,
                    source: ClaimEventSource::Status277,
                    note: Some("no status in the answer".into()),
                });
            }
            Some(a) => {
                let note = format!(
                    "STC {}:{}{}",
                    a.category_code,
                    a.status_code,
                    a.paid
                        .map(|p| format!(" paid {p} cents"))
                        .unwrap_or_default()
                );
                if let Some(n) = &a.payer_claim_id {
                    c.payer_claim_number = Some(n.clone());
                }
                match mapping::claim_state_from(a.state) {
                    None => {
                        task = Some((
                            "claim-not-found",
                            format!("the payer has no record of it ({})", a.category_code),
                        ));
                        c.history.push(ClaimEvent {
                            at: now,
                            from: Some(c.state),
                            to: c.state,
                            source: ClaimEventSource::Status277,
                            note: Some(note),
                        });
                    }
                    Some(to) if to != c.state && c.state.can_become(to) => {
                        c.transition(to, ClaimEventSource::Status277, now, Some(note))
                            .expect("checked by can_become");
                        match to {
                            ClaimState::Rejected => {
                                task = Some((
                                    "claim-rejected",
                                    format!(
                                        "rejected by the 277 ({}:{})",
                                        a.category_code, a.status_code
                                    ),
                                ))
                            }
                            ClaimState::Denied => {
                                task = Some((
                                    "claim-denied",
                                    format!("denied ({}:{})", a.category_code, a.status_code),
                                ))
                            }
                            _ => {}
                        }
                    }
                    Some(_) => c.history.push(ClaimEvent {
                        at: now,
                        from: Some(c.state),
                        to: c.state,
                        source: ClaimEventSource::Status277,
                        note: Some(note),
                    }),
                }
            }
        }
        c.next_check_at = c.state.awaits_payer().then(|| now + self.gap(checks));
        if task.is_none() && c.state.awaits_payer() && now - submitted_at > self.pending_task {
            task = Some((
                "claim-pending-too-long",
                format!(
                    "still {} {} days after submission",
                    c.state,
                    (now - submitted_at).num_days()
                ),
            ));
        }
        if let Some((kind, what)) = task {
            raise_in(
                tx,
                now,
                &NewTask {
                    kind: kind.into(),
                    subject: format!("claim {} (payer {}): {what}", c.id, c.payer_id),
                    priority: Priority::High,
                    due: None,
                    assignee: None,
                    payer: Some(c.payer_id.clone()),
                    dedupe_key: format!("{kind}:{}:r{}", c.id, c.revision),
                },
            )?;
        }
        tx.put(&c)
    }
}

impl JobKind for ClaimStatusJob {
    fn effects_outside(&self) -> bool {
        // Inquiries only ask; what they learn is written in one
        // transaction with the item's outcome coming after it.
        false
    }

    fn retry_policy(&self) -> super::RetryPolicy {
        self.retry
    }

    fn kind(&self) -> &'static str {
        "claim-status"
    }

    fn list_items<'a>(
        &'a self,
        ctx: &'a RunContext,
    ) -> BoxFuture<'a, Result<Vec<String>, JobError>> {
        Box::pin(async move { self.prepare(ctx) })
    }

    fn work_item<'a>(
        &'a self,
        ctx: &'a RunContext,
        item: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let items = [item.to_string()];
            self.inquire(ctx, &items).await.pop().unwrap_or(Ok(()))
        })
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn work_batch<'a>(
        &'a self,
        ctx: &'a RunContext,
        items: &'a [String],
    ) -> BoxFuture<'a, Vec<Result<(), JobError>>> {
        Box::pin(self.inquire(ctx, items))
    }
}
