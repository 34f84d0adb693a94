//! Patient accounts and their ledger: what was charged, paid, adjusted and
//! owed, in integer cents. Balances are derived from the entries, never
//! stored beside them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::ops::Bound;

use crate::store::{Db, Page, Record, StoreError};

/// What a ledger entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum LedgerKind {
    /// A charge for services.
    Charge,
    /// Money from an insurer.
    InsurancePayment,
    /// A CARC adjustment (group and reason code).
    Adjustment {
        /// CAS group code (CO, PR, OA, PI, CR).
        group: String,
        /// Claim adjustment reason code.
        reason: String,
    },
    /// Moved to the patient's responsibility.
    PatientResponsibility,
    /// Money from the patient.
    PatientPayment,
    /// Written off by the practice.
    WriteOff,
    /// Undoes an earlier entry.
    Reversal {
        /// The entry undone.
        reverses: String,
    },
}

/// One line of a patient account's ledger. Amounts are integer cents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Entry id; its prefix is the account so a scan returns one account.
    pub id: String,
    /// The account (patient id).
    pub account_id: String,
    /// The claim it relates to, if any.
    #[serde(default)]
    pub claim_id: Option<String>,
    /// When it was posted.
    pub posted_at: DateTime<Utc>,
    /// What it records.
    pub kind: LedgerKind,
    /// Signed amount in cents (positive increases the balance).
    pub amount_cents: i64,
    /// Where it came from (for example `835:<payer>:<TRN02>:<CLP01>`), the
    /// idempotency key of the posting.
    pub source: String,
}

impl Record for LedgerEntry {
    const COLLECTION: &'static str = "ledger";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// A patient account: the patient's ledger (entries keyed `<account>/...`)
/// and when its oldest open patient balance started, which ages it.
/// Balances are never stored here: they are sums of entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account id (the patient id).
    pub id: String,
    /// When the account was opened.
    pub opened_at: DateTime<Utc>,
    /// Since when the patient has owed money (the date the oldest unpaid
    /// patient balance arose); `None` when nothing is owed.
    #[serde(default)]
    pub owing_since: Option<NaiveDate>,
}

/// The index of owing accounts by the date their balance arose.
pub const BY_AGE: &str = "owing_since";

impl Record for Account {
    const COLLECTION: &'static str = "accounts";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &[BY_AGE];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        self.owing_since
            .map(|d| (BY_AGE, d.format("%Y-%m-%d").to_string()))
            .into_iter()
            .collect()
    }
}

/// Accounts owing since `on_or_before` or earlier (at least that old),
/// oldest first, a page at a time (`after`: the page's `next` cursor).
pub fn owing_since(
    db: &Db,
    on_or_before: NaiveDate,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<Account>, StoreError> {
    let end = on_or_before.format("%Y-%m-%d").to_string();
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    db.index_range::<Account>(BY_AGE, start, Bound::Included(&end), Some(limit), false)
}

/// The balance of a set of entries, in cents: the sum of their amounts.
pub fn balance<'a>(entries: impl IntoIterator<Item = &'a LedgerEntry>) -> i64 {
    entries.into_iter().map(|e| e.amount_cents).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_sums_signed_cents() {
        let e = |id: &str, amount_cents| LedgerEntry {
            id: id.into(),
            account_id: "P1".into(),
            claim_id: None,
            posted_at: Utc::now(),
            kind: LedgerKind::Charge,
            amount_cents,
            source: "t".into(),
        };
        assert_eq!(
            balance(&[e("a", 12_500), e("b", -10_000), e("c", -1)]),
            2_499
        );
    }

    #[test]
    fn accounts_by_age_come_oldest_first_and_only_owing_ones() {
        let db = Db::in_memory();
        let d = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
        for (id, since) in [
            ("P1", Some(d(5, 1))),
            ("P2", None),
            ("P3", Some(d(3, 9))),
            ("P4", Some(d(11, 20))),
        ] {
            db.put(&Account {
                id: id.into(),
                opened_at: Utc::now(),
                owing_since: since,
            })
            .unwrap();
        }
        // 120 days before 2026-12-01 is 2026-08-03.
        let old = owing_since(&db, d(8, 3), None, 10).unwrap();
        let ids: Vec<&str> = old.items.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["P3", "P1"]);
        assert!(db.check_indexes::<Account>().unwrap().is_consistent());
    }
}
