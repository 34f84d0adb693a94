//! Payment plans: a patient pays a balance in installments on a schedule.
//!
//! A plan in good standing holds statements and collections; an
//! installment still unpaid when its grace period is over breaks the plan
//! (on the day after the grace period), and dunning resumes. Everything
//! here is pure: the schedule, how payments apply to installments in
//! order, and the plan's standing on a day. Callers read the payments from
//! the ledger and record what [`standing`] says.

use chrono::{DateTime, Days, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::store::Record;

/// How far apart installments fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "unit", content = "count")]
pub enum Interval {
    /// Every N days.
    Days(u32),
    /// Every N weeks.
    Weeks(u32),
    /// Every N calendar months (the same day of the month, or the month's
    /// last day when it is shorter).
    Months(u32),
}

impl Interval {
    /// Reads `weekly`, `biweekly`, `monthly`, or a count and a unit:
    /// `14d`, `2w`, `1m`.
    pub fn parse(text: &str) -> Result<Interval, String> {
        let t = text.trim().to_ascii_lowercase();
        let fixed = match t.as_str() {
            "weekly" => Some(Interval::Weeks(1)),
            "biweekly" => Some(Interval::Weeks(2)),
            "monthly" => Some(Interval::Months(1)),
            _ => None,
        };
        if let Some(i) = fixed {
            return Ok(i);
        }
        let bad = || {
            format!("`{text}` is not an interval (weekly, biweekly, monthly, or like 14d, 2w, 1m)")
        };
        let (n, unit) = t.split_at(t.len().saturating_sub(1));
        let n: u32 = n.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        match unit {
            "d" => Ok(Interval::Days(n)),
            "w" => Ok(Interval::Weeks(n)),
            "m" => Ok(Interval::Months(n)),
            _ => Err(bad()),
        }
    }

    /// The short form (`14d`, `2w`, `1m`).
    pub fn text(self) -> String {
        match self {
            Interval::Days(n) => format!("{n}d"),
            Interval::Weeks(n) => format!("{n}w"),
            Interval::Months(n) => format!("{n}m"),
        }
    }

    /// The `n`th date after `start` (`n = 0` is `start`).
    pub fn nth(self, start: NaiveDate, n: u32) -> Option<NaiveDate> {
        match self {
            Interval::Days(d) => start.checked_add_days(Days::new(u64::from(d) * u64::from(n))),
            Interval::Weeks(w) => {
                start.checked_add_days(Days::new(7 * u64::from(w) * u64::from(n)))
            }
            Interval::Months(m) => start.checked_add_months(Months::new(m.checked_mul(n)?)),
        }
    }
}

/// Who cancelled a plan, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCancel {
    /// Who.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A payment plan on one account. Amounts are integer cents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentPlan {
    /// `<account>/PL<number>`.
    pub id: String,
    /// The account (patient id).
    pub account_id: String,
    /// What the plan pays off in all.
    pub total_cents: i64,
    /// Each installment (the last one is what remains).
    pub installment_cents: i64,
    /// The first installment's due date.
    pub start: NaiveDate,
    /// How far apart installments fall.
    pub interval: Interval,
    /// Days after a due date an installment may still be paid.
    pub grace_days: u32,
    /// Who set it up.
    pub created_by: String,
    /// When; payments posted from then on count toward it.
    pub created_at: DateTime<Utc>,
    /// Set when a biller cancelled it.
    #[serde(default)]
    pub cancelled: Option<PlanCancel>,
    /// The day it broke (an installment unpaid past its grace), once
    /// recorded.
    #[serde(default)]
    pub broken_on: Option<NaiveDate>,
}

impl Record for PaymentPlan {
    const COLLECTION: &'static str = "payment_plans";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// Why a plan's terms are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The total is not above zero.
    #[error("total: must be above zero")]
    Total,
    /// The installment is not above zero, or above the total.
    #[error("installment: must be above zero and at most the total")]
    Installment,
    /// More installments than a plan may have (600).
    #[error("installment: {0} installments; at most 600")]
    TooMany(i64),
}

/// The most installments one plan may have (50 years of monthly ones).
pub const MAX_INSTALLMENTS: i64 = 600;

