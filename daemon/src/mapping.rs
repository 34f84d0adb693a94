//! The one mapping between billd's domain types and the plugin contract's
//! (`billd:connector`). The two differ on purpose: the domain keeps what
//! billd needs to bill (address lines as a list, a claim state machine with
//! fifteen states, a coverage's relationship including "self"), the contract
//! keeps what a connector needs to speak X12 or FHIR (two address lines, the
//! six claim states a payer can report, a dependent only when the patient
//! is not the subscriber). Jobs convert here and nowhere else.
//!
//! Conversions from the contract check what a connector sends (dates that
//! exist, ids that are not empty) and fail with a [`MappingError`] naming
//! the field, never its value.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

use crate::domain::posting::CobBasis;
use crate::domain::remittance::{EraAdjustment, EraLine};
use crate::domain::{
    Address, Appointment, AppointmentStatus, Claim, ClaimState, Coverage, EligibilityStatus,
    EligibilityVerdict, Patient, PayerPriority, PersonName, Relationship, ServiceLine, Sex,
};
use crate::plugin::bindings::{
    collections_api as co, coordination_api as cob, ehr_api as ehr, payer_api as pay, types as wit,
};

/// A value from a connector that does not fit the domain. Names the field,
/// never the value (it may be patient data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connector sent an unusable {field}: {reason}")]
pub struct MappingError {
    /// The contract field, dotted (`appointment.start`).
    pub field: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

/// A calendar date in the contract's form.
pub fn date(d: NaiveDate) -> wit::Date {
    wit::Date {
        year: d.year().clamp(0, u16::MAX as i32) as u16,
        month: d.month() as u8,
        day: d.day() as u8,
    }
}

/// A contract date as a calendar date; `field` names it in the error.
pub fn date_from(d: wit::Date, field: &'static str) -> Result<NaiveDate, MappingError> {
    NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into()).ok_or(MappingError {
        field,
        reason: "not a calendar date",
    })
}

/// An instant in the contract's form.
pub fn timestamp(t: DateTime<Utc>) -> wit::Timestamp {
    wit::Timestamp {
        seconds: t.timestamp(),
        nanoseconds: t.timestamp_subsec_nanos(),
    }
}

/// A contract instant as UTC; `field` names it in the error.
pub fn timestamp_from(
    t: wit::Timestamp,
    field: &'static str,
) -> Result<DateTime<Utc>, MappingError> {
    Utc.timestamp_opt(t.seconds, t.nanoseconds)
        .single()
        .ok_or(MappingError {
            field,
            reason: "not a representable instant",
        })
}

/// A name in the contract's form.
pub fn person_name(n: &PersonName) -> wit::PersonName {
    wit::PersonName {
        last: n.last.clone(),
        first: n.first.clone(),
        middle: n.middle.clone(),
        suffix: n.suffix.clone(),
    }
}

/// A contract name in the domain's form.
pub fn person_name_from(n: wit::PersonName) -> PersonName {
    PersonName {
        last: n.last,
        first: n.first,
        middle: n.middle,
        suffix: n.suffix,
    }
}

/// An address with the domain's street lines folded into the contract's
/// two: the first line, then the rest joined by ", ".
pub fn address(a: &Address) -> wit::Address {
    let mut lines = a.lines.iter();
    let line1 = lines.next().cloned().unwrap_or_default();
    let rest: Vec<&str> = lines.map(String::as_str).collect();
    wit::Address {
        line1,
        line2: (!rest.is_empty()).then(|| rest.join(", ")),
        city: a.city.clone(),
        state: a.state.clone(),
        postal_code: a.postal_code.clone(),
    }
}

/// A contract address in the domain's form (empty lines dropped).
pub fn address_from(a: wit::Address) -> Address {
    Address {
        lines: std::iter::once(a.line1)
            .chain(a.line2)
            .filter(|l| !l.trim().is_empty())
            .collect(),
        city: a.city,
        state: a.state,
        postal_code: a.postal_code,
    }
}

/// Administrative sex in the contract's form.
pub fn sex(s: Sex) -> wit::Sex {
    match s {
        Sex::Female => wit::Sex::Female,
        Sex::Male => wit::Sex::Male,
        Sex::Unknown => wit::Sex::Unknown,
    }
}

/// Contract sex in the domain's form.
pub fn sex_from(s: wit::Sex) -> Sex {
    match s {
        wit::Sex::Female => Sex::Female,
        wit::Sex::Male => Sex::Male,
        wit::Sex::Unknown => Sex::Unknown,
    }
}

