//! Typed segments used by the transaction models, with their elements named
//! after the X12 5010 implementation guides. Each converts losslessly to and
//! from a generic [`Segment`]; JSON field names are the snake-case element
//! names below, absent elements are omitted.

use serde::{Deserialize, Serialize};

use crate::error::IssueKind;
use crate::fields::{Amount, Composite, Extra, Field, Repeats, typed_segment};
use crate::segment::{Element, Segment};

typed_segment! {
    /// NM1 individual or organizational name.
    Nm1 = "NM1" {
        /// NM101 entity identifier code (`85` billing provider, `IL` insured, `PR` payer, `QC` patient, ...).
        1 => entity: String,
        /// NM102 entity type (`1` person, `2` organization).
        2 => entity_type: String,
        /// NM103 last or organization name.
        3 => last_or_org_name: Option<String>,
        /// NM104 first name.
        4 => first_name: Option<String>,
        /// NM105 middle name.
        5 => middle_name: Option<String>,
        /// NM106 prefix.
        6 => prefix: Option<String>,
        /// NM107 suffix.
        7 => suffix: Option<String>,
        /// NM108 identification code qualifier (`XX` NPI, `MI` member id, `PI` payer id, ...).
        8 => id_qualifier: Option<String>,
        /// NM109 identification code.
        9 => id: Option<String>,
        /// NM110 entity relationship code.
        10 => relationship: Option<String>,
        /// NM111 second entity identifier code.
        11 => entity2: Option<String>,
        /// NM112 name last or organization name (second).
        12 => name2: Option<String>,
    }
}

impl Nm1 {
    /// The NPI when NM108 is `XX`.
    #[must_use]
    pub fn npi(&self) -> Option<&str> {
        (self.id_qualifier.as_deref() == Some("XX"))
            .then_some(self.id.as_deref())
            .flatten()
    }
}

typed_segment! {
    /// N1 party identification (835 payer and payee).
    N1 = "N1" {
        /// N101 entity identifier code (`PR` payer, `PE` payee).
        1 => entity: String,
        /// N102 name.
        2 => name: Option<String>,
        /// N103 identification code qualifier.
        3 => id_qualifier: Option<String>,
        /// N104 identification code.
        4 => id: Option<String>,
    }
}

typed_segment! {
    /// REF reference information.
    Ref = "REF" {
        /// REF01 reference identification qualifier.
        1 => qualifier: String,
        /// REF02 reference identification.
        2 => value: Option<String>,
        /// REF03 description.
        3 => description: Option<String>,
        /// REF04 reference identifier composite.
        4 => reference: Composite,
    }
}

typed_segment! {
    /// DTM date/time reference (835).
    Dtm = "DTM" {
        /// DTM01 date/time qualifier (`405` production, `232`/`233` claim period, `472` service).
        1 => qualifier: String,
        /// DTM02 date CCYYMMDD.
        2 => date: Option<String>,
        /// DTM03 time.
        3 => time: Option<String>,
    }
}

typed_segment! {
    /// DTP date or time period (837, 270/271, 276/277).
    Dtp = "DTP" {
        /// DTP01 date/time qualifier.
        1 => qualifier: String,
        /// DTP02 format (`D8` date, `RD8` range).
        2 => format: String,
        /// DTP03 date or range.
        3 => value: String,
    }
}

typed_segment! {
    /// AMT monetary amount.
    Amt = "AMT" {
        /// AMT01 amount qualifier code.
        1 => qualifier: String,
        /// AMT02 amount.
        2 => amount: Amount,
        /// AMT03 credit/debit flag.
        3 => credit_debit: Option<String>,
    }
}

typed_segment! {
    /// TRN trace (835 check/EFT trace, 270/276 request trace).
    Trn = "TRN" {
        /// TRN01 trace type code.
        1 => trace_type: String,
        /// TRN02 reference identification (check or EFT trace number).
        2 => trace_number: String,
        /// TRN03 originating company identifier.
        3 => originator: Option<String>,
        /// TRN04 supplemental reference.
        4 => supplemental: Option<String>,
    }
}

