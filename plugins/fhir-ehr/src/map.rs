//! FHIR R4 resources ([`crate::fhir`]) into the contract's EHR records. Pure
//! functions, so they are tested on the host against the HL7 examples and
//! the Synthea export.
//!
//! Ids are the FHIR logical ids; references (`Patient/123`, or Synthea's
//! conditional `Practitioner?identifier=...|NPI`) are reduced to the id or
//! the NPI. A value the contract requires but the resource lacks becomes an
//! empty string (a coverage without payor has payer-id ""; a charge whose
//! code is neither CPT nor HCPCS has code ""), and a date or instant it
//! lacks becomes [`MISSING_DATE`] or [`MISSING_INSTANT`], which billd
//! refuses by name, so billd's sync job can raise a task for it instead of
//! the record vanishing here. Only a resource without an id (which nothing
//! could refer to or fix) is left out.

use crate::fhir::{self, CodeableConcept, Money, Reference};
use billd_plugin_sdk::ehr::{
    Appointment, AppointmentStatus, Charge, Coverage, CoveragePriority, Encounter, Patient,
};
use billd_plugin_sdk::types::{
    Address, Date, PersonName, Procedure, ProcedureCodeSet, Relationship, Sex, Subscriber,
    Timestamp,
};

/// The NPI identifier system.
pub const NPI_SYSTEM: &str = "http://hl7.org/fhir/sid/us-npi";
/// CPT code systems seen in the field.
const CPT_SYSTEMS: &[&str] = &[
    "http://www.ama-assn.org/go/cpt",
    "urn:oid:2.16.840.1.113883.6.12",
];
/// HCPCS code systems seen in the field.
const HCPCS_SYSTEMS: &[&str] = &[
    "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
    "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
    "urn:oid:2.16.840.1.113883.6.285",
];
/// ICD-10(-CM) code systems seen in the field.
const ICD10_SYSTEMS: &[&str] = &[
    "http://hl7.org/fhir/sid/icd-10-cm",
    "http://hl7.org/fhir/sid/icd-10",
    "urn:oid:2.16.840.1.113883.6.90",
];

/// The contract date of a date the resource lacks: no calendar day, so
/// billd refuses it naming the field.
pub const MISSING_DATE: Date = Date {
    year: 0,
    month: 0,
    day: 0,
};

/// The contract instant of an instant the resource lacks: out of any
/// calendar's range, so billd refuses it naming the field.
pub const MISSING_INSTANT: Timestamp = Timestamp {
    seconds: i64::MIN,
    nanoseconds: 0,
};

/// The text, unless it is blank.
fn s(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|t| !t.trim().is_empty())
}

fn text(v: &Option<String>) -> String {
    s(v).unwrap_or_default().to_owned()
}

/// The non-blank texts of a repeated primitive.
fn texts(v: &[Option<String>]) -> Vec<&str> {
    v.iter().filter_map(s).collect()
}

/// The id of a reference to `kind` (`Patient/123` or an absolute URL
/// ending so), if it is one.
#[must_use]
pub fn reference_id(reference: &Reference, kind: &str) -> Option<String> {
    let r = s(&reference.reference)?;
    let (before, rest) = r.split_once(&format!("{kind}/"))?;
    if !(before.is_empty() || before.ends_with('/')) {
        return None;
    }
    let id = rest.split('/').next().unwrap_or(rest);
    (!id.is_empty() && !id.contains('?')).then(|| id.to_owned())
}

/// The NPI of a reference: its `identifier` (us-npi), or a conditional
/// reference `Practitioner?identifier=<us-npi>|NPI`.
#[must_use]
pub fn npi_of(reference: &Reference) -> Option<String> {
    if let Some(i) = &reference.identifier
        && i.system.as_deref() == Some(NPI_SYSTEM)
    {
        return s(&i.value).map(str::to_owned);
    }
    let r = s(&reference.reference)?;
    let (_, q) = r.split_once("identifier=")?;
    let (system, value) = q.split_once('|')?;
    (system == NPI_SYSTEM && !value.is_empty()).then(|| value.to_owned())
}

/// A FHIR date (or the date part of a dateTime).
#[must_use]
pub fn date(v: &Option<String>) -> Option<Date> {
    let t = s(v)?;
    let y = t.get(0..4)?.parse().ok()?;
    let m = t.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    let d = t.get(8..10).and_then(|d| d.parse().ok()).unwrap_or(1);
    Some(Date {
        year: y,
        month: m,
        day: d,
    })
}

