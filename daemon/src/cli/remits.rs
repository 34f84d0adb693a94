//! `billd remits`: post an 835 file, and review postings that wait for a
//! biller's approval.

use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use super::tasks::{person, print_json};
use super::{Backend, Failure, VerbResult, load_config};
use crate::app::{Reply, Request};
use crate::posting::{PostReport, money};

/// Remittance verbs.
#[derive(Debug, Subcommand)]
pub enum RemitsCommand {
    /// Post an 835 file to the ledger, transaction set by transaction set.
    /// Exits 1 when any part of it was quarantined unposted (a task each).
    Post {
        /// The 835 file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Postings waiting for approval (payers in review mode), or approve one.
    Review {
        /// Approve this posting: its entries go to the ledger.
        #[arg(long, value_name = "ID")]
        approve: Option<String>,
        /// Who approves [default: $USER].
        #[arg(long)]
        by: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a remits verb.
pub fn run(cfg_flag: Option<&Path>, cmd: RemitsCommand) -> VerbResult {
    let cfg = Arc::new(load_config(cfg_flag)?);
    let mut backend = Backend::open(&cfg)?;
    let out = &mut std::io::stdout().lock();
    match cmd {
        RemitsCommand::Post { file, json } => {
            let name = file.display().to_string();
            let report = match &mut backend {
                // The store is here: stream the file.
                Backend::Local(app) => {
                    let f = std::fs::File::open(&file)
                        .map_err(|e| Failure::Config(format!("{name}: cannot read: {e}")))?;
                    crate::app::remits::post(app, &name, std::io::BufReader::new(f))?
                }
                Backend::Daemon(client) => {
                    let bytes = std::fs::read(&file)
                        .map_err(|e| Failure::Config(format!("{name}: cannot read: {e}")))?;
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    match client.call(Request::RemitsPost { file: name, text })? {
                        Reply::Posted(r) => r,
                        other => return Err(super::unexpected(&other)),
                    }
                }
            };
            let code = if report.quarantined.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
            if json {
                print_json(&report, out)?;
            } else {
                print_report(&report, out)?;
            }
            Ok(code)
        }
        RemitsCommand::Review { approve, by, json } => {
            if let Some(id) = approve {
                let by = person(by);
                let p = call!(backend, Request::RemitsApprove { id, by }, Reply::Posting);
                if json {
                    return print_json(&p, out);
                }
                say!(
                    out,
                    "approved {}: {} entr(ies) posted to claim {}",
                    p.id,
                    p.entry_ids.len(),
                    p.claim_id.as_deref().unwrap_or("-")
                );
                return Ok(ExitCode::SUCCESS);
            }
            let list = call!(backend, Request::RemitsReview, Reply::Postings);
            if json {
                return print_json(&list, out);
            }
            if list.is_empty() {
                say!(out, "no postings wait for review");
            } else {
                say!(
                    out,
                    "{:<8} {:<12} {:<16} {:<28} {:>4} {:>10} {:>10}",
                    "ID",
                    "PAYER",
                    "TRACE",
                    "CLAIM",
                    "CLP2",
                    "PAID",
                    "PATIENT"
                );
            }
            for p in &list {
                say!(
                    out,
                    "{:<8} {:<12} {:<16} {:<28} {:>4} {:>10} {:>10}",
                    p.id,
                    p.payer,
                    p.trace,
                    p.claim_id.as_deref().unwrap_or("-"),
                    p.era.status_code,
                    money(p.era.paid_cents),
                    money(p.era.patient_share_cents())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_report(r: &PostReport, out: &mut dyn Write) -> Result<(), Failure> {
    let count = |f: fn(&crate::posting::RemitOutcome) -> usize| -> usize {
        r.remittances.iter().map(f).sum()
    };
    say!(
        out,
        "{}: {} remittance(s): {} posted, {} awaiting review, {} unapplied, {} reversal(s), {} denial task(s), {} already posted; {} quarantined",
        r.origin,
        r.remittances.len(),
        count(|o| o.posted.len()),
        count(|o| o.awaiting_review.len()),
        count(|o| o.unapplied.len()),
        count(|o| o.reversals.len()),
        count(|o| o.denial_tasks.len()),
        count(|o| o.already_posted),
        r.quarantined.len()
    );
    for o in &r.remittances {
        let c = o.reconciliation;
        say!(
            out,
            "  payer {} trace {}: BPR02 {} = posted {} + unapplied {} - PLB {}",
            o.payer,
            o.trace,
            money(c.payment_cents),
            money(c.posted_cents),
            money(c.unapplied_cents),
            money(c.provider_adjustment_cents)
        );
    }
    for q in &r.quarantined {
        say!(
            out,
            "  quarantined {}: {} problem(s), task {}",
            q.origin,
            q.problems.len(),
            q.task_id
        );
        for p in &q.problems {
            say!(out, "    {p}");
        }
    }
    Ok(())
}