/// The subscriber and, when the patient is not the subscriber, the
/// dependent, as an eligibility inquiry, a claim or a status inquiry names
/// them. A dependent's subscriber is known by the coverage's subscriber
/// name and birth date; the patient's own stand in where those are absent.
pub fn subscriber(
    patient: &Patient,
    coverage: &Coverage,
) -> (wit::Subscriber, Option<wit::Dependent>) {
    let own = wit::Subscriber {
        member_id: coverage.member_id.clone(),
        name: person_name(&patient.name),
        birth_date: date(patient.birth_date),
        sex: sex(patient.sex),
        group_number: coverage.group_number.clone(),
        address: patient.address.as_ref().map(address),
    };
    let relationship = match coverage.relationship {
        Relationship::SelfInsured => return (own, None),
        Relationship::Spouse => wit::Relationship::Spouse,
        Relationship::Child => wit::Relationship::Child,
        Relationship::Other => wit::Relationship::Other,
    };
    let holder = wit::Subscriber {
        member_id: coverage.member_id.clone(),
        name: coverage
            .subscriber_name
            .as_ref()
            .map(person_name)
            .unwrap_or_else(|| person_name(&patient.name)),
        birth_date: date(coverage.subscriber_birth_date.unwrap_or(patient.birth_date)),
        sex: wit::Sex::Unknown,
        group_number: coverage.group_number.clone(),
        address: None,
    };
    let dependent = wit::Dependent {
        name: person_name(&patient.name),
        birth_date: date(patient.birth_date),
        sex: sex(patient.sex),
        relationship,
    };
    (holder, Some(dependent))
}

/// A provider known by NPI (and, for the billing provider, name and tax id).
pub fn provider(npi: &str, name: &str, tax_id: Option<&str>) -> wit::Provider {
    wit::Provider {
        npi: npi.to_string(),
        name: name.to_string(),
        first_name: None,
        tax_id: tax_id.map(str::to_string),
        taxonomy: None,
    }
}

/// A claim's billing provider: its NPI, with the name and tax id its
/// source gave, else the practice's.
pub fn billing_provider(
    claim: &Claim,
    practice: &crate::domain::practice::Practice,
) -> wit::Provider {
    let own = claim.billing_npi == practice.npi;
    let name = claim
        .billing_name
        .clone()
        .unwrap_or_else(|| practice.name.clone());
    let tax_id = claim
        .billing_tax_id
        .clone()
        .or_else(|| own.then(|| practice.tax_id.clone()));
    provider(&claim.billing_npi, &name, tax_id.as_deref())
}

/// The procedure code set a code belongs to: five digits, or four digits
/// and a letter (CPT category II/III), are CPT; a letter and four digits are
/// HCPCS Level II.
pub fn procedure_code_set(code: &str) -> wit::ProcedureCodeSet {
    if code.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        wit::ProcedureCodeSet::Hcpcs
    } else {
        wit::ProcedureCodeSet::Cpt
    }
}

/// A claim as the payer connector sends it (an 837P's content). The
/// billing provider is `billing` (the practice); diagnoses travel without
/// the dot, as X12 carries them.
pub fn claim(
    claim: &Claim,
    patient: &Patient,
    coverage: &Coverage,
    billing: &wit::Provider,
) -> pay::Claim {
    let (subscriber, dependent) = subscriber(patient, coverage);
    pay::Claim {
        claim_id: claim.control_number.clone(),
        payer_id: claim.payer_id.clone(),
        billing_provider: billing.clone(),
        rendering_provider: (claim.rendering_npi != billing.npi)
            .then(|| provider(&claim.rendering_npi, "", None)),
        subscriber,
        dependent,
        frequency: match claim.frequency_code.as_str() {
            "7" => pay::ClaimFrequency::Replacement,
            "8" => pay::ClaimFrequency::Void,
            _ => pay::ClaimFrequency::Original,
        },
        original_payer_claim_id: (claim.frequency_code != "1")
            .then(|| claim.payer_claim_number.clone())
            .flatten(),
        place_of_service: claim.place_of_service.clone(),
        diagnoses: claim.diagnoses.iter().map(|d| d.replace('.', "")).collect(),
        service_lines: claim
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| pay::ServiceLine {
                line_number: (i + 1) as u16,
                procedure: wit::Procedure {
                    code_set: procedure_code_set(&l.procedure),
                    code: l.procedure.clone(),
                    modifiers: l.modifiers.clone(),
                },
                diagnosis_pointers: l.diagnosis_pointers.clone(),
                charge: l.charge_cents,
                units: l.units,
                service_date: date(l.service_date),
                place_of_service: None,
                ndc: None,
            })
            .collect(),
        total_charge: claim.total_charge_cents,
        prior_authorization: None,
    }
}

fn adjustment(a: &EraAdjustment) -> wit::Adjustment {
    wit::Adjustment {
        group: adjustment_group_from(&a.group),
        reason_code: a.reason.clone(),
        amount: a.amount_cents,
        quantity: a.quantity,
    }
}

