//! `billd holds`, `billd plans`, `billd patients opt-out` and `billd outbox`:
//! what keeps billd from contacting a patient, and the messages it stored.

use chrono::NaiveDate;
use clap::Subcommand;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::tasks::{person, print_json};
use super::{Backend, Failure, VerbResult, load_config};
use crate::app::dunning::{NewPlan, PlanView};
use crate::app::{Reply, Request};
use crate::domain::hold::{Hold, HoldKind};
use crate::domain::plan::Standing;
use crate::notify::OutboxStatus;
use crate::posting::money;

/// Hold verbs.
#[derive(Debug, Subcommand)]
pub enum HoldsCommand {
    /// Put a hold on an account: no statements or reminders (nor, later,
    /// collections) while it is open.
    Add {
        /// Account (patient) id.
        account: String,
        /// dispute, no-surprises-act, bankruptcy, deceased,
        /// financial-assistance or other.
        #[arg(long)]
        kind: String,
        /// Why (kept with the hold, never logged).
        #[arg(long)]
        reason: String,
        /// Who places it [default: $USER].
        #[arg(long)]
        by: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a hold (it stays in the history).
    Remove {
        /// Hold id (`ACCOUNT/H000001`).
        id: String,
        /// Who removes it [default: $USER].
        #[arg(long)]
        by: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Open holds (of one account with --account; removed ones with --all).
    List {
        /// One account's only.
        #[arg(long)]
        account: Option<String>,
        /// Removed holds too.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Payment plan verbs.
#[derive(Debug, Subcommand)]
pub enum PlansCommand {
    /// Set up a payment plan; while in good standing it holds statements.
    Create {
        /// Account (patient) id.
        account: String,
        /// Total, in dollars (`240.00`).
        #[arg(long)]
        total: String,
        /// Each installment, in dollars (`40.00`).
        #[arg(long)]
        installment: String,
        /// First due date (YYYY-MM-DD).
        #[arg(long)]
        start: NaiveDate,
        /// weekly, biweekly, monthly, or like 14d, 2w, 1m.
        #[arg(long, default_value = "monthly")]
        every: String,
        /// Days after a due date an installment may still be paid.
        #[arg(long, default_value_t = 10)]
        grace_days: u32,
        /// Who sets it up [default: $USER].
        #[arg(long)]
        by: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Plans with their standing (of one account with --account).
    List {
        /// One account's only.
        #[arg(long)]
        account: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a plan.
    Cancel {
        /// Plan id (`ACCOUNT/PL000001`).
        id: String,
        /// Who cancels it [default: $USER].
        #[arg(long)]
        by: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Patient verbs.
#[derive(Debug, Subcommand)]
pub enum PatientsCommand {
    /// Stop dunning email to a patient (--undo to resume it).
    OptOut {
        /// Patient id.
        id: String,
        /// How the patient asked (phone, letter, unsubscribe-link, ...).
        #[arg(long)]
        via: Option<String>,
        /// Withdraw the opt-out.
        #[arg(long)]
        undo: bool,
        /// Who records it [default: $USER].
        #[arg(long)]
        by: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Outbox verbs.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Stored messages (key, status, attempts, subject), never bodies.
    List {
        /// queued, sent or failed.
        #[arg(long)]
        status: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Dollars (`12`, `12.5`, `12.50`) as cents.
pub fn cents(field: &str, text: &str) -> Result<i64, Failure> {
    let bad = || Failure::Config(format!("--{field}: `{text}` is not an amount like 40.00"));
    let t = text.trim().trim_start_matches('$');
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 2 {
        return Err(bad());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(100)
        .and_then(|c| c.checked_add(frac))
        .ok_or_else(bad)
}

fn hold_line(h: &Hold) -> String {
    format!(
        "{:<24} {:<20} {:<6} placed {} by {}",
        h.id,
        h.kind.name(),
        if h.is_open() { "open" } else { "closed" },
        h.placed_at.format("%Y-%m-%d"),
        h.placed_by
    )
}

fn plan_line(v: &PlanView) -> String {
    let standing = match &v.standing {
        Standing::GoodStanding { paid_cents, next } => format!(
            "good standing, paid {}{}",
            money(*paid_cents),
            next.map(|n| format!(
                ", next #{} {} due {}",
                n.number,
                money(n.amount_cents),
                n.due
            ))
            .unwrap_or_default()
        ),
        Standing::Completed { .. } => "completed".into(),
        Standing::Broken { on, .. } => format!("broken on {on}"),
        Standing::Cancelled { at } => format!("cancelled {}", at.format("%Y-%m-%d")),
    };
    format!(
        "{:<24} total {:>10}  {} x {:>9} every {} from {} (grace {}d)  {}",
        v.plan.id,
        money(v.plan.total_cents),
        v.schedule.len(),
        money(v.plan.installment_cents),
        v.plan.interval.text(),
        v.plan.start,
        v.plan.grace_days,
        standing
    )
}

/// Runs a holds verb.
pub fn holds(cfg_flag: Option<&Path>, cmd: HoldsCommand) -> VerbResult {
    let cfg = Arc::new(load_config(cfg_flag)?);
    let mut backend = Backend::open(&cfg)?;
    let out = &mut std::io::stdout().lock();
    match cmd {
        HoldsCommand::Add {
            account,
            kind,
            reason,
            by,
            json,
        } => {
            let kind = HoldKind::parse(&kind).ok_or_else(|| {
                let names: Vec<&str> = HoldKind::ALL.iter().map(|k| k.name()).collect();
                Failure::Config(format!(
                    "--kind: `{kind}` is not a hold kind ({})",
                    names.join(", ")
                ))
            })?;
            let by = person(by);
            let h = call!(
                backend,
                Request::HoldsAdd {
                    account,
                    kind,
                    reason,
                    by
                },
                Reply::Hold
            );
            if json {
                return print_json(&h, out);
            }
            say!(out, "hold {} placed", h.id);
        }
        HoldsCommand::Remove { id, by, json } => {
            let by = person(by);
            let h = call!(backend, Request::HoldsRemove { id, by }, Reply::Hold);
            if json {
                return print_json(&h, out);
            }
            say!(out, "hold {} removed", h.id);
        }
        HoldsCommand::List { account, all, json } => {
            let list = call!(backend, Request::HoldsList { account, all }, Reply::Holds);
            if json {
                return print_json(&list, out);
            }
            for h in &list {
                say!(out, "{}", hold_line(h));
            }
            say!(out, "{} hold(s)", list.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a plans verb.
pub fn plans(cfg_flag: Option<&Path>, cmd: PlansCommand) -> VerbResult {
    let cfg = Arc::new(load_config(cfg_flag)?);
    let out = &mut std::io::stdout().lock();
    match cmd {
        PlansCommand::Create {
            account,
            total,
            installment,
            start,
            every,
            grace_days,
            by,
            json,
        } => {
            let plan = NewPlan {
                account,
                total_cents: cents("total", &total)?,
                installment_cents: cents("installment", &installment)?,
                start,
                interval: every,
                grace_days,
                by: person(by),
            };
            let mut backend = Backend::open(&cfg)?;
            let v = call!(backend, Request::PlansCreate { plan }, Reply::Plan);
            if json {
                return print_json(&v, out);
            }
            say!(out, "plan {} created", v.plan.id);
            say!(out, "{}", plan_line(&v));
        }
        PlansCommand::List { account, json } => {
            let mut backend = Backend::open(&cfg)?;
            let list = call!(backend, Request::PlansList { account }, Reply::Plans);
            if json {
                return print_json(&list, out);
            }
            for v in &list {
                say!(out, "{}", plan_line(v));
            }
            say!(out, "{} plan(s)", list.len());
        }
        PlansCommand::Cancel { id, by, json } => {
            let mut backend = Backend::open(&cfg)?;
            let by = person(by);
            let v = call!(backend, Request::PlansCancel { id, by }, Reply::Plan);
            if json {
                return print_json(&v, out);
            }
            say!(out, "plan {} cancelled", v.plan.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a patients verb.
pub fn patients(cfg_flag: Option<&Path>, cmd: PatientsCommand) -> VerbResult {
    let cfg = Arc::new(load_config(cfg_flag)?);
    let mut backend = Backend::open(&cfg)?;
    let out = &mut std::io::stdout().lock();
    let PatientsCommand::OptOut {
        id,
        via,
        undo,
        by,
        json,
    } = cmd;
    let by = person(by);
    let v = call!(
        backend,
        Request::PatientsOptOut { id, by, via, undo },
        Reply::OptOut
    );
    if json {
        return print_json(&v, out);
    }
    match &v.opt_out {
        Some(o) => say!(
            out,
            "patient {} opted out of dunning email ({} by {})",
            v.id,
            o.at.format("%Y-%m-%d"),
            o.by
        ),
        None => say!(out, "patient {} receives dunning email again", v.id),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs an outbox verb.
pub fn outbox(cfg_flag: Option<&Path>, cmd: OutboxCommand) -> VerbResult {
    let cfg = Arc::new(load_config(cfg_flag)?);
    let OutboxCommand::List { status, json } = cmd;
    let status = status
        .map(|s| {
            serde_json::from_value::<OutboxStatus>(serde_json::Value::String(s.clone())).map_err(
                |_| Failure::Config(format!("--status: `{s}` is not queued, sent or failed")),
            )
        })
        .transpose()?;
    let mut backend = Backend::open(&cfg)?;
    let out = &mut std::io::stdout().lock();
    let list = call!(backend, Request::OutboxList { status }, Reply::Outbox);
    if json {
        return print_json(&list, out);
    }
    for m in &list {
        let status = serde_json::to_value(m.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        say!(
            out,
            "{:<60} {:<7} {:>2}  {}  {}",
            m.key,
            status,
            m.attempts,
            m.created_at.format("%Y-%m-%d %H:%M"),
            m.subject
        );
    }
    say!(out, "{} message(s)", list.len());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_amounts_become_cents_and_bad_ones_name_the_flag() {
        assert_eq!(cents("total", "240").unwrap(), 24_000);
        assert_eq!(cents("total", "$12.5").unwrap(), 1_250);
        assert_eq!(cents("total", "0.07").unwrap(), 7);
        for bad in ["", "1.234", "-3", "1,00", "abc", ".5"] {
            let e = cents("installment", bad).unwrap_err();
            assert!(e.message().contains("--installment"), "{bad}");
        }
    }
}
