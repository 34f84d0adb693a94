//! Statements and reminders to patients: the cadence, the gates a notice
//! must pass, and the record of each notice sent.
//!
//! Deciding is pure ([`decide`]): given an account's ledger, what blocks
//! it ([`crate::domain::hold::blocker`]), whether the patient opted out,
//! whether there is an address, and which steps of this balance's cadence
//! were already recorded, it says which step is due today or why nothing
//! is. A notice is keyed by account, the day the balance became the
//! patient's (the cadence's start) and the step, so the same notice can be
//! recorded only once; the collections job asks [`first_statement_date`]
//! and [`final_notice_date`] of those records.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

use super::account::{LedgerEntry, LedgerKind, Party, balances, open_items};
use super::hold::Blocker;
use crate::store::Record;

/// What a step of the cadence is, for the collections rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeRole {
    /// The first notice: the statement.
    Statement,
    /// Any notice between the first and the last.
    Reminder,
    /// The last notice of the cadence.
    FinalNotice,
}

/// One step of the cadence: a notice sent `day` days after the balance
/// became the patient's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// A stable name, part of the notice key (`statement`, `reminder-30`).
    pub name: String,
    /// Days after the balance became the patient's.
    pub day: u32,
    /// The template set that renders it (files `<template>.txt` and
    /// `<template>-subject.txt`).
    pub template: String,
}

/// The steps, in day order, each name once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cadence {
    steps: Vec<Step>,
}

impl Cadence {
    /// The default: a statement when the balance becomes the patient's,
    /// reminders at 30 and 60 days, a final notice at 90.
    pub fn standard() -> Cadence {
        let step = |name: &str, day, template: &str| Step {
            name: name.into(),
            day,
            template: template.into(),
        };
        Cadence {
            steps: vec![
                step("statement", 0, "statement"),
                step("reminder-30", 30, "reminder"),
                step("reminder-60", 60, "reminder"),
                step("final-90", 90, "final-notice"),
            ],
        }
    }

    /// Steps as configured: at least one, names unique and made of
    /// letters, digits and `-`, days strictly increasing.
    pub fn new(steps: Vec<Step>) -> Result<Cadence, String> {
        if steps.is_empty() {
            return Err("at least one step is needed".into());
        }
        let mut names = HashSet::new();
        for (i, s) in steps.iter().enumerate() {
            if s.name.is_empty()
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(format!(
                    "step {}: name `{}` must be letters, digits and -",
                    i + 1,
                    s.name
                ));
            }
            if !names.insert(s.name.as_str()) {
                return Err(format!("step {}: name `{}` is repeated", i + 1, s.name));
            }
            if i > 0 && s.day <= steps[i - 1].day {
                return Err(format!(
                    "step {}: day {} must come after the previous step's day {}",
                    i + 1,
                    s.day,
                    steps[i - 1].day
                ));
            }
            if s.template.is_empty() {
                return Err(format!("step {}: template is empty", i + 1));
            }
        }
        Ok(Cadence { steps })
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The role of step `i`.
    pub fn role(&self, i: usize) -> NoticeRole {
        if i + 1 == self.steps.len() && i > 0 {
            NoticeRole::FinalNotice
        } else if i == 0 {
            NoticeRole::Statement
        } else {
            NoticeRole::Reminder
        }
    }
}

/// What the patient owes that a notice may ask for: the patient's balance
/// on claims the insurer has settled, and what the patient owes outside
/// any claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billable {
    /// Cents the notice asks for.
    pub cents: i64,
    /// The day the oldest of it became the patient's (the cadence starts
    /// here).
    pub since: NaiveDate,
}

/// The patient's billable balance of `entries`, or why there is none:
/// `Err(true)` when the patient owes something but all of it waits for an
/// insurer (a claim with an insurance balance left), `Err(false)` when the
/// patient owes nothing.
pub fn billable(entries: &[LedgerEntry]) -> Result<Billable, bool> {
    let mut by_claim: BTreeMap<Option<&str>, Vec<LedgerEntry>> = BTreeMap::new();
    for e in entries {
        by_claim
            .entry(e.claim_id.as_deref())
            .or_default()
            .push(e.clone());
    }
    let mut settled: Vec<LedgerEntry> = Vec::new();
    let mut pending = false;
    for (claim, es) in by_claim {
        let b = balances(&es);
        if claim.is_some() && b.insurance_cents > 0 {
            pending |= b.patient_cents > 0;
            continue;
        }
        settled.extend(es);
    }
    let patient = balances(&settled).patient_cents;
    let since = open_items(&settled, Party::Patient)
        .first()
        .map(|(d, _)| *d);
    match since {
        Some(since) if patient > 0 => Ok(Billable {
            cents: patient,
            since,
        }),
        _ => Err(pending),
    }
}

