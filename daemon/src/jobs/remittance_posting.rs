//! The `remittance-posting` job: 835s onto the ledger, from an inbox
//! directory and from the payer connector's `fetch-remittances`.
//!
//! Each file in the inbox is one work item. It is posted transaction set
//! by transaction set (streamed, bounded memory) through
//! [`crate::posting`], then moved to the `posted` directory; a file with
//! anything quarantined (a set that does not balance, a file that cannot
//! be read) is moved whole to the `quarantine` directory, with a task.
//! Posting is keyed by payer, TRN02 and CLP01, so a retry, or a crash
//! before the move, posts nothing twice.
//!
//! With a `connector`, one more item fetches remittances since the stored
//! cursor, under an idempotency key that stays the same on a retry (the
//! run and the cursor), posts each, and only then moves the cursor.
//!
//! Params: `inbox` (a directory), `quarantine` (default
//! `<inbox>/quarantine`), `posted` (default `<inbox>/posted`),
//! `connector`; posting modes `mode` (`automatic`, the default, or
//! `review`), `review_payers` and `automatic_payers` (payer identifiers as
//! the 835 names them); `max_attempts` and `retry_delay`.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::registry::{BuildError, JobSetup, KindEntry, Services, check_params, parse_params};
use super::{BoxFuture, JobError, JobKind, RunContext};
use super::{check_connector, connector};
use crate::domain::posting::{PostingMode, PostingModes};
use crate::domain::task::raise;
use crate::domain::{NewTask, Priority};
use crate::plugin::PluginRegistry;
use crate::posting::{self, PostError};
use crate::store::Record;

/// `[job.params]` of a remittance-posting job.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemittancePostingParams {
    /// The directory 835 files arrive in.
    #[serde(default)]
    pub inbox: Option<PathBuf>,
    /// Where a bad file is moved whole (default `<inbox>/quarantine`).
    #[serde(default)]
    pub quarantine: Option<PathBuf>,
    /// Where a posted file is moved (default `<inbox>/posted`).
    #[serde(default)]
    pub posted: Option<PathBuf>,
    /// The payer connector to fetch remittances from.
    #[serde(default)]
    pub connector: Option<String>,
    /// The posting mode of payers not listed (default automatic).
    #[serde(default)]
    pub mode: Option<PostingMode>,
    /// Payers whose postings wait for review.
    #[serde(default)]
    pub review_payers: Vec<String>,
    /// Payers that post automatically (when `mode` is review).
    #[serde(default)]
    pub automatic_payers: Vec<String>,
    /// Attempts per work item before it fails (default 5).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Delay before the first retry, doubling after (default `"2s"`).
    #[serde(default)]
    pub retry_delay: Option<String>,
}

impl RemittancePostingParams {
    /// The posting mode of each payer.
    pub fn modes(&self) -> PostingModes {
        let mut m = PostingModes {
            default: self.mode.unwrap_or_default(),
            ..PostingModes::default()
        };
        for p in &self.review_payers {
            m.payers.insert(p.clone(), PostingMode::Review);
        }
        for p in &self.automatic_payers {
            m.payers.insert(p.clone(), PostingMode::Automatic);
        }
        m
    }
}

/// The remittance-posting kind in the job registry.
pub const KIND: KindEntry = KindEntry {
    name: "remittance-posting",
    check: check_params::<RemittancePostingParams>,
    build: |params, setup, services| {
        let params = parse_params::<RemittancePostingParams>(params)?;
        Ok(Arc::new(RemittancePostingJob::new(
            params, setup, services,
        )?))
    },
};

/// Where the connector's remittances were read up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemitCursor {
    /// The connector.
    pub connector: String,
    /// Its cursor.
    pub cursor: Option<String>,
}

impl Record for RemitCursor {
    const COLLECTION: &'static str = "remit_cursors";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.connector.clone()
    }
}

/// The directories of the inbox.
#[derive(Debug, Clone)]
struct Dirs {
    inbox: PathBuf,
    quarantine: PathBuf,
    posted: PathBuf,
}

