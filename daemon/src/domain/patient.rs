//! Patients and their insurance coverage: who is billed, and which payer
//! pays first.
//!
//! These records carry patient data (names, birth dates, member ids), so
//! their `Debug` output is redacted: a record logged by mistake shows its
//! ids, never the person.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::store::Record;

/// A person's name.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonName {
    /// Family name.
    pub last: String,
    /// Given name.
    pub first: String,
    /// Middle name or initial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle: Option<String>,
    /// Suffix (Jr, III).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
}

impl std::fmt::Debug for PersonName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonName(<redacted>)")
    }
}

/// A postal address.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Street lines, first line first.
    pub lines: Vec<String>,
    /// City.
    pub city: String,
    /// State or province code.
    pub state: String,
    /// Postal code.
    pub postal_code: String,
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Address(<redacted>)")
    }
}

/// Administrative sex as payers record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sex {
    /// Female.
    #[serde(rename = "F")]
    Female,
    /// Male.
    #[serde(rename = "M")]
    Male,
    /// Unknown or not given.
    #[serde(rename = "U")]
    Unknown,
}

/// A patient of the practice.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patient {
    /// Practice-assigned id (for example the EHR's MRN surrogate).
    pub id: String,
    /// Legal name.
    pub name: PersonName,
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// Administrative sex.
    pub sex: Sex,
    /// Email for statements, if the patient agreed to email.
    #[serde(default)]
    pub email: Option<String>,
    /// Phone number.
    #[serde(default)]
    pub phone: Option<String>,
    /// Postal address.
    #[serde(default)]
    pub address: Option<Address>,
}

impl std::fmt::Debug for Patient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patient")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Record for Patient {
    const COLLECTION: &'static str = "patients";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// Whose coverage this is relative to the subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    /// The patient is the subscriber.
    SelfInsured,
    /// Spouse of the subscriber.
    Spouse,
    /// Child of the subscriber.
    Child,
    /// Any other dependent.
    Other,
}

/// The order in which coverages pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayerPriority {
    /// Pays first.
    Primary,
    /// Pays after the primary.
    Secondary,
    /// Pays after the secondary.
    Tertiary,
}

/// What the payer said about a coverage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EligibilityStatus {
    /// Coverage in force on the date asked about.
    Active,
    /// Not in force.
    Inactive,
    /// The payer has no such member.
    NotFound,
    /// The payer refused the inquiry (its code is in `problems`).
    Error,
}

impl EligibilityStatus {
    /// The name used in listings and task kinds.
    pub fn name(self) -> &'static str {
        match self {
            EligibilityStatus::Active => "active",
            EligibilityStatus::Inactive => "inactive",
            EligibilityStatus::NotFound => "not-found",
            EligibilityStatus::Error => "error",
        }
    }
}

/// The latest eligibility verdict for a coverage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EligibilityVerdict {
    /// When the payer answered.
    pub checked_at: DateTime<Utc>,
    /// Whether coverage was active for the date asked about.
    pub active: bool,
    /// Payer's plan description, if given.
    #[serde(default)]
    pub plan: Option<String>,
    /// Rejection or problem codes (AAA03 and similar), if any.
    #[serde(default)]
    pub problems: Vec<String>,
    /// The verdict (absent on verdicts recorded before it was kept).
    #[serde(default)]
    pub status: Option<EligibilityStatus>,
    /// The date of service asked about.
    #[serde(default)]
    pub service_date: Option<NaiveDate>,
    /// Office-visit copay, in cents, when the payer gave one.
    #[serde(default)]
    pub copay_cents: Option<i64>,
    /// The deductible, in cents.
    #[serde(default)]
    pub deductible_cents: Option<i64>,
    /// What remains of the deductible, in cents.
    #[serde(default)]
    pub deductible_remaining_cents: Option<i64>,
    /// Coinsurance in basis points (2000 = 20 %).
    #[serde(default)]
    pub coinsurance_basis_points: Option<u32>,
    /// The payer's trace or reference number for the answer.
    #[serde(default)]
    pub payer_reference: Option<String>,
}