typed_segment! {
    /// HL hierarchical level.
    Hl = "HL" {
        /// HL01 hierarchical ID number.
        1 => id: String,
        /// HL02 parent ID number.
        2 => parent: Option<String>,
        /// HL03 level code (`20` source, `21` receiver, `19` provider, `22` subscriber, `23` dependent, `PT` patient).
        3 => level: String,
        /// HL04 hierarchical child code.
        4 => child: Option<String>,
    }
}

typed_segment! {
    /// LX header or line number.
    Lx = "LX" {
        /// LX01 assigned number.
        1 => number: String,
    }
}

typed_segment! {
    /// BPR financial information (835).
    Bpr = "BPR" {
        /// BPR01 transaction handling code (`I` remittance and payment, `H` notification only, ...).
        1 => handling: String,
        /// BPR02 total actual provider payment amount.
        2 => total_payment: Amount,
        /// BPR03 credit/debit flag (`C`/`D`).
        3 => credit_debit: String,
        /// BPR04 payment method (`ACH`, `CHK`, `NON`, `BOP`, `FWT`).
        4 => method: String,
        /// BPR05 payment format (`CCP`, `CTX`).
        5 => format: Option<String>,
        /// BPR06 sender DFI id qualifier.
        6 => sender_dfi_qualifier: Option<String>,
        /// BPR07 sender DFI identification number.
        7 => sender_dfi_id: Option<String>,
        /// BPR08 sender account qualifier.
        8 => sender_account_qualifier: Option<String>,
        /// BPR09 sender account number.
        9 => sender_account: Option<String>,
        /// BPR10 originating company identifier.
        10 => originating_company: Option<String>,
        /// BPR11 originating company supplemental code.
        11 => originating_supplemental: Option<String>,
        /// BPR12 receiver DFI id qualifier.
        12 => receiver_dfi_qualifier: Option<String>,
        /// BPR13 receiver DFI identification number.
        13 => receiver_dfi_id: Option<String>,
        /// BPR14 receiver account qualifier.
        14 => receiver_account_qualifier: Option<String>,
        /// BPR15 receiver account number.
        15 => receiver_account: Option<String>,
        /// BPR16 check issue or EFT effective date.
        16 => date: Option<String>,
    }
}

typed_segment! {
    /// CLP claim payment information (835 loop 2100).
    Clp = "CLP" {
        /// CLP01 patient control number (the provider's claim id).
        1 => claim_id: String,
        /// CLP02 claim status (`1` primary, `2` secondary, `3` tertiary, `4` denied, `19`-`21` forwarded, `22` reversal, `23` not our claim, `25` predetermination).
        2 => status: String,
        /// CLP03 total claim charge.
        3 => total_charge: Amount,
        /// CLP04 claim payment amount.
        4 => payment: Amount,
        /// CLP05 patient responsibility amount.
        5 => patient_responsibility: Option<Amount>,
        /// CLP06 claim filing indicator.
        6 => filing_indicator: Option<String>,
        /// CLP07 payer claim control number.
        7 => payer_claim_control_number: Option<String>,
        /// CLP08 facility type code (place of service for professional claims).
        8 => facility_type: Option<String>,
        /// CLP09 claim frequency code.
        9 => frequency: Option<String>,
        /// CLP11 diagnosis related group code.
        11 => drg: Option<String>,
        /// CLP12 DRG weight.
        12 => drg_weight: Option<String>,
        /// CLP13 discharge fraction.
        13 => discharge_fraction: Option<String>,
    }
}

typed_segment! {
    /// SVC service payment information (835 loop 2110) or service line
    /// status (277 loop 2210/2220).
    Svc = "SVC" {
        /// SVC01 composite medical procedure (`HC:99213:25` = qualifier, code, modifiers 1–4, description).
        1 => procedure: Composite,
        /// SVC02 line item charge amount.
        2 => charge: Amount,
        /// SVC03 line item provider payment amount.
        3 => payment: Option<Amount>,
        /// SVC04 revenue code.
        4 => revenue_code: Option<String>,
        /// SVC05 units of service paid.
        5 => units_paid: Option<String>,
        /// SVC06 original submitted procedure when different.
        6 => original_procedure: Composite,
        /// SVC07 original units of service.
        7 => original_units: Option<String>,
    }
}

