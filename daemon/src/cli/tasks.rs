//! `billd tasks`: the biller task queue from the command line.

use clap::Subcommand;
use std::path::Path;
use std::process::ExitCode;

use super::{Failure, VerbResult, load_config, open_store};
use crate::store::{Task, TaskStatus};
use crate::tasks::{self, TaskError};

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

/// Runs a tasks verb.
pub fn run(cfg_flag: Option<&Path>, cmd: TasksCommand) -> VerbResult {
    let cfg = load_config(cfg_flag)?;
    let db = open_store(&cfg)?;
    let tz = cfg.practice.timezone;
    let when = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
    match cmd {
        TasksCommand::List { all, assignee, json } => {
            let list: Vec<Task> = tasks::all(&db)?
                .into_iter()
                .filter(|t| all || t.status == TaskStatus::Open)
                .filter(|t| assignee.as_ref().is_none_or(|a| t.assignee.as_ref() == Some(a)))
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&list).map_err(anyhow::Error::from)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<8} {:<7} {:<8} {:<12} {:<17} {:<10} SUBJECT", "ID", "STATUS", "PRIORITY", "KIND", "CREATED", "ASSIGNEE");
            for t in &list {
                println!(
                    "{:<8} {:<7} {:<8} {:<12} {:<17} {:<10} {}",
                    t.id,
                    format!("{:?}", t.status).to_lowercase(),
                    format!("{:?}", t.priority).to_lowercase(),
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
                println!("{}", serde_json::to_string_pretty(&t).map_err(anyhow::Error::from)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("task      {}", t.id);
            println!("kind      {}", t.kind);
            println!("subject   {}", t.subject);
            println!("status    {:?}", t.status);
            println!("priority  {:?}", t.priority);
            println!("created   {}", when(t.created_at));
            if let Some(d) = t.due {
                println!("due       {}", when(d));
            }
            println!("assignee  {}", t.assignee.as_deref().unwrap_or("-"));
            for n in &t.notes {
                println!("note      {} {}: {}", when(n.at), n.author, n.text);
            }
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Close { id, note, by } => {
            let by = by.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".into());
            let t = tasks::close(&db, &id, chrono::Utc::now(), &by, note.as_deref())
                .map_err(|e| Failure::Runtime(e.into()))?;
            println!("closed {}", t.id);
            Ok(ExitCode::SUCCESS)
        }
    }
}
