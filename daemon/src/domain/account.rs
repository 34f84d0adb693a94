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
    /// Set when the patient opted out of dunning email (`billd patients
    /// opt-out`, or the List-Unsubscribe of a notice).
    #[serde(default)]
    pub opt_out: Option<OptOut>,
}

/// A patient's opt-out of dunning email: who recorded it, when, and how
/// the patient asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOut {
    /// Who recorded it.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// How the patient asked (`phone`, `unsubscribe-link`, ...), if said.
    #[serde(default)]
    pub via: Option<String>,
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

/// Who owes the part of the balance an entry makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The insurer (charges not yet paid, adjusted or moved to the patient).
    Insurance,
    /// The patient.
    Patient,
}

impl LedgerKind {
    /// Whose balance this kind of entry moves ([`LedgerKind::Reversal`]
    /// moves whoever the reversed entry moved: see [`parties`]).
    pub fn party(&self) -> Party {
        match self {
            LedgerKind::PatientResponsibility | LedgerKind::PatientPayment => Party::Patient,
            _ => Party::Insurance,
        }
    }
}

/// The party of each entry, a reversal taking the party of the entry it
/// reverses (looked up among `entries`).
pub fn parties(entries: &[LedgerEntry]) -> Vec<Party> {
    let by_id: std::collections::HashMap<&str, &LedgerKind> =
        entries.iter().map(|e| (e.id.as_str(), &e.kind)).collect();
    entries
        .iter()
        .map(|e| {
            let mut kind = &e.kind;
            // A reversal of a reversal resolves to the original.
            for _ in 0..4 {
                match kind {
                    LedgerKind::Reversal { reverses } => match by_id.get(reverses.as_str()) {
                        Some(k) => kind = k,
                        None => break,
                    },
                    _ => break,
                }
            }
            kind.party()
        })
        .collect()
}

/// The balance owed by the insurer and by the patient, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Balances {
    /// Still with the insurer.
    pub insurance_cents: i64,
    /// Owed by the patient.
    pub patient_cents: i64,
}

impl Balances {
    /// Both together.
    pub fn total_cents(&self) -> i64 {
        self.insurance_cents + self.patient_cents
    }
}

/// The insurance and patient balances of `entries` (one account's, or one
/// claim's).
pub fn balances(entries: &[LedgerEntry]) -> Balances {
    let mut b = Balances::default();
    for (e, p) in entries.iter().zip(parties(entries)) {
        match p {
            Party::Insurance => b.insurance_cents += e.amount_cents,
            Party::Patient => b.patient_cents += e.amount_cents,
        }
    }
    b
}

/// Aging bucket bounds in days: 0–30, 31–60, 61–90, 91–120, over 120.
pub const AGING_BUCKETS: [&str; 5] = ["0-30", "31-60", "61-90", "91-120", "over-120"];

/// Open balance by age, per party, in cents: each bucket index as in
/// [`AGING_BUCKETS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Aging {
    /// The insurer's open balance by age.
    pub insurance_cents: [i64; 5],
    /// The patient's open balance by age.
    pub patient_cents: [i64; 5],
}

impl Aging {
    /// Adds another account's aging to this one.
    pub fn add(&mut self, other: &Aging) {
        for i in 0..5 {
            self.insurance_cents[i] += other.insurance_cents[i];
            self.patient_cents[i] += other.patient_cents[i];
        }
    }
}

fn bucket(days: i64) -> usize {
    match days {
        ..=30 => 0,
        31..=60 => 1,
        61..=90 => 2,
        91..=120 => 3,
        _ => 4,
    }
}

/// Ages `entries` at `today`: per party, what increased the balance ages
/// from the day it was posted, and what reduced it pays the oldest first;
/// what is left of each increase lands in its age's bucket. A reversal
/// and the entry it reverses are left out together. A credit balance (more
/// paid than owed) is in no bucket.
pub fn aging(entries: &[LedgerEntry], today: NaiveDate) -> Aging {
    let mut out = Aging::default();
    for (party, slot) in [
        (Party::Insurance, &mut out.insurance_cents),
        (Party::Patient, &mut out.patient_cents),
    ] {
        for (date, cents) in open_items(entries, party) {
            slot[bucket((today - date).num_days())] += cents;
        }
    }
    out
}

