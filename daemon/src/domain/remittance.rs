//! A remittance as billd posts it, whatever it arrived as (an X12 835 read
//! from a file, or a payer connector's `fetch-remittances` record), and the
//! pure posting plan for it: which ledger lines each paid claim becomes,
//! how its claim moves, whether it is a denial, and the check every
//! remittance must pass before anything is written (BPR02 = posted +
//! unapplied − PLB, in integer cents).
//!
//! Nothing here reads a store: the app layer matches claims and applies
//! the plan in one store transaction.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::account::LedgerKind;
use super::claim::ClaimState;

/// One remittance (an 835 transaction set): one payment and the claims it
/// pays. Amounts are integer cents.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Era {
    /// Who paid: the payer's identifier (REF*2U, N1*PR N104, or TRN03).
    pub payer: String,
    /// The check or EFT trace number (TRN02).
    pub trace: String,
    /// BPR02, signed: negative for a debit (BPR03 = D).
    pub payment_cents: i64,
    /// The payee's NPI (N1*PE XX), when sent.
    #[serde(default)]
    pub payee_npi: Option<String>,
    /// The claims, in file order.
    pub claims: Vec<EraClaim>,
    /// PLB provider-level adjustments, one per reason/amount pair.
    #[serde(default)]
    pub provider_adjustments: Vec<EraProviderAdjustment>,
}

/// One claim as paid (CLP loop).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EraClaim {
    /// CLP01, the patient control number billd sent as CLM01.
    pub control_number: String,
    /// CLP02 claim status (`1` primary, `2` secondary, `4` denied, `22`
    /// reversal, ...).
    pub status_code: String,
    /// CLP03 billed.
    pub billed_cents: i64,
    /// CLP04 paid.
    pub paid_cents: i64,
    /// CLP05 patient responsibility as the payer states it.
    pub patient_responsibility_cents: i64,
    /// CLP07 payer claim control number.
    #[serde(default)]
    pub payer_claim_number: Option<String>,
    /// CAS adjustments, claim level then line level.
    #[serde(default)]
    pub adjustments: Vec<EraAdjustment>,
    /// Remark codes (RARCs: MOA, LQ*HE).
    #[serde(default)]
    pub remarks: Vec<String>,
    /// Service lines billed but paid nothing.
    #[serde(default)]
    pub unpaid_lines: u32,
    /// The service lines as paid (SVC loops), in file order; their
    /// adjustments are in `adjustments`, with `line` their index here.
    /// Empty when the payer adjudicated the claim as a whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<EraLine>,
    /// When the payer adjudicated the claim: the payment's date (BPR16,
    /// else the 835's production date), when the remittance says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_on: Option<NaiveDate>,
}

/// One service line as paid (an 835 SVC loop), what the next payer is told
/// of it in coordination of benefits.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EraLine {
    /// The procedure code as adjudicated (SVC01-2).
    pub procedure: String,
    /// Its modifiers (SVC01-3 to SVC01-6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modifiers: Vec<String>,
    /// The line's charge (SVC02).
    pub billed_cents: i64,
    /// What the payer paid for it (SVC03).
    pub paid_cents: i64,
    /// Units of service paid (SVC05; one when absent, as the 835 means).
    pub units: u32,
    /// The line's date of service (DTM*472, or DTM*150), when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_date: Option<NaiveDate>,
}

/// One CAS adjustment (group, reason, amount).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EraAdjustment {
    /// CAS group: CO, PR, OA, PI, CR.
    pub group: String,
    /// Claim adjustment reason code (CARC).
    pub reason: String,
    /// Amount in cents (positive reduces what the payer pays).
    pub amount_cents: i64,
    /// 0-based service line, `None` at claim level.
    #[serde(default)]
    pub line: Option<u32>,
    /// The adjustment's quantity (CAS04, whole units), when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
}

/// One PLB adjustment pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EraProviderAdjustment {
    /// PLB01 provider identifier.
    pub provider_id: String,
    /// PLB03-1 adjustment reason code (`WO`, `CV`, `L6`, ...).
    pub reason: String,
    /// PLB03-2 reference, when sent.
    #[serde(default)]
    pub reference: Option<String>,
    /// Amount in cents (positive reduces the payment).
    pub amount_cents: i64,
}

impl std::fmt::Debug for EraLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Procedures and dates of service are patient data: amounts only.
        f.debug_struct("EraLine")
            .field("billed_cents", &self.billed_cents)
            .field("paid_cents", &self.paid_cents)
            .field("units", &self.units)
            .finish_non_exhaustive()
    }
}

impl EraClaim {
    /// CLP02 = 22: the payer takes back an earlier payment.
    pub fn is_reversal(&self) -> bool {
        self.status_code == "22"
    }

    /// The patient's share: the sum of group PR adjustments.
    pub fn patient_share_cents(&self) -> i64 {
        self.adjustments
            .iter()
            .filter(|a| a.group == "PR")
            .map(|a| a.amount_cents)
            .sum()
    }