/// A FHIR instant or dateTime with an offset.
#[must_use]
pub fn instant(v: &Option<String>) -> Option<Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(s(v)?).ok()?;
    Some(Timestamp {
        seconds: t.timestamp(),
        nanoseconds: t.timestamp_subsec_nanos(),
    })
}

fn sex(v: &Option<String>) -> Sex {
    match v.as_deref() {
        Some("female") => Sex::Female,
        Some("male") => Sex::Male,
        _ => Sex::Unknown,
    }
}

fn name(list: &[fhir::HumanName]) -> PersonName {
    let used = |n: &fhir::HumanName, u: &str| n.use_.as_deref() == Some(u);
    let chosen = list
        .iter()
        .find(|n| used(n, "official"))
        .or_else(|| list.iter().find(|n| !used(n, "maiden") && !used(n, "old")))
        .or(list.first());
    let Some(n) = chosen else {
        return PersonName {
            last: String::new(),
            first: String::new(),
            middle: None,
            suffix: None,
        };
    };
    let given = texts(&n.given);
    PersonName {
        last: text(&n.family),
        first: given.first().copied().unwrap_or_default().to_owned(),
        middle: given.get(1).map(|m| (*m).to_owned()),
        suffix: n.suffix.first().and_then(s).map(str::to_owned),
    }
}

fn address(addresses: &[fhir::Address]) -> Option<Address> {
    let a = addresses
        .iter()
        .find(|a| a.use_.as_deref() != Some("old"))?;
    let lines = texts(&a.line);
    Some(Address {
        line1: lines.first().copied().unwrap_or_default().to_owned(),
        line2: lines.get(1).map(|l| (*l).to_owned()),
        city: text(&a.city),
        state: text(&a.state),
        postal_code: text(&a.postal_code),
    })
}

fn telecom(t: &[fhir::ContactPoint], system: &str) -> Option<String> {
    t.iter()
        .find(|c| c.system.as_deref() == Some(system))
        .and_then(|c| s(&c.value))
        .map(str::to_owned)
}

/// A Patient, or `None` without an id (nothing could refer to it).
#[must_use]
pub fn patient(r: &fhir::Patient) -> Option<Patient> {
    Some(Patient {
        patient_id: s(&r.id)?.to_owned(),
        name: name(&r.name),
        birth_date: date(&r.birth_date).unwrap_or(MISSING_DATE),
        sex: sex(&r.gender),
        address: address(&r.address),
        email: telecom(&r.telecom, "email"),
        phone: telecom(&r.telecom, "phone"),
    })
}

/// The payer a Coverage names: the first payor's identifier value, else
/// its reference, else its display; "" without payor.
#[must_use]
pub fn payor_key(r: &fhir::Coverage) -> (String, String) {
    let Some(p) = r.payor.first() else {
        return (String::new(), String::new());
    };
    let key = p
        .identifier
        .as_ref()
        .and_then(|i| s(&i.value))
        .or_else(|| s(&p.reference))
        .or_else(|| s(&p.display))
        .unwrap_or_default()
        .to_owned();
    (key, text(&p.display))
}

/// A Coverage. `subscriber` is the subscriber's Patient (or
/// RelatedPerson) when the patient is a dependent and it could be read.
#[must_use]
pub fn coverage(r: &fhir::Coverage, subscriber: Option<&fhir::Patient>) -> Option<Coverage> {
    let (payer_id, payer_name) = payor_key(r);
    let relationship = match r.relationship_code().unwrap_or("self") {
        "self" => None,
        "spouse" => Some(Relationship::Spouse),
        "child" => Some(Relationship::Child),
        _ => Some(Relationship::Other),
    };
    let member_id = s(&r.subscriber_id)
        .or_else(|| r.identifier.first().and_then(|i| s(&i.value)))
        .unwrap_or_default()
        .to_owned();
    let group_number = r
        .class
        .iter()
        .find(|c| c.type_.first_code() == Some("group"))
        .and_then(|c| s(&c.value))
        .map(str::to_owned);
    let nobody = fhir::Patient::default();
    let sub = subscriber.unwrap_or(&nobody);
    Some(Coverage {
        coverage_id: s(&r.id)?.to_owned(),
        patient_id: reference_id(&r.beneficiary, "Patient").unwrap_or_default(),
        payer_id,
        payer_name,
        subscriber: Subscriber {
            member_id,
            name: name(&sub.name),
            birth_date: date(&sub.birth_date).unwrap_or(Date {
                year: 0,
                month: 1,
                day: 1,
            }),
            sex: sex(&sub.gender),
            group_number,
            address: address(&sub.address),
        },
        relationship,
        priority: match r.order {
            Some(2) => CoveragePriority::Secondary,
            Some(n) if n >= 3 => CoveragePriority::Tertiary,
            _ => CoveragePriority::Primary,
        },
        start: date(&r.period.start),
        end: date(&r.period.end),
        active: r.status.as_deref() == Some("active"),
    })
}

