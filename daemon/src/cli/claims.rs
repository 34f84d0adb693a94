//! `billd claims`: list, show, hold and release claims.

use clap::Subcommand;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::tasks::{person, print_json};
use super::{Backend, Failure, VerbResult, load_config};
use crate::app::claims::ClaimFilter;
use crate::app::{Reply, Request};
use crate::domain::ClaimState;

/// Claim verbs.
#[derive(Debug, Subcommand)]
pub enum ClaimsCommand {
    /// Claims by state, then id.
    List {
        /// Only claims in this state (draft, ready, submitted, accepted, acknowledged, rejected, pending, paid, partially_paid, denied, ...).
        #[arg(long)]
        state: Option<String>,
        /// Only claims to this payer id.
        #[arg(long)]
        payer: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One claim with its lines, scrub problems and state history (with sources).
    Show {
        /// Claim id (billing NPI-CLM01).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hold a claim: it is not submitted or followed until released.
    Hold {
        /// Claim id.
        id: String,
        /// Who holds it [default: $USER].
        #[arg(long)]
        by: Option<String>,
    },
    /// Release a held claim.
    Release {
        /// Claim id.
        id: String,
        /// Who releases it [default: $USER].
        #[arg(long)]
        by: Option<String>,
    },
}

fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// Runs a claims verb.
pub fn run(cfg_flag: Option<&Path>, cmd: ClaimsCommand) -> VerbResult {
    let cfg = Arc::new(load_config(cfg_flag)?);
    let mut backend = Backend::open(&cfg)?;
    let out = &mut std::io::stdout().lock();
    let tz = cfg.practice.timezone;
    let when = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
    };
    match cmd {
        ClaimsCommand::List { state, payer, json } => {
            let state =
                match state {
                    None => None,
                    Some(s) => Some(ClaimState::parse(&s).ok_or_else(|| {
                        Failure::Config(format!("--state {s}: not a claim state"))
                    })?),
                };
            let filter = ClaimFilter { state, payer };
            let list = call!(backend, Request::ClaimsList { filter }, Reply::Claims);
            if json {
                return print_json(&list, out);
            }
            say!(
                out,
                "{:<28} {:<14} {:<10} {:>10} {:<5} {:<8} NEXT CHECK",
                "ID",
                "STATE",
                "PAYER",
                "BILLED",
                "HELD",
                "PROBLEMS"
            );
            for c in &list {
                say!(
                    out,
                    "{:<28} {:<14} {:<10} {:>10} {:<5} {:<8} {}",
                    c.id,
                    c.state.name(),
                    c.payer_id,
                    money(c.total_charge_cents),
                    if c.held { "yes" } else { "-" },
                    c.problems,
                    c.next_check_at.map(when).unwrap_or_else(|| "-".into())
                );
            }
        }
        ClaimsCommand::Show { id, json } => {
            let c = call!(backend, Request::ClaimsShow { id }, Reply::Claim);
            if json {
                return print_json(&c, out);
            }
            say!(out, "claim       {}", c.id);
            say!(out, "clm01       {}", c.control_number);
            say!(
                out,
                "state       {}{}",
                c.state,
                if c.held { " (held)" } else { "" }
            );
            say!(out, "payer       {}", c.payer_id);
            if let Some(n) = &c.payer_claim_number {
                say!(out, "payer claim {n}");
            }
            say!(out, "billing     {}", c.billing_npi);
            say!(
                out,
                "patient     {}  coverage {}",
                c.patient_id,
                c.coverage_id
            );
            say!(out, "billed      {}", money(c.total_charge_cents));
            say!(out, "diagnoses   {}", c.diagnoses.join(" "));
            for (i, l) in c.lines.iter().enumerate() {
                say!(
                    out,
                    "line {:<2}     {} {} x{} {} ptr {:?} {}",
                    i + 1,
                    l.procedure,
                    l.modifiers.join(":"),
                    l.units,
                    money(l.charge_cents),
                    l.diagnosis_pointers,
                    l.service_date
                );
            }
            for p in &c.problems {
                say!(out, "problem     {p}");
            }
            if let Some(t) = c.next_check_at {
                say!(out, "next check  {}", when(t));
            }
            say!(out, "history:");
            for e in &c.history {
                say!(
                    out,
                    "  {}  {} -> {}  [{}]{}",
                    when(e.at),
                    e.from.map_or("-".to_string(), |s| s.to_string()),
                    e.to,
                    e.source,
                    e.note
                        .as_ref()
                        .map(|n| format!("  {n}"))
                        .unwrap_or_default()
                );
            }
        }
        ClaimsCommand::Hold { id, by } => {
            let by = person(by);
            let c = call!(backend, Request::ClaimsHold { id, by }, Reply::Claim);
            say!(out, "held {}", c.id);
        }
        ClaimsCommand::Release { id, by } => {
            let by = person(by);
            let c = call!(backend, Request::ClaimsRelease { id, by }, Reply::Claim);
            say!(out, "released {}", c.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