/// What is still open of each increase of `party`'s balance, oldest first,
/// as (the day it was posted, cents), after what reduced the balance paid
/// the oldest first. A reversal and the entry it reverses cancel out: the
/// debt it restores is as old as it was.
pub fn open_items(entries: &[LedgerEntry], party: Party) -> Vec<(NaiveDate, i64)> {
    let parties = parties(entries);
    let reversed: std::collections::HashSet<&str> = entries
        .iter()
        .filter_map(|e| match &e.kind {
            LedgerKind::Reversal { reverses } => Some(reverses.as_str()),
            _ => None,
        })
        .collect();
    let mut items: Vec<(NaiveDate, i64)> = Vec::new();
    let mut credit = 0i64;
    for (e, p) in entries.iter().zip(&parties) {
        if *p != party
            || reversed.contains(e.id.as_str())
            || matches!(e.kind, LedgerKind::Reversal { .. })
        {
            continue;
        }
        if e.amount_cents > 0 {
            items.push((e.posted_at.date_naive(), e.amount_cents));
        } else {
            credit -= e.amount_cents;
        }
    }
    items.sort_by_key(|(d, _)| *d);
    let mut open = Vec::new();
    for (date, mut cents) in items {
        let used = credit.min(cents);
        credit -= used;
        cents -= used;
        if cents > 0 {
            open.push((date, cents));
        }
    }
    open
}

/// Since when the patient has owed money: the day of the oldest open
/// patient item, `None` when nothing is owed ([`Account::owing_since`]).
pub fn owing_since_of(entries: &[LedgerEntry]) -> Option<NaiveDate> {
    open_items(entries, Party::Patient).first().map(|(d, _)| *d)
}

/// Brings account `account_id`'s [`Account::owing_since`] (the aging
/// index) in line with its entries; creates the account if it has none.
pub fn refresh_owing_since(
    db: &Db,
    account_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let since = owing_since_of(&entries(db, account_id)?);
    db.update::<Account, _>(account_id, |a| {
        let mut a = a.unwrap_or(Account {
            id: account_id.to_string(),
            opened_at: now,
            owing_since: None,
            opt_out: None,
        });
        a.owing_since = since;
        Some(a)
    })?;
    Ok(())
}

/// The ledger entries of account `account_id`, oldest first.
pub fn entries(db: &Db, account_id: &str) -> Result<Vec<LedgerEntry>, StoreError> {
    db.scan::<LedgerEntry>(&format!("{account_id}/"))
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
                opt_out: None,
            })
            .unwrap();
        }
        // 120 days before 2026-12-01 is 2026-08-03.
        let old = owing_since(&db, d(8, 3), None, 10).unwrap();
        let ids: Vec<&str> = old.items.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["P3", "P1"]);
        assert!(db.check_indexes::<Account>().unwrap().is_consistent());
    }

    fn entry(id: &str, days_ago: i64, kind: LedgerKind, amount_cents: i64) -> LedgerEntry {
        LedgerEntry {
            id: id.into(),
            account_id: "P1".into(),
            claim_id: Some("C1".into()),
            posted_at: Utc::now() - chrono::Duration::days(days_ago),
            kind,
            amount_cents,
            source: "t".into(),
        }
    }

    #[test]
    fn balances_split_by_party_and_reversals_follow_what_they_reverse() {
        let adj = |g: &str| LedgerKind::Adjustment {
            group: g.into(),
            reason: "1".into(),
        };
        let mut es = vec![
            entry("P1/1", 100, LedgerKind::Charge, 80_000),
            entry("P1/2", 70, LedgerKind::InsurancePayment, -45_000),
            entry("P1/3", 70, adj("CO"), -5_000),
            entry("P1/4", 70, adj("PR"), -30_000),
            entry("P1/5", 70, LedgerKind::PatientResponsibility, 30_000),
        ];
        let b = balances(&es);
        assert_eq!((b.insurance_cents, b.patient_cents), (0, 30_000));
        let today = Utc::now().date_naive();
        let a = aging(&es, today);
        assert_eq!(a.patient_cents, [0, 0, 30_000, 0, 0]);
        assert_eq!(a.insurance_cents, [0; 5]);
        es.push(entry("P1/6", 10, LedgerKind::PatientPayment, -10_000));
        assert_eq!(aging(&es, today).patient_cents, [0, 0, 20_000, 0, 0]);
        // Reversing the patient's share and the payment's moves both back.
        for (i, orig) in [("P1/7", "P1/5"), ("P1/8", "P1/4"), ("P1/9", "P1/2")] {
            let amount = -es.iter().find(|e| e.id == orig).unwrap().amount_cents;
            es.push(entry(
                i,
                0,
                LedgerKind::Reversal {
                    reverses: orig.into(),
                },
                amount,
            ));
        }
        let b = balances(&es);
        assert_eq!((b.insurance_cents, b.patient_cents), (75_000, -10_000));
        let a = aging(&es, today);
        assert_eq!(a.insurance_cents, [0, 0, 0, 75_000, 0]);
        assert_eq!(a.patient_cents, [0; 5]);
    }
}
