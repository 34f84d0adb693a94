//! `billd jobs`: list, preview, run and inspect jobs.

use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use std::io::Write;

use super::{Failure, VerbResult, load_config};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::jobs::runner::Runner;
use crate::jobs::{JobRun, RunOutcome, RunTrigger};
use crate::scheduler::{Disposition, Occurrence};
use crate::store::{Db, StoreError};

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
    let cfg = load_config(cfg_flag)?;
    let out = &mut std::io::stdout().lock();
    if let JobsCommand::Next { name, after, count } = &cmd {
        return next(
            &cfg,
            name,
            after.map(|a| a.with_timezone(&Utc)),
            *count,
            out,
        );
    }
    match crate::daemon::open_store(&cfg) {
        Ok(db) => execute(&cfg, &db, cmd, out),
        Err(StoreError::Locked { .. }) => crate::control::forward(&cfg),
        Err(e) if matches!(cmd, JobsCommand::List) => {
            say!(out, "(store unavailable: {e})");
            list(&cfg, None, out)
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs a jobs verb against `db`, writing its output to `out`.
pub fn execute(cfg: &Config, db: &Db, cmd: JobsCommand, out: &mut dyn Write) -> VerbResult {
    match cmd {
        JobsCommand::List => list(cfg, Some(db), out),
        JobsCommand::Next { name, after, count } => {
            next(cfg, &name, after.map(|a| a.with_timezone(&Utc)), count, out)
        }
        JobsCommand::Run { name } => run_now(cfg, db, &name, out),
        JobsCommand::History { name, limit, json } => history(cfg, db, &name, limit, json, out),
    }
}

fn job<'a>(cfg: &'a Config, name: &str) -> Result<&'a crate::config::JobConfig, Failure> {
    cfg.jobs.iter().find(|j| j.name == name).ok_or_else(|| {
        let names: Vec<&str> = cfg.jobs.iter().map(|j| j.name.as_str()).collect();
        Failure::Config(format!(
            "no job named `{name}` (configured: {})",
            names.join(", ")
        ))
    })
}

fn spec(job: &crate::config::JobConfig) -> Result<crate::scheduler::JobSpec, Failure> {
    crate::daemon::job_spec(job).map_err(|e| Failure::Config(format!("job {}: {e}", job.name)))
}

fn outcome_name(o: RunOutcome) -> &'static str {
    match o {
        RunOutcome::Running => "running",
        RunOutcome::Succeeded => "succeeded",
        RunOutcome::PartiallyFailed => "partially-failed",
        RunOutcome::Failed => "failed",
        RunOutcome::Interrupted => "interrupted",
    }
}

fn trigger_name(t: RunTrigger) -> &'static str {
    match t {
        RunTrigger::Schedule => "schedule",
        RunTrigger::CatchUp => "catch-up",
        RunTrigger::Manual => "manual",
    }
}