/// A configured remittance-posting job.
pub struct RemittancePostingJob {
    dirs: Option<Dirs>,
    connector: Option<String>,
    plugins: Option<Arc<PluginRegistry>>,
    modes: PostingModes,
    retry: super::RetryPolicy,
}

impl std::fmt::Debug for RemittancePostingJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemittancePostingJob")
            .field("inbox", &self.dirs.as_ref().map(|d| &d.inbox))
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

/// The work item that fetches from the connector.
const CONNECTOR_ITEM: &str = "connector";
/// The prefix of a file's work item.
const FILE_ITEM: &str = "file:";

impl RemittancePostingJob {
    /// Builds the job from its params.
    pub fn new(
        params: RemittancePostingParams,
        _setup: &JobSetup,
        services: &Services,
    ) -> Result<Self, BuildError> {
        if params.inbox.is_none() && params.connector.is_none() {
            return Err(BuildError {
                key: "inbox".into(),
                reason: "give an `inbox` directory, a `connector`, or both".into(),
            });
        }
        if let Some(c) = &params.connector {
            check_connector(services, c)?;
        }
        let at = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                services.base_dir.join(p)
            }
        };
        let dirs = params.inbox.as_deref().map(|inbox| {
            let inbox = at(inbox);
            Dirs {
                quarantine: params
                    .quarantine
                    .as_deref()
                    .map_or_else(|| inbox.join("quarantine"), at),
                posted: params
                    .posted
                    .as_deref()
                    .map_or_else(|| inbox.join("posted"), at),
                inbox,
            }
        });
        if dirs.is_none() && (params.quarantine.is_some() || params.posted.is_some()) {
            return Err(BuildError {
                key: "inbox".into(),
                reason: "`quarantine` and `posted` need an `inbox`".into(),
            });
        }
        let retry =
            super::RetryPolicy::from_params(params.max_attempts, params.retry_delay.as_deref())?;
        Ok(RemittancePostingJob {
            modes: params.modes(),
            dirs,
            connector: params.connector,
            plugins: services.plugins.clone(),
            retry,
        })
    }

    fn list(&self) -> Result<Vec<String>, JobError> {
        let mut items = Vec::new();
        if let Some(d) = &self.dirs {
            let read = std::fs::read_dir(&d.inbox)
                .map_err(|e| JobError::Transient(format!("inbox {}: {e}", d.inbox.display())))?;
            let mut names = Vec::new();
            for entry in read {
                let entry = entry.map_err(|e| JobError::Transient(e.to_string()))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_file = entry.file_type().is_ok_and(|t| t.is_file());
                if is_file && !name.starts_with('.') {
                    names.push(name);
                }
            }
            names.sort();
            items.extend(names.into_iter().map(|n| format!("{FILE_ITEM}{n}")));
        }
        if self.connector.is_some() {
            items.push(CONNECTOR_ITEM.to_string());
        }
        Ok(items)
    }

    fn post_file(&self, ctx: &RunContext, name: &str) -> Result<(), JobError> {
        let Some(d) = &self.dirs else {
            return Err(JobError::Permanent("no inbox is configured".into()));
        };
        let path = d.inbox.join(name);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            // Moved by an earlier attempt of this item.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(JobError::Transient(format!("{}: {e}", path.display()))),
        };
        let now = ctx.clock.now();
        let report = posting::post(
            &ctx.db,
            now,
            name,
            std::io::BufReader::with_capacity(1 << 16, file),
            &self.modes,
        )
        .map_err(post_error)?;
        if report.quarantined.is_empty() {
            move_into(&path, &d.posted, name)?;
            return Ok(());
        }
        let to = move_into(&path, &d.quarantine, name)?;
        let tasks: Vec<&str> = report
            .quarantined
            .iter()
            .map(|q| q.task_id.as_str())
            .collect();
        raise(
            &ctx.db,
            now,
            NewTask {
                kind: "quarantined-835".into(),
                subject: format!(
                    "835 file {name} moved to {} unposted in part or whole: {} part(s) quarantined (tasks {})",
                    to.display(),
                    report.quarantined.len(),
                    tasks.join(", ")
                ),
                priority: Priority::Urgent,
                due: None,
                assignee: None,
                payer: None,
                dedupe_key: format!("quarantine-file:{}", to.display()),
            },
        )?;
        Ok(())
    }

    async fn fetch(&self, ctx: &RunContext) -> Result<(), JobError> {
        let Some(name) = &self.connector else {
            return Ok(());
        };
        let plugin = connector(&self.plugins, name, "payer")?;
        for _page in 0..1000 {
            let since = ctx.db.get::<RemitCursor>(name)?.and_then(|c| c.cursor);
            let key = ctx.effect_key(&format!("remits@{}", since.as_deref().unwrap_or("")));
            let page = match plugin.fetch_remittances(&key, since.as_deref()).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => return Err(super::connector_error(Ok(e))),
                Err(e) => return Err(super::connector_error(Err(e))),
            };
            let now = ctx.clock.now();
            let origin = format!("connector:{name}");
            for r in page.items {
                match crate::mapping::era_from(r) {
                    Ok(era) => {
                        let problems = era.money_problems();
                        if problems.is_empty() {
                            posting::post_era(&ctx.db, now, &origin, &era, &self.modes)
                                .map_err(post_error)?;
                        } else {
                            let text = serde_json::to_string(&era).unwrap_or_default();
                            posting::quarantine(&ctx.db, now, &origin, problems, text)
                                .map_err(post_error)?;
                        }
                    }
                    Err(e) => {
                        posting::quarantine(
                            &ctx.db,
                            now,
                            &origin,
                            vec![e.to_string()],
                            format!("{origin}: {e} (cursor {})", since.as_deref().unwrap_or("")),
                        )
                        .map_err(post_error)?;
                    }
                }
            }
            // What was posted lasts before the cursor moves past it.
            ctx.db.flush()?;
            if page.next.is_some() {
                ctx.db.put(&RemitCursor {
                    connector: name.clone(),
                    cursor: page.next.clone(),
                })?;
                ctx.db.flush()?;
            }
            if page.next.is_none() || page.next == since {
                return Ok(());
            }
        }
        Ok(())
    }
}