/// An Appointment; its patient and provider are the participants that
/// reference a Patient and carry an NPI.
#[must_use]
pub fn appointment(r: &fhir::Appointment) -> Option<Appointment> {
    let parts = &r.participant;
    let found = instant(&r.start);
    let start = found.unwrap_or(MISSING_INSTANT);
    let minutes = r
        .minutes_duration
        .map(|m| m as u32)
        .or_else(|| {
            let start = found?;
            instant(&r.end).map(|end| ((end.seconds - start.seconds).max(0) / 60) as u32)
        })
        .unwrap_or(0);
    Some(Appointment {
        appointment_id: s(&r.id)?.to_owned(),
        patient_id: parts
            .iter()
            .find_map(|p| reference_id(&p.actor, "Patient"))
            .unwrap_or_default(),
        provider_npi: parts
            .iter()
            .find_map(|p| npi_of(&p.actor))
            .unwrap_or_default(),
        start,
        minutes,
        status: match r.status.as_deref() {
            Some("arrived" | "checked-in") => AppointmentStatus::Arrived,
            Some("fulfilled") => AppointmentStatus::Fulfilled,
            Some("cancelled" | "entered-in-error") => AppointmentStatus::Cancelled,
            Some("noshow") => AppointmentStatus::NoShow,
            _ => AppointmentStatus::Booked,
        },
        location: parts
            .iter()
            .find(|p| reference_id(&p.actor, "Location").is_some())
            .and_then(|p| s(&p.actor.display))
            .map(str::to_owned),
    })
}

fn place_of_service(class: &fhir::Coding) -> &'static str {
    match class.code.as_deref() {
        Some("EMER") => "23",
        Some("IMP" | "ACUTE" | "NONAC") => "21",
        Some("HH") => "12",
        Some("VR") => "02",
        Some("OBSENC") => "22",
        _ => "11",
    }
}

/// The CPT or HCPCS code of a CodeableConcept; code "" when it has none.
fn procedure(concept: &CodeableConcept) -> Procedure {
    for c in &concept.coding {
        let system = c.system.as_deref().unwrap_or_default();
        let code_set = if CPT_SYSTEMS.contains(&system) {
            ProcedureCodeSet::Cpt
        } else if HCPCS_SYSTEMS.contains(&system) {
            ProcedureCodeSet::Hcpcs
        } else {
            continue;
        };
        if let Some(code) = s(&c.code) {
            return Procedure {
                code_set,
                code: code.to_owned(),
                modifiers: Vec::new(),
            };
        }
    }
    Procedure {
        code_set: ProcedureCodeSet::Cpt,
        code: String::new(),
        modifiers: Vec::new(),
    }
}

/// Whether `code` (without its dot) has the shape of an ICD-10 code: a
/// letter, a digit, a letter or digit, then up to four letters or digits.
fn icd10_shaped(code: &str) -> bool {
    let b = code.as_bytes();
    (3..=7).contains(&b.len())
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_digit()
        && b[2..].iter().all(u8::is_ascii_alphanumeric)
}

/// The ICD-10 codes of a CodeableConcept, without the dot; a code of an
/// ICD-10 system that is not shaped like one (the HL7 examples' `123456`)
/// is left out.
fn icd10(concept: &CodeableConcept) -> Vec<String> {
    concept
        .coding
        .iter()
        .filter(|c| ICD10_SYSTEMS.contains(&c.system.as_deref().unwrap_or_default()))
        .filter_map(|c| s(&c.code))
        .map(|c| c.trim().replace('.', "").to_ascii_uppercase())
        .filter(|c| icd10_shaped(c))
        .collect()
}

fn cents(money: &Money) -> Option<i64> {
    Some((money.value? * 100.0).round() as i64)
}

fn units(q: &fhir::Quantity) -> u32 {
    q.value.map_or(1, |q| q.round().max(1.0) as u32)
}

fn pointer_to(diagnoses: &mut Vec<String>, code: String) -> u8 {
    let i = diagnoses
        .iter()
        .position(|d| *d == code)
        .unwrap_or_else(|| {
            diagnoses.push(code);
            diagnoses.len() - 1
        });
    (i + 1).min(usize::from(u8::MAX)) as u8
}