impl Svc {
    /// Procedure modifiers (SVC01-3 to SVC01-6), non-empty ones only.
    #[must_use]
    pub fn modifiers(&self) -> Vec<&str> {
        (3..=6)
            .map(|i| self.procedure.get(i))
            .filter(|m| !m.is_empty())
            .collect()
    }
}

typed_segment! {
    /// BHT beginning of hierarchical transaction.
    Bht = "BHT" {
        /// BHT01 hierarchical structure code.
        1 => structure: String,
        /// BHT02 transaction set purpose code.
        2 => purpose: String,
        /// BHT03 reference identification.
        3 => reference: Option<String>,
        /// BHT04 date.
        4 => date: Option<String>,
        /// BHT05 time.
        5 => time: Option<String>,
        /// BHT06 transaction type code.
        6 => transaction_type: Option<String>,
    }
}

typed_segment! {
    /// SBR subscriber information (837 loops 2000B and 2320).
    Sbr = "SBR" {
        /// SBR01 payer responsibility sequence (`P`, `S`, `T`, ...).
        1 => responsibility: String,
        /// SBR02 individual relationship code (`18` self).
        2 => relationship: Option<String>,
        /// SBR03 group or policy number.
        3 => group_number: Option<String>,
        /// SBR04 group name.
        4 => group_name: Option<String>,
        /// SBR05 insurance type code.
        5 => insurance_type: Option<String>,
        /// SBR09 claim filing indicator code.
        9 => filing_indicator: Option<String>,
    }
}

typed_segment! {
    /// CLM claim information (837P loop 2300).
    Clm = "CLM" {
        /// CLM01 patient control number.
        1 => claim_id: String,
        /// CLM02 total claim charge amount.
        2 => total_charge: Amount,
        /// CLM05 facility code composite: place of service, `B`, frequency code.
        5 => facility: Composite,
        /// CLM06 provider signature indicator.
        6 => provider_signature: Option<String>,
        /// CLM07 assignment or plan participation code.
        7 => assignment: Option<String>,
        /// CLM08 benefits assignment certification indicator.
        8 => benefits_assignment: Option<String>,
        /// CLM09 release of information code.
        9 => release_of_information: Option<String>,
        /// CLM10 patient signature source code.
        10 => patient_signature_source: Option<String>,
        /// CLM11 related causes composite.
        11 => related_causes: Composite,
        /// CLM12 special program code.
        12 => special_program: Option<String>,
        /// CLM20 delay reason code.
        20 => delay_reason: Option<String>,
    }
}

impl Clm {
    /// Place of service (CLM05-1).
    #[must_use]
    pub fn place_of_service(&self) -> &str {
        self.facility.get(1)
    }

    /// Claim frequency type code (CLM05-3): `1` original, `7` replacement, `8` void.
    #[must_use]
    pub fn frequency(&self) -> &str {
        self.facility.get(3)
    }
}

typed_segment! {
    /// SV1 professional service (837P loop 2400).
    Sv1 = "SV1" {
        /// SV101 composite procedure: qualifier (`HC`), code, modifiers 1–4, description.
        1 => procedure: Composite,
        /// SV102 line item charge amount.
        2 => charge: Amount,
        /// SV103 unit basis (`UN` units, `MJ` minutes).
        3 => unit_basis: String,
        /// SV104 service unit count.
        4 => units: String,
        /// SV105 place of service when different from the claim's.
        5 => place_of_service: Option<String>,
        /// SV107 diagnosis code pointers (1–4, into the claim's HI codes).
        7 => diagnosis_pointers: Composite,
        /// SV109 emergency indicator.
        9 => emergency: Option<String>,
        /// SV111 EPSDT indicator.
        11 => epsdt: Option<String>,
        /// SV112 family planning indicator.
        12 => family_planning: Option<String>,
        /// SV115 copay status code.
        15 => copay_status: Option<String>,
    }
}

