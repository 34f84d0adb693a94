//! Every app operation as one serde request, and its typed reply.
//!
//! The control socket carries these as they are, and the HTTP API maps its
//! routes onto them, so an operation is added once here and every adapter
//! can reach it. [`App::execute`] dispatches a request to its operation.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use super::accounts::{self, AccountView, AgingReport, PaymentReceipt};
use super::claims::{self, ClaimFilter, ClaimSummary};
use super::dunning::{self, NewPlan, OptOutView, OutboxLine, PlanView};
use super::import::{self, ImportReport};
use super::jobs::{self, HistoryEntry, JobSummary};
use super::plugins::{self, Reloaded};
use super::remits;
use super::tasks::{self, AddTask, TaskFilter};
use super::{App, AppError};
use crate::domain::hold::{Hold, HoldKind};
use crate::domain::posting::Posting;
use crate::domain::{Claim, Task};
use crate::intake::csv_rows::CsvKind;
use crate::jobs::JobRun;
use crate::notify::OutboxStatus;
use crate::posting::PostReport;

/// An operation and its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Request {
    /// [`jobs::list`].
    JobsList,
    /// [`jobs::next`].
    JobsNext {
        /// Job name.
        job: String,
        /// Start after this instant.
        after: DateTime<Utc>,
        /// How many.
        count: usize,
    },
    /// [`jobs::run`].
    JobsRun {
        /// Job name.
        job: String,
    },
    /// [`jobs::history`].
    JobsHistory {
        /// Job name.
        job: String,
        /// At most this many entries (the newest).
        limit: usize,
    },
    /// [`tasks::list`].
    TasksList {
        /// Which tasks.
        #[serde(default)]
        filter: TaskFilter,
    },
    /// [`tasks::show`].
    TasksShow {
        /// Task id.
        id: String,
    },
    /// [`tasks::add`].
    TasksAdd {
        /// The task.
        task: AddTask,
    },
    /// [`tasks::assign`].
    TasksAssign {
        /// Task id.
        id: String,
        /// The biller it goes to.
        to: String,
        /// Who assigns it.
        by: String,
    },
    /// [`tasks::close`].
    TasksClose {
        /// Task id.
        id: String,
        /// Who closes it.
        by: String,
        /// What was done.
        #[serde(default)]
        note: Option<String>,
    },
    /// [`plugins::reload`].
    PluginsReload,
    /// [`import::csv`].
    ImportCsv {
        /// What the file holds.
        kind: CsvKind,
        /// The file's name, for messages.
        file: String,
        /// Its text.
        text: String,
    },
    /// [`import::claims`].
    ImportClaims {
        /// The file's name, for messages.
        file: String,
        /// Its text (X12 is ASCII).
        text: String,
    },
    /// [`claims::list`].
    ClaimsList {
        /// Which claims.
        #[serde(default)]
        filter: ClaimFilter,
    },
    /// [`claims::show`].
    ClaimsShow {
        /// Claim id.
        id: String,
    },
    /// [`claims::set_held`] (hold).
    ClaimsHold {
        /// Claim id.
        id: String,
        /// Who holds it.
        by: String,
    },
    /// [`claims::set_held`] (release).
    ClaimsRelease {
        /// Claim id.
        id: String,
        /// Who releases it.
        by: String,
    },
    /// [`remits::post`].
    RemitsPost {
        /// The file's name, for records and messages.
        file: String,
        /// Its text (X12 is ASCII).
        text: String,
    },
    /// [`remits::review`].
    RemitsReview,
    /// [`remits::approve`].
    RemitsApprove {
        /// Posting id.
        id: String,
        /// Who approves it.
        by: String,
    },
    /// [`accounts::show`].
    AccountsShow {
        /// Account (patient) id.
        id: String,
    },
    /// [`accounts::aging`].
    AccountsAging,
    /// [`accounts::pay`].
    AccountsPay {
        /// Account (patient) id.
        id: String,
        /// Amount in cents (more than 0).
        cents: i64,
        /// The receipt's id: the payment's idempotency key.
        reference: String,
        /// Who took the payment.
        by: String,
    },
    /// [`dunning::hold_add`].
    HoldsAdd {
        /// Account id.
        account: String,
        /// Kind of hold.
        kind: HoldKind,
        /// Why (the biller's words).
        reason: String,
        /// Who places it.
        by: String,
    },
    /// [`dunning::hold_remove`].
    HoldsRemove {
        /// Hold id.
        id: String,
        /// Who removes it.
        by: String,
    },
    /// [`dunning::hold_list`].
    HoldsList {
        /// One account's only.
        #[serde(default)]
        account: Option<String>,
        /// Removed ones too.
        #[serde(default)]
        all: bool,
    },
    /// [`dunning::plan_create`].
    PlansCreate {
        /// The plan.
        plan: NewPlan,
    },
    /// [`dunning::plan_list`].
    PlansList {
        /// One account's only.
        #[serde(default)]
        account: Option<String>,
    },
    /// [`dunning::plan_cancel`].
    PlansCancel {
        /// Plan id.
        id: String,
        /// Who cancels it.
        by: String,
    },
    /// [`dunning::opt_out`].
    PatientsOptOut {
        /// Patient id.
        id: String,
        /// Who records it.
        by: String,
        /// How the patient asked.
        #[serde(default)]
        via: Option<String>,
        /// Withdraw the opt-out instead.
        #[serde(default)]
        undo: bool,
    },
    /// [`dunning::outbox_list`].
    OutboxList {
        /// Only this status.
        #[serde(default)]
        status: Option<OutboxStatus>,
    },
}