/// A patient's insurance coverage with one payer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Coverage id.
    pub id: String,
    /// The patient covered.
    pub patient_id: String,
    /// Payer id as the clearinghouse knows it.
    pub payer_id: String,
    /// Payer's name.
    pub payer_name: String,
    /// Member (subscriber) id on the card.
    pub member_id: String,
    /// Group number, if any.
    #[serde(default)]
    pub group_number: Option<String>,
    /// Patient's relationship to the subscriber.
    pub relationship: Relationship,
    /// Subscriber's name when the patient is a dependent.
    #[serde(default)]
    pub subscriber_name: Option<PersonName>,
    /// Subscriber's birth date when the patient is a dependent.
    #[serde(default)]
    pub subscriber_birth_date: Option<NaiveDate>,
    /// Primary, secondary or tertiary.
    pub priority: PayerPriority,
    /// First day covered.
    #[serde(default)]
    pub effective: Option<NaiveDate>,
    /// Last day covered.
    #[serde(default)]
    pub terminated: Option<NaiveDate>,
    /// Latest eligibility verdict.
    #[serde(default)]
    pub verdict: Option<EligibilityVerdict>,
}

impl std::fmt::Debug for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coverage")
            .field("id", &self.id)
            .field("patient_id", &self.patient_id)
            .field("payer_id", &self.payer_id)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

/// The index of coverages by patient id.
pub const BY_PATIENT: &str = "patient";

/// The index of coverages by payer and member id, hashed
/// ([`Coverage::member_key`]): index keys are not sealed, so they must not
/// show the member id.
pub const BY_MEMBER: &str = "member";

impl Coverage {
    /// The opaque key of this coverage's payer and member id, the same for
    /// every coverage of one card.
    pub fn member_key(payer_id: &str, member_id: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(payer_id.as_bytes());
        h.update([0x1f]);
        h.update(member_id.trim().to_ascii_uppercase().as_bytes());
        hex::encode(&h.finalize()[..12])
    }
}

/// Coverages of the card `payer_id` / `member_id`, through the index.
pub fn coverages_of_member(
    db: &crate::store::Db,
    payer_id: &str,
    member_id: &str,
) -> Result<Vec<Coverage>, crate::store::StoreError> {
    use std::ops::Bound::Included;
    let key = Coverage::member_key(payer_id, member_id);
    Ok(db
        .index_range::<Coverage>(
            BY_MEMBER,
            Included(key.as_str()),
            Included(key.as_str()),
            None,
            false,
        )?
        .items)
}

/// A patient's coverages, primary first, through the index.
pub fn coverages_of_patient(
    db: &crate::store::Db,
    patient_id: &str,
) -> Result<Vec<Coverage>, crate::store::StoreError> {
    use std::ops::Bound::Included;
    let mut out = db
        .index_range::<Coverage>(
            BY_PATIENT,
            Included(patient_id),
            Included(patient_id),
            None,
            false,
        )?
        .items;
    out.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

impl Record for Coverage {
    const COLLECTION: &'static str = "coverages";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &[BY_MEMBER, BY_PATIENT];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                BY_MEMBER,
                Coverage::member_key(&self.payer_id, &self.member_id),
            ),
            (BY_PATIENT, self.patient_id.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_person() {
        let p = Patient {
            id: "P1".into(),
            name: PersonName {
                last: "Zebulon".into(),
                first: "Quixotina".into(),
                middle: None,
                suffix: None,
            },
            birth_date: NaiveDate::from_ymd_opt(1961, 2, 3).unwrap(),
            sex: Sex::Female,
            email: Some("qz@example.invalid".into()),
            phone: None,
            address: None,
        };
        let shown = format!("{p:?} {:?}", p.name);
        assert!(shown.contains("P1"), "{shown}");
        for secret in ["Zebulon", "Quixotina", "1961", "qz@"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn sex_is_stored_as_the_payer_letter() {
        assert_eq!(serde_json::to_string(&Sex::Female).unwrap(), "\"F\"");
        assert_eq!(serde_json::from_str::<Sex>("\"U\"").unwrap(), Sex::Unknown);
    }
}
