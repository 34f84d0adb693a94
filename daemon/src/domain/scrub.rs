//! The claim scrubber: the checks a billing office runs before a claim goes
//! out, written once and used by the import (which flags what it finds) and
//! the submission job (which holds back what fails).
//!
//! Each finding names the field and a stable code, never the value: codes
//! and diagnoses are patient data, and findings end up in task subjects and
//! run histories.

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use super::claim::Claim;

/// One problem the scrubber found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubProblem {
    /// A stable name of the check that failed (`npi-check-digit`).
    pub code: String,
    /// The field at fault (`billing_npi`, `lines[2].procedure`).
    pub field: String,
    /// What is wrong, in words (no values).
    pub message: String,
}

impl std::fmt::Display for ScrubProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.field, self.code, self.message)
    }
}

/// The default timely filing limit: 365 days from the date of service.
pub const DEFAULT_TIMELY_FILING_DAYS: u32 = 365;

/// What the scrubber needs besides the claim.
#[derive(Debug, Clone, Copy)]
pub struct ScrubRules {
    /// Today in the practice's timezone.
    pub today: NaiveDate,
    /// Days after the date of service within which the payer takes a claim.
    pub timely_filing_days: u32,
}

/// Timely filing limits: a default and per-payer overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilingLimits {
    /// Days from the date of service, unless the payer has its own.
    pub default_days: u32,
    /// Days by payer id.
    pub per_payer: std::collections::BTreeMap<String, u32>,
}

impl FilingLimits {
    /// The limit of payer `payer_id`.
    pub fn days_for(&self, payer_id: &str) -> u32 {
        self.per_payer
            .get(payer_id)
            .copied()
            .unwrap_or(self.default_days)
    }
}

/// Every problem with `claim`, in field order; empty when it is clean.
pub fn scrub(claim: &Claim, rules: &ScrubRules) -> Vec<ScrubProblem> {
    let mut out = Vec::new();
    let mut add = |code: &str, field: String, message: &str| {
        out.push(ScrubProblem {
            code: code.into(),
            field,
            message: message.into(),
        })
    };
    if claim.payer_id.trim().is_empty() {
        add("required", "payer_id".into(), "no payer id");
    }
    for (field, npi) in [
        ("billing_npi", &claim.billing_npi),
        ("rendering_npi", &claim.rendering_npi),
    ] {
        if !npi_is_valid(npi) {
            add(
                "npi-check-digit",
                field.into(),
                "not a ten-digit NPI with a valid check digit",
            );
        }
    }
    if !(claim.place_of_service.len() == 2
        && claim.place_of_service.bytes().all(|b| b.is_ascii_digit()))
    {
        add(
            "place-of-service",
            "place_of_service".into(),
            "not a two-digit place of service code",
        );
    }
    if !matches!(claim.frequency_code.as_str(), "1" | "7" | "8") {
        add(
            "frequency",
            "frequency_code".into(),
            "claim frequency must be 1, 7 or 8",
        );
    }
    if claim.diagnoses.is_empty() {
        add("required", "diagnoses".into(), "no diagnosis");
    }
    if claim.diagnoses.len() > 12 {
        add(
            "diagnosis-count",
            "diagnoses".into(),
            "more than 12 diagnoses",
        );
    }
    for (i, d) in claim.diagnoses.iter().enumerate() {
        if !icd10cm_is_wellformed(d) {
            add(
                "icd10-format",
                format!("diagnoses[{}]", i + 1),
                "not an ICD-10-CM code",
            );
        }
    }
    if claim.lines.is_empty() {
        add("required", "lines".into(), "no service line");
    }
    if claim.lines.len() > 50 {
        add("line-count", "lines".into(), "more than 50 service lines");
    }
    let mut sum = 0i64;
    let mut earliest: Option<NaiveDate> = None;
    for (i, line) in claim.lines.iter().enumerate() {
        let at = |what: &str| format!("lines[{}].{what}", i + 1);
        if !procedure_is_wellformed(&line.procedure) {
            add(
                "procedure-format",
                at("procedure"),
                "not a CPT or HCPCS code",
            );
        }
        if line.modifiers.len() > 4 {
            add("modifier", at("modifiers"), "more than four modifiers");
        }
        for (m, modifier) in line.modifiers.iter().enumerate() {
            if !(modifier.len() == 2 && modifier.bytes().all(|b| b.is_ascii_alphanumeric())) {
                add(
                    "modifier",
                    format!("lines[{}].modifiers[{}]", i + 1, m + 1),
                    "a modifier is two letters or digits",
                );
            }
        }
        if line.diagnosis_pointers.is_empty() {
            add(
                "diagnosis-pointer",
                at("diagnosis_pointers"),
                "no diagnosis pointer",
            );
        } else if line.diagnosis_pointers.len() > 4 {
            add(
                "diagnosis-pointer",
                at("diagnosis_pointers"),
                "more than four diagnosis pointers",
            );
        }
        if line
            .diagnosis_pointers
            .iter()
            .any(|&p| p == 0 || p as usize > claim.diagnoses.len())
        {
            add(
                "diagnosis-pointer",
                at("diagnosis_pointers"),
                "points past the claim's diagnoses",
            );
        }
        if line.charge_cents <= 0 {
            add("charge", at("charge"), "the charge must be above zero");
        }
        if line.units == 0 {
            add("units", at("units"), "no units");
        }
        if line.service_date > rules.today {
            add(
                "service-date",
                at("service_date"),
                "the date of service is in the future",
            );
        }
        sum = sum.saturating_add(line.charge_cents);
        earliest = Some(earliest.map_or(line.service_date, |e| e.min(line.service_date)));
    }
    if !claim.lines.is_empty() && sum != claim.total_charge_cents {
        add(
            "total-charge",
            "total_charge".into(),
            "the total charge is not the sum of the lines",
        );
    }
    if let Some(first) = earliest
        && let Some(limit) = timely_filing_deadline(first, rules.timely_filing_days)
        && rules.today > limit
    {
        add(
            "timely-filing",
            "service_date".into(),
            "past the payer's timely filing limit",
        );
    }
    out
}