impl Sv1 {
    /// Procedure modifiers (SV101-3 to SV101-6), non-empty ones only.
    #[must_use]
    pub fn modifiers(&self) -> Vec<&str> {
        (3..=6)
            .map(|i| self.procedure.get(i))
            .filter(|m| !m.is_empty())
            .collect()
    }
}

typed_segment! {
    /// EQ eligibility or benefit inquiry (270 loop 2110C/D).
    Eq = "EQ" {
        /// EQ01 service type codes (repeatable).
        1 => service_types: Repeats,
        /// EQ02 composite medical procedure.
        2 => procedure: Composite,
        /// EQ03 coverage level code.
        3 => coverage_level: Option<String>,
        /// EQ05 diagnosis code pointers.
        5 => diagnosis_pointers: Composite,
    }
}

typed_segment! {
    /// EB eligibility or benefit information (271 loop 2110C/D).
    Eb = "EB" {
        /// EB01 eligibility or benefit information code (`1` active coverage, `6` inactive, `A` co-insurance, `B` co-payment, `C` deductible, ...).
        1 => info: String,
        /// EB02 coverage level code (`IND`, `FAM`, ...).
        2 => coverage_level: Option<String>,
        /// EB03 service type codes (repeatable).
        3 => service_types: Repeats,
        /// EB04 insurance type code.
        4 => insurance_type: Option<String>,
        /// EB05 plan coverage description.
        5 => plan_description: Option<String>,
        /// EB06 time period qualifier.
        6 => time_period: Option<String>,
        /// EB07 monetary amount.
        7 => amount: Option<Amount>,
        /// EB08 percentage as decimal (`0.2` = 20%).
        8 => percent: Option<String>,
        /// EB09 quantity qualifier.
        9 => quantity_qualifier: Option<String>,
        /// EB10 quantity.
        10 => quantity: Option<String>,
        /// EB11 authorization or certification indicator.
        11 => authorization_required: Option<String>,
        /// EB12 in plan network indicator (`Y`, `N`, `W` not applicable, `U` unknown).
        12 => in_network: Option<String>,
        /// EB13 composite medical procedure.
        13 => procedure: Composite,
        /// EB14 diagnosis code pointers.
        14 => diagnosis_pointers: Composite,
    }
}

/// What an EB segment says about coverage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageStatus {
    /// EB01 `1`–`5`: active coverage.
    Active,
    /// EB01 `6`–`8`: inactive.
    Inactive,
    /// Any other EB01: a benefit detail, not a coverage verdict.
    Detail,
}

impl Eb {
    /// Whether this EB states active or inactive coverage.
    #[must_use]
    pub fn coverage_status(&self) -> CoverageStatus {
        match self.info.as_str() {
            "1" | "2" | "3" | "4" | "5" => CoverageStatus::Active,
            "6" | "7" | "8" => CoverageStatus::Inactive,
            _ => CoverageStatus::Detail,
        }
    }
}

typed_segment! {
    /// AAA request validation (271 rejections).
    Aaa = "AAA" {
        /// AAA01 valid request indicator (`N` = rejected).
        1 => valid: String,
        /// AAA03 reject reason code (`72` invalid member id, `75` subscriber not found, ...).
        3 => reject_reason: Option<String>,
        /// AAA04 follow-up action code.
        4 => follow_up: Option<String>,
    }
}