fn list(cfg: &Config, db: Option<&Db>, out: &mut dyn Write) -> VerbResult {
    let now = Utc::now();
    say!(
        out,
        "{:<20} {:<10} {:<16} {:<20} {:<18} NEXT",
        "NAME",
        "KIND",
        "SCHEDULE",
        "TIMEZONE",
        "LAST"
    );
    for j in &cfg.jobs {
        let s = spec(j)?;
        let next: Vec<String> = s
            .schedule
            .iter_after(now)
            .take(3)
            .map(|t| t.with_timezone(&s.schedule.timezone()).to_rfc3339())
            .collect();
        let last = match db {
            Some(db) => db
                .scan::<JobRun>(&format!("{}/", j.name))?
                .last()
                .map(|r| outcome_name(r.outcome).to_string())
                .unwrap_or_else(|| "never run".into()),
            None => "-".into(),
        };
        let enabled = if j.enabled { "" } else { " [disabled]" };
        say!(
            out,
            "{:<20} {:<10} {:<16} {:<20} {:<18} {}{enabled}",
            j.name,
            j.kind,
            j.schedule,
            j.timezone.name(),
            last,
            next.join("  ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn next(
    cfg: &Config,
    name: &str,
    after: Option<DateTime<Utc>>,
    count: usize,
    out: &mut dyn Write,
) -> VerbResult {
    let s = spec(job(cfg, name)?)?;
    let after = after.unwrap_or_else(Utc::now);
    for t in s.schedule.iter_after(after).take(count) {
        say!(
            out,
            "{}",
            t.with_timezone(&s.schedule.timezone()).to_rfc3339()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_now(cfg: &Config, db: &Db, name: &str, out: &mut dyn Write) -> VerbResult {
    let j = job(cfg, name)?;
    super::validate_jobs(cfg)?;
    let runner_clock = Arc::new(SystemClock) as SharedClock;
    let runner = Runner::new(
        db.clone(),
        runner_clock.clone(),
        crate::daemon::SHUTDOWN_GRACE,
    );
    if let Some(r) = runner.unfinished()?.into_iter().find(|r| r.job == name) {
        return Err(Failure::Runtime(anyhow::anyhow!(
            "job {name} has an unfinished run {} ({}); start the daemon to resume it first",
            r.id,
            outcome_name(r.outcome)
        )));
    }
    let rt = super::runtime()?;
    let run = rt.block_on(async {
        let mailer = Arc::new(
            crate::notify::mail::Mailer::from_config(&cfg.mail).map_err(anyhow::Error::from)?,
        );
        let services = crate::daemon::services(
            cfg,
            db.clone(),
            runner_clock.clone(),
            mailer,
            crate::daemon::load_plugins(cfg, db).map_err(anyhow::Error::from)?,
        );
        let kind = crate::daemon::job_kind(j, &services).map_err(anyhow::Error::from)?;
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                c.cancel();
            }
        });
        let run = runner.begin(name, RunTrigger::Manual, None)?;
        let done = runner
            .execute(&run.id, kind, j.concurrency.max(1), cancel)
            .await?;
        Ok::<_, anyhow::Error>(done)
    })?;
    report_run(&run, out)
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

/// One line of a job's history.
#[derive(Debug, Serialize)]
struct HistoryEntry {
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
    #[serde(skip)]
    sort: DateTime<Utc>,
}

fn history_entries(
    db: &Db,
    name: &str,
    tz: chrono_tz::Tz,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let fmt = |t: DateTime<Utc>| t.with_timezone(&tz).to_rfc3339();
    let mut out: Vec<HistoryEntry> = db
        .scan::<JobRun>(&format!("{name}/"))?
        .into_iter()
        .map(|r| HistoryEntry {
            entry: "run",
            scheduled_for: r.occurrence.map(fmt),
            run_id: Some(r.id.clone()),
            trigger: Some(trigger_name(r.trigger)),
            started_at: Some(
                r.started_at
                    .with_timezone(&tz)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            ),
            ended_at: r.ended_at.map(|t| {
                t.with_timezone(&tz)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
            }),
            outcome: outcome_name(r.outcome).into(),
            items_total: r.items_total,
            items_done: r.items_done,
            items_failed: r.items_failed,
            resumes: r.resumes,
            errors: r.errors.clone(),
            sort: r.occurrence.unwrap_or(r.started_at),
        })
        .collect();
    for o in db.scan::<Occurrence>(&format!("{name}/"))? {
        let outcome = match &o.disposition {
            Disposition::Ran { .. } => continue,
            Disposition::Skipped { reason } => format!("skipped: {reason}"),
            Disposition::Missed { task_id } => format!("missed: task {task_id}"),
        };
        out.push(HistoryEntry {
            entry: "occurrence",
            scheduled_for: Some(fmt(o.scheduled_for)),
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
            sort: o.scheduled_for,
        });
    }
    out.sort_by_key(|e| e.sort);
    Ok(out)
}

fn history(
    cfg: &Config,
    db: &Db,
    name: &str,
    limit: usize,
    json: bool,
    out: &mut dyn Write,
) -> VerbResult {
    let j = job(cfg, name)?;
    let mut entries = history_entries(db, name, j.timezone)?;
    let skip = entries.len().saturating_sub(limit);
    entries.drain(..skip);
    if json {
        say!(
            out,
            "{}",
            serde_json::to_string_pretty(&entries).map_err(anyhow::Error::from)?
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
    for e in &entries {
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