/// The 1-based number of the line of `lines` that the payer's line `paid`
/// (its `index` in the remittance) adjudicated, skipping lines `taken`:
/// the line at the same place when its procedure matches, else the first
/// line with the same procedure and charge, else the same procedure, else
/// the line at the same place.
fn adjudicated_line(
    lines: &[crate::domain::ServiceLine],
    paid: &EraLine,
    index: usize,
    taken: &[u16],
) -> Option<u16> {
    let free = |i: usize| !taken.contains(&((i + 1) as u16));
    let same = |l: &crate::domain::ServiceLine| l.procedure.eq_ignore_ascii_case(&paid.procedure);
    let at = lines.get(index).filter(|_| free(index));
    at.filter(|l| same(l))
        .map(|_| index)
        .or_else(|| {
            lines
                .iter()
                .enumerate()
                .position(|(i, l)| free(i) && same(l) && l.charge_cents == paid.billed_cents)
        })
        .or_else(|| {
            lines
                .iter()
                .enumerate()
                .position(|(i, l)| free(i) && same(l))
        })
        .or_else(|| at.map(|_| index))
        .and_then(|i| u16::try_from(i + 1).ok())
}

/// What an earlier payer did with a claim, as the `coordination` import
/// tells the connector sending `claim` to the next payer: `basis` is that
/// payer's adjudication of claim `earlier` (billed under `coverage`, a
/// coverage of `patient`). Line adjudications are matched to `claim`'s
/// service lines (a payer line no line of `claim` matches is left out);
/// the adjudication date is the payer's payment date, else the day its
/// payment was posted.
pub fn prior_payer(
    basis: &CobBasis,
    earlier: &Claim,
    coverage: &Coverage,
    patient: &Patient,
    claim: &Claim,
) -> cob::PriorPayer {
    let (holder, dependent) = subscriber(patient, coverage);
    let adjudicated = date(basis.adjudicated_on.unwrap_or(basis.paid_at.date_naive()));
    let mut taken: Vec<u16> = Vec::new();
    let mut lines = Vec::with_capacity(basis.lines.len());
    for (i, l) in basis.lines.iter().enumerate() {
        let Some(number) = adjudicated_line(&claim.lines, l, i, &taken) else {
            continue;
        };
        taken.push(number);
        lines.push(cob::LineAdjudication {
            line_number: number,
            procedure: wit::Procedure {
                code_set: procedure_code_set(&l.procedure),
                code: l.procedure.clone(),
                modifiers: l.modifiers.clone(),
            },
            charge: l.billed_cents,
            paid: l.paid_cents,
            paid_units: l.units,
            adjustments: basis
                .adjustments
                .iter()
                .filter(|a| a.line == Some(i as u32))
                .map(adjustment)
                .collect(),
            adjudicated,
        });
    }
    cob::PriorPayer {
        sequence: match coverage.priority {
            PayerPriority::Primary => cob::PayerSequence::Primary,
            PayerPriority::Secondary => cob::PayerSequence::Secondary,
            PayerPriority::Tertiary => cob::PayerSequence::Tertiary,
        },
        payer_id: earlier.payer_id.clone(),
        payer_name: coverage.payer_name.clone(),
        subscriber: cob::OtherSubscriber {
            name: holder.name,
            member_id: holder.member_id,
            relationship: dependent.map(|d| d.relationship),
            group_number: holder.group_number,
        },
        payer_claim_id: basis.primary_payer_claim_number.clone(),
        paid: basis.paid_cents,
        adjustments: basis
            .adjustments
            .iter()
            .filter(|a| a.line.is_none())
            .map(adjustment)
            .collect(),
        lines,
        patient_responsibility: basis.patient_responsibility_cents,
        adjudicated,
    }
}

/// An eligibility inquiry (a 270's content) for `patient`'s `coverage` on
/// `service_date`, asked by the practice (`provider`).
pub fn eligibility_inquiry(
    patient: &Patient,
    coverage: &Coverage,
    provider: &wit::Provider,
    service_date: NaiveDate,
    service_types: &[String],
) -> pay::EligibilityInquiry {
    let (subscriber, dependent) = subscriber(patient, coverage);
    pay::EligibilityInquiry {
        payer_id: coverage.payer_id.clone(),
        provider: provider.clone(),
        subscriber,
        dependent,
        service_date: date(service_date),
        service_types: service_types.to_vec(),
    }
}

/// The verdict a payer's eligibility answer (a 271) gives, as billd keeps
/// it: status, plan, and the in-network individual amounts a biller quotes
/// (copay, deductible and what remains of it, coinsurance).
pub fn verdict_from(
    e: &pay::Eligibility,
    checked_at: DateTime<Utc>,
    service_date: NaiveDate,
) -> EligibilityVerdict {
    let status = match e.status {
        pay::CoverageStatus::Active => EligibilityStatus::Active,
        pay::CoverageStatus::Inactive => EligibilityStatus::Inactive,
        pay::CoverageStatus::NotFound => EligibilityStatus::NotFound,
    };
    // Prefer in-network individual lines; fall back to any line of the kind.
    let pick = |kind: pay::BenefitKind| {
        let of_kind = |b: &&pay::Benefit| b.kind == kind;
        let preferred = e.benefits.iter().filter(of_kind).find(|b| {
            b.network != pay::Network::OutOfNetwork && b.level == pay::CoverageLevel::Individual
        });
        preferred.or_else(|| e.benefits.iter().find(of_kind))
    };
    let amount = |kind| pick(kind).and_then(|b| b.amount);
    EligibilityVerdict {
        checked_at,
        active: status == EligibilityStatus::Active,
        plan: e.plan_name.clone(),
        problems: Vec::new(),
        status: Some(status),
        service_date: Some(service_date),
        copay_cents: amount(pay::BenefitKind::Copay),
        deductible_cents: amount(pay::BenefitKind::Deductible),
        deductible_remaining_cents: amount(pay::BenefitKind::DeductibleRemaining),
        coinsurance_basis_points: pick(pay::BenefitKind::Coinsurance)
            .and_then(|b| b.percent_basis_points),
        payer_reference: e.payer_reference.clone(),
    }
}