typed_segment! {
    /// STC status information (277, 277CA).
    Stc = "STC" {
        /// STC01 health care claim status: category code, status code, entity code, code list qualifier.
        1 => status: Composite,
        /// STC02 status information effective date.
        2 => date: Option<String>,
        /// STC03 action code.
        3 => action: Option<String>,
        /// STC04 total claim charge amount.
        4 => charge: Option<Amount>,
        /// STC05 claim payment amount.
        5 => payment: Option<Amount>,
        /// STC06 adjudication or payment date.
        6 => adjudication_date: Option<String>,
        /// STC07 payment method code.
        7 => payment_method: Option<String>,
        /// STC08 check issue or EFT date.
        8 => check_date: Option<String>,
        /// STC09 check or EFT trace number.
        9 => check_number: Option<String>,
        /// STC10 second status composite.
        10 => status2: Composite,
        /// STC11 third status composite.
        11 => status3: Composite,
        /// STC12 free-form message text.
        12 => message: Option<String>,
    }
}

impl Stc {
    /// STC01-1 claim status category code (`A1`, `A3`, `F1`, `P1`, ...).
    #[must_use]
    pub fn category(&self) -> &str {
        self.status.get(1)
    }

    /// STC01-2 claim status code.
    #[must_use]
    pub fn status_code(&self) -> &str {
        self.status.get(2)
    }

    /// STC01-3 entity identifier code.
    #[must_use]
    pub fn entity(&self) -> &str {
        self.status.get(3)
    }
}

typed_segment! {
    /// AK1 functional group response header (999).
    Ak1 = "AK1" {
        /// AK101 functional identifier code of the group acknowledged.
        1 => functional_id: String,
        /// AK102 group control number acknowledged.
        2 => group_control: String,
        /// AK103 version of the group acknowledged.
        3 => version: Option<String>,
    }
}

typed_segment! {
    /// AK2 transaction set response header (999).
    Ak2 = "AK2" {
        /// AK201 transaction set identifier code.
        1 => set_id: String,
        /// AK202 transaction set control number.
        2 => control: String,
        /// AK203 implementation convention reference.
        3 => version: Option<String>,
    }
}

typed_segment! {
    /// IK3 error identification: a segment in error (999).
    Ik3 = "IK3" {
        /// IK301 segment identifier.
        1 => segment_id: String,
        /// IK302 segment position in the transaction set.
        2 => position: String,
        /// IK303 loop identifier.
        3 => loop_id: Option<String>,
        /// IK304 implementation segment syntax error code.
        4 => error: Option<String>,
    }
}

typed_segment! {
    /// IK4 implementation data element note (999).
    Ik4 = "IK4" {
        /// IK401 position in segment: element, component, repeat.
        1 => position: Composite,
        /// IK402 data element reference number.
        2 => element_reference: Option<String>,
        /// IK403 implementation data element syntax error code.
        3 => error: String,
        /// IK404 copy of bad data element (may be patient data; billd leaves it empty).
        4 => bad_data: Option<String>,
    }
}

typed_segment! {
    /// IK5 transaction set response trailer (999).
    Ik5 = "IK5" {
        /// IK501 acknowledgment code (`A` accepted, `E` accepted with errors, `R` rejected).
        1 => ack: String,
        /// IK502 first syntax error code.
        2 => error1: Option<String>,
        /// IK503 second syntax error code.
        3 => error2: Option<String>,
        /// IK504 third syntax error code.
        4 => error3: Option<String>,
        /// IK505 fourth syntax error code.
        5 => error4: Option<String>,
        /// IK506 fifth syntax error code.
        6 => error5: Option<String>,
    }
}

typed_segment! {
    /// AK9 functional group response trailer (999).
    Ak9 = "AK9" {
        /// AK901 acknowledgment code (`A`, `E`, `P` partially accepted, `R`).
        1 => ack: String,
        /// AK902 number of transaction sets included.
        2 => included: String,
        /// AK903 number received.
        3 => received: String,
        /// AK904 number accepted.
        4 => accepted: String,
        /// AK905 first group syntax error code.
        5 => error1: Option<String>,
    }
}

/// One CAS adjustment: reason code, amount, quantity.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CasAdjustment {
    /// Claim adjustment reason code (CARC).
    pub reason: String,
    /// Adjustment amount (positive reduces payment).
    pub amount: Amount,
    /// Adjustment quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<String>,
}

