//! The FHIR R4 resources this connector reads, as typed JSON: only the
//! elements [`crate::map`] uses, every one optional, everything else
//! skipped unread. Reading a search page straight into these types takes a
//! fraction of the time and memory of a JSON tree (a page of a thousand
//! resources is half a megabyte), which is most of what the connector does.
//!
//! A repeated primitive may hold `null` where only its extension is given
//! (`"given": ["Ann", null]`), so those are lists of `Option`.

use serde::Deserialize;

/// What every resource here tells: its type, id and last update.
pub trait Resource {
    /// `resourceType`.
    fn resource_type(&self) -> &str;
    /// `meta.lastUpdated`, as the server wrote it.
    fn last_updated(&self) -> Option<&str>;
}

macro_rules! resource {
    ($($t:ty),*) => {$(
        impl Resource for $t {
            fn resource_type(&self) -> &str {
                &self.resource_type
            }
            fn last_updated(&self) -> Option<&str> {
                self.meta.last_updated.as_deref()
            }
        }
    )*};
}

/// A search answer: its entries' resources and its links.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle<R> {
    /// `Bundle` for a Bundle.
    #[serde(default)]
    pub resource_type: String,
    /// The entries (`Vec::new` by name: a plain `default` would ask
    /// `R: Default`).
    #[serde(default = "Vec::new")]
    pub entry: Vec<Entry<R>>,
    /// The paging links.
    #[serde(default)]
    pub link: Vec<Link>,
}

/// One entry of a [`Bundle`].
#[derive(Debug, Clone, Deserialize)]
pub struct Entry<R> {
    /// The resource, if the entry carries one (absent is `None`).
    pub resource: Option<R>,
}

/// A Bundle link (`self`, `next`, ...).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Link {
    /// `next`, `self`, ...
    pub relation: Option<String>,
    /// Where it points.
    pub url: Option<String>,
}

/// `meta`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Meta {
    /// When the server last changed the resource.
    pub last_updated: Option<String>,
}

/// An Identifier.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Identifier {
    /// Its namespace.
    pub system: Option<String>,
    /// Its value.
    pub value: Option<String>,
}

/// A Reference.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Reference {
    /// `Type/id`, an absolute URL, or a conditional `Type?query`.
    pub reference: Option<String>,
    /// A logical reference by identifier.
    pub identifier: Option<Identifier>,
    /// Text for a person.
    pub display: Option<String>,
}

/// A Coding.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Coding {
    /// The code system.
    pub system: Option<String>,
    /// The code.
    pub code: Option<String>,
}

/// A CodeableConcept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CodeableConcept {
    /// Its codings.
    pub coding: Vec<Coding>,
}

impl CodeableConcept {
    /// The code of its first coding.
    #[must_use]
    pub fn first_code(&self) -> Option<&str> {
        self.coding.first().and_then(|c| c.code.as_deref())
    }
}

/// A Period.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Period {
    /// Its start (a date or dateTime).
    pub start: Option<String>,
    /// Its end.
    pub end: Option<String>,
}

/// A HumanName.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HumanName {
    /// `official`, `usual`, `maiden`, `old`, ...
    #[serde(rename = "use")]
    pub use_: Option<String>,
    /// The family name.
    pub family: Option<String>,
    /// Given names, first first.
    pub given: Vec<Option<String>>,
    /// Suffixes.
    pub suffix: Vec<Option<String>>,
}

/// An Address.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Address {
    /// `home`, `work`, `old`, ...
    #[serde(rename = "use")]
    pub use_: Option<String>,
    /// Street lines.
    pub line: Vec<Option<String>>,
    /// City.
    pub city: Option<String>,
    /// State.
    pub state: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
}

/// A ContactPoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ContactPoint {
    /// `phone`, `email`, ...
    pub system: Option<String>,
    /// The number or address.
    pub value: Option<String>,
}

/// A Quantity (only its value is read).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Quantity {
    /// The amount.
    pub value: Option<f64>,
}

/// Money (its value, in the resource's currency).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Money {
    /// The amount.
    pub value: Option<f64>,
}

/// A Patient, or a RelatedPerson (a subscriber): the same elements.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Patient {
    /// `Patient` or `RelatedPerson`.
    pub resource_type: String,
    /// The logical id.
    pub id: Option<String>,
    /// `meta`.
    pub meta: Meta,
    /// Names.
    pub name: Vec<HumanName>,
    /// Birth date.
    pub birth_date: Option<String>,
    /// `male`, `female`, `other`, `unknown`.
    pub gender: Option<String>,
    /// Addresses.
    pub address: Vec<Address>,
    /// Phones and emails.
    pub telecom: Vec<ContactPoint>,
}