/// A claim-status inquiry (a 276's content) about `claim`.
pub fn status_inquiry(
    claim: &Claim,
    patient: &Patient,
    coverage: &Coverage,
    billing: &wit::Provider,
) -> pay::StatusInquiry {
    let (subscriber, dependent) = subscriber(patient, coverage);
    let dates = claim.lines.iter().map(|l| l.service_date);
    let from = dates.clone().min().unwrap_or_default();
    let to = dates.max().unwrap_or(from);
    pay::StatusInquiry {
        claim_id: claim.control_number.clone(),
        payer_id: claim.payer_id.clone(),
        payer_claim_id: claim.payer_claim_number.clone(),
        provider: billing.clone(),
        subscriber,
        dependent,
        service_from: date(from),
        service_to: date(to),
        billed: claim.total_charge_cents,
    }
}

/// The state a payer's status answer moves a claim to; `None` when the
/// payer has no record of it (a task for a person, not a state).
pub fn claim_state_from(s: pay::ClaimState) -> Option<ClaimState> {
    match s {
        pay::ClaimState::Acknowledged => Some(ClaimState::Acknowledged),
        pay::ClaimState::Pending => Some(ClaimState::Pending),
        pay::ClaimState::Paid => Some(ClaimState::Paid),
        pay::ClaimState::Denied => Some(ClaimState::Denied),
        pay::ClaimState::Rejected => Some(ClaimState::Rejected),
        pay::ClaimState::NotFound => None,
    }
}

/// An EHR patient in the domain's form.
pub fn patient_from(p: ehr::Patient) -> Result<Patient, MappingError> {
    non_empty(&p.patient_id, "patient.patient-id")?;
    Ok(Patient {
        birth_date: date_from(p.birth_date, "patient.birth-date")?,
        id: p.patient_id,
        name: person_name_from(p.name),
        sex: sex_from(p.sex),
        email: p.email,
        phone: p.phone,
        address: p.address.map(address_from),
    })
}

/// An EHR coverage in the domain's form (no verdict yet: eligibility
/// checks fill that in).
pub fn coverage_from(c: ehr::Coverage) -> Result<Coverage, MappingError> {
    non_empty(&c.coverage_id, "coverage.coverage-id")?;
    non_empty(&c.patient_id, "coverage.patient-id")?;
    non_empty(&c.payer_id, "coverage.payer-id")?;
    let relationship = match c.relationship {
        None => Relationship::SelfInsured,
        Some(wit::Relationship::Spouse) => Relationship::Spouse,
        Some(wit::Relationship::Child) => Relationship::Child,
        Some(wit::Relationship::Other) => Relationship::Other,
    };
    let dependent = relationship != Relationship::SelfInsured;
    Ok(Coverage {
        effective: c
            .start
            .map(|d| date_from(d, "coverage.start"))
            .transpose()?,
        terminated: c.end.map(|d| date_from(d, "coverage.end")).transpose()?,
        subscriber_birth_date: if dependent {
            Some(date_from(
                c.subscriber.birth_date,
                "coverage.subscriber.birth-date",
            )?)
        } else {
            None
        },
        subscriber_name: dependent.then(|| person_name_from(c.subscriber.name)),
        id: c.coverage_id,
        patient_id: c.patient_id,
        payer_id: c.payer_id,
        payer_name: c.payer_name,
        member_id: c.subscriber.member_id,
        group_number: c.subscriber.group_number,
        relationship,
        priority: match c.priority {
            ehr::CoveragePriority::Primary => PayerPriority::Primary,
            ehr::CoveragePriority::Secondary => PayerPriority::Secondary,
            ehr::CoveragePriority::Tertiary => PayerPriority::Tertiary,
        },
        verdict: None,
    })
}

/// An EHR appointment in the domain's form.
pub fn appointment_from(a: ehr::Appointment) -> Result<Appointment, MappingError> {
    non_empty(&a.appointment_id, "appointment.appointment-id")?;
    non_empty(&a.patient_id, "appointment.patient-id")?;
    Ok(Appointment {
        start: timestamp_from(a.start, "appointment.start")?,
        id: a.appointment_id,
        patient_id: a.patient_id,
        provider_npi: a.provider_npi,
        minutes: a.minutes,
        status: match a.status {
            ehr::AppointmentStatus::Booked => AppointmentStatus::Booked,
            ehr::AppointmentStatus::Arrived => AppointmentStatus::Arrived,
            ehr::AppointmentStatus::Fulfilled => AppointmentStatus::Fulfilled,
            ehr::AppointmentStatus::Cancelled => AppointmentStatus::Cancelled,
            ehr::AppointmentStatus::NoShow => AppointmentStatus::NoShow,
        },
    })
}

