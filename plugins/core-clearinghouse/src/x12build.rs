//! The X12 this connector sends: 270 (005010X279A1), 276 (005010X212) and
//! 837P (005010X222A1), built as segments from billd's records and written
//! by billd-x12 with envelopes numbered by the caller. Pure: tested on the
//! host target.
//!
//! A claim that earlier payers adjudicated (a secondary or tertiary claim)
//! is written with its coordination of benefits: its own SBR01 is `S` (or
//! `T`), and each earlier payer gets a loop 2320 (SBR, CAS, AMT*D, AMT*EAF,
//! OI) with 2330A (the other subscriber) and 2330B (the other payer, its
//! claim control number, its adjudication date), and, when it adjudicated
//! by line, a loop 2430 (SVD, CAS, DTP*573, AMT*EAF) under each line. An
//! earlier payer whose amounts do not account for the charges (line
//! charge = SVD02 + the line's CAS; claim charge = AMT*D + every CAS) is
//! refused, naming it, rather than written.

use billd_plugin_sdk::coordination::{LineAdjudication, PayerSequence, PriorPayer};
use billd_plugin_sdk::payer::{Claim, ClaimFrequency, EligibilityInquiry, StatusInquiry};
use billd_plugin_sdk::types::{
    Address, Adjustment, AdjustmentGroup, Date, Dependent, PersonName, Procedure, ProcedureCodeSet,
    Provider, Relationship, Sex,
};
use billd_x12::WriteError;
use billd_x12::document::{Body, Document, Generic};
use billd_x12::fields::Amount;
use billd_x12::segment::Segment;
use billd_x12::writer::{ControlKind, ControlNumbers, WriteOptions, write_document};

/// Who we are and whom we write to (from the settings).
#[derive(Clone, Debug, Default)]
pub struct Parties {
    /// ISA06 / GS02; 837 submitter id (NM109 of 1000A); 276 receiver id.
    pub sender: String,
    /// ISA08 / GS03; 837 receiver id (NM109 of 1000B).
    pub receiver: String,
    /// Submitter name.
    pub submitter_name: String,
    /// Submitter contact.
    pub contact: String,
    /// Submitter phone.
    pub phone: String,
    /// Payer / receiver name.
    pub receiver_name: String,
    /// Billing address: line, city, state, zip.
    pub billing_address: [String; 4],
    /// SBR09.
    pub filing_indicator: String,
    /// ISA15.
    pub usage: String,
}

/// When the X12 is written.
#[derive(Clone, Debug)]
pub struct Stamp {
    /// CCYYMMDD.
    pub date: String,
    /// HHMM.
    pub time: String,
}

/// Control numbers fixed by the caller: ISA13 = GS06 = `number`, ST02 = 1.
struct Fixed(u64);

