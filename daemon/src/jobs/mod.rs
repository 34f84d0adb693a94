//! The job framework and one module per job kind.
//!
//! A job kind says two things: which work items a run has, and how to work
//! one item. The [`runner`] does the rest the same way for every kind: it
//! records the items before touching any, works them with bounded
//! concurrency, marks each one in flight (flushed) before its external effect
//! and done after, so a run interrupted by a crash resumes exactly the items
//! that remain, and a shutdown stops taking new items and checkpoints.
//!
//! Every item's effect carries an idempotency key ([`RunContext::effect_key`])
//! that stays the same when the item is retried after a crash, so a kind can
//! make its effect happen once (an email with a fixed Message-ID and file
//! name, a posting keyed by trace number).

pub mod digest;
pub mod records;
pub mod registry;
pub mod runner;

pub use records::{ItemState, JobRun, RunOutcome, RunTrigger, WorkItem};

use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::store::{Db, StoreError};

/// A boxed future, so job kinds can be held as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a job or one of its items failed. Messages carry record ids and codes,
/// never patient data: they are stored in the run history and logged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A transient problem (network, a busy server): a later retry may work.
    #[error("transient: {0}")]
    Transient(String),
    /// A permanent problem with this item: retrying will not help.
    #[error("{0}")]
    Permanent(String),
}

impl JobError {
    /// Whether retrying later can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, JobError::Transient(_) | JobError::Store(_))
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
        format!("{}#{item}", self.run_id)
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
    /// [`RunContext::effect_key`].
    fn work_item<'a>(
        &'a self,
        ctx: &'a RunContext,
        item: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>>;
}

/// A job kind shared between the scheduler and manual runs.
pub type SharedJobKind = Arc<dyn JobKind>;
