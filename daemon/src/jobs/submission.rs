//! The `submission` job: claims out the door, and the payer's first word
//! on them back.
//!
//! A run (1) scrubs every draft claim not on hold: a clean one becomes
//! ready, one with problems stays a draft with one task naming the claim
//! and the checks it failed; (2) forms batches of ready claims per payer,
//! each written down with a never-repeating number and a fixed idempotency
//! key before anything is sent ([`ClaimBatch`]); (3) sends every batch not
//! yet received, one work item each, so a retry or a restart after a crash
//! sends the same batch under the same key, a claim that follows an
//! earlier payer's (a secondary claim) with that payer's adjudication for
//! the connector's `coordination` import ([`prior_payers`]); (4) fetches
//! 999 and 277CA acknowledgments since the stored cursor and moves claims
//! along: accepted, acknowledged (with the payer's claim number), or
//! rejected with a task carrying the code and text.
//!
//! Params: `connector` (required), `batch_size` (default 100, at most
//! 5000), `timely_filing_days` (default 365) with `timely_filing_overrides`
//! per payer id, `first_check_days` (default 7: when the claim-status job
//! first asks) or `first_check` (a duration).
//! `max_attempts` and `retry_delay` (default 5 and `"2s"`) tune the runner's
//! retries of a failing item.

use chrono::Duration as Days;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::registry::{BuildError, JobSetup, KindEntry, Services, check_params, parse_params};
use super::{BoxFuture, JobError, JobKind, RunContext, check_connector, connector};
use crate::domain::claim::{self as claims, with_control_number};
use crate::domain::claim_batch::{self, BatchState, ClaimBatch, batch_id};
use crate::domain::posting::CobBasis;
use crate::domain::practice::Practice;
use crate::domain::scrub::{self, ScrubRules};
use crate::domain::task::raise_in;
use crate::domain::{Claim, ClaimEventSource, ClaimState, Coverage, NewTask, Patient, Priority};
use crate::mapping;
use crate::plugin::bindings::coordination_api::PriorPayer;
use crate::plugin::bindings::payer_api as pay;
use crate::plugin::{CallContext, PluginRegistry};
use crate::store::{Record, StoreError};

/// `[job.params]` of a submission job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionParams {
    /// The payer connector plugin that sends the claims.
    pub connector: String,
    /// Claims per batch (default 100).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Days from the date of service a payer takes a claim (default 365).
    #[serde(default)]
    pub timely_filing_days: Option<u32>,
    /// Timely filing days per payer id.
    #[serde(default)]
    pub timely_filing_overrides: BTreeMap<String, u32>,
    /// Days after submission of the first status inquiry (default 7).
    #[serde(default)]
    pub first_check_days: Option<u32>,
    /// The same as a duration (`"30s"`); when given, it replaces
    /// `first_check_days`.
    #[serde(default)]
    pub first_check: Option<String>,
    /// Attempts per work item before it fails (default 5).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Delay before the first retry, doubling after (default `"2s"`).
    #[serde(default)]
    pub retry_delay: Option<String>,
}

/// The submission kind in the job registry.
pub const KIND: KindEntry = KindEntry {
    name: "submission",
    check: check_params::<SubmissionParams>,
    build: |params, setup, services| {
        let params = parse_params::<SubmissionParams>(params)?;
        Ok(Arc::new(SubmissionJob::new(params, setup, services)?))
    },
};

/// The work item that fetches acknowledgments.
const ACKS: &str = "acks";

/// Where the acknowledgment listing of one connector resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckCursor {
    /// The connector.
    pub connector: String,
    /// Its cursor.
    pub cursor: Option<String>,
}

impl Record for AckCursor {
    const COLLECTION: &'static str = "ack_cursors";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.connector.clone()
    }
}

/// A configured submission job.
pub struct SubmissionJob {
    connector: String,
    plugins: Option<Arc<PluginRegistry>>,
    practice: Practice,
    timezone: chrono_tz::Tz,
    batch_size: usize,
    filing: crate::domain::scrub::FilingLimits,
    first_check: Days,
    retry: super::RetryPolicy,
}

