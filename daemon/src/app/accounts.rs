//! Patient account operations: one account with its ledger and balances,
//! the aging of every account's open balance (0–30, 31–60, 61–90, 91–120,
//! over 120 days), both derived from ledger entries alone, and a patient
//! payment taken at the desk, by phone or online, posted once per receipt.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{App, AppError};
use crate::domain::account::{self, AGING_BUCKETS, Aging, Balances, LedgerEntry, LedgerKind};

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

/// An account must be known (a patient or a ledger) to be held, planned
/// or paid.
pub(super) fn known_account(app: &App, id: &str) -> Result<(), AppError> {
    let db = app.db();
    if db.get::<account::Account>(id)?.is_some() || db.get::<crate::domain::Patient>(id)?.is_some()
    {
        Ok(())
    } else {
        Err(AppError::NoSuchAccount(id.to_string()))
    }
}

/// Account `id` with its ledger.
pub fn show(app: &App, id: &str) -> Result<AccountView, AppError> {
    let entries = account::entries(app.db(), id)?;
    if entries.is_empty() && app.db().get::<account::Account>(id)?.is_none() {
        return Err(AppError::NoSuchAccount(id.to_string()));
    }
    let as_of = app.today();
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
    let as_of = app.today();
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

/// What [`pay`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentReceipt {
    /// The ledger entry of the payment.
    pub entry: LedgerEntry,
    /// False when this receipt was posted before (nothing changed).
    pub posted: bool,
    /// The account's balances after it.
    pub balances: Balances,
}

/// Posts a patient payment of `cents` to account `id`, keyed by its
/// receipt `reference` (a card transaction id, a check number): the same
/// reference posts once, so a retried command or a re-sent request changes
/// nothing, and the same reference with another amount is refused. The
/// entry's source names the reference and who took the payment. Payment
/// plans read these entries to keep their installments.
pub fn pay(
    app: &App,
    id: &str,
    cents: i64,
    reference: &str,
    by: &str,
) -> Result<PaymentReceipt, AppError> {
    if cents <= 0 {
        return Err(AppError::Invalid(
            "amount: a payment must be more than 0.00".into(),
        ));
    }
    let reference = reference.trim();
    if reference.is_empty()
        || reference.len() > 64
        || !reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err(AppError::Invalid(
            "reference: give the receipt's id: 1 to 64 letters, digits, '-', '_', '.' or ':'"
                .into(),
        ));
    }
    known_account(app, id)?;
    let db = app.db();
    let now = app.now();
    let entry = LedgerEntry {
        id: format!("{id}/pay/{reference}"),
        account_id: id.to_string(),
        claim_id: None,
        posted_at: now,
        kind: LedgerKind::PatientPayment,
        amount_cents: -cents,
        source: format!("patient-payment:{reference}:{by}"),
    };
    let (entry, posted) = db.transact(|tx| {
        if let Some(old) = tx.get::<LedgerEntry>(&entry.id)? {
            return Ok::<_, crate::store::StoreError>((old, false));
        }
        tx.put(&entry)?;
        Ok((entry.clone(), true))
    })?;
    if entry.amount_cents != -cents {
        return Err(AppError::Invalid(format!(
            "reference: receipt {reference} was already posted to this account for another amount"
        )));
    }
    if posted {
        account::refresh_owing_since(db, id, now)?;
        db.flush()?;
    }
    Ok(PaymentReceipt {
        balances: account::balances(&account::entries(db, id)?),
        entry,
        posted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::posting::PostingModes;
    use crate::posting::{self, tests::submitted_claim};
    use std::sync::Arc;

    /// Submits claims (CLM01, charge) for patients P-0, P-1, ... and posts
    /// the managed-care 835 fixture that pays them.
    fn post_managed_care(app: &App, claims: &[(&str, i64)]) {
        let bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/x12/835/lfh__managed-care.835"),
        )
        .unwrap();
        for (i, (clm01, cents)) in claims.iter().enumerate() {
            submitted_claim(app.db(), clm01, i, *cents);
        }
        posting::post(
            app.db(),
            app.now(),
            "mc",
            &bytes[..],
            &PostingModes::default(),
        )
        .unwrap();
    }

    #[test]
    fn show_and_aging_follow_the_ledger_as_days_pass() {
        let clock = Arc::new(ManualClock::new(
            crate::app::testing::START.parse().unwrap(),
        ));
        let app = crate::app::testing::app("").with_clock(clock.clone());
        post_managed_care(&app, &[("5554555444", 80_000), ("8765432112", 120_000)]);
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

    #[test]
    fn a_patient_payment_posts_once_per_receipt_and_lowers_the_patient_balance() {
        let app = crate::app::testing::app("");
        post_managed_care(&app, &[("5554555444", 80_000)]);
        assert_eq!(show(&app, "P-0").unwrap().balances.patient_cents, 30_000);
        let r = pay(&app, "P-0", 10_000, "card-991", "desk").unwrap();
        assert!(r.posted);
        assert_eq!(r.balances.patient_cents, 20_000);
        assert_eq!(r.entry.kind, LedgerKind::PatientPayment);
        assert_eq!(r.entry.source, "patient-payment:card-991:desk");
        // A retry of the same receipt changes nothing.
        let again = pay(&app, "P-0", 10_000, "card-991", "desk").unwrap();
        assert!(!again.posted);
        assert_eq!(again.balances.patient_cents, 20_000);
        // The same receipt for another amount is refused, naming the field.
        let e = pay(&app, "P-0", 5_000, "card-991", "desk").unwrap_err();
        assert!(
            matches!(&e, AppError::Invalid(m) if m.starts_with("reference")),
            "{e}"
        );
        assert_eq!(show(&app, "P-0").unwrap().balances.patient_cents, 20_000);
        // Paying the rest clears the aging index.
        pay(&app, "P-0", 20_000, "chk-12", "mail").unwrap();
        let acct: account::Account = app.db().get("P-0").unwrap().unwrap();
        assert_eq!(acct.owing_since, None);
        for (cents, reference) in [(0, "x"), (-5, "y"), (100, ""), (100, "a/b")] {
            assert!(matches!(
                pay(&app, "P-0", cents, reference, "desk"),
                Err(AppError::Invalid(_))
            ));
        }
        assert!(matches!(
            pay(&app, "P-404", 100, "r", "desk"),
            Err(AppError::NoSuchAccount(_))
        ));
    }
}