/// An EHR encounter in the domain's terms: the visit and what a claim for
/// it bills. Which coverage pays is the sync job's choice.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EncounterBill {
    /// The EHR's encounter id.
    pub id: String,
    /// The patient seen.
    pub patient_id: String,
    /// The day of the visit.
    pub service_date: NaiveDate,
    /// NPI of the provider who saw the patient.
    pub rendering_npi: String,
    /// Place of service code.
    pub place_of_service: String,
    /// ICD-10-CM codes without the dot, principal first.
    pub diagnoses: Vec<String>,
    /// One service line per charge.
    pub lines: Vec<ServiceLine>,
    /// Signed by the provider: only then billable.
    pub signed: bool,
}

impl std::fmt::Debug for EncounterBill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Diagnoses are patient data.
        f.debug_struct("EncounterBill")
            .field("id", &self.id)
            .field("lines", &self.lines.len())
            .field("signed", &self.signed)
            .finish_non_exhaustive()
    }
}

/// An EHR encounter in the domain's form. A charge without a procedure
/// code, with a negative amount or no units, or pointing past the
/// encounter's diagnoses is refused, naming the field.
pub fn encounter_from(e: ehr::Encounter) -> Result<EncounterBill, MappingError> {
    non_empty(&e.encounter_id, "encounter.encounter-id")?;
    non_empty(&e.patient_id, "encounter.patient-id")?;
    let service_date = date_from(e.service_date, "encounter.service-date")?;
    let diagnoses: Vec<String> = e
        .diagnoses
        .iter()
        .map(|d| d.trim().replace('.', "").to_ascii_uppercase())
        .collect();
    if diagnoses.iter().any(String::is_empty) {
        return Err(MappingError {
            field: "encounter.diagnoses",
            reason: "an empty code",
        });
    }
    let mut lines = Vec::with_capacity(e.charges.len());
    for c in e.charges {
        non_empty(&c.procedure.code, "encounter.charges.procedure.code")?;
        if c.amount < 0 {
            return Err(MappingError {
                field: "encounter.charges.amount",
                reason: "negative",
            });
        }
        if c.units == 0 {
            return Err(MappingError {
                field: "encounter.charges.units",
                reason: "zero",
            });
        }
        if c.diagnosis_pointers
            .iter()
            .any(|&p| p == 0 || usize::from(p) > diagnoses.len())
        {
            return Err(MappingError {
                field: "encounter.charges.diagnosis-pointers",
                reason: "points past the encounter's diagnoses",
            });
        }
        lines.push(ServiceLine {
            procedure: c.procedure.code.trim().to_ascii_uppercase(),
            modifiers: c.procedure.modifiers,
            charge_cents: c.amount,
            units: c.units,
            diagnosis_pointers: c.diagnosis_pointers,
            service_date: date_from(c.service_date, "encounter.charges.service-date")?,
        });
    }
    Ok(EncounterBill {
        id: e.encounter_id,
        patient_id: e.patient_id,
        service_date,
        rendering_npi: e.rendering_npi,
        place_of_service: e.place_of_service,
        diagnoses,
        lines,
        signed: e.signed,
    })
}

/// What a placement hands the agency besides the patient: the balance and
/// the dates a collection letter states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementTerms {
    /// The balance placed, in cents.
    pub balance_cents: i64,
    /// When the first statement went out.
    pub first_statement: NaiveDate,
    /// The patient's latest payment, if any.
    pub last_payment: Option<NaiveDate>,
    /// The first and last day of service the balance is for.
    pub services: (NaiveDate, NaiveDate),
}

/// The contract's placement of `patient`'s account, or `None` when the
/// patient has no postal address (an agency cannot work an account
/// without one). Nothing clinical goes: no codes, no diagnoses.
pub fn placement(patient: &Patient, terms: &PlacementTerms) -> Option<co::Placement> {
    let a = patient.address.as_ref()?;
    Some(co::Placement {
        account_id: patient.id.clone(),
        debtor: co::Debtor {
            name: person_name(&patient.name),
            birth_date: date(patient.birth_date),
            address: address(a),
            phone: patient.phone.clone(),
            email: patient.email.clone(),
        },
        balance: terms.balance_cents,
        first_statement_date: date(terms.first_statement),
        last_payment_date: terms.last_payment.map(date),
        services_from: date(terms.services.0),
        services_to: date(terms.services.1),
    })
}

/// What an agency reported, in the domain's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgencyEvent {
    /// Money collected: gross, the agency's fee, what it remits.
    Payment {
        /// What the patient paid, in cents.
        gross_cents: i64,
        /// What the agency keeps.
        fee_cents: i64,
        /// What the practice receives.
        net_cents: i64,
    },
    /// The debtor disputes the debt (the agency's words).
    Disputed(String),
    /// The agency closed its file (the agency's words).
    Closed(String),
}

