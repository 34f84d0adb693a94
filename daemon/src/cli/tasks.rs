//! `billd tasks`: the biller task queue from the command line.

use clap::Subcommand;
use std::path::Path;
use std::process::ExitCode;

use std::io::Write;

use super::{Failure, VerbResult, load_config};
use crate::config::Config;
use crate::domain::task::{self as tasks, Priority, Task, TaskError, TaskStatus};
use crate::store::{Db, StoreError};

/// Task verbs.
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Open tasks (or all with --all), oldest first.
    List {
        /// Include closed tasks.
        #[arg(long)]
        all: bool,
        /// Only tasks assigned to this biller.
        #[arg(long)]
        assignee: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One task with its notes.
    Show {
        /// Task id (T000001).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Raise a task by hand (for work billd did not find itself).
    Add {
        /// Kind, for routing to billers (for example `denial`).
        #[arg(long)]
        kind: String,
        /// What it is about: ids and codes, no patient details.
        #[arg(long)]
        subject: String,
        /// Urgency.
        #[arg(long, value_enum, default_value_t = PriorityArg::Normal)]
        priority: PriorityArg,
        /// Biller it is for.
        #[arg(long)]
        assignee: Option<String>,
    },
    /// Close a task.
    Close {
        /// Task id.
        id: String,
        /// A note saying what was done.
        #[arg(long)]
        note: Option<String>,
        /// Who closed it [default: $USER].
        #[arg(long)]
        by: Option<String>,
    },
}

/// Task urgency on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PriorityArg {
    /// Whenever.
    Low,
    /// Normal work.
    Normal,
    /// Today.
    High,
    /// Now.
    Urgent,
}

impl From<PriorityArg> for Priority {
    fn from(p: PriorityArg) -> Self {
        match p {
            PriorityArg::Low => Priority::Low,
            PriorityArg::Normal => Priority::Normal,
            PriorityArg::High => Priority::High,
            PriorityArg::Urgent => Priority::Urgent,
        }
    }
}

/// Runs a tasks verb: on the store directly, or through the running daemon
/// when it holds the store.
pub fn run(cfg_flag: Option<&Path>, cmd: TasksCommand) -> VerbResult {
    let cfg = load_config(cfg_flag)?;
    match crate::daemon::open_store(&cfg) {
        Ok(db) => execute(&cfg, &db, cmd, &mut std::io::stdout().lock()),
        Err(StoreError::Locked { .. }) => crate::control::forward(&cfg),
        Err(e) => Err(e.into()),
    }
}

/// Runs a tasks verb against `db`, writing its output to `out`.
pub fn execute(cfg: &Config, db: &Db, cmd: TasksCommand, out: &mut dyn Write) -> VerbResult {
    let tz = cfg.practice.timezone;
    let when = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
    };
    match cmd {
        TasksCommand::List {
            all,
            assignee,
            json,
        } => {
            let list: Vec<Task> = tasks::all(db)?
                .into_iter()
                .filter(|t| all || t.status == TaskStatus::Open)
                .filter(|t| {
                    assignee
                        .as_ref()
                        .is_none_or(|a| t.assignee.as_ref() == Some(a))
                })
                .collect();
            if json {
                say!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&list).map_err(anyhow::Error::from)?
                );
                return Ok(ExitCode::SUCCESS);
            }
            say!(
                out,
                "{:<8} {:<7} {:<8} {:<12} {:<17} {:<10} SUBJECT",
                "ID",
                "STATUS",
                "PRIORITY",
                "KIND",
                "CREATED",
                "ASSIGNEE"
            );
            for t in &list {
                say!(
                    out,
                    "{:<8} {:<7} {:<8} {:<12} {:<17} {:<10} {}",
                    t.id,
                    format!("{:?}", t.status).to_lowercase(),
                    t.priority.name(),
                    t.kind,
                    when(t.created_at),
                    t.assignee.as_deref().unwrap_or("-"),
                    t.subject
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Show { id, json } => {
            let t = db
                .get::<Task>(&id)?
                .ok_or_else(|| Failure::Runtime(TaskError::NotFound(id.clone()).into()))?;
            if json {
                say!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&t).map_err(anyhow::Error::from)?
                );
                return Ok(ExitCode::SUCCESS);
            }
            say!(out, "task      {}", t.id);
            say!(out, "kind      {}", t.kind);
            say!(out, "subject   {}", t.subject);
            say!(out, "status    {:?}", t.status);
            say!(out, "priority  {:?}", t.priority);
            say!(out, "created   {}", when(t.created_at));
            if let Some(d) = t.due {
                say!(out, "due       {}", when(d));
            }
            say!(out, "assignee  {}", t.assignee.as_deref().unwrap_or("-"));
            for n in &t.notes {
                say!(out, "note      {} {}: {}", when(n.at), n.author, n.text);
            }
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Add {
            kind,
            subject,
            priority,
            assignee,
        } => {
            if let Some(a) = &assignee
                && !cfg.billers.iter().any(|b| &b.name == a)
            {
                return Err(Failure::Config(format!("no biller named `{a}`")));
            }
            let now = chrono::Utc::now();
            let (t, _) = tasks::raise(
                db,
                now,
                tasks::NewTask {
                    kind,
                    subject,
                    priority: priority.into(),
                    due: None,
                    assignee,
                    dedupe_key: format!(
                        "manual/{}/{}",
                        now.timestamp_nanos_opt().unwrap_or_default(),
                        std::process::id()
                    ),
                },
            )?;
            db.flush()?;
            say!(out, "raised {}", t.id);
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Close { id, note, by } => {
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "unknown".into());
            let t = tasks::close(db, &id, chrono::Utc::now(), &by, note.as_deref())
                .map_err(|e| Failure::Runtime(e.into()))?;
            say!(out, "closed {}", t.id);
            Ok(ExitCode::SUCCESS)
        }
    }
}