/// A Coverage.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Coverage {
    /// `Coverage`.
    pub resource_type: String,
    /// The logical id.
    pub id: Option<String>,
    /// `meta`.
    pub meta: Meta,
    /// `active`, `cancelled`, ...
    pub status: Option<String>,
    /// The subscriber's member id.
    pub subscriber_id: Option<String>,
    /// Business identifiers (the member id when `subscriberId` is absent).
    pub identifier: Vec<Identifier>,
    /// The insurer(s).
    pub payor: Vec<Reference>,
    /// The beneficiary's relationship to the subscriber.
    pub relationship: Option<CodeableConcept>,
    /// The patient covered.
    pub beneficiary: Reference,
    /// The subscriber.
    pub subscriber: Reference,
    /// Plan classes (group, plan, ...).
    pub class: Vec<CoverageClass>,
    /// Order of application (1 primary, 2 secondary, ...).
    pub order: Option<u64>,
    /// When in force.
    pub period: Period,
}

impl Coverage {
    /// The relationship code (`self`, `spouse`, `child`, ...), if coded.
    #[must_use]
    pub fn relationship_code(&self) -> Option<&str> {
        self.relationship
            .as_ref()
            .and_then(CodeableConcept::first_code)
    }
}

/// A Coverage class.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CoverageClass {
    /// `group`, `plan`, ...
    #[serde(rename = "type")]
    pub type_: CodeableConcept,
    /// Its value.
    pub value: Option<String>,
}

/// An Appointment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Appointment {
    /// `Appointment`.
    pub resource_type: String,
    /// The logical id.
    pub id: Option<String>,
    /// `meta`.
    pub meta: Meta,
    /// `booked`, `arrived`, `fulfilled`, ...
    pub status: Option<String>,
    /// Start instant.
    pub start: Option<String>,
    /// End instant.
    pub end: Option<String>,
    /// Length in minutes.
    pub minutes_duration: Option<u64>,
    /// Who takes part.
    pub participant: Vec<Participant>,
}

/// An Appointment participant.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Participant {
    /// The patient, practitioner, location, ...
    pub actor: Reference,
}

/// An Encounter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Encounter {
    /// `Encounter`.
    pub resource_type: String,
    /// The logical id.
    pub id: Option<String>,
    /// `meta`.
    pub meta: Meta,
    /// `finished`, `in-progress`, ...
    pub status: Option<String>,
    /// Ambulatory, emergency, inpatient, ... (a Coding in R4).
    pub class: Coding,
    /// When it took place.
    pub period: Period,
    /// Coded reasons.
    pub reason_code: Vec<CodeableConcept>,
    /// The patient.
    pub subject: Reference,
    /// The appointment(s) it fulfils.
    pub appointment: Vec<Reference>,
    /// Who took part.
    pub participant: Vec<EncounterParticipant>,
}

/// An Encounter participant.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EncounterParticipant {
    /// The practitioner.
    pub individual: Reference,
}

/// A ChargeItem.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ChargeItem {
    /// `ChargeItem`.
    pub resource_type: String,
    /// The logical id.
    pub id: Option<String>,
    /// `meta`.
    pub meta: Meta,
    /// The encounter it belongs to.
    pub context: Reference,
    /// The procedure.
    pub code: CodeableConcept,
    /// Units.
    pub quantity: Quantity,
    /// The price, when set by hand.
    pub price_override: Money,
    /// Price components (as some servers send them).
    pub total_price_component: Vec<PriceComponent>,
    /// Coded reasons (diagnoses).
    pub reason: Vec<CodeableConcept>,
    /// The day of service.
    pub occurrence_date_time: Option<String>,
    /// Or its period.
    pub occurrence_period: Period,
}

/// A price component.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PriceComponent {
    /// Its amount.
    pub amount: Money,
}

/// A Claim (as an EHR writes one for a visit).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Claim {
    /// `Claim`.
    pub resource_type: String,
    /// The logical id.
    pub id: Option<String>,
    /// `meta`.
    pub meta: Meta,
    /// Diagnoses by sequence.
    pub diagnosis: Vec<ClaimDiagnosis>,
    /// Lines.
    pub item: Vec<ClaimItem>,
}

/// A Claim diagnosis.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClaimDiagnosis {
    /// Its number, which items point at.
    pub sequence: Option<u64>,
    /// The code.
    pub diagnosis_codeable_concept: CodeableConcept,
}