/// Checks a plan's amounts.
pub fn check_terms(total_cents: i64, installment_cents: i64) -> Result<(), PlanError> {
    if total_cents <= 0 {
        return Err(PlanError::Total);
    }
    if installment_cents <= 0 || installment_cents > total_cents {
        return Err(PlanError::Installment);
    }
    let n = (total_cents + installment_cents - 1) / installment_cents;
    if n > MAX_INSTALLMENTS {
        return Err(PlanError::TooMany(n));
    }
    Ok(())
}

/// One installment of a plan's schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installment {
    /// 1 for the first.
    pub number: u32,
    /// When it is due.
    pub due: NaiveDate,
    /// How much, in cents.
    pub amount_cents: i64,
}

/// The plan's installments, in order: equal ones, the last one what
/// remains of the total.
pub fn schedule(plan: &PaymentPlan) -> Vec<Installment> {
    let mut out = Vec::new();
    let mut left = plan.total_cents;
    let mut n = 0u32;
    while left > 0 && plan.installment_cents > 0 && i64::from(n) < MAX_INSTALLMENTS {
        let Some(due) = plan.interval.nth(plan.start, n) else {
            break;
        };
        let amount = plan.installment_cents.min(left);
        out.push(Installment {
            number: n + 1,
            due,
            amount_cents: amount,
        });
        left -= amount;
        n += 1;
    }
    out
}

/// Where a plan stands on a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Standing {
    /// Paid up so far: statements and collections wait.
    GoodStanding {
        /// Paid toward the plan so far.
        paid_cents: i64,
        /// The next installment not yet fully paid.
        next: Option<Installment>,
    },
    /// Every installment paid.
    Completed {
        /// Paid toward the plan.
        paid_cents: i64,
    },
    /// An installment was unpaid when its grace period ended.
    Broken {
        /// The day the plan broke (the day after the grace period).
        on: NaiveDate,
        /// The installment missed.
        installment: u32,
    },
    /// A biller cancelled it.
    Cancelled {
        /// When.
        at: DateTime<Utc>,
    },
}

impl Standing {
    /// Whether the plan holds statements and collections.
    pub fn holds(&self) -> bool {
        matches!(self, Standing::GoodStanding { .. })
    }
}