/// What an operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reply {
    /// Job summaries ([`Request::JobsList`]).
    Jobs(Vec<JobSummary>),
    /// Fire times ([`Request::JobsNext`]).
    FireTimes(Vec<DateTime<FixedOffset>>),
    /// A finished run ([`Request::JobsRun`]).
    Run(JobRun),
    /// A job's history ([`Request::JobsHistory`]).
    History(Vec<HistoryEntry>),
    /// Tasks ([`Request::TasksList`]).
    Tasks(Vec<Task>),
    /// One task, as it is after the operation ([`Request::TasksShow`],
    /// [`Request::TasksAdd`], [`Request::TasksAssign`],
    /// [`Request::TasksClose`]).
    Task(Task),
    /// What a reload changed ([`Request::PluginsReload`]).
    Reloaded(Reloaded),
    /// What an import did ([`Request::ImportCsv`], [`Request::ImportClaims`]).
    Imported(ImportReport),
    /// Claim summaries ([`Request::ClaimsList`]).
    Claims(Vec<ClaimSummary>),
    /// One claim as it is after the operation ([`Request::ClaimsShow`],
    /// [`Request::ClaimsHold`], [`Request::ClaimsRelease`]).
    Claim(Box<Claim>),
    /// What posting did ([`Request::RemitsPost`]).
    Posted(PostReport),
    /// Postings ([`Request::RemitsReview`]).
    Postings(Vec<Posting>),
    /// One posting as it is after the operation ([`Request::RemitsApprove`]).
    Posting(Box<Posting>),
    /// One account ([`Request::AccountsShow`]).
    Account(Box<AccountView>),
    /// The aging report ([`Request::AccountsAging`]).
    Aging(AgingReport),
    /// A patient payment ([`Request::AccountsPay`]).
    Payment(Box<PaymentReceipt>),
    /// Holds ([`Request::HoldsList`]).
    Holds(Vec<Hold>),
    /// One hold after the operation ([`Request::HoldsAdd`],
    /// [`Request::HoldsRemove`]).
    Hold(Box<Hold>),
    /// Plans ([`Request::PlansList`]).
    Plans(Vec<PlanView>),
    /// One plan after the operation ([`Request::PlansCreate`],
    /// [`Request::PlansCancel`]).
    Plan(Box<PlanView>),
    /// A patient's opt-out ([`Request::PatientsOptOut`]).
    OptOut(OptOutView),
    /// Stored messages ([`Request::OutboxList`]).
    Outbox(Vec<OutboxLine>),
}