/// CAS claims adjustment: one group (`CO`, `PR`, `OA`, `PI`, `CR`) with up
/// to six reason/amount/quantity triples.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cas {
    /// CAS01 claim adjustment group code.
    pub group: String,
    /// CAS02–CAS19 as triples.
    pub adjustments: Vec<CasAdjustment>,
    /// Elements that did not fit (kept so nothing is lost).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: Extra,
}

impl Cas {
    /// As `from_segment`, for an owned segment.
    #[must_use]
    pub fn from_owned(seg: Segment) -> (Cas, Vec<(u16, IssueKind)>) {
        Self::from_owned_cas(seg)
    }

    /// The segment identifier.
    pub const ID: &'static str = "CAS";

    /// Reads a CAS; misfit elements go to `extra`.
    #[must_use]
    pub fn from_segment(seg: &Segment) -> (Cas, Vec<(u16, IssueKind)>) {
        Self::from_owned_cas(seg.clone())
    }

    fn from_owned_cas(mut seg: Segment) -> (Cas, Vec<(u16, IssueKind)>) {
        let mut out = Cas::default();
        let mut problems = Vec::new();
        fn take<T: Field + Default>(
            seg: &mut Segment,
            pos: usize,
            out: &mut Cas,
            problems: &mut Vec<(u16, IssueKind)>,
        ) -> T {
            match T::take(seg.elements.get_mut(pos - 1)) {
                Ok(v) => v,
                Err(k) => {
                    if let Some(e) = seg.elements.get_mut(pos - 1) {
                        out.extra.insert(pos as u16, std::mem::take(e));
                    }
                    problems.push((pos as u16, k));
                    T::default()
                }
            }
        }
        out.group = take(&mut seg, 1, &mut out, &mut problems);
        let n = seg.elements.len();
        let mut pos = 2;
        while pos <= n {
            let reason = take(&mut seg, pos, &mut out, &mut problems);
            let amount = take(&mut seg, pos + 1, &mut out, &mut problems);
            let quantity: Option<String> = take(&mut seg, pos + 2, &mut out, &mut problems);
            out.adjustments.push(CasAdjustment {
                reason,
                amount,
                quantity,
            });
            pos += 3;
        }
        (out, problems)
    }

    /// Writes the CAS back.
    #[must_use]
    pub fn to_segment(&self) -> Segment {
        let mut els = vec![Element::Simple(self.group.clone())];
        for a in &self.adjustments {
            els.push(Element::Simple(a.reason.clone()));
            els.push(Element::Simple(a.amount.as_str().to_owned()));
            els.push(Element::Simple(a.quantity.clone().unwrap_or_default()));
        }
        overlay(&mut els, &self.extra);
        let mut s = Segment {
            id: "CAS".into(),
            elements: els,
        };
        s.trim();
        s
    }

    /// Sum of the adjustment amounts in ten-thousandths.
    #[must_use]
    pub fn total_units(&self) -> i64 {
        self.adjustments.iter().map(|a| a.amount.units()).sum()
    }
}

fn overlay(els: &mut Vec<Element>, extra: &Extra) {
    for (p, e) in extra {
        let p = *p as usize;
        if p == 0 {
            continue;
        }
        if els.len() < p {
            els.resize(p, Element::default());
        }
        els[p - 1] = e.clone();
    }
}

/// One PLB provider-level adjustment.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PlbAdjustment {
    /// Adjustment identifier composite: reason code (`WO`, `L6`, `FB`, ...), reference.
    pub reason: Composite,
    /// Amount (positive reduces the payment).
    pub amount: Amount,
}

/// PLB provider adjustment (835 trailer).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plb {
    /// PLB01 provider identifier.
    pub provider_id: String,
    /// PLB02 fiscal period date.
    pub fiscal_period_date: String,
    /// PLB03–PLB14 as pairs.
    pub adjustments: Vec<PlbAdjustment>,
    /// Elements that did not fit.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: Extra,
}

