//! `billd tasks`: the biller task queue from the command line.

use clap::Subcommand;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::{Backend, VerbResult, load_config};
use crate::app::tasks::{AddTask, TaskFilter};
use crate::app::{Reply, Request};
use crate::domain::task::Priority;

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
        /// Only tasks of this kind (for example `denial`).
        #[arg(long)]
        kind: Option<String>,
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
    /// Assign a task to a configured biller.
    Assign {
        /// Task id.
        id: String,
        /// The biller it goes to.
        #[arg(long, value_name = "BILLER")]
        to: String,
        /// Who assigns it [default: $USER].
        #[arg(long)]
        by: Option<String>,
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

/// Who is acting: `--by`, else `$USER`, else `unknown`.
pub(super) fn person(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Runs a tasks verb: on the store directly, or through the running daemon
/// when it holds the store.
pub fn run(cfg_flag: Option<&Path>, cmd: TasksCommand) -> VerbResult {
    let cfg = Arc::new(load_config(cfg_flag)?);
    let mut backend = Backend::open(&cfg)?;
    let out = &mut std::io::stdout().lock();
    let tz = cfg.practice.timezone;
    let when = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
    };
    match cmd {
        TasksCommand::List {
            all,
            assignee,
            kind,
            json,
        } => {
            let filter = TaskFilter {
                include_closed: all,
                assignee,
                kind,
            };
            let list = call!(backend, Request::TasksList { filter }, Reply::Tasks);
            if json {
                return print_json(&list, out);
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
                    t.status.name(),
                    t.priority.name(),
                    t.kind,
                    when(t.created_at),
                    t.assignee.as_deref().unwrap_or("-"),
                    t.subject
                );
            }
        }
        TasksCommand::Show { id, json } => {
            let t = call!(backend, Request::TasksShow { id }, Reply::Task);
            if json {
                return print_json(&t, out);
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
        }
        TasksCommand::Add {
            kind,
            subject,
            priority,
            assignee,
        } => {
            let task = AddTask {
                kind,
                subject,
                priority: priority.into(),
                assignee,
            };
            let t = call!(backend, Request::TasksAdd { task }, Reply::Task);
            say!(out, "raised {}", t.id);
        }
        TasksCommand::Assign { id, to, by } => {
            let by = person(by);
            let t = call!(backend, Request::TasksAssign { id, to, by }, Reply::Task);
            say!(
                out,
                "assigned {} to {}",
                t.id,
                t.assignee.as_deref().unwrap_or("-")
            );
        }
        TasksCommand::Close { id, note, by } => {
            let by = person(by);
            let t = call!(backend, Request::TasksClose { id, by, note }, Reply::Task);
            say!(out, "closed {}", t.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn print_json<T: serde::Serialize>(value: &T, out: &mut dyn Write) -> VerbResult {
    say!(
        out,
        "{}",
        serde_json::to_string_pretty(value).map_err(anyhow::Error::from)?
    );
    Ok(ExitCode::SUCCESS)
}