impl Request {
    /// The operation's name, for logs (no arguments, so no patient data).
    pub fn name(&self) -> &'static str {
        match self {
            Request::JobsList => "jobs_list",
            Request::JobsNext { .. } => "jobs_next",
            Request::JobsRun { .. } => "jobs_run",
            Request::JobsHistory { .. } => "jobs_history",
            Request::TasksList { .. } => "tasks_list",
            Request::TasksShow { .. } => "tasks_show",
            Request::TasksAdd { .. } => "tasks_add",
            Request::TasksAssign { .. } => "tasks_assign",
            Request::TasksClose { .. } => "tasks_close",
            Request::PluginsReload => "plugins_reload",
            Request::ImportCsv { .. } => "import_csv",
            Request::ImportClaims { .. } => "import_claims",
            Request::ClaimsList { .. } => "claims_list",
            Request::ClaimsShow { .. } => "claims_show",
            Request::ClaimsHold { .. } => "claims_hold",
            Request::ClaimsRelease { .. } => "claims_release",
            Request::RemitsPost { .. } => "remits_post",
            Request::RemitsReview => "remits_review",
            Request::RemitsApprove { .. } => "remits_approve",
            Request::AccountsShow { .. } => "accounts_show",
            Request::AccountsAging => "accounts_aging",
            Request::AccountsPay { .. } => "accounts_pay",
            Request::HoldsAdd { .. } => "holds_add",
            Request::HoldsRemove { .. } => "holds_remove",
            Request::HoldsList { .. } => "holds_list",
            Request::PlansCreate { .. } => "plans_create",
            Request::PlansList { .. } => "plans_list",
            Request::PlansCancel { .. } => "plans_cancel",
            Request::PatientsOptOut { .. } => "patients_opt_out",
            Request::OutboxList { .. } => "outbox_list",
        }
    }
}

impl Reply {
    /// The reply's type, as it is tagged on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Reply::Jobs(_) => "jobs",
            Reply::FireTimes(_) => "fire_times",
            Reply::Run(_) => "run",
            Reply::History(_) => "history",
            Reply::Tasks(_) => "tasks",
            Reply::Task(_) => "task",
            Reply::Reloaded(_) => "reloaded",
            Reply::Imported(_) => "imported",
            Reply::Claims(_) => "claims",
            Reply::Claim(_) => "claim",
            Reply::Posted(_) => "posted",
            Reply::Postings(_) => "postings",
            Reply::Posting(_) => "posting",
            Reply::Account(_) => "account",
            Reply::Aging(_) => "aging",
            Reply::Payment(_) => "payment",
            Reply::Holds(_) => "holds",
            Reply::Hold(_) => "hold",
            Reply::Plans(_) => "plans",
            Reply::Plan(_) => "plan",
            Reply::OptOut(_) => "opt_out",
            Reply::Outbox(_) => "outbox",
        }
    }
}