impl ControlNumbers for Fixed {
    fn next(&mut self, kind: ControlKind) -> u64 {
        match kind {
            ControlKind::Interchange | ControlKind::Group => self.0,
            ControlKind::Transaction => 1,
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian: the
/// date of an X12 stamp.
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn seg(id: &str, values: &[&str]) -> Segment {
    Segment::new(id, values)
}

fn amount(cents: i64) -> String {
    Amount::from_cents(cents).as_str().to_owned()
}

fn d8(d: &Date) -> String {
    format!("{:04}{:02}{:02}", d.year, d.month, d.day)
}

fn sex(s: &Sex) -> &'static str {
    match s {
        Sex::Female => "F",
        Sex::Male => "M",
        Sex::Unknown => "U",
    }
}

/// Makes a value safe for X12: upper case, no delimiter candidates, trimmed
/// to `max` characters.
fn clean(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| !matches!(c, '*' | '~' | ':' | '^' | '|' | '\n' | '\r'))
        .take(max)
        .collect::<String>()
        .trim()
        .to_uppercase()
}

fn nm1_person(entity: &str, n: &PersonName, qualifier: &str, id: &str) -> Segment {
    seg(
        "NM1",
        &[
            entity,
            "1",
            &clean(&n.last, 60),
            &clean(&n.first, 35),
            &clean(n.middle.as_deref().unwrap_or(""), 25),
            "",
            &clean(n.suffix.as_deref().unwrap_or(""), 10),
            qualifier,
            id,
        ],
    )
}

fn nm1_provider(entity: &str, p: &Provider) -> Segment {
    let person = p.first_name.is_some();
    seg(
        "NM1",
        &[
            entity,
            if person { "1" } else { "2" },
            &clean(&p.name, 60),
            &clean(p.first_name.as_deref().unwrap_or(""), 35),
            "",
            "",
            "",
            "XX",
            &p.npi,
        ],
    )
}

fn nm1_org(entity: &str, name: &str, qualifier: &str, id: &str) -> Segment {
    seg(
        "NM1",
        &[entity, "2", &clean(name, 60), "", "", "", "", qualifier, id],
    )
}

fn hl(id: usize, parent: Option<usize>, level: &str, child: bool) -> Segment {
    let parent = parent.map(|p| p.to_string()).unwrap_or_default();
    seg(
        "HL",
        &[
            &id.to_string(),
            &parent,
            level,
            if child { "1" } else { "0" },
        ],
    )
}

fn address(a: &Address) -> Vec<Segment> {
    let mut v = vec![seg(
        "N3",
        &[
            &clean(&a.line1, 55),
            &clean(a.line2.as_deref().unwrap_or(""), 55),
        ],
    )];
    v.push(seg(
        "N4",
        &[
            &clean(&a.city, 30),
            &clean(&a.state, 2),
            &clean(&a.postal_code.replace('-', ""), 15),
        ],
    ));
    v
}

/// Writes one transaction set in an interchange numbered `number`.
fn envelope(
    p: &Parties,
    stamp: &Stamp,
    number: u64,
    set_id: &str,
    guide: &str,
    segments: Vec<Segment>,
) -> Result<String, WriteError> {
    let body = Body::Generic(Generic {
        set_id: set_id.into(),
        segments,
    });
    let usage = if p.usage == "P" { "P" } else { "T" };
    let doc = Document::single(&p.sender, &p.receiver, usage, guide, body);
    let opts = WriteOptions {
        date: stamp.date.clone(),
        time: stamp.time.clone(),
        ..WriteOptions::default()
    };
    write_document(&doc, &opts, &mut Fixed(number))
}

/// A 270 for one inquiry; `trace` is TRN02 (unique per inquiry).
pub fn eligibility_270(
    p: &Parties,
    stamp: &Stamp,
    number: u64,
    trace: &str,
    q: &EligibilityInquiry,
) -> Result<String, WriteError> {
    let types: Vec<String> = if q.service_types.is_empty() {
        vec!["30".into()]
    } else {
        q.service_types.iter().map(|s| clean(s, 2)).collect()
    };
    let date = d8(&q.service_date);
    let eq_and_dates = |out: &mut Vec<Segment>| {
        out.push(seg("DTP", &["291", "D8", &date]));
        for t in &types {
            out.push(seg("EQ", &[t]));
        }
    };
    let mut s = vec![
        seg("BHT", &["0022", "13", trace, &stamp.date, &stamp.time]),
        hl(1, None, "20", true),
        nm1_org("PR", &p.receiver_name, "PI", &clean(&q.payer_id, 80)),
        hl(2, Some(1), "21", true),
        nm1_provider("1P", &q.provider),
        hl(3, Some(2), "22", q.dependent.is_some()),
        seg("TRN", &["1", trace, "9BILLDCORE"]),
        nm1_person(
            "IL",
            &q.subscriber.name,
            "MI",
            &clean(&q.subscriber.member_id, 80),
        ),
    ];
    if let Some(g) = &q.subscriber.group_number {
        s.push(seg("REF", &["6P", &clean(g, 50)]));
    }
    s.push(seg(
        "DMG",
        &["D8", &d8(&q.subscriber.birth_date), sex(&q.subscriber.sex)],
    ));
    match &q.dependent {
        None => eq_and_dates(&mut s),
        Some(d) => {
            s.push(hl(4, Some(3), "23", false));
            s.push(seg("TRN", &["1", &format!("{trace}D"), "9BILLDCORE"]));
            s.push(nm1_person("03", &d.name, "", ""));
            s.push(seg("DMG", &["D8", &d8(&d.birth_date), sex(&d.sex)]));
            eq_and_dates(&mut s);
        }
    }
    envelope(p, stamp, number, "270", "005010X279A1", s)
}

/// The TRN02 of inquiry `i` of a 276 traced `trace`.
pub fn status_trace(trace: &str, i: usize) -> String {
    format!("{trace}-{}", i + 1)
}

/// A 276 asking about every inquiry (one subscriber level each, grouped
/// under their providers).
pub fn status_276(
    p: &Parties,
    stamp: &Stamp,
    number: u64,
    trace: &str,
    inquiries: &[StatusInquiry],
) -> Result<String, WriteError> {
    let payer_id = inquiries
        .first()
        .map(|q| q.payer_id.clone())
        .unwrap_or_default();
    let mut s = vec![
        seg("BHT", &["0010", "13", trace, &stamp.date, &stamp.time]),
        hl(1, None, "20", true),
        nm1_org("PR", &p.receiver_name, "PI", &clean(&payer_id, 80)),
        hl(2, Some(1), "21", true),
        nm1_org("41", &p.submitter_name, "46", &p.sender),
    ];
    let mut next = 3;
    let mut providers: Vec<&str> = Vec::new();
    for q in inquiries {
        if !providers.contains(&q.provider.npi.as_str()) {
            providers.push(&q.provider.npi);
        }
    }
    for npi in providers {
        let pid = next;
        next += 1;
        let first = inquiries.iter().find(|q| q.provider.npi == npi);
        s.push(hl(pid, Some(2), "19", true));
        if let Some(q) = first {
            s.push(nm1_provider("1P", &q.provider));
        }
        for (i, q) in inquiries
            .iter()
            .enumerate()
            .filter(|(_, q)| q.provider.npi == npi)
        {
            let sid = next;
            next += 1;
            s.push(hl(sid, Some(pid), "22", q.dependent.is_some()));
            let tracking = |s: &mut Vec<Segment>| {
                s.push(seg("TRN", &["1", &status_trace(trace, i)]));
                if let Some(icn) = &q.payer_claim_id {
                    s.push(seg("REF", &["1K", &clean(icn, 50)]));
                }
                s.push(seg("REF", &["EJ", &clean(&q.claim_id, 50)]));
                s.push(seg("AMT", &["T3", &amount(q.billed)]));
                s.push(seg(
                    "DTP",
                    &[
                        "472",
                        "RD8",
                        &format!("{}-{}", d8(&q.service_from), d8(&q.service_to)),
                    ],
                ));
            };
            match &q.dependent {
                None => {
                    s.push(seg(
                        "DMG",
                        &["D8", &d8(&q.subscriber.birth_date), sex(&q.subscriber.sex)],
                    ));
                    s.push(nm1_person(
                        "IL",
                        &q.subscriber.name,
                        "MI",
                        &clean(&q.subscriber.member_id, 80),
                    ));
                    tracking(&mut s);
                }
                Some(d) => {
                    s.push(nm1_person(
                        "IL",
                        &q.subscriber.name,
                        "MI",
                        &clean(&q.subscriber.member_id, 80),
                    ));
                    s.push(hl(next, Some(sid), "23", false));
                    next += 1;
                    s.push(seg("DMG", &["D8", &d8(&d.birth_date), sex(&d.sex)]));
                    s.push(nm1_person("QC", &d.name, "", ""));
                    tracking(&mut s);
                }
            }
        }
    }
    envelope(p, stamp, number, "276", "005010X212", s)
}

fn relationship(d: &Dependent) -> &'static str {
    relationship_code(Some(d.relationship))
}

