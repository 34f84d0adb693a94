//! The job framework and one module per job kind.
//!
//! A job kind says two things: which work items a run has, and how to work
//! one item. The [`runner`] does the rest the same way for every kind: it
//! records the items before touching any, works them with bounded
//! concurrency, marks each one in flight (flushed) before its external effect
//! and done after, so a run interrupted by a crash resumes exactly the items
//! that remain, and a shutdown stops taking new items and checkpoints.
//!
//! Every item's effect carries an idempotency key ([`RunContext::effect_key`],
//! or [`RunContext::scoped_effect_key`] for a business object across runs)
//! that stays the same when the item is retried after a crash, so a kind can
//! make its effect happen once (an email with a fixed Message-ID and file
//! name, a posting keyed by trace number). A failing item is retried with
//! backoff per its kind's [`RetryPolicy`]; one that runs out of attempts, or
//! needs a person, raises one biller task per job and cause.
//!
//! Kinds are listed in [`registry`].

pub mod business_days;
pub mod claim_status;
pub mod collections;
mod commit_pipeline;
pub mod cursor;
pub mod digest;
pub mod dunning;
pub mod ehr_sync;
pub mod eligibility;
pub mod occurrence;
pub mod prune;
pub mod records;
pub mod registry;
pub mod remittance_posting;
pub mod runner;
pub mod submission;

pub use records::{ItemState, JobRun, RunOutcome, RunTrigger, WorkItem};

use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::store::{Db, StoreError};

/// A boxed future, so job kinds can be held as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a job or one of its items failed. Messages carry record ids and codes,
/// never patient data: they are stored in the run history and logged.
///
/// The variant tells the runner what to do with an item: retry it with
/// backoff ([`JobError::Transient`], [`JobError::Store`]), wait as told
/// ([`JobError::RateLimited`]), give up on it ([`JobError::Permanent`]), or
/// give up and hand the problem to a person ([`JobError::NeedsPerson`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A transient problem (network, a busy server): a later retry may work.
    #[error("transient: {0}")]
    Transient(String),
    /// The other side asked us to slow down: retry after the delay.
    #[error("rate limited (retry after {}s): {message}", retry_after.as_secs())]
    RateLimited {
        /// How long to wait before the next attempt.
        retry_after: Duration,
        /// What the other side said.
        message: String,
    },
    /// A permanent problem with this item: retrying will not help.
    #[error("{0}")]
    Permanent(String),
    /// Retrying will not help until a person acts (credentials expired, a
    /// connector refused its configuration).
    #[error("needs a person ({cause}): {message}")]
    NeedsPerson {
        /// A stable name for the cause, the same for every item it hits
        /// (for example `authentication`): one task is raised per job and
        /// cause.
        cause: String,
        /// What happened.
        message: String,
    },
}

impl JobError {
    /// Whether retrying later can help.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            JobError::Transient(_) | JobError::Store(_) | JobError::RateLimited { .. }
        )
    }

    /// A stable name of the cause, for one biller task per job and cause.
    pub fn cause(&self) -> String {
        match self {
            JobError::Store(_) => "store".into(),
            JobError::Transient(_) => "unavailable".into(),
            JobError::RateLimited { .. } => "rate-limited".into(),
            JobError::Permanent(_) => "permanent".into(),
            JobError::NeedsPerson { cause, .. } => cause.clone(),
        }
    }
}