/// The plan's standing on `today`, given the patient's payments toward it
/// as (day paid, cents paid, positive). Payments apply to installments in
/// order; installment k is missed when what was paid by the last day of
/// its grace period does not cover installments 1 to k. A break, once
/// recorded in [`PaymentPlan::broken_on`], stays: a late payment does not
/// mend a broken plan (a biller sets up a new one).
pub fn standing(plan: &PaymentPlan, payments: &[(NaiveDate, i64)], today: NaiveDate) -> Standing {
    if let Some(c) = &plan.cancelled {
        return Standing::Cancelled { at: c.at };
    }
    let paid_by = |day: NaiveDate| -> i64 {
        payments
            .iter()
            .filter(|(d, _)| *d <= day)
            .map(|(_, c)| *c)
            .sum()
    };
    let mut owed = 0i64;
    for inst in schedule(plan) {
        owed += inst.amount_cents;
        let Some(last_day) = inst
            .due
            .checked_add_days(Days::new(u64::from(plan.grace_days)))
        else {
            break;
        };
        if last_day >= today {
            break;
        }
        if paid_by(last_day) < owed {
            let on = last_day.succ_opt().unwrap_or(last_day);
            return Standing::Broken {
                on: plan.broken_on.map_or(on, |b| b.min(on)),
                installment: inst.number,
            };
        }
    }
    if let Some(on) = plan.broken_on {
        return Standing::Broken { on, installment: 0 };
    }
    let paid = paid_by(today);
    if paid >= plan.total_cents {
        return Standing::Completed { paid_cents: paid };
    }
    let mut cumulative = 0i64;
    let next = schedule(plan).into_iter().find(|i| {
        cumulative += i.amount_cents;
        cumulative > paid
    });
    Standing::GoodStanding {
        paid_cents: paid,
        next,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, day).unwrap()
    }

    pub(crate) fn plan(total: i64, each: i64, interval: Interval, grace: u32) -> PaymentPlan {
        PaymentPlan {
            id: "P1/PL000001".into(),
            account_id: "P1".into(),
            total_cents: total,
            installment_cents: each,
            start: d(1, 31),
            interval,
            grace_days: grace,
            created_by: "dana".into(),
            created_at: Utc::now(),
            cancelled: None,
            broken_on: None,
        }
    }

    #[test]
    fn intervals_parse_and_months_keep_the_day_or_the_month_end() {
        assert_eq!(Interval::parse("monthly"), Ok(Interval::Months(1)));
        assert_eq!(Interval::parse("biweekly"), Ok(Interval::Weeks(2)));
        assert_eq!(Interval::parse("10d"), Ok(Interval::Days(10)));
        assert!(Interval::parse("0d").is_err());
        assert!(Interval::parse("fortnightly").is_err());
        let s = schedule(&plan(10_000, 3_000, Interval::Months(1), 5));
        let dues: Vec<NaiveDate> = s.iter().map(|i| i.due).collect();
        assert_eq!(dues, [d(1, 31), d(2, 28), d(3, 31), d(4, 30)]);
        let amounts: Vec<i64> = s.iter().map(|i| i.amount_cents).collect();
        assert_eq!(amounts, [3_000, 3_000, 3_000, 1_000]);
        assert_eq!(check_terms(10_000, 0), Err(PlanError::Installment));
        assert_eq!(check_terms(10_000, 10_001), Err(PlanError::Installment));
        assert_eq!(check_terms(0, 1), Err(PlanError::Total));
        assert_eq!(check_terms(100_000, 1), Err(PlanError::TooMany(100_000)));
        assert_eq!(check_terms(10_000, 3_000), Ok(()));
    }

    #[test]
    fn payments_apply_in_order_and_a_plan_stays_good_within_grace() {
        let p = plan(9_000, 3_000, Interval::Weeks(2), 5);
        // Nothing due yet.
        assert!(standing(&p, &[], d(1, 30)).holds());
        // First installment unpaid but within grace (due 1-31, grace to 2-5).
        assert!(standing(&p, &[], d(2, 5)).holds());
        // Paid on the last day of grace: good; the next one is number 2.
        let pays = [(d(2, 5), 3_000)];
        match standing(&p, &pays, d(2, 10)) {
            Standing::GoodStanding { paid_cents, next } => {
                assert_eq!(paid_cents, 3_000);
                assert_eq!(next.unwrap().number, 2);
            }
            other => panic!("{other:?}"),
        }
        // One payment covering two installments carries over.
        let pays = [(d(1, 20), 6_000)];
        match standing(&p, &pays, d(2, 25)) {
            Standing::GoodStanding { next, .. } => assert_eq!(next.unwrap().number, 3),
            other => panic!("{other:?}"),
        }
        let all = [(d(1, 20), 6_000), (d(2, 28), 3_000)];
        assert_eq!(
            standing(&p, &all, d(3, 30)),
            Standing::Completed { paid_cents: 9_000 }
        );
    }

    #[test]
    fn a_missed_installment_past_grace_breaks_the_plan_with_its_date() {
        let p = plan(9_000, 3_000, Interval::Weeks(2), 5);
        // Installment 1 due 1-31, grace to 2-5: broken on 2-6.
        assert_eq!(
            standing(&p, &[], d(2, 6)),
            Standing::Broken {
                on: d(2, 6),
                installment: 1
            }
        );
        // A partial payment is not enough.
        assert!(!standing(&p, &[(d(2, 1), 2_999)], d(2, 6)).holds());
        // Installment 2 (due 2-14, grace to 2-19) missed after paying the first.
        let s = standing(&p, &[(d(1, 31), 3_000)], d(3, 1));
        assert_eq!(
            s,
            Standing::Broken {
                on: d(2, 20),
                installment: 2
            }
        );
        // A late payment does not mend it once recorded.
        let mut recorded = p.clone();
        recorded.broken_on = Some(d(2, 20));
        let late = [(d(1, 31), 3_000), (d(2, 25), 6_000)];
        assert!(matches!(
            standing(&recorded, &late, d(3, 1)),
            Standing::Broken { on, .. } if on == d(2, 20)
        ));
    }

    #[test]
    fn a_cancelled_plan_holds_nothing() {
        let mut p = plan(9_000, 3_000, Interval::Months(1), 5);
        let at = Utc::now();
        p.cancelled = Some(PlanCancel {
            by: "dana".into(),
            at,
        });
        assert_eq!(standing(&p, &[], d(1, 1)), Standing::Cancelled { at });
        assert!(!standing(&p, &[], d(1, 1)).holds());
    }
}