/// The task for a claim the scrubber flagged: the claim's id and the
/// checks it failed, no values.
pub fn scrub_task(claim: &Claim) -> super::NewTask {
    let mut codes: Vec<&str> = claim.problems.iter().map(|p| p.code.as_str()).collect();
    codes.dedup();
    super::NewTask {
        kind: "claim-scrub".into(),
        subject: format!(
            "claim {} failed the scrubber: {}",
            claim.id,
            codes.join(", ")
        ),
        priority: super::Priority::Normal,
        due: None,
        assignee: None,
        payer: None,
        dedupe_key: format!("claim-scrub:{}:r{}", claim.id, claim.revision),
    }
}

/// The last day a claim for a service on `service_date` can be filed.
pub fn timely_filing_deadline(service_date: NaiveDate, days: u32) -> Option<NaiveDate> {
    service_date.checked_add_signed(Duration::days(days.into()))
}

/// Whether `npi` is ten digits whose last is the Luhn check digit (CMS's
/// rule; the one implementation lives in the X12 toolkit).
pub fn npi_is_valid(npi: &str) -> bool {
    billd_x12::validate::npi_valid(npi)
}

/// Whether `code` (with or without its dot) is shaped like an ICD-10-CM
/// code: a letter, a digit, a digit or letter, then up to four letters or
/// digits.
pub fn icd10cm_is_wellformed(code: &str) -> bool {
    let plain: String = code.chars().filter(|&c| c != '.').collect();
    if let Some(dot) = code.find('.')
        && (dot != 3 || code.matches('.').count() > 1)
    {
        return false;
    }
    let b = plain.as_bytes();
    (3..=7).contains(&b.len())
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_digit()
        && (b[2].is_ascii_digit() || b[2].is_ascii_uppercase())
        && b[3..]
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
}

