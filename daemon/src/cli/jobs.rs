//! `billd jobs`: list, preview, run and inspect jobs.

use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::{Backend, VerbResult, load_config};
use crate::app::jobs::{
    self as ops, HistoryEntry, JobSummary, LastRun, outcome_name, trigger_name,
};
use crate::app::{Reply, Request, job_named};
use crate::jobs::{JobRun, RunOutcome};

/// Job verbs.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Every job: kind, schedule, timezone, next three fire times, last outcome.
    List,
    /// The next fire times of one job, one RFC 3339 instant per line.
    Next {
        /// Job name.
        name: String,
        /// Start after this instant (RFC 3339) [default: now].
        #[arg(long)]
        after: Option<DateTime<chrono::FixedOffset>>,
        /// How many.
        #[arg(long, default_value_t = 5)]
        count: usize,
    },
    /// Run one job now, in this process (the daemon must not be running).
    Run {
        /// Job name.
        name: String,
    },
    /// Runs and skipped occurrences of one job, newest last.
    History {
        /// Job name.
        name: String,
        /// Show at most this many entries (the newest).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a jobs verb: on the store directly, or through the running daemon
/// when it holds the store (`jobs run` then runs inside the daemon, under
/// its scheduler's one-run-per-job rule).
pub fn run(cfg_flag: Option<&Path>, cmd: JobsCommand) -> VerbResult {
    let cfg = Arc::new(load_config(cfg_flag)?);
    let out = &mut std::io::stdout().lock();
    match cmd {
        JobsCommand::Next { name, after, count } => {
            // Needs only the configuration: never the store or the daemon.
            let after = after.map_or_else(Utc::now, |a| a.with_timezone(&Utc));
            for t in ops::next(&cfg, &name, after, count)? {
                say!(out, "{}", t.to_rfc3339());
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::List => {
            let jobs = match Backend::open(&cfg) {
                Ok(mut backend) => call!(backend, Request::JobsList, Reply::Jobs),
                Err(e) => {
                    say!(out, "(store unavailable: {e})");
                    ops::list_without_store(&cfg, Utc::now())?
                }
            };
            list(&jobs, out)
        }
        JobsCommand::Run { name } => {
            let mut backend = Backend::open(&cfg)?;
            let run = call!(backend, Request::JobsRun { job: name }, Reply::Run);
            report_run(&run, out)
        }
        JobsCommand::History { name, limit, json } => {
            let tz = job_named(&cfg, &name)?.timezone;
            let mut backend = Backend::open(&cfg)?;
            let entries = call!(
                backend,
                Request::JobsHistory { job: name, limit },
                Reply::History
            );
            history(&entries, tz, json, out)
        }
    }
}

fn list(jobs: &[JobSummary], out: &mut dyn Write) -> VerbResult {
    say!(
        out,
        "{:<20} {:<10} {:<16} {:<20} {:<18} NEXT",
        "NAME",
        "KIND",
        "SCHEDULE",
        "TIMEZONE",
        "LAST"
    );
    for j in jobs {
        let next: Vec<String> = j.next.iter().map(DateTime::to_rfc3339).collect();
        let last = match &j.last {
            LastRun::Unknown => "-",
            LastRun::Never => "never run",
            LastRun::Ran { outcome, .. } => outcome_name(*outcome),
        };
        let enabled = if j.enabled { "" } else { " [disabled]" };
        say!(
            out,
            "{:<20} {:<10} {:<16} {:<20} {:<18} {}{enabled}",
            j.name,
            j.kind,
            j.schedule,
            j.timezone,
            last,
            next.join("  ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints how a run ended; exit 0 only if every item succeeded.
pub fn report_run(run: &JobRun, out: &mut dyn Write) -> VerbResult {
    say!(
        out,
        "run {}: {} ({} done, {} failed of {})",
        run.id,
        outcome_name(run.outcome),
        run.items_done,
        run.items_failed,
        run.items_total
    );
    for e in &run.errors {
        say!(out, "  error: {e}");
    }
    Ok(if run.outcome == RunOutcome::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One line of a job's history, as `--json` prints it.
#[derive(Debug, Serialize)]
struct HistoryLine {
    /// `run` or `occurrence` (an occurrence that did not run).
    entry: &'static str,
    scheduled_for: Option<String>,
    run_id: Option<String>,
    trigger: Option<&'static str>,
    started_at: Option<String>,
    ended_at: Option<String>,
    outcome: String,
    items_total: u64,
    items_done: u64,
    items_failed: u64,
    resumes: u32,
    errors: Vec<String>,
}

impl HistoryLine {
    fn new(e: &HistoryEntry, tz: chrono_tz::Tz) -> HistoryLine {
        let fmt = |t: DateTime<Utc>| t.with_timezone(&tz).to_rfc3339();
        let secs = |t: DateTime<Utc>| {
            t.with_timezone(&tz)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        };
        let occurrence = |scheduled_for: DateTime<Utc>, outcome: String| HistoryLine {
            entry: "occurrence",
            scheduled_for: Some(fmt(scheduled_for)),
            run_id: None,
            trigger: None,
            started_at: None,
            ended_at: None,
            outcome,
            items_total: 0,
            items_done: 0,
            items_failed: 0,
            resumes: 0,
            errors: Vec::new(),
        };
        match e {
            HistoryEntry::Run { run: r } => HistoryLine {
                entry: "run",
                scheduled_for: r.occurrence.map(fmt),
                run_id: Some(r.id.clone()),
                trigger: Some(trigger_name(r.trigger)),
                started_at: Some(secs(r.started_at)),
                ended_at: r.ended_at.map(secs),
                outcome: outcome_name(r.outcome).into(),
                items_total: r.items_total,
                items_done: r.items_done,
                items_failed: r.items_failed,
                resumes: r.resumes,
                errors: r.errors.clone(),
            },
            HistoryEntry::Skipped {
                scheduled_for,
                reason,
            } => occurrence(*scheduled_for, format!("skipped: {reason}")),
            HistoryEntry::Missed {
                scheduled_for,
                task_id,
            } => occurrence(*scheduled_for, format!("missed: task {task_id}")),
        }
    }
}

fn history(
    entries: &[HistoryEntry],
    tz: chrono_tz::Tz,
    json: bool,
    out: &mut dyn Write,
) -> VerbResult {
    let lines: Vec<HistoryLine> = entries.iter().map(|e| HistoryLine::new(e, tz)).collect();
    if json {
        say!(
            out,
            "{}",
            serde_json::to_string_pretty(&lines).map_err(anyhow::Error::from)?
        );
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        out,
        "{:<27} {:<10} {:<18} {:>6} {:>6} {:>6}  STARTED / NOTE",
        "SCHEDULED",
        "TRIGGER",
        "OUTCOME",
        "DONE",
        "FAILED",
        "TOTAL"
    );
    for e in &lines {
        let scheduled = e.scheduled_for.clone().unwrap_or_else(|| "-".into());
        if e.entry == "run" {
            say!(
                out,
                "{:<27} {:<10} {:<18} {:>6} {:>6} {:>6}  {}{}",
                scheduled,
                e.trigger.unwrap_or("-"),
                e.outcome,
                e.items_done,
                e.items_failed,
                e.items_total,
                e.started_at.clone().unwrap_or_default(),
                if e.resumes > 0 {
                    format!(" (resumed {}x)", e.resumes)
                } else {
                    String::new()
                }
            );
        } else {
            say!(out, "{:<27} {:<10} {}", scheduled, "-", e.outcome);
        }
    }
    Ok(ExitCode::SUCCESS)
}