/// A connector's answer or a failed call, as the runner's item error: what
/// a retry can fix is transient, a rate limit keeps its delay, credentials
/// and an unsupported operation need a person, a refusal on the merits is
/// permanent.
pub fn connector_error(
    call: Result<crate::plugin::bindings::types::ConnectorError, crate::plugin::CallError>,
) -> JobError {
    use crate::plugin::bindings::types::ConnectorError as E;
    match call {
        Err(e) if e.retryable() => JobError::Transient(e.to_string()),
        Err(e) => JobError::NeedsPerson {
            cause: "plugin-failed".into(),
            message: e.to_string(),
        },
        Ok(E::Transient(m)) => JobError::Transient(m),
        Ok(E::RateLimited(r)) => JobError::RateLimited {
            retry_after: std::time::Duration::from_secs(r.retry_after_seconds.into()),
            message: r.message,
        },
        Ok(E::Authentication(m)) => JobError::NeedsPerson {
            cause: "authentication".into(),
            message: m,
        },
        Ok(E::Unsupported(m)) => JobError::NeedsPerson {
            cause: "unsupported".into(),
            message: m,
        },
        Ok(E::InvalidRequest(f)) => {
            JobError::Permanent(format!("invalid request: {}: {}", f.field, f.message))
        }
        Ok(E::Rejected(r)) => JobError::Permanent(format!("rejected {}: {}", r.code, r.message)),
    }
}

/// The `role` (payer, EHR, collections) connector `name` from the loaded
/// plugins, or the error that asks a person to load it.
pub fn connector(
    plugins: &Option<Arc<crate::plugin::PluginRegistry>>,
    name: &str,
    role: &str,
) -> Result<Arc<crate::plugin::LoadedPlugin>, JobError> {
    plugins
        .as_ref()
        .and_then(|p| p.get(name))
        .ok_or_else(|| JobError::NeedsPerson {
            cause: "no-connector".into(),
            message: format!("the {role} connector `{name}` is not loaded"),
        })
}

/// Refuses a connector name the loaded plugins do not have (when plugins
/// are loaded: a configuration check has none).
pub fn check_connector(
    services: &registry::Services,
    name: &str,
) -> Result<(), registry::BuildError> {
    match &services.plugins {
        Some(p) if p.get(name).is_none() => Err(registry::BuildError {
            key: "connector".into(),
            reason: format!("no plugin named `{name}` is configured"),
        }),
        _ => Ok(()),
    }
}

/// How often and how patiently the runner retries a failing item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay before the second attempt; each later one doubles it.
    pub base_delay: Duration,
    /// The longest delay between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts, 2 s then 4, 8 and 16 s (each with jitter), at most
    /// 10 minutes apart: a blip is ridden out within half a minute, a
    /// longer outage fails the item and tells a biller.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `next` (2 for the first retry), before
    /// jitter: `base * 2^(next-2)`, capped.
    pub fn backoff(&self, next: u32) -> Duration {
        let doublings = next.saturating_sub(2).min(30);
        self.base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    /// [`RetryPolicy::backoff`] with "equal jitter": a random delay in its
    /// upper half, so retries of many items spread out while each wait
    /// still grows from one attempt to the next.
    pub fn jittered(&self, next: u32) -> Duration {
        use rand::Rng as _;
        let full = self.backoff(next);
        let half = full / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=full - half)
    }
}

impl RetryPolicy {
    /// The policy a job's `max_attempts` and `retry_delay` params ask for
    /// (the default's where absent); `key` names the param at fault.
    pub fn from_params(
        max_attempts: Option<u32>,
        retry_delay: Option<&str>,
    ) -> Result<RetryPolicy, registry::BuildError> {
        let mut p = RetryPolicy::default();
        if let Some(n) = max_attempts {
            if !(1..=20).contains(&n) {
                return Err(registry::BuildError {
                    key: "max_attempts".into(),
                    reason: "must be 1 to 20".into(),
                });
            }
            p.max_attempts = n;
        }
        if let Some(text) = retry_delay {
            p.base_delay = humantime::parse_duration(text)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| registry::BuildError {
                    key: "retry_delay".into(),
                    reason: format!("`{text}` is not a duration above zero (\"2s\", \"1m\")"),
                })?;
        }
        Ok(p)
    }
}

/// What a job kind sees while it runs.
#[derive(Clone)]
pub struct RunContext {
    /// The store.
    pub db: Db,
    /// The clock.
    pub clock: SharedClock,
    /// The job's configured name.
    pub job: String,
    /// The run's id.
    pub run_id: String,
    /// The scheduled instant the run serves, if any.
    pub occurrence: Option<DateTime<Utc>>,
    /// Cancelled when the daemon shuts down; long items should watch it.
    pub cancel: CancellationToken,
}