    /// The CARCs of the denial, if this claim is one: CLP02 = 4, or
    /// nothing paid with a CO or PR adjustment whose reason is not one of
    /// the reasons that merely shape a payment (deductible, coinsurance,
    /// copay, fee schedule, prior payer, sequestration). `None` when it is
    /// not a denial.
    pub fn denial(&self) -> Option<Vec<String>> {
        if self.is_reversal() {
            return None;
        }
        let denying: Vec<String> = self
            .adjustments
            .iter()
            .filter(|a| {
                matches!(a.group.as_str(), "CO" | "PR" | "OA" | "PI")
                    && !PAYMENT_SHAPING.contains(&a.reason.as_str())
            })
            .map(|a| format!("{}-{}", a.group, a.reason))
            .collect();
        let denied = self.status_code == "4" || (self.paid_cents == 0 && !denying.is_empty());
        denied.then(|| dedup(denying))
    }

    /// The state an adjudicated (not reversed) claim moves to: denied,
    /// partially paid (paid, with some billed line paid nothing), or paid.
    pub fn outcome(&self) -> ClaimState {
        if self.denial().is_some() {
            return ClaimState::Denied;
        }
        if self.unpaid_lines > 0 {
            ClaimState::PartiallyPaid
        } else {
            ClaimState::Paid
        }
    }

    /// The ledger lines this payment becomes, in cents (positive increases
    /// the account's balance): the insurer's payment, one adjustment per
    /// group and reason (claim and line level summed), and the PR total
    /// moved to the patient's responsibility. Zero sums are left out.
    pub fn ledger_lines(&self) -> Vec<(LedgerKind, i64)> {
        let mut out = Vec::new();
        if self.paid_cents != 0 {
            out.push((LedgerKind::InsurancePayment, -self.paid_cents));
        }
        let mut by_reason: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for a in &self.adjustments {
            *by_reason.entry((&a.group, &a.reason)).or_default() += a.amount_cents;
        }
        for ((group, reason), cents) in by_reason {
            if cents != 0 {
                out.push((
                    LedgerKind::Adjustment {
                        group: group.to_string(),
                        reason: reason.to_string(),
                    },
                    -cents,
                ));
            }
        }
        let pr = self.patient_share_cents();
        if pr != 0 {
            out.push((LedgerKind::PatientResponsibility, pr));
        }
        out
    }
}

/// Reasons that shape a payment rather than deny it: deductible (1),
/// coinsurance (2), copay (3), prior payer's adjudication (23), fee
/// schedule (45), sequestration (253).
const PAYMENT_SHAPING: &[&str] = &["1", "2", "3", "23", "45", "253"];

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|c| seen.insert(c.clone()));
    v
}

/// The idempotency key of one claim's posting: payer, trace number, CLP01
/// and which occurrence of that CLP01 in the remittance (1-based). The
/// same 835 posted again has the same keys.
pub fn posting_key(payer: &str, trace: &str, control_number: &str, occurrence: u32) -> String {
    use sha2::{Digest, Sha256};
    // Hashed: record keys are not sealed and CLP01 may tell who the
    // patient is.
    let digest = Sha256::digest(format!("{payer}\u{1f}{trace}\u{1f}{control_number}").as_bytes());
    format!("{}-{occurrence}", hex::encode(&digest[..12]))
}

/// Where a posting's ledger entries came from:
/// `835:<payer>:<TRN02>:<CLP01>:<occurrence>`.
pub fn posting_source(payer: &str, trace: &str, control_number: &str, occurrence: u32) -> String {
    format!("835:{payer}:{trace}:{control_number}:{occurrence}")
}

/// The check every remittance passes before anything is posted, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reconciliation {
    /// BPR02 (signed).
    pub payment_cents: i64,
    /// CLP04 of claims applied to known claims.
    pub posted_cents: i64,
    /// CLP04 of claims held as unapplied money.
    pub unapplied_cents: i64,
    /// The PLB total (positive reduces the payment).
    pub provider_adjustment_cents: i64,
}

impl Reconciliation {
    /// BPR02 = posted + unapplied − PLB.
    pub fn balances(&self) -> bool {
        self.payment_cents
            == self.posted_cents + self.unapplied_cents - self.provider_adjustment_cents
    }
}

impl Era {
    /// The occurrence number of each claim: the nth claim with the same
    /// CLP01 in this remittance is occurrence n.
    pub fn occurrences(&self) -> Vec<u32> {
        let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
        self.claims
            .iter()
            .map(|c| {
                let n = seen.entry(&c.control_number).or_default();
                *n += 1;
                *n
            })
            .collect()
    }

