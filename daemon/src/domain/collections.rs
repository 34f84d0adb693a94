//! Handing delinquent accounts to a collection agency, and taking them
//! back: the gates an account must pass, the placement record that makes
//! each hand-off and recall happen once, and what an agency's update does
//! to the account.
//!
//! An account qualifies only when every gate holds ([`qualifies`]): the
//! patient owes at least the minimum on settled claims (nothing still
//! waiting for an insurer), the first statement went out long enough ago
//! (120 days by default), a final notice went out long enough ago (30 days
//! by default), no hold is open and no payment plan is in good standing
//! ([`crate::domain::hold::check`], the one gate dunning uses too), and it
//! is not with an agency already. A placed account is recalled when the
//! patient has paid, or a hold or good plan appears ([`recall_reason`]).
//!
//! A [`Placement`] is recorded (status pending, with the key of the batch
//! it goes in) and made durable before the agency is called, so a crash or
//! a retry sends the same batch under the same idempotency key.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::hold::{Blocker, HoldKind};
use crate::store::Record;

/// The collection thresholds (the job's params).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gates {
    /// The least patient balance placed, in cents.
    pub min_balance_cents: i64,
    /// Days from the first statement before an account may be placed.
    pub min_days_since_first_statement: i64,
    /// Days from the latest final notice before an account may be placed.
    pub min_days_since_final_notice: i64,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            min_balance_cents: 2_500,
            min_days_since_first_statement: 120,
            min_days_since_final_notice: 30,
        }
    }
}

/// What is known about an account when deciding to place it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountFacts {
    /// What the patient owes on settled claims (0 when nothing).
    pub patient_cents: i64,
    /// Some of the patient's balance still waits for an insurer.
    pub insurance_pending: bool,
    /// When the first statement was sent.
    pub first_statement: Option<DateTime<Utc>>,
    /// When the latest final notice was sent.
    pub final_notice: Option<DateTime<Utc>>,
    /// What blocks contact, if anything.
    pub blocker: Option<Blocker>,
    /// The account is with an agency already (an open placement).
    pub placed: bool,
}

/// Why an account is not placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "gate")]
pub enum NotPlaced {
    /// Already with the agency.
    AlreadyPlaced,
    /// A hold is open or a payment plan is in good standing.
    Blocked {
        /// Which.
        blocker: Blocker,
    },
    /// Under the minimum (or nothing owed).
    BelowMinimum,
    /// Insurance has not settled the balance yet.
    InsurancePending,
    /// No statement was ever sent.
    NoStatement,
    /// The first statement is too recent.
    TooYoung {
        /// Days since the first statement.
        days: i64,
    },
    /// No final notice was sent.
    NoFinalNotice,
    /// The final notice is too recent.
    FinalNoticeTooRecent {
        /// Days since it.
        days: i64,
    },
}

/// Whether an account passes every gate on `today`.
pub fn qualifies(gates: &Gates, facts: &AccountFacts, today: NaiveDate) -> Result<(), NotPlaced> {
    if facts.placed {
        return Err(NotPlaced::AlreadyPlaced);
    }
    if let Some(b) = &facts.blocker {
        return Err(NotPlaced::Blocked { blocker: b.clone() });
    }
    if facts.patient_cents <= 0 && facts.insurance_pending {
        return Err(NotPlaced::InsurancePending);
    }
    if facts.patient_cents <= 0 || facts.patient_cents < gates.min_balance_cents {
        return Err(NotPlaced::BelowMinimum);
    }
    let days = |t: DateTime<Utc>| (today - t.date_naive()).num_days();
    let Some(first) = facts.first_statement else {
        return Err(NotPlaced::NoStatement);
    };
    if days(first) < gates.min_days_since_first_statement {
        return Err(NotPlaced::TooYoung { days: days(first) });
    }
    let Some(last) = facts.final_notice else {
        return Err(NotPlaced::NoFinalNotice);
    };
    if days(last) < gates.min_days_since_final_notice {
        return Err(NotPlaced::FinalNoticeTooRecent { days: days(last) });
    }
    Ok(())
}

/// Why an account with the agency is called back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecallReason {
    /// The patient owes nothing now.
    PaidInFull,
    /// A dispute (or No Surprises Act dispute) is open.
    Disputed,
    /// Bankruptcy.
    Bankruptcy,
    /// Financial-assistance screening is pending.
    FinancialAssistance,
    /// The practice's decision (a payment plan, a death, another hold).
    PracticeRequest,
}

