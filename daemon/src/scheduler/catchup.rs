//! Deciding what to do about occurrences that passed unserved.

use chrono::{DateTime, Utc};
use std::time::Duration;

use super::{Misfire, Schedule};

/// Most missed occurrences recorded one by one after a downtime; beyond this
/// they are counted in the task raised, not recorded individually.
pub const MAX_RECORDED: usize = 1000;

/// What to do about the occurrences in `(through, now]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CatchUpPlan {
    /// The one occurrence to run now (run-once policy, within the window).
    pub run: Option<DateTime<Utc>>,
    /// Occurrences not run and why.
    pub skipped: Vec<(DateTime<Utc>, SkipReason)>,
    /// Occurrences left out of `skipped` because there were too many.
    pub not_recorded: usize,
    /// Whether a biller should be told that the job did not run.
    pub raise_task: bool,
    /// The latest occurrence in the range (the cursor moves here).
    pub latest: Option<DateTime<Utc>>,
}

/// Why an occurrence did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A catch-up run for a later occurrence covers it.
    Superseded,
    /// The misfire policy is `skip`.
    PolicySkip,
    /// Too old for the catch-up window.
    OutsideWindow,
}

impl SkipReason {
    /// A short text for the run history.
    pub fn text(self) -> &'static str {
        match self {
            SkipReason::Superseded => "superseded by the catch-up run",
            SkipReason::PolicySkip => "missed while billd was down (misfire = skip)",
            SkipReason::OutsideWindow => "missed while billd was down, outside the catch-up window",
        }
    }
}

/// Plans the occurrences in `(through, now]`.
pub fn plan(
    schedule: &Schedule,
    through: DateTime<Utc>,
    now: DateTime<Utc>,
    misfire: Misfire,
    window: Duration,
) -> CatchUpPlan {
    let Some(latest) = schedule.last_between(through, now) else {
        return CatchUpPlan::default();
    };
    let (mut listed, more) = schedule.between(through, now, MAX_RECORDED);
    let mut not_recorded = 0;
    if more {
        // Count, without keeping, what lies between the recorded ones and the
        // latest; the latest is always recorded.
        let last_listed = *listed.last().expect("more implies some listed");
        not_recorded = schedule
            .iter_after(last_listed)
            .take_while(|t| *t < latest)
            .take(10_000_000)
            .count();
        listed.push(latest);
    }
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let mut plan = CatchUpPlan {
        latest: Some(latest),
        not_recorded,
        ..Default::default()
    };
    match misfire {
        Misfire::RunOnce if now - latest <= window => {
            plan.run = Some(latest);
            plan.skipped = listed
                .into_iter()
                .filter(|t| *t != latest)
                .map(|t| (t, SkipReason::Superseded))
                .collect();
        }
        Misfire::RunOnce => {
            plan.raise_task = true;
            plan.skipped = listed
                .into_iter()
                .map(|t| (t, SkipReason::OutsideWindow))
                .collect();
        }
        Misfire::Skip => {
            plan.raise_task = true;
            plan.skipped = listed
                .into_iter()
                .map(|t| (t, SkipReason::PolicySkip))
                .collect();
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn hourly() -> Schedule {
        Schedule::parse_in("0 * * * *", "UTC").unwrap()
    }

    #[test]
    fn nothing_due_plans_nothing() {
        let p = plan(
            &hourly(),
            t("2027-01-01T00:00:00Z"),
            t("2027-01-01T00:59:00Z"),
            Misfire::RunOnce,
            Duration::from_secs(3600),
        );
        assert_eq!(p, CatchUpPlan::default());
    }

    #[test]
    fn run_once_runs_the_latest_and_supersedes_the_rest() {
        let p = plan(
            &hourly(),
            t("2027-01-01T00:00:00Z"),
            t("2027-01-01T03:10:00Z"),
            Misfire::RunOnce,
            Duration::from_secs(3600),
        );
        assert_eq!(p.run, Some(t("2027-01-01T03:00:00Z")));
        assert_eq!(
            p.skipped,
            vec![
                (t("2027-01-01T01:00:00Z"), SkipReason::Superseded),
                (t("2027-01-01T02:00:00Z"), SkipReason::Superseded)
            ]
        );
        assert!(!p.raise_task);
        assert_eq!(p.latest, Some(t("2027-01-01T03:00:00Z")));
    }

    #[test]
    fn run_once_outside_window_runs_nothing_and_tells_a_biller() {
        let p = plan(
            &hourly(),
            t("2027-01-01T00:00:00Z"),
            t("2027-01-01T03:10:00Z"),
            Misfire::RunOnce,
            Duration::from_secs(300),
        );
        assert_eq!(p.run, None);
        assert_eq!(p.skipped.len(), 3);
        assert!(p.raise_task);
    }

    #[test]
    fn skip_runs_none() {
        let p = plan(
            &hourly(),
            t("2027-01-01T00:00:00Z"),
            t("2027-01-01T02:00:00Z"),
            Misfire::Skip,
            Duration::from_secs(36000),
        );
        assert_eq!(p.run, None);
        assert_eq!(
            p.skipped.iter().map(|s| s.1).collect::<Vec<_>>(),
            [SkipReason::PolicySkip; 2]
        );
        assert!(p.raise_task);
    }

    #[test]
    fn long_downtime_is_counted_not_listed() {
        let s = Schedule::parse_in("* * * * * *", "UTC").unwrap();
        let p = plan(
            &s,
            t("2027-01-01T00:00:00Z"),
            t("2027-01-01T01:00:00Z"),
            Misfire::RunOnce,
            Duration::from_secs(60),
        );
        assert_eq!(p.run, Some(t("2027-01-01T01:00:00Z")));
        assert_eq!(p.skipped.len() + 1 + p.not_recorded, 3600);
        assert!(p.skipped.len() <= MAX_RECORDED);
    }
}