/// The individual relationship code (PAT01, SBR02) of the patient to the
/// subscriber: `18` when the patient is the subscriber.
fn relationship_code(r: Option<Relationship>) -> &'static str {
    match r {
        None => "18",
        Some(Relationship::Spouse) => "01",
        Some(Relationship::Child) => "19",
        Some(Relationship::Other) => "G8",
    }
}

/// Why a claim cannot be written as an 837P: (field path, message).
pub type Invalid = (String, String);

/// An 837P with every claim (one transaction set); BHT03 is `batch`.
/// `prior_payers[i]` is how earlier payers adjudicated `claims[i]` (as the
/// `coordination` import gives it; a missing or empty entry: a primary
/// claim).
pub fn professional_837(
    p: &Parties,
    stamp: &Stamp,
    number: u64,
    batch: &str,
    claims: &[Claim],
    prior_payers: &[Vec<PriorPayer>],
) -> Result<Result<String, WriteError>, Invalid> {
    let mut s = vec![
        seg(
            "BHT",
            &["0019", "00", batch, &stamp.date, &stamp.time, "CH"],
        ),
        nm1_org("41", &p.submitter_name, "46", &p.sender),
        seg("PER", &["IC", &clean(&p.contact, 60), "TE", &p.phone]),
        nm1_org("40", &p.receiver_name, "46", &p.receiver),
    ];
    let mut next = 1;
    let mut billing: Vec<&str> = Vec::new();
    for c in claims {
        if !billing.contains(&c.billing_provider.npi.as_str()) {
            billing.push(&c.billing_provider.npi);
        }
    }
    for npi in billing {
        let group: Vec<(usize, &Claim)> = claims
            .iter()
            .enumerate()
            .filter(|(_, c)| c.billing_provider.npi == npi)
            .collect();
        let bp = &group[0].1.billing_provider;
        let tax = bp.tax_id.as_deref().ok_or_else(|| {
            (
                format!("claims[{}].billing-provider.tax-id", group[0].0),
                "the 837P needs the billing provider's tax id".to_owned(),
            )
        })?;
        let bid = next;
        next += 1;
        s.push(hl(bid, None, "20", true));
        if let Some(t) = &bp.taxonomy {
            s.push(seg("PRV", &["BI", "PXC", &clean(t, 50)]));
        }
        s.push(nm1_provider("85", bp));
        let [line, city, state, zip] = &p.billing_address;
        s.push(seg("N3", &[line]));
        s.push(seg("N4", &[city, state, zip]));
        s.push(seg("REF", &["EI", &clean(&tax.replace('-', ""), 50)]));
        for (i, c) in group {
            let prior = prior_payers.get(i).map(Vec::as_slice).unwrap_or_default();
            let sid = next;
            next += 1;
            s.push(hl(sid, Some(bid), "22", c.dependent.is_some()));
            s.push(seg(
                "SBR",
                &[
                    PayerSequence::after(prior).x12_code(),
                    if c.dependent.is_none() { "18" } else { "" },
                    &clean(c.subscriber.group_number.as_deref().unwrap_or(""), 50),
                    "",
                    "",
                    "",
                    "",
                    "",
                    &p.filing_indicator,
                ],
            ));
            s.push(nm1_person(
                "IL",
                &c.subscriber.name,
                "MI",
                &clean(&c.subscriber.member_id, 80),
            ));
            if let Some(a) = &c.subscriber.address {
                s.extend(address(a));
            }
            s.push(seg(
                "DMG",
                &["D8", &d8(&c.subscriber.birth_date), sex(&c.subscriber.sex)],
            ));
            s.push(nm1_org(
                "PR",
                &p.receiver_name,
                "PI",
                &clean(&c.payer_id, 80),
            ));
            if let Some(d) = &c.dependent {
                s.push(hl(next, Some(sid), "23", false));
                next += 1;
                s.push(seg("PAT", &[relationship(d)]));
                s.push(nm1_person("QC", &d.name, "", ""));
                if let Some(a) = &c.subscriber.address {
                    s.extend(address(a));
                }
                s.push(seg("DMG", &["D8", &d8(&d.birth_date), sex(&d.sex)]));
            }
            claim_segments(&mut s, i, c, prior)?;
        }
    }
    Ok(envelope(p, stamp, number, "837", "005010X222A1", s))
}