impl Plb {
    /// As `from_segment`, for an owned segment.
    #[must_use]
    pub fn from_owned(seg: Segment) -> (Plb, Vec<(u16, IssueKind)>) {
        Self::from_segment(&seg)
    }

    /// The segment identifier.
    pub const ID: &'static str = "PLB";

    /// Reads a PLB; misfit elements go to `extra`.
    #[must_use]
    pub fn from_segment(seg: &Segment) -> (Plb, Vec<(u16, IssueKind)>) {
        let mut out = Plb::default();
        let mut problems = Vec::new();
        let mut simple = |pos: usize, out: &mut Plb| -> String {
            match <String as Field>::read(seg.element(pos)) {
                Ok(v) => v,
                Err(k) => {
                    if let Some(e) = seg.element(pos) {
                        out.extra.insert(pos as u16, e.clone());
                    }
                    problems.push((pos as u16, k));
                    String::new()
                }
            }
        };
        out.provider_id = simple(1, &mut out);
        out.fiscal_period_date = simple(2, &mut out);
        let mut pos = 3;
        while pos <= seg.elements.len() {
            let reason = match Composite::read(seg.element(pos)) {
                Ok(c) => c,
                Err(k) => {
                    if let Some(e) = seg.element(pos) {
                        out.extra.insert(pos as u16, e.clone());
                    }
                    problems.push((pos as u16, k));
                    Composite::default()
                }
            };
            let amount = match <Amount as Field>::read(seg.element(pos + 1)) {
                Ok(a) => a,
                Err(k) => {
                    if let Some(e) = seg.element(pos + 1) {
                        out.extra.insert(pos as u16 + 1, e.clone());
                    }
                    problems.push((pos as u16 + 1, k));
                    Amount::default()
                }
            };
            out.adjustments.push(PlbAdjustment { reason, amount });
            pos += 2;
        }
        (out, problems)
    }

    /// Writes the PLB back.
    #[must_use]
    pub fn to_segment(&self) -> Segment {
        let mut els = vec![
            Element::Simple(self.provider_id.clone()),
            Element::Simple(self.fiscal_period_date.clone()),
        ];
        for a in &self.adjustments {
            els.push(a.reason.write());
            els.push(Element::Simple(a.amount.as_str().to_owned()));
        }
        overlay(&mut els, &self.extra);
        let mut s = Segment {
            id: "PLB".into(),
            elements: els,
        };
        s.trim();
        s
    }

    /// Sum of the adjustment amounts in ten-thousandths.
    #[must_use]
    pub fn total_units(&self) -> i64 {
        self.adjustments.iter().map(|a| a.amount.units()).sum()
    }
}

/// HI health care information codes (837P loop 2300): up to 12
/// composites of qualifier (`ABK` principal ICD-10 diagnosis, `ABF` other)
/// and code.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hi {
    /// HI01–HI12 in order.
    pub codes: Vec<Composite>,
}

impl std::fmt::Debug for Hi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hi(<{} codes>)", self.codes.len())
    }
}

impl Hi {
    /// As `from_segment`, for an owned segment.
    #[must_use]
    pub fn from_owned(seg: Segment) -> (Hi, Vec<(u16, IssueKind)>) {
        Self::from_segment(&seg)
    }

    /// The segment identifier.
    pub const ID: &'static str = "HI";

    /// Reads an HI. Repeated elements are not allowed here; such an element
    /// is reported and kept as its first repetition's components.
    #[must_use]
    pub fn from_segment(seg: &Segment) -> (Hi, Vec<(u16, IssueKind)>) {
        let mut problems = Vec::new();
        let codes = seg
            .elements
            .iter()
            .enumerate()
            .map(|(i, e)| match Composite::read(Some(e)) {
                Ok(c) => c,
                Err(k) => {
                    problems.push((i as u16 + 1, k));
                    Composite(e.repetitions().into_iter().flatten().collect())
                }
            })
            .collect();
        (Hi { codes }, problems)
    }

