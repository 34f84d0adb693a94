//! Business days: Monday to Friday except the practice's holidays, in the
//! job's timezone. The eligibility sweep looks this many business days
//! ahead; a claim-status follow-up may be counted in them too.

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Utc, Weekday};
use std::collections::BTreeSet;

/// A holiday calendar.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    holidays: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// A calendar with these holidays.
    pub fn new(holidays: impl IntoIterator<Item = NaiveDate>) -> Calendar {
        Calendar {
            holidays: holidays.into_iter().collect(),
        }
    }

    /// Whether `d` is a business day.
    pub fn is_business_day(&self, d: NaiveDate) -> bool {
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&d)
    }

    /// The `n`-th business day after `d` (1: the next one).
    pub fn add_business_days(&self, d: NaiveDate, n: u32) -> NaiveDate {
        let mut day = d;
        let mut left = n;
        while left > 0 {
            day = day + Days::new(1);
            if self.is_business_day(day) {
                left -= 1;
            }
        }
        day
    }

    /// The window from the start of tomorrow to the end of the `n`-th
    /// business day after today, as instants (today as `now` reads in
    /// `tz`). Days in between that are not business days are inside the
    /// window: a Saturday clinic's patients are checked too.
    pub fn window_ahead(
        &self,
        now: DateTime<Utc>,
        tz: chrono_tz::Tz,
        n: u32,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        let today = now.with_timezone(&tz).date_naive();
        let start = local_midnight(today + Days::new(1), tz);
        let end = local_midnight(self.add_business_days(today, n) + Days::new(1), tz);
        (start, end)
    }
}

/// The first instant of `d` in `tz` (a DST gap at midnight moves it to the
/// first local time that exists).
pub fn local_midnight(d: NaiveDate, tz: chrono_tz::Tz) -> DateTime<Utc> {
    let mut t = d.and_hms_opt(0, 0, 0).expect("midnight exists");
    for _ in 0..4 {
        if let Some(at) = tz.from_local_datetime(&t).earliest() {
            return at.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(30);
    }
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, d).unwrap()
    }

    #[test]
    fn weekends_and_holidays_are_skipped() {
        let cal = Calendar::new([day(12, 25)]);
        // Thursday Dec 24 + 1 business day: Christmas Friday is a holiday,
        // then the weekend: Monday Dec 28.
        assert_eq!(cal.add_business_days(day(12, 24), 1), day(12, 28));
        assert_eq!(cal.add_business_days(day(12, 1), 2), day(12, 3));
        assert!(!cal.is_business_day(day(12, 5)));
    }

    #[test]
    fn the_window_is_read_in_the_practice_timezone() {
        let cal = Calendar::default();
        let tz = chrono_tz::America::Chicago;
        // 23:30 in Chicago on Friday Dec 4 is Saturday in UTC.
        let now: DateTime<Utc> = "2026-12-05T05:30:00Z".parse().unwrap();
        let (from, to) = cal.window_ahead(now, tz, 2);
        assert_eq!(from.to_rfc3339(), "2026-12-05T06:00:00+00:00");
        // Two business days after Friday: Monday and Tuesday; the window
        // ends at Wednesday's midnight.
        assert_eq!(to.to_rfc3339(), "2026-12-09T06:00:00+00:00");
    }
}
