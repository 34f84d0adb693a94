//! Holds on a patient account: the reasons billd must leave a patient
//! alone — no statements, no reminders, and (for the collections job) no
//! placement — while a person sorts something out.
//!
//! The one question every patient-facing job asks is [`blocker`]: is this
//! account held, and why? An open hold of any kind answers it, and so does
//! a payment plan in good standing. Dunning asks it before each notice;
//! collections asks the same function before each placement.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::account::LedgerEntry;
use super::dunning::payments_since;
use super::plan::{self, PaymentPlan, Standing};
use crate::store::{Db, Record, StoreError};

/// Why an account is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldKind {
    /// The patient disputes the bill.
    Dispute,
    /// A No Surprises Act dispute (patient-provider dispute resolution):
    /// its own kind, because the law sets its own rules on collection.
    NoSurprisesAct,
    /// The patient filed for bankruptcy (the automatic stay).
    Bankruptcy,
    /// The patient died; the estate is billed by a person, not a reminder.
    Deceased,
    /// Screening for financial assistance (charity care) is pending.
    FinancialAssistance,
    /// Anything else a biller decides needs a pause.
    Other,
}

impl HoldKind {
    /// Every kind, in the order listings show them.
    pub const ALL: [HoldKind; 6] = [
        HoldKind::Dispute,
        HoldKind::NoSurprisesAct,
        HoldKind::Bankruptcy,
        HoldKind::Deceased,
        HoldKind::FinancialAssistance,
        HoldKind::Other,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            HoldKind::Dispute => "dispute",
            HoldKind::NoSurprisesAct => "no-surprises-act",
            HoldKind::Bankruptcy => "bankruptcy",
            HoldKind::Deceased => "deceased",
            HoldKind::FinancialAssistance => "financial-assistance",
            HoldKind::Other => "other",
        }
    }

    /// The kind named `name` ([`HoldKind::name`]).
    pub fn parse(name: &str) -> Option<HoldKind> {
        HoldKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Who ended a hold, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRelease {
    /// Who removed it.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A hold on one account. Holds are never deleted: removing one records
/// who removed it and when, so the history of why a patient was left alone
/// stays.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// `<account>/H<number>`: the account prefix lets one scan list an
    /// account's holds.
    pub id: String,
    /// The account (patient id).
    pub account_id: String,
    /// Why.
    pub kind: HoldKind,
    /// The biller's words; may name the patient's situation, so it is never
    /// logged.
    pub reason: String,
    /// Who placed it.
    pub placed_by: String,
    /// When.
    pub placed_at: DateTime<Utc>,
    /// Set when the hold was removed.
    #[serde(default)]
    pub released: Option<HoldRelease>,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("open", &self.is_open())
            .finish_non_exhaustive()
    }
}

impl Hold {
    /// Whether the hold is still in force.
    pub fn is_open(&self) -> bool {
        self.released.is_none()
    }
}

impl Record for Hold {
    const COLLECTION: &'static str = "holds";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// What keeps billd from contacting (or placing) a patient about an
/// account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Blocker {
    /// An open hold.
    Hold {
        /// The hold's id.
        id: String,
        /// Its kind.
        kind: HoldKind,
    },
    /// A payment plan in good standing.
    PaymentPlan {
        /// The plan's id.
        id: String,
    },
}

/// The hold check every patient-facing job uses: the first open hold of
/// `holds` (oldest first), else the plan in good standing, else nothing.
/// `plan_in_good_standing` is the id of the account's plan when
/// [`crate::domain::plan::standing`] says it is in good standing.
pub fn blocker(holds: &[Hold], plan_in_good_standing: Option<&str>) -> Option<Blocker> {
    if let Some(h) = holds.iter().find(|h| h.is_open()) {
        return Some(Blocker::Hold {
            id: h.id.clone(),
            kind: h.kind,
        });
    }
    plan_in_good_standing.map(|id| Blocker::PaymentPlan { id: id.to_string() })
}