impl RunContext {
    /// The idempotency key of one item's effect: the same on every retry of
    /// this item in this run, different in every other run.
    pub fn effect_key(&self, item: &str) -> String {
        Self::effect_key_in(&self.run_id, item)
    }

    /// [`RunContext::effect_key`] of run `run_id`, for work a run hands to
    /// a task of its own (which cannot borrow the context).
    pub fn effect_key_in(run_id: &str, item: &str) -> String {
        format!("{run_id}#{item}")
    }

    /// The idempotency key of an effect on a business object rather than a
    /// run: the same in every run of this job for the same `scope` (for
    /// example [`crate::domain::Claim::effect_scope`], claim id and
    /// revision), so a claim resubmitted by a later run reuses its key
    /// until the claim itself changes.
    pub fn scoped_effect_key(&self, scope: &str) -> String {
        format!("{}#{scope}", self.job)
    }
}

/// A kind of billing job.
pub trait JobKind: Send + Sync + 'static {
    /// The kind's name as written in `[[job]] kind = ...`.
    fn kind(&self) -> &'static str;
    /// Lists the run's work items as stable keys (ids, not patient data).
    fn list_items<'a>(
        &'a self,
        ctx: &'a RunContext,
    ) -> BoxFuture<'a, Result<Vec<String>, JobError>>;
    /// Works one item. Called again with the same key after a crash if the
    /// first attempt may not have finished, so its effect must be keyed by
    /// [`RunContext::effect_key`] or [`RunContext::scoped_effect_key`].
    fn work_item<'a>(
        &'a self,
        ctx: &'a RunContext,
        item: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>>;
    /// How many items one call of [`JobKind::work_batch`] takes (1: the
    /// kind works items one by one).
    fn batch_size(&self) -> usize {
        1
    }
    /// Works several items in one call (a claim-status inquiry carries a
    /// list); one result per item, in order. The default works them one by
    /// one with [`JobKind::work_item`].
    fn work_batch<'a>(
        &'a self,
        ctx: &'a RunContext,
        items: &'a [String],
    ) -> BoxFuture<'a, Vec<Result<(), JobError>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(self.work_item(ctx, item).await);
            }
            out
        })
    }
    /// How failing items are retried.
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    /// Whether working an item has an effect outside billd that a restart
    /// must know may have happened (a claim submitted, an email sent, a
    /// placement): the runner then makes each attempt durable (flushed)
    /// before the kind acts, and its outcome right after. Kinds that only
    /// ask (an eligibility or claim-status inquiry) return `false`: their
    /// items' states are written without a flush of their own, as their
    /// answers are, so a crash at worst asks again.
    fn effects_outside(&self) -> bool {
        true
    }
}

/// A job kind shared between the scheduler and manual runs.
pub type SharedJobKind = Arc<dyn JobKind>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_errors_become_the_runner_s_item_errors() {
        use crate::plugin::CallError;
        use crate::plugin::bindings::types::{self as wit, ConnectorError as E};
        let rl = connector_error(Ok(E::RateLimited(wit::RateLimit {
            retry_after_seconds: 30,
            message: "busy".into(),
        })));
        assert!(
            matches!(rl, JobError::RateLimited { retry_after, .. } if retry_after.as_secs() == 30)
        );
        assert!(connector_error(Ok(E::Transient("timeout".into()))).is_transient());
        assert_eq!(
            connector_error(Ok(E::Authentication("expired".into()))).cause(),
            "authentication"
        );
        assert!(
            !connector_error(Ok(E::Rejected(wit::Rejection {
                code: "72".into(),
                message: "invalid member id".into()
            })))
            .is_transient()
        );
        let deadline = CallError::Deadline {
            plugin: "p".into(),
            limit: std::time::Duration::from_secs(20),
        };
        assert!(connector_error(Err(deadline)).is_transient());
    }
}