/// The patient's payments of `entries` posted on or after `from`, as (day,
/// cents paid) for [`crate::domain::plan::standing`]; a reversed payment
/// does not count.
pub fn payments_since(entries: &[LedgerEntry], from: DateTime<Utc>) -> Vec<(NaiveDate, i64)> {
    let reversed: HashSet<&str> = entries
        .iter()
        .filter_map(|e| match &e.kind {
            LedgerKind::Reversal { reverses } => Some(reverses.as_str()),
            _ => None,
        })
        .collect();
    entries
        .iter()
        .filter(|e| {
            e.kind == LedgerKind::PatientPayment
                && e.posted_at >= from
                && !reversed.contains(e.id.as_str())
        })
        .map(|e| (e.posted_at.date_naive(), -e.amount_cents))
        .collect()
}

/// What an account's facts are, as [`decide`] reads them.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// Its ledger.
    pub entries: &'a [LedgerEntry],
    /// What blocks contact, if anything.
    pub blocker: Option<Blocker>,
    /// Whether the patient opted out of dunning email.
    pub opted_out: bool,
    /// Whether the patient has an email address.
    pub has_email: bool,
    /// The names of steps already recorded for this balance's cadence
    /// (same start day).
    pub recorded: &'a [String],
}

/// Why no notice goes out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Skip {
    /// The patient owes nothing.
    NothingOwed,
    /// What the patient owes waits for an insurer.
    InsurancePending,
    /// A hold or a plan in good standing.
    Blocked {
        /// What blocks.
        blocker: Blocker,
    },
    /// The patient opted out.
    OptedOut,
    /// Under the configured minimum.
    BelowMinimum {
        /// What is owed.
        cents: i64,
    },
    /// The next step's day has not come.
    NotYetDue,
    /// Every step of this balance's cadence is recorded.
    CadenceDone,
}

/// What to do about one account today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send step `step` of the cadence for `billable`.
    Send {
        /// The step's index.
        step: usize,
        /// What is owed and since when.
        billable: Billable,
    },
    /// A notice is due but the patient has no email address: a biller
    /// must act (a task).
    NoAddress {
        /// The step's index.
        step: usize,
        /// What is owed and since when.
        billable: Billable,
    },
    /// Nothing today.
    Skip(Skip),
}

/// Decides one account on `today`. The gates, in order: something owed;
/// not all of it waiting for an insurer; no hold or plan in good standing;
/// not opted out; at least `min_cents`; a step due (the latest step whose
/// day has come, if it and no later step is recorded — steps missed while
/// the account was held are not sent late); an address.
pub fn decide(cadence: &Cadence, facts: &Facts<'_>, min_cents: i64, today: NaiveDate) -> Decision {
    let billable = match billable(facts.entries) {
        Ok(b) => b,
        Err(true) => return Decision::Skip(Skip::InsurancePending),
        Err(false) => return Decision::Skip(Skip::NothingOwed),
    };
    if let Some(b) = &facts.blocker {
        return Decision::Skip(Skip::Blocked { blocker: b.clone() });
    }
    if facts.opted_out {
        return Decision::Skip(Skip::OptedOut);
    }
    if billable.cents < min_cents {
        return Decision::Skip(Skip::BelowMinimum {
            cents: billable.cents,
        });
    }
    let age = (today - billable.since).num_days();
    let Some(step) = cadence
        .steps()
        .iter()
        .rposition(|s| i64::from(s.day) <= age)
    else {
        return Decision::Skip(Skip::NotYetDue);
    };
    let recorded_at_or_after = cadence.steps()[step..]
        .iter()
        .any(|s| facts.recorded.contains(&s.name));
    if recorded_at_or_after {
        return Decision::Skip(if step + 1 == cadence.steps().len() {
            Skip::CadenceDone
        } else {
            Skip::NotYetDue
        });
    }
    if !facts.has_email {
        return Decision::NoAddress { step, billable };
    }
    Decision::Send { step, billable }
}

/// The hours of the day notices may go out, in the practice's timezone:
/// from `start` up to (not including) `end`; a window whose end is before
/// its start runs past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The first minute notices may go.
    pub start: NaiveTime,
    /// The first minute they may not.
    pub end: NaiveTime,
}

