//! 837P batches that practice systems already write, read into billd's
//! claims, each with the patient and the coverage it bills.
//!
//! A file the X12 toolkit cannot read whole (syntax, structure, envelope),
//! or that is not an 837P, is refused with the toolkit's located errors. A
//! readable claim with content problems (a bad NPI, a malformed code) is
//! read all the same: the scrubber flags it later. A claim is identified by
//! its billing provider's NPI and its patient control number (CLM01), so
//! reading the same file again yields the same ids.

use chrono::NaiveDate;

use super::{Problem, Refused, derived_id};
use crate::domain::{
    Address, Claim, ClaimState, Coverage, Patient, PayerPriority, PersonName, Relationship,
    ServiceLine, Sex,
};
use billd_x12::segment::Segment;
use billd_x12::t837p::{self, Professional};
use billd_x12::{Body, Mode};

/// One claim of the file with who it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedClaim {
    /// The claim (state draft, no history yet).
    pub claim: Claim,
    /// The patient as the 837 names them (id derived from the card);
    /// `None` when the 837 gives no birth date (DMG), so only a patient on
    /// record for the same card and name can be the one billed.
    pub patient: Option<Patient>,
    /// The patient's name as the 837 gives it.
    pub patient_name: PersonName,
    /// The coverage billed (id derived from the card and the patient).
    pub coverage: Coverage,
    /// The segment number of the CLM, for messages.
    pub segment: u32,
}

/// The id billd gives the claim `clm01` of billing provider `npi`.
pub fn claim_id(npi: &str, clm01: &str) -> String {
    format!("{npi}-{clm01}")
}

