//! `billd ehr status`: where the EHR sync's listings stand, what it holds
//! back and why, and what the store holds.

use clap::Subcommand;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::tasks::print_json;
use super::{Backend, VerbResult, load_config};
use crate::app::{Reply, Request};

/// EHR verbs.
#[derive(Debug, Subcommand)]
pub enum EhrCommand {
    /// Cursors, held-back resources and record counts.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an EHR verb.
pub fn run(cfg_flag: Option<&Path>, cmd: EhrCommand) -> VerbResult {
    let cfg = Arc::new(load_config(cfg_flag)?);
    let EhrCommand::Status { json } = cmd;
    let mut backend = Backend::open(&cfg)?;
    let status = call!(backend, Request::EhrStatus, Reply::Ehr);
    let out = &mut std::io::stdout().lock();
    if json {
        return print_json(&status, out);
    }
    let r = &status.records;
    say!(
        out,
        "records: {} patients, {} coverages, {} appointments, {} claims",
        r.patients,
        r.coverages,
        r.appointments,
        r.claims
    );
    for l in &status.last_syncs {
        let c = &l.counts;
        say!(
            out,
            "last sync {} ({}) at {}: {} received, {} created, {} updated, {} unchanged, {} held, {} refused, {} released",
            l.job,
            l.connector,
            l.at.format("%Y-%m-%d %H:%M:%S"),
            c.received,
            c.created,
            c.updated,
            c.unchanged,
            c.held,
            c.refused,
            c.released
        );
    }
    for c in &status.cursors {
        say!(
            out,
            "cursor {}/{}: {}",
            c.connector,
            c.stream,
            c.cursor.as_deref().unwrap_or("(start)")
        );
    }
    for h in &status.held {
        say!(
            out,
            "held {:<50} {:<10} {}",
            h.key,
            h.task.as_deref().unwrap_or("-"),
            h.problem
        );
    }
    say!(out, "{} resource(s) held back", status.held.len());
    Ok(ExitCode::SUCCESS)
}