impl Default for Window {
    /// 08:00 to 21:00.
    fn default() -> Self {
        Window {
            start: NaiveTime::from_hms_opt(8, 0, 0).expect("a time"),
            end: NaiveTime::from_hms_opt(21, 0, 0).expect("a time"),
        }
    }
}

impl Window {
    /// Reads `HH:MM-HH:MM`.
    pub fn parse(text: &str) -> Result<Window, String> {
        let bad = || format!("`{text}` is not a window like \"08:00-21:00\"");
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let t = |s: &str| NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| bad());
        let w = Window {
            start: t(a)?,
            end: t(b)?,
        };
        if w.start == w.end {
            return Err(format!("`{text}`: the window is empty"));
        }
        Ok(w)
    }

    /// Whether local time `t` is inside the window.
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

/// Where a notice stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeStatus {
    /// Recorded and in the outbox, not yet accepted by the mail server.
    Queued,
    /// Accepted by the mail server.
    Sent,
    /// Refused for good (a task was raised).
    Failed,
}

/// A notice to a patient, recorded (with its outbox message) before it is
/// sent. Its key is its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// `<account>/<since>/<step>` ([`Notice::key_for`]).
    pub key: String,
    /// The account.
    pub account_id: String,
    /// The day the balance became the patient's.
    pub since: NaiveDate,
    /// The step's name.
    pub step: String,
    /// The step's role.
    pub role: NoticeRole,
    /// What it asked for.
    pub amount_cents: i64,
    /// The outbox message carrying it.
    pub outbox_key: String,
    /// When it was recorded.
    pub queued_at: DateTime<Utc>,
    /// When the mail server accepted it.
    #[serde(default)]
    pub sent_at: Option<DateTime<Utc>>,
    /// Where it stands.
    pub status: NoticeStatus,
}

impl Notice {
    /// The key of the notice for `step` of the cadence that started on
    /// `since` for `account`.
    pub fn key_for(account: &str, since: NaiveDate, step: &str) -> String {
        format!("{account}/{}/{step}", since.format("%Y-%m-%d"))
    }
}

impl Record for Notice {
    const COLLECTION: &'static str = "notices";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.key.clone()
    }
}

/// The day the first statement of `notices` (one account's) was sent.
pub fn first_statement_date(notices: &[Notice]) -> Option<DateTime<Utc>> {
    notices
        .iter()
        .filter(|n| n.role == NoticeRole::Statement)
        .filter_map(|n| n.sent_at)
        .min()
}

/// When the latest final notice of `notices` (one account's) was sent.
pub fn final_notice_date(notices: &[Notice]) -> Option<DateTime<Utc>> {
    notices
        .iter()
        .filter(|n| n.role == NoticeRole::FinalNotice)
        .filter_map(|n| n.sent_at)
        .max()
}