/// One agency update in the domain's form: (account, agency's account
/// number, day, event). A payment whose parts do not add up (gross = fee +
/// net, none negative) is refused, naming the field.
pub fn agency_update_from(
    u: co::AgencyUpdate,
) -> Result<(String, Option<String>, NaiveDate, AgencyEvent), MappingError> {
    non_empty(&u.account_id, "agency-update.account-id")?;
    let day = date_from(u.occurred, "agency-update.occurred")?;
    let event = match u.event {
        co::AgencyEvent::PaymentCollected(p) => {
            if p.gross < 0 || p.agency_fee < 0 || p.net < 0 {
                return Err(MappingError {
                    field: "agency-update.event.payment-collected",
                    reason: "a negative amount",
                });
            }
            if p.gross != p.agency_fee + p.net {
                return Err(MappingError {
                    field: "agency-update.event.payment-collected",
                    reason: "gross is not agency-fee + net",
                });
            }
            AgencyEvent::Payment {
                gross_cents: p.gross,
                fee_cents: p.agency_fee,
                net_cents: p.net,
            }
        }
        co::AgencyEvent::Disputed(why) => AgencyEvent::Disputed(why),
        co::AgencyEvent::Closed(why) => AgencyEvent::Closed(why),
    };
    Ok((u.account_id, u.agency_account_id, day, event))
}

fn non_empty(s: &str, field: &'static str) -> Result<(), MappingError> {
    if s.trim().is_empty() {
        Err(MappingError {
            field,
            reason: "empty",
        })
    } else {
        Ok(())
    }
}

/// The CAS group code of a contract adjustment group.
pub fn adjustment_group(g: wit::AdjustmentGroup) -> &'static str {
    use wit::AdjustmentGroup as G;
    match g {
        G::Contractual => "CO",
        G::PatientResponsibility => "PR",
        G::Other => "OA",
        G::PayerInitiated => "PI",
        G::Correction => "CR",
    }
}

/// A CAS group code (`CO`, `PR`, `OA`, `PI`, `CR`) as the contract's
/// adjustment group, the inverse of [`adjustment_group`]; a code outside
/// the list (the toolkit refuses such an 835 before posting) reads as
/// `other`.
fn adjustment_group_from(code: &str) -> wit::AdjustmentGroup {
    use wit::AdjustmentGroup as G;
    match code {
        "CO" => G::Contractual,
        "PR" => G::PatientResponsibility,
        "PI" => G::PayerInitiated,
        "CR" => G::Correction,
        _ => G::Other,
    }
}

