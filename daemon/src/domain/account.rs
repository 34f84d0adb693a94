//! Patient accounts and their ledger: what was charged, paid, adjusted and
//! owed, in integer cents. Balances are derived from the entries, never
//! stored beside them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::Record;

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
}
