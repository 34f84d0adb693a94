//! Patient account operations: one account with its ledger and balances,
//! and the aging of every account's open balance (0–30, 31–60, 61–90,
//! 91–120, over 120 days), both derived from ledger entries alone.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{App, AppError};
use crate::domain::account::{self, AGING_BUCKETS, Aging, Balances, LedgerEntry};

/// One account as `billd accounts show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// The account (patient) id.
    pub id: String,
    /// Insurance and patient balances, from the entries.
    pub balances: Balances,
    /// The open balance by age, as of `as_of`.
    pub aging: Aging,
    /// The day the aging is computed for (the practice's today).
    pub as_of: NaiveDate,
    /// Every entry, oldest first.
    pub entries: Vec<LedgerEntry>,
}

/// One account's line in the aging report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgingLine {
    /// The account id.
    pub account_id: String,
    /// Its balances.
    pub balances: Balances,
    /// Its open balance by age.
    pub aging: Aging,
}

/// The aging report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgingReport {
    /// The day it is computed for.
    pub as_of: NaiveDate,
    /// The bucket names, in the order of each aging array.
    pub buckets: Vec<String>,
    /// Every account with a balance, in id order.
    pub accounts: Vec<AgingLine>,
    /// All accounts together.
    pub totals: Aging,
}

fn today(app: &App) -> NaiveDate {
    app.now()
        .with_timezone(&app.config().practice.timezone)
        .date_naive()
}

/// Account `id` with its ledger.
pub fn show(app: &App, id: &str) -> Result<AccountView, AppError> {
    let entries = account::entries(app.db(), id)?;
    if entries.is_empty() && app.db().get::<account::Account>(id)?.is_none() {
        return Err(AppError::NoSuchAccount(id.to_string()));
    }
    let as_of = today(app);
    Ok(AccountView {
        id: id.to_string(),
        balances: account::balances(&entries),
        aging: account::aging(&entries, as_of),
        as_of,
        entries,
    })
}

/// Ages every account with a balance, reading the ledger one account at a
/// time (entries are keyed by account, so they come grouped).
pub fn aging(app: &App) -> Result<AgingReport, AppError> {
    let as_of = today(app);
    let mut report = AgingReport {
        as_of,
        buckets: AGING_BUCKETS.iter().map(|b| b.to_string()).collect(),
        accounts: Vec::new(),
        totals: Aging::default(),
    };
    let mut current: Vec<LedgerEntry> = Vec::new();
    let close = |entries: &mut Vec<LedgerEntry>, report: &mut AgingReport| {
        if entries.is_empty() {
            return;
        }
        let line = AgingLine {
            account_id: entries[0].account_id.clone(),
            balances: account::balances(entries),
            aging: account::aging(entries, as_of),
        };
        entries.clear();
        if line.balances.total_cents() != 0 || line.aging != Aging::default() {
            report.totals.add(&line.aging);
            report.accounts.push(line);
        }
    };
    app.db().for_each("", |e: LedgerEntry| {
        if current
            .first()
            .is_some_and(|f| f.account_id != e.account_id)
        {
            close(&mut current, &mut report);
        }
        current.push(e);
        true
    })?;
    close(&mut current, &mut report);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::posting::PostingModes;
    use crate::posting::{self, tests::submitted_claim};
    use std::sync::Arc;

    #[test]
    fn show_and_aging_follow_the_ledger_as_days_pass() {
        let clock = Arc::new(ManualClock::new(
            crate::app::testing::START.parse().unwrap(),
        ));
        let app = crate::app::testing::app("").with_clock(clock.clone());
        let bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/x12/835/lfh__managed-care.835"),
        )
        .unwrap();
        submitted_claim(app.db(), "5554555444", 0, 80_000);
        submitted_claim(app.db(), "8765432112", 1, 120_000);
        posting::post(
            app.db(),
            app.now(),
            "mc",
            &bytes[..],
            &PostingModes::default(),
        )
        .unwrap();
        let a = show(&app, "P-0").unwrap();
        assert_eq!(
            (a.balances.insurance_cents, a.balances.patient_cents),
            (0, 30_000)
        );
        assert_eq!(a.aging.patient_cents, [30_000, 0, 0, 0, 0]);
        assert_eq!(a.entries.len(), 5);
        assert!(matches!(show(&app, "P-9"), Err(AppError::NoSuchAccount(_))));
        clock.advance(chrono::Duration::days(95));
        let r = aging(&app).unwrap();
        assert_eq!(r.accounts.len(), 2);
        assert_eq!(r.buckets[3], "91-120");
        assert_eq!(r.totals.patient_cents, [0, 0, 0, 90_000, 0]);
        assert_eq!(r.totals.insurance_cents, [0; 5]);
        clock.advance(chrono::Duration::days(30));
        assert_eq!(
            aging(&app).unwrap().totals.patient_cents,
            [0, 0, 0, 0, 90_000]
        );
    }
}