/// A Claim line.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClaimItem {
    /// Its number.
    pub sequence: Option<u64>,
    /// The diagnoses it points at.
    pub diagnosis_sequence: Vec<u64>,
    /// Units.
    pub quantity: Quantity,
    /// The procedure.
    pub product_or_service: CodeableConcept,
    /// The line's total.
    pub net: Money,
    /// The unit price.
    pub unit_price: Money,
    /// The day of service.
    pub serviced_date: Option<String>,
    /// Or its period.
    pub serviced_period: Period,
    /// The encounters it bills.
    pub encounter: Vec<Reference>,
}

resource!(Patient, Coverage, Appointment, Encounter, ChargeItem, Claim);

impl<R: Resource> Bundle<R> {
    /// The `next` link, if any.
    #[must_use]
    pub fn next_link(&self) -> Option<String> {
        self.link
            .iter()
            .find(|l| l.relation.as_deref() == Some("next"))
            .and_then(|l| l.url.clone())
            .filter(|u| !u.is_empty())
    }

    /// The entries' resources, without the OperationOutcomes a server may
    /// add (warnings about the search).
    pub fn into_resources(self) -> impl Iterator<Item = R> {
        self.entry
            .into_iter()
            .filter_map(|e| e.resource)
            .filter(|r| r.resource_type() != "OperationOutcome")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_reads_its_resources_links_and_nulls_of_extended_primitives() {
        let b: Bundle<Patient> = serde_json::from_str(
            r#"{"resourceType": "Bundle", "link": [{"relation": "next", "url": "http://h/p2"}],
              "entry": [
                {"resource": {"resourceType": "Patient", "id": "p1", "meta": {"lastUpdated": "2026-01-01T00:00:00Z"},
                  "name": [{"given": ["Ann", null], "_given": [null, {"extension": []}]}],
                  "extension": [{"url": "x", "valueString": "y"}]}},
                {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning"}]}},
                {"fullUrl": "urn:uuid:1"}
              ]}"#,
        )
        .unwrap();
        assert_eq!(b.resource_type, "Bundle");
        assert_eq!(b.next_link().as_deref(), Some("http://h/p2"));
        let rs: Vec<Patient> = b.into_resources().collect();
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].id.as_deref(), Some("p1"));
        assert_eq!(rs[0].last_updated(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(rs[0].name[0].given, [Some("Ann".to_owned()), None]);
        let empty: Bundle<Patient> = serde_json::from_str(r#"{"resourceType": "Bundle"}"#).unwrap();
        assert_eq!(empty.next_link(), None);
    }

    /// Reads `text` as the type its resourceType names, if it is one read
    /// here; says which it was.
    fn read_as(kind: &str, text: &str) -> Result<bool, serde_json::Error> {
        match kind {
            "Patient" | "RelatedPerson" => serde_json::from_str::<Patient>(text).map(|_| true),
            "Coverage" => serde_json::from_str::<Coverage>(text).map(|_| true),
            "Appointment" => serde_json::from_str::<Appointment>(text).map(|_| true),
            "Encounter" => serde_json::from_str::<Encounter>(text).map(|_| true),
            "ChargeItem" => serde_json::from_str::<ChargeItem>(text).map(|_| true),
            "Claim" => serde_json::from_str::<Claim>(text).map(|_| true),
            _ => Ok(false),
        }
    }

    #[test]
    fn every_fixture_resource_of_a_type_read_here_reads() {
        let root = format!("{}/../../tests/fixtures/fhir", env!("CARGO_MANIFEST_DIR"));
        let mut read = std::collections::BTreeMap::<String, usize>::new();
        for dir in ["hl7-r4-examples", "synthea-bulk-10patients"] {
            for f in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let path = f.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                let resources: Vec<&str> = if path.extension().is_some_and(|e| e == "ndjson") {
                    text.lines().filter(|l| !l.trim().is_empty()).collect()
                } else {
                    vec![text.as_str()]
                };
                for raw in resources {
                    let one: serde_json::Value = serde_json::from_str(raw).unwrap();
                    let kind = one["resourceType"].as_str().unwrap_or_default().to_owned();
                    match read_as(&kind, raw) {
                        Ok(true) => *read.entry(kind).or_default() += 1,
                        Ok(false) => {}
                        Err(e) => panic!("{}: {kind}: {e}", path.display()),
                    }
                }
            }
        }
        for kind in ["Patient", "Coverage", "Encounter", "ChargeItem", "Claim"] {
            assert!(
                read.get(kind).copied().unwrap_or(0) > 0,
                "no {kind} read: {read:?}"
            );
        }
    }
}