/// An Encounter with the charges its ChargeItems and Claims carry.
/// Diagnoses are the ICD-10 codes of the encounter's `reasonCode`,
/// `diagnosis` (when coded inline) and of the charges, principal first.
/// `signed` is whether the status is one of `signed_statuses`.
#[must_use]
pub fn encounter(
    r: &fhir::Encounter,
    charge_items: &[&fhir::ChargeItem],
    claims: &[&fhir::Claim],
    signed_statuses: &[String],
) -> Option<Encounter> {
    let id = s(&r.id)?.to_owned();
    let service_date = date(&r.period.start).unwrap_or(MISSING_DATE);
    let mut diagnoses: Vec<String> = Vec::new();
    for reason in &r.reason_code {
        for code in icd10(reason) {
            pointer_to(&mut diagnoses, code);
        }
    }
    let mut charges = Vec::new();
    for ci in charge_items {
        let mut pointers = Vec::new();
        for reason in &ci.reason {
            for code in icd10(reason) {
                pointers.push(pointer_to(&mut diagnoses, code));
            }
        }
        let amount = cents(&ci.price_override)
            .or_else(|| {
                ci.total_price_component
                    .iter()
                    .find_map(|p| cents(&p.amount))
            })
            .unwrap_or(0);
        charges.push(Charge {
            charge_id: format!("ChargeItem/{}", text(&ci.id)),
            procedure: procedure(&ci.code),
            units: units(&ci.quantity),
            amount,
            diagnosis_pointers: pointers,
            service_date: date(&ci.occurrence_date_time)
                .or_else(|| date(&ci.occurrence_period.start))
                .unwrap_or(service_date),
        });
    }
    for claim in claims {
        // Claim.diagnosis by sequence, then items pointing at them.
        let mut by_sequence = Vec::new();
        for d in &claim.diagnosis {
            let seq = d.sequence.unwrap_or(0);
            if let Some(code) = icd10(&d.diagnosis_codeable_concept).into_iter().next() {
                by_sequence.push((seq, pointer_to(&mut diagnoses, code)));
            }
        }
        for item in &claim.item {
            let pointers = item
                .diagnosis_sequence
                .iter()
                .filter_map(|q| by_sequence.iter().find(|(s, _)| s == q).map(|(_, p)| *p))
                .collect();
            charges.push(Charge {
                charge_id: format!("Claim/{}/{}", text(&claim.id), item.sequence.unwrap_or(0)),
                procedure: procedure(&item.product_or_service),
                units: units(&item.quantity),
                amount: cents(&item.net)
                    .or_else(|| cents(&item.unit_price))
                    .unwrap_or(0),
                diagnosis_pointers: pointers,
                service_date: date(&item.serviced_date)
                    .or_else(|| date(&item.serviced_period.start))
                    .unwrap_or(service_date),
            });
        }
    }
    Some(Encounter {
        encounter_id: id,
        patient_id: reference_id(&r.subject, "Patient").unwrap_or_default(),
        appointment_id: r
            .appointment
            .first()
            .and_then(|a| reference_id(a, "Appointment")),
        service_date,
        rendering_npi: r
            .participant
            .iter()
            .find_map(|p| npi_of(&p.individual))
            .unwrap_or_default(),
        place_of_service: place_of_service(&r.class).to_owned(),
        diagnoses,
        charges,
        signed: r
            .status
            .as_deref()
            .is_some_and(|st| signed_statuses.iter().any(|w| w == st)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    fn fixture_value(path: &str) -> Value {
        let p = format!(
            "{}/../../tests/fixtures/fhir/{path}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
    }

    fn fixture<T: DeserializeOwned>(path: &str) -> T {
        typed(fixture_value(path))
    }

    fn typed<T: DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn what_a_resource_lacks_reaches_billd_as_a_value_it_refuses() {
        let p = patient(&typed(json!({"resourceType": "Patient", "id": "p1"}))).unwrap();
        assert_eq!(p.birth_date, MISSING_DATE);
        let a = appointment(&typed(json!({
            "resourceType": "Appointment", "id": "a1", "status": "booked",
            "end": "2026-01-01T10:00:00Z"
        })))
        .unwrap();
        assert_eq!((a.start, a.minutes), (MISSING_INSTANT, 0));
        let e = encounter(
            &typed(json!({"resourceType": "Encounter", "id": "e1", "status": "finished"})),
            &[],
            &[],
            &["finished".to_string()],
        )
        .unwrap();
        assert_eq!(e.service_date, MISSING_DATE);
        assert!(patient(&typed(json!({"resourceType": "Patient"}))).is_none());
    }

    #[test]
    fn every_synthea_patient_maps_with_its_birth_date() {
        let p = format!(
            "{}/../../tests/fixtures/fhir/synthea-bulk-10patients/Patient.000.ndjson",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(p).unwrap();
        let mapped: Vec<Patient> = text
            .lines()
            .map(|l| patient(&serde_json::from_str::<fhir::Patient>(l).unwrap()).unwrap())
            .collect();
        assert_eq!(mapped.len(), 13);
        assert!(
            mapped
                .iter()
                .all(|p| !p.name.last.is_empty() && p.birth_date.year > 1900)
        );
    }

    #[test]
    fn a_coverage_maps_payor_member_group_period_and_order() {
        let c = coverage(&fixture("hl7-r4-examples/Coverage-9876B1.json"), None).unwrap();
        assert_eq!(c.coverage_id, "9876B1");
        assert_eq!(c.patient_id, "4");
        assert_eq!(c.payer_id, "Organization/2");
        assert_eq!(c.subscriber.member_id, "12345");
        assert_eq!(c.subscriber.group_number.as_deref(), Some("CB135"));
        assert_eq!(c.relationship, None);
        assert_eq!(c.priority, CoveragePriority::Primary);
        assert_eq!(
            c.start,
            Some(Date {
                year: 2011,
                month: 5,
                day: 23
            })
        );
        assert!(c.active);
        let mut no_payor = fixture_value("hl7-r4-examples/Coverage-9876B1.json");
        no_payor.as_object_mut().unwrap().remove("payor");
        assert_eq!(coverage(&typed(no_payor), None).unwrap().payer_id, "");
    }

    #[test]
    fn a_synthea_encounter_takes_the_npi_from_a_conditional_reference() {
        let p = format!(
            "{}/../../tests/fixtures/fhir/synthea-bulk-10patients/Encounter.000.ndjson",
            env!("CARGO_MANIFEST_DIR")
        );
        let line = std::fs::read_to_string(p).unwrap();
        let r: fhir::Encounter = serde_json::from_str(line.lines().next().unwrap()).unwrap();
        let e = encounter(&r, &[], &[], &["finished".to_owned()]).unwrap();
        assert_eq!(e.rendering_npi, "9999974493");
        assert_eq!(e.patient_id, "79a66c97-6131-3213-f3c9-4606946ab056");
        assert_eq!(e.place_of_service, "11");
        assert!(e.signed);
    }

    #[test]
    fn charge_items_and_claims_become_charges_with_pointers() {
        let enc: fhir::Encounter = typed(
            json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
            "subject": {"reference": "Patient/p1"}, "period": {"start": "2026-12-01T09:00:00Z"}}),
        );
        let ci: fhir::ChargeItem = typed(json!({"resourceType": "ChargeItem", "id": "c1",
            "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]},
            "quantity": {"value": 1}, "priceOverride": {"value": 125.5, "currency": "USD"},
            "reason": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}]}));
        let example: fhir::ChargeItem = fixture("hl7-r4-examples/ChargeItem-example.json");
        let claim: fhir::Claim = fixture("hl7-r4-examples/Claim-100150.json");
        let e = encounter(&enc, &[&ci, &example], &[&claim], &["finished".to_owned()]).unwrap();
        assert_eq!(e.diagnoses, ["E119"]);
        assert_eq!(e.charges[0].procedure.code, "99213");
        assert_eq!(e.charges[0].amount, 12_550);
        assert_eq!(e.charges[0].diagnosis_pointers, [1]);
        // The HL7 examples code their charges in local systems: no CPT.
        assert_eq!(e.charges[1].procedure.code, "");
        assert!(e.charges.len() >= 3);
        assert!(e.charges[2].charge_id.starts_with("Claim/100150/"));
    }

    #[test]
    fn only_codes_shaped_like_icd10_are_diagnoses() {
        let concept = |code: &str| -> CodeableConcept {
            typed(
                json!({"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}]}),
            )
        };
        assert_eq!(icd10(&concept("E11.9")), ["E119"]);
        assert_eq!(icd10(&concept("s72.001a")), ["S72001A"]);
        assert!(icd10(&concept("123456")).is_empty());
        assert!(icd10(&concept("E1")).is_empty());
        assert!(icd10(&concept("E11.99999")).is_empty());
    }

    #[test]
    fn references_reduce_to_ids() {
        let r: Reference = typed(json!({"reference": "http://x.org/fhir/Patient/abc/_history/2"}));
        assert_eq!(reference_id(&r, "Patient").as_deref(), Some("abc"));
        let r: Reference = typed(json!({"reference": "Patient/abc"}));
        assert_eq!(reference_id(&r, "Patient").as_deref(), Some("abc"));
        assert_eq!(reference_id(&r, "Location"), None);
    }
}