/// Whether `code` is shaped like a CPT code (five digits, or four digits
/// and `F`, `T` or `U` for categories II and III and PLA codes) or a
/// HCPCS Level II code (a letter A–V and four digits).
pub fn procedure_is_wellformed(code: &str) -> bool {
    let b = code.as_bytes();
    if b.len() != 5 {
        return false;
    }
    let digits4 = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    (digits4(&b[..4]) && (b[4].is_ascii_digit() || matches!(b[4], b'F' | b'T' | b'U')))
        || ((b'A'..=b'V').contains(&b[0]) && digits4(&b[1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ServiceLine;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn claim() -> Claim {
        let mut c = crate::domain::claim::tests::claim();
        c.diagnoses = vec!["E119".into(), "I10".into()];
        c.lines = vec![ServiceLine {
            procedure: "99213".into(),
            modifiers: vec!["25".into()],
            charge_cents: 12_500,
            units: 1,
            diagnosis_pointers: vec![1, 2],
            service_date: day(2026, 11, 20),
        }];
        c.total_charge_cents = 12_500;
        c
    }

    fn rules() -> ScrubRules {
        ScrubRules {
            today: day(2026, 12, 1),
            timely_filing_days: 365,
        }
    }

    fn codes(c: &Claim) -> Vec<(String, String)> {
        scrub(c, &rules())
            .into_iter()
            .map(|p| (p.code, p.field))
            .collect()
    }

    #[test]
    fn npi_check_digits_follow_the_cms_luhn_rule() {
        // CMS's worked example, and a few more computed by hand.
        assert!(npi_is_valid("1234567893"));
        assert!(!npi_is_valid("1234567890"));
        assert!(npi_is_valid("1245319599"));
        assert!(!npi_is_valid("123456789"));
        assert!(!npi_is_valid("12345678a3"));
    }

    #[test]
    fn code_shapes() {
        for ok in ["E119", "E11.9", "I10", "Z3A.01", "S72001A", "U071", "C4A0"] {
            assert!(icd10cm_is_wellformed(ok), "{ok}");
        }
        for bad in [
            "E1",
            "11.9",
            "E11..9",
            "E1.19",
            "E11.9123X",
            "e119",
            "E11-9",
        ] {
            assert!(!icd10cm_is_wellformed(bad), "{bad}");
        }
        for ok in ["99213", "0001F", "0042T", "J1100", "A0425", "0001U"] {
            assert!(procedure_is_wellformed(ok), "{ok}");
        }
        for bad in ["9921", "992134", "W1100", "J110A", "0001X"] {
            assert!(!procedure_is_wellformed(bad), "{bad}");
        }
    }

    #[test]
    fn a_clean_claim_has_no_problems() {
        assert_eq!(codes(&claim()), Vec::<(String, String)>::new());
    }

    #[test]
    fn each_check_names_its_field_and_never_the_value() {
        let mut c = claim();
        c.billing_npi = "1234567890".into();
        c.diagnoses[1] = "I-10".into();
        c.lines[0].procedure = "9921".into();
        c.lines[0].modifiers = vec!["2".into()];
        c.lines[0].diagnosis_pointers = vec![3];
        c.total_charge_cents = 1;
        let found = scrub(&c, &rules());
        let shown: Vec<(&str, &str)> = found
            .iter()
            .map(|p| (p.code.as_str(), p.field.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("npi-check-digit", "billing_npi"),
                ("icd10-format", "diagnoses[2]"),
                ("procedure-format", "lines[1].procedure"),
                ("modifier", "lines[1].modifiers[1]"),
                ("diagnosis-pointer", "lines[1].diagnosis_pointers"),
                ("total-charge", "total_charge"),
            ]
        );
        for p in &found {
            let text = p.to_string();
            for value in ["1234567890", "I-10", "9921"] {
                assert!(!text.contains(value), "{text}");
            }
        }
    }

    #[test]
    fn timely_filing_and_future_dates() {
        let mut c = claim();
        c.lines[0].service_date = day(2025, 11, 30);
        assert_eq!(
            codes(&c),
            [("timely-filing".to_string(), "service_date".to_string())]
        );
        c.lines[0].service_date = day(2025, 12, 1);
        assert!(codes(&c).is_empty(), "the last day is still in time");
        c.lines[0].service_date = day(2026, 12, 2);
        assert_eq!(
            codes(&c),
            [(
                "service-date".to_string(),
                "lines[1].service_date".to_string()
            )]
        );
    }
}