impl RecallReason {
    /// The reason's name.
    pub fn name(self) -> &'static str {
        match self {
            RecallReason::PaidInFull => "paid-in-full",
            RecallReason::Disputed => "disputed",
            RecallReason::Bankruptcy => "bankruptcy",
            RecallReason::FinancialAssistance => "financial-assistance",
            RecallReason::PracticeRequest => "practice-request",
        }
    }
}

/// Whether a placed account must be called back, and why: a hold or good
/// plan that appeared, or the balance paid.
pub fn recall_reason(patient_cents: i64, blocker: Option<&Blocker>) -> Option<RecallReason> {
    match blocker {
        Some(Blocker::Hold { kind, .. }) => Some(match kind {
            HoldKind::Dispute | HoldKind::NoSurprisesAct => RecallReason::Disputed,
            HoldKind::Bankruptcy => RecallReason::Bankruptcy,
            HoldKind::FinancialAssistance => RecallReason::FinancialAssistance,
            _ => RecallReason::PracticeRequest,
        }),
        Some(Blocker::PaymentPlan { .. }) => Some(RecallReason::PracticeRequest),
        None if patient_cents <= 0 => Some(RecallReason::PaidInFull),
        None => None,
    }
}

/// Where a placement stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum PlacementStatus {
    /// Recorded; the agency has not confirmed it yet.
    Pending,
    /// With the agency.
    Placed,
    /// The agency refused it.
    Refused {
        /// What the agency said.
        message: String,
    },
    /// To be called back; the agency has not confirmed it yet.
    RecallPending {
        /// Why.
        reason: RecallReason,
    },
    /// Called back.
    Recalled {
        /// Why.
        reason: RecallReason,
    },
    /// The agency closed its file (collected in full, uncollectable, ...).
    Closed {
        /// What the agency said.
        reason: String,
    },
}

impl PlacementStatus {
    /// Whether the account is (or is about to be) with the agency.
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            PlacementStatus::Pending
                | PlacementStatus::Placed
                | PlacementStatus::RecallPending { .. }
        )
    }
}

/// One event in a placement's life, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// What (`recorded`, `placed`, `refused`, `recall-requested`,
    /// `recalled`, `payment`, `disputed`, `closed`).
    pub what: String,
    /// Details (amounts, the agency's words; never clinical data).
    pub note: Option<String>,
}

/// An account handed to an agency: recorded before the hand-off, and its
/// life after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// `<account>/<since>`: one placement per balance cadence.
    pub id: String,
    /// The account.
    pub account_id: String,
    /// The day the balance placed became the patient's.
    pub since: NaiveDate,
    /// The balance placed, in cents.
    pub balance_cents: i64,
    /// The agency connector.
    pub connector: String,
    /// The idempotency key of the batch it went (goes) out in.
    pub batch_key: String,
    /// The idempotency key of the recall batch, once one is asked.
    #[serde(default)]
    pub recall_key: Option<String>,
    /// The agency's own account number, once known.
    #[serde(default)]
    pub agency_account_id: Option<String>,
    /// Where it stands.
    pub status: PlacementStatus,
    /// Collected through the agency so far (gross), in cents.
    #[serde(default)]
    pub collected_cents: i64,
    /// Fees the agency kept so far, in cents.
    #[serde(default)]
    pub agency_fee_cents: i64,
    /// What happened, oldest first.
    pub events: Vec<PlacementEvent>,
}

impl Placement {
    /// The id of the placement of `account`'s balance that arose on `since`.
    pub fn id_for(account: &str, since: NaiveDate) -> String {
        format!("{account}/{}", since.format("%Y-%m-%d"))
    }

    /// Adds an event.
    pub fn log(&mut self, at: DateTime<Utc>, what: &str, note: Option<String>) {
        self.events.push(PlacementEvent {
            at,
            what: what.to_string(),
            note,
        });
    }
}

/// The index of placements by status (`pending`, `placed`, ...).
pub const BY_STATUS: &str = "status";

impl Record for Placement {
    const COLLECTION: &'static str = "placements";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &[BY_STATUS];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        let name = match &self.status {
            PlacementStatus::Pending => "pending",
            PlacementStatus::Placed => "placed",
            PlacementStatus::Refused { .. } => "refused",
            PlacementStatus::RecallPending { .. } => "recall-pending",
            PlacementStatus::Recalled { .. } => "recalled",
            PlacementStatus::Closed { .. } => "closed",
        };
        vec![(BY_STATUS, name.to_string())]
    }
}

/// Placements with status `status` (index name), in id order.
pub fn with_status(
    db: &crate::store::Db,
    status: &str,
) -> Result<Vec<Placement>, crate::store::StoreError> {
    use std::ops::Bound::Included;
    Ok(db
        .index_range::<Placement>(BY_STATUS, Included(status), Included(status), None, false)?
        .items)
}