/// One account's notices, oldest cadence first.
pub fn notices_of(
    db: &crate::store::Db,
    account: &str,
) -> Result<Vec<Notice>, crate::store::StoreError> {
    db.scan::<Notice>(&format!("{account}/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::hold::{HoldKind, blocker, tests::hold};
    use crate::domain::plan::{self, Interval, tests::plan};
    use chrono::TimeZone;

    fn at(day: NaiveDate) -> DateTime<Utc> {
        Utc.from_utc_datetime(&day.and_hms_opt(12, 0, 0).unwrap())
    }

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Duration::days(n)
    }

    fn e(id: &str, claim: Option<&str>, on: i64, kind: LedgerKind, cents: i64) -> LedgerEntry {
        LedgerEntry {
            id: format!("P1/{id}"),
            account_id: "P1".into(),
            claim_id: claim.map(str::to_string),
            posted_at: at(day(on)),
            kind,
            amount_cents: cents,
            source: "t".into(),
        }
    }

    /// A claim of 100.00 the insurer settled on day 0, leaving 20.00 to the
    /// patient.
    fn settled() -> Vec<LedgerEntry> {
        vec![
            e("1", Some("C1"), 0, LedgerKind::Charge, 10_000),
            e("2", Some("C1"), 0, LedgerKind::InsurancePayment, -8_000),
            e(
                "3",
                Some("C1"),
                0,
                LedgerKind::Adjustment {
                    group: "PR".into(),
                    reason: "2".into(),
                },
                -2_000,
            ),
            e("4", Some("C1"), 0, LedgerKind::PatientResponsibility, 2_000),
        ]
    }

    fn facts<'a>(entries: &'a [LedgerEntry], recorded: &'a [String]) -> Facts<'a> {
        Facts {
            entries,
            blocker: None,
            opted_out: false,
            has_email: true,
            recorded,
        }
    }

    fn step_of(d: &Decision) -> Option<String> {
        match d {
            Decision::Send { step, .. } => Some(Cadence::standard().steps()[*step].name.clone()),
            _ => None,
        }
    }

    #[test]
    fn the_standard_cadence_sends_each_step_on_its_day_once() {
        let c = Cadence::standard();
        let es = settled();
        let none: Vec<String> = vec![];
        let d0 = decide(&c, &facts(&es, &none), 500, day(0));
        assert_eq!(step_of(&d0).as_deref(), Some("statement"));
        if let Decision::Send { billable, .. } = d0 {
            assert_eq!(
                billable,
                Billable {
                    cents: 2_000,
                    since: day(0)
                }
            );
        }
        let sent = vec!["statement".to_string()];
        assert_eq!(
            decide(&c, &facts(&es, &sent), 500, day(29)),
            Decision::Skip(Skip::NotYetDue)
        );
        assert_eq!(
            step_of(&decide(&c, &facts(&es, &sent), 500, day(30))).as_deref(),
            Some("reminder-30")
        );
        let sent = vec!["statement".into(), "reminder-30".into()];
        assert_eq!(
            step_of(&decide(&c, &facts(&es, &sent), 500, day(61))).as_deref(),
            Some("reminder-60")
        );
        let sent = vec![
            "statement".into(),
            "reminder-30".into(),
            "reminder-60".into(),
        ];
        assert_eq!(
            step_of(&decide(&c, &facts(&es, &sent), 500, day(95))).as_deref(),
            Some("final-90")
        );
        let sent = vec!["final-90".to_string()];
        assert_eq!(
            decide(&c, &facts(&es, &sent), 500, day(200)),
            Decision::Skip(Skip::CadenceDone)
        );
        // A step missed (the account was held) is not sent late: on day 65
        // the 60-day reminder goes, not the 30-day one.
        let sent = vec!["statement".to_string()];
        assert_eq!(
            step_of(&decide(&c, &facts(&es, &sent), 500, day(65))).as_deref(),
            Some("reminder-60")
        );
        assert_eq!(c.role(0), NoticeRole::Statement);
        assert_eq!(c.role(2), NoticeRole::Reminder);
        assert_eq!(c.role(3), NoticeRole::FinalNotice);
    }

    #[test]
    fn the_sending_window_is_half_open_and_may_cross_midnight() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let w = Window::default();
        assert!(!w.contains(t(7, 59)));
        assert!(w.contains(t(8, 0)));
        assert!(w.contains(t(20, 59)));
        assert!(!w.contains(t(21, 0)));
        let night = Window::parse("22:00-02:00").unwrap();
        assert!(night.contains(t(23, 0)) && night.contains(t(1, 59)));
        assert!(!night.contains(t(2, 0)) && !night.contains(t(12, 0)));
        assert!(Window::parse("8-21").is_err());
        assert!(Window::parse("08:00-08:00").is_err());
    }

    #[test]
    fn cadences_are_checked() {
        let s = |name: &str, day| Step {
            name: name.into(),
            day,
            template: "statement".into(),
        };
        assert!(Cadence::new(vec![]).is_err());
        assert!(
            Cadence::new(vec![s("a", 0), s("a", 10)])
                .unwrap_err()
                .contains("repeated")
        );
        assert!(
            Cadence::new(vec![s("a", 10), s("b", 10)])
                .unwrap_err()
                .contains("after")
        );
        assert!(Cadence::new(vec![s("a b", 0)]).is_err());
        assert!(Cadence::new(vec![s("a", 0), s("b", 14)]).is_ok());
    }

    #[test]
    fn insurance_pending_on_the_balance_holds_the_notice() {
        let c = Cadence::standard();
        let none: Vec<String> = vec![];
        // The patient's share of C2 is known but the secondary has not paid.
        let mut es = vec![
            e("1", Some("C2"), 0, LedgerKind::Charge, 10_000),
            e("2", Some("C2"), 0, LedgerKind::InsurancePayment, -6_000),
            e("3", Some("C2"), 0, LedgerKind::PatientResponsibility, 1_000),
        ];
        assert_eq!(
            decide(&c, &facts(&es, &none), 0, day(5)),
            Decision::Skip(Skip::InsurancePending)
        );
        // A settled claim beside it is billed on its own, for its own amount.
        es.extend(settled());
        match decide(&c, &facts(&es, &none), 0, day(5)) {
            Decision::Send { billable, .. } => assert_eq!(billable.cents, 2_000),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(&c, &facts(&[], &none), 0, day(5)),
            Decision::Skip(Skip::NothingOwed)
        );
    }

    #[test]
    fn each_hold_kind_and_a_plan_in_good_standing_block_and_a_broken_plan_resumes() {
        let c = Cadence::standard();
        let es = settled();
        let none: Vec<String> = vec![];
        for kind in HoldKind::ALL {
            let mut f = facts(&es, &none);
            f.blocker = blocker(&[hold(kind, true)], None);
            assert!(
                matches!(
                    decide(&c, &f, 0, day(0)),
                    Decision::Skip(Skip::Blocked { .. })
                ),
                "{kind:?}"
            );
            f.blocker = blocker(&[hold(kind, false)], None);
            assert!(
                matches!(decide(&c, &f, 0, day(0)), Decision::Send { .. }),
                "{kind:?}"
            );
        }
        // A plan: 20.00 in two installments of 10.00, every 2 weeks, 5 days'
        // grace, first due day 30 (2026-01-31).
        let mut p = plan(2_000, 1_000, Interval::Weeks(2), 5);
        p.created_at = at(day(0));
        let mut es = es.clone();
        es.push(e("5", None, 30, LedgerKind::PatientPayment, -1_000));
        let standing = |es: &[LedgerEntry], today| {
            plan::standing(&p, &payments_since(es, p.created_at), today)
        };
        let mut f = facts(&es, &none);
        let s = standing(&es, day(40));
        assert!(s.holds(), "{s:?}");
        f.blocker = blocker(&[], s.holds().then_some(p.id.as_str()));
        assert!(matches!(
            decide(&c, &f, 0, day(40)),
            Decision::Skip(Skip::Blocked {
                blocker: Blocker::PaymentPlan { .. }
            })
        ));
        // The second installment (due day 44, grace to day 49) is missed.
        let s = standing(&es, day(50));
        assert!(
            matches!(s, plan::Standing::Broken { on, installment: 2 } if on == day(49).succ_opt().unwrap()),
            "{s:?}"
        );
        f.blocker = blocker(&[], s.holds().then_some(p.id.as_str()));
        let sent = vec!["statement".to_string()];
        f.recorded = &sent;
        match decide(&c, &f, 0, day(50)) {
            Decision::Send { step, billable } => {
                assert_eq!(c.steps()[step].name, "reminder-30");
                assert_eq!(billable.cents, 1_000);
            }
            other => panic!("dunning resumes after a broken plan: {other:?}"),
        }
    }

    #[test]
    fn opt_out_minimum_balance_and_a_missing_address() {
        let c = Cadence::standard();
        let es = settled();
        let none: Vec<String> = vec![];
        let mut f = facts(&es, &none);
        f.opted_out = true;
        assert_eq!(decide(&c, &f, 0, day(0)), Decision::Skip(Skip::OptedOut));
        f.opted_out = false;
        assert_eq!(
            decide(&c, &f, 2_001, day(0)),
            Decision::Skip(Skip::BelowMinimum { cents: 2_000 })
        );
        assert!(matches!(
            decide(&c, &f, 2_000, day(0)),
            Decision::Send { .. }
        ));
        f.has_email = false;
        assert!(matches!(
            decide(&c, &f, 0, day(0)),
            Decision::NoAddress { step: 0, .. }
        ));
    }

    #[test]
    fn first_statement_and_final_notice_dates_come_from_sent_notices() {
        let n = |step: &str, role, sent: Option<i64>| Notice {
            key: Notice::key_for("P1", day(0), step),
            account_id: "P1".into(),
            since: day(0),
            step: step.into(),
            role,
            amount_cents: 2_000,
            outbox_key: format!("dunning#{step}"),
            queued_at: at(day(0)),
            sent_at: sent.map(|d| at(day(d))),
            status: if sent.is_some() {
                NoticeStatus::Sent
            } else {
                NoticeStatus::Queued
            },
        };
        let ns = [
            n("statement", NoticeRole::Statement, Some(1)),
            n("reminder-30", NoticeRole::Reminder, Some(31)),
            n("final-90", NoticeRole::FinalNotice, None),
        ];
        assert_eq!(first_statement_date(&ns), Some(at(day(1))));
        assert_eq!(final_notice_date(&ns), None, "a queued notice is not sent");
        let mut ns = ns.to_vec();
        ns[2] = n("final-90", NoticeRole::FinalNotice, Some(91));
        assert_eq!(final_notice_date(&ns), Some(at(day(91))));
        assert_eq!(
            Notice::key_for("P1", day(0), "statement"),
            "P1/2026-01-01/statement"
        );
    }
}