impl App {
    /// Runs one request. Store work runs on the blocking pool, so this may
    /// be awaited on any runtime thread.
    pub async fn execute(&self, req: Request) -> Result<Reply, AppError> {
        match req {
            Request::JobsRun { job } => jobs::run(self, &job).await.map(Reply::Run),
            Request::PluginsReload => plugins::reload(self).await.map(Reply::Reloaded),
            Request::JobsList => self.blocking(|a| jobs::list(a).map(Reply::Jobs)).await,
            Request::JobsNext { job, after, count } => {
                self.blocking(move |a| {
                    jobs::next(a.config(), &job, after, count).map(Reply::FireTimes)
                })
                .await
            }
            Request::JobsHistory { job, limit } => {
                self.blocking(move |a| jobs::history(a, &job, limit).map(Reply::History))
                    .await
            }
            Request::TasksList { filter } => {
                self.blocking(move |a| tasks::list(a, &filter).map(Reply::Tasks))
                    .await
            }
            Request::TasksShow { id } => {
                self.blocking(move |a| tasks::show(a, &id).map(Reply::Task))
                    .await
            }
            Request::TasksAdd { task } => {
                self.blocking(move |a| tasks::add(a, task).map(Reply::Task))
                    .await
            }
            Request::TasksAssign { id, to, by } => {
                self.blocking(move |a| tasks::assign(a, &id, &to, &by).map(Reply::Task))
                    .await
            }
            Request::ImportCsv { kind, file, text } => {
                self.blocking(move |a| import::csv(a, kind, &file, &text).map(Reply::Imported))
                    .await
            }
            Request::ImportClaims { file, text } => {
                self.blocking(move |a| {
                    import::claims(a, &file, text.as_bytes()).map(Reply::Imported)
                })
                .await
            }
            Request::ClaimsList { filter } => {
                self.blocking(move |a| claims::list(a, &filter).map(Reply::Claims))
                    .await
            }
            Request::ClaimsShow { id } => {
                self.blocking(move |a| claims::show(a, &id).map(|c| Reply::Claim(Box::new(c))))
                    .await
            }
            Request::ClaimsHold { id, by } => {
                self.blocking(move |a| {
                    claims::set_held(a, &id, true, &by).map(|c| Reply::Claim(Box::new(c)))
                })
                .await
            }
            Request::ClaimsRelease { id, by } => {
                self.blocking(move |a| {
                    claims::set_held(a, &id, false, &by).map(|c| Reply::Claim(Box::new(c)))
                })
                .await
            }
            Request::RemitsPost { file, text } => {
                self.blocking(move |a| remits::post(a, &file, text.as_bytes()).map(Reply::Posted))
                    .await
            }
            Request::RemitsReview => {
                self.blocking(|a| remits::review(a).map(Reply::Postings))
                    .await
            }
            Request::RemitsApprove { id, by } => {
                self.blocking(move |a| {
                    remits::approve(a, &id, &by).map(|p| Reply::Posting(Box::new(p)))
                })
                .await
            }
            Request::AccountsShow { id } => {
                self.blocking(move |a| accounts::show(a, &id).map(|v| Reply::Account(Box::new(v))))
                    .await
            }
            Request::AccountsAging => {
                self.blocking(|a| accounts::aging(a).map(Reply::Aging))
                    .await
            }
            Request::AccountsPay {
                id,
                cents,
                reference,
                by,
            } => {
                self.blocking(move |a| {
                    accounts::pay(a, &id, cents, &reference, &by)
                        .map(|r| Reply::Payment(Box::new(r)))
                })
                .await
            }
            Request::HoldsAdd {
                account,
                kind,
                reason,
                by,
            } => {
                self.blocking(move |a| {
                    dunning::hold_add(a, &account, kind, &reason, &by)
                        .map(|h| Reply::Hold(Box::new(h)))
                })
                .await
            }
            Request::HoldsRemove { id, by } => {
                self.blocking(move |a| {
                    dunning::hold_remove(a, &id, &by).map(|h| Reply::Hold(Box::new(h)))
                })
                .await
            }
            Request::HoldsList { account, all } => {
                self.blocking(move |a| {
                    dunning::hold_list(a, account.as_deref(), all).map(Reply::Holds)
                })
                .await
            }
            Request::PlansCreate { plan } => {
                self.blocking(move |a| {
                    dunning::plan_create(a, &plan).map(|p| Reply::Plan(Box::new(p)))
                })
                .await
            }
            Request::PlansList { account } => {
                self.blocking(move |a| dunning::plan_list(a, account.as_deref()).map(Reply::Plans))
                    .await
            }
            Request::PlansCancel { id, by } => {
                self.blocking(move |a| {
                    dunning::plan_cancel(a, &id, &by).map(|p| Reply::Plan(Box::new(p)))
                })
                .await
            }
            Request::PatientsOptOut { id, by, via, undo } => {
                self.blocking(move |a| {
                    dunning::opt_out(a, &id, &by, via.as_deref(), undo).map(Reply::OptOut)
                })
                .await
            }
            Request::OutboxList { status } => {
                self.blocking(move |a| dunning::outbox_list(a, status).map(Reply::Outbox))
                    .await
            }
            Request::TasksClose { id, by, note } => {
                self.blocking(move |a| tasks::close(a, &id, &by, note.as_deref()).map(Reply::Task))
                    .await
            }
        }
    }

    /// Runs `op` on the blocking pool (store reads and writes block).
    async fn blocking<F>(&self, op: F) -> Result<Reply, AppError>
    where
        F: FnOnce(&App) -> Result<Reply, AppError> + Send + 'static,
    {
        let app = self.clone();
        tokio::task::spawn_blocking(move || op(&app))
            .await
            .map_err(|e| AppError::Unavailable(format!("the operation failed: {e}")))?
    }
}
