//! `billd accounts`: one account's ledger and balances, the aging of every
//! account's open balance, and posting a patient payment.

use clap::Subcommand;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::dunning::cents;
use super::tasks::{person, print_json};
use super::{Backend, VerbResult, load_config};
use crate::app::{Reply, Request};
use crate::domain::account::AGING_BUCKETS;
use crate::posting::money;

/// Account verbs.
#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// One account: balances (insurance, patient), aging and every entry.
    Show {
        /// Account id (the patient id).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Open balances by age (0-30, 31-60, 61-90, 91-120, over 120 days).
    Aging {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Posts a patient payment, once per receipt reference (a retry with
    /// the same reference changes nothing).
    Pay {
        /// Account id (the patient id).
        id: String,
        /// Amount in dollars, e.g. 40.00.
        #[arg(long)]
        amount: String,
        /// The receipt's id (card transaction, check number).
        #[arg(long)]
        reference: String,
        /// Who took the payment [default: $USER].
        #[arg(long)]
        by: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an accounts verb.
pub fn run(cfg_flag: Option<&Path>, cmd: AccountsCommand) -> VerbResult {
    let cfg = Arc::new(load_config(cfg_flag)?);
    let mut backend = Backend::open(&cfg)?;
    let out = &mut std::io::stdout().lock();
    let row = |label: &str, cents: &[i64; 5]| -> String {
        let cells: Vec<String> = cents.iter().map(|c| format!("{:>12}", money(*c))).collect();
        format!(
            "{label:<20} {} {:>12}",
            cells.join(" "),
            money(cents.iter().sum())
        )
    };
    let header = || -> String {
        let cells: Vec<String> = AGING_BUCKETS.iter().map(|b| format!("{b:>12}")).collect();
        format!("{:<20} {} {:>12}", "", cells.join(" "), "TOTAL")
    };
    match cmd {
        AccountsCommand::Show { id, json } => {
            let a = call!(backend, Request::AccountsShow { id }, Reply::Account);
            if json {
                return print_json(&a, out);
            }
            say!(out, "account     {}", a.id);
            say!(out, "insurance   {}", money(a.balances.insurance_cents));
            say!(out, "patient     {}", money(a.balances.patient_cents));
            say!(out, "balance     {}", money(a.balances.total_cents()));
            say!(out, "aging as of {}:", a.as_of);
            say!(out, "{}", header());
            say!(out, "{}", row("insurance", &a.aging.insurance_cents));
            say!(out, "{}", row("patient", &a.aging.patient_cents));
            say!(out, "entries:");
            for e in &a.entries {
                let kind = match &e.kind {
                    crate::domain::LedgerKind::Adjustment { group, reason } => {
                        format!("adjustment {group}-{reason}")
                    }
                    crate::domain::LedgerKind::Reversal { reverses } => {
                        format!("reversal of {reverses}")
                    }
                    other => serde_json::to_value(other)
                        .ok()
                        .and_then(|v| v["type"].as_str().map(str::to_string))
                        .unwrap_or_default(),
                };
                say!(
                    out,
                    "  {}  {:>12}  {:<28} {:<28} {}",
                    e.posted_at.format("%Y-%m-%d"),
                    money(e.amount_cents),
                    kind,
                    e.claim_id.as_deref().unwrap_or("-"),
                    e.source
                );
            }
        }
        AccountsCommand::Pay {
            id,
            amount,
            reference,
            by,
            json,
        } => {
            let cents = cents("amount", &amount)?;
            let by = person(by);
            let r = call!(
                backend,
                Request::AccountsPay {
                    id,
                    cents,
                    reference,
                    by
                },
                Reply::Payment
            );
            if json {
                return print_json(&r, out);
            }
            let what = if r.posted {
                "posted"
            } else {
                "already posted (nothing changed)"
            };
            say!(
                out,
                "payment {} {what}: {}; patient balance {}",
                r.entry.id,
                money(-r.entry.amount_cents),
                money(r.balances.patient_cents)
            );
        }
        AccountsCommand::Aging { json } => {
            let r = call!(backend, Request::AccountsAging, Reply::Aging);
            if json {
                return print_json(&r, out);
            }
            say!(
                out,
                "aging as of {} ({} account(s))",
                r.as_of,
                r.accounts.len()
            );
            say!(out, "{}", header());
            for a in &r.accounts {
                say!(
                    out,
                    "{}",
                    row(&format!("{} ins", a.account_id), &a.aging.insurance_cents)
                );
                say!(
                    out,
                    "{}",
                    row(&format!("{} pat", a.account_id), &a.aging.patient_cents)
                );
            }
            say!(out, "{}", row("total insurance", &r.totals.insurance_cents));
            say!(out, "{}", row("total patient", &r.totals.patient_cents));
        }
    }
    Ok(ExitCode::SUCCESS)
}
