//! A job's schedule: a cron expression read in one IANA timezone.
//!
//! The rules a billing office expects across daylight-saving changes (Vixie
//! cron's, as croner implements them):
//! - a fixed local time that falls in a spring-forward gap fires once, at the
//!   first instant after the gap (02:30 on the spring-forward day fires at
//!   03:00 local);
//! - a fixed local time that occurs twice in the fall-back hour fires once,
//!   at its first occurrence;
//! - interval schedules (`*/15 * * * *`) follow real elapsed time.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// Why a schedule could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The cron expression did not parse.
    #[error("bad cron expression `{expr}`: {reason}")]
    BadExpression {
        /// The expression as written.
        expr: String,
        /// What the parser said.
        reason: String,
    },
    /// The timezone is not an IANA name chrono-tz knows.
    #[error("unknown timezone `{0}`")]
    UnknownTimezone(String),
}

/// Parses a cron expression the one way billd accepts them: 5 fields, or 6
/// with leading seconds; no year field.
pub fn parse_cron(expr: &str) -> Result<Cron, croner::errors::CronError> {
    crate::config::parse_schedule(expr)
}

/// A parsed cron expression bound to a timezone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    /// Parses a 5-field (minute precision) or 6-field (leading seconds) cron
    /// expression, or a nickname such as `@daily`, read in `tz`.
    pub fn parse(expr: &str, tz: Tz) -> Result<Self, ScheduleError> {
        let cron = parse_cron(expr).map_err(|e| ScheduleError::BadExpression {
            expr: expr.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            expr: expr.to_string(),
            cron,
            tz,
        })
    }

    /// Parses with the timezone given by its IANA name.
    pub fn parse_in(expr: &str, tz_name: &str) -> Result<Self, ScheduleError> {
        let tz: Tz = tz_name
            .parse()
            .map_err(|_| ScheduleError::UnknownTimezone(tz_name.to_string()))?;
        Self::parse(expr, tz)
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The timezone the expression is read in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first firing instant strictly after `after`, or `None` if the
    /// expression can never fire again (for example 30 February).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Firing instants strictly after `after`, in order.
    pub fn iter_after(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let mut cursor = after;
        std::iter::from_fn(move || {
            let next = self.next_after(cursor)?;
            cursor = next;
            Some(next)
        })
    }

    /// Firing instants in `(after, until]`, at most `cap` of them, and whether
    /// more were left out.
    pub fn between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        cap: usize,
    ) -> (Vec<DateTime<Utc>>, bool) {
        let mut out = Vec::new();
        for t in self.iter_after(after) {
            if t > until {
                return (out, false);
            }
            if out.len() == cap {
                return (out, true);
            }
            out.push(t);
        }
        (out, false)
    }

    /// The latest firing instant in `(after, until]`, found without walking
    /// every occurrence in between.
    pub fn last_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut probe = until;
        let mut inclusive = true;
        // A backward search can land on an instant the forward rules never
        // fire (the second pass of a fixed time in a repeated hour). Accept
        // only instants a forward search would produce; a few steps suffice.
        for _ in 0..8 {
            let prev = self
                .cron
                .find_previous_occurrence(&probe.with_timezone(&self.tz), inclusive)
                .ok()?
                .with_timezone(&Utc);
            if prev <= after {
                return None;
            }
            if self.next_after(prev - chrono::Duration::seconds(1)) == Some(prev) {
                // The backward search may also have stepped over a firing the
                // forward rules add (a gap time moved past the gap): walk
                // forward from the answer to the last firing before `until`.
                let mut best = prev;
                while let Some(n) = self.next_after(best).filter(|n| *n <= until) {
                    best = n;
                }
                return Some(best);
            }
            probe = prev;
            inclusive = false;
        }
        self.between(after, until, usize::MAX).0.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next3(expr: &str, tz: &str, after: &str) -> Vec<String> {
        let s = Schedule::parse_in(expr, tz).unwrap();
        s.iter_after(t(after))
            .take(3)
            .map(|u| u.with_timezone(&s.timezone()).to_rfc3339())
            .collect()
    }

    #[test]
    fn spring_forward_gap_fires_at_first_instant_after_gap() {
        assert_eq!(
            next3(
                "30 2 * * *",
                "America/New_York",
                "2027-03-13T00:00:00-05:00"
            ),
            [
                "2027-03-13T02:30:00-05:00",
                "2027-03-14T03:00:00-04:00",
                "2027-03-15T02:30:00-04:00"
            ]
        );
    }

    #[test]
    fn fall_back_repeated_hour_fires_once() {
        assert_eq!(
            next3(
                "30 1 * * *",
                "America/New_York",
                "2027-11-06T00:00:00-04:00"
            ),
            [
                "2027-11-06T01:30:00-04:00",
                "2027-11-07T01:30:00-04:00",
                "2027-11-08T01:30:00-05:00"
            ]
        );
    }

    #[test]
    fn intervals_follow_real_time_across_fall_back() {
        let s = Schedule::parse_in("*/30 * * * *", "America/New_York").unwrap();
        let got: Vec<_> = s
            .iter_after(t("2027-11-07T00:45:00-04:00"))
            .take(5)
            .collect();
        for w in got.windows(2) {
            assert_eq!(w[1] - w[0], chrono::Duration::minutes(30), "{got:?}");
        }
    }

    #[test]
    fn seconds_field_is_accepted() {
        let s = Schedule::parse_in("*/10 * * * * *", "UTC").unwrap();
        let got: Vec<_> = s.iter_after(t("2027-01-01T00:00:05Z")).take(2).collect();
        assert_eq!(got, [t("2027-01-01T00:00:10Z"), t("2027-01-01T00:00:20Z")]);
    }

    #[test]
    fn bad_expressions_and_zones_are_refused() {
        assert!(matches!(
            Schedule::parse_in("61 * * * *", "UTC"),
            Err(ScheduleError::BadExpression { .. })
        ));
        assert!(matches!(
            Schedule::parse_in("* * * * * * 2027", "UTC"),
            Err(ScheduleError::BadExpression { .. })
        ));
        assert_eq!(
            Schedule::parse_in("* * * * *", "America/Gotham").unwrap_err(),
            ScheduleError::UnknownTimezone("America/Gotham".into())
        );
    }

    #[test]
    fn between_lists_and_caps() {
        let s = Schedule::parse_in("0 * * * *", "UTC").unwrap();
        let (v, more) = s.between(t("2027-01-01T00:00:00Z"), t("2027-01-01T05:00:00Z"), 10);
        assert_eq!(v.len(), 5);
        assert!(!more);
        let (v, more) = s.between(t("2027-01-01T00:00:00Z"), t("2027-01-01T05:00:00Z"), 3);
        assert_eq!(v.len(), 3);
        assert!(more);
    }

    #[test]
    fn last_between_agrees_with_walking() {
        let cases = [
            (
                "30 2 * * *",
                "America/New_York",
                "2027-03-10T00:00:00Z",
                "2027-03-16T00:00:00Z",
            ),
            (
                "30 1 * * *",
                "America/New_York",
                "2027-11-05T00:00:00Z",
                "2027-11-07T06:00:00Z",
            ),
            (
                "30 1 * * *",
                "America/New_York",
                "2027-11-05T00:00:00Z",
                "2027-11-07T06:31:00Z",
            ),
            (
                "*/7 * * * *",
                "Europe/Berlin",
                "2027-10-31T00:00:00Z",
                "2027-10-31T01:30:00Z",
            ),
            (
                "0 9 * * 1-5",
                "Australia/Lord_Howe",
                "2027-03-01T00:00:00Z",
                "2027-04-20T00:00:00Z",
            ),
        ];
        for (expr, tz, a, u) in cases {
            let s = Schedule::parse_in(expr, tz).unwrap();
            let (all, _) = s.between(t(a), t(u), 100_000);
            assert_eq!(
                s.last_between(t(a), t(u)),
                all.last().copied(),
                "{expr} {tz} {u}"
            );
        }
        let s = Schedule::parse_in("0 9 * * *", "UTC").unwrap();
        assert_eq!(
            s.last_between(t("2027-01-01T09:00:00Z"), t("2027-01-01T10:00:00Z")),
            None
        );
    }
}