fn claim_segments(
    s: &mut Vec<Segment>,
    i: usize,
    c: &Claim,
    prior: &[PriorPayer],
) -> Result<(), Invalid> {
    let field = |f: &str| format!("claims[{i}].{f}");
    for (j, p) in prior.iter().enumerate() {
        check_balance(c, p).map_err(|(f, m)| (field(&format!("prior-payers[{j}]{f}")), m))?;
    }
    if c.diagnoses.is_empty() {
        return Err((field("diagnoses"), "a claim needs a diagnosis".into()));
    }
    if c.service_lines.is_empty() {
        return Err((
            field("service-lines"),
            "a claim needs a service line".into(),
        ));
    }
    let frequency = match c.frequency {
        ClaimFrequency::Original => "1",
        ClaimFrequency::Replacement => "7",
        ClaimFrequency::Void => "8",
    };
    let mut clm = seg(
        "CLM",
        &[
            &clean(&c.claim_id, 38),
            &amount(c.total_charge),
            "",
            "",
            "",
            "Y",
            "A",
            "Y",
            "Y",
        ],
    );
    clm.elements[4] = billd_x12::Element::from_components(vec![
        clean(&c.place_of_service, 2),
        "B".into(),
        frequency.into(),
    ]);
    s.push(clm);
    if let Some(a) = &c.prior_authorization {
        s.push(seg("REF", &["G1", &clean(a, 50)]));
    }
    if c.frequency != ClaimFrequency::Original {
        let orig = c.original_payer_claim_id.as_deref().ok_or_else(|| {
            (
                field("original-payer-claim-id"),
                "a replacement or void names the claim it replaces".to_owned(),
            )
        })?;
        s.push(seg("REF", &["F8", &clean(orig, 50)]));
    }
    let mut hi = Segment {
        id: "HI".into(),
        elements: Vec::new(),
    };
    for (k, d) in c.diagnoses.iter().take(12).enumerate() {
        let code = clean(&d.replace('.', ""), 30);
        hi.elements.push(billd_x12::Element::from_components(vec![
            if k == 0 { "ABK" } else { "ABF" }.to_owned(),
            code,
        ]));
    }
    s.push(hi);
    if let Some(r) = &c.rendering_provider {
        s.push(nm1_provider("82", r));
        if let Some(t) = &r.taxonomy {
            s.push(seg("PRV", &["PE", "PXC", &clean(t, 50)]));
        }
    }
    for (j, p) in prior.iter().enumerate() {
        other_payer(s, p).map_err(|m| (field(&format!("prior-payers[{j}].adjustments")), m))?;
    }
    for (k, l) in c.service_lines.iter().enumerate() {
        let procedure = procedure_composite(&l.procedure);
        let pointers: Vec<String> = l
            .diagnosis_pointers
            .iter()
            .take(4)
            .map(u8::to_string)
            .collect();
        if pointers.is_empty() {
            return Err((
                field(&format!("service-lines[{k}].diagnosis-pointers")),
                "a service line points at a diagnosis".into(),
            ));
        }
        s.push(seg("LX", &[&(k + 1).to_string()]));
        let mut sv1 = seg(
            "SV1",
            &[
                "",
                &amount(l.charge),
                "UN",
                &l.units.to_string(),
                &l.place_of_service
                    .as_deref()
                    .map(|p| clean(p, 2))
                    .unwrap_or_default(),
                "",
                "",
            ],
        );
        sv1.elements.resize(7, billd_x12::Element::from(""));
        sv1.elements[0] = billd_x12::Element::from_components(procedure);
        sv1.elements[6] = billd_x12::Element::from_components(pointers);
        s.push(sv1);
        s.push(seg("DTP", &["472", "D8", &d8(&l.service_date)]));
        if let Some(ndc) = &l.ndc {
            s.push(seg("LIN", &["", "N4", &clean(&ndc.replace('-', ""), 48)]));
            s.push(seg("CTP", &["", "", "", &l.units.to_string(), "UN"]));
        }
        for (j, p) in prior.iter().enumerate() {
            if let Some(a) = p.line(l.line_number) {
                line_adjudication(s, p, a).map_err(|m| {
                    (
                        field(&format!("prior-payers[{j}].lines[{}]", l.line_number)),
                        m,
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// A procedure as SV101 and SVD03 write it: `HC`, the code, up to four
/// modifiers.
fn procedure_composite(p: &Procedure) -> Vec<String> {
    let qualifier = match p.code_set {
        ProcedureCodeSet::Cpt | ProcedureCodeSet::Hcpcs => "HC",
    };
    let mut out = vec![qualifier.to_owned(), clean(&p.code, 48)];
    out.extend(p.modifiers.iter().take(4).map(|m| clean(m, 2)));
    out
}

/// The most CAS segments loops 2320 and 2430 each take.
const MAX_CAS: usize = 5;

/// The CAS segments of `adjustments`: one per group code (in the order the
/// groups first appear), the amounts (and quantities) of a repeated reason
/// summed, at most six reasons per segment (a seventh opens another
/// segment of the same group). Refused beyond [`MAX_CAS`] segments.
fn cas_segments(adjustments: &[Adjustment]) -> Result<Vec<Segment>, String> {
    /// A reason with its summed amount (cents) and quantity.
    type Reason = (String, i64, Option<u32>);
    let mut groups: Vec<(&'static str, Vec<Reason>)> = Vec::new();
    for a in adjustments {
        let g = a.group.x12_code();
        let at = match groups.iter().position(|(code, _)| *code == g) {
            Some(at) => at,
            None => {
                groups.push((g, Vec::new()));
                groups.len() - 1
            }
        };
        let reason = clean(&a.reason_code, 5);
        let reasons = &mut groups[at].1;
        match reasons.iter_mut().find(|(r, _, _)| *r == reason) {
            Some((_, amount, quantity)) => {
                *amount += a.amount;
                *quantity = match (*quantity, a.quantity) {
                    (Some(x), Some(y)) => Some(x.saturating_add(y)),
                    _ => None,
                };
            }
            None => reasons.push((reason, a.amount, a.quantity)),
        }
    }
    let mut out = Vec::new();
    for (group, reasons) in groups {
        for chunk in reasons.chunks(6) {
            let mut values = vec![group.to_owned()];
            for (reason, amount_cents, quantity) in chunk {
                values.push(reason.clone());
                values.push(amount(*amount_cents));
                values.push(quantity.map(|q| q.to_string()).unwrap_or_default());
            }
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            out.push(seg("CAS", &refs));
        }
    }
    if out.len() > MAX_CAS {
        return Err(format!(
            "{} CAS segments of adjustments, more than the {MAX_CAS} an 837P loop takes",
            out.len()
        ));
    }
    Ok(out)
}

/// What of `adjustments` is the patient's (group PR).
fn patient_share(adjustments: &[Adjustment]) -> i64 {
    adjustments
        .iter()
        .filter(|a| a.group == AdjustmentGroup::PatientResponsibility)
        .map(|a| a.amount)
        .sum()
}

fn sum(adjustments: &[Adjustment]) -> i64 {
    adjustments.iter().map(|a| a.amount).sum()
}

/// The COB balancing rules of an earlier payer `p` on claim `c`: each line
/// it adjudicated is a line of the claim whose charge is SVD02 + the line's
/// CAS; the claim's charge is AMT*D + the claim-level and line-level CAS
/// (so, with no claim-level adjustments, AMT*D is the sum of SVD02). The
/// error names the part (`.lines[N]`, or `` for the claim) and says why.
fn check_balance(c: &Claim, p: &PriorPayer) -> Result<(), (String, String)> {
    for l in &p.lines {
        let at = format!(".lines[{}]", l.line_number);
        let Some(line) = c
            .service_lines
            .iter()
            .find(|s| s.line_number == l.line_number)
        else {
            return Err((at, "the claim has no such service line".into()));
        };
        if l.paid + sum(&l.adjustments) != line.charge {
            return Err((
                at,
                format!(
                    "the earlier payer's paid amount {} and line adjustments {} do not add up to the line's charge {}",
                    amount(l.paid),
                    amount(sum(&l.adjustments)),
                    amount(line.charge)
                ),
            ));
        }
        if p.lines
            .iter()
            .filter(|o| o.line_number == l.line_number)
            .count()
            > 1
        {
            return Err((at, "the earlier payer adjudicated the line twice".into()));
        }
    }
    if p.paid + p.adjusted() != c.total_charge {
        return Err((
            String::new(),
            format!(
                "the earlier payer's paid amount {} and adjustments {} do not add up to the claim's charge {}",
                amount(p.paid),
                amount(p.adjusted()),
                amount(c.total_charge)
            ),
        ));
    }
    Ok(())
}

/// Loops 2320, 2330A and 2330B of earlier payer `p`.
fn other_payer(s: &mut Vec<Segment>, p: &PriorPayer) -> Result<(), String> {
    let sub = &p.subscriber;
    s.push(seg(
        "SBR",
        &[
            p.sequence.x12_code(),
            relationship_code(sub.relationship),
            &clean(sub.group_number.as_deref().unwrap_or(""), 50),
        ],
    ));
    s.extend(cas_segments(&p.adjustments)?);
    s.push(seg("AMT", &["D", &amount(p.paid)]));
    let by_line = !p.lines.is_empty();
    if !by_line {
        // Adjudicated as a whole: what remains the patient's is reported
        // here rather than per line.
        s.push(seg("AMT", &["EAF", &amount(p.patient_responsibility)]));
    }
    // Benefits assigned and information released, as CLM08 and CLM09 say.
    s.push(seg("OI", &["", "", "Y", "", "", "Y"]));
    s.push(nm1_person(
        "IL",
        &sub.name,
        "MI",
        &clean(&sub.member_id, 80),
    ));
    s.push(nm1_org("PR", &p.payer_name, "PI", &clean(&p.payer_id, 80)));
    if !by_line {
        s.push(seg("DTP", &["573", "D8", &d8(&p.adjudicated)]));
    }
    if let Some(icn) = &p.payer_claim_id {
        s.push(seg("REF", &["F8", &clean(icn, 50)]));
    }
    Ok(())
}

/// Loop 2430 of earlier payer `p`'s adjudication `a` of a line.
fn line_adjudication(
    s: &mut Vec<Segment>,
    p: &PriorPayer,
    a: &LineAdjudication,
) -> Result<(), String> {
    let mut svd = seg(
        "SVD",
        &[
            &clean(&p.payer_id, 80),
            &amount(a.paid),
            "",
            "",
            &a.paid_units.to_string(),
        ],
    );
    svd.elements[2] = billd_x12::Element::from_components(procedure_composite(&a.procedure));
    s.push(svd);
    s.extend(cas_segments(&a.adjustments)?);
    s.push(seg("DTP", &["573", "D8", &d8(&a.adjudicated)]));
    s.push(seg("AMT", &["EAF", &amount(patient_share(&a.adjustments))]));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The WIT JSON form (kebab-case names and cases, as `billd plugins
    /// call` reads it) in the bindings' serde form (snake-case fields,
    /// Pascal-case enum cases).
    fn bindings_form(v: serde_json::Value, key: &str) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .map(|(k, v)| {
                        let v = bindings_form(v, &k);
                        (k.replace('-', "_"), v)
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.into_iter().map(|v| bindings_form(v, key)).collect()),
            Value::String(s) if ["sex", "code-set", "frequency", "relationship"].contains(&key) => {
                Value::String(
                    s.split('-')
                        .map(|w| {
                            let mut c = w.chars();
                            c.next()
                                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                                .unwrap_or_default()
                        })
                        .collect(),
                )
            }
            other => other,
        }
    }

    fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
        // Through the crate's own name: sftp-clearinghouse compiles this
        // file too, and runs these tests from its own directory.
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../core-clearinghouse/fixtures")
            .join(name);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        serde_json::from_value(bindings_form(v, "")).unwrap()
    }

    fn parties() -> Parties {
        Parties {
            sender: "BILLDCLINIC".into(),
            receiver: "SANDBOXPAYER".into(),
            submitter_name: "BILLD CLINIC".into(),
            contact: "BILLING OFFICE".into(),
            phone: "8005550100".into(),
            receiver_name: "SANDBOX HEALTH PLAN".into(),
            billing_address: [
                "100 CLINIC WAY".into(),
                "SPRINGFIELD".into(),
                "IL".into(),
                "627010001".into(),
            ],
            filing_indicator: "CI".into(),
            usage: "T".into(),
        }
    }

    fn stamp() -> Stamp {
        Stamp {
            date: "20240110".into(),
            time: "1200".into(),
        }
    }

    /// billd-x12 reads it strictly and its validator finds no error.
    fn clean_x12(x12: &str, body: fn(&billd_x12::Body) -> bool) {
        let parsed = billd_x12::validate::validate(x12.as_bytes()).unwrap();
        let errors: Vec<String> = parsed
            .issues
            .iter()
            .filter(|i| i.is_error())
            .map(ToString::to_string)
            .collect();
        assert!(errors.is_empty(), "{errors:#?}\n{x12}");
        let t = &parsed.document.interchanges[0].groups[0].transactions[0];
        assert!(body(&t.body), "{x12}");
    }

    #[test]
    fn the_270_837p_and_276_validate() {
        let q: EligibilityInquiry = fixture("eligibility-active.json");
        let x = eligibility_270(&parties(), &stamp(), 7, "TRACE1", &q).unwrap();
        clean_x12(&x, |b| matches!(b, billd_x12::Body::EligibilityInquiry(_)));
        assert!(x.contains("NM1*IL*1*DOE*JANE****MI*M1001~"), "{x}");

        let claims: Vec<Claim> = fixture("claims.json");
        let x = professional_837(&parties(), &stamp(), 8, "8", &claims, &[])
            .unwrap()
            .unwrap();
        clean_x12(&x, |b| matches!(b, billd_x12::Body::Professional(_)));
        assert!(x.contains("CLM*PCN1001*125***11:B:1*Y*A*Y*Y~"), "{x}");
        assert!(x.contains("ISA*00*") && x.contains("*000000008*"), "{x}");

        let inquiries: Vec<StatusInquiry> = fixture("status.json");
        let x = status_276(&parties(), &stamp(), 9, "TRACE2", &inquiries).unwrap();
        clean_x12(&x, |b| matches!(b, billd_x12::Body::StatusRequest(_)));
        assert!(x.contains("TRN*1*TRACE2-2~"), "{x}");
    }

    fn adj(group: AdjustmentGroup, reason: &str, cents: i64) -> Adjustment {
        Adjustment {
            group,
            reason_code: reason.into(),
            amount: cents,
            quantity: None,
        }
    }

    fn date(year: u16, month: u8, day: u8) -> Date {
        Date { year, month, day }
    }

    /// The first claim of the fixture (125.00: line 1 99213-25 100.00,
    /// line 2 J1100 25.00), as paid by line by payer `PRIMARY1`: line 1
    /// 60.00 paid, 20.00 contractual, 15.00 coinsurance, 5.00 deductible;
    /// line 2 denied (25.00 contractual).
    fn primary_by_line() -> PriorPayer {
        use AdjustmentGroup::{Contractual as CO, PatientResponsibility as PR};
        use billd_plugin_sdk::coordination::OtherSubscriber;
        let line =
            |n: u16, code: &str, set, mods: &[&str], charge, paid, adjustments| LineAdjudication {
                line_number: n,
                procedure: Procedure {
                    code_set: set,
                    code: code.into(),
                    modifiers: mods.iter().map(|m| m.to_string()).collect(),
                },
                charge,
                paid,
                paid_units: 1,
                adjustments,
                adjudicated: date(2024, 2, 1),
            };
        PriorPayer {
            sequence: PayerSequence::Primary,
            payer_id: "PRIMARY1".into(),
            payer_name: "First Health".into(),
            subscriber: OtherSubscriber {
                name: PersonName {
                    last: "Doe".into(),
                    first: "Jane".into(),
                    middle: None,
                    suffix: None,
                },
                member_id: "MP-77".into(),
                relationship: None,
                group_number: Some("GP-1".into()),
            },
            payer_claim_id: Some("ICN-P1".into()),
            paid: 6_000,
            adjustments: vec![],
            lines: vec![
                line(
                    1,
                    "99213",
                    ProcedureCodeSet::Cpt,
                    &["25"],
                    10_000,
                    6_000,
                    vec![adj(CO, "45", 2_000), adj(PR, "2", 1_500), adj(PR, "1", 500)],
                ),
                line(
                    2,
                    "J1100",
                    ProcedureCodeSet::Hcpcs,
                    &[],
                    2_500,
                    0,
                    vec![adj(CO, "97", 2_500)],
                ),
            ],
            patient_responsibility: 2_000,
            adjudicated: date(2024, 2, 1),
        }
    }

    /// The same claim paid as a whole: 75.00 paid, 30.00 contractual,
    /// 20.00 deductible.
    fn primary_by_claim() -> PriorPayer {
        use AdjustmentGroup::{Contractual as CO, PatientResponsibility as PR};
        PriorPayer {
            paid: 7_500,
            adjustments: vec![adj(CO, "45", 3_000), adj(PR, "1", 2_000)],
            lines: vec![],
            ..primary_by_line()
        }
    }

    /// The fixture's claim and a copy of it, `PCN1002`.
    fn two_claims() -> Vec<Claim> {
        let mut claims: Vec<Claim> = fixture("claims.json");
        let mut second = claims[0].clone();
        second.claim_id = "PCN1002".into();
        claims.push(second);
        claims
    }

    fn write(claims: &[Claim], prior: &[Vec<PriorPayer>]) -> String {
        professional_837(&parties(), &stamp(), 8, "8", claims, prior)
            .unwrap()
            .unwrap()
    }

    fn segments(x12: &str) -> Vec<&str> {
        x12.split('~').map(str::trim).collect()
    }

    /// The claims of an 837P read strictly by billd-x12 (after its
    /// validator found no error).
    fn read_claims(x12: &str) -> Vec<billd_x12::t837p::Claim> {
        clean_x12(x12, |b| matches!(b, billd_x12::Body::Professional(_)));
        let parsed = billd_x12::document::parse(x12.as_bytes(), billd_x12::Mode::Strict).unwrap();
        let t = &parsed.document.interchanges[0].groups[0].transactions[0];
        let billd_x12::Body::Professional(p) = &t.body else {
            panic!("not an 837P")
        };
        p.billing_providers
            .iter()
            .flat_map(|b| &b.subscribers)
            .flat_map(|s| {
                s.claims
                    .iter()
                    .chain(s.patients.iter().flat_map(|p| &p.claims))
            })
            .cloned()
            .collect()
    }

    fn cents(a: &billd_x12::fields::Amount) -> i64 {
        a.units() / (billd_x12::fields::AMOUNT_SCALE / 100)
    }

    /// The sum of the amounts of the CAS segments among `segs`.
    fn cas_total<'a>(segs: impl IntoIterator<Item = &'a Segment>) -> i64 {
        segs.into_iter()
            .filter(|s| s.id == "CAS")
            .map(|s| {
                let (cas, _) = billd_x12::segments::Cas::from_segment(s);
                cas.adjustments
                    .iter()
                    .map(|a| cents(&a.amount))
                    .sum::<i64>()
            })
            .sum()
    }

    /// Checks the 837P guide's COB balancing on a claim read back: for
    /// every other payer and every line it adjudicated, SV102 = SVD02 +
    /// the 2430 CAS; and CLM02 = AMT*D + the 2320 CAS + its 2430 CAS.
    /// Returns, per other payer, (AMT*D, the sum of its SVD02).
    fn balanced(c: &billd_x12::t837p::Claim) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        for os in &c.other_subscribers {
            let payer = os
                .entities
                .iter()
                .find(|e| e.nm1.entity == "PR")
                .expect("2330B");
            let id = payer.nm1.id.clone().unwrap_or_default();
            let paid = os
                .amounts
                .iter()
                .find(|a| a.qualifier == "D")
                .map(|a| cents(&a.amount))
                .expect("AMT*D");
            let mut line_cas = 0;
            let mut svd_total = 0;
            for l in &c.lines {
                for adj in &l.adjudications {
                    let svd = &adj.segments[0];
                    assert_eq!(svd.id, "SVD");
                    if svd.get(1) != id {
                        continue;
                    }
                    let svd02 = cents(&billd_x12::fields::Amount::parse(svd.get(2)).unwrap());
                    let cas = cas_total(&adj.segments);
                    assert_eq!(
                        cents(&l.sv1.charge),
                        svd02 + cas,
                        "line {}: SV102 = SVD02 + CAS",
                        l.lx.number
                    );
                    line_cas += cas;
                    svd_total += svd02;
                }
            }
            let claim_cas: i64 = os
                .adjustments
                .iter()
                .flat_map(|c| &c.adjustments)
                .map(|a| cents(&a.amount))
                .sum();
            assert_eq!(
                cents(&c.clm.total_charge),
                paid + claim_cas + line_cas,
                "CLM02 = AMT*D + CAS"
            );
            out.push((paid, svd_total));
        }
        out
    }

    #[test]
    fn a_secondary_claim_carries_the_primary_payers_line_adjudication() {
        let claims = two_claims();
        let x = write(&claims, &[vec![primary_by_line()]]);
        let segs = segments(&x);
        let at = |s: &str| {
            segs.iter()
                .position(|x| *x == s)
                .unwrap_or_else(|| panic!("no {s} in\n{x}"))
        };
        // Its own payer is the secondary; the primary is the other payer.
        assert!(segs.contains(&"SBR*S*18*GRP100******CI"), "{x}");
        let sbr = at("SBR*P*18*GP-1");
        assert!(sbr > at("NM1*82*1*KILDARE*BEN****XX*1245319599"), "{x}");
        assert_eq!(
            &segs[sbr..sbr + 6],
            [
                "SBR*P*18*GP-1",
                "AMT*D*60",
                "OI***Y***Y",
                "NM1*IL*1*DOE*JANE****MI*MP-77",
                "NM1*PR*2*FIRST HEALTH*****PI*PRIMARY1",
                "REF*F8*ICN-P1",
            ],
            "{x}"
        );
        // By line: no claim-level remaining liability or date.
        assert!(
            !segs[sbr..at("LX*1")]
                .iter()
                .any(|s| s.starts_with("AMT*EAF") || s.starts_with("DTP*573")),
            "{x}"
        );
        let svd = at("SVD*PRIMARY1*60*HC:99213:25**1");
        assert!(svd > at("DTP*472*D8*20240105") && svd < at("LX*2"), "{x}");
        assert_eq!(
            &segs[svd..svd + 5],
            [
                "SVD*PRIMARY1*60*HC:99213:25**1",
                "CAS*CO*45*20",
                "CAS*PR*2*15**1*5",
                "DTP*573*D8*20240201",
                "AMT*EAF*20",
            ],
            "{x}"
        );
        let svd = at("SVD*PRIMARY1*0*HC:J1100**1");
        assert_eq!(
            &segs[svd..svd + 4],
            [
                "SVD*PRIMARY1*0*HC:J1100**1",
                "CAS*CO*97*25",
                "DTP*573*D8*20240201",
                "AMT*EAF*0"
            ],
            "{x}"
        );
        // Read back strictly: the loops are where the guide puts them and
        // the amounts balance to the cent (AMT*D = the sum of SVD02: no
        // claim-level adjustments).
        let read = read_claims(&x);
        assert_eq!(read[0].other_subscribers.len(), 1);
        assert_eq!(read[0].other_subscribers[0].entities.len(), 2);
        assert_eq!(balanced(&read[0]), [(6_000, 6_000)]);
        assert!(
            read[1].other_subscribers.is_empty(),
            "a primary claim: no 2320"
        );
        // The second claim is a primary one: its own SBR01 is P.
        assert!(segs.contains(&"SBR*P*18*GRP100******CI"), "{x}");
    }

    #[test]
    fn a_claim_paid_as_a_whole_reports_claim_level_cob() {
        let claims: Vec<Claim> = fixture("claims.json");
        let x = write(&claims[..1], &[vec![primary_by_claim()]]);
        let segs = segments(&x);
        let sbr = segs.iter().position(|s| *s == "SBR*P*18*GP-1").unwrap();
        assert_eq!(
            &segs[sbr..sbr + 10],
            [
                "SBR*P*18*GP-1",
                "CAS*CO*45*30",
                "CAS*PR*1*20",
                "AMT*D*75",
                "AMT*EAF*20",
                "OI***Y***Y",
                "NM1*IL*1*DOE*JANE****MI*MP-77",
                "NM1*PR*2*FIRST HEALTH*****PI*PRIMARY1",
                "DTP*573*D8*20240201",
                "REF*F8*ICN-P1",
            ],
            "{x}"
        );
        assert!(!x.contains("SVD*"), "{x}");
        assert_eq!(balanced(&read_claims(&x)[0]), [(7_500, 0)]);
    }

    #[test]
    fn a_tertiary_claim_carries_both_earlier_payers() {
        use AdjustmentGroup::{Contractual as CO, Other as OA, PatientResponsibility as PR};
        let claims: Vec<Claim> = fixture("claims.json");
        // The secondary paid 15.00 of the 20.00 the primary left, by line
        // (its own CAS: OA 23, the primary's impact, then the rest).
        let mut secondary = primary_by_line();
        secondary.sequence = PayerSequence::Secondary;
        secondary.payer_id = "SECOND2".into();
        secondary.payer_name = "Second Mutual".into();
        secondary.subscriber.member_id = "MS-88".into();
        secondary.subscriber.relationship = Some(Relationship::Spouse);
        secondary.subscriber.group_number = None;
        secondary.payer_claim_id = None;
        secondary.paid = 1_500;
        secondary.patient_responsibility = 500;
        secondary.lines[0].paid = 1_500;
        secondary.lines[0].adjustments = vec![adj(OA, "23", 8_000), adj(PR, "2", 500)];
        secondary.lines[1].adjustments = vec![adj(CO, "97", 2_500)];
        let x = write(&claims[..1], &[vec![primary_by_line(), secondary]]);
        let segs = segments(&x);
        assert!(segs.contains(&"SBR*T*18*GRP100******CI"), "{x}");
        assert!(segs.contains(&"SBR*P*18*GP-1"), "{x}");
        assert!(segs.contains(&"SBR*S*01"), "{x}");
        assert!(segs.contains(&"NM1*IL*1*DOE*JANE****MI*MS-88"), "{x}");
        assert!(segs.contains(&"SVD*SECOND2*15*HC:99213:25**1"), "{x}");
        assert!(segs.contains(&"CAS*OA*23*80"), "{x}");
        let read = read_claims(&x);
        assert_eq!(balanced(&read[0]), [(6_000, 6_000), (1_500, 1_500)]);
    }

    #[test]
    fn earlier_payers_whose_amounts_do_not_balance_are_refused_by_name() {
        let claims = two_claims();
        let mut p = primary_by_line();
        p.lines[1].paid = 100;
        let e = professional_837(&parties(), &stamp(), 1, "1", &claims, &[vec![p]]).unwrap_err();
        assert_eq!(e.0, "claims[0].prior-payers[0].lines[2]", "{e:?}");
        assert!(e.1.contains("line's charge 25"), "{e:?}");
        let mut p = primary_by_claim();
        p.paid = 7_400;
        let e = professional_837(&parties(), &stamp(), 1, "1", &claims, &[vec![], vec![p]])
            .unwrap_err();
        assert_eq!(e.0, "claims[1].prior-payers[0]", "{e:?}");
        let mut p = primary_by_line();
        p.lines[1].line_number = 9;
        let e = professional_837(&parties(), &stamp(), 1, "1", &claims, &[vec![p]]).unwrap_err();
        assert_eq!(e.0, "claims[0].prior-payers[0].lines[9]", "{e:?}");
    }

    #[test]
    fn adjustments_are_grouped_by_code_six_reasons_a_segment_at_most_five_segments() {
        use AdjustmentGroup::{Contractual as CO, PatientResponsibility as PR};
        let mut a: Vec<Adjustment> = (1..=7).map(|r| adj(CO, &r.to_string(), 100)).collect();
        a.push(adj(PR, "2", 300));
        a.push(Adjustment {
            quantity: Some(2),
            ..adj(CO, "3", 50)
        });
        let text: Vec<String> = cas_segments(&a)
            .unwrap()
            .iter()
            .map(|s| {
                let mut out = String::new();
                billd_x12::writer::write_segment(&mut out, s, &Default::default()).unwrap();
                out.trim_end_matches('~').to_owned()
            })
            .collect();
        assert_eq!(
            text,
            [
                "CAS*CO*1*1**2*1**3*1.5**4*1**5*1**6*1",
                "CAS*CO*7*1",
                "CAS*PR*2*3",
            ]
        );
        let many: Vec<Adjustment> = (1..=31).map(|r| adj(CO, &r.to_string(), 1)).collect();
        assert!(cas_segments(&many).unwrap_err().contains("6 CAS segments"));
    }

    #[test]
    fn a_claim_without_a_tax_id_or_diagnosis_names_the_field() {
        let mut claims: Vec<Claim> = fixture("claims.json");
        claims[0].billing_provider.tax_id = None;
        let e = professional_837(&parties(), &stamp(), 1, "1", &claims, &[]).unwrap_err();
        assert_eq!(e.0, "claims[0].billing-provider.tax-id");
        let mut claims: Vec<Claim> = fixture("claims.json");
        claims[0].diagnoses.clear();
        let e = professional_837(&parties(), &stamp(), 1, "1", &claims, &[]).unwrap_err();
        assert_eq!(e.0, "claims[0].diagnoses");
    }
}