/// Reads every claim of an 837P file. Any problem reading the file refuses
/// all of it.
pub fn read(file: &str, bytes: &[u8]) -> Result<Vec<ImportedClaim>, Refused> {
    let refuse = |problems: Vec<Problem>| Refused {
        file: file.to_string(),
        problems,
    };
    let issue = |i: &billd_x12::Issue| Problem {
        line: None,
        field: Some(format!("segment {}", i.loc.segment)),
        message: i.to_string(),
    };
    let parsed = billd_x12::parse(bytes, Mode::Strict)
        .map_err(|e| refuse(e.issues.iter().map(issue).collect()))?;
    if parsed.has_errors() {
        return Err(refuse(
            parsed
                .issues
                .iter()
                .filter(|i| i.is_error())
                .map(issue)
                .collect(),
        ));
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for ic in &parsed.document.interchanges {
        for group in &ic.groups {
            for tx in &group.transactions {
                match &tx.body {
                    Body::Professional(p) => read_professional(p, &mut out, &mut problems),
                    _ => problems.push(Problem {
                        line: None,
                        field: Some(format!("ST {}", tx.control_number)),
                        message: "not an 837P transaction set".into(),
                    }),
                }
            }
        }
    }
    let mut seen = std::collections::HashMap::new();
    for c in &out {
        if let Some(first) = seen.insert(c.claim.id.clone(), c.segment) {
            problems.push(Problem {
                line: None,
                field: Some(format!("segment {} CLM01", c.segment)),
                message: format!(
                    "the same patient control number for the same billing provider as segment {first}"
                ),
            });
        }
    }
    if out.is_empty() && problems.is_empty() {
        problems.push(Problem {
            line: None,
            field: None,
            message: "no claims in the file".into(),
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(refuse(problems))
    }
}

fn read_professional(p: &Professional, out: &mut Vec<ImportedClaim>, problems: &mut Vec<Problem>) {
    for bp in &p.billing_providers {
        let billing_npi = bp.billing.nm1.id.clone().unwrap_or_default();
        let billing_name = bp.billing.nm1.last_or_org_name.clone();
        let billing_tax_id = bp
            .billing
            .other
            .iter()
            .find(|s| s.id == "REF" && matches!(s.get(1), "EI" | "SY"))
            .map(|s| s.get(2).to_string());
        for sub in &bp.subscribers {
            let payer_id = sub.payer.nm1.id.clone().unwrap_or_default();
            let member_id = sub.subscriber.nm1.id.clone().unwrap_or_default();
            let priority = match sub.sbr.responsibility.as_str() {
                "S" => PayerPriority::Secondary,
                "T" => PayerPriority::Tertiary,
                _ => PayerPriority::Primary,
            };
            let holder = person(&sub.subscriber.nm1);
            let (holder_dob, holder_sex) = demographics(&sub.subscriber.other);
            let holder_address = address(&sub.subscriber.other);
            let mut emit = |who: Who, claims: &[t837p::Claim]| {
                for c in claims {
                    match one_claim(&billing_npi, &payer_id, &member_id, priority, &who, sub, c) {
                        Ok(mut ic) => {
                            ic.claim.billing_name = billing_name.clone();
                            ic.claim.billing_tax_id = billing_tax_id.clone();
                            out.push(ic)
                        }
                        Err(p) => problems.push(p),
                    }
                }
            };
            emit(
                Who {
                    name: holder.clone(),
                    birth: holder_dob,
                    sex: holder_sex,
                    relationship: Relationship::SelfInsured,
                    holder: None,
                    address: holder_address.clone(),
                },
                &sub.claims,
            );
            for pat in &sub.patients {
                let (birth, sex) = demographics(&pat.patient.other);
                let rel = pat
                    .other
                    .iter()
                    .find(|s| s.id == "PAT")
                    .map(|s| s.get(1))
                    .unwrap_or("");
                emit(
                    Who {
                        name: person(&pat.patient.nm1),
                        birth,
                        sex,
                        relationship: match rel {
                            "01" => Relationship::Spouse,
                            "19" => Relationship::Child,
                            _ => Relationship::Other,
                        },
                        holder: Some((holder.clone(), holder_dob)),
                        address: address(&pat.patient.other),
                    },
                    &pat.claims,
                );
            }
        }
    }
}

/// The patient of a claim as the 837 names them.
struct Who {
    name: PersonName,
    birth: Option<NaiveDate>,
    sex: Sex,
    relationship: Relationship,
    /// For a dependent: the subscriber's name and birth date.
    holder: Option<(PersonName, Option<NaiveDate>)>,
    /// The patient's address (N3/N4 of their name loop).
    address: Option<Address>,
}

fn person(nm1: &billd_x12::segments::Nm1) -> PersonName {
    PersonName {
        last: nm1.last_or_org_name.clone().unwrap_or_default(),
        first: nm1.first_name.clone().unwrap_or_default(),
        middle: nm1.middle_name.clone(),
        suffix: nm1.suffix.clone(),
    }
}

/// The address in a name loop's N3 and N4 segments.
fn address(segments: &[Segment]) -> Option<Address> {
    let n3 = segments.iter().find(|s| s.id == "N3")?;
    let n4 = segments.iter().find(|s| s.id == "N4")?;
    let lines = [n3.get(1), n3.get(2)]
        .into_iter()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    Some(Address {
        lines,
        city: n4.get(1).to_string(),
        state: n4.get(2).to_string(),
        postal_code: n4.get(3).to_string(),
    })
}

/// Birth date and sex from a loop's DMG segment.
fn demographics(segments: &[Segment]) -> (Option<NaiveDate>, Sex) {
    let Some(dmg) = segments.iter().find(|s| s.id == "DMG") else {
        return (None, Sex::Unknown);
    };
    let birth = NaiveDate::parse_from_str(dmg.get(2), "%Y%m%d").ok();
    let sex = match dmg.get(3) {
        "F" => Sex::Female,
        "M" => Sex::Male,
        _ => Sex::Unknown,
    };
    (birth, sex)
}

/// Cents from an X12 amount; `None` when it has fractions of a cent.
fn cents(a: &billd_x12::fields::Amount) -> Option<i64> {
    let units = a.units();
    (units % 100 == 0).then_some(units / 100)
}

/// A service date from a DTP 472 (a date or the first day of a range).
fn service_date(dates: &[billd_x12::segments::Dtp]) -> Option<NaiveDate> {
    let d = dates.iter().find(|d| d.qualifier == "472")?;
    let first = d.value.split('-').next()?;
    NaiveDate::parse_from_str(first, "%Y%m%d").ok()
}

#[allow(clippy::too_many_arguments)]
fn one_claim(
    billing_npi: &str,
    payer_id: &str,
    member_id: &str,
    priority: PayerPriority,
    who: &Who,
    sub: &t837p::Subscriber,
    c: &t837p::Claim,
) -> Result<ImportedClaim, Problem> {
    let segment = c.pos.number.unwrap_or(0);
    let at = |what: &str, message: &str| Problem {
        line: None,
        field: Some(format!("segment {segment} {what}")),
        message: message.into(),
    };
    let clm01 = c.clm.claim_id.trim();
    if clm01.is_empty() {
        return Err(at("CLM01", "no patient control number"));
    }
    let birth = who.birth;
    let total = cents(&c.clm.total_charge)
        .ok_or_else(|| at("CLM02", "an amount in fractions of a cent"))?;
    let claim_date = service_date(&c.dates);
    let mut lines = Vec::with_capacity(c.lines.len());
    for (i, l) in c.lines.iter().enumerate() {
        let n = i + 1;
        let line_at = |what: &str, message: &str| at(&format!("line {n} {what}"), message);
        let charge = cents(&l.sv1.charge)
            .ok_or_else(|| line_at("SV102", "an amount in fractions of a cent"))?;
        let units = l.sv1.units.trim();
        let units = if units.is_empty() {
            1
        } else {
            units
                .parse::<f64>()
                .ok()
                .filter(|u| *u > 0.0 && u.fract() == 0.0 && *u < 1e6)
                .map(|u| u as u32)
                .ok_or_else(|| line_at("SV104", "units must be a whole number"))?
        };
        let service = service_date(&l.dates)
            .or(claim_date)
            .ok_or_else(|| line_at("DTP*472", "no date of service"))?;
        let pointers = (1..=4)
            .map(|k| l.sv1.diagnosis_pointers.get(k))
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u8>().unwrap_or(0))
            .collect();
        lines.push(ServiceLine {
            procedure: l.sv1.procedure.get(2).to_string(),
            modifiers: l.sv1.modifiers().into_iter().map(str::to_string).collect(),
            charge_cents: charge,
            units,
            diagnosis_pointers: pointers,
            service_date: service,
        });
    }
    let patient_id = derived_id(
        "P",
        &[
            payer_id,
            &member_id.to_ascii_uppercase(),
            &birth.map(|b| b.to_string()).unwrap_or_default(),
            &who.name.last.to_ascii_uppercase(),
            &who.name.first.to_ascii_uppercase(),
        ],
    );
    let coverage_id = derived_id(
        "V",
        &[payer_id, &member_id.to_ascii_uppercase(), &patient_id],
    );
    let rendering = c
        .rendering_provider()
        .and_then(|e| e.nm1.id.clone())
        .unwrap_or_else(|| billing_npi.to_string());
    let payer_claim_number = c
        .references
        .iter()
        .find(|r| r.qualifier == "F8")
        .and_then(|r| r.value.clone());
    let claim = Claim {
        id: claim_id(billing_npi, clm01),
        control_number: clm01.to_string(),
        patient_id: patient_id.clone(),
        coverage_id: coverage_id.clone(),
        payer_id: payer_id.to_string(),
        billing_npi: billing_npi.to_string(),
        rendering_npi: rendering,
        place_of_service: c.clm.place_of_service().to_string(),
        frequency_code: c.clm.frequency().to_string(),
        diagnoses: c.diagnoses().into_iter().map(str::to_string).collect(),
        lines,
        total_charge_cents: total,
        state: ClaimState::Draft,
        history: Vec::new(),
        payer_claim_number,
        next_check_at: None,
        revision: 0,
        held: false,
        problems: Vec::new(),
        billing_name: None,
        billing_tax_id: None,
    };
    let patient = birth.map(|birth_date| Patient {
        id: patient_id.clone(),
        name: who.name.clone(),
        birth_date,
        sex: who.sex,
        email: None,
        phone: None,
        address: who.address.clone(),
    });
    let coverage = Coverage {
        id: coverage_id,
        patient_id,
        payer_id: payer_id.to_string(),
        payer_name: sub.payer.nm1.last_or_org_name.clone().unwrap_or_default(),
        member_id: member_id.to_string(),
        group_number: sub.sbr.group_number.clone(),
        relationship: who.relationship,
        subscriber_name: who.holder.as_ref().map(|(n, _)| n.clone()),
        subscriber_birth_date: who.holder.as_ref().and_then(|(_, d)| *d),
        priority,
        effective: None,
        terminated: None,
        verdict: None,
    };
    Ok(ImportedClaim {
        claim,
        patient,
        patient_name: who.name.clone(),
        coverage,
        segment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/x12/837P")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn a_public_837p_reads_into_claims_with_their_patients() {
        let claims = read("e1.837", &fixture("lfh__demo.example1.837")).unwrap();
        assert_eq!(claims.len(), 1);
        let c = &claims[0];
        assert_eq!(c.claim.id, "1912301953-26463774");
        assert_eq!(c.claim.total_charge_cents, 10_000);
        let sum: i64 = c.claim.lines.iter().map(|l| l.charge_cents).sum();
        assert_eq!(sum, 10_000);
        assert_eq!(c.claim.lines.len(), 4);
        assert_eq!(c.claim.lines[2].diagnosis_pointers, [2]);
        assert_eq!(c.claim.lines[2].service_date.to_string(), "2006-10-10");
        // A dependent (PAT*19) of the subscriber.
        assert_eq!(c.coverage.relationship, Relationship::Child);
        assert_eq!(c.coverage.subscriber_name.as_ref().unwrap().first, "JANE");
        let p = c.patient.as_ref().unwrap();
        assert_eq!(
            (p.name.first.as_str(), p.birth_date.to_string().as_str()),
            ("TED", "1973-05-01")
        );
        assert_eq!(c.claim.patient_id, p.id);
        assert!(!p.id.contains("JS00111223333") && !c.coverage.id.contains("JS00111223333"));
        // ICD-9 qualifiers (BK/BF) are no ICD-10 diagnoses.
        assert!(c.claim.diagnoses.is_empty());
        // The same bytes give the same ids.
        assert_eq!(
            claims,
            read("e1.837", &fixture("lfh__demo.example1.837")).unwrap()
        );
    }

    #[test]
    fn what_billd_cannot_represent_refuses_the_file_naming_the_line() {
        // De-identified units of 99.99: a fraction of a unit.
        let e = read("m.837", &fixture("oop__MedicaidExample.txt")).unwrap_err();
        assert_eq!(e.problems.len(), 5, "{e}");
        assert_eq!(
            e.problems[0].field.as_deref(),
            Some("segment 22 line 1 SV104")
        );
    }

    #[test]
    fn an_unreadable_file_is_refused_with_located_errors() {
        let e = read("bad.837", &fixture("ims__x12_bad_segment_identifier.txt")).unwrap_err();
        assert!(!e.problems.is_empty());
        assert!(e.to_string().starts_with("bad.837: "), "{e}");
        assert!(e.problems.iter().all(|p| p.field.is_some()), "{e}");
        // A wrong SE01 is a broken envelope: the whole file goes back.
        let e = read("many.837", &fixture("ims__x12_many_claims.txt")).unwrap_err();
        assert_eq!(e.problems[0].field.as_deref(), Some("segment 11488"));
        let e = read("none.837", b"not x12 at all").unwrap_err();
        assert!(!e.problems.is_empty());
    }
}