/// An account's holds, oldest first.
pub fn holds_of(db: &Db, account: &str) -> Result<Vec<Hold>, StoreError> {
    db.scan::<Hold>(&format!("{account}/H"))
}

/// An account's payment plans, oldest first.
pub fn plans_of(db: &Db, account: &str) -> Result<Vec<PaymentPlan>, StoreError> {
    db.scan::<PaymentPlan>(&format!("{account}/PL"))
}

/// What an account's hold check found: the blocker, and every plan of the
/// account with its standing on the day asked (for callers to record a
/// break, [`PaymentPlan::broken_on`]).
#[derive(Debug, Clone)]
pub struct HoldCheck {
    /// What blocks contact, if anything.
    pub blocker: Option<Blocker>,
    /// The account's plans and where each stands.
    pub plans: Vec<(PaymentPlan, Standing)>,
}

/// The hold check of account `account` on `today`, over its ledger
/// `entries`: open holds, then a payment plan in good standing (payments
/// posted since the plan was set up apply to it). Dunning and collections
/// both ask this.
pub fn check(
    db: &Db,
    account: &str,
    entries: &[LedgerEntry],
    today: NaiveDate,
) -> Result<HoldCheck, StoreError> {
    let holds = holds_of(db, account)?;
    let plans: Vec<(PaymentPlan, Standing)> = plans_of(db, account)?
        .into_iter()
        .map(|p| {
            let s = plan::standing(&p, &payments_since(entries, p.created_at), today);
            (p, s)
        })
        .collect();
    let good = plans
        .iter()
        .find(|(_, s)| s.holds())
        .map(|(p, _)| p.id.as_str());
    Ok(HoldCheck {
        blocker: blocker(&holds, good),
        plans,
    })
}

/// Records the break of every plan in `found` that [`check`] found broken
/// and had not recorded it; returns the plans newly recorded broken.
pub fn record_breaks(db: &Db, found: &HoldCheck) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for (p, s) in &found.plans {
        if let Standing::Broken { on, .. } = s
            && p.broken_on.is_none()
        {
            let on = *on;
            db.modify::<PaymentPlan, _>(&p.id, |p| {
                p.broken_on.get_or_insert(on);
            })?;
            tracing::info!(plan = %p.id, "payment plan broke: an installment is past its grace");
            out.push(p.id.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hold(kind: HoldKind, open: bool) -> Hold {
        Hold {
            id: format!("P1/H{}", kind.name()),
            account_id: "P1".into(),
            kind,
            reason: "patient called".into(),
            placed_by: "dana".into(),
            placed_at: Utc::now(),
            released: (!open).then(|| HoldRelease {
                by: "dana".into(),
                at: Utc::now(),
            }),
        }
    }

    #[test]
    fn every_open_hold_kind_blocks_and_released_ones_do_not() {
        for kind in HoldKind::ALL {
            assert_eq!(HoldKind::parse(kind.name()), Some(kind));
            let b = blocker(&[hold(kind, true)], None);
            assert!(
                matches!(b, Some(Blocker::Hold { kind: k, .. }) if k == kind),
                "{kind:?}"
            );
            assert_eq!(blocker(&[hold(kind, false)], None), None, "{kind:?}");
        }
        assert_eq!(HoldKind::parse("nsa"), None);
    }

    #[test]
    fn a_plan_in_good_standing_blocks_after_holds() {
        assert_eq!(
            blocker(&[], Some("P1/PL1")),
            Some(Blocker::PaymentPlan {
                id: "P1/PL1".into()
            })
        );
        let b = blocker(&[hold(HoldKind::Bankruptcy, true)], Some("P1/PL1"));
        assert!(matches!(
            b,
            Some(Blocker::Hold {
                kind: HoldKind::Bankruptcy,
                ..
            })
        ));
        assert_eq!(blocker(&[], None), None);
    }
}