fn post_error(e: PostError) -> JobError {
    match e {
        PostError::Store(e) => JobError::Store(e),
        other => JobError::Permanent(other.to_string()),
    }
}

/// Moves `from` into directory `dir` as `name` (or `name.1`, `name.2`, ...
/// when taken); returns where it went.
fn move_into(from: &Path, dir: &Path, name: &str) -> Result<PathBuf, JobError> {
    let fail = |e: std::io::Error, what: &Path| {
        JobError::Transient(format!(
            "moving {} to {}: {e}",
            from.display(),
            what.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e, dir))?;
    let mut to = dir.join(name);
    let mut n = 0;
    while to.exists() {
        n += 1;
        to = dir.join(format!("{name}.{n}"));
    }
    if std::fs::rename(from, &to).is_err() {
        // Another file system: copy, make it durable, then remove.
        std::fs::copy(from, &to).map_err(|e| fail(e, &to))?;
        std::fs::File::open(&to)
            .and_then(|f| f.sync_all())
            .map_err(|e| fail(e, &to))?;
        std::fs::remove_file(from).map_err(|e| fail(e, from))?;
    }
    Ok(to)
}

impl JobKind for RemittancePostingJob {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn list_items<'a>(
        &'a self,
        _ctx: &'a RunContext,
    ) -> BoxFuture<'a, Result<Vec<String>, JobError>> {
        Box::pin(async move { self.list() })
    }

    fn work_item<'a>(
        &'a self,
        ctx: &'a RunContext,
        item: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            if item == CONNECTOR_ITEM {
                return self.fetch(ctx).await;
            }
            let Some(name) = item.strip_prefix(FILE_ITEM) else {
                return Err(JobError::Permanent(format!("unknown work item {item}")));
            };
            self.post_file(ctx, name)
        })
    }

    fn retry_policy(&self) -> super::RetryPolicy {
        self.retry
    }
}

#[cfg(test)]
mod tests;