/// An account's placements, oldest first.
pub fn placements_of(
    db: &crate::store::Db,
    account: &str,
) -> Result<Vec<Placement>, crate::store::StoreError> {
    db.scan::<Placement>(&format!("{account}/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn at(d: NaiveDate) -> DateTime<Utc> {
        Utc.from_utc_datetime(&d.and_hms_opt(15, 0, 0).unwrap())
    }

    fn ready() -> AccountFacts {
        AccountFacts {
            patient_cents: 10_000,
            insurance_pending: false,
            first_statement: Some(at(day(2026, 1, 1))),
            final_notice: Some(at(day(2026, 4, 1))),
            blocker: None,
            placed: false,
        }
    }

    const TODAY: (i32, u32, u32) = (2026, 5, 15);

    fn today() -> NaiveDate {
        day(TODAY.0, TODAY.1, TODAY.2)
    }

    #[test]
    fn an_account_past_every_gate_qualifies() {
        assert_eq!(qualifies(&Gates::default(), &ready(), today()), Ok(()));
    }

    #[test]
    fn each_gate_keeps_an_account_back() {
        let g = Gates::default();
        let cases: Vec<(AccountFacts, NotPlaced)> = vec![
            (
                AccountFacts {
                    placed: true,
                    ..ready()
                },
                NotPlaced::AlreadyPlaced,
            ),
            (
                AccountFacts {
                    patient_cents: 2_499,
                    ..ready()
                },
                NotPlaced::BelowMinimum,
            ),
            (
                AccountFacts {
                    patient_cents: 0,
                    insurance_pending: true,
                    ..ready()
                },
                NotPlaced::InsurancePending,
            ),
            (
                AccountFacts {
                    first_statement: None,
                    ..ready()
                },
                NotPlaced::NoStatement,
            ),
            (
                AccountFacts {
                    first_statement: Some(at(day(2026, 1, 16))),
                    ..ready()
                },
                NotPlaced::TooYoung { days: 119 },
            ),
            (
                AccountFacts {
                    final_notice: None,
                    ..ready()
                },
                NotPlaced::NoFinalNotice,
            ),
            (
                AccountFacts {
                    final_notice: Some(at(day(2026, 4, 16))),
                    ..ready()
                },
                NotPlaced::FinalNoticeTooRecent { days: 29 },
            ),
        ];
        for (facts, want) in cases {
            assert_eq!(qualifies(&g, &facts, today()), Err(want));
        }
        // Exactly on the thresholds it qualifies.
        let edge = AccountFacts {
            patient_cents: 2_500,
            first_statement: Some(at(day(2026, 1, 15))),
            final_notice: Some(at(day(2026, 4, 15))),
            ..ready()
        };
        assert_eq!(qualifies(&g, &edge, today()), Ok(()));
    }

    #[test]
    fn every_hold_and_a_good_plan_keep_an_account_back_and_call_it_back() {
        let kinds = [
            (HoldKind::Dispute, RecallReason::Disputed),
            (HoldKind::NoSurprisesAct, RecallReason::Disputed),
            (HoldKind::Bankruptcy, RecallReason::Bankruptcy),
            (HoldKind::Deceased, RecallReason::PracticeRequest),
            (
                HoldKind::FinancialAssistance,
                RecallReason::FinancialAssistance,
            ),
            (HoldKind::Other, RecallReason::PracticeRequest),
        ];
        for (kind, reason) in kinds {
            let blocker = Blocker::Hold {
                id: "P1/H1".into(),
                kind,
            };
            let facts = AccountFacts {
                blocker: Some(blocker.clone()),
                ..ready()
            };
            assert_eq!(
                qualifies(&Gates::default(), &facts, today()),
                Err(NotPlaced::Blocked {
                    blocker: blocker.clone()
                })
            );
            assert_eq!(recall_reason(10_000, Some(&blocker)), Some(reason));
        }
        let plan = Blocker::PaymentPlan {
            id: "P1/PL1".into(),
        };
        assert!(matches!(
            qualifies(
                &Gates::default(),
                &AccountFacts {
                    blocker: Some(plan.clone()),
                    ..ready()
                },
                today()
            ),
            Err(NotPlaced::Blocked { .. })
        ));
        assert_eq!(
            recall_reason(10_000, Some(&plan)),
            Some(RecallReason::PracticeRequest)
        );
        assert_eq!(recall_reason(0, None), Some(RecallReason::PaidInFull));
        assert_eq!(recall_reason(-500, None), Some(RecallReason::PaidInFull));
        assert_eq!(recall_reason(100, None), None);
    }
}