    /// Writes the HI back.
    #[must_use]
    pub fn to_segment(&self) -> Segment {
        let mut s = Segment {
            id: "HI".into(),
            elements: self.codes.iter().map(Field::write).collect(),
        };
        s.trim();
        s
    }

    /// ICD-10-CM diagnosis codes (`ABK` and `ABF` qualifiers), in order.
    #[must_use]
    pub fn icd10_diagnoses(&self) -> Vec<&str> {
        self.codes
            .iter()
            .filter(|c| matches!(c.get(1), "ABK" | "ABF"))
            .map(|c| c.get(2))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(text: &str) -> Segment {
        let mut parts = text.split('*');
        let id = parts.next().unwrap().to_owned();
        let elements = parts
            .map(|p| {
                if p.contains('^') {
                    Element::Repeated(
                        p.split('^')
                            .map(|r| r.split(':').map(str::to_owned).collect())
                            .collect(),
                    )
                } else {
                    Element::from_components(p.split(':').map(str::to_owned).collect())
                }
            })
            .collect();
        Segment {
            id: id.into(),
            elements,
        }
    }

    #[test]
    fn typed_segments_round_trip_losslessly() {
        for text in [
            "CLP*7722337*1*226*132**12*119932404007801",
            "CLP*A*22*-100*-80*0*MC*X*11*1*****Z",
            "SVC*HC:99213:25:59*100*80**1",
            "NM1*85*2*CLINIC*****XX*1234567893",
            "EB*1*IND*30^1^33*HM*PLAN*****Y**N",
            "STC*A1:19:PR*20240101*WQ*100",
            "CLM*A37YH556*500***11:B:1*Y*A*Y*I*P",
            "SV1*HC:99213:25*40*UN*1***1:2",
        ] {
            let s = seg(text);
            let back = match &*s.id {
                "CLP" => Clp::from_segment(&s).0.to_segment(),
                "SVC" => Svc::from_segment(&s).0.to_segment(),
                "NM1" => Nm1::from_segment(&s).0.to_segment(),
                "EB" => Eb::from_segment(&s).0.to_segment(),
                "STC" => Stc::from_segment(&s).0.to_segment(),
                "CLM" => Clm::from_segment(&s).0.to_segment(),
                "SV1" => Sv1::from_segment(&s).0.to_segment(),
                _ => unreachable!(),
            };
            assert_eq!(back, s, "{text}");
        }
    }

    #[test]
    fn misfits_go_to_extra_with_a_problem() {
        let s = seg("CLP*A:B*1*abc*10");
        let (clp, problems) = Clp::from_segment(&s);
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].0, 1);
        assert_eq!(problems[1].0, 3);
        assert_eq!(clp.to_segment(), s);
    }

    #[test]
    fn cas_plb_hi_round_trip() {
        for text in [
            "CAS*CO*45*10**253*2.04",
            "CAS*PR*1*5*1***2*3",
            "PLB*123*20241231*WO:ABC*-10*L6*2.5",
            "HI*ABK:J449*ABF:E119",
        ] {
            let s = seg(text);
            let back = match &*s.id {
                "CAS" => Cas::from_segment(&s).0.to_segment(),
                "PLB" => Plb::from_segment(&s).0.to_segment(),
                "HI" => Hi::from_segment(&s).0.to_segment(),
                _ => unreachable!(),
            };
            assert_eq!(back, s, "{text}");
        }
        let (cas, _) = Cas::from_segment(&seg("CAS*CO*45*10**253*2.04"));
        assert_eq!(cas.total_units(), 120_400);
        let (hi, _) = Hi::from_segment(&seg("HI*ABK:J449*ABF:E119*BE:01:::10"));
        assert_eq!(hi.icd10_diagnoses(), vec!["J449", "E119"]);
    }

    #[test]
    fn debug_shows_no_values() {
        let (nm1, _) = Nm1::from_segment(&seg("NM1*IL*1*DOE*JANE****MI*W123"));
        let d = format!("{nm1:?}");
        assert!(!d.contains("DOE") && !d.contains("W123"));
    }
}