/// A connector's remittance as the remittance billd posts: the contract
/// already speaks cents; the payer and trace number must not be empty.
pub fn era_from(r: pay::Remittance) -> Result<crate::domain::remittance::Era, MappingError> {
    use crate::domain::remittance::{Era, EraAdjustment, EraClaim, EraLine, EraProviderAdjustment};
    non_empty(&r.payer_id, "remittance.payer-id")?;
    non_empty(&r.trace_number, "remittance.trace-number")?;
    // Kept for coordination of benefits only: a date that does not exist
    // is left out rather than refusing the remittance.
    let paid_on = date_from(r.payment_date, "remittance.payment-date").ok();
    let adjustment = |a: wit::Adjustment, line: Option<u32>| EraAdjustment {
        group: adjustment_group(a.group).to_string(),
        reason: a.reason_code,
        amount_cents: a.amount,
        line,
        quantity: a.quantity,
    };
    let mut claims = Vec::with_capacity(r.claims.len());
    for c in r.claims {
        non_empty(&c.claim_id, "claim-payment.claim-id")?;
        let mut adjustments: Vec<EraAdjustment> = c
            .adjustments
            .into_iter()
            .map(|a| adjustment(a, None))
            .collect();
        let mut remarks = Vec::new();
        let mut unpaid_lines = 0;
        let mut lines = Vec::with_capacity(c.lines.len());
        for (i, l) in c.lines.into_iter().enumerate() {
            if l.billed > 0 && l.paid == 0 {
                unpaid_lines += 1;
            }
            lines.push(EraLine {
                procedure: l.procedure.code,
                modifiers: l.procedure.modifiers,
                billed_cents: l.billed,
                paid_cents: l.paid,
                units: l.units,
                service_date: l
                    .service_date
                    .and_then(|d| date_from(d, "line-payment.service-date").ok()),
            });
            adjustments.extend(
                l.adjustments
                    .into_iter()
                    .map(|a| adjustment(a, Some(i as u32))),
            );
            remarks.extend(l.remark_codes);
        }
        remarks.dedup();
        claims.push(EraClaim {
            control_number: c.claim_id,
            status_code: c.status_code,
            billed_cents: c.billed,
            paid_cents: c.paid,
            patient_responsibility_cents: c.patient_responsibility,
            payer_claim_number: (!c.payer_claim_id.is_empty()).then_some(c.payer_claim_id),
            adjustments,
            remarks,
            unpaid_lines,
            lines,
            paid_on,
        });
    }
    Ok(Era {
        payer: r.payer_id,
        trace: r.trace_number,
        payment_cents: r.payment_amount,
        payee_npi: None,
        claims,
        provider_adjustments: r
            .provider_adjustments
            .into_iter()
            .map(|p| EraProviderAdjustment {
                provider_id: String::new(),
                reason: p.reason_code,
                reference: p.reference,
                amount_cents: p.amount,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connector_remittance_becomes_the_era_billd_posts() {
        let adj = |group, reason: &str, amount| wit::Adjustment {
            group,
            reason_code: reason.into(),
            amount,
            quantity: None,
        };
        let r = pay::Remittance {
            trace_number: "TRN-1".into(),
            payer_id: "60054".into(),
            payment_date: date(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()),
            payment_amount: 7_000,
            claims: vec![pay::ClaimPayment {
                claim_id: "CLM-1".into(),
                payer_claim_id: "PCN".into(),
                status_code: "1".into(),
                billed: 10_000,
                paid: 8_000,
                patient_responsibility: 2_000,
                adjustments: vec![adj(wit::AdjustmentGroup::PatientResponsibility, "2", 2_000)],
                lines: vec![pay::LinePayment {
                    procedure: wit::Procedure {
                        code_set: wit::ProcedureCodeSet::Cpt,
                        code: "99213".into(),
                        modifiers: vec![],
                    },
                    service_date: None,
                    billed: 0,
                    paid: 0,
                    units: 1,
                    adjustments: vec![],
                    remark_codes: vec!["N130".into()],
                }],
            }],
            provider_adjustments: vec![pay::ProviderAdjustment {
                reason_code: "WO".into(),
                reference: None,
                amount: 1_000,
            }],
        };
        let era = era_from(r.clone()).unwrap();
        assert_eq!((era.payer.as_str(), era.trace.as_str()), ("60054", "TRN-1"));
        let c = &era.claims[0];
        assert_eq!(c.adjustments[0].group, "PR");
        assert_eq!(c.patient_share_cents(), 2_000);
        assert_eq!(c.remarks, ["N130"]);
        assert_eq!(c.payer_claim_number.as_deref(), Some("PCN"));
        // Kept for the next payer: the line as paid and the payment date.
        assert_eq!(c.lines.len(), 1);
        assert_eq!(
            (c.lines[0].procedure.as_str(), c.lines[0].units),
            ("99213", 1)
        );
        assert_eq!(c.paid_on, Some(date_from(r.payment_date, "d").unwrap()));
        assert!(
            era.money_problems().is_empty(),
            "{:?}",
            era.money_problems()
        );
        let mut empty = r;
        empty.trace_number.clear();
        assert_eq!(
            era_from(empty).unwrap_err().field,
            "remittance.trace-number"
        );
    }
    use crate::domain::ServiceLine;

    #[test]
    fn a_payers_lines_match_the_claims_by_place_then_procedure_and_charge() {
        let line = |code: &str, cents| ServiceLine {
            procedure: code.into(),
            modifiers: vec![],
            charge_cents: cents,
            units: 1,
            diagnosis_pointers: vec![1],
            service_date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        };
        let paid = |code: &str, cents| EraLine {
            procedure: code.into(),
            billed_cents: cents,
            ..EraLine::default()
        };
        let lines = [line("99213", 100), line("J1100", 25), line("J1100", 50)];
        // In place.
        assert_eq!(
            adjudicated_line(&lines, &paid("99213", 100), 0, &[]),
            Some(1)
        );
        // Out of place: the same procedure and charge first.
        assert_eq!(
            adjudicated_line(&lines, &paid("J1100", 50), 0, &[]),
            Some(3)
        );
        assert_eq!(
            adjudicated_line(&lines, &paid("J1100", 25), 2, &[3]),
            Some(2)
        );
        // A repeated procedure goes to the line not yet taken.
        assert_eq!(
            adjudicated_line(&lines, &paid("J1100", 99), 1, &[2]),
            Some(3)
        );
        // A recoded line stays in its place; past the claim's lines, none.
        assert_eq!(
            adjudicated_line(&lines, &paid("99214", 100), 0, &[]),
            Some(1)
        );
        assert_eq!(adjudicated_line(&lines, &paid("99214", 100), 3, &[]), None);
    }

    fn patient() -> Patient {
        Patient {
            id: "P1".into(),
            name: PersonName {
                last: "Doe".into(),
                first: "Jo".into(),
                middle: None,
                suffix: Some("Jr".into()),
            },
            birth_date: NaiveDate::from_ymd_opt(2015, 6, 30).unwrap(),
            sex: Sex::Female,
            email: None,
            phone: None,
            address: Some(Address {
                lines: vec!["1 Main St".into(), "Apt 2".into(), "Rear".into()],
                city: "Springfield".into(),
                state: "IL".into(),
                postal_code: "62701".into(),
            }),
        }
    }

    fn coverage(rel: Relationship) -> Coverage {
        Coverage {
            id: "COV1".into(),
            patient_id: "P1".into(),
            payer_id: "60054".into(),
            payer_name: "Example Health".into(),
            member_id: "M1".into(),
            group_number: Some("G1".into()),
            relationship: rel,
            subscriber_name: Some(PersonName {
                last: "Doe".into(),
                first: "Sam".into(),
                middle: None,
                suffix: None,
            }),
            subscriber_birth_date: NaiveDate::from_ymd_opt(1980, 1, 2),
            priority: PayerPriority::Primary,
            effective: None,
            terminated: None,
            verdict: None,
        }
    }

    #[test]
    fn a_self_insured_patient_is_the_subscriber_and_a_child_is_a_dependent() {
        let (s, d) = subscriber(&patient(), &coverage(Relationship::SelfInsured));
        assert!(d.is_none());
        assert_eq!((s.name.first.as_str(), s.member_id.as_str()), ("Jo", "M1"));
        assert_eq!(s.name.suffix.as_deref(), Some("Jr"));
        let (s, d) = subscriber(&patient(), &coverage(Relationship::Child));
        let d = d.unwrap();
        assert_eq!(s.name.first, "Sam");
        assert_eq!(
            s.birth_date,
            wit::Date {
                year: 1980,
                month: 1,
                day: 2
            }
        );
        assert_eq!(d.name.first, "Jo");
        assert_eq!(d.relationship, wit::Relationship::Child);
    }

    #[test]
    fn address_lines_fold_into_two_and_back() {
        let a = address(patient().address.as_ref().unwrap());
        assert_eq!(a.line1, "1 Main St");
        assert_eq!(a.line2.as_deref(), Some("Apt 2, Rear"));
        let back = address_from(a);
        assert_eq!(back.lines, ["1 Main St", "Apt 2, Rear"]);
    }

    #[test]
    fn a_claim_carries_codes_without_dots_and_its_control_number() {
        let mut c = Claim {
            id: "C1".into(),
            control_number: "PCN-77".into(),
            patient_id: "P1".into(),
            coverage_id: "COV1".into(),
            payer_id: "60054".into(),
            billing_npi: "1234567893".into(),
            rendering_npi: "1234567893".into(),
            place_of_service: "11".into(),
            frequency_code: "1".into(),
            diagnoses: vec!["E11.9".into(), "I10".into()],
            lines: vec![ServiceLine {
                procedure: "G0439".into(),
                modifiers: vec!["25".into()],
                charge_cents: 12_500,
                units: 1,
                diagnosis_pointers: vec![1, 2],
                service_date: NaiveDate::from_ymd_opt(2026, 11, 3).unwrap(),
            }],
            total_charge_cents: 12_500,
            state: ClaimState::Ready,
            history: vec![],
            payer_claim_number: None,
            next_check_at: None,
            revision: 0,
            held: false,
            problems: vec![],
            billing_name: None,
            billing_tax_id: None,
        };
        let billing = provider("1234567893", "Riverside", Some("123456789"));
        let w = claim(
            &c,
            &patient(),
            &coverage(Relationship::SelfInsured),
            &billing,
        );
        assert_eq!(w.claim_id, "PCN-77");
        assert_eq!(w.diagnoses, ["E119", "I10"]);
        assert!(w.rendering_provider.is_none());
        assert_eq!(
            w.service_lines[0].procedure.code_set,
            wit::ProcedureCodeSet::Hcpcs
        );
        assert_eq!(w.frequency, pay::ClaimFrequency::Original);
        c.frequency_code = "7".into();
        c.payer_claim_number = Some("PAYER9".into());
        let w = claim(
            &c,
            &patient(),
            &coverage(Relationship::SelfInsured),
            &billing,
        );
        assert_eq!(w.frequency, pay::ClaimFrequency::Replacement);
        assert_eq!(w.original_payer_claim_id.as_deref(), Some("PAYER9"));
    }

    #[test]
    fn ehr_records_map_in_and_bad_ones_name_the_field() {
        let bad = ehr::Appointment {
            appointment_id: "A1".into(),
            patient_id: " ".into(),
            provider_npi: "1234567893".into(),
            start: wit::Timestamp {
                seconds: 0,
                nanoseconds: 0,
            },
            minutes: 15,
            status: ehr::AppointmentStatus::Booked,
            location: None,
        };
        let err = appointment_from(bad.clone()).unwrap_err();
        assert_eq!(err.field, "appointment.patient-id");
        let ok = appointment_from(ehr::Appointment {
            patient_id: "P1".into(),
            ..bad
        })
        .unwrap();
        assert_eq!(ok.status, AppointmentStatus::Booked);
        let err = date_from(
            wit::Date {
                year: 2026,
                month: 2,
                day: 30,
            },
            "patient.birth-date",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "connector sent an unusable patient.birth-date: not a calendar date"
        );
    }
}