impl std::fmt::Debug for SubmissionJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubmissionJob")
            .field("connector", &self.connector)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl SubmissionJob {
    /// Builds the job from its params.
    pub fn new(
        params: SubmissionParams,
        setup: &JobSetup,
        services: &Services,
    ) -> Result<Self, BuildError> {
        check_connector(services, &params.connector)?;
        let batch_size = params.batch_size.unwrap_or(100);
        if !(1..=5000).contains(&batch_size) {
            return Err(BuildError {
                key: "batch_size".into(),
                reason: "must be 1 to 5000".into(),
            });
        }
        let retry =
            super::RetryPolicy::from_params(params.max_attempts, params.retry_delay.as_deref())?;
        Ok(SubmissionJob {
            retry,
            connector: params.connector,
            plugins: services.plugins.clone(),
            practice: services.practice.clone(),
            timezone: setup.timezone,
            batch_size,
            filing: scrub::FilingLimits {
                default_days: params.timely_filing_days.unwrap_or(365),
                per_payer: params.timely_filing_overrides,
            },
            first_check: match &params.first_check {
                Some(text) => humantime::parse_duration(text)
                    .ok()
                    .and_then(|d| Days::from_std(d).ok())
                    .ok_or_else(|| BuildError {
                        key: "first_check".into(),
                        reason: format!("`{text}` is not a duration (\"7d\", \"30s\")"),
                    })?,
                None => Days::days(params.first_check_days.unwrap_or(7).into()),
            },
        })
    }

    /// Scrubs drafts and forms batches of ready claims; returns the items:
    /// every pending batch, then the acknowledgment fetch.
    fn prepare(&self, ctx: &RunContext) -> Result<Vec<String>, JobError> {
        let now = ctx.clock.now();
        let today = now.with_timezone(&self.timezone).date_naive();
        // A page of the index at a time: memory holds one page of claims,
        // not every draft.
        each_in(ctx, ClaimState::Draft, |claim| {
            if claim.held {
                return Ok(());
            }
            let rules = ScrubRules {
                today,
                timely_filing_days: self.filing.days_for(&claim.payer_id),
            };
            let problems = scrub::scrub(&claim, &rules);
            ctx.db.transact(|tx| {
                let Some(mut c) = tx.get::<Claim>(&claim.id)? else {
                    return Ok::<(), JobError>(());
                };
                if c.state != ClaimState::Draft || c.held {
                    return Ok::<(), JobError>(());
                }
                if problems.is_empty() {
                    c.problems.clear();
                    c.transition(ClaimState::Scrubbed, ClaimEventSource::System, now, None)
                        .and_then(|()| {
                            c.transition(ClaimState::Ready, ClaimEventSource::System, now, None)
                        })
                        .map_err(|e| JobError::Permanent(e.to_string()))?;
                    tx.put(&c)?;
                } else if c.problems != problems {
                    c.problems = problems.clone();
                    raise_in(tx, now, &scrub::scrub_task(&c))?;
                    tx.put(&c)?;
                }
                Ok(())
            })
        })?;
        // Claims already in a pending batch stay there.
        let pending = claim_batch::pending(&ctx.db)?;
        let batched: std::collections::HashSet<&str> = pending
            .iter()
            .flat_map(|b| b.claims.iter().map(|(id, _)| id.as_str()))
            .collect();
        let mut by_payer: BTreeMap<String, Vec<(String, u32)>> = BTreeMap::new();
        each_in(ctx, ClaimState::Ready, |c| {
            if !c.held && !batched.contains(c.id.as_str()) {
                by_payer
                    .entry(c.payer_id)
                    .or_default()
                    .push((c.id, c.revision));
            }
            Ok(())
        })?;
        for (payer, ids) in by_payer {
            for chunk in ids.chunks(self.batch_size) {
                ctx.db.transact(|tx| {
                    let number = tx.next_counter("claim-batch")?;
                    let id = batch_id(number);
                    tx.put(&ClaimBatch {
                        key: format!("{}#batch-{number:09}", ctx.job),
                        id,
                        number,
                        connector: self.connector.clone(),
                        payer_id: payer.clone(),
                        claims: chunk.to_vec(),
                        created_at: now,
                        state: BatchState::Pending,
                    })
                })?;
            }
        }
        ctx.db.flush()?;
        let mut items: Vec<String> = claim_batch::pending(&ctx.db)?
            .into_iter()
            .filter(|b| b.connector == self.connector)
            .map(|b| b.id)
            .collect();
        items.push(ACKS.into());
        Ok(items)
    }

    /// Sends one recorded batch.
    async fn send(&self, ctx: &RunContext, id: &str) -> Result<(), JobError> {
        let Some(batch) = ctx.db.get::<ClaimBatch>(id)? else {
            return Ok(());
        };
        if batch.state != BatchState::Pending {
            return Ok(());
        }
        let mut wire = Vec::with_capacity(batch.claims.len());
        let mut context = CallContext::new();
        for (claim_id, _) in &batch.claims {
            let claim = ctx.db.get::<Claim>(claim_id)?.ok_or_else(|| {
                JobError::Permanent(format!("batch {id}: claim {claim_id} is gone"))
            })?;
            let (patient, coverage) = party(ctx, &claim)?;
            let billing = mapping::billing_provider(&claim, &self.practice);
            let out = mapping::claim(&claim, &patient, &coverage, &billing);
            context =
                context.with_prior_payers(&out.claim_id, prior_payers(ctx, &claim, &patient)?);
            wire.push(out);
        }
        let plugin = connector(&self.plugins, &self.connector, "payer")?;
        let now = ctx.clock.now();
        match plugin.submit_claims_with(&batch.key, &wire, context).await {
            Ok(Ok(receipt)) => {
                self.record_sent(ctx, &batch, &receipt, now)?;
                tracing::info!(job = %ctx.job, batch = id, claims = wire.len(), "batch submitted");
                Ok(())
            }
            Ok(Err(pay_err)) => match pay_err {
                crate::plugin::bindings::types::ConnectorError::Rejected(r) => {
                    self.record_refused(ctx, &batch, &r.code, &r.message, now)?;
                    Ok(())
                }
                // Sending the same claims again cannot help: a person must
                // correct them (the field is named, never its value).
                crate::plugin::bindings::types::ConnectorError::InvalidRequest(f) => {
                    self.record_refused(ctx, &batch, "invalid-request", &f.field, now)?;
                    Ok(())
                }
                other => Err(super::connector_error(Ok(other))),
            },
            Err(e) => Err(super::connector_error(Err(e))),
        }
    }

    fn record_sent(
        &self,
        ctx: &RunContext,
        batch: &ClaimBatch,
        receipt: &pay::SubmissionReceipt,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), JobError> {
        ctx.db.transact(|tx| {
            let mut b = batch.clone();
            b.state = BatchState::Sent {
                remote_id: receipt.batch_id.clone(),
                at: now,
            };
            tx.put(&b)?;
            for (claim_id, _) in &batch.claims {
                let Some(mut c) = tx.get::<Claim>(claim_id)? else {
                    continue;
                };
                if c.state == ClaimState::Ready {
                    c.transition(
                        ClaimState::Submitted,
                        ClaimEventSource::System,
                        now,
                        Some(format!("batch {} ({})", batch.id, receipt.batch_id)),
                    )
                    .map_err(|e| JobError::Permanent(e.to_string()))?;
                    c.next_check_at = Some(now + self.first_check);
                    tx.put(&c)?;
                }
            }
            Ok::<(), JobError>(())
        })?;
        Ok(ctx.db.flush()?)
    }

    fn record_refused(
        &self,
        ctx: &RunContext,
        batch: &ClaimBatch,
        code: &str,
        message: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), JobError> {
        ctx.db.transact(|tx| {
            let mut b = batch.clone();
            b.state = BatchState::Refused {
                code: code.to_string(),
            };
            tx.put(&b)?;
            for (claim_id, _) in &batch.claims {
                if let Some(mut c) = tx.get::<Claim>(claim_id)?
                    && c.state == ClaimState::Ready
                {
                    // Back to draft (and held) until a person looks.
                    c.transition(
                        ClaimState::Draft,
                        ClaimEventSource::System,
                        now,
                        Some(format!("batch {} refused: {code}", batch.id)),
                    )
                    .map_err(|e| JobError::Permanent(e.to_string()))?;
                    c.held = true;
                    tx.put(&c)?;
                }
            }
            raise_in(
                tx,
                now,
                &NewTask {
                    kind: "submission-refused".into(),
                    subject: format!(
                        "batch {} to payer {} refused ({code}: {}); its {} claim(s) are held",
                        batch.id,
                        batch.payer_id,
                        short(message),
                        batch.claims.len()
                    ),
                    priority: Priority::High,
                    due: None,
                    assignee: None,
                    payer: None,
                    dedupe_key: format!("submission-refused:{}", batch.id),
                },
            )?;
            Ok::<(), JobError>(())
        })?;
        Ok(ctx.db.flush()?)
    }

    /// Fetches acknowledgments since the stored cursor and applies them.
    async fn acknowledgments(&self, ctx: &RunContext) -> Result<(), JobError> {
        let plugin = connector(&self.plugins, &self.connector, "payer")?;
        for _page in 0..1000 {
            let since = ctx
                .db
                .get::<AckCursor>(&self.connector)?
                .and_then(|c| c.cursor);
            let key = ctx.effect_key(&format!("acks@{}", since.as_deref().unwrap_or("")));
            let page = match plugin.fetch_acknowledgments(&key, since.as_deref()).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => return Err(super::connector_error(Ok(e))),
                Err(e) => return Err(super::connector_error(Err(e))),
            };
            let now = ctx.clock.now();
            ctx.db.transact(|tx| {
                for ack in &page.items {
                    apply_ack(ctx, tx, ack, now)?;
                }
                if page.next.is_some() {
                    tx.put(&AckCursor {
                        connector: self.connector.clone(),
                        cursor: page.next.clone(),
                    })?;
                }
                Ok::<_, StoreError>(())
            })?;
            // Durable before the next call: a connector may delete what the
            // cursor names once it is asked past it (sftp-clearinghouse
            // removes the picked-up file then).
            ctx.db.flush()?;
            if page.next.is_none() || page.next == since {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// A message cut for a task subject.
fn short(m: &str) -> String {
    let m = m.trim();
    if m.chars().count() > 120 {
        format!("{}…", m.chars().take(120).collect::<String>())
    } else {
        m.to_string()
    }
}

/// Calls `f` on every claim in `state`, read through the index a page at
/// a time (claims `f` moves out of the state do not disturb the paging:
/// each page starts after the last index key seen).
fn each_in(
    ctx: &RunContext,
    state: ClaimState,
    mut f: impl FnMut(Claim) -> Result<(), JobError>,
) -> Result<(), JobError> {
    let mut after: Option<String> = None;
    loop {
        let page = claims::in_state(&ctx.db, state, after.as_deref(), 1000)?;
        for c in page.items {
            f(c)?;
        }
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(()),
        }
    }
}

/// A claim's patient and coverage.
pub fn party(ctx: &RunContext, claim: &Claim) -> Result<(Patient, Coverage), JobError> {
    let patient = ctx.db.get::<Patient>(&claim.patient_id)?.ok_or_else(|| {
        JobError::Permanent(format!("claim {}: its patient is not on record", claim.id))
    })?;
    let coverage = ctx.db.get::<Coverage>(&claim.coverage_id)?.ok_or_else(|| {
        JobError::Permanent(format!("claim {}: its coverage is not on record", claim.id))
    })?;
    Ok((patient, coverage))
}

/// The payers that adjudicated `claim` before the one it is billed to, the
/// first payer first, as the connector's `coordination` import gives them:
/// the claim's [`CobBasis`] (made when the payer before paid), that
/// payer's claim's, and so on. Empty for a claim that follows no other.
pub fn prior_payers(
    ctx: &RunContext,
    claim: &Claim,
    patient: &Patient,
) -> Result<Vec<PriorPayer>, JobError> {
    let mut out = Vec::new();
    let mut id = claim.id.clone();
    // A primary, then a secondary: a tertiary claim follows two payers.
    for _ in 0..2 {
        let Some(basis) = ctx.db.get::<CobBasis>(&id)? else {
            break;
        };
        let missing = |what: String| {
            JobError::Permanent(format!(
                "claim {}: {what} it follows is not on record",
                claim.id
            ))
        };
        let earlier = ctx
            .db
            .get::<Claim>(&basis.primary_claim_id)?
            .ok_or_else(|| missing(format!("the claim {}", basis.primary_claim_id)))?;
        let coverage = ctx
            .db
            .get::<Coverage>(&earlier.coverage_id)?
            .ok_or_else(|| missing(format!("the coverage of the claim {}", earlier.id)))?;
        out.push(mapping::prior_payer(
            &basis, &earlier, &coverage, patient, claim,
        ));
        id = earlier.id;
    }
    out.reverse();
    Ok(out)
}

/// Moves claims along by one 999 or 277CA.
fn apply_ack(
    ctx: &RunContext,
    tx: &mut crate::store::Tx<'_>,
    ack: &pay::Acknowledgment,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    use pay::{AcknowledgmentKind as K, AcknowledgmentOutcome as O};
    // The claims it is about: one (277CA) or the whole batch (999).
    let targets: Vec<String> = match (&ack.kind, &ack.claim_id) {
        (K::Claim, Some(clm01)) => with_control_number(&ctx.db, clm01)?
            .into_iter()
            .map(|c| c.id)
            .collect(),
        _ => batch_claims(ctx, &ack.batch_id)?,
    };
    let (source, ok_state) = match ack.kind {
        K::Functional => (ClaimEventSource::Ack999, ClaimState::Accepted),
        K::Claim => (ClaimEventSource::Ack277Ca, ClaimState::Acknowledged),
    };
    let errors: Vec<String> = ack
        .errors
        .iter()
        .map(|e| format!("{}: {}", e.code, short(&e.message)))
        .collect();
    for id in targets {
        let Some(mut c) = tx.get::<Claim>(&id)? else {
            continue;
        };
        let to = match ack.outcome {
            O::Accepted | O::AcceptedWithErrors => ok_state,
            O::Rejected => ClaimState::Rejected,
        };
        if c.state == to || !c.state.can_become(to) {
            continue; // Already there, or further along: an old ack.
        }
        let note = (!errors.is_empty()).then(|| errors.join("; "));
        if c.transition(to, source.clone(), now, note).is_err() {
            continue;
        }
        if let Some(n) = &ack.payer_claim_id {
            c.payer_claim_number = Some(n.clone());
        }
        if to == ClaimState::Rejected {
            c.next_check_at = None;
            let what = if errors.is_empty() {
                "no reason given".to_string()
            } else {
                errors.join("; ")
            };
            raise_in(
                tx,
                now,
                &NewTask {
                    kind: "claim-rejected".into(),
                    subject: format!("claim {id} rejected by the {source}: {what}"),
                    priority: Priority::High,
                    due: None,
                    assignee: None,
                    payer: Some(c.payer_id.clone()),
                    dedupe_key: format!("claim-rejected:{id}:r{}", c.revision),
                },
            )?;
        }
        tx.put(&c)?;
    }
    Ok(())
}

/// The claims of the sent batch the clearinghouse knows as `remote_id`.
fn batch_claims(ctx: &RunContext, remote_id: &str) -> Result<Vec<String>, StoreError> {
    Ok(claim_batch::sent_as(&ctx.db, remote_id)?
        .into_iter()
        .flat_map(|b| b.claims.into_iter().map(|(id, _)| id))
        .collect())
}

impl JobKind for SubmissionJob {
    fn retry_policy(&self) -> super::RetryPolicy {
        self.retry
    }

    fn kind(&self) -> &'static str {
        "submission"
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
            if item == ACKS {
                self.acknowledgments(ctx).await
            } else {
                self.send(ctx, item).await
            }
        })
    }
}

#[cfg(test)]
#[path = "submission_tests.rs"]
mod tests;