    /// The reconciliation given which claims (by index) are applied.
    pub fn reconcile(&self, applied: &[bool]) -> Reconciliation {
        let mut r = Reconciliation {
            payment_cents: self.payment_cents,
            provider_adjustment_cents: self
                .provider_adjustments
                .iter()
                .map(|p| p.amount_cents)
                .sum(),
            ..Reconciliation::default()
        };
        for (c, applied) in self.claims.iter().zip(applied) {
            if *applied {
                r.posted_cents += c.paid_cents;
            } else {
                r.unapplied_cents += c.paid_cents;
            }
        }
        r
    }

    /// The money problems that stop posting, one line each: a claim whose
    /// charge less payment is not its adjustments, or a payment that is
    /// not the claims less PLB. Empty when the remittance adds up.
    pub fn money_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, c) in self.claims.iter().enumerate() {
            let adj: i64 = c.adjustments.iter().map(|a| a.amount_cents).sum();
            if c.billed_cents - c.paid_cents != adj {
                out.push(format!(
                    "claim {} of the remittance: billed {} less paid {} is not its adjustments {} (cents)",
                    i + 1,
                    c.billed_cents,
                    c.paid_cents,
                    adj
                ));
            }
        }
        let all = vec![true; self.claims.len()];
        if !self.reconcile(&all).balances() {
            out.push(format!(
                "BPR02 {} is not the claims' payments less PLB",
                self.payment_cents
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adj(group: &str, reason: &str, cents: i64) -> EraAdjustment {
        EraAdjustment {
            group: group.into(),
            reason: reason.into(),
            amount_cents: cents,
            line: None,
            quantity: None,
        }
    }

    fn clp(status: &str, billed: i64, paid: i64, adjustments: Vec<EraAdjustment>) -> EraClaim {
        EraClaim {
            control_number: "A".into(),
            status_code: status.into(),
            billed_cents: billed,
            paid_cents: paid,
            patient_responsibility_cents: 0,
            payer_claim_number: None,
            adjustments,
            remarks: vec![],
            unpaid_lines: 0,
            lines: vec![],
            paid_on: None,
        }
    }

    #[test]
    fn a_payment_becomes_payment_adjustments_and_patient_share() {
        let c = clp(
            "1",
            80_000,
            45_000,
            vec![adj("CO", "A2", 5_000), adj("PR", "1", 30_000)],
        );
        let lines = c.ledger_lines();
        assert_eq!(lines[0], (LedgerKind::InsurancePayment, -45_000));
        assert!(lines.contains(&(
            LedgerKind::Adjustment {
                group: "PR".into(),
                reason: "1".into()
            },
            -30_000
        )));
        assert_eq!(
            lines.last().unwrap(),
            &(LedgerKind::PatientResponsibility, 30_000)
        );
        // Charge less everything is what the patient owes.
        let sum: i64 = lines.iter().map(|(_, c)| c).sum();
        assert_eq!(80_000 + sum, 30_000);
        assert_eq!(c.outcome(), ClaimState::Paid);
        assert_eq!(c.denial(), None);
    }

    #[test]
    fn denials_carry_their_codes_and_partial_payments_are_partial() {
        let denied = clp("2", 3_400, 0, vec![adj("CO", "29", 3_400)]);
        assert_eq!(denied.denial(), Some(vec!["CO-29".to_string()]));
        assert_eq!(denied.outcome(), ClaimState::Denied);
        let by_status = clp("4", 100, 0, vec![adj("CO", "45", 100)]);
        assert_eq!(by_status.denial(), Some(vec![]));
        let deductible = clp("1", 100, 0, vec![adj("PR", "1", 100)]);
        assert_eq!(deductible.denial(), None);
        assert_eq!(deductible.outcome(), ClaimState::Paid);
        let mut partial = clp("2", 3_425, 1_150, vec![adj("CO", "251", 2_275)]);
        partial.unpaid_lines = 2;
        assert_eq!(partial.outcome(), ClaimState::PartiallyPaid);
    }

    #[test]
    fn reconciliation_counts_unapplied_money_and_plb() {
        let era = Era {
            payment_cents: 7_000,
            claims: vec![
                clp("1", 10_000, 5_000, vec![adj("CO", "45", 5_000)]),
                clp("1", 10_000, 3_000, vec![adj("CO", "45", 7_000)]),
            ],
            provider_adjustments: vec![EraProviderAdjustment {
                provider_id: "1".into(),
                reason: "WO".into(),
                reference: None,
                amount_cents: 1_000,
            }],
            ..Era::default()
        };
        let r = era.reconcile(&[true, false]);
        assert_eq!((r.posted_cents, r.unapplied_cents), (5_000, 3_000));
        assert!(r.balances());
        assert!(era.money_problems().is_empty());
        assert_eq!(era.occurrences(), vec![1, 2]);
        let mut off = era.clone();
        off.payment_cents += 1;
        assert_eq!(off.money_problems().len(), 1);
        assert_ne!(posting_key("P", "T", "A", 1), posting_key("P", "T", "A", 2));
    }
}
